"""What our plug-ins read from verl's data: the one place that knows verl 0.7.1's batch layout.

At ``sampler.update(batch=...)`` time (``RayPPOTrainer.fit``) the batch is the repeated batch,
``rollout.n`` rows per prompt (possibly reordered by ``trainer.balance_batch``), with tensors
``token_level_scores`` (the reward function's score at the last attention token of the response,
before any KL penalty), ``token_level_rewards``, ``response_mask`` and ``non_tensor_batch`` entries
``uid`` (a fresh id per prompt per step), ``extra_info`` (a dict per row, from the parquet file) and
the reward function's extra outputs (``ray_trainer.py:1454``: one array per key of
``meta_info["reward_extra_keys"]``, e.g. ``acc``).

The dataset row identity is ``extra_info["index"]``: verl's ``RLHFDataset`` copies it to
``non_tensor_batch["index"]`` but silently writes 0 where it is missing, so we read ``extra_info``.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from vade_verl.verl_adapters.metrics import trainer_step_frames

ROW_ID_FIELD = "index"
# DIVA-GRPO's variant rows keep their problem's extra_info.index and name their kind here.
VARIANT_FIELD = "diva_variant"
ORIGINAL_VARIANT = "original"
_ADD_ID_HINT = (
    "add a stable per-row id as extra_info.index to every row of the training parquet "
    "(e.g. the row's position when preprocessing, as verl's geo3k example does)"
)


def _row_ids_from_extra_info(extra_infos: Sequence[Any], where: str) -> np.ndarray:
    ids = []
    missing = 0
    for info in extra_infos:
        if isinstance(info, dict) and info.get(ROW_ID_FIELD) is not None:
            ids.append(info[ROW_ID_FIELD])
        else:
            missing += 1
    if missing:
        raise ValueError(f"{missing} of {len(extra_infos)} rows of {where} have no extra_info.{ROW_ID_FIELD}: {_ADD_ID_HINT}")
    return np.asarray(ids)


def _dataframe_column(frame: Any, name: str):
    columns = getattr(frame, "column_names", None)
    if columns is None:
        columns = list(getattr(frame, "columns", []))
    if name not in columns:
        raise ValueError(f"the training data has no '{name}' column: {_ADD_ID_HINT}")
    return list(frame[name])


def dataset_row_ids(data_source: Any) -> np.ndarray:
    """The ``extra_info.index`` of every dataset position, checked to be unique.

    Reads the ``extra_info`` column of ``data_source.dataframe`` (verl's ``RLHFDataset`` holds a
    Hugging Face ``datasets.Dataset`` there; a pandas frame works too) without decoding images;
    other datasets are read item by item (``data_source[i]["extra_info"]``).
    """
    frame = getattr(data_source, "dataframe", None)
    if frame is not None:
        infos = _dataframe_column(frame, "extra_info")
    else:
        infos = [data_source[i].get("extra_info") for i in range(len(data_source))]
    ids = _row_ids_from_extra_info(infos, "the training dataset")
    unique, counts = np.unique(ids, return_counts=True)
    if unique.size != ids.size:
        dup = unique[counts > 1][:5].tolist()
        raise ValueError(f"extra_info.{ROW_ID_FIELD} must be unique per row; repeated values include {dup}")
    return ids


def dataset_ground_truths(data_source: Any) -> list:
    """``reward_model.ground_truth`` of every dataset position (None where a row has none).

    Read from ``data_source.dataframe`` like :func:`dataset_row_ids`, without decoding images.
    """
    frame = getattr(data_source, "dataframe", None)
    if frame is None:
        raise ValueError(f"{type(data_source).__name__} has no 'dataframe' to read reward_model.ground_truth from")
    columns = getattr(frame, "column_names", None) or list(getattr(frame, "columns", []))
    if "reward_model" not in columns:
        raise ValueError("the dataset has no 'reward_model' column (verl's data format: reward_model.ground_truth)")
    return [rm.get("ground_truth") if isinstance(rm, dict) else None for rm in frame["reward_model"]]


def batch_tensor(batch: Any, key: str, why: str):
    """``batch.batch[key]``, or an error naming the missing tensor and what needs it (``why``)."""
    if key not in batch.batch.keys():
        raise KeyError(f"the batch has no tensor '{key}': {why}")
    return batch.batch[key]


def _extra_infos(batch: Any) -> list:
    extra = batch.non_tensor_batch.get("extra_info")
    if extra is None:
        raise ValueError(f"the batch has no non_tensor 'extra_info' field: {_ADD_ID_HINT}")
    return list(extra)


def _numeric_extra(name: str, values: Sequence[Any]) -> np.ndarray:
    """A reward function's per-row extra output as float64 (None -> NaN); non-numeric values raise."""
    try:
        return np.array([np.nan if value is None else value for value in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"the reward function's extra output '{name}' is not numeric: {list(values[:3])}") from None


@dataclasses.dataclass(frozen=True)
class Rollouts:
    """One step's rollouts as the methods read them: plain arrays, one entry per rollout, checked once.

    ``row_ids``: the dataset row's ``extra_info.index``; ``is_evidence``: False for DIVA-GRPO variant rows
    (they share their problem's id but not its difficulty); ``scores``: the sequence score as verl's
    GRPO reads it (NaN kept: the consumer skips and counts it); ``group_keys``: verl's per-step prompt
    group id (``uid``); ``reward_extras``: the reward function's numeric extra outputs (e.g. ``acc``), None
    read as NaN.
    """

    row_ids: np.ndarray
    is_evidence: np.ndarray
    scores: np.ndarray
    group_keys: np.ndarray
    reward_extras: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        n = len(self.row_ids)
        sizes = {"is_evidence": len(self.is_evidence), "scores": len(self.scores), "group_keys": len(self.group_keys)}
        sizes.update({f"reward extra '{name}'": len(values) for name, values in self.reward_extras.items()})
        wrong = {name: size for name, size in sizes.items() if size != n}
        if wrong:
            raise ValueError(f"rollout columns disagree in length: {n} row ids, but {wrong}")

    def __len__(self) -> int:
        return len(self.row_ids)

    @classmethod
    def from_columns(
        cls,
        group_keys: Sequence[str],
        extra_infos: Sequence[Any],
        scores: Sequence[float],
        reward_extras: Optional[Mapping[str, Sequence[Any]]] = None,
        where: str = "the rollouts",
    ) -> "Rollouts":
        """The record from one entry per rollout: ``uid``, ``extra_info`` dict, sequence score, extras by name."""
        return cls(
            row_ids=_row_ids_from_extra_info(extra_infos, where),
            is_evidence=np.array([info.get(VARIANT_FIELD, ORIGINAL_VARIANT) == ORIGINAL_VARIANT for info in extra_infos], dtype=bool),
            scores=np.asarray(scores, dtype=np.float64),
            group_keys=np.asarray(list(group_keys)).astype(str),
            reward_extras={name: _numeric_extra(name, list(values)) for name, values in (reward_extras or {}).items()},
        )


def parse_rollouts(batch: Any, extras: Sequence[str] = (), score_key: str = "token_level_scores") -> Rollouts:
    """A verl 0.7.1 trainer batch (a ``DataProto`` as ``RayPPOTrainer.fit`` hands it to ``update``) as :class:`Rollouts`.

    The score is read as verl's outcome advantages read it, ``batch.batch[score_key].sum(-1)``: verl 0.7.1's
    GRPO (``verl/trainer/ppo/core_algos.py:304``, ``compute_grpo_outcome_advantage``) sums the token
    rewards over the whole response *without* ``response_mask``: the score sits at the last attention
    token, whose mask can be 0 (rollout-correction rejection rewrites the mask before the sampler sees the
    batch; an interaction-terminated multi-turn rollout ends on a mask-0 token). ``extras``: the reward
    function's extra outputs to read where the batch has them (verl 0.7.1's reward managers put every key
    of a dict-valued score there, e.g. math_dapo's ``acc``, and for a float-valued score ``acc`` = the score:
    ``verl/experimental/reward_loop/reward_manager/naive.py:95``, ``dapo.py:104``).
    """
    if score_key not in batch.batch.keys():
        raise ValueError(f"the batch has no tensor '{score_key}' (verl computes it in the reward step before the hook)")
    if "uid" not in batch.non_tensor_batch:
        raise ValueError("the batch has no non_tensor 'uid' field (RayPPOTrainer.fit adds it per prompt)")
    present = {name: batch.non_tensor_batch[name] for name in extras if name in batch.non_tensor_batch}
    return Rollouts.from_columns(
        group_keys=batch.non_tensor_batch["uid"],
        extra_infos=_extra_infos(batch),
        scores=batch.batch[score_key].sum(dim=-1).double().cpu().numpy(),
        reward_extras=present,
        where="the batch",
    )


def prompt_rows(batch: Any) -> tuple[np.ndarray, list]:
    """(``uid``, ``extra_info``) of every prompt row of a generation batch, before rollout."""
    uids = batch.non_tensor_batch.get("uid")
    if uids is None:
        raise ValueError("the rollout batch has no non_tensor 'uid' field (RayPPOTrainer.fit adds it per prompt)")
    return np.asarray(uids).astype(str), _extra_infos(batch)


def output_sequence_scores(output: Any, key: str = "rm_scores") -> Optional[np.ndarray]:
    """Per-row ``output.batch[key].sum(-1)`` of a rollout output, or None when it carries no ``key``."""
    tensors = getattr(output, "batch", None)
    if tensors is None or key not in tensors.keys():
        return None
    return tensors[key].sum(dim=-1).double().cpu().numpy()


def is_validation(batch: Any) -> bool:
    """Whether a generation batch is verl's validation pass (``meta_info["validate"]``)."""
    return bool(batch.meta_info.get("validate", False))


def trainer_step_batch() -> Optional[Any]:
    """The batch of the verl trainer step on the call stack, once it holds the step's rewards; else None.

    Called from the sampler's ``state_dict`` while ``RayPPOTrainer._save_checkpoint`` runs: the step's
    ``batch`` is a local of ``RayPPOTrainer.fit`` (``ray_trainer.py:1529``; the rewards were set at
    ``ray_trainer.py:1452``) or of ``SeparateRayPPOTrainer.fit_step``.
    """
    for local_vars, _, _ in trainer_step_frames(sys._getframe(1)):
        batch = local_vars.get("batch")
        tensors = getattr(batch, "batch", None)
        if tensors is not None and hasattr(batch, "non_tensor_batch") and "token_level_scores" in tensors.keys():
            return batch
    return None


def trainer_step_holding(key: str, tensor: Any) -> Optional[dict]:
    """The locals of the verl trainer-step frame on the call stack whose ``batch.batch[key]`` is ``tensor``.

    ``RayPPOTrainer.fit`` (verl 0.7.1) keeps there the step's ``batch`` and the old-log-prob pass's
    full-vocabulary ``entropys``, which it reads before popping them from the batch
    (``ray_trainer.py:1404-1419``); ``SeparateRayPPOTrainer._fit_compute_advantage`` only its ``batch``.
    """
    for local_vars, _, _ in trainer_step_frames(sys._getframe(1)):
        tensors = getattr(local_vars.get("batch"), "batch", None)
        if tensors is not None and key in tensors.keys() and tensors[key].data_ptr() == tensor.data_ptr():
            return local_vars
    return None


def build_rollout_batch(batch_dict: dict, rollout_n: int, sequence_rewards: np.ndarray, response_length: int = 4):
    """A batch shaped as ``RayPPOTrainer.fit`` hands it to ``sampler.update`` (verl 0.7.1).

    Mirrors ``fit``: ``DataProto.from_single_dict(batch_dict)``, a fresh ``uid`` per prompt,
    ``repeat(rollout.n, interleave=True)``; then, standing in for generation and the reward step,
    a ``response_mask`` of ones and ``token_level_scores``/``token_level_rewards`` holding each
    rollout's reward at its last response token (``sequence_rewards`` has ``len * rollout_n``
    entries, rollout-major within each prompt as ``repeat`` lays them out).
    """
    import uuid

    import torch

    from verl import DataProto

    batch = DataProto.from_single_dict(batch_dict)
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
    batch = batch.repeat(repeat_times=rollout_n, interleave=True)
    rewards = torch.as_tensor(np.asarray(sequence_rewards, dtype=np.float32))
    if rewards.shape != (len(batch),):
        raise ValueError(f"need {len(batch)} rewards ({len(batch) // rollout_n} prompts x {rollout_n}), got {tuple(rewards.shape)}")
    scores = torch.zeros(len(batch), response_length)
    scores[:, -1] = rewards
    batch.batch["response_mask"] = torch.ones(len(batch), response_length, dtype=torch.int64)
    batch.batch["token_level_scores"] = scores
    batch.batch["token_level_rewards"] = scores.clone()
    return batch
