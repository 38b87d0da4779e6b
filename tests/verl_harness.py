"""verl 0.7.1's real pieces for tests, from a composed ``ppo_trainer`` config on a small text parquet.

* ``make_train_loader``: the train dataloader from ``RayPPOTrainer._create_dataloader`` itself (which
  calls verl's ``create_rl_dataset`` and ``create_rl_sampler``).
* ``make_fit_trainer``: a ``RayPPOTrainer`` (or subclass) built by its own ``__init__``, whose real
  ``fit`` runs with only the model, the rollout + reward loop (``StubRollout``) and the workers
  (``StubActorWorkers``, ``StubCheckpointManager``, ``StubResources``) stubbed: no Ray.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

import verl
from verl.trainer.ppo.ray_trainer import RayPPOTrainer

VERL_CONFIG_DIR = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
VADE_SAMPLER = ["data.sampler.class_path=pkg://vade_verl.vade.sampler", "data.sampler.class_name=VADESampler"]
MOPPS_SAMPLER = ["data.sampler.class_path=pkg://vade_verl.mopps.sampler", "data.sampler.class_name=MoPPSSampler"]
GRESO_SAMPLER = ["data.sampler.class_path=pkg://vade_verl.greso.sampler", "data.sampler.class_name=GRESOSampler"]


def write_parquet(path: str, row_ids) -> str:
    """A verl-format parquet whose row i has ``extra_info.index == row_ids[i]``."""
    rows = [
        {
            "data_source": "toy",
            "prompt": [{"role": "user", "content": f"question {rid}"}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": "1"},
            "extra_info": {"index": int(rid), "split": "train"},
        }
        for rid in row_ids
    ]
    pd.DataFrame(rows).to_parquet(path)
    return path


def compose_config(train_file: str, batch_size: int, ckpt_dir: str, overrides=()):
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        return compose(
            config_name="ppo_trainer",
            overrides=[
                f"data.train_files={train_file}",
                f"data.val_files={train_file}",
                f"data.train_batch_size={batch_size}",
                "data.dataloader_num_workers=0",
                "data.filter_overlong_prompts=False",
                f"trainer.default_local_dir={ckpt_dir}",
                *overrides,
            ],
        )


def verl09_overrides(train_file: str, batch_size: int, rollout_n: int, ckpt_dir: str, model_path: str) -> list:
    """What a verl 0.9 entry point's config needs for a small GRPO run on one (stand-in) GPU."""
    return [
        f"data.train_files={train_file}",
        f"data.val_files={train_file}",
        f"data.train_batch_size={batch_size}",
        "data.dataloader_num_workers=0",
        "data.filter_overlong_prompts=False",
        f"actor_rollout_ref.model.path={model_path}",
        "algorithm.adv_estimator=grpo",
        f"actor_rollout_ref.rollout.n={rollout_n}",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
        "trainer.n_gpus_per_node=1",
        f"trainer.default_local_dir={ckpt_dir}",
    ]


def make_train_loader(config):
    """verl's own ``StatefulDataLoader`` (and sampler) for ``config``, built as the trainer does."""
    trainer = RayPPOTrainer.__new__(RayPPOTrainer)
    trainer.config = config
    trainer.tokenizer = None
    trainer.processor = None
    trainer._create_dataloader(None, None, None, None)
    return trainer.train_dataloader


def bernoulli_rewards(row_ids: np.ndarray, rates: dict, rollout_n: int, seed: int) -> np.ndarray:
    """One 0/1 reward per rollout (rows repeated ``rollout_n`` times, interleaved) from ``rates[id]``."""
    rng = np.random.default_rng(seed)
    p = np.repeat([rates[int(i)] for i in row_ids], rollout_n)
    return (rng.random(p.size) < p).astype(float)


# ---------------------------------------------------------------------------------------------
# verl 0.7.1's real RayPPOTrainer.fit with the model, the rollout and the workers stubbed
# ---------------------------------------------------------------------------------------------
def rate_correctness(rates: dict):
    """``correct_of(ids, step)``: 0/1 correctness per rollout row, Bernoulli(``rates[id]``), seeded by step
    (a resumed run draws the same)."""

    def correct_of(ids, step):
        p = np.array([rates[int(i)] for i in ids])
        return (np.random.default_rng(step).random(ids.size) < p).astype(float)

    return correct_of


def fit_overrides(rollout_n: int, total_steps: int, save_freq: int = -1):
    """A GRPO run without critic or reference model, logged to verl's file logger (VERL_FILE_LOGGER_PATH)."""
    return [
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_in_reward=False",
        "actor_rollout_ref.actor.use_kl_loss=False",
        f"actor_rollout_ref.rollout.n={rollout_n}",
        "trainer.logger=[file]",
        "trainer.val_before_train=False",
        "trainer.test_freq=-1",
        f"trainer.total_training_steps={total_steps}",
        f"trainer.save_freq={save_freq}",
    ]


class Crash(Exception):
    """Stands in for the process dying."""


class StubRollout:
    """Stands in for verl's agent loop manager: generation and the reward loop (``generate_sequences``).

    ``score_of(row_ids, step)`` gives, per rollout row (``extra_info.index`` of each row, in the
    batch's order), ``{"score": scores, <extra>: values, ...}``; the extras are passed on as verl's
    reward loop passes a scorer's extra outputs (``non_tensor_batch`` + ``meta_info["reward_extra_keys"]``).
    Responses have different lengths (so ``trainer.balance_batch`` reorders rows); the score sits at
    the last attention token, as verl's reward managers put it. ``mask_score_token`` gives that token
    ``response_mask`` 0 (an interaction-terminated multi-turn rollout). ``calls`` keeps
    ``(step, row ids, scores)`` per step.
    """

    def __init__(self, score_of, prompt_length: int = 3, response_length: int = 6, mask_score_token: bool = False):
        self.score_of = score_of
        self.prompt_length, self.response_length = prompt_length, response_length
        self.mask_score_token = mask_score_token
        self.calls = []

    def generate_sequences(self, gen_batch):
        import torch

        from verl import DataProto

        n = len(gen_batch)
        ids = np.array([info["index"] for info in gen_batch.non_tensor_batch["extra_info"]])
        step = gen_batch.meta_info["global_steps"]
        outputs = self.score_of(ids, step)
        scores = np.asarray(outputs.pop("score"), dtype=np.float32)
        self.calls.append((step, ids, scores))
        lengths = torch.as_tensor(2 + (ids * 7 + np.arange(n)) % (self.response_length - 1))
        positions = torch.arange(self.response_length)[None, :]
        response_attention = (positions < lengths[:, None]).long()
        last = torch.arange(n), lengths - 1
        rm_scores = torch.zeros(n, self.response_length)
        rm_scores[last] = torch.as_tensor(scores)
        response_mask = response_attention.clone()
        if self.mask_score_token:
            response_mask[last] = 0
        prompts = torch.ones(n, self.prompt_length, dtype=torch.long)
        responses = torch.ones(n, self.response_length, dtype=torch.long) * response_attention
        tensors = {
            "prompts": prompts,
            "responses": responses,
            "input_ids": torch.cat([prompts, responses], dim=1),
            "attention_mask": torch.cat([torch.ones_like(prompts), response_attention], dim=1),
            "response_mask": response_mask,
            "rm_scores": rm_scores,
        }
        non_tensors = {"multi_modal_inputs": np.array([{} for _ in range(n)], dtype=object)}
        non_tensors.update({key: np.asarray(values) for key, values in outputs.items()})
        meta_info = {"timing": {}, "reward_extra_keys": list(outputs)}
        return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors, meta_info=meta_info)


class StubActorWorkers:
    """Stands in for the actor worker group: log-probs, the actor update, checkpoint files."""

    def __init__(self, dp_size: int = 2):
        self._dispatch_info = {"actor": list(range(dp_size))}

    def compute_log_prob(self, batch):
        import torch

        from verl import DataProto

        shape = batch.batch["responses"].shape
        return DataProto.from_dict(tensors={"old_log_probs": torch.zeros(shape), "entropys": torch.zeros(shape)})

    def update_actor(self, batch):
        from verl import DataProto

        return DataProto(meta_info={"metrics": {"actor/pg_loss": 0.0}})

    def save_checkpoint(self, local_path, remote_path=None, global_step=0, max_ckpt_to_keep=None):
        os.makedirs(local_path, exist_ok=True)

    def load_checkpoint(self, local_path, del_local_after_load=False):
        pass


class StubCheckpointManager:
    """Stands in for the weight sync between trainer and rollout."""

    def update_weights(self, global_steps):
        pass

    def sleep_replicas(self):
        pass


class StubResources:
    """Stands in for the Ray resource pools; ``get_n_gpus`` is also the crash point (``Crash`` at ``crash_at``).

    Both ``RayPPOTrainer.fit`` (``ray_trainer.py:1590``) and ``SeparateRayPPOTrainer``
    (``_fit_collect_metrics``) call it after the step's checkpoint save and before ``sampler.update``.
    """

    def __init__(self, crash_at=None):
        self.crash_at = crash_at
        self.trainer = None

    def get_n_gpus(self):
        if self.crash_at is not None and self.trainer.global_steps == self.crash_at:
            raise Crash(f"stopped at step {self.crash_at}, after the checkpoint save and before sampler.update")
        return 1


def make_fit_trainer(config, rollout, crash_at=None, trainer_class=RayPPOTrainer):
    """verl's trainer built by its own ``__init__`` (datasets, sampler, loader); ``init_workers`` replaced by stubs."""
    from verl.trainer.ppo.utils import Role

    resources = StubResources(crash_at)
    trainer = trainer_class(
        config=config, tokenizer=None, role_worker_mapping={Role.ActorRollout: object}, resource_pool_manager=resources
    )
    resources.trainer = trainer
    trainer.actor_rollout_wg = StubActorWorkers()
    trainer.async_rollout_manager = rollout
    trainer.checkpoint_manager = StubCheckpointManager()
    return trainer


def run_fit(monkeypatch, config, log, score_of, trainer_class=RayPPOTrainer, crash_at=None, **rollout):
    """One ``fit`` (to the end, or to ``Crash`` at step ``crash_at``), logged to ``log``; returns (trainer, rollout stub)."""
    import pytest

    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(log))
    stub = StubRollout(score_of, **rollout)
    trainer = make_fit_trainer(config, stub, crash_at=crash_at, trainer_class=trainer_class)
    if crash_at is None:
        trainer.fit()
    else:
        with pytest.raises(Crash):
            trainer.fit()
    return trainer, stub


def logged_steps(path: str) -> dict:
    """{step: metrics} as verl's file logger wrote them."""
    import json

    with open(path) as f:
        return {record["step"]: record["data"] for record in map(json.loads, f)}
