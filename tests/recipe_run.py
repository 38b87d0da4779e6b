"""Run a tiny-CPU recipe (verl's real trainer) from an e2e test, in its own process group; read the
Hydra overrides of an 8-GPU recipe."""

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900


class RecipeFailed(AssertionError):
    pass


def run_recipe(recipe: Path, work: Path, steps: int) -> str:
    """``bash recipe work`` with STEPS and this interpreter; returns its output, raises with its tail.

    The recipe runs in its own process group, so that a timeout also ends the trainer and the Ray
    processes it started.
    """
    env = dict(os.environ, STEPS=str(steps), PYTHON=sys.executable)
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        ["bash", str(recipe), str(work)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise RecipeFailed(f"recipe did not finish in {TIMEOUT_S} s; tail:\n{out[-4000:]}")
    if proc.returncode != 0:
        raise RecipeFailed(f"recipe failed (rc={proc.returncode}); tail:\n{out[-4000:]}")
    return out


def recipe_calls(recipe: Path, env=None, *extra) -> list:
    """The Hydra overrides of each trainer call a recipe would make (its ``PRINT_OVERRIDES=1`` mode,
    which separates calls by an empty line): one list per call, in order."""
    out = subprocess.run(
        ["bash", str(recipe), *extra],
        env={**os.environ, "PRINT_OVERRIDES": "1", **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return [block.splitlines() for block in out.stdout.split("\n\n")]
