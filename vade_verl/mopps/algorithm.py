"""MoPPS, the math only (Qu et al., arXiv 2507.04632; numpy, no verl import; the verl adapter is ``vade_verl.mopps.sampler``).

From the authors' ``recipe/ours/mopps.py`` ``PosteriorSampler`` (github.com/thu-rllab/MoPPS): a
``Beta(a, b)`` posterior of each prompt's success rate, prior ``Beta(1, 1)``, updated after each
step with exponential decay toward the prior, ``a <- l a + (1 - l) 1 + s``,
``b <- l b + (1 - l) 1 + (n - s)`` (``s`` correct of ``n`` rollouts, ``mopps.py:77-78``; prompts not
rolled out are untouched). Each step a candidate pool of ``ts_ratio x B`` prompts comes from the
ordinary shuffled loader (``recipe/ours/our_ray_trainer.py:176``); one Thompson draw per candidate,
and the ``B`` candidates whose draws are closest to the target success rate (0.5) are rolled out
(``bandit_sample_strategy: topk``, ``mopps.py:50``). In our count notation (``alpha = a - 1``,
``beta = b - 1``, posterior ``Beta(alpha + 1, beta + 1)``) the update is ``alpha <- l alpha + s``:
VADE's fast decay with ``l1 = l`` and no slow decay, so it reuses
``vade_verl.vade.algorithm.two_scale_decay``.
"""

from __future__ import annotations

import numpy as np

from vade_verl.vade.algorithm import PermutationStream, aggregate_rollouts, posterior_mean, thompson_draw, top_b, two_scale_decay


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


class MoPPSSelector:
    """MoPPS over a whole dataset, as the verl sampler runs it: candidate pools, counters, (de)serialisation.

    Each ``select(B)`` takes the next ``min(candidates x B, N)`` positions of a seeded permutation (a
    new one when fewer remain: the authors' shuffled loader with ``drop_last``, batch ``ts_ratio x B``)
    and returns the ``B`` that ``MoPPSState.select`` picks. One generator drives the permutations and
    the Thompson draws.
    """

    def __init__(self, num_samples: int, *, candidates: int, decay: float, target: float, seed: int):
        if candidates < 1:
            raise ValueError(f"MoPPS candidates per slot {candidates} must be >= 1")
        self.num_samples = int(num_samples)
        self.candidates = int(candidates)
        self.posteriors = MoPPSState(self.num_samples, decay=decay, target=target, seed=seed)
        self.pools = PermutationStream(self.num_samples)
        self.num_selections = 0
        self.num_updates = 0
        self.last_selected = np.zeros(0, dtype=np.int64)
        self.last_pool_size = 0

    @property
    def rng(self) -> np.random.Generator:
        return self.posteriors.rng

    def posterior_mean(self) -> np.ndarray:
        return posterior_mean(self.posteriors.alpha, self.posteriors.beta)

    def select(self, b: int) -> np.ndarray:
        """The next batch: ``b`` positions out of the next candidate pool, nearest the target first."""
        pool = self.pools.chunk(min(self.candidates * b, self.num_samples), self.rng)
        chosen = self.posteriors.select(pool, b)
        self.num_selections += 1
        self.last_selected = chosen
        self.last_pool_size = int(pool.size)
        return chosen

    def update(self, positions: np.ndarray, correctness: np.ndarray) -> dict:
        """Feed back one step's rollouts (one entry per rollout, correctness in [0, 1], NaN skipped).

        Returns the aggregated evidence ``positions``, ``successes``, ``trials`` (what ``apply`` replays).
        """
        samples, successes, trials, _ = aggregate_rollouts(positions, correctness)
        if samples.size and (samples[0] < 0 or samples[-1] >= self.num_samples):
            raise ValueError(f"sample positions must be in 0..{self.num_samples - 1}, got {samples[0]}..{samples[-1]}")
        self.apply(samples, successes, trials)
        return {"positions": samples, "successes": successes, "trials": trials}

    def apply(self, samples: np.ndarray, successes: np.ndarray, trials: np.ndarray) -> None:
        """Apply aggregated evidence (distinct ``samples``); a sample with no valid rollout is untouched."""
        self.posteriors.update(samples, successes, trials)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {
            "alpha": self.posteriors.alpha.copy(),
            "beta": self.posteriors.beta.copy(),
            "rng": self.rng.bit_generator.state,
            "num_selections": self.num_selections,
            "num_updates": self.num_updates,
            "last_selected": self.last_selected.copy(),
            **self.pools.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if np.shape(state["alpha"]) != (self.num_samples,):
            raise ValueError(
                f"MoPPS state is for {np.shape(state['alpha'])[0]} samples but the dataset has {self.num_samples}: "
                "resume with the same training files and filtering"
            )
        self.posteriors.alpha = np.array(state["alpha"], dtype=np.float64)
        self.posteriors.beta = np.array(state["beta"], dtype=np.float64)
        self.rng.bit_generator.state = state["rng"]
        self.num_selections = int(state["num_selections"])
        self.num_updates = int(state["num_updates"])
        self.last_selected = np.array(state["last_selected"], dtype=np.int64)
        self.pools.load_state_dict(state)
