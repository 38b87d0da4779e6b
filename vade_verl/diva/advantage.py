"""DIVA-GRPO math: difficulty tracking, variant-difficulty draw, local+global advantage.

DIVA-GRPO, "difficulty-adaptive variant advantage" (arXiv 2603.01106). Pure numpy/torch, no verl
import; the verl adapter is :mod:`vade_verl.diva.verl_plugin`. Defaults are the paper's values or, where the
paper is silent or differs, the authors' released code (GitHub Siaaaaaa1/DIVA_GRPO_release, files
cited below); docs/diva.md tabulates every choice (paper / authors' code / ours).

Difficulty (Sec. 3.1, "global difficulty-aware assessment")
    Each problem carries an integer difficulty ``d`` in ``[d_min, d_max] = [1, 9]``. After a step,
    ``s`` = the fraction of correct rollouts over the problem *and* its variants in that step, and
    ``d <- clip(d + delta(s), 1, 9)`` with the right-closed score bands
    ``[0, .05] -> +2, (.05, .3] -> +1, (.3, .5] -> 0, (.5, .7] -> -1, (.7, 1] -> -2``
    (release ``verl/utils/diva_utils.py: calculate_new_difficulty``; the first matching closed
    interval wins, so the bands are right-closed).

Variant difficulty (Sec. 3.2)
    ``target = clip(round(Normal(mu(d), sigma)), 1, 9)``, ``sigma = 1``,
    ``mu = {1: 8, 2: 7.5, 3: 7, 4: 6.5, 5: 6, 6: 5, 7: 4, 8: 3.5, 9: 3}`` (the paper's table). When a
    problem gets exactly one variant the authors' release does not draw: it takes the fixed target
    ``{1: 9, 2: 8, 3: 7, 4: 6, 5: 6, 6: 5, 7: 5, 8: 5, 9: 4}`` (release ``verl/utils/gen_new_item.py:
    DIFFICULTY_MAPPING``, ``generate_variant_difficulty_samples``); that is our default
    (``DifficultyConfig.single_variant_targets``). With several variants only the first one with a
    negative shift keeps it, the others get a shift drawn from 0..3 (release ``generate_variants``,
    ``allow_multiple_thinking=False``). The shift ``D = target - d`` chooses the kind of variant
    (:mod:`vade_verl.diva.variants`).

Advantage (Sec. 3.3), for response ``i`` with summed reward ``r_i``:
    ``A_local_i  = (r_i - mean_L) / (std_L + eps)`` over the rollouts of the prompt's own group L (uid);
    ``A_global_i = (r_i - mean_G) / (std_G + eps)`` over the rollouts of the problem and all its
    variants (G = problem id);
    ``dd_i = diff(item_i) - mean_{items j in G} diff(item_j)`` (mean over the *prompts* of G);
    ``w_i = exp(k * dd_i * sign(A))``, ``k = 0.1``, ``Z`` = z-score over the whole batch.

    * ``order="authors"`` (default; release ``verl/trainer/ray_trainer.py:
      _compute_difficult_adaption_advantage_difficulty`` with the shipped
      ``weight_mode=ZSCORENORM_WAN_RRBLOCAL_RRBGLOBAL``): normalise first, then weight, then damp:
      ``L = Z(A_local)``, ``G = Z(A_global)``, ``G' = G * exp(k * dd * sign(G))``; ``L`` is scaled by
      ``low_reward_scale`` (0.1) in a local group whose task scores are all below
      ``low_reward_threshold`` (0.15) and ``G'`` in a *global* group (problem + variants) whose scores
      all are (``adjust_low_reward_advantages``, RRBLOCAL and RRBGLOBAL); ``A = L + G'``.
    * ``order="paper"`` (Sec. 3.3 as written): weight, then normalise:
      ``A = Z(A_local) + Z(A_global * exp(k * dd * sign(A_global)))``; damping scales the whole ``A``
      of a low local group.

Group statistics follow verl's ``compute_grpo_outcome_advantage``: unbiased std, a group of one
response gets mean 0 and std 1, and ``norm_by_std=False`` skips the division (Dr.GRPO style).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

PAPER_MU: tuple[float, ...] = (8.0, 7.5, 7.0, 6.5, 6.0, 5.0, 4.0, 3.5, 3.0)
"""Mean of the variant-difficulty draw for d = 1..9 (the paper's table)."""

AUTHORS_SINGLE_VARIANT_TARGETS: tuple[int, ...] = (9, 8, 7, 6, 6, 5, 5, 5, 4)
"""Target difficulty of the one variant of a problem with d = 1..9 (release ``gen_new_item.py: DIFFICULTY_MAPPING``)."""

REPLACED_HINT_SHIFTS: tuple[int, ...] = (0, 1, 2, 3)
"""Shifts a second negative draw is replaced by (release ``generate_variants``: ``random.choice([0, 1, 2, 3])``)."""


def _from_mapping(cls, values: Mapping[str, Any] | None, **overrides):
    """Build dataclass ``cls`` from a (possibly OmegaConf) mapping; unknown keys are an error."""
    known = {f.name for f in fields(cls)}
    values = dict(values or {})
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    for key, val in values.items():
        if isinstance(val, list):  # OmegaConf ListConfig arrives as a list after to_container
            values[key] = tuple(val)
    values.update(overrides)
    return cls(**values)


@dataclass(frozen=True)
class DifficultyConfig:
    """Difficulty scale, update bands and variant-difficulty draw (paper defaults)."""

    d_min: int = 1
    d_max: int = 9
    init: int = 5
    """Start difficulty of a problem without a difficulty column (the paper does not say; 5 is the middle)."""
    band_edges: tuple[float, ...] = (0.05, 0.3, 0.5, 0.7)
    """Right-closed upper edges of the score bands, ascending."""
    band_deltas: tuple[int, ...] = (2, 1, 0, -1, -2)
    """Difficulty change per band; one more entry than ``band_edges``."""
    mu: tuple[float, ...] = PAPER_MU
    """Mean of the variant draw for d = d_min..d_max."""
    sigma: float = 1.0
    single_variant_targets: tuple[int, ...] | None = AUTHORS_SINGLE_VARIANT_TARGETS
    """Fixed target for d = d_min..d_max when a problem gets one variant (the authors' release);
    None draws from the normal as for several variants (the paper's wording)."""
    single_hint: bool = True
    """With several variants, keep only the first negative shift (one hint variant per problem);
    later negative draws become a shift drawn uniformly from 0..3 (the authors' release)."""

    def __post_init__(self):
        if not self.d_min < self.d_max:
            raise ValueError(f"DifficultyConfig: need d_min < d_max, got {self.d_min}, {self.d_max}")
        if not self.d_min <= self.init <= self.d_max:
            raise ValueError(f"DifficultyConfig: init={self.init} outside [{self.d_min}, {self.d_max}]")
        if len(self.band_deltas) != len(self.band_edges) + 1:
            raise ValueError(
                f"DifficultyConfig: band_deltas needs len(band_edges)+1 = {len(self.band_edges) + 1} "
                f"entries, got {len(self.band_deltas)}"
            )
        if list(self.band_edges) != sorted(self.band_edges):
            raise ValueError(f"DifficultyConfig: band_edges must be ascending, got {self.band_edges}")
        if len(self.mu) != self.d_max - self.d_min + 1:
            raise ValueError(
                f"DifficultyConfig: mu needs one entry per difficulty {self.d_min}..{self.d_max} "
                f"({self.d_max - self.d_min + 1}), got {len(self.mu)}"
            )
        if not self.sigma >= 0:
            raise ValueError(f"DifficultyConfig: sigma must be >= 0, got {self.sigma}")
        targets = self.single_variant_targets
        if targets is not None and (
            len(targets) != len(self.mu) or any(not self.d_min <= t <= self.d_max for t in targets)
        ):
            raise ValueError(
                f"DifficultyConfig: single_variant_targets needs one target in [{self.d_min}, {self.d_max}] per "
                f"difficulty {self.d_min}..{self.d_max}, got {targets}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> DifficultyConfig:
        return _from_mapping(cls, values)


def difficulty_delta(mean_reward: np.ndarray | float, cfg: DifficultyConfig = DifficultyConfig()) -> np.ndarray:
    """Band change ``delta(s)`` for mean rewards ``s`` in [0, 1]; bands are right-closed (s = .05 -> +2)."""
    s = np.asarray(mean_reward, dtype=np.float64)
    if s.size and (np.isnan(s).any() or s.min() < 0.0 or s.max() > 1.0):
        raise ValueError(
            "difficulty_delta: mean rewards must lie in [0, 1] (DIVA's score bands are defined there); "
            f"got min={np.nanmin(s)}, max={np.nanmax(s)}, nan={int(np.isnan(s).sum())}"
        )
    band = np.searchsorted(np.asarray(cfg.band_edges, dtype=np.float64), s, side="left")
    return np.asarray(cfg.band_deltas, dtype=np.int64)[band]


def update_difficulty(
    difficulty: np.ndarray | int, mean_reward: np.ndarray | float, cfg: DifficultyConfig = DifficultyConfig()
) -> np.ndarray:
    """``d <- clip(d + delta(s), d_min, d_max)``."""
    d = np.asarray(difficulty, dtype=np.int64)
    return np.clip(d + difficulty_delta(mean_reward, cfg), cfg.d_min, cfg.d_max)


def variant_difficulty_probs(d: int, cfg: DifficultyConfig = DifficultyConfig()) -> np.ndarray:
    """Exact law of the variant draw for difficulty ``d``: P(target = t), t = d_min..d_max.

    ``round`` is round-half-to-even (numpy); with a continuous normal the tie has probability 0,
    so P(t) = Phi((t + .5 - mu)/sigma) - Phi((t - .5 - mu)/sigma), the tails folded onto the ends.
    Used by tests and docs; the draw itself is :func:`draw_variant_difficulty`.
    """
    from math import erf, sqrt

    mu = cfg.mu[_check_difficulty(d, cfg) - cfg.d_min]
    if cfg.sigma == 0:
        p = np.zeros(cfg.d_max - cfg.d_min + 1)
        p[int(np.clip(np.round(mu), cfg.d_min, cfg.d_max)) - cfg.d_min] = 1.0
        return p

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + erf((x - mu) / (cfg.sigma * sqrt(2.0))))

    uppers = [cdf(t + 0.5) for t in range(cfg.d_min, cfg.d_max)] + [1.0]
    lowers = [0.0] + uppers[:-1]
    return np.asarray(uppers) - np.asarray(lowers)


def _check_difficulty(d, cfg: DifficultyConfig) -> int:
    if int(d) != d or not cfg.d_min <= d <= cfg.d_max:
        raise ValueError(f"difficulty must be an integer in [{cfg.d_min}, {cfg.d_max}], got {d!r}")
    return int(d)


def draw_variant_difficulty(d: int, rng: np.random.Generator, cfg: DifficultyConfig = DifficultyConfig()) -> int:
    """``target = clip(round(Normal(mu(d), sigma)), d_min, d_max)``; the shift is ``target - d``."""
    mu = cfg.mu[_check_difficulty(d, cfg) - cfg.d_min]
    return int(np.clip(np.round(rng.normal(mu, cfg.sigma)), cfg.d_min, cfg.d_max))


def draw_variant_difficulties(
    d: int, count: int, rng: np.random.Generator, cfg: DifficultyConfig = DifficultyConfig()
) -> list[int]:
    """Targets of the ``count`` variants of a problem of difficulty ``d`` (see the module doc).

    One variant with ``single_variant_targets`` set: the fixed target. Otherwise ``count`` normal
    draws; with ``single_hint`` only the first negative shift stays, later ones become ``d`` plus a
    shift drawn from 0..3 (clipped to ``d_max``).
    """
    d = _check_difficulty(d, cfg)
    if count == 1 and cfg.single_variant_targets is not None:
        return [int(cfg.single_variant_targets[d - cfg.d_min])]
    targets = []
    hint_taken = False
    for _ in range(count):
        target = draw_variant_difficulty(d, rng, cfg)
        if target < d and cfg.single_hint:
            if hint_taken:
                target = min(d + int(rng.choice(REPLACED_HINT_SHIFTS)), cfg.d_max)
            hint_taken = True
        targets.append(target)
    return targets


class DifficultyTracker:
    """Per-problem difficulty table, indexed by problem id 0..num_problems-1."""

    def __init__(self, num_problems: int, cfg: DifficultyConfig = DifficultyConfig(), initial=None):
        self.cfg = cfg
        if initial is None:
            self.difficulty = np.full(num_problems, cfg.init, dtype=np.int64)
        else:
            initial = np.asarray(initial)
            if initial.shape != (num_problems,):
                raise ValueError(f"DifficultyTracker: initial has shape {initial.shape}, need ({num_problems},)")
            for d in np.unique(initial):
                _check_difficulty(d, cfg)
            self.difficulty = initial.astype(np.int64)
        self.num_updates = 0

    def __len__(self) -> int:
        return len(self.difficulty)

    def update(self, problem_ids: Sequence[int], correctness: Sequence[float]) -> dict[int, tuple[float, int, int]]:
        """Update every problem present from the mean correctness of all its rows (problem and variants).

        ``problem_ids[i]`` and ``correctness[i]`` (in [0, 1], see :mod:`vade_verl.verl_adapters.rewards`) describe one
        rollout; NaN entries are left out (the caller counts them). Returns
        ``{problem id: (mean correctness, old d, new d)}``.
        """
        ids = np.asarray(problem_ids, dtype=np.int64)
        r = np.asarray(correctness, dtype=np.float64)
        if ids.shape != r.shape or ids.ndim != 1:
            raise ValueError(f"DifficultyTracker.update: shapes differ or not 1-D: {ids.shape} vs {r.shape}")
        keep = ~np.isnan(r)
        ids, r = ids[keep], r[keep]
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"DifficultyTracker.update: problem id outside [0, {len(self)}): {ids.min()}..{ids.max()}")
        uniq, inverse = np.unique(ids, return_inverse=True)
        means = np.bincount(inverse, weights=r) / np.bincount(inverse)
        old = self.difficulty[uniq].copy()
        new = update_difficulty(old, means, self.cfg)
        self.difficulty[uniq] = new
        self.num_updates += 1
        return {int(p): (float(m), int(o), int(n)) for p, m, o, n in zip(uniq, means, old, new, strict=True)}

    def state_dict(self) -> dict[str, Any]:
        return {"difficulty": self.difficulty.tolist(), "num_updates": self.num_updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        difficulty = np.asarray(state["difficulty"], dtype=np.int64)
        if difficulty.shape != self.difficulty.shape:
            raise ValueError(
                f"DifficultyTracker.load_state_dict: checkpoint has {difficulty.shape[0]} problems, "
                f"the dataset {len(self)} (different data files or filtering?)"
            )
        self.difficulty = difficulty
        self.num_updates = int(state["num_updates"])


ADVANTAGE_ORDERS = ("authors", "paper")


@dataclass(frozen=True)
class DivaAdvantageConfig:
    """Constants of the DIVA advantage (the order and damping of the authors' release by default)."""

    order: str = "authors"
    """"authors": normalise, weight, damp local and global parts; "paper": weight, then normalise (module doc)."""
    k: float = 0.1
    """Difficulty-weighting strength in exp(k * dd * sign(A))."""
    eps: float = 1e-6
    norm_by_std: bool = True
    """Divide by the std in the local/global z-scores (verl's ``algorithm.norm_adv_by_std_in_grpo``)."""
    low_reward_damping: bool = True
    low_reward_threshold: float = 0.15
    """A group is "low" when every task score in it is below this."""
    low_reward_scale: float = 0.1

    def __post_init__(self):
        if self.order not in ADVANTAGE_ORDERS:
            raise ValueError(f"DivaAdvantageConfig: order must be one of {ADVANTAGE_ORDERS}, got {self.order!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, **overrides) -> DivaAdvantageConfig:
        return _from_mapping(cls, values, **overrides)


def _keys(ids: Sequence[Hashable]) -> np.ndarray:
    return np.asarray(ids, dtype=object).astype(str)


def group_zscore(scores: torch.Tensor, group_ids: Sequence[Hashable], eps: float, norm_by_std: bool) -> torch.Tensor:
    """``(r - mean_g) / (std_g + eps)`` per group (verl GRPO convention, see module doc)."""
    _, inverse = np.unique(_keys(group_ids), return_inverse=True)
    inv = torch.as_tensor(inverse, device=scores.device)
    n_groups = int(inv.max()) + 1 if len(inv) else 0
    count = torch.zeros(n_groups, dtype=scores.dtype, device=scores.device).index_add_(0, inv, torch.ones_like(scores))
    total = torch.zeros_like(count).index_add_(0, inv, scores)
    mean = total / count
    sq = torch.zeros_like(count).index_add_(0, inv, (scores - mean[inv]) ** 2)
    std = torch.sqrt(sq / (count - 1).clamp(min=1))
    single = count == 1
    mean = torch.where(single, torch.zeros_like(mean), mean)
    std = torch.where(single, torch.ones_like(std), std)
    centred = scores - mean[inv]
    return centred / (std[inv] + eps) if norm_by_std else centred


def batch_zscore(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` over the whole batch (unbiased std; a batch of one is only centred)."""
    if x.numel() < 2:
        return x - x.mean()
    return (x - x.mean()) / (x.std() + eps)


def compute_diva_advantage(
    scores: torch.Tensor,
    local_ids: Sequence[Hashable],
    global_ids: Sequence[Hashable],
    item_difficulty: Sequence[float] | torch.Tensor,
    cfg: DivaAdvantageConfig = DivaAdvantageConfig(),
    low_local: Sequence[bool] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DIVA advantage per response (formulas in the module doc).

    Args:
        scores: (B,) summed reward of each response (what the advantage ranks; any finite values).
        local_ids: (B,) prompt group of each response (verl's uid).
        global_ids: (B,) problem id (the original problem shared by its variants).
        item_difficulty: (B,) difficulty of the prompt the response answers (the problem's d for the
            original, the variant's own difficulty for a variant); constant within a local group.
        low_local: (B,) whether the response's local group is "low" (all task scores below
            ``low_reward_threshold``); None derives it from ``scores``. A global group is low when
            all its local groups are.

    Returns:
        (A, parts) with A of shape (B,) and parts A_local, A_global (group z-scores), dd,
        A_global_weighted (the global part as it enters A, before damping), low_local, low_global.
    """
    b = scores.shape[0]
    if scores.ndim != 1 or len(local_ids) != b or len(global_ids) != b or len(item_difficulty) != b:
        raise ValueError(
            f"compute_diva_advantage: need 1-D scores and equal lengths, got scores {tuple(scores.shape)}, "
            f"local_ids {len(local_ids)}, global_ids {len(global_ids)}, item_difficulty {len(item_difficulty)}"
        )
    if not torch.isfinite(scores).all():
        raise ValueError(f"compute_diva_advantage: {int((~torch.isfinite(scores)).sum())} non-finite reward(s) in the batch")
    diff = torch.as_tensor(np.asarray(item_difficulty, dtype=np.float64), dtype=scores.dtype, device=scores.device)
    local_key, global_key = _keys(local_ids), _keys(global_ids)

    # One difficulty and one problem per prompt group; the global mean difficulty is over prompts.
    item_diff: dict[str, float] = {}
    item_problem: dict[str, str] = {}
    for lk, gk, dv in zip(local_key, global_key, diff.tolist(), strict=True):
        if item_diff.setdefault(lk, dv) != dv or item_problem.setdefault(lk, gk) != gk:
            raise ValueError(
                f"compute_diva_advantage: prompt group {lk!r} mixes difficulties or problems "
                f"({item_diff[lk]} vs {dv}, {item_problem[lk]!r} vs {gk!r})"
            )
    per_problem: dict[str, list[float]] = {}
    for lk, gk in item_problem.items():
        per_problem.setdefault(gk, []).append(item_diff[lk])
    problem_mean = {gk: float(np.mean(v)) for gk, v in per_problem.items()}
    dd = diff - torch.tensor([problem_mean[gk] for gk in global_key], dtype=scores.dtype, device=scores.device)

    if low_local is None:
        low_local = (scores < cfg.low_reward_threshold).tolist()
    low_local = _all_in_group(np.asarray(low_local, dtype=bool), local_key)
    low_global = _all_in_group(low_local, global_key)
    low_local_t = torch.as_tensor(low_local, device=scores.device)
    low_global_t = torch.as_tensor(low_global, device=scores.device)

    a_local = group_zscore(scores, local_key, cfg.eps, cfg.norm_by_std)
    a_global = group_zscore(scores, global_key, cfg.eps, cfg.norm_by_std)
    scale = torch.tensor(cfg.low_reward_scale if cfg.low_reward_damping else 1.0, dtype=scores.dtype, device=scores.device)
    if cfg.order == "authors":
        local_part = batch_zscore(a_local, cfg.eps)
        global_part = batch_zscore(a_global, cfg.eps)
        global_part = global_part * torch.exp(cfg.k * dd * torch.sign(global_part))
        parts_global_w = global_part
        adv = torch.where(low_local_t, local_part * scale, local_part) + torch.where(
            low_global_t, global_part * scale, global_part
        )
    else:
        parts_global_w = a_global * torch.exp(cfg.k * dd * torch.sign(a_global))
        adv = batch_zscore(a_local, cfg.eps) + batch_zscore(parts_global_w, cfg.eps)
        adv = torch.where(low_local_t, adv * scale, adv)
    parts = {
        "A_local": a_local,
        "A_global": a_global,
        "dd": dd,
        "A_global_weighted": parts_global_w,
        "low_local": low_local_t,
        "low_global": low_global_t,
    }
    return adv, parts


def _all_in_group(flags: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Per row: whether ``flags`` holds for every row of the row's group."""
    _, inverse = np.unique(keys, return_inverse=True)
    all_true = np.ones(inverse.max() + 1 if inverse.size else 0, dtype=bool)
    np.logical_and.at(all_true, inverse, flags)
    return all_true[inverse]
