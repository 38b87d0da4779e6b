"""MSSR through verl 0.7.1's own pieces: registries, dataset factory, loaders, compute_advantage inside a
``fit`` step, verl's validation dump (warm start) and checkpoint file."""

import logging
import math
import os
import subprocess
import sys
import types
import uuid

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from verl import DataProto
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.ray_trainer import RayPPOTrainer, compute_advantage

import vade_verl.mssr.verl_plugin as verl_mssr
from vade_verl.mssr.advantage import continuous_rho

sys.path.insert(0, os.path.dirname(__file__))
from verl_harness import (  # noqa: E402
    StubActorWorkers,
    StubRollout,
    compose_config,
    fit_overrides,
    logged_steps,
    make_fit_trainer,
    make_train_loader,
    write_parquet,
)

MSSR_OVERRIDES = [
    "data.custom_cls.path=pkg://vade_verl.mssr.verl_plugin",
    "data.custom_cls.name=MSSRDataset",
    "algorithm.adv_estimator=mssr",
    "actor_rollout_ref.rollout.n=1",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
]
FIRST_VISIT = ["+data.mssr.init=first_visit"]
ROWS, BATCH, LENGTH, VOCAB = 8, 4, 5, 6
N0 = 8.0
KL_SHIFT = 0.1  # ref_log_prob - old_log_probs on every token -> low-var KL e^0.1 - 1.1 on every token
STEP_KL = math.exp(KL_SHIFT) - 1 - KL_SHIFT


def make_config(tmp_path, *extra):
    train = write_parquet(str(tmp_path / "train.parquet"), [100 + i for i in range(ROWS)])
    frame = pd.read_parquet(train)  # distinct ground truths, so the warm-start order check can fail
    frame["reward_model"] = [{"style": "rule", "ground_truth": f"answer {i}"} for i in range(ROWS)]
    frame.to_parquet(train)
    return compose_config(train, BATCH, str(tmp_path / "ckpt"), MSSR_OVERRIDES + list(extra))


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, *FIRST_VISIT)


def rollout_step(batch_dict, reward_of, seed):
    """What ``fit`` holds at ``compute_advantage`` with rollout.n=1: prompts, uid, a (fake) rollout with
    log-probs, ref log-probs and rewards, then a row shuffle as ``trainer.balance_batch`` does; and the
    old-log-prob pass's full-vocabulary ``entropys``, computed here from random logits with scipy."""
    batch = DataProto.from_single_dict(batch_dict)
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
    gen = torch.Generator().manual_seed(seed)
    n = len(batch)
    lengths = torch.randint(1, LENGTH + 1, (n,), generator=gen)
    mask = (torch.arange(LENGTH)[None, :] < lengths[:, None]).long()
    rewards = torch.tensor([reward_of(int(i)) for i in batch.batch["reward_baselines"][:, 0]], dtype=torch.float32)
    scores = torch.zeros(n, LENGTH)
    scores[torch.arange(n), lengths - 1] = rewards
    old = torch.log(torch.rand(n, LENGTH, generator=gen) * 0.9 + 0.05)
    logits = torch.randn(n, LENGTH, VOCAB, generator=gen) * 2
    entropys = torch.tensor(scipy_entropy(torch.softmax(logits, -1).numpy(), axis=-1), dtype=torch.float32)
    batch.batch["response_mask"] = mask
    batch.batch["old_log_probs"] = old
    batch.batch["ref_log_prob"] = old + KL_SHIFT
    batch.batch["token_level_scores"] = scores
    batch.batch["token_level_rewards"] = scores.clone()
    order = torch.randperm(n, generator=gen)
    batch.reorder(order)
    return batch, entropys[order]


class AdvantageStep(RayPPOTrainer):
    """A verl trainer whose ``fit`` frame holds, at ``compute_advantage``, the locals ``RayPPOTrainer.fit``
    holds there (``batch``, the old-log-prob pass's ``entropys``, ``metrics``); the real ``fit`` runs in
    ``test_mssr_through_verls_real_fit``."""

    def fit(self, batch, entropys, config):
        metrics = {}
        batch = compute_advantage(batch, adv_estimator="mssr", num_repeat=1, config=config.algorithm)
        return batch, metrics


def fit(batch, entropys, config):
    return AdvantageStep.__new__(AdvantageStep).fit(batch, entropys, config)


def normalised(r, v):
    v = np.where(np.isnan(v), r.mean(), v)
    d = r - v
    return (d - d.mean()) / (d.std(ddof=1) + 1e-6)


def shaped(adv, entropy, mask, alpha=0.4, kappa=2.0):
    """A' = A + min(alpha H, |A| / kappa) on response tokens, from per-row A (numpy, independent of the package)."""
    a = np.asarray(adv)[:, None] * mask
    return (a + np.minimum(alpha * entropy, np.abs(a) / kappa)) * mask


def positions_of(batch):
    return batch.batch["reward_baselines"][:, 0].long().numpy()


def test_found_by_verls_registries_after_import():
    assert core_algos.get_adv_estimator_fn("mssr") is verl_mssr.compute_mssr_outcome_advantage
    # shaping is in the estimator: the loss is verl's vanilla PPO, also under the name mssr
    assert core_algos.get_policy_loss_fn("mssr") is core_algos.compute_policy_loss_vanilla


def test_registered_in_a_fresh_process_by_verl_external_modules():
    code = (
        "import verl\n"
        "from verl.trainer.ppo.core_algos import get_adv_estimator_fn\n"
        "print(get_adv_estimator_fn('mssr').__name__)\n"
    )
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "vade_verl.mssr.verl_plugin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "compute_mssr_outcome_advantage"


# geo3k-style scores (0.9 x accuracy + 0.1 x format): correct when 0.9 or 1.0; they change between epochs
EPOCH_SCORES = [
    [0.0, 1.0, 0.1, 0.9, 0.9, 0.0, 1.0, 0.1],
    [0.9, 0.1, 1.0, 0.0, 0.1, 0.9, 0.0, 1.0],
]


def test_two_epochs_through_compute_advantage_inside_fit(config):
    loader = make_train_loader(config)
    dataset = loader.dataset
    assert isinstance(dataset, verl_mssr.MSSRDataset)
    rho = continuous_rho(STEP_KL, 0.01, 0.875, 0.96)  # this step's KL enters the window before its rho
    correct = [np.array(scores) > 0.5 for scores in EPOCH_SCORES]
    step = 0
    for epoch in range(2):
        for batch_dict in loader:
            step += 1
            batch, entropys = rollout_step(batch_dict, lambda i: EPOCH_SCORES[epoch][i], seed=step)
            pos = positions_of(batch)
            assert np.all(batch.batch["reward_baselines"][:, 1].numpy() == dataset.mssr_token)
            # epoch 0: first visits (batch-mean reward as baseline); epoch 1: v = epoch-0 correctness (N0 init)
            v = np.full(BATCH, np.nan) if epoch == 0 else correct[0][pos].astype(float)
            batch, metrics = fit(batch, entropys, config)
            r = (np.array(EPOCH_SCORES[epoch])[pos] > 0.5).astype(float)  # A = c - v (advantage_reward=correctness)
            mask = batch.batch["response_mask"].numpy()
            expected = shaped(normalised(r, v), entropys.numpy(), mask)
            assert batch.batch["advantages"].numpy() == pytest.approx(expected, rel=1e-4, abs=1e-5)
            assert torch.equal(batch.batch["returns"], batch.batch["advantages"])
            if epoch == 1:  # rewards moved away from the baselines, both ways: a sign error cannot pass
                d = r - v
                assert (d > 0.05).any() and (d < -0.05).any()
                assert np.sign(batch.batch["advantages"][:, 0].numpy()) == pytest.approx(np.sign(normalised(r, v)))
            assert metrics["mssr/rho"] == pytest.approx(rho, rel=1e-5)
            assert metrics["mssr/kl"] == pytest.approx(STEP_KL, rel=1e-5)
            assert metrics["mssr/first_visit_rows"] == (BATCH if epoch == 0 else 0)
            assert metrics["mssr/prompts_tracked"] == min(BATCH * step, ROWS)
            assert metrics["mssr/correct_mean"] == pytest.approx(correct[epoch][pos].mean())
            assert metrics["mssr/entropy_mean"] == pytest.approx((entropys.numpy() * mask).sum() / mask.sum(), rel=1e-5)
            dataset.on_batch_end(batch)
            assert list(dataset.mssr.kl_history) == pytest.approx([STEP_KL] * step, rel=1e-5)
    assert step == 4
    # every prompt: initialised from its epoch-0 correctness c0 (N0 = 8), then one forgetting update with c1
    c0, c1 = correct[0].astype(float), correct[1].astype(float)
    assert dataset.mssr.alpha == pytest.approx(N0 * c0 * rho + c1, rel=1e-5)
    assert dataset.mssr.beta == pytest.approx(N0 * (1 - c0) * rho + (1 - c1), rel=1e-5)


def row_entropies(ids, length):
    """Full-vocabulary entropy per (row, token) of logits fixed by the row id, computed with scipy."""
    rows = []
    for rid in ids:
        logits = torch.as_tensor(np.random.default_rng(int(rid)).normal(size=(length, VOCAB)) * 2)
        rows.append(scipy_entropy(torch.softmax(logits, -1).numpy(), axis=-1))
    return np.array(rows, dtype=np.float32)


class EntropyActorWorkers(StubActorWorkers):
    """The stub actor's old-log-prob pass, returning ``row_entropies`` as its ``entropys``."""

    def compute_log_prob(self, batch):
        out = super().compute_log_prob(batch)
        ids = [info["index"] for info in batch.non_tensor_batch["extra_info"]]
        out.batch["entropys"] = torch.as_tensor(row_entropies(ids, out.batch["entropys"].shape[1]))
        return out


def test_mssr_through_verls_real_fit(tmp_path, monkeypatch):
    """verl 0.7.1's own RayPPOTrainer.fit (model, rollout and workers stubbed; balance_batch reorders rows):
    the estimator takes `entropys` from the real fit frame, its metrics reach verl's file logger, the
    logged advantages are the hand-computed shaped ones, and the dataset ends with the hand-computed Betas."""
    train = make_config(tmp_path).data.train_files
    overrides = [*fit_overrides(1, total_steps=4, save_freq=2), *MSSR_OVERRIDES, *FIRST_VISIT, "+data.mssr.rho=0.9"]
    config = compose_config(train, BATCH, str(tmp_path / "run"), overrides)
    log = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(log))
    stub = StubRollout(lambda ids, step: {"score": np.array(EPOCH_SCORES[(step - 1) // 2])[ids - 100]})
    trainer = make_fit_trainer(config, stub)
    trainer.actor_rollout_wg = EntropyActorWorkers()
    trainer.fit()
    logged = logged_steps(str(log))
    correct = [np.array(scores) > 0.5 for scores in EPOCH_SCORES]
    for step, ids, scores in stub.calls:
        pos = ids - 100
        epoch = (step - 1) // 2
        v = np.full(BATCH, np.nan) if epoch == 0 else correct[0][pos].astype(float)
        lengths = 2 + (ids * 7 + np.arange(BATCH)) % (stub.response_length - 1)  # as StubRollout lays them out
        mask = (np.arange(stub.response_length)[None, :] < lengths[:, None]).astype(float)
        entropy = row_entropies(ids, stub.response_length)
        adv = shaped(normalised((scores > 0.5).astype(np.float64), v), entropy, mask)[mask > 0]
        m = logged[step]
        assert (m["critic/advantages/mean"], m["critic/advantages/max"], m["critic/advantages/min"]) == pytest.approx(
            (adv.mean(), adv.max(), adv.min()), rel=1e-4, abs=1e-5), step
        assert m["mssr/entropy_mean"] == pytest.approx((entropy * mask).sum() / mask.sum(), rel=1e-5)
        assert m["mssr/entropy_mean"] == pytest.approx(m["actor/entropy"], rel=1e-5)  # verl's mean of the same tensor
        assert m["mssr/rho"] == 0.9 and m["mssr/first_visit_rows"] == (BATCH if epoch == 0 else 0)
    state = trainer.train_dataset.mssr
    c0, c1 = correct[0].astype(float), correct[1].astype(float)
    assert state.alpha == pytest.approx(0.9 * N0 * c0 + c1) and state.beta == pytest.approx(0.9 * N0 * (1 - c0) + 1 - c1)
    saved = torch.load(tmp_path / "run" / "global_step_4" / "data.pt", weights_only=False)["dataset_state"]["mssr"]
    assert saved["alpha"] == pytest.approx(state.alpha)  # the last step's update is in its checkpoint


def test_sampled_entropy_and_authors_rho_options(tmp_path):
    config = make_config(tmp_path, *FIRST_VISIT, "+data.mssr.entropy=sampled", "+data.mssr.rho_schedule=authors",
                         "+data.mssr.alpha=0.3", "+data.mssr.kappa=4")
    loader = make_train_loader(config)
    batch, entropys = rollout_step(next(iter(loader)), lambda i: EPOCH_SCORES[0][i], seed=5)
    p = batch.batch["old_log_probs"].exp().numpy()
    sampled = -p * np.log(p)  # the authors' H: -p log p of the rollout policy's sampled token
    batch, metrics = fit(batch, torch.full_like(entropys, 1e6), config)  # verl's entropys must not be used
    r = (np.array(EPOCH_SCORES[0])[positions_of(batch)] > 0.5).astype(float)  # A = c - v
    mask = batch.batch["response_mask"].numpy()
    expected = shaped(normalised(r, np.full(BATCH, np.nan)), sampled, mask, alpha=0.3, kappa=4.0)
    assert batch.batch["advantages"].numpy() == pytest.approx(expected, rel=1e-4, abs=1e-5)
    # the authors' rule at KL 0.00517 < target 0.01: 0.875 + (0.00517 / 0.01) * 0.085
    assert metrics["mssr/rho"] == pytest.approx(0.875 + STEP_KL / 0.01 * 0.085, rel=1e-5)


def test_mvsr_with_fixed_rho_needs_no_fit_step(tmp_path):
    config = make_config(tmp_path, *FIRST_VISIT, "+data.mssr.alpha=0", "+data.mssr.rho=0.9")
    loader = make_train_loader(config)
    batch, _ = rollout_step(next(iter(loader)), lambda i: EPOCH_SCORES[0][i], seed=2)
    batch = compute_advantage(batch, adv_estimator="mssr", num_repeat=1, config=config.algorithm)  # no fit frame
    r = (np.array(EPOCH_SCORES[0])[positions_of(batch)] > 0.5).astype(float)  # A = c - v
    mask = batch.batch["response_mask"].numpy()
    assert batch.batch["advantages"].numpy() == pytest.approx(normalised(r, np.full(BATCH, np.nan))[:, None] * mask,
                                                             rel=1e-4, abs=1e-5)
    assert loader.dataset.mssr.last_rho == 0.9


def dump_validation(path, gts, scores):
    """verl's own RayPPOTrainer._dump_generations writes the file, as _validate does at step 0."""
    trainer = types.SimpleNamespace(global_steps=0)
    n = len(scores)
    RayPPOTrainer._dump_generations(trainer, inputs=["q"] * n, outputs=["a"] * n, gts=gts, scores=scores,
                                    reward_extra_infos_dict={"reward": scores}, dump_path=str(path))
    return str(path / "0.jsonl")


def test_validation_loader_yields_rows_in_dataset_order(config):
    trainer = RayPPOTrainer.__new__(RayPPOTrainer)  # the dump is read by position: verl's val loader keeps order
    config.data.val_batch_size = 3
    trainer.config, trainer.tokenizer, trainer.processor = config, None, None
    trainer._create_dataloader(None, None, None, None)
    positions = np.concatenate([b["reward_baselines"][:, 0].numpy() for b in trainer.val_dataloader])
    assert positions.tolist() == list(range(ROWS))


def test_warm_start_from_verls_validation_dump(tmp_path):
    # two rollouts per prompt (val_kwargs.n=2, interleaved); geo3k scores; one NaN score is skipped
    scores = [1.0, 0.9, 0.0, 0.1, 0.9, 0.0, 0.1, 0.1, 1.0, 1.0, 0.0, 0.9, float("nan"), 0.0, 0.9, 0.9]
    gts = [f"answer {i // 2}" for i in range(2 * ROWS)]
    dump = dump_validation(tmp_path / "warm", gts, scores)
    config = make_config(tmp_path, f"+data.mssr.warm_start_file={dump}", "+data.mssr.rho=0.9", "+data.mssr.alpha=0")
    loader = make_train_loader(config)
    dataset = loader.dataset
    assert not dataset.mssr.seen.any()  # read at the first step, by the training dataset only
    batch, entropys = rollout_step(next(iter(loader)), lambda i: EPOCH_SCORES[0][i], seed=1)
    batch, metrics = fit(batch, entropys, config)
    v0 = np.array([1.0, 0.0, 0.5, 0.0, 1.0, 0.5, 0.0, 1.0])  # mean correctness of each prompt's two rollouts
    assert metrics["mssr/warm_start_prompts"] == ROWS and metrics["mssr/warm_start_skipped_rollouts"] == 1
    assert metrics["mssr/first_visit_rows"] == 0
    pos = positions_of(batch)
    r = (np.array(EPOCH_SCORES[0])[pos] > 0.5).astype(float)  # A = c - v
    mask = batch.batch["response_mask"].numpy()
    assert batch.batch["advantages"].numpy() == pytest.approx(normalised(r, v0[pos])[:, None] * mask, rel=1e-4, abs=1e-5)
    c = (r > 0.5).astype(float)
    others = np.setdiff1d(np.arange(ROWS), pos)
    assert dataset.mssr.alpha[pos] == pytest.approx(0.9 * N0 * v0[pos] + c)
    assert dataset.mssr.alpha[others] == pytest.approx(N0 * v0[others]) and dataset.mssr.seen.all()

    # a checkpoint holds the warm-started state; a resumed run does not read the file again
    saved = loader.state_dict()
    os.remove(dump)
    resumed = make_train_loader(config)
    resumed.load_state_dict(saved)
    iter(resumed)
    assert resumed.dataset.mssr.alpha == pytest.approx(dataset.mssr.alpha)
    assert resumed.dataset.begin_step(np.arange(ROWS))[1] == {}


def test_warm_start_refuses_a_dump_of_other_rows(tmp_path):
    gts = [f"answer {i}" for i in range(ROWS)]
    shuffled = dump_validation(tmp_path / "shuffled", gts[1:] + gts[:1], [1.0] * ROWS)
    short = dump_validation(tmp_path / "short", gts[:-1], [1.0] * (ROWS - 1))
    odd = dump_validation(tmp_path / "odd", gts, [0.5] * ROWS)
    for path, error, match in [
        (shuffled, ValueError, r"line 1 has ground truth 'answer 1' but training row 0 has 'answer 0'"),
        (short, ValueError, "7 rollouts for a training set of 8 rows"),
        (odd, ValueError, r"data.mssr.correctness=auto .* rewards \[0.5\]"),
        (str(tmp_path / "missing.jsonl"), FileNotFoundError, "run the warm-start pass first"),
    ]:
        config = make_config(tmp_path, f"+data.mssr.warm_start_file={path}")
        loader = make_train_loader(config)
        batch, entropys = rollout_step(next(iter(loader)), lambda i: 1.0, seed=1)
        with pytest.raises(error, match=match):
            fit(batch, entropys, config)
    with pytest.raises(ValueError, match=r"init=warm_start .* needs \+data.mssr.warm_start_file"):
        make_train_loader(make_config(tmp_path))


def test_baselines_and_kl_window_survive_verls_checkpoint_file(config, tmp_path):
    loader = make_train_loader(config)
    it = iter(loader)
    batch, entropys = rollout_step(next(it), lambda i: EPOCH_SCORES[0][i], seed=0)
    batch, _ = fit(batch, entropys, config)
    path = tmp_path / "data.pt"
    # as RayPPOTrainer._save_checkpoint writes data.pt: after the advantages, before on_batch_end
    torch.save(loader.state_dict(), path)
    loader.dataset.on_batch_end(batch)
    expected_next = next(it)

    resumed = make_train_loader(config)
    resumed.load_state_dict(torch.load(path, weights_only=False))  # as _load_checkpoint
    resumed_it = iter(resumed)  # the loader applies a loaded state when fit starts iterating
    state, saved = resumed.dataset.mssr, loader.dataset.mssr
    assert np.array_equal(state.seen, saved.seen) and state.seen.sum() == BATCH
    assert state.alpha == pytest.approx(saved.alpha) and state.beta == pytest.approx(saved.beta)
    assert list(state.kl_history) == list(saved.kl_history)  # step k's KL is in the save too: exact resume
    assert list(saved.kl_history) == pytest.approx([STEP_KL], rel=1e-5)
    assert torch.equal(next(resumed_it)["reward_baselines"][:, 0], expected_next["reward_baselines"][:, 0])


def test_rewards_outside_the_auto_set_and_the_correctness_option(tmp_path):
    loader = make_train_loader(make_config(tmp_path, *FIRST_VISIT))
    batch, entropys = rollout_step(next(iter(loader)), lambda i: 0.5, seed=3)
    with pytest.raises(ValueError, match=r"data.mssr.correctness=auto"):
        fit(batch, entropys, make_config(tmp_path, *FIRST_VISIT))
    config = make_config(tmp_path, *FIRST_VISIT, "+data.mssr.correctness=0.4")  # threshold: 0.5 is correct
    loader = make_train_loader(config)
    batch, entropys = rollout_step(next(iter(loader)), lambda i: [-1.0, 0.5, 2.0, 0.3][i % 4], seed=3)
    batch, metrics = fit(batch, entropys, config)  # a reward outside [0, 1] the rule can read is no crash
    c = np.array([0.0, 1.0, 1.0, 0.0])[positions_of(batch) % 4]
    assert loader.dataset.mssr.alpha[positions_of(batch)] == pytest.approx(N0 * c)
    batch, entropys = rollout_step(next(iter(loader)), lambda i: float("nan"), seed=4)
    with pytest.raises(ValueError, match="non-finite reward"):
        fit(batch, entropys, config)


def test_clear_errors(config, monkeypatch, caplog):
    with pytest.raises(ValueError, match="written by MSSRDataset"):
        verl_mssr.compute_mssr_outcome_advantage(token_level_rewards=torch.zeros(2, 3), response_mask=torch.ones(2, 3))
    loader = make_train_loader(config)
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())
    with pytest.raises(RuntimeError, match="dataloader_num_workers=0"):
        loader.dataset[0]
    monkeypatch.undo()
    it = iter(loader)
    batch, entropys = rollout_step(next(it), lambda i: 1.0, seed=1)
    with pytest.raises(RuntimeError, match="needs algorithm.adv_estimator=mssr"):
        loader.dataset.on_batch_end(batch)  # no mssr advantages were computed this step
    kl_in_reward = config.algorithm.copy()
    kl_in_reward.use_kl_in_reward = True
    with pytest.raises(ValueError, match="use_kl_in_reward=False"):
        compute_advantage(batch, adv_estimator="mssr", num_repeat=1, config=kl_in_reward)
    stray = batch.batch["reward_baselines"].clone()
    stray[:, 1] = 999
    with pytest.raises(RuntimeError, match="token 999"):
        verl_mssr.compute_mssr_outcome_advantage(token_level_rewards=batch.batch["token_level_rewards"],
                                                 response_mask=batch.batch["response_mask"], reward_baselines=stray)
    with pytest.raises(RuntimeError, match="found no trainer step holding this batch"):
        compute_advantage(batch, adv_estimator="mssr", num_repeat=1, config=config.algorithm)
    with pytest.raises(KeyError, match="rollout-correction bypass mode"):
        fit(batch, None, config)
    batch.pop(batch_keys=["ref_log_prob"])
    with pytest.raises(KeyError, match="use_kl_loss=True"):
        fit(batch, entropys, config)
    bad = compose_config(config.data.train_files, BATCH, "/tmp/unused", MSSR_OVERRIDES + ["+data.mssr.rho_mn=0.8"])
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['rho_mn'\]"):
        make_train_loader(bad)
    bad = compose_config(config.data.train_files, BATCH, "/tmp/unused", MSSR_OVERRIDES + ["+data.mssr.kappa=1"])
    with pytest.raises(ValueError, match="data.mssr: MSSR shaping kappa must be > 1"):
        make_train_loader(bad)
    monkeypatch.setenv("VADE_MSSR_ALPHA", "0")
    caplog.set_level(logging.WARNING, logger=verl_mssr.__name__)  # other tests' imports may raise handler levels
    make_train_loader(config)
    assert "MSSR ignores ['VADE_MSSR_ALPHA']" in caplog.text
