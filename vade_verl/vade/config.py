"""The ``data.sampler.vade`` config block: defaults from the paper, validated at start.

Pure (omegaconf-compatible mappings, no verl import). Users toggle VADE with one override on top of
the sampler class (see README)::

    data.sampler.class_path=pkg://vade_verl.vade.sampler data.sampler.class_name=VADESampler
    +data.sampler.vade.enable=False     # same sampler, verl's uniform random order

Every key is optional; an unknown key or an out-of-range value raises at start with the key's
full name (the parser and the options every sampler shares: ``vade_verl.verl_adapters.sampler_config``).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Mapping

from vade_verl.vade.algorithm import EXPECTED_SCORES, SCORE_REGISTRY, VARIANTS
from vade_verl.verl_adapters.sampler_config import SamplerOptions

CONFIG_PREFIX = "data.sampler.vade"


@dataclasses.dataclass(frozen=True)
class VADEConfig(SamplerOptions):
    """Options of the VADE sampler (and ``seed``, ``correctness``, ``resume``, ``state_dir``: ``SamplerOptions``).

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
    """

    PREFIX: ClassVar[str] = CONFIG_PREFIX
    RENAMED: ClassVar[Mapping[str, str]] = {"reward_threshold": "correctness (a number is the same threshold)"}

    enable: bool = True
    l1: float = 0.2
    l2: float = 0.999
    score: str = "infogain"
    selection: str = "thompson"
    decay: bool = True
    variant: str = "paper"

    @property
    def fast_decay(self) -> float:
        return self.l1 if self.decay else 1.0

    @property
    def slow_decay(self) -> float:
        return self.l2 if self.decay else 1.0

    @property
    def selection_mode(self) -> str:
        return self.selection if self.enable else "random"

    def validate(self, prefix: str = CONFIG_PREFIX) -> None:
        for key in ("enable", "decay"):
            if not isinstance(getattr(self, key), bool):
                self.fail(prefix, key, "must be true or false")
        self.check_probability(prefix, "l1", "l2")
        if self.score not in SCORE_REGISTRY:
            self.fail(prefix, "score", f"must be one of {sorted(SCORE_REGISTRY)}")
        if self.selection not in ("thompson", "greedy"):
            self.fail(prefix, "selection", "must be 'thompson' or 'greedy'")
        if self.variant not in VARIANTS:
            self.fail(prefix, "variant", f"must be one of {list(VARIANTS)}")
        if self.variant == "eig" and self.selection != "thompson":
            self.fail(prefix, "variant", "'eig' ranks by the posterior-expected score: leave data.sampler.vade.selection at its default")
        if self.variant == "eig" and self.score not in EXPECTED_SCORES:
            self.fail(prefix, "variant", f"'eig' needs a score with a posterior expectation, one of {sorted(EXPECTED_SCORES)}")
        super().validate(prefix)
