"""MSSR in verl 0.7.1: the advantage estimator and the driver-side baseline state (no verl fork).

Importing this module registers, in verl's own registry (``verl.trainer.ppo.core_algos``), the advantage
estimator ``mssr`` (``algorithm.adv_estimator=mssr``), run on the driver, and defines
:class:`MSSRDataset`, verl's ``RLHFDataset`` plus the per-prompt Beta baselines
(``data.custom_cls.path=pkg://vade_verl.mssr.verl_plugin data.custom_cls.name=MSSRDataset``). The policy loss is
verl's vanilla clipped PPO loss (``loss_mode=vanilla``, verl's default; ``loss_mode=mssr`` is a name for
the same function, kept so that configs from before the shaping moved into the estimator still run).

All options live in one optional Hydra block, ``+data.mssr.*`` (:class:`MSSROptions`), read by the
dataset; the estimator takes them from the dataset that built its rows.

Why the baseline lives in the dataset (verl 0.7.1, ``RayPPOTrainer.fit``): a custom estimator is called
as ``fn(token_level_rewards, response_mask, config, index=uid[, reward_baselines])``
(``ray_trainer.py:190-219``); ``uid`` is a fresh ``uuid4`` per prompt per step, so the estimator cannot
tell which prompt a row is. Tensor columns a dataset emits ride along the whole step, and
``compute_advantage`` forwards the ``reward_baselines`` column to custom estimators. With
``data.dataloader_num_workers=0`` the dataset runs in the driver (TaskRunner), so ``__getitem__`` writes
per row ``reward_baselines = [position, dataset token]``. The estimator reads the baselines ``v`` of those
positions, computes ``r - v`` and at once folds the step's correctness into the Betas of the dataset
named by the token (a driver-side registry), before verl saves the step's checkpoint
(``ray_trainer.py:1529``): a checkpoint written at step k holds the baselines and the KL window through
step k, the last step of a run included. The state is checkpointed as the dataset's ``state_dict``
inside verl's ``data.pt`` (``StatefulDataLoader`` saves a ``Stateful`` dataset).

Where the entropy and the KL come from: the estimator receives no log-probs, but it runs inside ``fit``,
whose locals hold the step's ``batch`` (``old_log_probs``, ``ref_log_prob``, ``response_mask``) and
``entropys``, the full-vocabulary entropies of verl's old-log-prob pass (``ray_trainer.py:1404-1419``:
read into the local ``entropys``, then popped from the batch). ``vade_verl.verl_adapters.batch.trainer_step_holding``
finds the trainer frame whose ``batch`` holds the very ``reward_baselines`` tensor the estimator was
given (the search our plug-ins' metrics use, ``vade_verl.verl_adapters.metrics``). So the shaping happens in the estimator, as in the
authors' code (ruiiu/MSSR ``verl/trainer/core_algos.py:compute_mvsr_advantage``), with ``H_t`` from the
policy that generated the rollouts, fixed over the step's mini-batch updates; and step k's KL enters the
window before step k's rho, as in the authors' ``MVSRValueTracker.update``.

Warm start (``+data.mssr.init=warm_start``, the default, as the authors' ``mvsr_run_initialization``): a
first verl run validates the initial policy over the training set with sampling (``trainer.val_only=True
data.val_files=<train files> actor_rollout_ref.rollout.val_kwargs.do_sample=True ...temperature=1.0
trainer.validation_data_dir=DIR``, docs/mssr.md) and verl dumps one JSON line per rollout to ``DIR/0.jsonl``
(``ray_trainer.py:_dump_generations``) in dataset order (``data.validation_shuffle=False``, verl's default).
The training run names that file in ``+data.mssr.warm_start_file``; the training dataset reads it at its
first estimator call (:func:`read_warm_start_dump`: line ``j`` is position ``j // n`` for ``n`` rollouts per
prompt, each line's ``gts`` checked against the row's ``reward_model.ground_truth``) and initialises every
prompt with ``N0`` times its correctness. The validation dataset never reaches the estimator, so it never
reads the file; after a resume the checkpointed state is used instead.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import weakref
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from vade_verl.verl_adapters.data_check import check_plugin_dataset
from vade_verl.mssr.advantage import (
    MSSRBaselineConfig,
    MSSRBaselineState,
    MSSRShapingConfig,
    baseline_advantages,
    sampled_token_entropy,
    sequence_mean_kl,
    shape_advantages,
)
from vade_verl.verl_adapters.rewards import CorrectnessRule, as_correctness
from vade_verl.verl_adapters.batch import batch_tensor, dataset_ground_truths, trainer_step_holding
from vade_verl.verl_adapters.metrics import MetricsPublisher
from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla, kl_penalty, register_adv_est, register_policy_loss
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.utils.torch_functional import masked_mean

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

NAME = "mssr"
OPTIONS_KEY = "data.mssr"
CORRECTNESS_KEY = f"{OPTIONS_KEY}.correctness"
BASELINE_KEY = "reward_baselines"  # per row: [dataset position, dataset token]
INITS = ("warm_start", "first_visit")
ADVANTAGE_REWARDS = ("correctness", "score")
# verl's full-vocabulary entropy (logsumexp - sum p * logit) can come out a rounding error below zero.
ENTROPY_ROUNDING = 1e-4
STALE_ENV_PREFIX = "VADE_MSSR_"

# Driver-side registry: the estimator finds the dataset that built a batch's rows by the token in their column.
_DATASETS: "weakref.WeakValueDictionary[int, MSSRDataset]" = weakref.WeakValueDictionary()
_TOKENS = itertools.count(1)

register_policy_loss(NAME)(compute_policy_loss_vanilla)


@dataclasses.dataclass(frozen=True)
class MSSROptions:
    """Everything MSSR reads from ``+data.mssr.*`` (defaults: the authors' settings, see docs/mssr.md).

    Baseline keys (:class:`vade_verl.mssr.advantage.MSSRBaselineConfig`): ``rho_min``, ``rho_max``, ``target_kl``,
    ``kl_window``, ``rho_schedule``, ``rho``. Shaping keys (:class:`vade_verl.mssr.advantage.MSSRShapingConfig`):
    ``alpha``, ``kappa``, ``entropy``. Others: ``correctness`` (``vade_verl.verl_adapters.rewards.CorrectnessRule``:
    ``auto``, ``fractional`` or a threshold), ``advantage_reward`` (``correctness``: ``A = c - v`` with the
    correctness ``c`` the Beta counts; ``score``: the authors' ``A = score - v``), ``init`` (``warm_start`` or
    ``first_visit``) and ``warm_start_file`` (verl's validation dump, required with ``init=warm_start``).
    """

    baseline: MSSRBaselineConfig = MSSRBaselineConfig()
    shaping: MSSRShapingConfig = MSSRShapingConfig()
    correctness: CorrectnessRule = CorrectnessRule()
    advantage_reward: str = "correctness"
    init: str = "warm_start"
    warm_start_file: Optional[str] = None

    def __post_init__(self):
        if self.init not in INITS:
            raise ValueError(f"{OPTIONS_KEY}.init must be one of {INITS}, got {self.init!r}")
        if self.advantage_reward not in ADVANTAGE_REWARDS:
            raise ValueError(
                f"{OPTIONS_KEY}.advantage_reward must be one of {ADVANTAGE_REWARDS}, got {self.advantage_reward!r}"
            )
        if self.init == "warm_start" and self.warm_start_file and os.path.isdir(os.path.expanduser(self.warm_start_file)):
            raise ValueError(
                f"{OPTIONS_KEY}.warm_start_file={self.warm_start_file} is a directory; name the dump file in it, "
                f"<trainer.validation_data_dir>/0.jsonl (docs/mssr.md)"
            )
        if self.init == "warm_start" and not self.warm_start_file:
            raise ValueError(
                f"{OPTIONS_KEY}.init=warm_start (the default, as the authors run MSSR) needs "
                f"+{OPTIONS_KEY}.warm_start_file=<DIR>/0.jsonl from the warm-start pass (docs/mssr.md); "
                f"or set +{OPTIONS_KEY}.init=first_visit"
            )

    @classmethod
    def from_data_config(cls, data_config: Any) -> "MSSROptions":
        block = data_config.get("mssr") if data_config is not None else None
        if isinstance(block, DictConfig):
            block = OmegaConf.to_container(block, resolve=True)
        block = dict(block or {})
        baseline_keys = {f.name for f in dataclasses.fields(MSSRBaselineConfig)}
        shaping_keys = {f.name for f in dataclasses.fields(MSSRShapingConfig)}
        own_keys = {"correctness", "advantage_reward", "init", "warm_start_file"}
        unknown = set(block) - baseline_keys - shaping_keys - own_keys
        if unknown:
            known = sorted(baseline_keys | shaping_keys | own_keys)
            raise ValueError(f"{OPTIONS_KEY}: unknown key(s) {sorted(unknown)}; known: {known}")
        try:
            baseline = MSSRBaselineConfig(**{k: v for k, v in block.items() if k in baseline_keys})
            shaping = MSSRShapingConfig(**{k: v for k, v in block.items() if k in shaping_keys})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{OPTIONS_KEY}: {err}") from err
        return cls(
            baseline=baseline,
            shaping=shaping,
            correctness=CorrectnessRule.parse(block.get("correctness"), CORRECTNESS_KEY),
            advantage_reward=block.get("advantage_reward", "correctness"),
            init=block.get("init", "warm_start"),
            warm_start_file=block.get("warm_start_file"),
        )


def _json_plain(value: Any) -> Any:
    """A value as verl's ``_dump_generations`` writes it to JSON (numpy arrays and scalars as lists/numbers)."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=lambda x: x.tolist()))


def _dump_lines(path: str, where: str) -> list[dict]:
    """The JSON objects of a dump, one per non-empty line; a line that is not JSON is an error naming it."""
    lines = []
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{where}: line {number} is not JSON ({err.msg}; a truncated dump? rerun the warm-start pass)"
                ) from err
    return lines


def _dump_score(score: Any, index: int, where: str) -> float:
    """A dump line's ``score``: a JSON number (None/NaN: no score); anything else (a string "1.0") is an error."""
    if score is None:
        return float("nan")
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise ValueError(f"{where}: line {index + 1} has score {score!r} ({type(score).__name__}), not a number")
    return float(score)


def read_warm_start_dump(path: str, ground_truths: list, rule: CorrectnessRule) -> tuple[np.ndarray, np.ndarray, int]:
    """Warm-start evidence from verl's validation dump: ``(positions, correctness, rollouts_skipped)``.

    The dump has one line per rollout, ``n`` consecutive lines per prompt in dataset order (``_validate``
    repeats each row ``val_kwargs.n`` times, interleaved). Every line's ``gts`` must equal its row's ground
    truth, so a dump of other data, or of a shuffled or filtered order, is refused. Scores become
    correctness under ``rule`` (``data.mssr.correctness``); rollouts with a NaN score are skipped, counted.
    """
    where = f"{OPTIONS_KEY}.warm_start_file={path}"
    lines = _dump_lines(path, where)
    rows = len(ground_truths)
    if not lines or len(lines) % rows:
        raise ValueError(
            f"{where}: {len(lines)} rollouts for a training set of {rows} rows; the warm-start pass must validate "
            "over exactly this run's data.train_files with the same data settings (docs/mssr.md)"
        )
    per_prompt = len(lines) // rows
    positions = np.repeat(np.arange(rows), per_prompt)
    expected = [_json_plain(gt) for gt in ground_truths]
    for j, line in enumerate(lines):
        if "score" not in line or "gts" not in line:
            raise ValueError(f"{where}: line {j + 1} has no 'score'/'gts' (not a verl validation dump?)")
        if line["gts"] != expected[positions[j]]:
            raise ValueError(
                f"{where}: line {j + 1} has ground truth {line['gts']!r} but training row {positions[j]} has "
                f"{expected[positions[j]]!r}; the dump is not of this training set in its order (was "
                "data.validation_shuffle or data.val_max_samples changed for the pass?)"
            )
    scores = np.array([_dump_score(line["score"], j, where) for j, line in enumerate(lines)], dtype=np.float64)
    evidence = as_correctness(scores, rule, CORRECTNESS_KEY)
    keep = ~np.isnan(evidence)
    return positions[keep], evidence[keep], int((~keep).sum())


def _fit_step(reward_baselines: torch.Tensor) -> dict:
    """The locals of the verl trainer step (``RayPPOTrainer.fit``) whose batch holds ``reward_baselines``."""
    found = trainer_step_holding(BASELINE_KEY, reward_baselines)
    if found is None:
        raise RuntimeError(
            "MSSR's estimator reads this step's log-probs and entropies from verl 0.7.1's RayPPOTrainer.fit and "
            "found no trainer step holding this batch; only +data.mssr.alpha=0 with a fixed +data.mssr.rho needs none"
        )
    return found


def _token_entropy(step: dict, source: str, response_mask: torch.Tensor) -> torch.Tensor:
    """``H_t`` per response token (zero elsewhere): verl's full-vocabulary entropies or the sampled ``-p log p``."""
    if source == "full_vocab":
        entropy = step.get("entropys")
        if entropy is None:
            raise KeyError(
                f"{OPTIONS_KEY}.entropy=full_vocab reads the entropies of verl's old-log-prob pass ('entropys' in "
                f"RayPPOTrainer.fit) and this trainer step has none (rollout-correction bypass mode, or a trainer "
                f"other than RayPPOTrainer.fit): set "
                f"+{OPTIONS_KEY}.entropy=sampled"
            )
    else:
        why = f"{OPTIONS_KEY}.entropy=sampled takes -p log p of the rollout policy's log-probs"
        entropy = sampled_token_entropy(batch_tensor(step["batch"], "old_log_probs", why))
    if entropy.shape != response_mask.shape:
        raise ValueError(f"MSSR: entropies of shape {tuple(entropy.shape)} for responses {tuple(response_mask.shape)}")
    mask = response_mask.bool()
    entropy = torch.where(mask, entropy.detach().float(), 0.0)
    if mask.any() and entropy[mask].min() < -ENTROPY_ROUNDING:
        raise ValueError(f"MSSR: negative token entropy {entropy[mask].min().item()} from verl's old-log-prob pass")
    return entropy.clamp(min=0.0)


def _step_kl(step: dict, response_mask: torch.Tensor) -> float:
    """This step's KL to the reference: verl's ``low_var_kl`` per token, token mean per response, mean over rows."""
    why = (
        "MSSR's adaptive rho needs the reference policy (actor_rollout_ref.actor.use_kl_loss=True, as in the MSSR "
        f"recipe) or a fixed +{OPTIONS_KEY}.rho=<value>"
    )
    batch = step["batch"]
    token_kl = kl_penalty(batch_tensor(batch, "old_log_probs", why), batch_tensor(batch, "ref_log_prob", why), "low_var_kl")
    return sequence_mean_kl(token_kl, response_mask)


def _dataset_of(reward_baselines: Optional[torch.Tensor]) -> "MSSRDataset":
    if reward_baselines is None or reward_baselines.dim() != 2 or reward_baselines.shape[1] != 2:
        got = None if reward_baselines is None else tuple(reward_baselines.shape)
        raise ValueError(
            f"adv_estimator=mssr needs the batch column '{BASELINE_KEY}' of shape (batch, 2) written by "
            f"MSSRDataset (got {got}): use data.custom_cls.path=pkg://vade_verl.mssr.verl_plugin "
            "data.custom_cls.name=MSSRDataset with data.dataloader_num_workers=0"
        )
    tokens = torch.unique(reward_baselines[:, 1]).tolist()
    if len(tokens) != 1:
        raise ValueError(f"MSSR: rows from {len(tokens)} different MSSRDataset instances in one batch: {tokens}")
    dataset = _DATASETS.get(int(tokens[0]))
    if dataset is None:
        raise RuntimeError(
            f"MSSR: the MSSRDataset that built these rows (token {int(tokens[0])}) is not in this process; the "
            "estimator runs in verl's driver, where the dataset must be read (data.dataloader_num_workers=0)"
        )
    return dataset


@register_adv_est(NAME)
def compute_mssr_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    config: Optional[Any] = None,
    index: Optional[np.ndarray] = None,
    reward_baselines: Optional[torch.Tensor] = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MSSR advantage on the driver: ``A' = shape(normalise_batch(r - v), H)`` (paper Sec. 3).

    ``v`` is each row's baseline before this step (:class:`MSSRDataset`, by the ``[position, token]``
    column), ``r`` the rollout's correctness in [0, 1] under ``data.mssr.correctness`` (the quantity ``v``
    estimates; ``advantage_reward=score``: the raw reward, as the authors' code), normalised by :func:`vade_verl.mssr.advantage.baseline_advantages` (std
    scaling per ``algorithm.norm_adv_by_std_in_grpo``, default True), then
    ``A'_t = A_t + min(alpha H_t, |A_t| / kappa)`` per response token (:func:`vade_verl.mssr.advantage.shape_advantages`)
    with ``H_t`` from the old-log-prob pass. Then the step's correctness (``data.mssr.correctness``) and KL
    update the dataset's Betas, and ``mssr/*`` metrics go to verl's step metrics. Returns
    ``(advantages, returns)``, both ``A'`` of shape ``(batch, response_length)``, as the authors' code.
    """
    dataset = _dataset_of(reward_baselines)
    if config is not None and config.get("use_kl_in_reward", False):
        raise ValueError("adv_estimator=mssr needs algorithm.use_kl_in_reward=False: its Beta baselines count "
                         "the verifiable reward's correctness, not a KL-penalised reward")
    options = dataset.mssr_options
    rewards = token_level_rewards.sum(dim=-1).double()
    positions = reward_baselines[:, 0].long().cpu().numpy()
    bad = ~torch.isfinite(rewards)
    if bad.any():
        raise ValueError(f"MSSR: {int(bad.sum())} non-finite reward(s), at dataset positions "
                         f"{positions[bad.cpu().numpy()][:5].tolist()}: fix the reward function")
    shaping, adaptive = options.shaping.alpha > 0, options.baseline.rho is None
    step = _fit_step(reward_baselines) if shaping or adaptive else None

    values, metrics = dataset.begin_step(positions)
    correct = as_correctness(rewards.cpu().numpy(), options.correctness, CORRECTNESS_KEY)
    signal = dataset.advantage_signal(rewards.cpu().numpy(), correct)
    scale = True if config is None else bool(config.get("norm_adv_by_std_in_grpo", True))
    advantages, fallback_rows = baseline_advantages(
        torch.as_tensor(signal, dtype=torch.float32), torch.as_tensor(values, dtype=torch.float32), response_mask,
        scale_by_std=scale,
    )
    if shaping:
        entropy = _token_entropy(step, options.shaping.entropy, response_mask)
        shaped = shape_advantages(advantages, entropy, options.shaping.alpha, options.shaping.kappa) * response_mask
        capped = (options.shaping.alpha * entropy > advantages.abs() / options.shaping.kappa) & response_mask.bool()
        metrics["mssr/entropy_mean"] = masked_mean(entropy, response_mask).item()
        metrics["mssr/bonus_mean"] = masked_mean(shaped - advantages, response_mask).item()
        metrics["mssr/bonus_capped_frac"] = (capped.sum() / response_mask.sum().clamp(min=1)).item()
        advantages = shaped
    kl = _step_kl(step, response_mask) if adaptive else None
    metrics.update(dataset.observe_step(positions, correct, kl))
    known = ~np.isnan(values)
    metrics["mssr/first_visit_rows"] = fallback_rows
    metrics["mssr/baseline_mean"] = float(values[known].mean()) if known.any() else float("nan")
    metrics["mssr/correct_mean"] = float(correct.mean())
    dataset.mssr_last_metrics = metrics
    dataset.mssr_publisher.publish(metrics)
    return advantages, advantages


class MSSRDataset(RLHFDataset):
    """verl's ``RLHFDataset`` carrying MSSR's per-prompt Beta baselines (driver-side state).

    Each row gains the tensor column ``reward_baselines = [position, token]``: its position in this
    dataset (the key of the state) and this dataset's token (so the estimator updates this instance, not
    the validation set's). Needs ``data.dataloader_num_workers=0`` so that rows are built in the driver.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        check_plugin_dataset(self)  # images vs model: fail before any rollout, naming data.image_key
        self.mssr_options = MSSROptions.from_data_config(self.config)
        self.mssr = MSSRBaselineState(len(self), self.mssr_options.baseline)
        self.mssr_token = next(_TOKENS)
        self.mssr_ready = self.mssr_options.init == "first_visit"  # a warm start is read at the first step
        self.mssr_updated_this_step = False
        self.mssr_last_metrics: dict = {}
        self.mssr_warned: dict[str, bool] = {}
        self.mssr_publisher = MetricsPublisher("MSSR mssr/*", "MSSRDataset.mssr_last_metrics")
        _DATASETS[self.mssr_token] = self
        stale = sorted(k for k in os.environ if k.startswith(STALE_ENV_PREFIX))
        if stale:
            logger.warning("MSSR ignores %s: its options are Hydra keys now, +%s.alpha/kappa/entropy (docs/mssr.md)",
                           stale, OPTIONS_KEY)

    def begin_step(self, positions: np.ndarray) -> tuple[np.ndarray, dict]:
        """The baselines ``v`` of ``positions`` before this step's update (NaN: never initialised), and the
        warm-start metrics on the first step of a warm-started run. Warns once when a prompt has several
        rollouts in a step: MSSR is single-rollout (``actor_rollout_ref.rollout.n=1``)."""
        metrics = {} if self.mssr_ready else self._warm_start()
        repeats = len(positions) - len(np.unique(positions))
        if repeats and not self.mssr_warned.get("rollout_n"):
            self.mssr_warned["rollout_n"] = True
            logger.warning(
                "MSSR is a single-rollout method (paper: actor_rollout_ref.rollout.n=1) but this step has %d rows "
                "for %d prompts; each prompt's rollouts share one baseline and one forgetting step", len(positions),
                len(positions) - repeats,
            )
        return self.mssr.values(positions), metrics

    def advantage_signal(self, scores: np.ndarray, correctness: np.ndarray) -> np.ndarray:
        """The ``r`` of ``A = r - v``: the correctness the Beta counts (``advantage_reward=correctness``), or the
        raw score (``score``, the authors' code, ruiiu/MSSR ``verl/trainer/core_algos.py:1323``), with a warning
        the first time a score is off the [0, 1] correctness scale that ``v`` estimates."""
        if self.mssr_options.advantage_reward == "correctness":
            return correctness
        if not np.allclose(scores, correctness) and not self.mssr_warned.get("score_scale"):
            self.mssr_warned["score_scale"] = True
            odd = np.unique(scores[~np.isclose(scores, correctness)])[:5].tolist()
            logger.warning(
                "MSSR: %s.advantage_reward=score subtracts a baseline of the correctness rate in [0, 1] from raw "
                "scores %s that are not that correctness (e.g. a -1/+1 reward or a format bonus): the advantage "
                "of a prompt is off by the difference; %s.advantage_reward=correctness keeps one scale",
                OPTIONS_KEY, odd, OPTIONS_KEY,
            )  # fmt: skip
        return scores

    def _warm_start(self) -> dict:
        path = self.mssr_options.warm_start_file
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{OPTIONS_KEY}.warm_start_file={path} does not exist: run the warm-start pass first (docs/mssr.md) "
                f"or set +{OPTIONS_KEY}.init=first_visit"
            )
        positions, evidence, skipped = read_warm_start_dump(path, dataset_ground_truths(self), self.mssr_options.correctness)
        prompts = self.mssr.initialise(positions, evidence) if positions.size else 0
        self.mssr_ready = True
        if prompts < len(self):
            logger.warning(
                "MSSR warm start from %s: %d of %d prompts have no scored rollout (every score NaN); they start at "
                "their first training visit instead (baseline: the batch mean, metric mssr/first_visit_rows)",
                path, len(self) - prompts, len(self),
            )  # fmt: skip
        logger.info("MSSR warm start from %s: %d of %d prompts initialised, %d rollouts with a NaN score skipped",
                    path, prompts, len(self), skipped)
        return {"mssr/warm_start_prompts": prompts, "mssr/warm_start_skipped_rollouts": skipped}

    def observe_step(self, positions: np.ndarray, correctness: np.ndarray, kl: Optional[float]) -> dict:
        """One step's evidence (from the ``mssr`` estimator): this step's KL into the window (adaptive rho),
        then one forget-and-add update with the resulting rho; returns metrics."""
        if kl is not None:
            self.mssr.observe_kl(kl)
        rho = self.mssr.current_rho()
        counts = self.mssr.update(positions, correctness, rho)
        self.mssr_updated_this_step = True
        metrics = {
            "mssr/rho": rho,
            "mssr/prompts_initialised": counts["initialised"],
            "mssr/prompts_updated": counts["updated"],
            "mssr/prompts_tracked": int(self.mssr.seen.sum()),
        }
        if kl is not None:
            metrics["mssr/kl"] = kl
        return metrics

    def __getitem__(self, item):
        if torch.utils.data.get_worker_info() is not None:
            raise RuntimeError(
                "MSSRDataset must be read in the driver, where its baselines are updated: "
                "set data.dataloader_num_workers=0"
            )
        row = super().__getitem__(item)
        row[BASELINE_KEY] = torch.tensor([float(item), float(self.mssr_token)], dtype=torch.float64)
        return row

    def on_batch_end(self, batch: Any) -> None:
        """End of a step (``RayPPOTrainer.fit``, verl 0.7.1): fail if the ``mssr`` estimator did not run."""
        if not self.mssr_updated_this_step:
            raise RuntimeError(
                "MSSRDataset: its baselines were not updated this step; it needs algorithm.adv_estimator=mssr"
            )
        self.mssr_updated_this_step = False

    def state_dict(self) -> dict:
        return {"mssr": self.mssr.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the baselines and KL window saved in verl's ``data.pt`` on resume (then the warm-start
        file is not read again): the checkpoint of step k holds both through step k."""
        if "mssr" not in state:
            raise KeyError(f"MSSRDataset.load_state_dict: no 'mssr' entry in the saved dataset state {sorted(state)}")
        self.mssr.load_state_dict(state["mssr"])
        self.mssr_ready = True
