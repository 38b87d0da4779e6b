"""The session's summary names each real-stack run the e2e tests checked (tests/recipe_run.py's RUN_SUMMARIES)."""

from recipe_run import RUN_SUMMARIES


def pytest_terminal_summary(terminalreporter):
    if RUN_SUMMARIES:
        terminalreporter.section("real-stack runs checked (from what verl wrote)")
        for line in RUN_SUMMARIES:
            terminalreporter.write_line(line)
