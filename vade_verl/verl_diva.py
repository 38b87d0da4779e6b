"""DIVA-GRPO in verl 0.7.1: dataset with variant expansion, uid recorder, advantage estimator.

Selected by configuration alone (see docs/diva.md and recipes/diva/)::

    data.custom_cls.path=pkg://vade_verl.verl_diva data.custom_cls.name=DivaRLHFDataset
    data.dataloader_num_workers=0
    +actor_rollout_ref.rollout.agent.agent_loop_manager_class=vade_verl.verl_diva.DivaAgentLoopManager
    algorithm.adv_estimator=diva_grpo   [+algorithm.diva.k=0.1 ...]  [+data.diva.num_variants=1 ...]

Loading either configured class imports this module in the driver (verl's TaskRunner), which
registers the ``diva_grpo`` advantage estimator there (``VERL_USE_EXTERNAL_MODULES=vade_verl.verl_diva``
does the same in every process). How the pieces meet in ``RayPPOTrainer.fit`` (all in the driver):

1. Batch: the dataloader asks ``DivaRLHFDataset.__getitems__(problem indices)`` (torch's batched
   fetch), which returns the B original rows followed by ``num_variants`` variants of each, drawn
   for the problem's current difficulty. Every row's ``extra_info`` carries ``diva_problem_id``
   (dataset position of the original problem), ``diva_difficulty`` (the row's own difficulty) and
   ``diva_variant`` (the variant kind, "original" for the problem itself). The step therefore
   has ``B * (1 + num_variants)`` prompts; size ``ppo_mini_batch_size`` for that.
2. uid: ``fit`` then gives each row a fresh uuid ``uid`` and calls the rollout manager.
   ``DivaAgentLoopManager.generate_sequences`` records ``uid -> (problem id, difficulty)`` from the
   rows' ``extra_info`` (training calls only) before delegating to verl's ``AgentLoopManager``.
3. Advantage: verl calls the registered estimator with ``index`` (the uid array) only; it looks
   the uids up in that record, computes :func:`vade_verl.diva_grpo.compute_diva_advantage`, and
   updates each problem's difficulty from the mean reward of the problem and its variants.
4. Checkpoint: ``fit`` saves after the advantage, so the difficulty table (and the per-problem
   draw counters that make variants reproducible) in ``DivaRLHFDataset.state_dict`` -- saved by
   verl's ``StatefulDataLoader`` in ``data.pt`` -- already holds the step's update: a resumed run
   continues exactly.

Why a recorder in the rollout manager: in 0.7.1 ``compute_advantage`` passes a custom estimator
no non-tensor data, and ``fit`` overwrites any ``uid`` the dataset writes, so the uid -> problem
map can only be built after ``fit`` makes the uids; the rollout manager is the only configurable
driver-side object that sees the batch between that point and ``compute_advantage``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from io import BytesIO
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image

from verl.experimental.agent_loop import AgentLoopManager
from verl.trainer.ppo.core_algos import register_adv_est
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.utils.ray_utils import auto_await
from vade_verl.diva_grpo import DifficultyConfig, DifficultyTracker, DivaAdvantageConfig, compute_diva_advantage
from vade_verl.diva_variants import VariantConfig, VariantContent, make_variant
from vade_verl.verl_batch import ORIGINAL_VARIANT, VARIANT_FIELD
from vade_verl.verl_metrics import publish_to_fit_metrics

logger = logging.getLogger(__name__)

ADV_ESTIMATOR_NAME = "diva_grpo"
PROBLEM_ID_KEY = "diva_problem_id"
DIFFICULTY_KEY = "diva_difficulty"
VARIANT_KEY = VARIANT_FIELD
ORIGINAL = ORIGINAL_VARIANT


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node


def _file_list(files: Any) -> list[str]:
    files = _plain(files)
    if files is None:
        return []
    return [str(f) for f in (files if isinstance(files, list | tuple) else [files])]


class DivaDriverState:
    """Driver-process state shared by the dataset, the rollout manager and the estimator."""

    def __init__(self):
        self.train_dataset: DivaRLHFDataset | None = None
        self.items: dict[str, tuple[int, int]] = {}
        self.last_metrics: dict[str, float] = {}

    def record(self, non_tensor_batch: Mapping[str, np.ndarray]) -> int:
        """Replace the uid map with this batch's rows; returns how many rows lacked DIVA fields."""
        uids, infos = non_tensor_batch.get("uid"), non_tensor_batch.get("extra_info")
        if uids is None or infos is None:
            raise ValueError("DIVA: the rollout batch has no 'uid' or 'extra_info' column")
        self.items = {}
        missing = 0
        for uid, info in zip(uids, infos, strict=True):
            if not info or PROBLEM_ID_KEY not in info or DIFFICULTY_KEY not in info:
                missing += 1
                continue
            self.items[str(uid)] = (int(info[PROBLEM_ID_KEY]), int(info[DIFFICULTY_KEY]))
        if missing:
            logger.warning(
                "DIVA: %d of %d rollout rows have no %s/%s in extra_info (is data.custom_cls DivaRLHFDataset?)",
                missing, len(uids), PROBLEM_ID_KEY, DIFFICULTY_KEY,
            )  # fmt: skip
        return missing

    def lookup(self, uids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(problem ids, item difficulties) of each uid; a uid that was never recorded is an error."""
        unknown = sorted({str(u) for u in uids} - self.items.keys())
        if unknown:
            raise KeyError(
                f"DIVA: {len(unknown)} uid(s) have no recorded problem id (e.g. {unknown[0]!r}). The estimator "
                "needs +actor_rollout_ref.rollout.agent.agent_loop_manager_class="
                "vade_verl.verl_diva.DivaAgentLoopManager and data.custom_cls.name=DivaRLHFDataset"
            )
        pairs = np.array([self.items[str(u)] for u in uids], dtype=np.int64).reshape(len(uids), 2)
        return pairs[:, 0], pairs[:, 1]


DRIVER = DivaDriverState()


# ---------------------------------------------------------------------------------------------
# Advantage estimator
# ---------------------------------------------------------------------------------------------
@register_adv_est(ADV_ESTIMATOR_NAME)
def compute_diva_grpo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    config: Any = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DIVA-GRPO advantage (``algorithm.adv_estimator=diva_grpo``), broadcast over response tokens.

    Options under ``algorithm.diva`` (:class:`vade_verl.diva_grpo.DivaAdvantageConfig`); the std
    division follows ``algorithm.norm_adv_by_std_in_grpo``. Side effect: when a DIVA training
    dataset lives in this process, each problem's difficulty is updated from the batch.
    """
    if index is None:
        raise ValueError("diva_grpo needs verl's uid array (index=); got none")
    config = config if config is not None else {}
    cfg = DivaAdvantageConfig.from_mapping(
        _plain(config.get("diva", None)), norm_by_std=bool(config.get("norm_adv_by_std_in_grpo", True))
    )
    problem_ids, difficulty = DRIVER.lookup(index)
    scores = token_level_rewards.sum(dim=-1)
    adv, parts = compute_diva_advantage(scores, index, problem_ids, difficulty, cfg)
    metrics = {
        "diva/mean_item_difficulty": float(difficulty.mean()),
        "diva/abs_dd_mean": float(parts["dd"].abs().mean()),
        "diva/low_reward_rows": int(parts["low_reward_mask"].sum()),
    }
    if DRIVER.train_dataset is not None:
        changes = DRIVER.train_dataset.update_difficulty(problem_ids, scores.detach().cpu().numpy())
        metrics.update(
            {
                "diva/problems_updated": len(changes),
                "diva/mean_problem_difficulty": float(DRIVER.train_dataset.tracker.difficulty.mean()),
            }
        )
    DRIVER.last_metrics = metrics
    if not publish_to_fit_metrics(metrics):
        logger.info("DIVA advantage: %s", metrics)
    adv = adv.unsqueeze(-1) * response_mask
    return adv, adv


# ---------------------------------------------------------------------------------------------
# Rollout manager: records uid -> (problem id, difficulty) in the driver
# ---------------------------------------------------------------------------------------------
class DivaAgentLoopManager(AgentLoopManager):
    """verl's ``AgentLoopManager`` plus the DIVA uid record (training batches only)."""

    @auto_await
    async def generate_sequences(self, prompts):
        if not prompts.meta_info.get("validate", False):
            DRIVER.record(prompts.non_tensor_batch)
        return await super().generate_sequences(prompts)


# ---------------------------------------------------------------------------------------------
# Dataset: DIVA fields on every row, variants appended to each training batch
# ---------------------------------------------------------------------------------------------
def _decode_image(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, dict) and image.get("image") is not None:
        return image["image"]
    if isinstance(image, dict) and image.get("bytes") is not None:
        return Image.open(BytesIO(image["bytes"]))
    raise TypeError(f"DIVA: cannot read image entry of type {type(image).__name__} (keys: {list(image)[:5]})")


def _last_user_message(messages: list[dict]) -> dict:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message
    raise ValueError("DIVA: the prompt has no user message to build a variant from")


def _text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def _variant_messages(messages: list[dict], content: VariantContent) -> list[dict]:
    """Copy of the processed chat ``messages`` with the variant's images and text.

    ``messages`` is ``raw_prompt`` as verl's ``RLHFDataset._build_messages`` made it: a message with
    images has a content list with ``{"type": "image", "image": PIL}`` parts where ``<image>`` stood;
    other messages keep a plain string (and stay strings here, for text-only chat templates). Images
    keep their places; a paraphrase replaces the last user message's text; ``append_text`` goes after it.
    """
    new_images = iter(content.images)
    target = _last_user_message(messages)
    out = []
    for message in messages:
        parts = message["content"]
        if isinstance(parts, str):
            out.append({**message, "content": content.question(parts) if message is target else parts})
            continue
        new_parts = []
        for part in parts:
            if part.get("type") == "image":
                new_parts.append({"type": "image", "image": next(new_images)})
            elif not (message is target and content.replace_text is not None and part.get("type") == "text"):
                new_parts.append(dict(part))
        if message is target:
            if content.replace_text is not None:
                new_parts.append(_text_part(content.replace_text))
            if content.append_text is not None:
                new_parts.append(_text_part(f"\n\n{content.append_text}"))
        out.append({**message, "content": new_parts})
    leftover = sum(1 for _ in new_images)
    if leftover:
        raise ValueError(f"DIVA: the variant has {leftover} more image(s) than the prompt has image slots")
    return out


def _message_images(messages: list[dict]) -> list[Image.Image]:
    return [
        _decode_image(part)
        for message in messages
        if not isinstance(message["content"], str)
        for part in message["content"]
        if part.get("type") == "image"
    ]


class DivaRLHFDataset(RLHFDataset):
    """``RLHFDataset`` whose training batches also hold a difficulty-matched variant of each problem.

    Options under ``data.diva`` (all optional): ``num_variants`` (1), ``seed`` (``data.seed`` or 0),
    ``paraphrase_key`` ("paraphrase"), ``solution_key`` ("solution"), ``difficulty_key``
    ("difficulty"; a column giving start difficulties), ``difficulty`` (a
    :class:`~vade_verl.diva_grpo.DifficultyConfig` block) and ``variants`` (a
    :class:`~vade_verl.diva_variants.VariantConfig` block). The three columns are read from the
    parquet's top level, or else from ``extra_info``.

    Only the training dataset expands: the one built from ``data.train_files`` (when train and
    validation files are the same, the first one built with this config). Variants need
    ``data.dataloader_num_workers=0`` so that they are drawn in the driver, from the live difficulties.
    """

    def __init__(self, data_files, tokenizer, config, processor=None, max_samples: int = -1):
        super().__init__(data_files, tokenizer, config, processor=processor, max_samples=max_samples)
        options = dict(_plain(config.get("diva", None)) or {})
        self.num_variants = int(options.pop("num_variants", 1))
        self.variant_seed = int(options.pop("seed", config.get("seed", None) or 0))
        self.paraphrase_key = options.pop("paraphrase_key", "paraphrase")
        self.solution_key = options.pop("solution_key", "solution")
        self.difficulty_key = options.pop("difficulty_key", "difficulty")
        self.difficulty_cfg = DifficultyConfig.from_mapping(options.pop("difficulty", None))
        self.variant_cfg = VariantConfig.from_mapping(options.pop("variants", None))
        if options:
            raise ValueError(f"data.diva: unknown key(s) {sorted(options)}")
        if self.num_variants < 0:
            raise ValueError(f"data.diva.num_variants must be >= 0, got {self.num_variants}")

        files = _file_list(self.original_data_files)
        previous = DRIVER.train_dataset
        first_with_config = previous is None or previous.config is not config
        self.is_train = files == _file_list(config.get("train_files", None)) and (
            files != _file_list(config.get("val_files", None)) or first_with_config
        )
        self.tracker = DifficultyTracker(len(self), self.difficulty_cfg, initial=self._initial_difficulty())
        self.draws = np.zeros(len(self), dtype=np.int64)
        self.variant_counts: Counter = Counter()
        if self.is_train:
            if self.num_variants and int(config.get("dataloader_num_workers", 0)) != 0:
                raise ValueError(
                    "DIVA variants are drawn from the driver's live difficulties: set data.dataloader_num_workers=0"
                )
            DRIVER.train_dataset = self

    def _column(self, key: str, row: Mapping[str, Any]) -> Any:
        if key in row:
            return row[key]
        return (row.get("extra_info") or {}).get(key)

    def _initial_difficulty(self) -> np.ndarray | None:
        key = self.difficulty_key
        if key in self.dataframe.column_names:
            values = self.dataframe[key]
        elif "extra_info" in self.dataframe.column_names and len(self) and key in (self.dataframe[0]["extra_info"] or {}):
            values = [(info or {}).get(key) for info in self.dataframe["extra_info"]]
        else:
            logger.info("DIVA: no '%s' column; every problem starts at difficulty %d", key, self.difficulty_cfg.init)
            return None
        missing = sum(v is None for v in values)
        logger.info("DIVA: start difficulties from column '%s' (%d missing -> %d)", key, missing, self.difficulty_cfg.init)
        return np.asarray([self.difficulty_cfg.init if v is None else v for v in values])

    # -- rows ------------------------------------------------------------------------------------
    def __getitem__(self, item):
        row = super().__getitem__(item)
        row["extra_info"] = {
            **row["extra_info"],
            PROBLEM_ID_KEY: int(item),
            DIFFICULTY_KEY: int(self.tracker.difficulty[item]),
            VARIANT_KEY: ORIGINAL,
        }
        return row

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """The originals of ``indices``, then ``num_variants`` variants of each (training dataset only)."""
        rows = [self[i] for i in indices]
        if not self.is_train:
            return rows
        return rows + [self.make_variant_row(int(i)) for _ in range(self.num_variants) for i in indices]

    def variant_rng(self, item: int) -> np.random.Generator:
        """Generator of the next variant of ``item``: fixed by (seed, problem, how many were drawn before)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.variant_seed, item, int(self.draws[item])]))
        self.draws[item] += 1
        return rng

    def make_variant_row(self, item: int) -> dict:
        row = self[item]
        source = self.dataframe[item]
        d = int(self.tracker.difficulty[item])
        paraphrase = self._column(self.paraphrase_key, source)
        spec, content = make_variant(
            d,
            _message_images(row["raw_prompt"]),
            self.variant_rng(item),
            self.variant_cfg,
            self.difficulty_cfg,
            # the images stay where the original prompt put them, so the paraphrase's own markers go
            paraphrase=paraphrase.replace("<image>", "").strip() if paraphrase else paraphrase,
            solution=self._column(self.solution_key, source),
        )
        self.variant_counts[spec.kind] += 1
        if spec.fallback:
            self.variant_counts[f"fallback_{spec.fallback}"] += 1
            logger.info("DIVA: problem %d variant fell back to %s (%s)", item, spec.kind, spec.fallback)
        row["raw_prompt"] = _variant_messages(row["raw_prompt"], content)
        row[self.prompt_key] = row["raw_prompt"]
        row["extra_info"] = {
            **row["extra_info"],
            DIFFICULTY_KEY: spec.difficulty,
            VARIANT_KEY: spec.kind,
            "diva_ops": [name for name, _ in spec.ops],
            "diva_hint_steps": spec.hint_steps,
        }
        return row

    # -- difficulty ------------------------------------------------------------------------------
    def update_difficulty(self, problem_ids: np.ndarray, rewards: np.ndarray) -> dict:
        return self.tracker.update(problem_ids, rewards)

    # -- checkpoint (verl's StatefulDataLoader saves this in data.pt) ----------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "tracker": self.tracker.state_dict(),
            "draws": self.draws.tolist(),
            "variant_counts": dict(self.variant_counts),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.tracker.load_state_dict(state["tracker"])
        draws = np.asarray(state["draws"], dtype=np.int64)
        if draws.shape != self.draws.shape:
            raise ValueError(f"DIVA checkpoint: {draws.shape[0]} draw counters for {len(self)} problems")
        self.draws = draws
        self.variant_counts = Counter(state["variant_counts"])
