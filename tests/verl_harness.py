"""Build verl 0.7.1's real train dataloader from a composed ``ppo_trainer`` config, for tests.

The loader comes from ``RayPPOTrainer._create_dataloader`` itself (which calls verl's
``create_rl_dataset`` and ``create_rl_sampler``), on a small text parquet made here.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

import verl
from verl.trainer.ppo.ray_trainer import RayPPOTrainer

VERL_CONFIG_DIR = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
VADE_SAMPLER = ["data.sampler.class_path=pkg://vade_verl.sampler", "data.sampler.class_name=VADESampler"]


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
