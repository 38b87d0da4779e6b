"""VADE as a verl 0.7.1 curriculum sampler (``verl.experimental.dataset.sampler``).

Select it with::

    data.sampler.class_path=pkg://vade_verl.vade.sampler data.sampler.class_name=VADESampler \\
    data.dataloader_num_workers=0 [+data.sampler.vade.<option>=<value> ...]

How verl drives it (``verl/trainer/main_ppo.py:create_rl_sampler`` and ``RayPPOTrainer.fit``,
``verl/trainer/ppo/ray_trainer.py``; full account in docs/vade.md):

* verl builds ``VADESampler(data_source=dataset, data_config=config.data)`` in the TaskRunner and
  wraps it in a ``StatefulDataLoader`` with batch size ``data.gen_batch_size`` (else
  ``data.train_batch_size``). Iteration is lazy: the batch for step t+1 is chosen when the loader
  asks for it, after ``update`` of step t, so it sees the newest posteriors.
* After every step ``fit`` calls ``update(batch=batch)`` with the rollouts (``ray_trainer.py:1600``);
  we read each row's ``extra_info.index`` (dataset row identity, mapped to the dataset position),
  its score as verl's GRPO reads it (``vade_verl.verl_adapters.batch.parse_rollouts``) and turn it
  into correctness by ``data.sampler.vade.correctness`` (``vade_verl.verl_adapters.rewards``).
* Checkpoints: verl saves the loader's ``state_dict()`` (which holds ours) as ``data.pt``, *before*
  it calls ``update`` in the same step (``ray_trainer.py:1529`` vs ``:1600``). So that the checkpoint
  of step k holds step k's evidence, ``state_dict`` applies the pending update itself when it runs
  inside a verl trainer step whose ``batch`` already has the step's rewards (it does from
  ``ray_trainer.py:1452`` on); ``update`` then finds the step applied and only publishes the
  metrics. A resumed run therefore selects exactly the batches the uninterrupted run would have,
  whenever the process stops.
* Every update also writes its aggregated evidence to ``<state_dir>/vade_sampler/update_<n>.npz``,
  bound to its selection by a random token that the sampler state holds too. Where a checkpoint
  was written with an update pending (another trainer that saves before ``update`` without the
  batch on its stack), ``load_state_dict`` applies that update's record if, and only if, its token
  matches; without one it refuses to resume (``data.sampler.vade.resume=exact``, the default) or
  resumes without that step's evidence and warns (``resume=approximate``).
* Metrics: verl passes the hook no metrics dict; ``vade_verl.verl_adapters.metrics`` adds our ``vade/*``
  entries to the running trainer step's metrics, and warns once when there is none (they are kept
  in ``last_metrics``).
* DIVA-GRPO variants (rows with ``extra_info.diva_variant`` other than "original") share their
  problem's ``extra_info.index`` but not its difficulty: they are not evidence for the problem's
  posterior and are left out of the update (counted in ``vade/variant_rollouts_ignored``).
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any, Iterator, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

try:
    from verl.experimental.dataset.sampler import AbstractCurriculumSampler
except ImportError:  # verl >= 0.8 removed it; vade_verl.verl09 calls our `update` without the base class
    from torch.utils.data import Sampler as AbstractCurriculumSampler
from vade_verl.vade.config import CONFIG_PREFIX, VADEConfig
from vade_verl.verl_adapters.data_check import check_plugin_dataset
from vade_verl.verl_adapters.rewards import as_correctness
from vade_verl.vade.algorithm import VADEState, effective_ratio, posterior_mean
from vade_verl.verl_adapters.batch import Rollouts, dataset_row_ids, parse_rollouts, trainer_step_batch
from vade_verl.verl_adapters.metrics import MetricsPublisher

logger = logging.getLogger(__name__)

RECORD_DIR = "vade_sampler"
CORRECTNESS_KEY = f"{CONFIG_PREFIX}.correctness"
# The reward function's correctness output that "auto" prefers to the score (see VADEConfig).
CORRECTNESS_EXTRA = "acc"


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
        self.correctness = self.config.correctness_rule()
        check_plugin_dataset(data_source)  # images vs model: fail before any rollout, naming data.image_key
        batch_key = "gen_batch_size" if data_config.get("gen_batch_size") else "train_batch_size"
        self.batch_size = int(data_config.get(batch_key))
        self.row_ids = dataset_row_ids(data_source)
        n = self.row_ids.size
        if not 0 < self.batch_size <= n:
            raise ValueError(f"data.{batch_key}={self.batch_size} must be in 1..{n} (the dataset size) for VADE")
        self._id_order = np.argsort(self.row_ids, kind="stable")
        self._sorted_ids = self.row_ids[self._id_order]
        seed_key, seed = (f"{CONFIG_PREFIX}.seed", self.config.seed) if self.config.seed is not None else ("data.seed", data_config.get("seed"))
        # what a resumed run compares with the checkpoint's (``_log_changed_settings``), and the keys that set them
        self.settings = {"batch_size": self.batch_size, "seed": seed}
        self._setting_keys = {"batch_size": f"data.{batch_key}", "seed": seed_key}
        self.state = VADEState(
            n,
            l1=self.config.fast_decay,
            l2=self.config.slow_decay,
            score=self.config.score,
            selection=self.config.selection_mode,
            variant=self.config.variant,
            seed=1 if seed is None else int(seed),
        )
        state_dir = self.config.state_dir or _default_state_dir(data_config)
        self.record_dir = os.path.join(os.path.abspath(state_dir), RECORD_DIR) if state_dir else None
        self.batches_per_epoch = n // self.batch_size
        self._epoch_batches = 0
        # Binds the pending selection to its update record (random, so the VADE generator is untouched).
        self._selection_token = ""
        # (sorted positions, metrics) of a step that state_dict applied before verl called update.
        self._applied_at_save: Optional[tuple] = None
        self.last_metrics: dict = {}
        self._metrics = MetricsPublisher("VADE vade/*", "VADESampler.last_metrics")
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
            self._selection_token = uuid.uuid4().hex
            self._applied_at_save = None
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

    def _evidence_positions(self, rollouts: Rollouts) -> np.ndarray:
        """Dataset positions of the rollouts that are evidence (all but DIVA variants), one per rollout."""
        return self.positions_of(rollouts.row_ids[rollouts.is_evidence])

    def _acc_missing(self, rollouts: Rollouts) -> np.ndarray:
        """Rows whose correctness "auto" reads from the score although the batch has ``acc``: their ``acc``
        is None (read as NaN) while their score is not."""
        extra = rollouts.reward_extras.get(CORRECTNESS_EXTRA)
        if self.correctness.mode != "auto" or extra is None:
            return np.zeros(len(rollouts), dtype=bool)
        return np.isnan(extra) & ~np.isnan(rollouts.scores)

    def _correctness(self, rollouts: Rollouts) -> np.ndarray:
        """Per-rollout evidence by ``data.sampler.vade.correctness``; "auto" reads the ``acc`` output when present,
        and the row's own score (under the same rule) where a row's ``acc`` is None. A NaN score stays NaN."""
        source = rollouts.scores
        extra = rollouts.reward_extras.get(CORRECTNESS_EXTRA)
        if self.correctness.mode == "auto" and extra is not None:
            source = np.where(np.isnan(rollouts.scores) | self._acc_missing(rollouts), rollouts.scores, extra)
        return as_correctness(source, self.correctness, CORRECTNESS_KEY)

    def update(self, batch: Any) -> None:
        """Feed back one step's rollouts (``RayPPOTrainer.fit`` calls it after each step with its ``DataProto``)."""
        self.update_rollouts(parse_rollouts(batch, extras=(CORRECTNESS_EXTRA,)))

    def update_rollouts(self, rollouts: Rollouts) -> None:
        """``update`` on rollouts already parsed (trainers whose batches have another layout: verl 0.9's V1)."""
        applied, self._applied_at_save = self._applied_at_save, None
        if applied is None:
            metrics = self._apply_step(rollouts)
        else:
            positions, metrics = applied
            if not np.array_equal(np.unique(self._evidence_positions(rollouts)), positions):
                raise RuntimeError(
                    "VADE: the batch given to update() is not the one whose rewards were applied when the "
                    "step's checkpoint was saved; the trainer changed the step's batch after saving it"
                )
        self._metrics.publish(metrics)

    def _apply_step(self, rollouts: Rollouts) -> dict:
        """Apply the step's evidence to the posteriors, write its record; returns the step's metrics."""
        own = rollouts.is_evidence
        positions = self._evidence_positions(rollouts)
        evidence = self._correctness(rollouts)[own]
        before = posterior_mean(self.state.alpha, self.state.beta)
        record = self.state.update(positions, evidence)
        self._write_record(record)
        if record["skipped"]:
            logger.warning("VADE skipped %d rollouts with NaN reward at update %d", record["skipped"], self.state.num_updates)
        metrics = {
            "vade/effective_ratio": effective_ratio(rollouts.group_keys, rollouts.scores),
            "vade/never_seen": int((~self.state.seen).sum()),
            "vade/skipped_rewards": record["skipped"],
            "vade/correctness_from_score": int(self._acc_missing(rollouts)[own].sum()),
            "vade/variant_rollouts_ignored": int((~own).sum()),
            "vade/updated_samples": int((record["trials"] > 0).sum()),
            **_percentiles(before[record["positions"]], "vade/batch_p"),
            **_percentiles(before, "vade/all_p"),
        }
        self.last_metrics = metrics
        return metrics

    # -- checkpointing ---------------------------------------------------------------------------
    def _record_path(self, update_number: int) -> str:
        return os.path.join(self.record_dir, f"update_{update_number:08d}.npz")

    def _write_record(self, record: dict) -> None:
        if self.record_dir is None:
            return
        os.makedirs(self.record_dir, exist_ok=True)
        path = self._record_path(self.state.num_updates)
        tmp = path + ".tmp.npz"
        np.savez(
            tmp,
            selection_token=self._selection_token,
            selected=self.state.last_selected,
            positions=record["positions"],
            successes=record["successes"],
            trials=record["trials"],
        )
        os.replace(tmp, path)

    def _update_pending(self) -> bool:
        return self.state.num_selections > self.state.num_updates

    def state_dict(self) -> dict:
        if self._update_pending():
            self._apply_pending_update_at_save()
        return {
            "vade": self.state.state_dict(),
            "epoch_batches": self._epoch_batches,
            "row_ids": self.row_ids,
            "selection_token": self._selection_token,
            "settings": dict(self.settings),
        }

    def _apply_pending_update_at_save(self) -> None:
        """Apply the step's update now if verl is saving inside a step that holds the step's rewards.

        verl 0.7.1 saves the checkpoint before it calls ``update`` (module doc); the step's batch is
        then a local of the trainer's step on the call stack (``verl_adapters.batch.trainer_step_batch``). It is
        applied only if its rows are exactly the pending selection.
        """
        batch = trainer_step_batch()
        if batch is None:
            logger.info(
                "VADE: checkpoint state taken with update %d pending and no verl trainer step holding its "
                "rewards on the call stack; resuming from it needs that update's record",
                self.state.num_updates + 1,
            )
            return
        rollouts = parse_rollouts(batch, extras=(CORRECTNESS_EXTRA,))
        positions = np.unique(self._evidence_positions(rollouts))
        if not np.array_equal(positions, np.sort(self.state.last_selected)):
            logger.warning(
                "VADE: the trainer step's batch being saved is not the pending selection (%d of %d rows "
                "differ); its update is left to update()",
                np.setxor1d(positions, self.state.last_selected).size,
                self.state.last_selected.size,
            )
            return
        self._applied_at_save = (positions, self._apply_step(rollouts))

    def load_state_dict(self, state_dict: dict) -> None:
        if not np.array_equal(np.asarray(state_dict["row_ids"]), self.row_ids):
            raise ValueError("the checkpoint's VADE state was made over different dataset rows (extra_info.index)")
        self._log_changed_settings(state_dict.get("settings") or {})
        self.state.load_state_dict(state_dict["vade"])
        self._epoch_batches = int(state_dict["epoch_batches"])
        self._selection_token = str(state_dict.get("selection_token", ""))
        self._applied_at_save = None
        if self._update_pending():
            self._complete_pending_update()

    def _log_changed_settings(self, saved: dict) -> None:
        """Warn about each batch-size or seed setting that differs from the checkpoint's.

        The checkpoint wins: its generator state continues the saved run's Thompson draws (the new seed
        is not used) and its posteriors carry over; a new batch size takes effect from the next selection.
        """
        for name, value in self.settings.items():
            if name in saved and saved[name] != value:
                logger.warning(
                    "VADE resume: %s=%s now, %s in the checkpoint; %s",
                    self._setting_keys[name],
                    value,
                    saved[name],
                    "the checkpoint's generator state is continued (the new seed is not used)"
                    if name == "seed"
                    else "selections from here on take the new size",
                )

    def _complete_pending_update(self) -> None:
        """Apply the pending update from its record when the record is this selection's (module doc)."""
        number = self.state.num_updates + 1
        path = self._record_path(number) if self.record_dir else None
        problem = self._record_problem(path)
        if problem is None:
            with np.load(path) as record:
                self.state.apply(record["positions"], record["successes"], record["trials"])
            logger.info("VADE resume: applied update %d from its record %s", number, path)
            return
        what = (
            f"VADE resume: this checkpoint was saved after batch {number} was selected and before its rewards "
            f"reached the sampler, and {problem}"
        )
        if self.config.resume == "approximate":
            logger.warning(
                "%s. Continuing as if that step's rollouts brought no evidence (%s.resume=approximate: every "
                "sample decays by l2): the batches from here on differ from an uninterrupted run's",
                what,
                CONFIG_PREFIX,
            )
            empty = np.zeros(0)
            self.state.apply(empty.astype(np.int64), empty, empty)
            return
        raise RuntimeError(
            f"{what}. Resuming from it would select other batches than the uninterrupted run. Resume from an "
            f"earlier checkpoint (trainer.resume_mode=resume_path, trainer.resume_from_path=<run>/global_step_<k> "
            f"with k < {number}), or set +{CONFIG_PREFIX}.resume=approximate to continue without that step's evidence"
        )

    def _record_problem(self, path: Optional[str]) -> Optional[str]:
        """Why the record at ``path`` cannot complete this checkpoint, or None when it can."""
        if path is None:
            return f"there is no record folder ({CONFIG_PREFIX}.state_dir and trainer.default_local_dir are unset)"
        if not os.path.exists(path):
            return f"its update record {path} does not exist (the process stopped before the update)"
        with np.load(path) as record:
            token = str(record["selection_token"]) if "selection_token" in record.files else ""
            selected = record["selected"] if "selected" in record.files else None
        if not self._selection_token or token != self._selection_token or not np.array_equal(selected, self.state.last_selected):
            logger.warning("VADE resume: %s belongs to another run or another selection; it is NOT applied", path)
            return f"the update record {path} belongs to another run or another selection (not applied)"
        return None
