"""The options every curriculum sampler shares, and the one parser of a ``data.sampler.<method>`` block.

Pure (omegaconf-compatible mappings, no verl import). Each method's config (``vade_verl.vade.config``,
``vade_verl.mopps.config``, ``vade_verl.greso.config``) is a frozen dataclass that subclasses
:class:`SamplerOptions`, names its block in ``PREFIX`` and extends ``validate``. Every key is optional;
an unknown key or a wrong value raises at start with the key's full name (``data.sampler.mopps.decay=2``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

from vade_verl.verl_adapters.rewards import CorrectnessRule

RESUME_MODES = ("exact", "approximate")


@dataclasses.dataclass(frozen=True)
class SamplerOptions:
    """Options of the shared sampler machinery (``vade_verl.verl_adapters.curriculum_sampler``).

    seed: generator seed; None takes ``data.seed`` (0 included) and, if that is null too, 1.
    correctness: how a rollout's score becomes evidence (``vade_verl.verl_adapters.rewards``): "auto"
        (correct when the score of one of verl's built-in scorers is > 0.5, read from the reward
        function's ``acc`` output when the batch has one; other values raise at the first update),
        a number (correct when the score exceeds it) or "fractional" (scores in [0, 1] summed as
        fractional successes).
    resume: "exact" refuses to resume from a checkpoint whose step's evidence cannot be restored
        (see ``vade_verl.verl_adapters.curriculum_sampler``); "approximate" resumes without it, with a warning.
    state_dir: folder for the per-step update records; None takes ``trainer.default_local_dir`` of the
        run's config.
    """

    PREFIX: ClassVar[str] = "data.sampler"
    # Options that were renamed: the error for the old name says what to write instead.
    RENAMED: ClassVar[Mapping[str, str]] = {}

    seed: Optional[int] = None
    correctness: Any = "auto"
    resume: str = "exact"
    state_dir: Optional[str] = None

    @property
    def block_name(self) -> str:
        """The last part of ``PREFIX`` (``vade``, ``mopps``, ``greso``): the checkpoint and metric name."""
        return self.PREFIX.rsplit(".", 1)[-1]

    def correctness_rule(self, prefix: Optional[str] = None) -> CorrectnessRule:
        return CorrectnessRule.parse(self.correctness, f"{prefix or self.PREFIX}.correctness")

    @classmethod
    def from_mapping(cls, block: Optional[Mapping[str, Any]], prefix: Optional[str] = None):
        """Build and validate from a (possibly empty) mapping; errors name ``prefix.<key>`` (default ``PREFIX``)."""
        prefix = prefix or cls.PREFIX
        block = dict(block or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(block) - known)
        renamed = [f"{prefix}.{k} is now {prefix}.{cls.RENAMED[k]}" for k in unknown if k in cls.RENAMED]
        if renamed:
            raise ValueError("; ".join(renamed))
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(f'{prefix}.{k}' for k in unknown)}; known: {sorted(known)}")
        config = cls(**block)
        config.validate(prefix)
        return config

    def fail(self, prefix: str, key: str, why: str) -> None:
        raise ValueError(f"{prefix}.{key}={getattr(self, key)!r}: {why}")

    def check_probability(self, prefix: str, *keys: str) -> None:
        """Each of ``keys`` is a number in [0, 1]."""
        for key in keys:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                self.fail(prefix, key, "must be a number in [0, 1]")

    def validate(self, prefix: Optional[str] = None) -> None:
        prefix = prefix or self.PREFIX
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            self.fail(prefix, "seed", "must be a non-negative integer or null")
        self.correctness_rule(prefix)  # raises naming the key
        if self.resume not in RESUME_MODES:
            self.fail(prefix, "resume", f"must be one of {list(RESUME_MODES)}")
        if self.state_dir is not None and not isinstance(self.state_dir, str):
            self.fail(prefix, "state_dir", "must be a path or null")
