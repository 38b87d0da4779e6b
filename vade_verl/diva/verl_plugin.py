"""DIVA-GRPO in verl 0.7.1: dataset with variant expansion, uid recorder, advantage estimator.

Selected by configuration alone (see docs/diva.md and recipes/diva/)::

    data.custom_cls.path=pkg://vade_verl.diva.verl_plugin data.custom_cls.name=DivaRLHFDataset
    data.dataloader_num_workers=0
    +actor_rollout_ref.rollout.agent.agent_loop_manager_class=vade_verl.diva.verl_plugin.DivaAgentLoopManager
    algorithm.adv_estimator=diva_grpo   [+algorithm.diva.k=0.1 ...]  [+data.diva.num_variants=1 ...]

Loading either configured class imports this module in the driver (verl's TaskRunner), which
registers the ``diva_grpo`` advantage estimator there (``VERL_USE_EXTERNAL_MODULES=vade_verl.diva.verl_plugin``
does the same in every process). How the pieces meet in ``RayPPOTrainer.fit`` (all in the driver,
verl 0.7.1 ``verl/trainer/ppo/ray_trainer.py``):

1. Batch: the dataloader asks ``DivaRLHFDataset.__getitems__(problem indices)`` (torch's batched
   fetch), which returns the B original rows followed by ``num_variants`` variants of each, drawn
   for the problem's current difficulty. Every row's ``extra_info`` carries ``diva_problem_id``
   (dataset position of the original problem), ``diva_difficulty`` (the row's own difficulty) and
   ``diva_variant`` (the variant kind, "original" for the problem itself).
2. uid: ``fit`` then gives each row a fresh uuid ``uid`` and calls the rollout manager.
   ``DivaAgentLoopManager.generate_sequences`` records ``uid -> (problem id, difficulty)`` from the
   rows' ``extra_info`` (training calls only) and, from its output, each rollout's task score
   (``rm_scores``: the reward function's score, before any KL penalty). Records accumulate over
   every generation call of a step (a trainer that regenerates to fill a batch calls it repeatedly).
3. Advantage: verl calls the registered estimator with ``token_level_rewards`` and ``index`` (the
   uid array) only; it looks the uids up, computes :func:`vade_verl.diva.advantage.compute_diva_advantage`
   on the summed rewards, updates each problem's difficulty from the correctness of the task
   scores of the problem and its variants (:mod:`vade_verl.verl_adapters.rewards`), and clears the step's record.
4. Checkpoint: ``fit`` saves after the advantage, so the difficulty table (and the per-problem
   draw counters that make variants reproducible) in ``DivaRLHFDataset.state_dict`` -- saved by
   verl's ``StatefulDataLoader`` in ``data.pt`` -- already holds the step's update: a resumed run
   continues exactly.

Why a recorder in the rollout manager: in 0.7.1 ``compute_advantage`` passes a custom estimator
no non-tensor data and no ``token_level_scores``, and ``fit`` overwrites any ``uid`` the dataset
writes, so the uid -> problem map can only be built after ``fit`` makes the uids; the rollout
manager is the only configurable driver-side object that sees the batch between that point and
``compute_advantage``, and (with verl's default agent-loop reward) the only one that sees the task
scores apart from the KL penalty that ``algorithm.use_kl_in_reward`` adds to ``token_level_rewards``.
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
from vade_verl.diva.advantage import DifficultyConfig, DifficultyTracker, DivaAdvantageConfig, compute_diva_advantage
from vade_verl.verl_adapters.data_check import check_plugin_dataset
from vade_verl.diva.variants import (
    VariantConfig,
    VariantContent,
    bound_pixels,
    make_variants,
    row_field,
    row_question,
)
from vade_verl.verl_adapters.rewards import CorrectnessRule, as_correctness
from vade_verl.verl_adapters.batch import ORIGINAL_VARIANT, VARIANT_FIELD, is_validation, output_sequence_scores, prompt_rows
from vade_verl.verl_adapters.metrics import publish_to_fit_metrics

logger = logging.getLogger(__name__)

ADV_ESTIMATOR_NAME = "diva_grpo"
PROBLEM_ID_KEY = "diva_problem_id"
DIFFICULTY_KEY = "diva_difficulty"
VARIANT_KEY = VARIANT_FIELD
ORIGINAL = ORIGINAL_VARIANT
CORRECTNESS_KEY = "algorithm.diva.correctness"
QWEN_MAX_PIXELS = 16384 * 28 * 28
"""qwen_vl_utils' default bound on an image's pixels (``IMAGE_MAX_TOKEN_NUM * patch_factor ** 2``), used when
neither ``data.diva.max_pixels`` nor the processor names one."""
IMAGE_SIZE_KEYS = ("min_pixels", "max_pixels", "resized_height", "resized_width")
"""Keys of an image part that qwen_vl_utils' ``fetch_image`` reads; a variant's image part keeps them."""


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node


def _file_list(files: Any) -> list[str]:
    files = _plain(files)
    if files is None:
        return []
    return [str(f) for f in (files if isinstance(files, list | tuple) else [files])]


class DivaDriverState:
    """Driver-process state shared by the dataset, the rollout manager and the estimator.

    ``items`` and ``task_scores`` hold the current training step: every generation call adds to them,
    the estimator reads and then clears them.
    """

    def __init__(self):
        self.train_dataset: DivaRLHFDataset | None = None
        self.items: dict[str, tuple[int, int]] = {}
        self.task_scores: dict[str, np.ndarray] = {}
        self.last_metrics: dict[str, float] = {}

    def record_prompts(self, uids: Sequence[str], infos: Sequence[Any]) -> int:
        """Add this call's rows (``uid``, ``extra_info``) to the uid map; returns how many rows lacked DIVA fields."""
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

    def record_scores(self, uids: Sequence[str], scores: np.ndarray | None) -> int:
        """Keep each rollout's task score (``rm_scores`` summed) by uid; score i answers prompt row i.

        Returns the number of rows recorded (0 when the output carries no ``rm_scores``: the reward
        is computed later, e.g. by a colocated reward model).
        """
        if scores is None:
            return 0
        if len(scores) != len(uids):
            raise ValueError(f"DIVA: the rollout output has {len(scores)} rows for {len(uids)} prompt rows")
        keys = np.asarray(uids).astype(str)
        for uid in np.unique(keys):
            self.task_scores[uid] = scores[keys == uid]
        return len(scores)

    def lookup(self, uids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(problem ids, item difficulties) of each uid; a uid that was never recorded is an error."""
        unknown = sorted({str(u) for u in uids} - self.items.keys())
        if unknown:
            raise KeyError(
                f"DIVA: {len(unknown)} uid(s) have no recorded problem id (e.g. {unknown[0]!r}). The estimator "
                "needs +actor_rollout_ref.rollout.agent.agent_loop_manager_class="
                "vade_verl.diva.verl_plugin.DivaAgentLoopManager and data.custom_cls.name=DivaRLHFDataset"
            )
        pairs = np.array([self.items[str(u)] for u in uids], dtype=np.int64).reshape(len(uids), 2)
        return pairs[:, 0], pairs[:, 1]

    def end_step(self) -> None:
        self.items = {}
        self.task_scores = {}


DRIVER = DivaDriverState()


# ---------------------------------------------------------------------------------------------
# Advantage estimator
# ---------------------------------------------------------------------------------------------
def step_task_scores(uids: np.ndarray, rewards: np.ndarray, use_kl_in_reward: bool) -> tuple[dict[str, np.ndarray], bool]:
    """Task scores of the step by uid: the rollout manager's record when it covers every uid, else
    the summed ``token_level_rewards`` (which hold the KL penalty when ``use_kl_in_reward``).
    Returns (scores by uid, whether they came from the record)."""
    wanted = set(uids.tolist())
    if wanted <= DRIVER.task_scores.keys():
        return {u: DRIVER.task_scores[u] for u in wanted}, True
    if use_kl_in_reward:
        logger.warning(
            "DIVA: no task scores recorded for this step (reward computed outside the agent loop); the "
            "difficulty update reads token_level_rewards, which include the KL penalty (use_kl_in_reward)"
        )
    return {u: rewards[uids == u] for u in wanted}, False


def _difficulty_evidence(scores_by_uid: dict[str, np.ndarray], rule: CorrectnessRule):
    """(problem id per evidence row, correctness per row). Scores the rule cannot read are an error: skipping
    them would freeze every problem's difficulty for the whole run while the advantage still trains."""
    uids = sorted(scores_by_uid)
    problems = np.concatenate([np.full(len(scores_by_uid[u]), DRIVER.items[u][0]) for u in uids]) if uids else np.zeros(0)
    scores = np.concatenate([scores_by_uid[u] for u in uids]) if uids else np.zeros(0)
    try:
        return problems.astype(np.int64), as_correctness(scores, rule, CORRECTNESS_KEY)
    except ValueError as err:
        raise ValueError(f"DIVA: the difficulty update cannot read this step's task scores: {err}") from err


@register_adv_est(ADV_ESTIMATOR_NAME)
def compute_diva_grpo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    config: Any = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DIVA-GRPO advantage (``algorithm.adv_estimator=diva_grpo``), broadcast over response tokens.

    Options under ``algorithm.diva``: :class:`vade_verl.diva.advantage.DivaAdvantageConfig` fields and
    ``correctness`` (:class:`vade_verl.verl_adapters.rewards.CorrectnessRule`: "auto", "fractional" or a number),
    which turns task scores into the correctness the difficulty update counts; the std division
    follows ``algorithm.norm_adv_by_std_in_grpo``. The advantage ranks the summed
    ``token_level_rewards`` (any finite values); the low-reward damping and the difficulty update
    read the task scores (:func:`step_task_scores`). Scores the correctness rule cannot read (partial
    credit, a 0-10 scale under ``auto``) are an error naming ``algorithm.diva.correctness``; NaN scores
    are left out of the update and counted (``diva/difficulty_rows_skipped``). Side effect: when a DIVA training dataset lives in this process, each problem's difficulty
    is updated; the step's uid record is cleared.
    """
    if index is None:
        raise ValueError("diva_grpo needs verl's uid array (index=); got none")
    config = config if config is not None else {}
    options = dict(_plain(config.get("diva", None)) or {})
    rule = CorrectnessRule.parse(options.pop("correctness", "auto"), CORRECTNESS_KEY)
    cfg = DivaAdvantageConfig.from_mapping(options, norm_by_std=bool(config.get("norm_adv_by_std_in_grpo", True)))
    uids = np.asarray(index).astype(str)
    problem_ids, difficulty = DRIVER.lookup(uids)
    rewards = token_level_rewards.sum(dim=-1)
    scores_by_uid, recorded = step_task_scores(
        uids, rewards.detach().double().cpu().numpy(), bool(config.get("use_kl_in_reward", False))
    )
    low_uid = {u: bool(np.all(s < cfg.low_reward_threshold)) for u, s in scores_by_uid.items()}
    adv, parts = compute_diva_advantage(rewards, uids, problem_ids, difficulty, cfg, [low_uid[u] for u in uids])
    evidence_problems, correct = _difficulty_evidence(scores_by_uid, rule)
    skipped = int(np.isnan(correct).sum())
    if skipped:
        logger.warning("DIVA: %d rollouts with NaN task score left out of the difficulty update", skipped)
    metrics = {
        "diva/mean_item_difficulty": float(difficulty.mean()),
        "diva/abs_dd_mean": float(parts["dd"].abs().mean()),
        "diva/low_local_rows": int(parts["low_local"].sum()),
        "diva/low_global_rows": int(parts["low_global"].sum()),
        "diva/task_scores_recorded": float(recorded),
        "diva/difficulty_rows_skipped": skipped,
    }
    if skipped < len(correct):
        metrics["diva/correct_rate"] = float(np.nanmean(correct))
    if DRIVER.train_dataset is not None:
        changes = DRIVER.train_dataset.update_difficulty(evidence_problems, correct)
        metrics.update(
            {
                "diva/problems_updated": len(changes),
                "diva/mean_problem_difficulty": float(DRIVER.train_dataset.tracker.difficulty.mean()),
            }
        )
    DRIVER.end_step()
    DRIVER.last_metrics = metrics
    if not publish_to_fit_metrics(metrics):
        logger.info("DIVA advantage: %s", metrics)
    adv = adv.unsqueeze(-1) * response_mask
    return adv, adv


# ---------------------------------------------------------------------------------------------
# Rollout manager: records uid -> (problem id, difficulty) and task scores in the driver
# ---------------------------------------------------------------------------------------------
class DivaAgentLoopManager(AgentLoopManager):
    """verl's ``AgentLoopManager`` plus the DIVA uid and task-score record (training batches only)."""

    @auto_await
    async def generate_sequences(self, prompts):
        if is_validation(prompts):
            return await super().generate_sequences(prompts)
        uids, infos = prompt_rows(prompts)
        DRIVER.record_prompts(uids, infos)
        output = await super().generate_sequences(prompts)
        DRIVER.record_scores(uids, output_sequence_scores(output, "rm_scores"))
        return output


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


def _variant_text(parts_text: list[str], content: VariantContent, question: str) -> tuple[list[str], bool]:
    """New texts for the target message's text parts: the question replaced in place by the variant's.

    The first text part that contains ``question`` gets it replaced (the rest of the message, e.g. an
    answer-format instruction, stays); if none does, all text is taken as the question and one text
    comes back. Returns (texts, whether the question was found).
    """
    if content.replace_text is None and content.append_text is None:
        return parts_text, True
    for i, text in enumerate(parts_text):
        if question and question in text:
            return [*parts_text[:i], text.replace(question, content.question(question), 1), *parts_text[i + 1 :]], True
    return [content.question(" ".join(t.strip() for t in parts_text if t.strip()))], False


def _variant_messages(messages: list[dict], content: VariantContent, question: str) -> tuple[list[dict], bool]:
    """Copy of the processed chat ``messages`` with the variant's images and question.

    ``messages`` is ``raw_prompt`` as verl's ``RLHFDataset._build_messages`` made it (verl 0.7.1
    ``verl/utils/dataset/rl_dataset.py``): a message with images has a content list with
    ``{"type": "image", "image": PIL}`` parts where ``<image>`` stood; other messages keep a plain
    string (and stay strings here, for text-only chat templates). Images keep their places. Returns
    (messages, whether ``question`` was found in the last user message; see :func:`_variant_text`).
    """
    new_images = iter(content.images)
    target = _last_user_message(messages)
    found = True
    out = []
    for message in messages:
        parts = message["content"]
        if isinstance(parts, str):
            if message is target:
                (parts,), found = _variant_text([parts], content, question)
            out.append({**message, "content": parts})
            continue
        new_parts = [_image_part(next(new_images), p) if p.get("type") == "image" else dict(p) for p in parts]
        if message is target:
            text_at = [i for i, p in enumerate(new_parts) if p.get("type") == "text"]
            texts, found = _variant_text([new_parts[i]["text"] for i in text_at], content, question)
            if found:
                for i, text in zip(text_at, texts, strict=True):
                    new_parts[i] = _text_part(text)
            else:
                new_parts = [p for p in new_parts if p.get("type") != "text"] + [_text_part(texts[0])]
        out.append({**message, "content": new_parts})
    leftover = sum(1 for _ in new_images)
    if leftover:
        raise ValueError(f"DIVA: the variant has {leftover} more image(s) than the prompt has image slots")
    return out, found


def _image_part(image: Image.Image, original: dict) -> dict:
    """A variant's image part: the new image, with the original part's size bounds (``IMAGE_SIZE_KEYS``)."""
    return {"type": "image", "image": image, **{k: original[k] for k in IMAGE_SIZE_KEYS if k in original}}


def _message_images(messages: list[dict]) -> list[Image.Image]:
    return [
        _decode_image(part)
        for message in messages
        if not isinstance(message["content"], str)
        for part in message["content"]
        if part.get("type") == "image"
    ]


class DivaRLHFDataset(RLHFDataset):
    """``RLHFDataset`` whose training batches also hold difficulty-matched variants of each problem.

    Options under ``data.diva`` (all optional): ``num_variants`` (1), ``seed`` (``data.seed`` or 0),
    ``paraphrase_key`` ("paraphrase": one reworded question or a list of them), ``solution_key``
    ("solution": reasoning steps, a list or one per line), ``question_key`` ("question": the bare
    problem inside the prompt, which a paraphrase or hint rewrites while the rest of the prompt stays),
    ``difficulty_key`` ("difficulty": start difficulties), ``max_pixels`` (None: variants are perturbed at the
    processor's ``max_pixels``, what the model sees; a number also bounds every image the model sees, originals
    included, through qwen_vl_utils' per-image ``max_pixels``), ``difficulty`` (a
    :class:`~vade_verl.diva.advantage.DifficultyConfig` block) and ``variants`` (a
    :class:`~vade_verl.diva.variants.VariantConfig` block). The columns are read from the parquet's top
    level, or else from ``extra_info``; ``python -m vade_verl.diva.prep`` writes paraphrase and
    solution columns with a model.

    Only the training dataset expands: the one built from ``data.train_files`` (when train and
    validation files are the same, the first one built with this config). Variants need
    ``data.dataloader_num_workers=0`` so that they are drawn in the driver, from the live difficulties.
    """

    def __init__(self, data_files, tokenizer, config, processor=None, max_samples: int = -1):
        super().__init__(data_files, tokenizer, config, processor=processor, max_samples=max_samples)
        check_plugin_dataset(self)  # images vs model: fail before any rollout, naming data.image_key
        options = dict(_plain(config.get("diva", None)) or {})
        self.num_variants = int(options.pop("num_variants", 1))
        self.variant_seed = int(options.pop("seed", config.get("seed", None) or 0))
        self.paraphrase_key = options.pop("paraphrase_key", "paraphrase")
        self.solution_key = options.pop("solution_key", "solution")
        self.question_key = options.pop("question_key", "question")
        self.difficulty_key = options.pop("difficulty_key", "difficulty")
        self.max_pixels = options.pop("max_pixels", None)
        self.difficulty_cfg = DifficultyConfig.from_mapping(options.pop("difficulty", None))
        self.variant_cfg = VariantConfig.from_mapping(options.pop("variants", None))
        if options:
            raise ValueError(f"data.diva: unknown key(s) {sorted(options)}")
        if self.num_variants < 0:
            raise ValueError(f"data.diva.num_variants must be >= 0, got {self.num_variants}")
        if self.max_pixels is not None and int(self.max_pixels) < 1:
            raise ValueError(f"data.diva.max_pixels must be a positive pixel count, got {self.max_pixels}")
        self.perturb_pixels = int(self.max_pixels or getattr(getattr(processor, "image_processor", None), "max_pixels",
                                                             None) or QWEN_MAX_PIXELS)

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
            self._log_layout(config)
            DRIVER.train_dataset = self

    def _log_layout(self, config) -> None:
        """Say which variant sources the data has and how many prompts a step will hold."""
        columns = self.dataframe.column_names
        infos = self.dataframe["extra_info"] if "extra_info" in columns else [None] * len(self)
        consequence = {
            self.paraphrase_key: "their D = 0 variants fall back (data.diva.variants.fallback=%s)" % self.variant_cfg.fallback,
            self.solution_key: "their D < 0 variants (hard problems: d >= 6 with one variant) are copies, not hints; "
            "python -m vade_verl.diva.prep writes the column",
            self.question_key: "their variants rewrite the whole user message: a paraphrase or rendered question "
            "loses any answer-format instruction in it, a hint or rotation note lands after it (counted in "
            "variant_counts['question_from_prompt']; data.diva.question_key names the bare problem)",
        }
        for key, then in consequence.items():
            values = self.dataframe[key] if key in columns else [(info or {}).get(key) for info in infos]
            missing = sum(v is None or len(v) == 0 for v in values)
            logger.log(logging.WARNING if missing else logging.INFO, "DIVA: %d of %d rows have no '%s'%s",
                       missing, len(self), key, f": {then}" if missing else "")  # fmt: skip
        problems = int(config.get("gen_batch_size", None) or config.get("train_batch_size"))
        logger.info(
            "DIVA: %d problems per loader batch -> %d prompts per step with %d variant(s) each "
            "(data.train_batch_size=%s; the authors' loader takes ceil(prompts / (1 + variants)) problems)",
            problems, problems * (1 + self.num_variants), self.num_variants, config.get("train_batch_size"),
        )  # fmt: skip

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
        if self.max_pixels is not None:  # the model sees originals and variants at the same bound
            for message in row["raw_prompt"]:
                for part in [] if isinstance(message["content"], str) else message["content"]:
                    if part.get("type") == "image":
                        part["max_pixels"] = int(self.max_pixels)
        row["extra_info"] = {
            **row["extra_info"],
            PROBLEM_ID_KEY: int(item),
            DIFFICULTY_KEY: int(self.tracker.difficulty[item]),
            VARIANT_KEY: ORIGINAL,
        }
        return row

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """The originals of ``indices``, then variant 1 of each, variant 2 of each, ... (training dataset only)."""
        rows = [self[i] for i in indices]
        if not self.is_train or not self.num_variants:
            return rows
        variants = [self.make_variant_rows(int(i)) for i in indices]
        return rows + [per_problem[j] for j in range(self.num_variants) for per_problem in variants]

    def variant_rng(self, item: int) -> np.random.Generator:
        """Generator of ``item``'s next variants: fixed by (seed, problem, how many times it was drawn before)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.variant_seed, item, int(self.draws[item])]))
        self.draws[item] += 1
        return rng

    def make_variant_rows(self, item: int) -> list[dict]:
        """``num_variants`` variant rows of problem ``item``, drawn for its current difficulty."""
        original = self[item]
        source = self.dataframe[item]
        question = row_question(source, self.question_key, self.prompt_key)
        variants = make_variants(
            int(self.tracker.difficulty[item]),
            self.num_variants,
            [bound_pixels(image, self.perturb_pixels) for image in _message_images(original["raw_prompt"])],
            question,
            self.variant_rng(item),
            self.variant_cfg,
            self.difficulty_cfg,
            paraphrases=row_field(source, self.paraphrase_key),
            solution=row_field(source, self.solution_key),
        )
        whole_prompt = not row_field(source, self.question_key)
        rows = []
        for spec, content in variants:
            self.variant_counts[spec.kind] += 1
            if whole_prompt and (content.replace_text is not None or content.append_text is not None):
                self.variant_counts["question_from_prompt"] += 1
            if spec.fallback:
                self.variant_counts[f"fallback_{spec.fallback}"] += 1
                logger.info("DIVA: problem %d variant fell back to %s (%s)", item, spec.kind, spec.fallback)
            messages, found = _variant_messages(original["raw_prompt"], content, question)
            if not found:
                self.variant_counts["question_not_in_prompt"] += 1
                logger.log(
                    logging.WARNING if self.variant_counts["question_not_in_prompt"] == 1 else logging.INFO,
                    "DIVA: problem %d: its '%s' text is not in the prompt's last user message, so the variant "
                    "rewrites that whole message (any answer-format instruction in it is lost)",
                    item, self.question_key,
                )  # fmt: skip
            row = {**original, "raw_prompt": messages, self.prompt_key: messages}
            row["extra_info"] = {
                **original["extra_info"],
                DIFFICULTY_KEY: spec.difficulty,
                "diva_drawn_difficulty": spec.drawn_difficulty,
                VARIANT_KEY: spec.kind,
                "diva_ops": [name for name, _ in spec.ops],
                "diva_hint_steps": spec.hint_steps,
                "diva_paraphrased": spec.paraphrased,
            }
            rows.append(row)
        return rows

    # -- difficulty ------------------------------------------------------------------------------
    def update_difficulty(self, problem_ids: np.ndarray, correctness: np.ndarray) -> dict:
        return self.tracker.update(problem_ids, correctness)

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
