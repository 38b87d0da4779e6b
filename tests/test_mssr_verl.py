"""MSSR through verl 0.7.1's own pieces: registries, dataset factory, loader, compute_advantage, checkpoint."""

import math
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch

from verl import DataProto
from verl.experimental.separation.ray_trainer import SeparateRayPPOTrainer
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.ray_trainer import compute_advantage
from verl.utils.config import omega_conf_to_dataclass

import vade_verl.verl_mssr as verl_mssr
from vade_verl.mssr import adaptive_rho

sys.path.insert(0, os.path.dirname(__file__))
from verl_harness import compose_config, make_train_loader, write_parquet  # noqa: E402

MSSR_OVERRIDES = [
    "data.custom_cls.path=pkg://vade_verl.verl_mssr",
    "data.custom_cls.name=MSSRDataset",
    "algorithm.adv_estimator=mssr",
    "actor_rollout_ref.rollout.n=1",
    "actor_rollout_ref.actor.policy_loss.loss_mode=mssr",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
]
LENGTH = 5
KL_SHIFT = 0.1  # ref_log_prob - old_log_probs on every token -> low-var KL e^0.1 - 1.1


@pytest.fixture
def config(tmp_path):
    train = write_parquet(str(tmp_path / "train.parquet"), [100 + i for i in range(8)])
    return compose_config(train, 4, str(tmp_path / "ckpt"), MSSR_OVERRIDES)


def rollout_step(batch_dict, rewards_of, seed):
    """What ``fit`` holds at ``compute_advantage`` with rollout.n=1: prompts, uid, a (fake) rollout with
    log-probs, ref log-probs and verifiable rewards, then a row shuffle as ``trainer.balance_batch`` does."""
    batch = DataProto.from_single_dict(batch_dict)
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
    batch = batch.repeat(repeat_times=1, interleave=True)
    gen = torch.Generator().manual_seed(seed)
    n = len(batch)
    lengths = torch.randint(1, LENGTH + 1, (n,), generator=gen)
    mask = (torch.arange(LENGTH)[None, :] < lengths[:, None]).long()
    rewards = torch.tensor([rewards_of[int(i)] for i in batch.batch["reward_baselines"][:, 1]], dtype=torch.float32)
    scores = torch.zeros(n, LENGTH)
    scores[torch.arange(n), lengths - 1] = rewards
    old = torch.log(torch.rand(n, LENGTH, generator=gen) * 0.9 + 0.05)
    batch.batch["response_mask"] = mask
    batch.batch["old_log_probs"] = old
    batch.batch["ref_log_prob"] = old + KL_SHIFT
    batch.batch["token_level_scores"] = scores
    batch.batch["token_level_rewards"] = scores.clone()
    batch.reorder(torch.randperm(n, generator=gen))
    return batch


def fit(batch, config):
    """verl's own advantage step of a trainer (``SeparateRayPPOTrainer._fit_compute_advantage``, which keeps the
    step's metrics in ``self.metrics``); the estimator publishes its ``mssr/*`` metrics there."""
    trainer = SeparateRayPPOTrainer.__new__(SeparateRayPPOTrainer)
    trainer.config, trainer.metrics, trainer.timing_raw = config, {}, {}
    trainer.reward_tensor, trainer.reward_extra_infos_dict = batch.batch["token_level_scores"], {}
    batch = trainer._fit_compute_advantage(batch)
    return batch, trainer.metrics


def expected_advantage(r, v):
    v = np.where(np.isnan(v), r.mean(), v)
    d = r - v
    return (d - d.mean()) / (d.std(ddof=1) + 1e-6)


def test_found_by_verls_registries_after_import():
    assert core_algos.get_adv_estimator_fn("mssr") is verl_mssr.compute_mssr_outcome_advantage
    assert core_algos.get_policy_loss_fn("mssr") is verl_mssr.compute_policy_loss_mssr


def test_registered_in_a_fresh_process_by_verl_external_modules():
    code = (
        "import verl\n"
        "from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn\n"
        "print(get_adv_estimator_fn('mssr').__name__, get_policy_loss_fn('mssr').__name__)\n"
    )
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "vade_verl.verl_mssr"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["compute_mssr_outcome_advantage", "compute_policy_loss_mssr"]


def test_two_epochs_through_compute_advantage_and_on_batch_end(config):
    loader = make_train_loader(config)
    dataset = loader.dataset
    assert isinstance(dataset, verl_mssr.MSSRDataset)
    rates = {i: float(i % 2) for i in range(8)}  # even positions fail, odd ones succeed
    kl = math.exp(KL_SHIFT) - 1 - KL_SHIFT
    rho = adaptive_rho(kl, 0.01, 0.875, 0.96)
    step = 0
    for epoch in range(2):
        for batch_dict in loader:
            step += 1
            batch = rollout_step(batch_dict, rates, seed=step)
            column = batch.batch["reward_baselines"].numpy()
            index, v = column[:, 1].astype(np.int64), column[:, 0]
            assert np.all(column[:, 2] == dataset.mssr_token)
            if epoch == 0:
                assert np.isnan(v).all()  # first visit: no baseline yet
            else:
                assert v == pytest.approx(dataset.mssr.values(index))
                assert np.isfinite(v).all()
            batch, metrics = fit(batch, config)
            # the baselines are already updated (before verl would save); rho from the KL of earlier steps
            assert metrics["mssr/rho"] == pytest.approx(rho if step > 1 else 0.96, rel=1e-5)
            assert metrics["mssr/first_visit_rows"] == (4 if epoch == 0 else 0)
            assert metrics["mssr/prompts_tracked"] == min(4 * step, 8)
            r = batch.batch["token_level_scores"].sum(-1).numpy().astype(np.float64)
            adv = batch.batch["advantages"]
            mask = batch.batch["response_mask"].bool()
            assert adv[:, 0].numpy() == pytest.approx(expected_advantage(r, v), rel=1e-4, abs=1e-5)
            assert torch.all(adv[~mask] == 0) and torch.all(adv == adv[:, :1] * mask)
            dataset.on_batch_end(batch)
            assert list(dataset.mssr.kl_history) == pytest.approx([kl] * step, rel=1e-5)
    assert step == 4
    # every prompt: initialised from its epoch-0 reward r (N0 = 8), then one forgetting update with the same r
    r = np.array([rates[i] for i in range(8)])
    assert dataset.mssr.alpha == pytest.approx(8 * r * rho + r, rel=1e-5)
    assert dataset.mssr.beta == pytest.approx(8 * (1 - r) * rho + (1 - r), rel=1e-5)


def test_baselines_survive_verls_checkpoint_file(config, tmp_path):
    loader = make_train_loader(config)
    it = iter(loader)
    batch = rollout_step(next(it), {i: 0.25 * (i % 5) for i in range(8)}, seed=0)
    batch = compute_advantage(batch, adv_estimator="mssr", num_repeat=1, config=config.algorithm)
    path = tmp_path / "data.pt"
    # as RayPPOTrainer._save_checkpoint writes data.pt: after the advantages, before on_batch_end
    torch.save(loader.state_dict(), path)
    loader.dataset.on_batch_end(batch)
    expected_next = next(it)

    resumed = make_train_loader(config)
    resumed.load_state_dict(torch.load(path, weights_only=False))  # as _load_checkpoint
    resumed_it = iter(resumed)  # the loader applies a loaded state when fit starts iterating
    state, saved = resumed.dataset.mssr, loader.dataset.mssr
    # the checkpoint already holds this step's baselines; only the step's KL (seen after the save) is missing
    assert np.array_equal(state.seen, saved.seen) and state.seen.sum() == 4
    assert state.alpha == pytest.approx(saved.alpha) and state.beta == pytest.approx(saved.beta)
    assert list(state.kl_history) == [] and len(saved.kl_history) == 1
    got_next = next(resumed_it)
    assert torch.equal(got_next["reward_baselines"][:, :2].isnan(), expected_next["reward_baselines"][:, :2].isnan())
    assert torch.equal(got_next["reward_baselines"][:, 1], expected_next["reward_baselines"][:, 1])


def test_mssr_policy_loss_shapes_then_runs_vanilla_ppo(config, monkeypatch):
    actor_config = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    loss_fn = core_algos.get_policy_loss_fn("mssr")
    gen = torch.Generator().manual_seed(3)
    log_prob = torch.log(torch.rand(3, 4, generator=gen) * 0.9 + 0.05).requires_grad_()
    adv = torch.tensor([[1.0, 1.0, 1.0, 0.0], [-0.5, -0.5, -0.5, -0.5], [0.05, 0.05, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]])

    def run():
        return loss_fn(old_log_prob=log_prob.detach(), log_prob=log_prob, advantages=adv, response_mask=mask,
                       loss_agg_mode="token-mean", config=actor_config, rollout_is_weights=None)

    # on-policy (ratio 1, no clipping): token-mean loss = -mean over response tokens of A'
    p = log_prob.detach().exp()
    h = -p * log_prob.detach()
    shaped = adv + torch.minimum(0.4 * h, adv.abs() / 2.0)
    loss, metrics = run()
    assert loss.item() == pytest.approx(-(shaped * mask).sum().item() / mask.sum().item(), rel=1e-5)
    assert metrics["actor/mssr_bonus_mean"] == pytest.approx(((shaped - adv) * mask).sum().item() / 9, rel=1e-5)
    loss.backward()
    assert log_prob.grad is not None

    monkeypatch.setenv("VADE_MSSR_ALPHA", "0")  # no shaping: plain PPO on A
    assert run()[0].item() == pytest.approx(-(adv * mask).sum().item() / mask.sum().item(), rel=1e-5)
    monkeypatch.setenv("VADE_MSSR_ENTROPY", "full_vocab")
    with pytest.raises(ValueError, match="gives policy losses no entropy"):
        run()
    monkeypatch.setenv("VADE_MSSR_KAPPA", "0.5")
    with pytest.raises(ValueError, match="VADE_MSSR_"):
        run()


def test_clear_errors(config, monkeypatch):
    with pytest.raises(ValueError, match="written by MSSRDataset"):
        verl_mssr.compute_mssr_outcome_advantage(token_level_rewards=torch.zeros(2, 3), response_mask=torch.ones(2, 3))
    loader = make_train_loader(config)
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())
    with pytest.raises(RuntimeError, match="dataloader_num_workers=0"):
        loader.dataset[0]
    monkeypatch.undo()
    it = iter(loader)
    batch = rollout_step(next(it), {i: 1.0 for i in range(8)}, seed=1)
    with pytest.raises(RuntimeError, match="needs algorithm.adv_estimator=mssr"):
        loader.dataset.on_batch_end(batch)  # no mssr advantages were computed this step
    kl_in_reward = config.algorithm.copy()
    kl_in_reward.use_kl_in_reward = True
    with pytest.raises(ValueError, match="use_kl_in_reward=False"):
        compute_advantage(batch, adv_estimator="mssr", num_repeat=1, config=kl_in_reward)
    stray = batch.batch["reward_baselines"].clone()
    stray[:, 2] = 999
    with pytest.raises(RuntimeError, match="token 999"):
        verl_mssr.compute_mssr_outcome_advantage(token_level_rewards=batch.batch["token_level_rewards"],
                                                 response_mask=batch.batch["response_mask"], reward_baselines=stray)
    batch = compute_advantage(batch, adv_estimator="mssr", num_repeat=1, config=config.algorithm)
    batch.pop(batch_keys=["ref_log_prob"])
    with pytest.raises(KeyError, match="use_kl_loss=True"):
        loader.dataset.on_batch_end(batch)
    bad = compose_config(config.data.train_files, 4, "/tmp/unused", MSSR_OVERRIDES + ["+data.mssr.rho_mn=0.8"])
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['rho_mn'\]"):
        make_train_loader(bad)
