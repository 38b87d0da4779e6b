"""verl 0.9's V1 trainers with VADE's two contact points (``python3 -m vade_verl.verl09.main_ppo_v1``).

``vade_trainer_class(mode)`` is verl's registered trainer for ``trainer.v1.trainer_mode``
(``PPOTrainerSync``, ``PPOTrainerColocateAsync``, ``PPOTrainerSeparateAsync``) with
``VADETrainerMixin`` in front, which overrides three methods of ``PPOTrainer``
(verl 0.9.1, ``verl/trainer/ppo/v1/trainer_base.py``) and copies none of their code:

* ``_init_dataloader`` (line 708) runs verl's own while the module-level name
  ``create_rl_sampler`` it calls (line 749) resolves to ``vade_verl.verl09.hooks.create_rl_sampler``,
  which builds ``data.sampler.{class_path,class_name}``; then it attaches the loader's sampler to
  the replay buffer when that is a ``VADEReplayBuffer``.
* ``_fetch_one_gen_batch`` (line 1466), where V1 names each fetched prompt by a fresh ``uid``,
  then tells the sampler those uids (``V1SamplerMixin.claim``), to measure evidence staleness.
* ``step`` (line 533), after verl's ``parameter_sync_step`` local updates, feeds the sampler the step's
  training groups as one update (``VADEReplayBuffer.feed_step``) and adds the sampler's metrics
  to the step's metrics; ``fit`` then saves the checkpoint and logs them.
"""

from __future__ import annotations

import functools

from tensordict import TensorDict

from vade_verl.verl09.hooks import FEEDS_REPLAY_BUFFER, create_rl_sampler, rebound
from vade_verl.verl09.replay_buffer import ENTRY_HINT, _VADEFeedback
from vade_verl.verl09.v1_sampler import V1SamplerMixin
from verl.trainer.ppo.v1 import get_trainer_cls, trainer_base


class VADETrainerMixin:
    """Put in front of a V1 ``PPOTrainer`` subclass (``vade_trainer_class``)."""

    def _init_dataloader(self) -> None:
        with rebound(trainer_base, create_rl_sampler=create_rl_sampler):
            super()._init_dataloader()
        sampler = self.train_dataloader.sampler
        if isinstance(self.replay_buffer, _VADEFeedback):
            self.replay_buffer.attach(sampler)
        elif isinstance(sampler, V1SamplerMixin):
            raise ValueError(f"data.sampler.class_name={type(sampler).__name__} gets no feedback from the {type(self.replay_buffer).__name__}:{ENTRY_HINT}")

    def step(self, metrics: dict, timing_raw: dict):
        batch = super().step(metrics, timing_raw)
        if isinstance(self.replay_buffer, _VADEFeedback):
            metrics.update(self.replay_buffer.feed_step(self.global_steps))
        return batch

    def _fetch_one_gen_batch(self) -> TensorDict:
        batch = super()._fetch_one_gen_batch()
        sampler = self.train_dataloader.sampler
        if isinstance(sampler, V1SamplerMixin):
            sampler.claim(list(batch["uid"]))
        return batch


setattr(VADETrainerMixin, FEEDS_REPLAY_BUFFER, True)  # the replay buffer checks it without importing this module


@functools.cache
def vade_trainer_class(trainer_mode: str) -> type:
    """verl's V1 trainer class for ``trainer_mode`` with ``VADETrainerMixin`` in front (one class per mode)."""
    base = get_trainer_cls(trainer_mode)
    return type(f"VADE{base.__name__}", (VADETrainerMixin, base), {"__module__": __name__})
