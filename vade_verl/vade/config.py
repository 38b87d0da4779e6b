"""The ``data.sampler.vade`` config block: defaults from the paper, validated at start.

Pure (omegaconf-compatible mappings, no verl import). Users toggle VADE with one override on top of
the sampler class (see README)::

    data.sampler.class_path=pkg://vade_verl.vade.sampler data.sampler.class_name=VADESampler
    +data.sampler.vade.enable=False     # same sampler, verl's uniform random order

Every key is optional; an unknown key or an out-of-range value raises at start with the key's
full name.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from vade_verl.verl_adapters.rewards import CorrectnessRule
from vade_verl.vade.algorithm import EXPECTED_SCORES, SCORE_REGISTRY, VARIANTS

CONFIG_PREFIX = "data.sampler.vade"
RESUME_MODES = ("exact", "approximate")
# Options that were renamed: the error for the old name says what to write instead.
RENAMED = {"reward_threshold": "correctness (a number is the same threshold)"}


@dataclasses.dataclass(frozen=True)
class VADEConfig:
    """Options of the VADE sampler.

    enable: False gives uniform random batches (verl's RandomSampler behaviour) with the same
        metrics, the baseline to compare against.
    l1: fast decay for samples just rolled out (paper Fig. 2 illustrates 0.2).
    l2: slow decay for all other samples (paper Fig. 2 illustrates 0.999).
    score: "infogain" p(1-p)^2 (paper) or "variance" p(1-p) (ablation).
    selection: "thompson" (paper) or "greedy" (posterior mean, ablation).
    decay: False disables the two-scale decay (l1 = l2 = 1, ablation "no decay").
    variant: "paper" (the paper's VADE) or "eig", ours: rank by the posterior-expected score
        instead of a Thompson draw, and apply l1 only to samples whose group was informative
        (``vade_verl.vade.algorithm``, docs/simulate.md). Takes the default selection.
    seed: generator seed; None takes ``data.seed`` (0 included) and, if that is null too, 1.
    correctness: how a rollout's score becomes Beta evidence (``vade_verl.verl_adapters.rewards``): "auto"
        (correct when the score of one of verl's built-in scorers is > 0.5, read from the reward
        function's ``acc`` output when the batch has one; other values raise at the first update),
        a number (correct when the score exceeds it) or "fractional" (scores in [0, 1] summed as
        fractional successes).
    resume: "exact" refuses to resume from a checkpoint whose step's evidence cannot be restored
        (see ``vade_verl.vade.sampler``); "approximate" resumes without it, with a warning.
    state_dir: folder for the per-step update records (see ``vade_verl.vade.sampler``); None takes
        ``trainer.default_local_dir`` of the run's config.
    """

    enable: bool = True
    l1: float = 0.2
    l2: float = 0.999
    score: str = "infogain"
    selection: str = "thompson"
    decay: bool = True
    variant: str = "paper"
    seed: Optional[int] = None
    correctness: Any = "auto"
    resume: str = "exact"
    state_dir: Optional[str] = None

    @property
    def fast_decay(self) -> float:
        return self.l1 if self.decay else 1.0

    @property
    def slow_decay(self) -> float:
        return self.l2 if self.decay else 1.0

    @property
    def selection_mode(self) -> str:
        return self.selection if self.enable else "random"

    def correctness_rule(self, prefix: str = CONFIG_PREFIX) -> CorrectnessRule:
        return CorrectnessRule.parse(self.correctness, f"{prefix}.correctness")

    @classmethod
    def from_mapping(cls, block: Optional[Mapping[str, Any]], prefix: str = CONFIG_PREFIX) -> "VADEConfig":
        """Build and validate from a (possibly empty) mapping; errors name ``prefix.<key>``."""
        block = dict(block or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(block) - known)
        renamed = [f"{prefix}.{k} is now {prefix}.{RENAMED[k]}" for k in unknown if k in RENAMED]
        if renamed:
            raise ValueError("; ".join(renamed))
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(f'{prefix}.{k}' for k in unknown)}; known: {sorted(known)}")
        config = cls(**block)
        config.validate(prefix)
        return config

    def validate(self, prefix: str = CONFIG_PREFIX) -> None:
        def fail(key: str, why: str) -> None:
            raise ValueError(f"{prefix}.{key}={getattr(self, key)!r}: {why}")

        for key in ("enable", "decay"):
            if not isinstance(getattr(self, key), bool):
                fail(key, "must be true or false")
        for key in ("l1", "l2"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                fail(key, "must be a number in [0, 1]")
        if self.score not in SCORE_REGISTRY:
            fail("score", f"must be one of {sorted(SCORE_REGISTRY)}")
        if self.selection not in ("thompson", "greedy"):
            fail("selection", "must be 'thompson' or 'greedy'")
        if self.variant not in VARIANTS:
            fail("variant", f"must be one of {list(VARIANTS)}")
        if self.variant == "eig" and self.selection != "thompson":
            fail("variant", "'eig' ranks by the posterior-expected score: leave data.sampler.vade.selection at its default")
        if self.variant == "eig" and self.score not in EXPECTED_SCORES:
            fail("variant", f"'eig' needs a score with a posterior expectation, one of {sorted(EXPECTED_SCORES)}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            fail("seed", "must be a non-negative integer or null")
        self.correctness_rule(prefix)  # raises naming the key
        if self.resume not in RESUME_MODES:
            fail("resume", f"must be one of {list(RESUME_MODES)}")
        if self.state_dir is not None and not isinstance(self.state_dir, str):
            fail("state_dir", "must be a path or null")
