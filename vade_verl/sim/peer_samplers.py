"""VADE's closest published relatives as pure numpy samplers (no verl import): MoPPS and GRESO.

* MoPPS (Qu et al., arXiv 2507.04632; code github.com/thu-rllab/MoPPS, ``recipe/ours/mopps.py``
  ``PosteriorSampler``): a ``Beta(a, b)`` posterior of each prompt's success rate, prior
  ``Beta(1, 1)``, updated after each step with exponential decay toward the prior,
  ``a <- l a + (1 - l) 1 + s``, ``b <- l b + (1 - l) 1 + (n - s)`` (``s`` correct of ``n``
  rollouts; prompts not rolled out are untouched). Each step a candidate pool of
  ``ts_ratio x B`` prompts comes from the ordinary shuffled loader; one Thompson draw per candidate,
  and the ``B`` candidates whose draws are closest to the target success rate (0.5) are rolled
  out ("topk" strategy). In our count notation (``alpha = a - 1``, ``beta = b - 1``, posterior
  ``Beta(alpha + 1, beta + 1)``) the update is ``alpha <- l alpha + s``: VADE's fast decay with
  ``l1 = l`` and no slow decay, so it reuses ``vade_verl.vade.algorithm.two_scale_decay``.
* GRESO (Zheng et al., arXiv 2506.02177; code github.com/Infini-AI-Lab/GRESO,
  ``verl/trainer/ttis/presampling_selector.py`` and ``verl/trainer/ppo/ray_trainer.py``): before
  rollout, a prompt whose last ``k`` groups were all correct is skipped with probability
  ``1 - max(p_easy^k, 0.01)``, one whose last ``k`` groups were all wrong with
  ``1 - max(p_hard^k, 0.01)``. Kept prompts are rolled out in sampling batches and filtered like
  DAPO (constant groups dropped) until ``B`` informative groups are kept; after each training
  step (from the second epoch on) ``p_easy`` and ``p_hard`` move by 0.01 within [0.05, 0.95]
  toward target shares of all-correct and all-wrong groups among the step's rolled-out prompts
  (``target_zero_variance / 3`` and ``2 target_zero_variance / 3``).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Iterator

import numpy as np

from vade_verl.sim.baseline_samplers import GenerationLimitReached
from vade_verl.sim.population import informative_groups
from vade_verl.vade.algorithm import thompson_draw, top_b, two_scale_decay


class MoPPSState:
    """MoPPS's per-prompt posteriors and its candidate-pool selection (module docstring).

    Args:
        num_samples: dataset size N.
        decay: ``l`` of the update (``tasksampler.bandit_decay_ratio``; 1 = no decay).
        target: target success rate (``tasksampler.bandit_target_mean``).
        seed: seed of the Thompson draws.
    """

    def __init__(self, num_samples: int, *, decay: float, target: float, seed: int):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"MoPPS decay {decay} must be in [0, 1]")
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"MoPPS target success rate {target} must be in [0, 1]")
        self.alpha = np.zeros(num_samples)
        self.beta = np.zeros(num_samples)
        self.decay = float(decay)
        self.target = float(target)
        self.rng = np.random.default_rng(seed)

    def select(self, candidates: np.ndarray, batch_size: int) -> np.ndarray:
        """The ``batch_size`` candidates whose posterior draws are closest to the target."""
        candidates = np.asarray(candidates)
        draws = thompson_draw(self.alpha[candidates], self.beta[candidates], self.rng)
        return candidates[top_b(-np.abs(draws - self.target), batch_size)]

    def update(self, positions: np.ndarray, successes: np.ndarray, trials: np.ndarray) -> None:
        """Decayed Bayes update of distinct ``positions`` with ``successes`` of ``trials`` rollouts."""
        two_scale_decay(self.alpha, self.beta, np.asarray(positions), successes, trials, l1=self.decay, l2=1.0)


@dataclasses.dataclass(frozen=True)
class GRESOConfig:
    """GRESO's knobs; defaults from the authors' ``train-scripts/math_qwen_1_5b_dm_greso.sh``
    (``p_easy = p_hard = 0.5``, ``target_zero_variance = 0.25``) and ``ray_trainer.py`` (step 0.01,
    bounds [0.05, 0.95], keep probability at least 0.01, sampling batches at least 64 prompts for a
    train batch of 256, i.e. a quarter of it)."""

    p_easy: float = 0.5
    p_hard: float = 0.5
    target_zero_variance: float = 0.25
    step: float = 0.01
    p_min: float = 0.05
    p_max: float = 0.95
    min_keep: float = 0.01


class GRESOState:
    """Per prompt, the number of most recent consecutive all-correct (easy) or all-wrong (hard)
    groups, and the adaptive exploration probabilities ``p_easy`` and ``p_hard``."""

    def __init__(self, num_samples: int, config: GRESOConfig = GRESOConfig()):
        for name in ("p_easy", "p_hard", "target_zero_variance"):
            if not 0.0 <= getattr(config, name) <= 1.0:
                raise ValueError(f"GRESO {name}={getattr(config, name)} must be in [0, 1]")
        self.config = config
        self.easy_streak = np.zeros(num_samples, dtype=np.int64)
        self.hard_streak = np.zeros(num_samples, dtype=np.int64)
        self.p_easy, self.p_hard = config.p_easy, config.p_hard

    def keep_probability(self, positions: np.ndarray) -> np.ndarray:
        """``max(p^k, min_keep)`` with ``k`` the easy (else hard) streak; 1 for a prompt without one."""
        easy, hard = self.easy_streak[positions], self.hard_streak[positions]
        floor = self.config.min_keep
        return np.where(
            easy > 0,
            np.maximum(self.p_easy**easy, floor),
            np.where(hard > 0, np.maximum(self.p_hard**hard, floor), 1.0),
        )

    def record(self, positions: np.ndarray, rewards: np.ndarray, group_size: int) -> None:
        """Extend the streaks with one group per position (binary rewards, grouped per prompt)."""
        grouped = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
        all_correct = grouped.min(axis=1) >= 1.0
        all_wrong = grouped.max(axis=1) <= 0.0
        self.easy_streak[positions] = np.where(all_correct, self.easy_streak[positions] + 1, 0)
        self.hard_streak[positions] = np.where(all_wrong, self.hard_streak[positions] + 1, 0)

    def adapt(self, easy_share: float, hard_share: float) -> None:
        """Move ``p_easy``/``p_hard`` one step down when their share reached its target, else up."""
        c = self.config

        def moved(p: float, share: float, target: float) -> float:
            return max(p - c.step, c.p_min) if share >= target else min(p + c.step, c.p_max)

        self.p_easy = moved(self.p_easy, easy_share, c.target_zero_variance / 3.0)
        self.p_hard = moved(self.p_hard, hard_share, 2.0 * c.target_zero_variance / 3.0)


@dataclasses.dataclass
class GRESOStep:
    """One GRESO training step: the trained groups and what was generated for them."""

    positions: np.ndarray
    rewards: np.ndarray
    rollouts: int
    groups_generated: int
    groups_kept: int
    all_correct: int
    all_wrong: int


def greso_fill(
    candidates: Iterator[int],
    state: GRESOState,
    rollout: Callable[[np.ndarray], np.ndarray],
    group_size: int,
    train_batch_size: int,
    sampling_batch_size: int,
    min_sampling_batch_size: int,
    max_num_gen_batches: int,
    rng: np.random.Generator,
) -> GRESOStep:
    """Skip, roll out and filter until ``train_batch_size`` informative groups (GRESO ``fit``).

    ``candidates`` yields prompt positions in the loader's order; each is kept with
    ``state.keep_probability``. Kept prompts are rolled out once ``size`` of them are pending:
    ``sampling_batch_size`` at first, then ``int(missing / (1 - zero_variance_share) * 1.25)``
    clipped to [``min_sampling_batch_size``, ``sampling_batch_size``] with ``missing`` the groups
    still needed; when that estimate is within the default, the next batch is the last and the
    step trains on what it has (possibly fewer than ``train_batch_size``). Every rolled-out group
    extends the streaks. A batch with no informative group (the authors' code divides by zero
    there) starts over at the default size; after ``max_num_gen_batches`` batches without a full
    or last batch ``GenerationLimitReached`` is raised (a simulator guard; GRESO has none).
    """
    kept_positions, kept_rewards = [], []
    num_kept = rollouts = generated = all_correct = all_wrong = num_gen = 0
    size, last = sampling_batch_size, False
    while True:
        positions = np.zeros(0, dtype=np.int64)
        while positions.size < size:
            chunk = np.fromiter(itertools.islice(candidates, size - positions.size), dtype=np.int64)
            kept = chunk[rng.random(chunk.size) < state.keep_probability(chunk)]
            positions = np.concatenate([positions, kept])
        rewards = np.asarray(rollout(positions), dtype=np.float64)
        state.record(positions, rewards, group_size)
        grouped = rewards.reshape(-1, group_size)
        keep = informative_groups(rewards, group_size)
        num_gen += 1
        rollouts += rewards.size
        generated += positions.size
        all_correct += int((grouped.min(axis=1) >= 1.0).sum())
        all_wrong += int((grouped.max(axis=1) <= 0.0).sum())
        kept_positions.append(positions[keep])
        kept_rewards.append(grouped[keep])
        num_kept += int(keep.sum())
        if num_kept >= train_batch_size or last:
            break
        if num_gen >= max_num_gen_batches:
            error = GenerationLimitReached(
                f"GRESO: {num_gen} sampling batches kept only {num_kept} of {train_batch_size} groups "
                f"(simulator guard max_num_gen_batches={max_num_gen_batches})"
            )
            error.rollouts = rollouts
            raise error
        informative_share = keep.mean()
        if informative_share == 0.0:
            size = sampling_batch_size
            continue
        estimate = int((train_batch_size - num_kept) / informative_share * 1.25)
        last = estimate <= sampling_batch_size
        size = max(min(estimate, sampling_batch_size), min_sampling_batch_size)
    positions = np.concatenate(kept_positions)[:train_batch_size]
    rewards = np.concatenate(kept_rewards)[:train_batch_size].reshape(-1)
    return GRESOStep(positions, rewards, rollouts, generated, num_kept, all_correct, all_wrong)
