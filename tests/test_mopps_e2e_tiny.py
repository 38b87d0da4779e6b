"""End to end: verl's own trainer drives the MoPPS sampler on CPU (``SAMPLER=mopps recipes/ci/run_tiny_cpu.sh``).

The recipe trains the tiny random Qwen2.5-VL on image rows with GRPO + ``MoPPSSampler`` for 2 steps through
``python -m verl.trainer.main_ppo`` (Ray, FSDP2 actor, verl's vLLM rollout on vLLM's CPU build), then resumes
from ``global_step_2`` for a third. What the sampler did is checked against what verl wrote: the rollout dumps
(``trainer.rollout_data_dir``), the file logger's metrics and the sampler state in verl's ``data.pt``. The
posterior arithmetic is the MoPPS authors' update written out here (``recipe/ours/mopps.py:77-78`` of
github.com/thu-rllab/MoPPS), not a call into ``vade_verl.mopps``. The same base class runs VADE and GRESO
(tests/test_peer_samplers_verl_fit.py); one real-stack run of a second method keeps CI short.

``pytest -m e2e tests/test_mopps_e2e_tiny.py`` (docs/ci_run.md gives its time). Skips without vLLM's CPU build,
fails instead with ``VADE_REQUIRE_REAL_STACK=1``.
"""

import time
from pathlib import Path

import numpy as np
import pytest

from recipe_run import report_run, require_vllm_cpu, rollout_evidence, run_recipe, step_metrics

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "ci" / "run_tiny_cpu.sh"
STEPS = 2  # first launch; the resumed launch adds step 3
BATCH, N_ROLLOUTS, N_ROWS = 4, 4, 32  # data.train_batch_size, rollout.n, train rows (as in the recipe)
DECAY, TARGET, CANDIDATES = 0.5, 0.5, 8  # MoPPSConfig defaults (the authors' geo3k script)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require_vllm_cpu()
    work = tmp_path_factory.mktemp("mopps_tiny")
    start = time.monotonic()
    run_recipe(RECIPE, work, STEPS, env={"SAMPLER": "mopps"})
    print(f"recipe wall time: {time.monotonic() - start:.0f} s")
    report_run("MoPPS (GRPO + MoPPSSampler)", work)
    return work


def posteriors_by_hand(work: Path, steps: range) -> tuple[np.ndarray, np.ndarray]:
    """Counts (alpha, beta) = (a - 1, b - 1) after ``steps``: from Beta(1, 1), each rolled-out row
    a <- l a + (1 - l) + s, b <- l b + (1 - l) + (n - s); rows not rolled out are untouched."""
    a, b = np.ones(N_ROWS), np.ones(N_ROWS)
    for step in steps:
        for row, scores in rollout_evidence(work, step).items():
            s, n = sum(scores), len(scores)
            a[row] = DECAY * a[row] + (1 - DECAY) + s
            b[row] = DECAY * b[row] + (1 - DECAY) + (n - s)
    return a - 1, b - 1


def sampler_state(work: Path, step: int) -> dict:
    import torch

    loader_state = torch.load(work / "ckpt" / f"global_step_{step}" / "data.pt", weights_only=False)
    return loader_state["_sampler_iter_state"]["sampler_state"]


@pytest.mark.e2e
def test_trainer_completed_all_steps_and_resumed(run):
    assert sorted(step_metrics(run)) == list(range(1, STEPS + 2))
    assert f"Resuming from {run / 'ckpt' / f'global_step_{STEPS}'}" in (run / "run2.log").read_text()
    assert "Resuming from" not in (run / "run1.log").read_text()


@pytest.mark.e2e
def test_each_step_rolled_out_one_batch_and_its_record_holds_the_rewards(run):
    for step in range(1, STEPS + 2):
        evidence = rollout_evidence(run, step)
        assert len(evidence) == BATCH and all(len(s) == N_ROLLOUTS for s in evidence.values()), (step, evidence)
        with np.load(run / "ckpt" / "mopps_sampler" / f"update_{step:08d}.npz") as record:
            assert record["positions"].tolist() == sorted(evidence)  # extra_info.index == position here
            assert record["successes"].tolist() == [sum(evidence[i]) for i in sorted(evidence)]
            assert record["trials"].tolist() == [len(evidence[i]) for i in sorted(evidence)]


@pytest.mark.e2e
def test_checkpointed_posteriors_follow_the_authors_update(run):
    """global_step_k holds updates 1..k (applied when verl took the state, before its update call); the
    resumed launch wrote global_step_3, which holds them only if the resume restored the state exactly."""
    for step in (STEPS, STEPS + 1):
        state = sampler_state(run, step)["mopps"]
        alpha, beta = posteriors_by_hand(run, range(1, step + 1))
        assert state["num_updates"] == state["num_selections"] == step
        np.testing.assert_allclose(state["alpha"], alpha, rtol=0, atol=1e-12)
        np.testing.assert_allclose(state["beta"], beta, rtol=0, atol=1e-12)


@pytest.mark.e2e
def test_resumed_step_is_the_candidates_nearest_the_target(run):
    """Step 3 (the first after the resume): the pool is min(8 x 4, 32) = all 32 rows in a fresh permutation
    drawn with the generator saved at step 2, one Thompson draw per candidate from the posteriors worked out
    here, the 4 draws nearest 0.5. The draw is ``thompson_draw`` (its random stream is the implementation's);
    pool, distance and ranking are computed here."""
    from vade_verl.vade.algorithm import thompson_draw

    rng = np.random.default_rng()
    rng.bit_generator.state = sampler_state(run, STEPS)["mopps"]["rng"]
    pool = rng.permutation(N_ROWS)
    alpha, beta = posteriors_by_hand(run, range(1, STEPS + 1))
    draws = thompson_draw(alpha[pool], beta[pool], rng)
    chosen = pool[np.argsort(np.abs(draws - TARGET), kind="stable")[:BATCH]]
    assert sorted(rollout_evidence(run, STEPS + 1)) == sorted(chosen.tolist())


@pytest.mark.e2e
def test_mopps_metrics_reached_verls_logger(run):
    for step, data in step_metrics(run).items():
        evidence = rollout_evidence(run, step)
        assert data["mopps/effective_ratio"] == pytest.approx(np.mean([len(set(s)) > 1 for s in evidence.values()]))
        assert data["mopps/updated_samples"] == BATCH and data["mopps/skipped_rewards"] == 0
        assert data["mopps/candidate_pool"] == min(CANDIDATES * BATCH, N_ROWS)
