"""A latent-difficulty population of training samples whose solve probabilities evolve with training.

Pure numpy, no verl import; the simulator (``vade_verl.sim.simulate``) drives it. It is a toy model of
what a GRPO run does to per-sample solve rates, made to compare samplers, not to predict a run.

Each sample i has a logit ``z_i`` and solve probability ``p_i = sigmoid(z_i)``. A rollout is a
Bernoulli(p_i) reward. A group whose rewards are all equal has zero GRPO advantage (VADE paper,
Sec. 1), so it moves nothing. After each training step, with ``E`` the informative (non-constant
reward) groups among the trained ones, ``k = |E|``, ``B`` the batch size and ``f(i)`` sample i's
family, every finite logit moves by::

    z_j <- z_j + a [j in E] + rho a #{i in E, i != j, f(i) = f(j)} + d     (k > 0; nothing when k = 0)
    z_j <- z_j - forget (z_j - z0_j)                                        (forgetting toward the start)

with the own step ``a`` per informative group, the shared drift ``d`` (generalisation to every
sample) and the within-family coupling ``rho`` set by the dynamics (``--dynamics``):

=============  ===============  ===================  ===========================================
kind           a                d                    what it models
=============  ===============  ===================  ===========================================
``per-group``  learn            transfer k / B       every informative group buys a fixed step:
                                                     progress is linear in the informative count
``per-step``   learn / k        transfer             a fixed budget per optimiser step shared by
                                                     the step's informative groups (AdamW's
                                                     normalised step, whose size barely depends on
                                                     how many groups carry a gradient)
``family``     learn / k        transfer             ``per-step`` plus transfer within families of
                                                     items (``rho = family``): learning one item
                                                     teaches the others of its family
=============  ===============  ===================  ===========================================

``z = +-inf`` (p exactly 1 or 0) stays fixed, which gives samples that are trivially easy or
impossible forever. The parameters of each kind are fitted to a real run by
``vade_verl.sim.calibrate`` (``CALIBRATED``; docs/simulate.md says which run and command).

Initial difficulty: a registry of presets ``name -> (n, rng) -> z0`` (``DIFFICULTY_PRESETS``),
plus ``beta:A,B`` (p0 ~ Beta(A, B)). Families: given per sample, or ``rank_families`` (contiguous
ranges of starting difficulty, like the counts of the learning benchmark).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from vade_verl.vade.algorithm import top_b

PresetFn = Callable[[int, np.random.Generator], np.ndarray]

DIFFICULTY_PRESETS: Dict[str, PresetFn] = {}


def register_preset(name: str) -> Callable[[PresetFn], PresetFn]:
    """Register an initial-logit generator ``(n, rng) -> z0`` under ``name`` (``--difficulty``)."""

    def decorator(fn: PresetFn) -> PresetFn:
        if name in DIFFICULTY_PRESETS and DIFFICULTY_PRESETS[name] is not fn:
            raise ValueError(f"difficulty preset {name!r} is already registered")
        DIFFICULTY_PRESETS[name] = fn
        return fn

    return decorator


def logit(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))``; 0 and 1 map to -inf and +inf."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))``, exact 0 and 1 at -inf and +inf."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


@register_preset("mm-math")
def multimodal_math(n: int, rng: np.random.Generator) -> np.ndarray:
    """Shaped like a multimodal math RL set under a 7B VL model at the start of RL.

    Shares (documented guesses, not measured): 20% all-wrong (z ~ N(-5, 1), p < 1%), 20%
    all-correct (z ~ N(+4.5, 1), p > 98%), 60% in between (z ~ N(0.5, 1.5)). With 8 rollouts
    about half of the random groups start informative; the paper's Fig. 1 shows about 0.6
    falling to 0.1 under random sampling.
    """
    kind = rng.choice(3, size=n, p=[0.20, 0.20, 0.60])
    centre = np.array([-5.0, 4.5, 0.5])[kind]
    spread = np.array([1.0, 1.0, 1.5])[kind]
    return centre + spread * rng.standard_normal(n)


@register_preset("uniform")
def uniform_difficulty(n: int, rng: np.random.Generator) -> np.ndarray:
    """p0 ~ Uniform(0, 1)."""
    return logit(rng.random(n))


def initial_logits(spec: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Initial logits from a preset name or ``beta:A,B`` (p0 ~ Beta(A, B), A, B > 0)."""
    if n <= 0:
        raise ValueError(f"the population needs at least one sample, got {n}")
    if spec.startswith("beta:"):
        try:
            a, b = (float(x) for x in spec[len("beta:") :].split(","))
        except ValueError:
            raise ValueError(f"difficulty {spec!r}: expected beta:A,B with two numbers, e.g. beta:0.5,0.5") from None
        if not (a > 0 and b > 0):
            raise ValueError(f"difficulty {spec!r}: Beta parameters must be > 0")
        return logit(rng.beta(a, b, size=n))
    if spec not in DIFFICULTY_PRESETS:
        raise ValueError(f"unknown difficulty {spec!r}; presets: {sorted(DIFFICULTY_PRESETS)} or beta:A,B")
    return DIFFICULTY_PRESETS[spec](n, rng)


DYNAMICS_KINDS = ("per-group", "per-step", "family")


@dataclasses.dataclass(frozen=True)
class Dynamics:
    """Per-step evolution of the logits: ``kind`` and its parameters (module docstring)."""

    kind: str = "per-step"
    learn: float = 0.5
    transfer: float = 0.0
    forget: float = 0.0
    family: float = 0.0

    def __post_init__(self):
        if self.kind not in DYNAMICS_KINDS:
            raise ValueError(f"unknown dynamics {self.kind!r}; choose from {list(DYNAMICS_KINDS)}")
        for name in ("learn", "transfer", "forget", "family"):
            value = getattr(self, name)
            if not value >= 0:  # also refuses NaN
                raise ValueError(f"population dynamics {name}={value} must be >= 0")
        if self.forget > 1:
            raise ValueError(f"population dynamics forget={self.forget} must be <= 1")
        if self.family > 1:
            raise ValueError(f"population dynamics family={self.family} must be <= 1")
        if self.family and self.kind != "family":
            raise ValueError(f"population dynamics family={self.family} needs kind 'family', not {self.kind!r}")

    def steps(self, informative_count: float, batch_size: int) -> Tuple[float, float]:
        """``(a, d)``: the own step per informative group and the shared drift, for ``k`` informative
        groups in a batch of ``batch_size`` (module docstring; ``k`` may be an expectation)."""
        k = float(informative_count)
        if k <= 0:
            return 0.0, 0.0
        if self.kind == "per-group":
            return float(self.learn), float(self.transfer) * k / batch_size
        return self.learn / k, float(self.transfer)


# Fitted by ``python -m vade_verl.sim.calibrate benchmarks/calibration/learning_benchmark_seed0.json``
# (docs/simulate.md, "Calibration"; grid values to 3 digits): each kind's parameters that best
# reproduce the random arm of the counting learning benchmark of docs/learning_benchmark.md (seed 0,
# the benchmark whose items transfer within count families). ``forget`` is not fitted (0). The three
# fit that arm alike (chi2 8.9, 9.5, 10.3 over 8 evaluations); ``per-step`` is the default because
# it is verl's optimiser-normalised step and its VADE-vs-random prediction (+0.020) is the one
# closest to the measured -0.006 of that run's VADE arm, which the fit did not see.
CALIBRATED: Dict[str, Dynamics] = {
    "per-group": Dynamics("per-group", learn=0.0949, transfer=0.00855),
    "per-step": Dynamics("per-step", learn=1.39, transfer=0.00464),
    "family": Dynamics("family", learn=0.533, transfer=0.0, family=0.1),
}
DEFAULT_DYNAMICS = "per-step"


def informative_groups(rewards: np.ndarray, group_size: int) -> np.ndarray:
    """Per group of ``group_size`` consecutive rollouts: are its rewards not all equal?"""
    grouped = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
    return grouped.max(axis=1) > grouped.min(axis=1)


def informative_probability(p: np.ndarray, group_size: int) -> np.ndarray:
    """Chance that ``group_size`` Bernoulli(p) rewards are not all equal: ``1 - p^G - (1 - p)^G``."""
    p = np.asarray(p, dtype=np.float64)
    return 1.0 - p**group_size - (1.0 - p) ** group_size


def rank_families(z0: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Family ids ``0..count-1``: ``count`` equal-size contiguous ranges of starting difficulty
    (sample ``i`` of rank ``r`` by ``z0``, ties broken at random, is in family ``r * count // N``)."""
    z0 = np.asarray(z0, dtype=np.float64)
    if not 1 <= count <= z0.size:
        raise ValueError(f"--families {count} must be in 1..{z0.size} (the number of samples)")
    order = np.lexsort((rng.random(z0.size), z0))
    families = np.empty(z0.size, dtype=np.int64)
    families[order] = np.arange(z0.size) * count // z0.size
    return families


class Population:
    """The latent solve probabilities of N samples; ``rollout`` and ``train`` advance it.

    ``families``: one non-negative integer id per sample (only the ``family`` dynamics reads it);
    default: every sample its own family.
    """

    def __init__(self, initial_logits: np.ndarray, dynamics: Dynamics, families: Optional[np.ndarray] = None):
        z0 = np.asarray(initial_logits, dtype=np.float64)
        if z0.ndim != 1 or z0.size == 0:
            raise ValueError(f"initial logits must be a non-empty 1-d array, got shape {z0.shape}")
        if np.isnan(z0).any():
            raise ValueError(f"{int(np.isnan(z0).sum())} initial logits are NaN")
        if families is None:
            families = np.arange(z0.size)
        families = np.asarray(families)
        if families.shape != z0.shape or not np.issubdtype(families.dtype, np.integer) or (families < 0).any():
            raise ValueError(f"families must be {z0.size} non-negative integers, got shape {families.shape}, dtype {families.dtype}")
        self.z0 = z0
        self.z = z0.copy()
        self.dynamics = dynamics
        self.families = families

    @property
    def size(self) -> int:
        return self.z.size

    def probs(self, positions: np.ndarray = None) -> np.ndarray:
        return sigmoid(self.z if positions is None else self.z[positions])

    def rollout(self, positions: np.ndarray, group_size: int, rng: np.random.Generator) -> np.ndarray:
        """``group_size`` Bernoulli rewards per position, grouped per prompt (verl's interleaved repeat)."""
        p = np.repeat(self.probs(positions), group_size)
        return (rng.random(p.size) < p).astype(np.float64)

    def _family_neighbours(self, weights: np.ndarray) -> np.ndarray:
        """Per sample: the sum of ``weights`` over the other samples of its family."""
        return np.bincount(self.families, weights=weights)[self.families] - weights

    def train(self, positions: np.ndarray, informative: np.ndarray, batch_size: int) -> None:
        """One optimiser step on the groups of ``positions`` (distinct), ``informative`` per group."""
        d = self.dynamics
        learned = np.asarray(positions)[np.asarray(informative, dtype=bool)]
        own, drift = d.steps(learned.size, batch_size)
        delta = np.full(self.size, drift)
        delta[learned] += own
        if d.family and learned.size:
            in_e = np.zeros(self.size)
            in_e[learned] = 1.0
            delta += d.family * own * self._family_neighbours(in_e)
        finite = np.isfinite(self.z)
        self.z[finite] += delta[finite]
        self.z[finite] -= d.forget * (self.z[finite] - self.z0[finite])

    def lookahead_scores(self, group_size: int, batch_size: int, iterations: int = 3) -> np.ndarray:
        """Per sample: the expected one-step gain in the population's summed solve probability from
        putting it in the batch, under this population's own dynamics and true ``p``.

        ``score_i = q_i [sigmoid(z_i + a) - p_i + rho a sum_{j in f(i), j != i} p_j (1 - p_j)
        + (d / k) sum_j p_j (1 - p_j)]`` with ``q_i = 1 - p_i^G - (1 - p_i)^G`` the chance that its
        group is informative and ``(a, d) = dynamics.steps(k, B)``; the family and drift terms are
        first order in the step, forgetting is left out (it does not depend on the batch). For
        ``per-group`` nothing depends on the batch, so the top ``B`` scores maximise the expected
        one-step progress (exactly so without drift). For ``per-step`` and ``family`` the step
        depends on the informative count ``k``; it is replaced by its expectation under the chosen
        batch (``q`` summed over the top ``B``), iterated ``iterations`` times from the top ``B``
        by ``q`` (a mean-field approximation, not an exact maximiser).
        """
        p = self.probs()
        q = informative_probability(p, group_size)
        slope = p * (1.0 - p)  # d p / d z; 0 at z = +-inf
        finite = np.isfinite(self.z)
        neighbours = self._family_neighbours(slope) if self.dynamics.family else 0.0
        expected = q[top_b(q, batch_size)].sum()
        for _ in range(iterations):
            own, drift = self.dynamics.steps(expected, batch_size)
            gain = np.where(finite, sigmoid(np.where(finite, self.z, 0.0) + own) - p, 0.0)
            shared = drift / expected * slope.sum() if expected > 0 else 0.0
            score = q * (gain + self.dynamics.family * own * neighbours + shared)
            expected = q[top_b(score, batch_size)].sum()
        return score
