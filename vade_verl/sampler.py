"""VADE as a verl 0.7.1 curriculum sampler (``verl.experimental.dataset.sampler``).

Select it with::

    data.sampler.class_path=pkg://vade_verl.sampler data.sampler.class_name=VADESampler \\
    data.dataloader_num_workers=0 [+data.sampler.vade.<option>=<value> ...]

How verl drives it (``verl/trainer/main_ppo.py:create_rl_sampler`` and ``RayPPOTrainer.fit``):

* verl builds ``VADESampler(data_source=dataset, data_config=config.data)`` in the TaskRunner and
  wraps it in a ``StatefulDataLoader`` with batch size ``data.gen_batch_size`` (else
  ``data.train_batch_size``). Iteration is lazy: the batch for step t+1 is chosen when the loader
  asks for it, after ``update`` of step t, so it sees the newest posteriors.
* After every step ``fit`` calls ``update(batch=batch)`` with the rollouts; we read each row's
  ``extra_info.index`` (dataset row identity, mapped to the dataset position) and its reward.
* Checkpoints: verl saves the loader's ``state_dict()`` (which holds ours) as ``data.pt``. It
  saves *before* calling ``update`` in the same step, so the checkpoint of step k lacks step k's
  feedback. We write each update's aggregated evidence to ``<state_dir>/vade_sampler/`` and, on
  ``load_state_dict``, replay the one update the checkpoint missed: the resumed run then selects
  exactly the batches the uninterrupted run would have.
* Metrics: ``update`` runs just before ``logger.log(data=metrics, ...)`` in ``fit``, but verl
  passes the hook no metrics dict; ``vade_verl.verl_metrics`` adds our ``vade/*`` entries to the
  calling ``fit``'s dict. Without such a caller they are kept in ``last_metrics`` and logged.
* DIVA-GRPO variants (rows with ``extra_info.diva_variant`` other than "original") share their
  problem's ``extra_info.index`` but not its difficulty: they are not evidence for the problem's
  posterior and are left out of the update (counted in ``vade/variant_rollouts_ignored``).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

try:
    from verl.experimental.dataset.sampler import AbstractCurriculumSampler
except ImportError:  # verl >= 0.8 removed it; vade_verl.verl09 calls our `update` without the base class
    from torch.utils.data import Sampler as AbstractCurriculumSampler
from vade_verl.config import VADEConfig
from vade_verl.vade import VADEState, effective_ratio, posterior_mean
from vade_verl.verl_batch import (
    batch_evidence_mask,
    batch_group_keys,
    batch_row_ids,
    batch_sequence_rewards,
    dataset_row_ids,
)
from vade_verl.verl_metrics import publish_to_fit_metrics

logger = logging.getLogger(__name__)

RECORD_DIR = "vade_sampler"


def _vade_block(data_config: Any) -> Any:
    sampler_cfg = data_config.get("sampler") or {}
    block = sampler_cfg.get("vade") if hasattr(sampler_cfg, "get") else None
    if isinstance(block, DictConfig):
        return OmegaConf.to_container(block, resolve=True)
    return block


def _default_state_dir(data_config: Any) -> Optional[str]:
    """``trainer.default_local_dir`` of the run's full config, reached from its ``data`` node."""
    if not isinstance(data_config, DictConfig):
        return None
    root = data_config._get_root()
    return OmegaConf.select(root, "trainer.default_local_dir", default=None)


def _percentiles(values: np.ndarray, prefix: str) -> dict:
    if values.size == 0:
        return {}
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return {f"{prefix}_mean": float(values.mean()), f"{prefix}_p10": p10, f"{prefix}_p50": p50, f"{prefix}_p90": p90}


class VADESampler(AbstractCurriculumSampler):
    """Thompson-sampling InfoGain batch selection with online Beta posteriors (VADE)."""

    def __init__(self, data_source: Any, data_config: Any):
        self.config = VADEConfig.from_mapping(_vade_block(data_config))
        self.batch_size = int(data_config.get("gen_batch_size") or data_config.get("train_batch_size"))
        self.row_ids = dataset_row_ids(data_source)
        n = self.row_ids.size
        if not 0 < self.batch_size <= n:
            raise ValueError(f"data.train_batch_size={self.batch_size} must be in 1..{n} (the dataset size) for VADE")
        self._id_order = np.argsort(self.row_ids, kind="stable")
        self._sorted_ids = self.row_ids[self._id_order]
        seed = self.config.seed if self.config.seed is not None else data_config.get("seed") or 1
        self.state = VADEState(
            n,
            l1=self.config.fast_decay,
            l2=self.config.slow_decay,
            score=self.config.score,
            selection=self.config.selection_mode,
            seed=int(seed),
        )
        state_dir = self.config.state_dir or _default_state_dir(data_config)
        self.record_dir = os.path.join(os.path.abspath(state_dir), RECORD_DIR) if state_dir else None
        self.batches_per_epoch = n // self.batch_size
        self._epoch_batches = 0
        self.last_metrics: dict = {}
        logger.info("VADE sampler over %d samples, batch %d, config %s", n, self.batch_size, self.config)

    # -- iteration -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def __iter__(self) -> Iterator[int]:
        return self._iterate_epoch()

    def _iterate_epoch(self) -> Iterator[int]:
        if self._epoch_batches >= self.batches_per_epoch:
            self._epoch_batches = 0
        while self._epoch_batches < self.batches_per_epoch:
            chosen = self.state.select(self.batch_size)
            self._epoch_batches += 1
            yield from chosen.tolist()

    # -- reward feedback -------------------------------------------------------------------------
    def positions_of(self, row_ids: np.ndarray) -> np.ndarray:
        """Dataset positions of ``extra_info.index`` values; unknown ids raise."""
        row_ids = np.asarray(row_ids).astype(self._sorted_ids.dtype, copy=False)
        where = np.searchsorted(self._sorted_ids, row_ids)
        where = np.minimum(where, self._sorted_ids.size - 1)
        unknown = self._sorted_ids[where] != row_ids
        if unknown.any():
            raise ValueError(f"extra_info.index values not in the training dataset: {np.unique(row_ids[unknown])[:5].tolist()}")
        return self._id_order[where]

    def _as_correctness(self, rewards: np.ndarray) -> np.ndarray:
        """Rewards as VADE evidence: as they are, or 0/1 by ``reward_threshold`` (NaN kept)."""
        if self.config.reward_threshold is None:
            return rewards
        return np.where(np.isnan(rewards), np.nan, (rewards > self.config.reward_threshold).astype(np.float64))

    def update(self, batch: Any) -> None:
        own = batch_evidence_mask(batch)
        positions = self.positions_of(batch_row_ids(batch)[own])
        raw_rewards = batch_sequence_rewards(batch)
        before = posterior_mean(self.state.alpha, self.state.beta)
        record = self.state.update(positions, self._as_correctness(raw_rewards[own]))
        self._write_record(record)
        if record["skipped"]:
            logger.warning("VADE skipped %d rollouts with NaN reward at update %d", record["skipped"], self.state.num_updates)
        metrics = {
            "vade/effective_ratio": effective_ratio(batch_group_keys(batch), raw_rewards),
            "vade/never_seen": int((~self.state.seen).sum()),
            "vade/skipped_rewards": record["skipped"],
            "vade/variant_rollouts_ignored": int((~own).sum()),
            "vade/updated_samples": int((record["trials"] > 0).sum()),
            **_percentiles(before[record["positions"]], "vade/batch_p"),
            **_percentiles(before, "vade/all_p"),
        }
        self.last_metrics = metrics
        if not publish_to_fit_metrics(metrics):
            logger.info("VADE metrics (no verl fit frame to publish into): %s", metrics)

    # -- checkpointing ---------------------------------------------------------------------------
    def _record_path(self, update_number: int) -> str:
        return os.path.join(self.record_dir, f"update_{update_number:08d}.npz")

    def _write_record(self, record: dict) -> None:
        if self.record_dir is None:
            return
        os.makedirs(self.record_dir, exist_ok=True)
        path = self._record_path(self.state.num_updates)
        tmp = path + ".tmp.npz"
        np.savez(tmp, positions=record["positions"], successes=record["successes"], trials=record["trials"])
        os.replace(tmp, path)

    def state_dict(self) -> dict:
        return {"vade": self.state.state_dict(), "epoch_batches": self._epoch_batches, "row_ids": self.row_ids}

    def load_state_dict(self, state_dict: dict) -> None:
        if not np.array_equal(np.asarray(state_dict["row_ids"]), self.row_ids):
            raise ValueError("the checkpoint's VADE state was made over different dataset rows (extra_info.index)")
        self.state.load_state_dict(state_dict["vade"])
        self._epoch_batches = int(state_dict["epoch_batches"])
        if self.state.num_selections > self.state.num_updates:
            self._replay_missing_update()

    def _replay_missing_update(self) -> None:
        """Apply the update that verl ran after saving this checkpoint (see module docstring)."""
        number = self.state.num_updates + 1
        path = self._record_path(number) if self.record_dir else None
        if path is None or not os.path.exists(path):
            logger.warning(
                "VADE resume: no record of update %d (%s); the step saved in this checkpoint will not "
                "inform the posteriors, so batches may differ from an uninterrupted run",
                number,
                path or "data.sampler.vade.state_dir unset",
            )
            return
        with np.load(path) as record:
            self.state.apply(record["positions"], record["successes"], record["trials"])
        logger.info("VADE resume: replayed update %d from %s", number, path)
