"""GRESO's trainer loop as the simulator runs it (no verl import); the selectors themselves live in their packages.

* MoPPS (``vade_verl.mopps.algorithm.MoPPSState``): the simulator draws its candidate pools from
  verl's shuffled loader and calls ``MoPPSState.select`` / ``update`` (``vade_verl.sim.simulate``).
* GRESO (``vade_verl.greso.algorithm.GRESOState``): the pre-rollout skip and the adaptation are the
  package's; the authors' trainer around them (roll out the kept prompts in sampling batches, filter
  like DAPO, refill with shrinking batches until ``B`` informative groups; ``ray_trainer.py:1141-1181``
  of github.com/Infini-AI-Lab/GRESO) is :func:`greso_fill`, which a verl sampler cannot do
  (docs/greso.md) and the simulator models.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Iterator

import numpy as np

from vade_verl.greso.algorithm import GRESOState
from vade_verl.sim.baseline_samplers import GenerationLimitReached
from vade_verl.sim.population import informative_groups


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
