"""MSSR in verl 0.7.1: registrations and the driver-side baseline state (no verl fork).

Importing this module registers, in verl's own registries (``verl.trainer.ppo.core_algos``):

* the advantage estimator ``mssr`` (``algorithm.adv_estimator=mssr``), run on the driver;
* the policy loss ``mssr`` (``actor_rollout_ref.actor.policy_loss.loss_mode=mssr``), run in the actor
  workers: verl's vanilla clipped PPO loss on entropy-shaped advantages.

and defines :class:`MSSRDataset`, verl's ``RLHFDataset`` plus the per-prompt Beta baselines
(``data.custom_cls.path=pkg://vade_verl.verl_mssr data.custom_cls.name=MSSRDataset``).

Why the baseline lives in the dataset (verl 0.7.1, ``RayPPOTrainer.fit``): a custom estimator is called
as ``fn(token_level_rewards, response_mask, config, index=uid[, reward_baselines])``; ``uid`` is a fresh
``uuid4`` per prompt per step, and no non-tensor data reaches it, so the estimator cannot tell which prompt a
row is.  Tensor columns a dataset emits do ride along the whole step, and ``compute_advantage`` forwards the
``reward_baselines`` column to custom estimators.  With ``data.dataloader_num_workers=0`` the dataset runs in
the driver (TaskRunner) and each batch is fetched when the step starts, so ``__getitem__`` writes per row
``reward_baselines = [v, position, dataset token]`` (``v`` is NaN when the prompt was never seen).  The
estimator computes ``r - v`` and at once folds the step's rewards into the Betas of the dataset named by
the token (a driver-side registry), before verl saves the step's checkpoint: a checkpoint written at step k
holds the baselines through step k, the last step of a run included (``fit`` returns before
``on_batch_end`` on its last step).  ``on_batch_end`` feeds the KL window with the step's KL
(``old_log_probs`` vs ``ref_log_prob``), so the rho of step k's update is that of steps k-window..k-1.
The estimator adds ``mssr/*`` entries to verl's step metrics (``vade_verl.verl_metrics``).
The state is checkpointed as the dataset's ``state_dict`` inside verl's ``data.pt``
(``StatefulDataLoader`` saves a ``Stateful`` dataset).

Where the entropy comes from: verl 0.7.1 pops the old-log-prob pass's ``entropys`` before advantages are
computed, and a policy loss receives ``old_log_prob, log_prob, advantages, response_mask, loss_agg_mode,
config, rollout_is_weights`` but no entropy and no logits.  The sampled token's ``-p log p`` (the authors'
choice) is a function of ``log_prob``, so the registered loss computes it itself, from the current forward
pass, detached.  The full-vocabulary entropy is only formed inside the actor's forward and is not reachable
from any plug-in point of verl 0.7.1: ``VADE_MSSR_ENTROPY=full_vocab`` is refused with that explanation
(the pure :func:`vade_verl.mssr.full_vocab_entropy` exists for other integrations).

Worker-side settings come from environment variables, since verl's ``PolicyLossConfig``/``ActorConfig``
dataclasses reject unknown keys: ``VADE_MSSR_ALPHA`` (0.4), ``VADE_MSSR_KAPPA`` (2), ``VADE_MSSR_ENTROPY``
(``sampled``).  Pass them, and ``VERL_USE_EXTERNAL_MODULES=vade_verl.verl_mssr`` (which makes ``import verl``
import this module in every process), through ``+ray_kwargs.ray_init.runtime_env.env_vars.<NAME>=<value>``.
"""

from __future__ import annotations

import itertools
import logging
import os
import weakref
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from vade_verl.mssr import (
    MSSRBaselineConfig,
    MSSRBaselineState,
    MSSRShapingConfig,
    baseline_advantages,
    sampled_token_entropy,
    shape_advantages,
)
from vade_verl.verl_metrics import publish_to_fit_metrics
from verl.trainer.ppo.core_algos import (
    compute_policy_loss_vanilla,
    kl_penalty,
    register_adv_est,
    register_policy_loss,
)
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.utils.torch_functional import masked_mean

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

NAME = "mssr"
BASELINE_KEY = "reward_baselines"  # per row: [v (NaN if unseen), dataset position, dataset token]
ENV_PREFIX = "VADE_MSSR_"

# Driver-side registry: the estimator finds the dataset that built a batch's rows by the token in their column.
_DATASETS: "weakref.WeakValueDictionary[int, MSSRDataset]" = weakref.WeakValueDictionary()
_TOKENS = itertools.count(1)


def shaping_config_from_env(environ=os.environ) -> MSSRShapingConfig:
    """The worker-side shaping settings from ``VADE_MSSR_ALPHA``, ``VADE_MSSR_KAPPA``, ``VADE_MSSR_ENTROPY``."""
    defaults = MSSRShapingConfig()
    try:
        return MSSRShapingConfig(
            alpha=float(environ.get(ENV_PREFIX + "ALPHA", defaults.alpha)),
            kappa=float(environ.get(ENV_PREFIX + "KAPPA", defaults.kappa)),
            entropy=environ.get(ENV_PREFIX + "ENTROPY", defaults.entropy),
        )
    except ValueError as err:
        raise ValueError(f"MSSR: bad {ENV_PREFIX}* environment setting: {err}") from err


@register_adv_est(NAME)
def compute_mssr_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    config: Optional[Any] = None,
    index: Optional[np.ndarray] = None,
    reward_baselines: Optional[torch.Tensor] = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MSSR advantage ``A = normalise_batch(r - v)`` on the driver (:func:`vade_verl.mssr.baseline_advantages`).

    ``reward_baselines`` is the ``[v, position, token]`` column written by :class:`MSSRDataset`; the
    rows' rewards then update that dataset's baselines (:meth:`MSSRDataset.observe_rewards`), and
    ``mssr/*`` metrics are added to verl's step metrics.  The std scaling follows
    ``algorithm.norm_adv_by_std_in_grpo`` (default True).  Entropy shaping happens later, in the ``mssr``
    policy loss.  Returns ``(advantages, returns)``, both ``(batch, response_length)``.
    """
    if reward_baselines is None or reward_baselines.dim() != 2 or reward_baselines.shape[1] != 3:
        got = None if reward_baselines is None else tuple(reward_baselines.shape)
        raise ValueError(
            f"adv_estimator=mssr needs the batch column 'reward_baselines' of shape (batch, 3) written by "
            f"MSSRDataset (got {got}): use data.custom_cls.path=pkg://vade_verl.verl_mssr "
            "data.custom_cls.name=MSSRDataset with data.dataloader_num_workers=0"
        )
    if config is not None and config.get("use_kl_in_reward", False):
        raise ValueError("adv_estimator=mssr needs algorithm.use_kl_in_reward=False: its Beta baselines take "
                         "the verifiable reward in [0, 1], not a KL-penalised one")
    tokens = torch.unique(reward_baselines[:, 2]).tolist()
    if len(tokens) != 1:
        raise ValueError(f"MSSR: rows from {len(tokens)} different MSSRDataset instances in one batch: {tokens}")
    scale = True if config is None else bool(config.get("norm_adv_by_std_in_grpo", True))
    sequence_rewards = token_level_rewards.sum(dim=-1)
    advantages, fallback_rows = baseline_advantages(
        sequence_rewards, reward_baselines[:, 0], response_mask, scale_by_std=scale
    )
    dataset = _DATASETS.get(int(tokens[0]))
    if dataset is None:
        raise RuntimeError(
            f"MSSR: the MSSRDataset that built these rows (token {int(tokens[0])}) is not in this process; the "
            "estimator runs in verl's driver, where the dataset must be read (data.dataloader_num_workers=0)"
        )
    metrics = dataset.observe_rewards(
        reward_baselines[:, 1].long().cpu().numpy(), sequence_rewards.detach().double().cpu().numpy()
    )
    known = ~torch.isnan(reward_baselines[:, 0])
    metrics["mssr/first_visit_rows"] = fallback_rows
    metrics["mssr/baseline_mean"] = float(reward_baselines[known, 0].mean()) if known.any() else float("nan")
    if not publish_to_fit_metrics(metrics):
        logger.info("MSSR step: %s", metrics)
    return advantages, advantages


@register_policy_loss(NAME)
def compute_policy_loss_mssr(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config: Optional[Any] = None,
    rollout_is_weights: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """verl's vanilla clipped PPO loss on ``A'_t = A_t + min(alpha * H_t, |A_t| / kappa)``.

    ``H_t = -p_t log p_t`` of the sampled token from this forward pass's ``log_prob``, detached
    (:func:`vade_verl.mssr.shape_advantages`).  Adds ``actor/mssr_bonus_mean`` (mean bonus over response
    tokens) and ``actor/mssr_bonus_capped_frac`` (share of tokens where ``|A|/kappa`` was the binding cap).
    """
    shaping = shaping_config_from_env()
    if shaping.entropy != "sampled":
        raise ValueError(
            f"{ENV_PREFIX}ENTROPY={shaping.entropy!r}: verl 0.7.1 gives policy losses no entropy or logits, "
            "only the sampled tokens' log-probs, so only 'sampled' (-p log p of the sampled token) is available"
        )
    entropy = sampled_token_entropy(log_prob)
    shaped = shape_advantages(advantages, entropy, shaping.alpha, shaping.kappa) * response_mask
    pg_loss, metrics = compute_policy_loss_vanilla(
        old_log_prob=old_log_prob,
        log_prob=log_prob,
        advantages=shaped,
        response_mask=response_mask,
        loss_agg_mode=loss_agg_mode,
        config=config,
        rollout_is_weights=rollout_is_weights,
    )
    mask = response_mask.bool()
    capped = (shaping.alpha * entropy > advantages.abs() / shaping.kappa) & mask
    metrics["actor/mssr_bonus_mean"] = masked_mean(shaped - advantages, response_mask).item()
    metrics["actor/mssr_bonus_capped_frac"] = (capped.sum() / mask.sum().clamp(min=1)).item()
    return pg_loss, metrics


def baseline_config_from_data_config(data_config: Any) -> MSSRBaselineConfig:
    """``MSSRBaselineConfig`` from the optional ``data.mssr`` block (``+data.mssr.rho_min=...`` etc.)."""
    block = data_config.get("mssr") if data_config is not None else None
    if block is None:
        return MSSRBaselineConfig()
    if isinstance(block, DictConfig):
        block = OmegaConf.to_container(block, resolve=True)
    unknown = set(block) - set(MSSRBaselineConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(
            f"data.mssr: unknown key(s) {sorted(unknown)}; known: {sorted(MSSRBaselineConfig.__dataclass_fields__)}"
        )
    return MSSRBaselineConfig(**block)


def batch_kl_to_reference(batch: Any) -> float:
    """Token-mean low-variance KL between the rollout policy and the reference over the batch's responses."""
    keys = batch.batch.keys()
    if "ref_log_prob" not in keys or "old_log_probs" not in keys:
        raise KeyError(
            "MSSR adaptive rho needs 'old_log_probs' and 'ref_log_prob' in the batch: enable the reference "
            "policy (actor_rollout_ref.actor.use_kl_loss=True, as in the MSSR recipe) or fix the forgetting "
            "with +data.mssr.rho=<value>"
        )
    kl = kl_penalty(batch.batch["old_log_probs"], batch.batch["ref_log_prob"], kl_penalty="low_var_kl")
    return float(masked_mean(kl, batch.batch["response_mask"]).item())


class MSSRDataset(RLHFDataset):
    """verl's ``RLHFDataset`` carrying MSSR's per-prompt Beta baselines (driver-side state).

    Each row gains the tensor column ``reward_baselines = [v, position, token]``: the prompt's current
    baseline (NaN if never seen), its position in this dataset (the key of the state) and this dataset's
    token (so the estimator updates this instance, not the validation set's).  Needs
    ``data.dataloader_num_workers=0`` so that rows are built in the driver from the live state.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mssr = MSSRBaselineState(len(self), baseline_config_from_data_config(self.config))
        self.mssr_token = next(_TOKENS)
        self.mssr_updated_this_step = False
        _DATASETS[self.mssr_token] = self

    def observe_rewards(self, positions: np.ndarray, rewards: np.ndarray) -> dict:
        """One step's rewards (from the ``mssr`` estimator): one forget-and-add update; returns metrics."""
        rho = self.mssr.current_rho()
        counts = self.mssr.update(positions, rewards, rho)
        self.mssr_updated_this_step = True
        return {
            "mssr/rho": rho,
            "mssr/prompts_initialised": counts["initialised"],
            "mssr/prompts_updated": counts["updated"],
            "mssr/prompts_tracked": int(self.mssr.seen.sum()),
        }

    def __getitem__(self, item):
        if torch.utils.data.get_worker_info() is not None:
            raise RuntimeError(
                "MSSRDataset must be read in the driver, where its baselines are updated: "
                "set data.dataloader_num_workers=0"
            )
        row = super().__getitem__(item)
        v = self.mssr.values(np.array([item]))[0]
        row[BASELINE_KEY] = torch.tensor([v, float(item), float(self.mssr_token)], dtype=torch.float64)
        return row

    def on_batch_end(self, batch: Any) -> None:
        """End of a step (``RayPPOTrainer.fit``, verl 0.7.1): push the step's KL into the window (it shapes
        the rho of the following steps); fail if the ``mssr`` estimator did not update the baselines."""
        if not self.mssr_updated_this_step:
            raise RuntimeError(
                "MSSRDataset: its baselines were not updated this step; it needs algorithm.adv_estimator=mssr"
            )
        self.mssr_updated_this_step = False
        if self.mssr.config.rho is None:
            kl = batch_kl_to_reference(batch)
            self.mssr.observe_kl(kl)
            logger.info("MSSR: step KL to reference %.6g, rho for the next update %.6g", kl, self.mssr.current_rho())

    def state_dict(self) -> dict:
        return {"mssr": self.mssr.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the baselines saved in verl's ``data.pt`` on resume.

        The checkpoint of step k holds the Betas through step k; its KL window lacks step k's KL (observed
        in ``on_batch_end``, after the save), so only the adaptive rho of the following steps can differ
        slightly from an uninterrupted run's.
        """
        if "mssr" not in state:
            raise KeyError(f"MSSRDataset.load_state_dict: no 'mssr' entry in the saved dataset state {sorted(state)}")
        self.mssr.load_state_dict(state["mssr"])
