"""The verl 0.7.1 curriculum-sampler machinery VADE, MoPPS and GRESO share (``verl.experimental.dataset.sampler``).

A method subclasses :class:`CurriculumSampler` and supplies only its selection state and its metrics
(``_build_state``, ``_update_state``, ``_replay_record``, ``_skip_update``); everything that touches
verl is here, once. Select a method with::

    data.sampler.class_path=pkg://vade_verl.<method>.sampler data.sampler.class_name=<Class> \\
    data.dataloader_num_workers=0 [+data.sampler.<method>.<option>=<value> ...]

How verl drives it (``verl/trainer/main_ppo.py:create_rl_sampler`` and ``RayPPOTrainer.fit``,
``verl/trainer/ppo/ray_trainer.py``; full account in docs/vade.md):

* verl builds ``Sampler(data_source=dataset, data_config=config.data)`` in the TaskRunner and wraps
  it in a ``StatefulDataLoader`` with batch size ``data.gen_batch_size`` (else
  ``data.train_batch_size``). Iteration is lazy: the batch for step t+1 is chosen when the loader
  asks for it, after ``update`` of step t, so it sees the newest evidence.
* After every step ``fit`` calls ``update(batch=batch)`` with the rollouts (``ray_trainer.py:1600``);
  we read each row's ``extra_info.index`` (dataset row identity, mapped to the dataset position),
  its score as verl's GRPO reads it (``vade_verl.verl_adapters.batch.parse_rollouts``) and turn it
  into correctness by ``data.sampler.<method>.correctness`` (``vade_verl.verl_adapters.rewards``).
* Checkpoints: verl saves the loader's ``state_dict()`` (which holds ours) as ``data.pt``, *before*
  it calls ``update`` in the same step (``ray_trainer.py:1529`` vs ``:1600``). So that the checkpoint
  of step k holds step k's evidence, ``state_dict`` applies the pending update itself when it runs
  inside a verl trainer step whose ``batch`` already has the step's rewards (it does from
  ``ray_trainer.py:1452`` on; ``_apply_pending_update_at_save``); ``update`` then finds the step
  applied and only publishes the metrics. A resumed run therefore selects exactly the batches the
  uninterrupted run would have, whenever the process stops.
* Every update also writes its evidence record to ``<state_dir>/<method>_sampler/update_<n>.npz``,
  bound to its selection by a random token that the sampler state holds too. Where a checkpoint
  was written with an update pending (another trainer that saves before ``update`` without the
  batch on its stack), ``load_state_dict`` applies that update's record if, and only if, its token
  matches; without one it refuses to resume (``resume=exact``, the default) or resumes without
  that step's evidence and warns (``resume=approximate``).
* Metrics: verl passes the hook no metrics dict; ``vade_verl.verl_adapters.metrics`` adds our
  ``<method>/*`` entries to the running trainer step's metrics, and warns once when there is none
  (they are kept in ``last_metrics``).
* DIVA-GRPO variants (rows with ``extra_info.diva_variant`` other than "original") share their
  problem's ``extra_info.index`` but not its difficulty: they are not evidence for the problem and
  are left out of the update (counted in ``<method>/variant_rollouts_ignored``).

The selection state a method builds has ``select(b) -> positions``, the counters ``num_selections``
and ``num_updates``, ``last_selected`` and ``state_dict``/``load_state_dict``.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any, ClassVar, Iterator, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

try:
    from verl.experimental.dataset.sampler import AbstractCurriculumSampler
except ImportError:  # verl >= 0.8 removed it; vade_verl.verl09 calls our `update` without the base class
    from torch.utils.data import Sampler as AbstractCurriculumSampler
from vade_verl.vade.algorithm import effective_ratio
from vade_verl.verl_adapters.batch import Rollouts, dataset_row_ids, parse_rollouts, trainer_step_batch
from vade_verl.verl_adapters.data_check import check_plugin_dataset
from vade_verl.verl_adapters.metrics import MetricsPublisher
from vade_verl.verl_adapters.rewards import as_correctness
from vade_verl.verl_adapters.sampler_config import SamplerOptions

logger = logging.getLogger(__name__)

# The reward function's correctness output that "auto" prefers to the score (see SamplerOptions).
CORRECTNESS_EXTRA = "acc"


def sampler_block(data_config: Any, name: str) -> Any:
    """``data.sampler.<name>`` as a plain mapping (None when absent)."""
    sampler_cfg = data_config.get("sampler") or {}
    block = sampler_cfg.get(name) if hasattr(sampler_cfg, "get") else None
    if isinstance(block, DictConfig):
        return OmegaConf.to_container(block, resolve=True)
    return block


def _default_state_dir(data_config: Any) -> Optional[str]:
    """``trainer.default_local_dir`` of the run's full config, reached from its ``data`` node."""
    if not isinstance(data_config, DictConfig):
        return None
    root = data_config._get_root()
    return OmegaConf.select(root, "trainer.default_local_dir", default=None)


def percentiles(values: np.ndarray, prefix: str) -> dict:
    """``<prefix>_mean`` and ``_p10``/``_p50``/``_p90`` of ``values`` (nothing when empty)."""
    if values.size == 0:
        return {}
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return {f"{prefix}_mean": float(values.mean()), f"{prefix}_p10": p10, f"{prefix}_p50": p50, f"{prefix}_p90": p90}


class CurriculumSampler(AbstractCurriculumSampler):
    """Dataset positions, reward feedback, exact resume, epochs and metrics for one selection method.

    Subclasses set ``config_class`` (a ``SamplerOptions`` subclass naming the ``data.sampler.<method>``
    block) and ``label`` (the method's name in messages), and implement the four hooks below.
    """

    config_class: ClassVar[type] = SamplerOptions
    label: ClassVar[str] = "sampler"

    def __init__(self, data_source: Any, data_config: Any):
        self.config = self.config_class.from_mapping(sampler_block(data_config, self.config_class.PREFIX.rsplit(".", 1)[-1]))
        self.name = self.config.block_name
        self.prefix = self.config.PREFIX
        self.correctness = self.config.correctness_rule()
        check_plugin_dataset(data_source)  # images vs model: fail before any rollout, naming data.image_key
        batch_key = "gen_batch_size" if data_config.get("gen_batch_size") else "train_batch_size"
        self.batch_size = int(data_config.get(batch_key))
        self.row_ids = dataset_row_ids(data_source)
        n = self.row_ids.size
        if not 0 < self.batch_size <= n:
            raise ValueError(f"data.{batch_key}={self.batch_size} must be in 1..{n} (the dataset size) for {self.label}")
        self._id_order = np.argsort(self.row_ids, kind="stable")
        self._sorted_ids = self.row_ids[self._id_order]
        seed_key, seed = (f"{self.prefix}.seed", self.config.seed) if self.config.seed is not None else ("data.seed", data_config.get("seed"))
        # what a resumed run compares with the checkpoint's (``_log_changed_settings``), and the keys that set them
        self.settings = {"batch_size": self.batch_size, "seed": seed}
        self._setting_keys = {"batch_size": f"data.{batch_key}", "seed": seed_key}
        self.state = self._build_state(n, 1 if seed is None else int(seed))
        state_dir = self.config.state_dir or _default_state_dir(data_config)
        self.record_dir = os.path.join(os.path.abspath(state_dir), f"{self.name}_sampler") if state_dir else None
        self.batches_per_epoch = n // self.batch_size
        self._epoch_batches = 0
        # Binds the pending selection to its update record (random, so the method's generator is untouched).
        self._selection_token = ""
        # (sorted positions, metrics) of a step that state_dict applied before verl called update.
        self._applied_at_save: Optional[tuple] = None
        self.last_metrics: dict = {}
        self._metrics = MetricsPublisher(f"{self.label} {self.name}/*", f"{type(self).__name__}.last_metrics")
        logger.info("%s sampler over %d samples, batch %d, config %s", self.label, n, self.batch_size, self.config)

    # -- the method's hooks ----------------------------------------------------------------------
    def _build_state(self, num_samples: int, seed: int) -> Any:
        """The selection state over ``num_samples`` dataset positions (see the module docstring)."""
        raise NotImplementedError

    def _update_state(self, positions: np.ndarray, correctness: np.ndarray, scores: np.ndarray) -> tuple[dict, dict]:
        """Apply one step's evidence: one entry per rollout (position, correctness in [0, 1] or NaN,
        verl score); returns ``(record, metrics)``: the arrays ``_replay_record`` re-applies, and the
        method's own ``<method>/*`` metrics."""
        raise NotImplementedError

    def _replay_record(self, record: dict) -> None:
        """Apply an update from its record (resume from a checkpoint saved with the update pending).

        Default: a Beta-count record (``positions``, ``successes``, ``trials``) applied by ``state.apply``
        (VADE, MoPPS); a method with another record overrides it."""
        self.state.apply(record["positions"], record["successes"], record["trials"])

    def _skip_update(self) -> None:
        """Count a pending update as one that brought no evidence (``resume=approximate``): an empty
        Beta-count record (the method's own decay rule applies; e.g. VADE decays every sample by ``l2``)."""
        empty = np.zeros(0)
        self.state.apply(empty.astype(np.int64), empty, empty)

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
        """Per-rollout evidence by ``<prefix>.correctness``; "auto" reads the ``acc`` output when present, and
        the row's own score (under the same rule) where a row's ``acc`` is None. A NaN score stays NaN."""
        source = rollouts.scores
        extra = rollouts.reward_extras.get(CORRECTNESS_EXTRA)
        if self.correctness.mode == "auto" and extra is not None:
            source = np.where(np.isnan(rollouts.scores) | self._acc_missing(rollouts), rollouts.scores, extra)
        return as_correctness(source, self.correctness, f"{self.prefix}.correctness")

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
                    f"{self.label}: the batch given to update() is not the one whose rewards were applied when the "
                    "step's checkpoint was saved; the trainer changed the step's batch after saving it"
                )
        self._metrics.publish(metrics)

    def _apply_step(self, rollouts: Rollouts) -> dict:
        """Apply the step's evidence to the state, write its record; returns the step's metrics."""
        own = rollouts.is_evidence
        positions = self._evidence_positions(rollouts)
        correctness = self._correctness(rollouts)[own]
        valid = ~np.isnan(correctness)
        record, method_metrics = self._update_state(positions, correctness, rollouts.scores[own])
        self._write_record(record)
        skipped = int((~valid).sum())
        if skipped:
            logger.warning("%s skipped %d rollouts with NaN reward at update %d", self.label, skipped, self.state.num_updates)
        metrics = {
            f"{self.name}/effective_ratio": effective_ratio(rollouts.group_keys, rollouts.scores),
            f"{self.name}/skipped_rewards": skipped,
            f"{self.name}/correctness_from_score": int(self._acc_missing(rollouts)[own].sum()),
            f"{self.name}/variant_rollouts_ignored": int((~own).sum()),
            f"{self.name}/updated_samples": int(np.unique(positions[valid]).size),
            **method_metrics,
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
        np.savez(tmp, selection_token=self._selection_token, selected=self.state.last_selected, **record)
        os.replace(tmp, path)

    def _update_pending(self) -> bool:
        """Whether a selection's rewards have not reached the state yet (verl 0.7.1 saves in between)."""
        return self.state.num_selections > self.state.num_updates

    def state_dict(self) -> dict:
        if self._update_pending():
            self._apply_pending_update_at_save()
        return {
            self.name: self.state.state_dict(),
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
                "%s: checkpoint state taken with update %d pending and no verl trainer step holding its "
                "rewards on the call stack; resuming from it needs that update's record",
                self.label,
                self.state.num_updates + 1,
            )
            return
        rollouts = parse_rollouts(batch, extras=(CORRECTNESS_EXTRA,))
        positions = np.unique(self._evidence_positions(rollouts))
        if not np.array_equal(positions, np.sort(self.state.last_selected)):
            logger.warning(
                "%s: the trainer step's batch being saved is not the pending selection (%d of %d rows "
                "differ); its update is left to update()",
                self.label,
                np.setxor1d(positions, self.state.last_selected).size,
                self.state.last_selected.size,
            )
            return
        self._applied_at_save = (positions, self._apply_step(rollouts))

    def load_state_dict(self, state_dict: dict) -> None:
        if self.name not in state_dict:
            raise ValueError(
                f"the checkpoint's sampler state has no '{self.name}' entry (it holds {sorted(state_dict)}): it was "
                f"written by another sampler; resume a {self.label} run from a {self.label} checkpoint"
            )
        if not np.array_equal(np.asarray(state_dict["row_ids"]), self.row_ids):
            raise ValueError(f"the checkpoint's {self.label} state was made over different dataset rows (extra_info.index)")
        self._log_changed_settings(state_dict.get("settings") or {})
        self.state.load_state_dict(state_dict[self.name])
        self._epoch_batches = int(state_dict["epoch_batches"])
        self._selection_token = str(state_dict.get("selection_token", ""))
        self._applied_at_save = None
        if self._update_pending():
            self._complete_pending_update()

    def _log_changed_settings(self, saved: dict) -> None:
        """Warn about each batch-size or seed setting that differs from the checkpoint's.

        The checkpoint wins: its generator state continues the saved run's draws (the new seed is not
        used) and its state carries over; a new batch size takes effect from the next selection.
        """
        for name, value in self.settings.items():
            if name in saved and saved[name] != value:
                logger.warning(
                    "%s resume: %s=%s now, %s in the checkpoint; %s",
                    self.label,
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
                self._replay_record({key: record[key] for key in record.files if key not in ("selection_token", "selected")})
            logger.info("%s resume: applied update %d from its record %s", self.label, number, path)
            return
        what = (
            f"{self.label} resume: this checkpoint was saved after batch {number} was selected and before its rewards "
            f"reached the sampler, and {problem}"
        )
        if self.config.resume == "approximate":
            logger.warning(
                "%s. Continuing as if that step's rollouts brought no evidence (%s.resume=approximate): the "
                "batches from here on differ from an uninterrupted run's",
                what,
                self.prefix,
            )
            self._skip_update()
            return
        raise RuntimeError(
            f"{what}. Resuming from it would select other batches than the uninterrupted run. Resume from an "
            f"earlier checkpoint (trainer.resume_mode=resume_path, trainer.resume_from_path=<run>/global_step_<k> "
            f"with k < {number}), or set +{self.prefix}.resume=approximate to continue without that step's evidence"
        )

    def _record_problem(self, path: Optional[str]) -> Optional[str]:
        """Why the record at ``path`` cannot complete this checkpoint, or None when it can."""
        if path is None:
            return f"there is no record folder ({self.prefix}.state_dir and trainer.default_local_dir are unset)"
        if not os.path.exists(path):
            return f"its update record {path} does not exist (the process stopped before the update)"
        with np.load(path) as record:
            token = str(record["selection_token"]) if "selection_token" in record.files else ""
            selected = record["selected"] if "selected" in record.files else None
        if not self._selection_token or token != self._selection_token or not np.array_equal(selected, self.state.last_selected):
            logger.warning("%s resume: %s belongs to another run or another selection; it is NOT applied", self.label, path)
            return f"the update record {path} belongs to another run or another selection (not applied)"
        return None
