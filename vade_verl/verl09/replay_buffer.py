"""The curriculum samplers' feedback on verl 0.9's V1 trainer: a ``ReplayBuffer`` that feeds the groups it samples.

Select it with (``trainer.v1.trainer_mode=sync``; the async modes take ``VADEReplayBufferAsync``)::

    trainer.v1.sampler.custom_sampler.path=pkg://vade_verl.verl09.replay_buffer
    trainer.v1.sampler.custom_sampler.name=VADEReplayBuffer

together with a V1 sampler (``VADEV1Sampler``, ``MoPPSV1Sampler`` or ``GRESOV1Sampler``) and
``python3 -m vade_verl.verl09.main_ppo_v1`` (which connects
the two; see docs/verl09.md). verl 0.9.1 builds it in ``PPOTrainer._build_replay_buffer``
(``verl/trainer/ppo/v1/trainer_base.py:139``) and calls ``sample(global_steps, "train", batch_size)``
in ``_step_once`` (line 567) for every local update: ``PPOTrainer.step`` runs
``parameter_sync_step`` = k of them per global step, each on ``train_batch_size / k`` groups
(lines 533-560). ``sample`` is verl's own (``ReplayBuffer.sample`` or ``ReplayBufferAsync.sample``):
which groups are trained is unchanged; ours notes the training groups' keys. When the global step's
k updates are done, ``VADETrainerMixin.step`` calls ``feed_step``: the step's groups are read back
from TransferQueue and fed to the sampler as one update, so VADE's two-scale decay runs once per
global step whatever k is (fed per local update it would run k times: ``l2**k`` per step), and the
``vade/*`` metrics go into the step's metrics, which ``fit`` logs. The step's checkpoint
(``fit``: ``step``, then ``_save_checkpoint``) holds the update.

What is read (verl 0.9.1's TransferQueue layout; ``replay_buffer.py:64`` and
``agent_loop_tq.py:182``): trajectory keys ``{uid}_{session_id}_{index}``; per trajectory
``rm_scores`` (the reward at the last response token, before any KL penalty: the 0.7.1
``token_level_scores``), the dataset's ``extra_info`` and ``extra_fields.reward_extra_info`` (the reward
function's extra outputs, e.g. ``acc``, which ``data.sampler.vade.correctness=auto`` prefers, as the
0.7.1 non-tensor batch has them). A multi-output agent loop repeats the session's reward on every
output, so only the last output (highest index) of a session counts.

What verl does differently for a custom replay buffer: ``_build_replay_buffer`` passes it neither
``algorithm.filter_groups`` (DAPO) nor ``trainer.v1.sampler.sync_refill_failed_groups``
(trainer_base.py:163-171), so both stay off; the entry point refuses them at start.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import transfer_queue as tq
from transfer_queue import KVBatchMeta

from vade_verl.verl09.hooks import FEEDS_REPLAY_BUFFER
from vade_verl.verl09.v1_sampler import V1SamplerMixin
from vade_verl.verl_adapters.batch import Rollouts
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync

TRAIN_PARTITION = "train"
SYNC_MODE = "sync"
REWARD_FIELD = "rm_scores"
EXTRA_INFO_FIELD = "extra_info"
EXTRA_FIELDS_FIELD = "extra_fields"
ENTRY_HINT = (
    " a curriculum sampler on verl's V1 trainer takes data.sampler.class_path=pkg://vade_verl.verl09.v1_sampler "
    "data.sampler.class_name=VADEV1Sampler (or MoPPSV1Sampler, GRESOV1Sampler) and this replay buffer (docs/verl09.md)"
)


def final_session_keys(keys: list[str]) -> list[str]:
    """The key of each session's last output: ``{uid}_{session}_{index}`` with the highest index."""
    last: OrderedDict[str, tuple[int, str]] = OrderedDict()
    for key in keys:
        session, _, index = key.rpartition("_")
        if session not in last or int(index) > last[session][0]:
            last[session] = (int(index), key)
    return [key for _, key in last.values()]


def common_reward_extra(extra_fields: list) -> dict:
    """The scalar ``reward_extra_info`` entries every rollout has (e.g. ``acc``): name -> values.

    A None value is kept (the 0.7.1 non-tensor batch keeps it too): ``Rollouts`` reads it as NaN and
    VADE's ``correctness=auto`` then takes that row's score."""
    infos = [(fields or {}).get("reward_extra_info") or {} for fields in extra_fields]
    names = set.intersection(*(set(info) for info in infos)) if infos else set()
    scalar = (bool, int, float, np.number, type(None))
    return {name: [info[name] for info in infos] for name in sorted(names) if all(isinstance(info[name], scalar) for info in infos)}


def prompt_uids(partition_id: str) -> set[str]:
    """The prompts (GRPO groups) still in TransferQueue: in flight or finished, not yet trained or evicted."""
    items = (tq.kv_list(partition_id) or {}).get(partition_id, {})
    return {key for key, tag in items.items() if tag.get("is_prompt", False)}


def sampled_rollouts(trajectory_keys: list[str], partition_id: str) -> Rollouts:
    """The sampled rollouts, one per session, as the plain record ``VADESampler.update_rollouts`` reads."""
    keys = final_session_keys(trajectory_keys)
    fields = [REWARD_FIELD, EXTRA_INFO_FIELD, EXTRA_FIELDS_FIELD]
    data = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=fields)
    rewards = [float(row.sum()) for row in data[REWARD_FIELD].unbind(0)]
    uids = [key.split("_")[0] for key in keys]
    return Rollouts.from_columns(uids, list(data[EXTRA_INFO_FIELD]), rewards, common_reward_extra(list(data[EXTRA_FIELDS_FIELD])))


class _VADEFeedback:
    """Mixin over verl's replay buffers: feed the training groups ``sample`` returns to VADE."""

    sync_mode: bool

    def __init__(self, *, trainer_mode: str, refill_fn: Any = None, **kwargs: Any):
        self.check_trainer_mode(trainer_mode)
        # verl passes the trainer's bound ``_add_prompts_to_generate`` (trainer_base.py:161)
        if not getattr(getattr(refill_fn, "__self__", None), FEEDS_REPLAY_BUFFER, False):
            raise ValueError(f"{type(self).__name__} needs the trainer of python3 -m vade_verl.verl09.main_ppo_v1{ENTRY_HINT}")
        super().__init__(trainer_mode=trainer_mode, refill_fn=refill_fn, **kwargs)
        self.vade_sampler: V1SamplerMixin | None = None
        self._step_keys: list[str] = []  # trajectory keys sampled for training in the running global step

    @classmethod
    def check_trainer_mode(cls, trainer_mode: str) -> None:
        if (trainer_mode == SYNC_MODE) != cls.sync_mode:
            fitting = "VADEReplayBuffer" if trainer_mode == SYNC_MODE else "VADEReplayBufferAsync"
            raise ValueError(
                f"trainer.v1.sampler.custom_sampler.name={cls.__name__} does not fit "
                f"trainer.v1.trainer_mode={trainer_mode}: use {fitting}"
            )

    def attach(self, sampler: Any) -> None:
        """The sampler to feed (``VADETrainerMixin`` attaches the train loader's sampler)."""
        if not isinstance(sampler, V1SamplerMixin):
            raise ValueError(f"{type(self).__name__} feeds a V1 curriculum sampler, but the loader's sampler is {type(sampler).__name__}:{ENTRY_HINT}")
        self.vade_sampler = sampler

    def sample(self, global_steps: int, partition_id: str, batch_size: int) -> tuple[KVBatchMeta, dict]:
        """verl's ``sample``; the training groups it returns are kept for ``feed_step``."""
        batch, metrics = super().sample(global_steps=global_steps, partition_id=partition_id, batch_size=batch_size)
        if partition_id == TRAIN_PARTITION:
            self._step_keys.extend(batch.keys)
        return batch, metrics

    def feed_step(self, global_steps: int) -> dict:
        """Feed VADE the groups sampled for training in global step ``global_steps`` as one update.

        Called once per global step after its ``parameter_sync_step`` local updates, before the
        step's checkpoint (the trajectories stay in TransferQueue until ``fit`` clears them after
        the step, trainer_base.py:511). Returns the ``vade/*`` metrics; {} when nothing was sampled.
        """
        keys, self._step_keys = self._step_keys, []
        if not keys:
            return {}
        rollouts = sampled_rollouts(keys, TRAIN_PARTITION)
        group_uids = list(dict.fromkeys(rollouts.group_keys.tolist()))
        return self.vade_sampler.feed(rollouts, global_steps, group_uids, prompt_uids(TRAIN_PARTITION))


class VADEReplayBuffer(_VADEFeedback, ReplayBuffer):
    """verl's sync ``ReplayBuffer`` (``trainer.v1.trainer_mode=sync``) feeding VADE."""

    sync_mode = True


class VADEReplayBufferAsync(_VADEFeedback, ReplayBufferAsync):
    """verl's ``ReplayBufferAsync`` (``colocate_async``, ``separate_async``) feeding VADE."""

    sync_mode = False
