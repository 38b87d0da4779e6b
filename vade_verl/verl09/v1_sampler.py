"""VADE, MoPPS and GRESO as the prompt sampler of verl 0.9's V1 trainer (``python3 -m vade_verl.verl09.main_ppo_v1``).

    data.sampler.class_path=pkg://vade_verl.verl09.v1_sampler
    data.sampler.class_name=VADEV1Sampler | MoPPSV1Sampler | GRESOV1Sampler

The selection, update and checkpoint state are the 0.7.1 sampler's (``vade_verl.vade.sampler``,
``vade_verl.mopps.sampler``, ``vade_verl.greso.sampler``, all on
``vade_verl.verl_adapters.curriculum_sampler``); ``V1SamplerMixin`` adapts any of them to how V1 draws
and trains prompts (verl 0.9.1, ``verl/trainer/ppo/v1/trainer_base.py``):

* **Selection block.** V1's loader fetches ``data.gen_batch_size`` prompts at a time, and forces it
  to 1 in the async modes (``_init_dataloader``, line 739) so that refills are exact. The sampler still
  selects one training step's prompts (``data.train_batch_size``) per selection, so a batch
  holds distinct prompts; the loader takes them one fetch at a time. A checkpoint may fall inside
  a block: the state keeps how much of it was served, and a resumed run serves the rest first.
* **Feedback.** ``VADEReplayBuffer`` (``vade_verl.verl09.replay_buffer``) calls ``feed`` with the
  groups verl's replay buffer hands to training at global step t, which runs ``update``.
* **Evidence staleness.** Each block is stamped with the newest global step whose groups were fed
  before it was drawn (``evidence_step``, 0 before any). The V1 trainer names every fetched
  prompt by a fresh ``uid`` and calls ``claim`` (``VADETrainerMixin._fetch_one_gen_batch``), which
  keeps ``uid -> stamp``. A group trained at step t whose prompt was drawn with evidence up to
  step e has ``staleness = (t - 1) - e`` steps: the number of earlier training steps whose
  groups a synchronous loop would have let its selection see. It is 0 on the sync trainer and,
  at steady state, the number of batches the async trainers keep in flight.
* **Resume.** V1 saves ``data.pt`` after the step's ``sample`` (``fit``: ``step`` then
  ``_save_checkpoint``), so a checkpoint holds every update made so far, and selections may run
  ahead of updates (prompts in flight): no update is ever pending at save or load time
  (``_update_pending``), and the 0.7.1 update records are off.
* **Metrics.** ``feed`` returns the ``<method>/*`` metrics (``vade/*``, ``mopps/*``, ``greso/*``) to the
  replay buffer, whose ``sample`` hands them to verl's step metrics; ``update`` does not look for a
  legacy trainer step to publish into.
"""

from __future__ import annotations

import collections
import itertools
import logging
from typing import Any, Iterator, Sequence

import numpy as np
from omegaconf import OmegaConf

from vade_verl.greso.sampler import GRESOSampler
from vade_verl.mopps.sampler import MoPPSSampler
from vade_verl.vade.sampler import VADESampler
from vade_verl.verl_adapters.batch import Rollouts

logger = logging.getLogger(__name__)

STALENESS = "evidence_staleness_steps"
STALENESS_METRIC = f"vade/{STALENESS}"  # VADE's; each method's is <method>/evidence_staleness_steps


def per_step_data_config(data_config: Any):
    """A copy of ``data`` whose selection block is one training step (``gen_batch_size`` cleared)."""
    view = OmegaConf.create(OmegaConf.to_container(data_config, resolve=True))
    view.gen_batch_size = None
    return view


class V1SamplerMixin:
    """In front of a ``CurriculumSampler`` for verl 0.9's V1 trainer: per-step selection blocks, uid stamps, ``feed``."""

    def __init__(self, data_source: Any, data_config: Any):
        super().__init__(data_source, per_step_data_config(data_config))
        if self.config.state_dir is not None:
            logger.warning("%s.state_dir=%s is not used on the V1 trainer (nothing to replay)", self.prefix, self.config.state_dir)
        self.record_dir = None  # V1 saves after the update: no record to replay (module docstring)
        self._metrics = _ReturnedBySample()
        self.evidence_step = 0
        self._epoch_served = 0
        self._block_stamp = 0
        self._unclaimed: collections.deque = collections.deque()
        self._uid_stamps: dict[str, int] = {}

    # -- iteration -------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[int]:
        if self._epoch_served >= len(self):
            self._epoch_served = 0
        offset = self._epoch_served % self.batch_size
        carried = self.state.last_selected[offset:].tolist() if offset else []
        positions = itertools.chain(carried, super().__iter__())
        while self._epoch_served < len(self):
            position = next(positions, None)
            if position is None:
                return
            if self._epoch_served % self.batch_size == 0:
                self._block_stamp = self.evidence_step
            self._epoch_served += 1
            self._unclaimed.append(self._block_stamp)
            yield position

    def claim(self, uids: Sequence[str]) -> None:
        """Record the stamps of the rows the loader just returned under the uids V1 gave them."""
        if len(uids) != len(self._unclaimed):
            raise RuntimeError(
                f"the loader returned {len(uids)} rows but the {self.label} sampler yielded {len(self._unclaimed)} since the "
                "last fetch: data.dataloader_num_workers must be 0 and data.train_batch_size a multiple of "
                "data.gen_batch_size"
            )
        for uid in uids:
            self._uid_stamps[str(uid)] = self._unclaimed.popleft()

    # -- reward feedback -------------------------------------------------------------------------
    def feed(self, rollouts: Rollouts, global_step: int, group_uids: Sequence[str], live_uids: set) -> dict:
        """``update`` with the groups trained at ``global_step``; returns the ``<method>/*`` metrics.

        ``rollouts`` is the parsed record (``vade_verl.verl_adapters.batch.Rollouts``), ``group_uids`` its
        distinct prompt uids and ``live_uids`` the prompts still in TransferQueue: stamps of
        prompts neither trained nor live (evicted by the replay buffer) are dropped.
        """
        stamps = [self._uid_stamps.pop(str(uid), None) for uid in group_uids]
        known = np.array([stamp for stamp in stamps if stamp is not None], dtype=np.float64)
        unrecorded = len(stamps) - known.size
        if unrecorded:
            logger.warning("%s: %d trained groups have no selection record; left out of %s/%s", self.label, unrecorded, self.name, STALENESS)
        self.update_rollouts(rollouts)
        self.evidence_step = int(global_step)
        self._uid_stamps = {uid: stamp for uid, stamp in self._uid_stamps.items() if uid in live_uids}
        staleness = (global_step - 1) - known
        metric = f"{self.name}/{STALENESS}"
        return {
            **self.last_metrics,
            metric: float(staleness.mean()) if known.size else 0.0,
            f"{metric}_max": float(staleness.max()) if known.size else 0.0,
            f"{self.name}/evidence_unrecorded_groups": unrecorded,
        }

    # -- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "v1": {
                "evidence_step": self.evidence_step,
                "epoch_served": self._epoch_served,
                "block_stamp": self._block_stamp,
                "unclaimed": list(self._unclaimed),
                "uid_stamps": dict(self._uid_stamps),
            },
        }

    def load_state_dict(self, state_dict: dict) -> None:
        if "v1" not in state_dict:
            raise ValueError(
                f"the checkpoint's sampler state was not written by {type(self).__name__} (no 'v1' entry): resume V1 runs from V1 checkpoints"
            )
        super().load_state_dict(state_dict)
        v1 = state_dict["v1"]
        self.evidence_step = int(v1["evidence_step"])
        self._epoch_served = int(v1["epoch_served"])
        self._block_stamp = int(v1["block_stamp"])
        self._unclaimed = collections.deque(v1["unclaimed"])
        self._uid_stamps = dict(v1["uid_stamps"])

    def _update_pending(self) -> bool:
        """Never on V1: every group trained so far was fed in ``sample``, before the checkpoint.

        Selections ahead of updates are prompts in flight; their groups are fed when trained (async
        modes restore them from the TransferQueue checkpoint), not completed at save or load time.
        """
        return False


class VADEV1Sampler(V1SamplerMixin, VADESampler):
    """``VADESampler`` on verl 0.9's V1 trainer."""


class MoPPSV1Sampler(V1SamplerMixin, MoPPSSampler):
    """``MoPPSSampler`` on verl 0.9's V1 trainer."""


class GRESOV1Sampler(V1SamplerMixin, GRESOSampler):
    """``GRESOSampler`` on verl 0.9's V1 trainer."""


class _ReturnedBySample:
    """On V1 the ``<method>/*`` metrics travel back with ``VADEReplayBuffer.sample``, which verl logs."""

    def publish(self, metrics: dict) -> bool:
        return True
