"""Rollout rewards as correctness evidence: the one rule VADE, DIVA-GRPO and MSSR share.

Pure numpy, no verl import. The three methods' trackers count *correct answers* (VADE: successes of a
Bernoulli posterior, paper Sec. 3.1; DIVA-GRPO: a problem's accuracy drives its difficulty; MSSR: the
authors binarise the reward before the Beta baseline update), while verl's reward functions return
scores that mix correctness with other terms. verl 0.7.1's built-in scorers
(``verl/utils/reward_score``) give:

=====================================  =======================================  ===============
scorer (data_source)                   score                                    correct when
=====================================  =======================================  ===============
geo3k (``hiyouga/geometry3k``)         0.9 x accuracy + 0.1 x format            0.9 or 1.0
math_dapo (``math_dapo``, ``aime*``)   +1 correct, -1 wrong                     +1
gsm8k, MATH (math_reward), prime_math  1 correct, 0 wrong (gsm8k format_score 0)  1
=====================================  =======================================  ===============

so in every one of them a rollout is correct exactly when its score is above 0.5. The rule
``auto`` (the default) applies that cut, but only to scores from this known set
(:data:`KNOWN_SCORES`); any other finite score (a code pass rate, an overlong penalty, a KL term, a
custom reward) raises at once, naming the option to set, instead of feeding a tracker numbers it
cannot interpret. ``threshold`` (a number x) counts a rollout correct when its score is greater than
x, for any score. ``fractional`` takes scores in [0, 1] as fractional successes (a summed-reward
extension no paper states). NaN stays NaN in every rule: callers skip and count it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

KNOWN_SCORES = (-1.0, 0.0, 0.1, 0.9, 1.0)
AUTO_CUT = 0.5
TOLERANCE = 1e-6
RULE_NAMES = ("auto", "fractional")


@dataclasses.dataclass(frozen=True)
class CorrectnessRule:
    """How a rollout's score becomes evidence: ``auto``, ``fractional`` or ``threshold`` (with a cut)."""

    mode: str = "auto"
    threshold: Optional[float] = None

    @classmethod
    def parse(cls, value: Any, key: str) -> "CorrectnessRule":
        """From a config value: ``"auto"`` (or None), ``"fractional"``, or a number (the threshold).

        ``key`` is the full config key, named in the error for anything else.
        """
        if value is None or value == "auto":
            return cls("auto")
        if value == "fractional":
            return cls("fractional")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            return cls("threshold", float(value))
        raise ValueError(f"{key}={value!r}: must be 'auto', 'fractional' or a number (a rollout is correct when its score exceeds it)")


def as_correctness(scores: Any, rule: CorrectnessRule, key: str) -> np.ndarray:
    """Per-rollout evidence in [0, 1] (NaN kept) from verl scores under ``rule``.

    ``key`` names the config option in errors, e.g. ``data.sampler.vade.correctness``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    finite = scores[~np.isnan(scores)]
    if np.isinf(finite).any():
        raise ValueError(f"infinite reward in the batch: fix the reward function ({key} cannot interpret it)")
    if rule.mode == "threshold":
        return np.where(np.isnan(scores), np.nan, (scores > rule.threshold).astype(np.float64))
    if rule.mode == "fractional":
        if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
            raise ValueError(
                f"{key}=fractional needs rewards in [0, 1], got min {finite.min():.4g}, max {finite.max():.4g}; "
                f"set {key} to 'auto' or to a number (a rollout is correct when its score exceeds it)"
            )
        return scores.copy()
    if rule.mode != "auto":
        raise ValueError(f"unknown correctness rule {rule.mode!r} for {key}")
    known = np.isclose(finite[:, None], np.asarray(KNOWN_SCORES)[None, :], rtol=0.0, atol=TOLERANCE).any(axis=1)
    if not known.all():
        odd = np.unique(finite[~known])[:5].tolist()
        raise ValueError(
            f"{key}=auto reads verl's built-in scores {list(KNOWN_SCORES)} as correct when > {AUTO_CUT}, "
            f"but the batch has rewards {odd}; set {key} to a number (a rollout is correct when its score "
            "exceeds it) or to 'fractional' (rewards in [0, 1] taken as fractional successes)"
        )
    return np.where(np.isnan(scores), np.nan, (scores > AUTO_CUT).astype(np.float64))
