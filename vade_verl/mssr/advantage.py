"""MSSR: multimodal stabilized single-rollout RL (Liu et al., arXiv 2512.18215), the pure math.

No verl import here: ``vade_verl.mssr.verl_plugin`` is the thin adapter that registers these pieces with verl.
Where the paper and the authors' code (GitHub ruiiu/MSSR, ``verl/trainer/core_algos.py``) differ, both
are here and docs/mssr.md has the side-by-side table.

The method, as used here (paper Sec. 3; its text-only parent is SPO, arXiv 2509.13232):

* one rollout per prompt; each prompt ``x`` keeps a Beta belief ``Beta(a_x, b_x)`` of its success rate
  with baseline ``v_x = a_x / (a_x + b_x)``;
* initialisation with the effective count ``N0 = 1 / (1 - rho_min)`` from the mean correctness ``v0`` of
  the prompt's first rollout(s): ``a = N0 * v0``, ``b = N0 * (1 - v0)`` (:meth:`MSSRBaselineState.initialise`;
  the authors run the initial policy over the whole training set before training);
* afterwards each step forgets with ``rho`` and adds the new evidence (correctness ``c`` in [0, 1]):
  ``a <- rho * a + sum c``, ``b <- rho * b + sum (1 - c)`` (one forgetting per step, also when a prompt
  has several rollouts in the step);
* ``rho`` follows the policy's drift: the mean KL to the reference over the last ``kl_window`` steps,
  this step's included, mapped to ``[rho_min, rho_max]`` by :func:`continuous_rho` or :func:`authors_rho`;
* the advantage is ``A = r - v`` with ``v`` from *before* this step's update, normalised over the batch
  and broadcast to the response tokens (:func:`baseline_advantages`);
* entropy shaping after normalisation, per token: ``A'_t = A_t + min(alpha * H_t, |A_t| / kappa)`` with
  ``H_t`` detached, ``alpha = 0.4``, ``kappa = 2`` (:func:`shape_advantages`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

ENTROPY_SOURCES = ("full_vocab", "sampled")
RHO_SCHEDULES = ("continuous", "authors")


@dataclass(frozen=True)
class MSSRBaselineConfig:
    """Settings of the tracked baseline (paper Sec. 3; defaults from the authors' ``examples/config_mssr.yaml``).

    ``kl_window``: 10, the window the authors' code runs with (``MVSRValueTracker.kl_window_size = 10``;
    their configured ``mvsr_kl_window_size: 20`` is never passed to the tracker).
    ``rho_schedule``: ``"continuous"`` (:func:`continuous_rho`) or ``"authors"`` (:func:`authors_rho`).
    ``rho``: a fixed forgetting factor instead of the KL-adaptive one (None: adaptive).
    """

    rho_min: float = 0.875
    rho_max: float = 0.96
    target_kl: float = 0.01
    kl_window: int = 10
    rho_schedule: str = "continuous"
    rho: Optional[float] = None

    def __post_init__(self):
        if not 0.0 < self.rho_min <= self.rho_max < 1.0:
            raise ValueError(
                f"MSSR needs 0 < rho_min <= rho_max < 1, got rho_min={self.rho_min}, rho_max={self.rho_max}"
            )
        if not self.target_kl > 0.0:
            raise ValueError(f"MSSR target_kl must be > 0, got {self.target_kl}")
        if self.kl_window < 1:
            raise ValueError(f"MSSR kl_window must be >= 1, got {self.kl_window}")
        if self.rho_schedule not in RHO_SCHEDULES:
            raise ValueError(f"MSSR rho_schedule must be one of {RHO_SCHEDULES}, got {self.rho_schedule!r}")
        if self.rho is not None and not 0.0 < self.rho < 1.0:
            raise ValueError(f"MSSR fixed rho must lie in (0, 1), got {self.rho}")


@dataclass(frozen=True)
class MSSRShapingConfig:
    """Entropy shaping settings (paper Sec. 3.2): ``alpha``, ``kappa`` and which token entropy ``H_t``.

    ``entropy``: ``"full_vocab"`` is ``-sum_v p_v log p_v`` over the vocabulary (the paper's wording);
    ``"sampled"`` is the sampled token's ``-p log p`` (the authors' ``compute_token_entropy``).
    ``alpha = 0`` turns the shaping off (the paper's MVSR ablation).
    """

    alpha: float = 0.4
    kappa: float = 2.0
    entropy: str = "full_vocab"

    def __post_init__(self):
        if not self.alpha >= 0.0:
            raise ValueError(f"MSSR shaping alpha must be >= 0, got {self.alpha}")
        if not self.kappa > 1.0:
            raise ValueError(
                f"MSSR shaping kappa must be > 1 (so the bonus |A|/kappa cannot cancel a negative advantage), "
                f"got {self.kappa}"
            )
        if self.entropy not in ENTROPY_SOURCES:
            raise ValueError(f"MSSR shaping entropy must be one of {ENTROPY_SOURCES}, got {self.entropy!r}")


def initial_count(rho_min: float) -> float:
    """``N0 = 1 / (1 - rho_min)``: the effective sample size a Beta reaches under forgetting ``rho_min``."""
    return 1.0 / (1.0 - rho_min)


def _check_kl(mean_kl: float) -> None:
    if not mean_kl >= 0.0:
        raise ValueError(f"MSSR adaptive rho needs a mean KL >= 0, got {mean_kl}")


def continuous_rho(mean_kl: float, target_kl: float, rho_min: float, rho_max: float) -> float:
    """Forgetting factor that falls smoothly from ``rho_max`` (no drift) to ``rho_min`` (large drift).

    ``u = mean_kl / target_kl``;  ``rho = rho_mid - rho_half * (u^2 - 1) / (u^2 + 1)``, a smooth step in
    ``log u`` equal to the midpoint ``(rho_min + rho_max) / 2`` at the target.  It implements what the
    authors' code comments state ("higher KL -> lower rho, lower KL -> higher rho") without a jump.
    """
    _check_kl(mean_kl)
    u2 = (mean_kl / target_kl) ** 2
    mid, half = 0.5 * (rho_min + rho_max), 0.5 * (rho_max - rho_min)
    if math.isinf(u2):
        return rho_min
    return mid - half * (u2 - 1.0) / (u2 + 1.0)


def authors_rho(mean_kl: float, target_kl: float, rho_min: float, rho_max: float) -> float:
    """The authors' schedule as their code computes it (ruiiu/MSSR ``MVSRValueTracker._get_adaptive_rho``).

    ``mean_kl <= target``: ``rho = rho_min + (mean_kl / target) * (rho_max - rho_min)``, rising from
    ``rho_min`` at zero KL to ``rho_max`` at the target; ``mean_kl > target``: ``rho_min``.  So it
    forgets fastest both with no drift and above the target, and jumps from ``rho_max`` to ``rho_min``
    at the target.
    """
    _check_kl(mean_kl)
    if mean_kl > target_kl:
        return rho_min
    return rho_min + (mean_kl / target_kl) * (rho_max - rho_min)


RHO_FUNCTIONS = {"continuous": continuous_rho, "authors": authors_rho}


def sequence_mean_kl(token_kl: torch.Tensor, response_mask: torch.Tensor) -> float:
    """The step's KL as the authors aggregate it: each response's token mean, then the mean over responses.

    (ruiiu/MSSR ``compute_mvsr_advantage``: ``kl[i].sum() / mask[i].sum()`` per row, then ``torch.mean``.)
    """
    if token_kl.shape != response_mask.shape or token_kl.dim() != 2:
        raise ValueError(
            f"MSSR KL: need (batch, length) token KL and mask of equal shape, got {tuple(token_kl.shape)} "
            f"and {tuple(response_mask.shape)}"
        )
    mask = response_mask.to(torch.float64)
    per_row = (token_kl.to(torch.float64) * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
    return float(per_row.mean())


class MSSRBaselineState:
    """Per-prompt Beta baselines plus the KL window, keyed by prompt position ``0..num_prompts-1``.

    ``values`` answers ``v`` (NaN for a prompt never initialised); ``initialise`` sets prompts from
    evidence (warm start or first visit); ``observe_kl`` then ``current_rho`` then ``update`` is one step.
    """

    def __init__(self, num_prompts: int, config: MSSRBaselineConfig = MSSRBaselineConfig()):
        if num_prompts < 1:
            raise ValueError(f"MSSR baseline needs at least one prompt, got {num_prompts}")
        self.config = config
        self.alpha = np.zeros(num_prompts, dtype=np.float64)
        self.beta = np.zeros(num_prompts, dtype=np.float64)
        self.seen = np.zeros(num_prompts, dtype=bool)
        self.kl_history: deque = deque(maxlen=config.kl_window)
        self.last_rho = float("nan")

    @property
    def num_prompts(self) -> int:
        return self.alpha.shape[0]

    def _check_index(self, index: np.ndarray, where: str) -> np.ndarray:
        index = np.asarray(index)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"MSSR {where}: prompt index must be a 1-D integer array, got {index.dtype} {index.shape}")
        bad = (index < 0) | (index >= self.num_prompts)
        if bad.any():
            raise IndexError(
                f"MSSR {where}: {int(bad.sum())} prompt index(es) outside 0..{self.num_prompts - 1}, "
                f"e.g. {index[bad][:5].tolist()}"
            )
        return index

    def _check_evidence(self, index: np.ndarray, evidence, where: str) -> np.ndarray:
        evidence = np.asarray(evidence, dtype=np.float64)
        if evidence.shape != index.shape:
            raise ValueError(f"MSSR {where}: {evidence.shape[0]} outcomes for {index.shape[0]} prompt indices")
        inside = (evidence >= 0.0) & (evidence <= 1.0)
        if not inside.all():
            raise ValueError(
                f"MSSR {where}: the Beta baseline counts correctness in [0, 1]; {int((~inside).sum())} outside, "
                f"e.g. {evidence[~inside][:5].tolist()}"
            )
        return evidence

    def values(self, index) -> np.ndarray:
        """``v = a / (a + b)`` for each index; NaN where the prompt has no baseline yet."""
        index = self._check_index(index, "values")
        v = np.full(index.shape, np.nan)
        known = self.seen[index]
        a, b = self.alpha[index[known]], self.beta[index[known]]
        v[known] = a / (a + b)
        return v

    def initialise(self, index, evidence) -> int:
        """``a = N0 * v0``, ``b = N0 * (1 - v0)`` with ``v0`` the mean evidence of each prompt's rollouts.

        Overwrites any earlier state of those prompts; returns how many prompts were set.
        """
        index = self._check_index(index, "initialise")
        evidence = self._check_evidence(index, evidence, "initialise")
        prompts, inverse, counts = np.unique(index, return_inverse=True, return_counts=True)
        v0 = np.bincount(inverse, weights=evidence, minlength=prompts.size) / counts
        n0 = initial_count(self.config.rho_min)
        self.alpha[prompts] = n0 * v0
        self.beta[prompts] = n0 * (1.0 - v0)
        self.seen[prompts] = True
        return int(prompts.size)

    def observe_kl(self, kl: float) -> None:
        """Push this step's KL into the window; call it before :meth:`current_rho` of the same step."""
        if not (np.isfinite(kl) and kl >= 0.0):
            raise ValueError(f"MSSR observe_kl: KL must be finite and >= 0, got {kl}")
        self.kl_history.append(float(kl))

    def current_rho(self) -> float:
        """The fixed rho if configured, else the configured schedule of the mean of the KL window."""
        cfg = self.config
        if cfg.rho is not None:
            return cfg.rho
        if not self.kl_history:
            raise ValueError("MSSR adaptive rho: observe this step's KL (observe_kl) before asking for rho")
        return RHO_FUNCTIONS[cfg.rho_schedule](float(np.mean(self.kl_history)), cfg.target_kl, cfg.rho_min, cfg.rho_max)

    def update(self, index, evidence, rho: float) -> dict:
        """One step's evidence: initialise prompts never seen, forget-and-add for the others.

        ``evidence`` is correctness in [0, 1], one per rollout; repeated indices (several rollouts of one
        prompt) are summed under a single forgetting.  Returns counts for logging.
        """
        index = self._check_index(index, "update")
        evidence = self._check_evidence(index, evidence, "update")
        if not 0.0 < rho < 1.0:
            raise ValueError(f"MSSR update: rho must lie in (0, 1), got {rho}")
        new_rows = ~self.seen[index]
        initialised = self.initialise(index[new_rows], evidence[new_rows]) if new_rows.any() else 0
        old_index = index[~new_rows]
        prompts, inverse, counts = np.unique(old_index, return_inverse=True, return_counts=True)
        successes = np.bincount(inverse, weights=evidence[~new_rows], minlength=prompts.size)
        self.alpha[prompts] = rho * self.alpha[prompts] + successes
        self.beta[prompts] = rho * self.beta[prompts] + (counts - successes)
        self.last_rho = float(rho)
        return {"initialised": initialised, "updated": int(prompts.size), "rollouts": int(index.size)}

    def state_dict(self) -> dict:
        return {
            "alpha": self.alpha.copy(),
            "beta": self.beta.copy(),
            "seen": self.seen.copy(),
            "kl_history": list(self.kl_history),
            "last_rho": self.last_rho,
        }

    def load_state_dict(self, state: dict) -> None:
        for key in ("alpha", "beta", "seen"):
            if np.asarray(state[key]).shape != (self.num_prompts,):
                raise ValueError(
                    f"MSSR load_state_dict: '{key}' has shape {np.asarray(state[key]).shape}, this dataset has "
                    f"{self.num_prompts} prompts (resuming on a different or differently filtered dataset?)"
                )
        self.alpha = np.asarray(state["alpha"], dtype=np.float64).copy()
        self.beta = np.asarray(state["beta"], dtype=np.float64).copy()
        self.seen = np.asarray(state["seen"], dtype=bool).copy()
        self.kl_history = deque(state["kl_history"], maxlen=self.config.kl_window)
        self.last_rho = float(state["last_rho"])


def baseline_advantages(
    sequence_rewards: torch.Tensor,
    baselines: torch.Tensor,
    response_mask: torch.Tensor,
    scale_by_std: bool = True,
    epsilon: float = 1e-6,
) -> tuple[torch.Tensor, int]:
    """``A = r - v`` normalised over the batch, broadcast to tokens (paper Sec. 3.1, SPO Sec. 3.2).

    ``A_i = (d_i - mean(d)) / (std(d) + epsilon)`` with ``d_i = r_i - v_i`` and the unbiased std over the
    batch rows (as verl's GRPO); without ``scale_by_std`` only the mean is removed.  A row whose baseline is
    NaN (prompt never initialised) uses the batch-mean reward as its baseline.  Returns ``(token_advantages,
    number_of_rows_that_used_the_fallback)``.
    """
    if sequence_rewards.dim() != 1 or baselines.shape != sequence_rewards.shape:
        raise ValueError(
            f"MSSR advantages: need 1-D rewards and baselines of equal shape, got {tuple(sequence_rewards.shape)} "
            f"and {tuple(baselines.shape)}"
        )
    if response_mask.dim() != 2 or response_mask.shape[0] != sequence_rewards.shape[0]:
        raise ValueError(
            f"MSSR advantages: response_mask must be (batch, length) with batch {sequence_rewards.shape[0]}, "
            f"got {tuple(response_mask.shape)}"
        )
    if sequence_rewards.shape[0] < 2:
        raise ValueError("MSSR advantages: batch normalisation needs at least 2 rows")
    rewards = sequence_rewards.to(torch.float32)
    baselines = baselines.to(torch.float32)
    missing = torch.isnan(baselines)
    baselines = torch.where(missing, rewards.mean(), baselines)
    diff = rewards - baselines
    adv = diff - diff.mean()
    if scale_by_std:
        adv = adv / (diff.std() + epsilon)
    return adv.unsqueeze(-1) * response_mask.to(adv.dtype), int(missing.sum())


def sampled_token_entropy(log_prob: torch.Tensor) -> torch.Tensor:
    """``H_t = -p_t log p_t`` of the sampled token (``p_t = exp(log_prob_t)``), detached (authors' code)."""
    log_prob = log_prob.detach()
    return -torch.exp(log_prob) * log_prob


def full_vocab_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``H_t = -sum_v p_v log p_v`` over the last (vocabulary) axis of ``logits``, detached (paper wording)."""
    log_p = torch.log_softmax(logits.detach().float(), dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


def shape_advantages(advantages: torch.Tensor, entropy: torch.Tensor, alpha: float, kappa: float) -> torch.Tensor:
    """``A'_t = A_t + min(alpha * H_t, |A_t| / kappa)`` with ``H_t`` detached (paper Sec. 3.2, Eq. 6).

    The bonus is never negative and, for ``kappa > 1``, never larger than ``|A_t| / kappa < |A_t|``, so
    ``sign(A'_t) = sign(A_t)``: a positive advantage grows by at most ``1/kappa`` of itself, a negative
    one shrinks towards zero by at most ``1/kappa`` of itself, a zero one stays zero.  That is what
    "the sign kept" means here; the bonus is *not* multiplied by ``sign(A_t)``.
    """
    MSSRShapingConfig(alpha=alpha, kappa=kappa)  # validates alpha >= 0 and kappa > 1
    if entropy.shape != advantages.shape:
        raise ValueError(
            f"MSSR shaping: entropy shape {tuple(entropy.shape)} differs from advantages {tuple(advantages.shape)}"
        )
    entropy = entropy.detach()
    if (entropy < 0).any():
        raise ValueError(f"MSSR shaping: token entropy must be >= 0, min is {entropy.min().item()}")
    bonus = torch.minimum(alpha * entropy, advantages.abs() / kappa)
    return advantages + bonus
