"""The ``data.sampler.greso`` block: the authors' defaults, validated at start (pure, no verl import).

    data.sampler.class_path=pkg://vade_verl.greso.sampler data.sampler.class_name=GRESOSampler
    +data.sampler.greso.p_easy=0.5 +data.sampler.greso.p_hard=0.5 +data.sampler.greso.target_zero_variance=0.25

Every key is optional; an unknown key or a wrong value raises at start with the key's full name
(parser and shared options: ``vade_verl.verl_adapters.sampler_config``). Defaults: the authors'
``train-scripts/math_qwen_1_5b_dm_greso.sh`` and ``verl/trainer/ppo/ray_trainer.py``
(github.com/Infini-AI-Lab/GRESO); docs/greso.md compares them with the paper.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from vade_verl.greso.algorithm import HARD_SHARES, GRESOParams
from vade_verl.verl_adapters.sampler_config import SamplerOptions

CONFIG_PREFIX = "data.sampler.greso"


@dataclasses.dataclass(frozen=True)
class GRESOConfig(SamplerOptions):
    """Options of the GRESO sampler (and ``seed``, ``correctness``, ``resume``, ``state_dir``: ``SamplerOptions``).

    p_easy, p_hard: starting exploration probabilities: a prompt with k consecutive all-correct
        (all-wrong) groups is kept with probability ``max(p_easy^k, min_keep)`` (``p_hard``).
    target_zero_variance: target share of zero-variance groups per step; a third is the target for
        all-correct groups, two thirds for hard ones.
    step, p_min, p_max: each step ``p_easy``/``p_hard`` move by ``step`` within [p_min, p_max].
    min_keep: the keep probability's floor, in (0, 1]: above 0 every prompt can come back, so a batch
        can always be filled.
    hard_share: which groups count as hard in the adaptation: "no_correct" (no rollout correct, the
        paper's all-wrong groups and the authors' skip rule) or "all_0.1" (every rollout's score is
        exactly 0.1, the authors' formatted-but-wrong reward: ``metric_utils.py:205``; only meaningful
        with a scorer that gives 0.1 for that, such as verl's geo3k).
    """

    PREFIX: ClassVar[str] = CONFIG_PREFIX

    p_easy: float = GRESOParams.p_easy
    p_hard: float = GRESOParams.p_hard
    target_zero_variance: float = GRESOParams.target_zero_variance
    step: float = GRESOParams.step
    p_min: float = GRESOParams.p_min
    p_max: float = GRESOParams.p_max
    min_keep: float = GRESOParams.min_keep
    hard_share: str = "no_correct"

    def params(self) -> GRESOParams:
        names = [f.name for f in dataclasses.fields(GRESOParams)]
        return GRESOParams(**{name: float(getattr(self, name)) for name in names})

    def validate(self, prefix: str = CONFIG_PREFIX) -> None:
        self.check_probability(prefix, "p_easy", "p_hard", "target_zero_variance", "step", "p_min", "p_max", "min_keep")
        if self.min_keep <= 0:
            self.fail(prefix, "min_keep", "must be above 0 (with 0 a prompt may never be kept again and a batch never filled)")
        if self.p_min > self.p_max:
            self.fail(prefix, "p_min", f"must not exceed {prefix}.p_max={self.p_max}")
        if self.hard_share not in HARD_SHARES:
            self.fail(prefix, "hard_share", f"must be one of {list(HARD_SHARES)}")
        super().validate(prefix)
