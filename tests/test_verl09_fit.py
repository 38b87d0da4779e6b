"""VADE inside verl 0.9.1's real legacy ``RayPPOTrainer.fit`` (``python3 -m vade_verl.verl09.main_ppo``).

Runs where verl 0.9.x is installed (.venv09); skipped elsewhere. verl's own code here: the trainer's
``__init__`` (loader with our sampler, built as ``main_ppo_v0.TaskRunner.run`` builds it), ``fit``
(loop, critic warm-up branch, GRPO advantages, ``_save_checkpoint``, ``_load_checkpoint`` with its
epoch-boundary rule, file logger). Stand-ins: generation + reward (``StubRollout``), the old-log-prob
and actor-update worker calls, the worker checkpoints and weight sync. No Ray.
"""

import importlib.metadata
import logging
import os

import numpy as np
import pytest

if not importlib.metadata.version("verl").startswith("0.9."):
    pytest.skip(f"needs verl 0.9.x, found {importlib.metadata.version('verl')} (run in .venv09)", allow_module_level=True)

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from vade_verl.verl09 import main_ppo  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo import utils as ppo_utils  # noqa: E402
from verl.trainer.ppo.ray_trainer import RayPPOTrainer  # noqa: E402
from verl.trainer.ppo.utils import Role  # noqa: E402
from hand_posteriors import assert_posteriors, hand_posteriors  # noqa: E402
from verl_harness import (  # noqa: E402
    VADE_SAMPLER,
    Crash,
    StubActorWorkers,
    StubCheckpointManager,
    StubResources,
    StubRollout,
    fit_overrides,
    logged_steps,
    write_parquet,
)

CONFIG_DIR = os.path.join(os.path.dirname(main_ppo.__file__), "config")
N, BATCH, ROLLOUT_N = 16, 4, 4  # 4 steps per epoch
ROW_IDS = np.random.default_rng(3).permutation(np.arange(700, 700 + N))
RATES = {int(rid): (0.0, 1.0, 0.5)[k % 3] for k, rid in enumerate(sorted(ROW_IDS))}
L1, L2 = 0.2, 0.999  # VADEConfig's default fast and slow decay


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return write_parquet(str(tmp_path_factory.mktemp("data") / "train.parquet"), ROW_IDS)


def config_for(train_file, run_dir, total_steps, save_freq=-1, extra=()):
    """The config ``python -m vade_verl.verl09.main_ppo`` composes for a GRPO run without critic."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(
            config_name=main_ppo.CONFIG_NAME,
            overrides=[
                f"data.train_files={train_file}",
                f"data.val_files={train_file}",
                f"data.train_batch_size={BATCH}",
                "data.dataloader_num_workers=0",
                "data.filter_overlong_prompts=False",
                f"trainer.default_local_dir={run_dir}",
                *VADE_SAMPLER,
                *fit_overrides(ROLLOUT_N, total_steps, save_freq),
                *extra,
            ],
        )


def correct_of(ids, step):
    """0/1 per rollout row, Bernoulli(RATES), seeded by step (a resumed run draws the same)."""
    p = np.array([RATES[int(i)] for i in ids])
    return (np.random.default_rng(step).random(ids.size) < p).astype(float)


@pytest.fixture
def stub_workers(monkeypatch):
    """verl 0.9.1's worker calls in ``fit`` that need a model: old log-probs and the actor update."""

    def old_log_prob(self, batch):
        shape = batch.batch["responses"].shape
        return DataProto.from_dict(tensors={"old_log_probs": torch.zeros(shape), "entropys": torch.zeros(shape)}), 0.0

    actor_steps = []
    monkeypatch.setattr(RayPPOTrainer, "_compute_old_log_prob", old_log_prob)
    monkeypatch.setattr(
        RayPPOTrainer,
        "_update_actor",
        lambda self, batch: actor_steps.append(self.global_steps) or DataProto(meta_info={"metrics": {"actor/pg_loss": 0.0}}),
    )
    return actor_steps


def run_fit(config, log, monkeypatch, crash_at=None, score_of=None):
    """``VADERayPPOTrainer.fit`` from a fresh trainer (resuming when the folder has a checkpoint); returns (trainer, rollout)."""
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(log))
    dataset = ppo_utils.create_rl_dataset(config.data.train_files, config.data, None, None)
    resources = StubResources(crash_at)
    trainer = main_ppo.VADERayPPOTrainer(
        config=config,
        tokenizer=None,
        role_worker_mapping={Role.ActorRollout: object},
        resource_pool_manager=resources,
        train_dataset=dataset,
        val_dataset=dataset,
        train_sampler=main_ppo.create_rl_sampler(config.data, dataset),  # as main_ppo_v0.TaskRunner.run does
    )
    resources.trainer = trainer
    trainer.actor_rollout_wg = StubActorWorkers()
    trainer.checkpoint_manager = StubCheckpointManager()
    rollout = StubRollout(score_of or (lambda ids, step: {"score": correct_of(ids, step)}))
    trainer.async_rollout_manager = rollout
    if crash_at is None:
        trainer.fit()
    else:
        with pytest.raises(Crash):
            trainer.fit()
    return trainer, rollout


def selections(rollout):
    """{step: that step's prompt ids in loader order} (rows repeat rollout.n times, interleaved)."""
    return {step: ids[::ROLLOUT_N].tolist() for step, ids, _ in rollout.calls}


TOTAL = 8


@pytest.fixture
def reference(train_file, tmp_path, monkeypatch, stub_workers):
    """An uninterrupted 8-step run (two epochs), a checkpoint every 4 steps."""
    trainer, rollout = run_fit(config_for(train_file, tmp_path / "reference", TOTAL, save_freq=4), tmp_path / "ref.jsonl", monkeypatch)
    return selections(rollout), trainer.train_dataloader.sampler.state


def test_resume_from_a_checkpoint_on_an_epoch_boundary_is_exact(train_file, tmp_path, monkeypatch, stub_workers, reference, caplog):
    """verl 0.9.1 does not load data.pt at an epoch boundary (ray_trainer.py:1102-1115); VADE's state is in it."""
    expected, expected_state = reference
    run_dir = tmp_path / "run"
    config = config_for(train_file, run_dir, TOTAL, save_freq=4)
    _, crashed = run_fit(config, tmp_path / "crashed.jsonl", monkeypatch, crash_at=5)  # dies in step 5
    assert sorted(selections(crashed)) == [1, 2, 3, 4, 5]
    with caplog.at_level(logging.INFO, logger="vade_verl.verl09.main_ppo"):
        resumed, rollout = run_fit(config, tmp_path / "resumed.jsonl", monkeypatch)  # from global_step_4
    state = resumed.train_dataloader.sampler.state
    assert (state.num_selections, state.num_updates) == (TOTAL, TOTAL)
    assert selections(rollout) == {step: expected[step] for step in range(5, TOTAL + 1)}
    assert "epoch boundary" in caplog.text  # what we did instead of verl is said
    np.testing.assert_array_equal(state.alpha, expected_state.alpha)
    np.testing.assert_array_equal(state.beta, expected_state.beta)


def test_critic_warmup_feeds_every_step_once(train_file, tmp_path, monkeypatch, stub_workers):
    """``trainer.critic_warmup=3``: verl skips the actor update (and the save) at steps 1-2; VADE is still fed
    each step's rollouts exactly once, as verl 0.7.1's ``fit`` feeds every step, saved steps included."""
    config = config_for(train_file, tmp_path, TOTAL, save_freq=2, extra=["trainer.critic_warmup=3"])
    trainer, rollout = run_fit(config, tmp_path / "log.jsonl", monkeypatch)
    assert stub_workers == list(range(3, TOTAL + 1))  # verl's warm-up: no actor update at steps 1, 2
    state = trainer.train_dataloader.sampler.state
    assert (state.num_selections, state.num_updates) == (TOTAL, TOTAL), "each step's rollouts fed once"
    assert_posteriors(trainer.train_dataloader.sampler, hand_posteriors(ROW_IDS, rollout.calls, L1, L2))
    logged = logged_steps(str(tmp_path / "log.jsonl"))  # verl's file logger: warm-up steps carry vade/* too
    assert [logged[step]["vade/updated_samples"] for step in range(1, TOTAL + 1)] == [BATCH] * TOTAL


def test_critic_warmup_resume_is_exact(train_file, tmp_path, monkeypatch, stub_workers):
    """With warm-up steps fed, a checkpoint after warm-up resumes to the uninterrupted batches and posteriors."""
    extra = ["trainer.critic_warmup=3"]
    ref_trainer, ref = run_fit(config_for(train_file, tmp_path / "ref", TOTAL, 2, extra), tmp_path / "ref.jsonl", monkeypatch)
    ref_state = ref_trainer.train_dataloader.sampler.state
    config = config_for(train_file, tmp_path / "run", TOTAL, 2, extra)
    run_fit(config, tmp_path / "crashed.jsonl", monkeypatch, crash_at=5)
    resumed, rollout = run_fit(config, tmp_path / "resumed.jsonl", monkeypatch)  # from global_step_4
    assert selections(rollout) == {step: selections(ref)[step] for step in range(5, TOTAL + 1)}
    np.testing.assert_array_equal(resumed.train_dataloader.sampler.state.alpha, ref_state.alpha)
    np.testing.assert_array_equal(resumed.train_dataloader.sampler.state.beta, ref_state.beta)


def geo3k_with_missing_acc(ids, step):
    """geo3k's 0.9 x correct + 0.1 x format, with an ``acc`` output (the correctness) that is None on every third row."""
    correct = correct_of(ids, step)
    formatted = (np.random.default_rng(1000 + step).random(ids.size) < 0.7).astype(float)
    acc = np.array([None if k % 3 == 0 else bool(c) for k, c in enumerate(correct)], dtype=object)
    return {"score": 0.9 * correct + 0.1 * formatted, "acc": acc}


def test_a_missing_acc_falls_back_to_that_rows_score(train_file, tmp_path, monkeypatch, stub_workers):
    """``correctness=auto`` reads ``acc``; a row whose ``acc`` is None is judged by its own score (geo3k: > 0.5),
    not dropped as a NaN reward."""
    steps = 4
    trainer, rollout = run_fit(config_for(train_file, tmp_path, steps), tmp_path / "log.jsonl", monkeypatch, score_of=geo3k_with_missing_acc)
    correct_calls = [(step, ids, correct_of(ids, step)) for step, ids, _ in rollout.calls]
    assert_posteriors(trainer.train_dataloader.sampler, hand_posteriors(ROW_IDS, correct_calls, L1, L2))
    logged = logged_steps(str(tmp_path / "log.jsonl"))
    rows = BATCH * ROLLOUT_N
    assert [logged[step]["vade/skipped_rewards"] for step in range(1, steps + 1)] == [0] * steps
    assert [logged[step]["vade/correctness_from_score"] for step in range(1, steps + 1)] == [len(range(0, rows, 3))] * steps


def test_a_changed_batch_size_or_seed_at_resume_is_logged(train_file, tmp_path, monkeypatch, stub_workers, caplog):
    """The checkpoint's generator and posteriors win; the run says which settings it did not take."""
    run_fit(config_for(train_file, tmp_path, 2, save_freq=2, extra=["data.seed=3"]), tmp_path / "first.jsonl", monkeypatch)
    changed = config_for(train_file, tmp_path, 3, save_freq=2, extra=["data.seed=5", "data.train_batch_size=2"])
    with caplog.at_level(logging.WARNING, logger="vade_verl.verl_adapters.curriculum_sampler"):
        run_fit(changed, tmp_path / "resumed.jsonl", monkeypatch)
    assert "data.seed=5 now, 3 in the checkpoint" in caplog.text
    assert f"data.train_batch_size=2 now, {BATCH} in the checkpoint" in caplog.text
