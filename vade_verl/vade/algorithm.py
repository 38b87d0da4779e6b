"""VADE: variance-aware dynamic sampling (Hu et al., arXiv 2511.18902), the math only.

Numpy only, no verl import: the verl adapter is ``vade_verl.vade.sampler``.

Per training sample i the policy's correctness probability has the posterior
``Beta(alpha_i + 1, beta_i + 1)`` (alpha = beta = 0 is the uniform prior; paper Sec. 3.1).
Each step every sample is scored from a draw ``p_i ~ Beta(alpha_i + 1, beta_i + 1)`` (Thompson
sampling, Sec. 3.2) with the information gain ``I_i = p_i (1 - p_i)^2`` (maximal at p = 1/3, value
4/27), and the ``B`` highest scores form the next batch. After the batch's rollouts, with ``r_i``
the summed reward of sample i's ``G_i`` rollouts, the two-scale prior decay (Sec. 3.3) is::

    alpha_i <- l1 * alpha_i + r_i,  beta_i <- l1 * beta_i + (G_i - r_i)   (samples just rolled out)
    alpha_j <- l2 * alpha_j,        beta_j <- l2 * beta_j                 (all other samples)

The paper's ablations (Sec. 4.4) are options: the score ``p (1 - p)`` ("variance"), the
posterior mean instead of a draw ("greedy"), and no decay (``l1 = l2 = 1``).

Our variant ``"eig"`` (not in the paper; ``VARIANTS``) changes two things and keeps the rest:

* selection: the ``B`` samples with the highest posterior *expected* score ``E[I(p)]`` under
  ``Beta(alpha + 1, beta + 1)`` (``expected_score``), the Bayes decision for the paper's own
  objective, instead of the score of one Thompson draw;
* decay: the fast factor ``l1`` applies only to a sample whose new group was informative (its
  summed reward strictly between 0 and its number of rollouts); a constant group keeps the old
  evidence at the slow rate ``l2`` (``gated_fast_decay``). A constant group has zero GRPO
  advantage, so the policy takes no gradient step on that sample and it changes no faster than an
  unselected one. Evidence on always-wrong or always-right samples then accumulates instead of
  being capped at ``G / (1 - l1)`` rollouts.
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

ScoreFn = Callable[[np.ndarray], np.ndarray]

SCORE_REGISTRY: Dict[str, ScoreFn] = {}

SELECTION_MODES = ("thompson", "greedy", "random")

VARIANTS = ("paper", "eig")


def register_score(name: str) -> Callable[[ScoreFn], ScoreFn]:
    """Register a selection score ``p -> score`` under ``name`` (``vade.score=<name>``)."""

    def decorator(fn: ScoreFn) -> ScoreFn:
        if name in SCORE_REGISTRY and SCORE_REGISTRY[name] is not fn:
            raise ValueError(f"score {name!r} is already registered")
        SCORE_REGISTRY[name] = fn
        return fn

    return decorator


def get_score_fn(name: str) -> ScoreFn:
    if name not in SCORE_REGISTRY:
        raise ValueError(f"unknown VADE score {name!r}; registered: {sorted(SCORE_REGISTRY)}")
    return SCORE_REGISTRY[name]


@register_score("infogain")
def info_gain(p: np.ndarray) -> np.ndarray:
    """``I = p (1 - p)^2`` (paper Eq. 3): peaks at p = 1/3 with value 4/27."""
    score = 1.0 - p
    score *= score
    score *= p
    return score


@register_score("variance")
def bernoulli_variance(p: np.ndarray) -> np.ndarray:
    """``p (1 - p)``, the ablation score of Sec. 4.4: peaks at p = 1/2."""
    score = 1.0 - p
    score *= p
    return score


def expected_info_gain(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``E[p (1 - p)^2]`` for ``p ~ Beta(a, b)``, ``a = alpha + 1``, ``b = beta + 1``, ``n = a + b``.

    ``E[p^j (1 - p)^k] = B(a + j, b + k) / B(a, b)``, so ``E[p (1 - p)^2] = a b (b + 1) / (n (n + 1) (n + 2))``.
    The uniform prior (``alpha = beta = 0``) gives 1/12; the point mass at 1/3 would give 4/27.
    """
    a = alpha + 1.0
    b = beta + 1.0
    n = a + b
    return a * b * (b + 1.0) / (n * (n + 1.0) * (n + 2.0))


def expected_variance(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``E[p (1 - p)]`` for ``p ~ Beta(alpha + 1, beta + 1)``: ``a b / (n (n + 1))`` (as ``expected_info_gain``)."""
    a = alpha + 1.0
    b = beta + 1.0
    n = a + b
    return a * b / (n * (n + 1.0))


# The posterior expectation of each registered score, for the "eig" variant.
EXPECTED_SCORES = {"infogain": expected_info_gain, "variance": expected_variance}


def posterior_mean(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Mean of ``Beta(alpha + 1, beta + 1)``: ``(alpha + 1) / (alpha + beta + 2)``."""
    return (alpha + 1.0) / (alpha + beta + 2.0)


def thompson_draw(alpha: np.ndarray, beta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per sample from ``Beta(alpha + 1, beta + 1)``, exact.

    Closed forms where one count is zero, numpy's Beta sampler (two gamma draws) elsewhere:

    * ``alpha = 0``: ``Beta(1, beta + 1)`` has CDF ``1 - (1 - p)^(beta + 1)``, so
      ``p = 1 - U^(1 / (beta + 1))`` with ``U`` uniform; ``alpha = beta = 0`` is ``Uniform(0, 1)``.
    * ``beta = 0``: ``Beta(alpha + 1, 1)``, ``p = U^(1 / (alpha + 1))``.

    These are the never-updated samples (numpy's Beta sampler is at its slowest there: Johnk's
    algorithm) and the ones so far always wrong or always right, most of a large dataset for a
    long time; the decay keeps a zero count at zero.
    """
    alpha_zero, beta_zero = alpha == 0.0, beta == 0.0
    general = ~(alpha_zero | beta_zero)
    n_general = int(np.count_nonzero(general))
    if n_general == general.size:
        return rng.beta(alpha + 1.0, beta + 1.0)
    draws = rng.random(general.size)
    only_failures = np.flatnonzero(alpha_zero & ~beta_zero)
    draws[only_failures] = 1.0 - draws[only_failures] ** (1.0 / (beta[only_failures] + 1.0))
    only_successes = np.flatnonzero(beta_zero & ~alpha_zero)
    draws[only_successes] = draws[only_successes] ** (1.0 / (alpha[only_successes] + 1.0))
    if n_general:
        where = np.flatnonzero(general)
        draws[where] = rng.beta(alpha[where] + 1.0, beta[where] + 1.0)
    return draws


def top_b(scores: np.ndarray, b: int) -> np.ndarray:
    """Indices of the ``b`` largest scores, highest first, ties to the lower index.

    The same result as ``sorted(range(N), key=lambda i: (-scores[i], i))[:b]`` in O(N). On a
    large array a cut value is first read off an evenly strided subsample (about 64 b values, so
    that about 3 b scores exceed it); when at least ``b`` scores are strictly above the cut, every
    score tied with the b-th largest is too, so the result is ``top_b`` of those candidates,
    unchanged. Otherwise (an unlucky or adversarial order) it falls back to one full partition.
    """
    n = scores.shape[0]
    if not 0 < b <= n:
        raise ValueError(f"batch size {b} must be in 1..{n} (the number of samples)")
    stride = n // (64 * b)
    if stride >= 4:
        sub = scores[::stride]
        rank = -(-3 * b // stride)  # ceil(3 b / stride): about 3 b scores of the full array above it
        cut = np.partition(sub, sub.size - rank)[sub.size - rank]
        candidates = np.flatnonzero(scores > cut)
        if candidates.size >= b:
            return candidates[_top_b_by_partition(scores[candidates], b)]
    return _top_b_by_partition(scores, b)


def _top_b_by_partition(scores: np.ndarray, b: int) -> np.ndarray:
    """``top_b`` by one partition of the whole array: the b-th largest value, then sort b winners."""
    threshold = -np.partition(-scores, b - 1)[b - 1]
    above = np.flatnonzero(scores > threshold)
    tied = np.flatnonzero(scores == threshold)[: b - above.size]
    chosen = np.concatenate([above, tied])
    order = np.lexsort((chosen, -scores[chosen]))
    return chosen[order]


def aggregate_rollouts(positions: np.ndarray, rewards: np.ndarray):
    """Sum rollouts per sample: ``(samples, successes, trials, skipped)``.

    ``rewards`` are per rollout in [0, 1] (binary or fractional); a NaN reward is skipped and
    counted in ``skipped``, never treated as 0. ``samples`` are the distinct positions that had
    at least one rollout (valid or not); ``trials`` counts only valid rollouts.
    """
    positions = np.asarray(positions, dtype=np.int64)
    rewards = np.asarray(rewards, dtype=np.float64)
    if positions.shape != rewards.shape or positions.ndim != 1:
        raise ValueError(f"positions {positions.shape} and rewards {rewards.shape} must be equal 1-d shapes")
    valid = ~np.isnan(rewards)
    finite = rewards[valid]
    if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
        raise ValueError(
            f"VADE rewards must lie in [0, 1] (got min {finite.min():.4g}, max {finite.max():.4g}); "
            "convert scores with vade_verl.verl_adapters.rewards.as_correctness (data.sampler.vade.correctness)"
        )
    samples, inverse = np.unique(positions, return_inverse=True)
    successes = np.bincount(inverse, weights=np.where(valid, rewards, 0.0), minlength=samples.size)
    trials = np.bincount(inverse, weights=valid.astype(np.float64), minlength=samples.size)
    return samples, successes, trials, int((~valid).sum())


def gated_fast_decay(successes: np.ndarray, trials: np.ndarray, l1: float, l2: float) -> np.ndarray:
    """The "eig" variant's per-sample fast factor: ``l1`` if ``0 < r < G`` else ``l2``.

    ``r`` is the sample's summed reward of this step and ``G`` its number of (valid) rollouts.
    For binary rewards ``0 < r < G`` is exactly "the group is informative" (non-constant
    rewards, non-zero GRPO advantage); a constant fractional group with an interior value (all
    0.5) also counts as informative, which falls back to the paper's decay.
    """
    informative = (successes > 0.0) & (successes < trials)
    return np.where(informative, l1, l2)


def two_scale_decay(
    alpha: np.ndarray,
    beta: np.ndarray,
    samples: np.ndarray,
    successes: np.ndarray,
    trials: np.ndarray,
    l1,
    l2: float,
) -> None:
    """Apply the two-scale prior decay in place (paper Sec. 3.3).

    ``samples`` must be distinct. ``l1`` is one factor or one per sample (``gated_fast_decay``).
    A sample with ``trials == 0`` (all its rewards were NaN) brings no evidence and is decayed
    like an unselected sample (``l2``), not wiped by ``l1``.
    """
    has_evidence = trials > 0
    observed = samples[has_evidence]
    fast = np.broadcast_to(np.asarray(l1, dtype=np.float64), samples.shape)[has_evidence]
    fast_alpha = fast * alpha[observed] + successes[has_evidence]
    fast_beta = fast * beta[observed] + (trials - successes)[has_evidence]
    alpha *= l2
    beta *= l2
    alpha[observed] = fast_alpha
    beta[observed] = fast_beta


def effective_ratio(group_keys: np.ndarray, rewards: np.ndarray) -> float:
    """Share of rollout groups whose (non-NaN) rewards are not all equal.

    A group with all rewards equal has zero GRPO advantage ("gradient vanishing"); this is the
    effective-gradient ratio of the paper's Fig. 1 and 3b. Groups with fewer than two valid
    rewards count as not effective.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    valid = ~np.isnan(rewards)
    _, inverse = np.unique(np.asarray(group_keys)[valid], return_inverse=True)
    n_groups = int(inverse.max()) + 1 if inverse.size else 0
    if n_groups == 0:
        return 0.0
    r = rewards[valid]
    low = np.full(n_groups, np.inf)
    high = np.full(n_groups, -np.inf)
    np.minimum.at(low, inverse, r)
    np.maximum.at(high, inverse, r)
    return float(np.mean(high > low))


class PermutationStream:
    """Dataset positions epoch after epoch, each epoch a fresh permutation from the caller's generator.

    ``chunk(k)`` is a verl train loader with ``drop_last``: the next ``k`` positions of the current
    permutation, or of a new one when fewer than ``k`` remain. ``take(k)`` continues across the epoch
    boundary instead (a prompt may then appear twice in one call). ``epochs`` counts the permutations
    drawn (0 before the first).
    """

    def __init__(self, num_samples: int):
        self.num_samples = int(num_samples)
        self.perm = np.zeros(0, dtype=np.int64)
        self.cursor = 0
        self.epochs = 0

    def _new_epoch(self, rng: np.random.Generator) -> None:
        self.perm = rng.permutation(self.num_samples)
        self.cursor = 0
        self.epochs += 1

    def chunk(self, k: int, rng: np.random.Generator) -> np.ndarray:
        if not 0 < k <= self.num_samples:
            raise ValueError(f"batch size {k} must be in 1..{self.num_samples} (the number of samples)")
        if self.cursor + k > self.perm.size:
            self._new_epoch(rng)
        chunk = self.perm[self.cursor : self.cursor + k]
        self.cursor += k
        return chunk

    def take(self, k: int, rng: np.random.Generator) -> np.ndarray:
        parts = []
        while k > 0:
            if self.cursor >= self.perm.size:
                self._new_epoch(rng)
            part = self.perm[self.cursor : self.cursor + k]
            self.cursor += part.size
            k -= part.size
            parts.append(part)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def state_dict(self) -> dict:
        return {"perm": self.perm.copy(), "perm_cursor": self.cursor, "epochs": self.epochs}

    def load_state_dict(self, state: dict) -> None:
        self.perm = np.array(state["perm"], dtype=np.int64)
        self.cursor = int(state["perm_cursor"])
        self.epochs = int(state.get("epochs", 0))


class VADEState:
    """The per-sample posteriors of a whole dataset, with selection, update and (de)serialisation.

    Args:
        num_samples: dataset size N; positions are ``0..N-1``.
        l1, l2: fast and slow decay factors of the two-scale prior decay.
        score: a name in ``SCORE_REGISTRY`` ("infogain" or "variance").
        selection: "thompson" (draw from the posterior), "greedy" (posterior mean, random
            tie-break) or "random" (uniform without replacement per epoch, like verl's
            RandomSampler; the posteriors are still tracked for the metrics).
        seed: seed of the generator used for draws, tie-breaks and permutations.
        variant: "paper" or "eig" (module docstring): "eig" ranks by ``EXPECTED_SCORES[score]``
            and gates the fast decay with ``gated_fast_decay``; it replaces the Thompson draw, so
            it takes selection "thompson" (ignored) or "random".
    """

    def __init__(
        self, num_samples: int, *, l1: float, l2: float, score: str, selection: str, seed: int, variant: str = "paper"
    ):
        if num_samples <= 0:
            raise ValueError(f"VADE needs a non-empty dataset, got {num_samples} samples")
        if selection not in SELECTION_MODES:
            raise ValueError(f"unknown selection {selection!r}; expected one of {SELECTION_MODES}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown VADE variant {variant!r}; expected one of {VARIANTS}")
        if variant == "eig" and selection == "greedy":
            raise ValueError("the eig variant ranks by the posterior-expected score; it has no greedy selection")
        if variant == "eig" and score not in EXPECTED_SCORES:
            raise ValueError(f"the eig variant has no posterior expectation of score {score!r}; use one of {sorted(EXPECTED_SCORES)}")
        self.num_samples = int(num_samples)
        self.l1, self.l2 = float(l1), float(l2)
        self.score_fn = get_score_fn(score)
        self.score = score
        self.selection = selection
        self.variant = variant
        self.alpha = np.zeros(self.num_samples)
        self.beta = np.zeros(self.num_samples)
        self.seen = np.zeros(self.num_samples, dtype=bool)
        self.rng = np.random.default_rng(seed)
        self.num_selections = 0
        self.num_updates = 0
        self.last_selected = np.zeros(0, dtype=np.int64)
        self._permutations = PermutationStream(self.num_samples)

    def scores(self) -> np.ndarray:
        """The selection scores of all samples for this step (consumes random numbers)."""
        if self.variant == "eig":
            scores = EXPECTED_SCORES[self.score](self.alpha, self.beta)
        elif self.selection == "thompson":
            return self.score_fn(thompson_draw(self.alpha, self.beta, self.rng))
        else:
            scores = self.score_fn(posterior_mean(self.alpha, self.beta))
        # greedy and eig: exact ties (e.g. all never-seen samples share one score) are broken
        # uniformly at random by a jitter of at most 1e-12, which reorders only closer scores.
        return scores + 1e-12 * self.rng.random(self.num_samples)

    def select(self, b: int) -> np.ndarray:
        """Choose the next batch of ``b`` distinct positions, most informative first."""
        if self.selection == "random":
            chosen = self._permutations.chunk(b, self.rng)
        else:
            chosen = top_b(self.scores(), b)
        self.num_selections += 1
        self.last_selected = chosen
        return chosen

    def update(self, positions: np.ndarray, rewards: np.ndarray) -> dict:
        """Feed back one step's rollouts (one entry per rollout) and apply the decay.

        Returns counts: ``samples`` updated, ``rollouts`` used, ``skipped`` NaN rewards, and the
        aggregated arrays (``positions``, ``successes``, ``trials``) for logging/replay.
        """
        samples, successes, trials, skipped = aggregate_rollouts(positions, rewards)
        if samples.size and (samples[0] < 0 or samples[-1] >= self.num_samples):
            raise ValueError(f"sample positions must be in 0..{self.num_samples - 1}, got {samples[0]}..{samples[-1]}")
        self.apply(samples, successes, trials)
        return {
            "positions": samples,
            "successes": successes,
            "trials": trials,
            "skipped": skipped,
            "rollouts": int(trials.sum()),
        }

    def apply(self, samples: np.ndarray, successes: np.ndarray, trials: np.ndarray) -> None:
        """Apply already aggregated evidence (distinct ``samples``); used by ``update`` and replay."""
        l1 = gated_fast_decay(successes, trials, self.l1, self.l2) if self.variant == "eig" else self.l1
        two_scale_decay(self.alpha, self.beta, samples, successes, trials, l1, self.l2)
        self.seen[samples[trials > 0]] = True
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {
            "alpha": self.alpha.copy(),
            "beta": self.beta.copy(),
            "seen": self.seen.copy(),
            "rng": self.rng.bit_generator.state,
            "num_selections": self.num_selections,
            "num_updates": self.num_updates,
            "last_selected": self.last_selected.copy(),
            **self._permutations.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["alpha"].shape != (self.num_samples,):
            raise ValueError(
                f"VADE state is for {state['alpha'].shape[0]} samples but the dataset has {self.num_samples}: "
                "resume with the same training files and filtering"
            )
        self.alpha = np.array(state["alpha"], dtype=np.float64)
        self.beta = np.array(state["beta"], dtype=np.float64)
        self.seen = np.array(state["seen"], dtype=bool)
        self.rng.bit_generator.state = state["rng"]
        self.num_selections = int(state["num_selections"])
        self.num_updates = int(state["num_updates"])
        self.last_selected = np.array(state["last_selected"], dtype=np.int64)
        self._permutations.load_state_dict(state)
