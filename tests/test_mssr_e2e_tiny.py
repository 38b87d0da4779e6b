"""End to end: verl's own trainer runs MSSR on CPU (recipes/mssr/run_tiny_cpu.sh, 2-5 minutes).

``pytest -m e2e tests/test_mssr_e2e_tiny.py``. The recipe trains the tiny random Qwen2.5-VL on image rows for
2 steps with rollout.n=1 through ``python -m verl.trainer.main_ppo`` (verl's vLLM rollout on vLLM's CPU build)
and resumes for a third. Checked against what verl wrote (file-logger metrics, ``data.pt``): the estimator's
``mssr/*`` metrics reach verl's logger, it shaped with the full-vocabulary entropies of verl's old-log-prob
pass (their mean equals verl's ``actor/entropy``), the driver's ``mssr`` advantages are the batch-normalised
rewards worked out here plus a bounded bonus, each ``data.pt`` (also the one the resumed run wrote) holds the
baselines of every step up to its own, initialised with N0 = 8 from the logged scores, and vLLM sampled with
the actor's weights and inputs.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recipe_run import assert_vllm_rolled_out_with_the_actors_weights, require_vllm_cpu, run_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "mssr" / "run_tiny_cpu.sh"
BATCH = 4


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    require_vllm_cpu()
    work = tmp_path_factory.mktemp("mssr_tiny")
    run_recipe(RECIPE, work, 2)
    return work


def metrics(work, run):
    """Training-step rows of verl's file logger (validation rows, logged at the resume step, left out)."""
    rows = [json.loads(line) for line in (work / f"metrics_run{run}.jsonl").read_text().splitlines()]
    return {row["step"]: row["data"] for row in rows if "critic/score/mean" in row["data"]}


@pytest.mark.e2e
def test_vllm_rolled_out_with_the_actors_weights(work):
    assert_vllm_rolled_out_with_the_actors_weights(work)


@pytest.mark.e2e
def test_validation_ran_on_mssr_rows(work):
    rows = [json.loads(line) for line in (work / "metrics_run1.jsonl").read_text().splitlines()]
    assert any(row["step"] == 0 and any(k.startswith("val-") for k in row["data"]) for row in rows)


def normalised_extremes(score_mean):
    """max/min of ((r - mean r) / (std r + 1e-6)) for a 0/1 batch of BATCH rows with that mean (first visits)."""
    k = round(score_mean * BATCH)
    r = np.array([1.0] * k + [0.0] * (BATCH - k))
    d = r - r.mean()
    a = d / (r.std(ddof=1) + 1e-6)
    return a.max(), a.min()


@pytest.mark.e2e
def test_estimator_shaped_advantages_with_verls_entropies(work):
    steps = {**metrics(work, 1), **metrics(work, 2)}
    assert sorted(steps) == [1, 2, 3]
    for step, m in steps.items():
        # the estimator shaped with the entropies of verl's old-log-prob pass: verl's own mean of them
        # (verl averages the bf16 tensor in bf16, 2^-8 relative precision; -p log p would be ~10x smaller)
        assert m["mssr/entropy_mean"] == pytest.approx(m["actor/entropy"], rel=1e-2), step
        # from the driver's estimator: 16 rows, 4 distinct per step, every step a first visit
        assert (m["mssr/rho"], m["mssr/first_visit_rows"], m["mssr/prompts_tracked"]) == (0.9, BATCH, BATCH * step)
        # (a step whose rollouts all score 0 has A = 0 and checks only the bounds; the random model often scores 0)
        # first visits: baseline = batch-mean reward, A = (r - mean r) / (std r + 1e-6) per rollout, and
        # shaping A' = A + min(0.4 H, |A| / 2) per token lies in [A, 1.5 A] for A > 0 and in [A, A / 2] for A < 0
        hi, lo = normalised_extremes(m["critic/score/mean"])
        if m["mssr/bonus_capped_frac"] == 1.0:  # every token at the cap: A' = A + |A| / 2 exactly
            assert m["critic/advantages/max"] == pytest.approx(1.5 * hi, abs=1e-4), step
            assert m["critic/advantages/min"] == pytest.approx(0.5 * lo, abs=1e-4), step
        assert hi - 1e-4 <= m["critic/advantages/max"] <= 1.5 * hi + 1e-4, step
        assert lo - 1e-4 <= m["critic/advantages/min"] <= 0.5 * lo + 1e-4, step
        # verl's advantage metrics are token means; sum(A) = 0 per rollout, so they equal the bonus' token
        # mean when every response has the same length
        if m["response_length/min"] == m["response_length/max"]:
            assert m["critic/advantages/mean"] == pytest.approx(m["mssr/bonus_mean"], abs=1e-5), step


@pytest.mark.e2e
def test_baseline_state_in_verls_checkpoint(work):
    steps = {**metrics(work, 1), **metrics(work, 2)}
    n0 = 1 / (1 - 0.875)
    for step in (2, 3):  # global_step_3 was written by the resumed run
        state = torch.load(work / "ckpt" / f"global_step_{step}" / "data.pt", weights_only=False)
        state = state["dataset_state"]["mssr"]
        seen, alpha, beta = (np.asarray(state[k]) for k in ("seen", "alpha", "beta"))
        # the save of step k already holds step k's rows (all first visits: 4 distinct prompts per step)
        assert seen.sum() == BATCH * step
        assert (alpha + beta)[seen] == pytest.approx([n0] * (BATCH * step))
        successes = BATCH * sum(steps[s]["critic/score/mean"] for s in range(1, step + 1))
        assert alpha.sum() == pytest.approx(n0 * successes)
        assert state["last_rho"] == 0.9
