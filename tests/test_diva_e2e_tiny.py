"""End to end: verl's own trainer runs DIVA-GRPO on CPU (recipes/diva/run_diva_tiny_cpu.sh, about 3 minutes).

``pytest -m e2e tests/test_diva_e2e_tiny.py``. The recipe trains the tiny random Qwen2.5-VL on image rows for 3
steps through ``python -m verl.trainer.main_ppo`` with ``DivaRLHFDataset`` + ``DivaAgentLoopManager`` + the
``diva_grpo`` estimator and verl's vLLM rollout, then resumes for a 4th. Checked against what verl wrote (rollout
dumps, file-logger metrics, ``data.pt``): every step rolled out 4 problems and one variant of each, n = 4; the
difficulty table in each checkpoint equals DIVA's band update worked out here from the dumped rewards (also
across the resume); variant images (perturbed by real image operations) reached vLLM and the actor alike.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from recipe_run import (
    assert_vllm_rolled_out_with_the_actors_weights,
    report_run,
    require_vllm_cpu,
    rollout_evidence,
    run_recipe,
    step_metrics,
)

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "diva" / "run_diva_tiny_cpu.sh"
STEPS, BATCH, N_ROLLOUTS, N_ROWS = 3, 4, 4, 32
# DIVA's difficulty bands (paper defaults): mean reward s of a problem and its variants in a step moves
# d by +2 (s <= .05), +1 (<= .3), 0 (<= .5), -1 (<= .7), -2 (above), within [1, 9]; every problem starts at 5.
BANDS = [(0.05, 2), (0.3, 1), (0.5, 0), (0.7, -1), (1.0, -2)]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    require_vllm_cpu()
    work = tmp_path_factory.mktemp("diva_tiny")
    run_recipe(RECIPE, work, STEPS)
    report_run("DIVA-GRPO (problem + variant)", work)
    return work


def rollouts_by_problem(work: Path, step: int) -> dict[int, list[float]]:
    """Problem (dataset position, kept by its variants in extra_info.index) -> scores of all its rollouts."""
    return rollout_evidence(work, step)


def difficulty_by_hand(work: Path, steps: range) -> np.ndarray:
    d = np.full(N_ROWS, 5)
    for step in steps:
        for problem, scores in rollouts_by_problem(work, step).items():
            s = np.mean(scores)
            delta = next(delta for edge, delta in BANDS if s <= edge)
            d[problem] = min(9, max(1, d[problem] + delta))
    return d


def dataset_state(work: Path, step: int) -> dict:
    return torch.load(work / "ckpt" / f"global_step_{step}" / "data.pt", weights_only=False)["dataset_state"]


@pytest.mark.e2e
def test_every_step_rolled_out_each_problem_and_its_variant(work):
    for step in range(1, STEPS + 2):
        problems = rollouts_by_problem(work, step)
        assert len(problems) == BATCH, (step, sorted(problems))
        assert all(len(scores) == 2 * N_ROLLOUTS for scores in problems.values()), step  # (1 + 1 variant) x n


@pytest.mark.e2e
def test_difficulty_table_follows_the_rewards_across_the_resume(work):
    """DIVA updates the table in the advantage step, before verl saves: global_step_k holds updates 1..k;
    global_step_4 was written by the resumed run, so it holds update 4 on top of the restored 1..3."""
    for step in (STEPS, STEPS + 1):
        state = dataset_state(work, step)
        assert state["tracker"]["num_updates"] == step
        assert state["tracker"]["difficulty"] == difficulty_by_hand(work, range(1, step + 1)).tolist()
        assert sum(state["draws"]) == BATCH * step  # one variant per problem per step, counted once


@pytest.mark.e2e
def test_variant_images_reached_vllm_and_the_actor(work):
    """Image perturbations were drawn, and vLLM's and the actor's probabilities agree on every row, variants
    included: both received the perturbed pixels (a rotated image, expanded, is also more image tokens)."""
    counts = dataset_state(work, STEPS + 1)["variant_counts"]
    assert counts.get("perturb", 0) > 0, counts
    assert counts.get("copy", 0) == 0 and counts.get("question_not_in_prompt", 0) == 0, counts
    assert_vllm_rolled_out_with_the_actors_weights(work)


@pytest.mark.e2e
def test_diva_metrics_reached_verls_logger(work):
    """The estimator found every rollout's task score (recorded from the agent loop's rm_scores), skipped no
    row of the difficulty update, and updated each step's problems; verl's file logger holds it all."""
    metrics = step_metrics(work)
    assert sorted(metrics) == list(range(1, STEPS + 2))
    for step, data in metrics.items():
        assert data["diva/task_scores_recorded"] == 1.0, step
        assert data["diva/difficulty_rows_skipped"] == 0, step
        assert data["diva/problems_updated"] == len(rollouts_by_problem(work, step)) == BATCH, step
