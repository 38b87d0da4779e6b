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
the driver (TaskRunner) and each batch is fetched when the step starts, after the previous step's
``on_batch_end``; so ``__getitem__`` writes each prompt's current ``v`` as ``reward_baselines`` (NaN when
the prompt was never seen) and its position as ``mssr_prompt_index``, the estimator computes ``r - v``, and
``fit`` calls ``train_dataset.on_batch_end(batch)`` at the end of the step, where the state is updated
with the step's rewards (``token_level_scores``) and KL (``old_log_probs`` vs ``ref_log_prob``).
The state is checkpointed as the dataset's ``state_dict`` inside verl's ``data.pt``
(``StatefulDataLoader`` saves a ``Stateful`` dataset); see :meth:`MSSRDataset.load_state_dict` for resume.

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

import logging
import os
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
INDEX_KEY = "mssr_prompt_index"
BASELINE_KEY = "reward_baselines"
ENV_PREFIX = "VADE_MSSR_"


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

    ``v`` arrives as the ``reward_baselines`` column written by :class:`MSSRDataset`; the std scaling
    follows ``algorithm.norm_adv_by_std_in_grpo`` (default True).  Entropy shaping happens later, in the
    ``mssr`` policy loss.  Returns ``(advantages, returns)``, both ``(batch, response_length)``.
    """
    if reward_baselines is None:
        raise ValueError(
            "adv_estimator=mssr needs the per-prompt baselines in the batch column 'reward_baselines': use "
            "data.custom_cls.path=pkg://vade_verl.verl_mssr data.custom_cls.name=MSSRDataset "
            "(with data.dataloader_num_workers=0)"
        )
    scale = True if config is None else bool(config.get("norm_adv_by_std_in_grpo", True))
    sequence_rewards = token_level_rewards.sum(dim=-1)
    advantages, fallback_rows = baseline_advantages(
        sequence_rewards, reward_baselines.reshape(-1), response_mask, scale_by_std=scale
    )
    if fallback_rows:
        logger.info("MSSR: %d of %d rows had no baseline yet (first visit): batch-mean reward used",
                    fallback_rows, sequence_rewards.shape[0])
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

    Each row gains two tensor columns: ``reward_baselines`` (the prompt's current ``v``, NaN if never seen)
    and ``mssr_prompt_index`` (its position in this dataset, the key of the state).  Needs
    ``data.dataloader_num_workers=0`` so that rows are built in the driver from the live state.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mssr = MSSRBaselineState(len(self), baseline_config_from_data_config(self.config))
        self.last_mssr_metrics: dict = {}

    def __getitem__(self, item):
        if torch.utils.data.get_worker_info() is not None:
            raise RuntimeError(
                "MSSRDataset must be read in the driver, where its baselines are updated: "
                "set data.dataloader_num_workers=0"
            )
        row = super().__getitem__(item)
        row[BASELINE_KEY] = torch.tensor(self.mssr.values(np.array([item]))[0], dtype=torch.float32)
        row[INDEX_KEY] = torch.tensor(item, dtype=torch.int64)
        return row

    def on_batch_end(self, batch: Any) -> None:
        """Fold one finished step into the baselines: KL into the window, then ``a, b`` per prompt.

        Called by ``RayPPOTrainer.fit`` after the step (verl 0.7.1).  Rewards are the rows' summed
        ``token_level_scores`` and must lie in [0, 1].
        """
        if INDEX_KEY not in batch.batch.keys():
            raise KeyError(f"MSSR on_batch_end: batch has no '{INDEX_KEY}' column (rows not built by MSSRDataset?)")
        index = batch.batch[INDEX_KEY].cpu().numpy().astype(np.int64)
        rewards = batch.batch["token_level_scores"].sum(dim=-1).cpu().double().numpy()
        kl = None
        if self.mssr.config.rho is None:
            kl = batch_kl_to_reference(batch)
            self.mssr.observe_kl(kl)
        rho = self.mssr.current_rho()
        counts = self.mssr.update(index, rewards, rho)
        self.last_mssr_metrics = {
            "mssr/rho": rho,
            "mssr/kl": kl,
            "mssr/prompts_initialised": counts["initialised"],
            "mssr/prompts_updated": counts["updated"],
            "mssr/prompts_tracked": int(self.mssr.seen.sum()),
        }
        logger.info("MSSR baseline update: %s", self.last_mssr_metrics)

    def state_dict(self) -> dict:
        return {"mssr": self.mssr.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the baselines saved in verl's ``data.pt``.

        verl 0.7.1 writes the checkpoint of step k *before* ``on_batch_end`` of step k, so the restored state
        holds steps 1..k-1: the prompts of batch k resume without that one observation (they are initialised
        again at their next visit if it was their first).
        """
        if "mssr" not in state:
            raise KeyError(f"MSSRDataset.load_state_dict: no 'mssr' entry in the saved dataset state {sorted(state)}")
        self.mssr.load_state_dict(state["mssr"])
