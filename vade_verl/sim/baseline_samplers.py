"""The samplers a user would pick instead of VADE, and references that know the true p, as pure
numpy (no verl import).

* References: know every sample's true solve probability ``p`` and take the ``B`` samples with the
  highest score (``TRUE_P_SCORES``): the chance of an informative group of ``G`` rollouts
  ``1 - p^G - (1 - p)^G``; the Bernoulli variance ``p (1 - p)`` (the same ranking: both are
  symmetric about 1/2 and increase toward it); VADE's InfoGain ``p (1 - p)^2`` (paper Eq. 4) at the
  true ``p``. A fourth, the one-step lookahead on the simulator's dynamics, is
  ``Population.lookahead_scores``. None of them is a bound: each is myopic, and which one makes the
  most progress depends on the population and the dynamics.
* DAPO dynamic sampling (Yu et al., arXiv 2503.14476, Sec. 3.2; verl's ``recipe/dapo`` trainer with
  ``algorithm.filter_groups``): generate ``data.gen_batch_size`` prompts x ``rollout.n`` rollouts,
  drop the groups whose rewards are all equal (verl keeps a group when its reward std is > 0 or it
  has a single rollout), keep generating until ``data.train_batch_size`` groups are kept, then
  train on the first ``train_batch_size`` kept groups. Every generated rollout is paid for. After
  ``algorithm.filter_groups.max_num_gen_batches`` generation batches without a full batch verl
  raises (non-positive means no limit).
* DAPO with a pass-rate band (verl issue #2791, e.g. keep 0.2-0.8; the MoPPS authors' DAPO
  trainer has it as ``algorithm.filter_groups.filter_min/filter_max``, github.com/thu-rllab/MoPPS
  ``recipe/ours/our_ray_trainer.py``): the same generate-and-refill loop, keeping a group when its
  pass rate (mean reward) lies in the closed interval [low, high] (``pass_rate_band``).
* Static offline pass-rate filter: roll out every sample ``K`` times once before training, keep the
  samples whose pass rate lies strictly between ``min_rate`` and ``max_rate`` (default: drop the
  all-correct and all-wrong ones), then train on the kept set with the ordinary random sampler.
* MMR1 variance-aware sampling (Leng et al., arXiv 2509.21268, "VAS"): every ``T`` steps score each
  sample with the Variance Promotion Score ``VPS = w_ovs * OVS + w_tds * TDS``, with the outcome
  variance ``OVS = p_hat (1 - p_hat)`` from ``K`` fresh rollouts; each batch takes
  ``round(mix * B)`` samples drawn without replacement with probability proportional to VPS and the
  rest uniformly at random. The trajectory diversity score TDS needs response texts and is not
  modelled here (its weight is 0 in the simulator).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Iterator, Tuple

import numpy as np

from vade_verl.sim.population import informative_groups, informative_probability
from vade_verl.vade.algorithm import top_b


class GenerationLimitReached(ValueError):
    """verl's DAPO trainer raises a ValueError when ``max_num_gen_batches`` is reached."""


def variance(p: np.ndarray, group_size: int) -> np.ndarray:
    """The Bernoulli variance ``p (1 - p)`` (``group_size`` unused)."""
    p = np.asarray(p, dtype=np.float64)
    return p * (1.0 - p)


def info_gain(p: np.ndarray, group_size: int) -> np.ndarray:
    """VADE's InfoGain ``p (1 - p)^2`` (arXiv 2511.18902, Eq. 4; ``group_size`` unused)."""
    p = np.asarray(p, dtype=np.float64)
    return p * (1.0 - p) ** 2


TRUE_P_SCORES: Dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "informative": informative_probability,
    "variance": variance,
    "infogain": info_gain,
}


def true_p_batch(score: str, p: np.ndarray, batch_size: int, group_size: int) -> np.ndarray:
    """The ``batch_size`` samples with the highest ``TRUE_P_SCORES[score]`` of their true ``p``."""
    return top_b(TRUE_P_SCORES[score](p, group_size), batch_size)


def dapo_kept_groups(rewards: np.ndarray, group_size: int) -> np.ndarray:
    """verl's DAPO rule per group: keep when the rewards' std is > 0 or the group has one rollout."""
    if group_size == 1:
        return np.ones(np.asarray(rewards).size, dtype=bool)
    return informative_groups(rewards, group_size)


def pass_rate_band(low: float, high: float) -> Callable[[np.ndarray, int], np.ndarray]:
    """A DAPO keep rule: the group's pass rate (mean reward) lies in the closed interval [low, high]."""
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"pass-rate band must satisfy 0 <= low <= high <= 1, got [{low}, {high}]")

    def keep(rewards: np.ndarray, group_size: int) -> np.ndarray:
        rate = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size).mean(axis=1)
        return (rate >= low) & (rate <= high)

    return keep


@dataclasses.dataclass
class DAPOStep:
    """One DAPO training step: the trained groups and what was generated to fill them."""

    positions: np.ndarray  # the train_batch_size kept prompts, in generation order
    rewards: np.ndarray  # their rollouts, group_size per prompt
    num_gen_batches: int
    rollouts: int  # every generated rollout: num_gen_batches * gen_batch_size * group_size
    groups_generated: int
    groups_kept: int  # before truncation to train_batch_size


def dapo_fill(
    gen_batches: Iterator[np.ndarray],
    rollout: Callable[[np.ndarray], np.ndarray],
    group_size: int,
    train_batch_size: int,
    max_num_gen_batches: int,
    keep_rule: Callable[[np.ndarray, int], np.ndarray] = dapo_kept_groups,
) -> DAPOStep:
    """Generate and filter until ``train_batch_size`` groups are kept (verl DAPO ``fit`` semantics).

    ``gen_batches`` yields the prompt positions of each generation batch (the data loader);
    ``rollout(positions)`` returns ``group_size`` rewards per position, grouped per prompt;
    ``keep_rule(rewards, group_size)`` says which groups are kept (default: verl's).
    Raises ``GenerationLimitReached`` after ``max_num_gen_batches`` batches (when > 0) that did
    not fill the batch; the generated rollouts are then in ``error.rollouts``.
    """
    kept_positions, kept_rewards = [], []
    num_kept = num_gen = rollouts = generated = 0
    while num_kept < train_batch_size:
        positions = np.asarray(next(gen_batches))
        rewards = np.asarray(rollout(positions), dtype=np.float64)
        if rewards.size != positions.size * group_size:
            raise ValueError(f"rollout returned {rewards.size} rewards for {positions.size} prompts x {group_size}")
        num_gen += 1
        rollouts += rewards.size
        generated += positions.size
        keep = keep_rule(rewards, group_size)
        kept_positions.append(positions[keep])
        kept_rewards.append(rewards.reshape(-1, group_size)[keep])
        num_kept += int(keep.sum())
        if num_kept < train_batch_size and 0 < max_num_gen_batches <= num_gen:
            error = GenerationLimitReached(
                f"DAPO: {num_gen} generation batches kept only {num_kept} of {train_batch_size} groups "
                f"(max_num_gen_batches={max_num_gen_batches}); verl stops the run here"
            )
            error.rollouts = rollouts
            raise error
    positions = np.concatenate(kept_positions)[:train_batch_size]
    rewards = np.concatenate(kept_rewards)[:train_batch_size].reshape(-1)
    return DAPOStep(positions, rewards, num_gen, rollouts, generated, num_kept)


def pass_rate_filter(successes: np.ndarray, trials: int, min_rate: float = 0.0, max_rate: float = 1.0) -> np.ndarray:
    """Positions whose offline pass rate ``successes / trials`` is in the open interval (min, max)."""
    if trials < 1:
        raise ValueError(f"the offline filter needs at least one rollout per sample, got {trials}")
    if not 0.0 <= min_rate < max_rate <= 1.0:
        raise ValueError(f"filter bounds must satisfy 0 <= min_rate < max_rate <= 1, got {min_rate}, {max_rate}")
    rate = np.asarray(successes, dtype=np.float64) / trials
    return np.flatnonzero((rate > min_rate) & (rate < max_rate))


def outcome_variance_score(successes: np.ndarray, trials: int) -> np.ndarray:
    """MMR1's OVS: the Bernoulli variance ``p_hat (1 - p_hat)`` of ``trials`` rollouts per sample."""
    p_hat = np.asarray(successes, dtype=np.float64) / trials
    return p_hat * (1.0 - p_hat)


def weighted_sample_without_replacement(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct indices, drawn one by one with probability proportional to ``weights``.

    Efraimidis and Spirakis (2006): the ``k`` largest keys ``log(u_i) / w_i`` (u uniform) are such a
    draw. Only indices with a positive weight can be drawn; ``k`` must not exceed their number.
    """
    weights = np.asarray(weights, dtype=np.float64)
    positive = np.flatnonzero(weights > 0)
    if k > positive.size:
        raise ValueError(f"cannot draw {k} distinct indices from {positive.size} with positive weight")
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.log(rng.random(positive.size)) / weights[positive]
    return positive[top_b(keys, k)]


def variance_aware_batch(vps: np.ndarray, batch_size: int, mix: float, rng: np.random.Generator) -> Tuple[np.ndarray, int]:
    """MMR1 VAS batch: ``round(mix * B)`` drawn proportional to VPS, the rest uniform from the others.

    Returns ``(positions, shortfall)``: when fewer than ``round(mix * B)`` samples have VPS > 0,
    all of them are taken and the ``shortfall`` is filled uniformly (the caller logs it).
    """
    n = vps.size
    if not 0 < batch_size <= n:
        raise ValueError(f"batch size {batch_size} must be in 1..{n} (the number of samples)")
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"MMR1 mix {mix} must be in [0, 1]")
    wanted = int(round(mix * batch_size))
    available = int((vps > 0).sum())
    weighted = weighted_sample_without_replacement(vps, min(wanted, available), rng)
    rest = np.setdiff1d(np.arange(n), weighted, assume_unique=True)
    uniform = rng.choice(rest, size=batch_size - weighted.size, replace=False)
    return np.concatenate([weighted, uniform]), wanted - weighted.size
