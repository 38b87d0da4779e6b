"""A latent-difficulty population of training samples whose solve probabilities evolve with training.

Pure numpy, no verl import; the simulator (``vade_verl.sim.simulate``) drives it. It is a toy model of
what a GRPO run does to per-sample solve rates, made to compare samplers, not to predict a run.

Each sample i has a logit ``z_i`` and solve probability ``p_i = sigmoid(z_i)``. A rollout is a
Bernoulli(p_i) reward. After each training step, with ``T`` the trained samples and ``E`` the
informative (non-constant reward) groups among them, ``B`` the batch size::

    z_i <- z_i + learn                                    for i in E   (the sample's own gradient)
    z_j <- z_j + transfer * |E| / B                       for all j    (shared drift: generalisation)
    z_j <- z_j - forget * (z_j - z0_j)                    for all j    (forgetting toward the start)

A group whose rewards are all equal has zero GRPO advantage (VADE paper, Sec. 1), so it moves
nothing; the shared drift grows with the number of informative groups, so a sampler that wastes
fewer groups trains the whole population faster. ``z = +-inf`` (p exactly 1 or 0) stays fixed,
which gives samples that are trivially easy or impossible forever.

Initial difficulty: a registry of presets ``name -> (n, rng) -> z0`` (``DIFFICULTY_PRESETS``),
plus ``beta:A,B`` (p0 ~ Beta(A, B)).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict

import numpy as np

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


@dataclasses.dataclass(frozen=True)
class Dynamics:
    """Per-step evolution of the logits (see the module docstring for the formula)."""

    learn: float = 0.5
    transfer: float = 0.015
    forget: float = 0.001

    def __post_init__(self):
        for name in ("learn", "transfer", "forget"):
            if getattr(self, name) < 0:
                raise ValueError(f"population dynamics {name}={getattr(self, name)} must be >= 0")
        if self.forget > 1:
            raise ValueError(f"population dynamics forget={self.forget} must be <= 1")


def informative_groups(rewards: np.ndarray, group_size: int) -> np.ndarray:
    """Per group of ``group_size`` consecutive rollouts: are its rewards not all equal?"""
    grouped = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
    return grouped.max(axis=1) > grouped.min(axis=1)


class Population:
    """The latent solve probabilities of N samples; ``rollout`` and ``train`` advance it."""

    def __init__(self, initial_logits: np.ndarray, dynamics: Dynamics):
        z0 = np.asarray(initial_logits, dtype=np.float64)
        if z0.ndim != 1 or z0.size == 0:
            raise ValueError(f"initial logits must be a non-empty 1-d array, got shape {z0.shape}")
        if np.isnan(z0).any():
            raise ValueError(f"{int(np.isnan(z0).sum())} initial logits are NaN")
        self.z0 = z0
        self.z = z0.copy()
        self.dynamics = dynamics

    @property
    def size(self) -> int:
        return self.z.size

    def probs(self, positions: np.ndarray = None) -> np.ndarray:
        return sigmoid(self.z if positions is None else self.z[positions])

    def rollout(self, positions: np.ndarray, group_size: int, rng: np.random.Generator) -> np.ndarray:
        """``group_size`` Bernoulli rewards per position, grouped per prompt (verl's interleaved repeat)."""
        p = np.repeat(self.probs(positions), group_size)
        return (rng.random(p.size) < p).astype(np.float64)

    def train(self, positions: np.ndarray, informative: np.ndarray, batch_size: int) -> None:
        """One optimiser step on the groups of ``positions`` (distinct), ``informative`` per group."""
        d = self.dynamics
        learned = np.asarray(positions)[np.asarray(informative, dtype=bool)]
        finite = np.isfinite(self.z)
        self.z[learned] += d.learn
        self.z[finite] += d.transfer * learned.size / batch_size
        self.z[finite] -= d.forget * (self.z[finite] - self.z0[finite])
