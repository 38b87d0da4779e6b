"""CI runs exactly the README's test command (the second set-up line), and the first line's main job."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    """The commands of the README's "Set up" code block, comments stripped."""
    block = re.search(r"## Set up\s+```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_gives_two_setup_commands_and_ci_runs_the_test_command_verbatim():
    main_job, tests = setup_commands()
    assert "vade-verl simulate" in main_job and "pytest" in tests
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines
    # CI runs the install and the (shortened) main job apart, pip quietened: the same requirement arguments
    install_args = main_job.split("&&")[0].strip().removeprefix("pip install ")
    assert any(" install " in line and line.endswith(install_args) for line in ci_lines), install_args
