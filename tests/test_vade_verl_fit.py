"""VADESampler inside verl 0.7.1's real ``RayPPOTrainer.fit`` and ``SeparateRayPPOTrainer.fit``.

Only the model, the rollout (generation + reward loop) and the workers are stubbed
(``tests/verl_harness.py``); the trainer's construction, data loader, checkpoint save and load,
GRPO advantages and file logger are verl's own. No Ray.
"""

import logging

import numpy as np
import pytest

from verl.experimental.separation.ray_trainer import SeparateRayPPOTrainer
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
import verl_harness
from hand_posteriors import assert_posteriors, hand_posteriors
from verl_harness import VADE_SAMPLER, compose_config, fit_overrides, logged_steps, write_parquet

N, BATCH, ROLLOUT_N = 24, 4, 4  # 6 batches per epoch
ROW_IDS = np.random.default_rng(2).permutation(np.arange(300, 300 + N))
# A third impossible, a third trivial, a third at 50%.
RATES = {int(rid): (0.0, 1.0, 0.5)[k % 3] for k, rid in enumerate(sorted(ROW_IDS))}
TRAINERS = [RayPPOTrainer, SeparateRayPPOTrainer]


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return write_parquet(str(tmp_path_factory.mktemp("data") / "train.parquet"), ROW_IDS)


correct_of = verl_harness.rate_correctness(RATES)


def correct_steps(calls):
    """[(step, rollout ids, 0/1 correctness)] from the stub's calls, one entry per step (its last call)."""
    by_step = {step: ids for step, ids, _ in calls}
    return [(step, ids, correct_of(ids, step)) for step, ids in by_step.items()]


def binary_scores(ids, step):
    return {"score": correct_of(ids, step)}


def config_for(train_file, run_dir, total_steps, save_freq=-1, extra=()):
    overrides = [*VADE_SAMPLER, *fit_overrides(ROLLOUT_N, total_steps, save_freq), *extra]
    return compose_config(train_file, BATCH, str(run_dir), overrides)


def run_fit(monkeypatch, config, log, score_of=binary_scores, **kwargs):
    """``verl_harness.run_fit`` with this module's Bernoulli(RATES) rewards by default."""
    return verl_harness.run_fit(monkeypatch, config, log, score_of, **kwargs)


def selections(stub):
    """{step: the step's prompt ids in loader order} (rows are repeated rollout.n times, interleaved)."""
    return {step: ids[::ROLLOUT_N].tolist() for step, ids, _ in stub.calls}


def evidence(stub):
    """{row id: (successes, trials)} summed over the stub's steps, from the scores it handed verl."""
    counts = {}
    for _, ids, scores in stub.calls:
        for rid, score in zip(ids.tolist(), scores.tolist()):
            s, t = counts.get(rid, (0.0, 0))
            counts[rid] = (s + score, t + 1)
    return counts


TOTAL = 8


@pytest.fixture(scope="module")
def reference(train_file, tmp_path_factory):
    """An uninterrupted run (RayPPOTrainer.fit, a checkpoint every 3 steps)."""
    monkeypatch = pytest.MonkeyPatch()
    run_dir = tmp_path_factory.mktemp("reference")
    trainer, stub = run_fit(monkeypatch, config_for(train_file, run_dir, TOTAL, save_freq=3), run_dir / "log.jsonl")
    monkeypatch.undo()
    # each step's evidence counted once, saved steps (3, 6, 8: applied at the save) included
    assert_posteriors(trainer.train_dataloader.sampler, hand_posteriors(ROW_IDS, correct_steps(stub.calls)))
    return selections(stub), trainer.train_dataloader.sampler.state


@pytest.mark.parametrize(
    "trainer_class, crash_at, folder",
    [
        (RayPPOTrainer, 3, "fresh"),
        (RayPPOTrainer, 6, "fresh"),  # the last batch of an epoch
        (RayPPOTrainer, 3, "used by an earlier run"),
        (SeparateRayPPOTrainer, 3, "fresh"),
    ],
)
def test_a_stop_between_the_save_and_the_update_resumes_exactly(
    train_file, tmp_path, monkeypatch, reference, trainer_class, crash_at, folder
):
    expected, expected_state = reference
    run_dir = tmp_path / "run"
    if folder != "fresh":  # an earlier run (other seed, no checkpoints) left update records in the folder
        run_fit(monkeypatch, config_for(train_file, run_dir, TOTAL, extra=["data.seed=7"]), tmp_path / "earlier.jsonl")
        assert (run_dir / "vade_sampler" / f"update_{crash_at:08d}.npz").exists()
    config = config_for(train_file, run_dir, TOTAL, save_freq=3)
    _, crashed = run_fit(monkeypatch, config, tmp_path / "crashed.jsonl", trainer_class=trainer_class, crash_at=crash_at)
    assert (run_dir / f"global_step_{crash_at}" / "data.pt").exists()
    assert selections(crashed) == {step: expected[step] for step in range(1, crash_at + 1)}

    resumed, stub = run_fit(monkeypatch, config, tmp_path / "resumed.jsonl", trainer_class=trainer_class)
    assert selections(stub) == {step: expected[step] for step in range(crash_at + 1, TOTAL + 1)}
    state = resumed.train_dataloader.sampler.state
    np.testing.assert_array_equal(state.alpha, expected_state.alpha)
    np.testing.assert_array_equal(state.beta, expected_state.beta)


@pytest.mark.parametrize("trainer_class", TRAINERS)
def test_vade_metrics_reach_verls_logger_every_step(train_file, tmp_path, monkeypatch, trainer_class):
    steps = 4
    log = tmp_path / "log.jsonl"
    _, stub = run_fit(monkeypatch, config_for(train_file, tmp_path, steps), log, trainer_class=trainer_class)
    logged = logged_steps(str(log))
    assert sorted(logged) == list(range(1, steps + 1))
    seen = set()
    for step, ids, scores in stub.calls:
        metrics = logged[step]
        groups = scores.reshape(BATCH, ROLLOUT_N)
        seen.update(ids.tolist())
        assert metrics["vade/effective_ratio"] == pytest.approx(np.mean(groups.min(1) < groups.max(1)))
        assert metrics["vade/never_seen"] == N - len(seen)
        assert metrics["vade/updated_samples"] == BATCH
        assert metrics["vade/skipped_rewards"] == 0


def test_rewards_are_read_as_verls_grpo_reads_them(train_file, tmp_path, monkeypatch):
    """The score sits on a response_mask-0 token (an interaction-terminated turn): GRPO still sums it."""
    trainer, stub = run_fit(monkeypatch, config_for(train_file, tmp_path, 1), tmp_path / "log.jsonl", mask_score_token=True)
    sampler = trainer.train_dataloader.sampler
    counts = evidence(stub)
    assert sum(s for s, _ in counts.values()) > 0
    for rid, (successes, trials) in counts.items():
        (position,) = sampler.positions_of([rid])
        assert (sampler.state.alpha[position], sampler.state.beta[position]) == (successes, trials - successes)


def geo3k_scores(ids, step):
    """verl's geo3k score 0.9 x correct + 0.1 x format, as the naive reward manager passes it (acc = score)."""
    formatted = (np.random.default_rng(1000 + step).random(ids.size) < 0.7).astype(float)
    score = 0.9 * correct_of(ids, step) + 0.1 * formatted
    return {"score": score, "acc": score}


def geo3k_scores_without_extras(ids, step):
    return {"score": geo3k_scores(ids, step)["score"]}


def dapo_scores(ids, step):
    """math_dapo's +1/-1 with DAPO's overlong penalty on some rows; its ``acc`` output is the correctness."""
    correct = correct_of(ids, step)
    penalty = np.where(np.arange(ids.size) % 3 == 0, -0.25, 0.0)
    return {"score": 2 * correct - 1 + penalty, "acc": correct.astype(bool)}


@pytest.mark.parametrize("score_of", [geo3k_scores, geo3k_scores_without_extras, dapo_scores])
def test_the_default_counts_correct_answers_of_verls_scorers(train_file, tmp_path, monkeypatch, score_of):
    config = config_for(train_file, tmp_path, 3, save_freq=2)  # step 2's update is applied at its save
    trainer, stub = run_fit(monkeypatch, config, tmp_path / "log.jsonl", score_of=score_of)
    assert_posteriors(trainer.train_dataloader.sampler, hand_posteriors(ROW_IDS, correct_steps(stub.calls)))


def test_a_reward_auto_cannot_read_fails_at_the_first_update_naming_the_option(train_file, tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    config = config_for(train_file, tmp_path, 3, save_freq=2)
    with pytest.raises(ValueError, match=r"data\.sampler\.vade\.correctness=auto .*\[0\.75\]"):
        run_fit(monkeypatch, config, log, score_of=lambda ids, step: {"score": np.full(ids.size, 0.75)})
    assert logged_steps(str(log)) == {}  # step 1 did not complete
    assert not (tmp_path / "global_step_2").exists()


def test_without_a_trainer_step_the_metrics_warn_once_and_are_kept(train_file, tmp_path, caplog):
    from vade_verl.verl_adapters.batch import build_rollout_batch
    from verl_harness import make_train_loader

    loader = make_train_loader(compose_config(train_file, BATCH, str(tmp_path), VADE_SAMPLER))
    batches = iter(loader)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            batch_dict = next(batches)
            ids = np.array([info["index"] for info in batch_dict["extra_info"]])
            loader.sampler.update(build_rollout_batch(batch_dict, ROLLOUT_N, correct_of(np.repeat(ids, ROLLOUT_N), 0)))
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "cannot be published" in r.getMessage()]
    assert len(warnings) == 1 and "VADESampler.last_metrics" in warnings[0].getMessage()
    assert loader.sampler.last_metrics["vade/updated_samples"] == BATCH
