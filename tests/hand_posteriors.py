"""An independent, hand-worked VADE posterior (numpy only) for the tests that run verl's real ``fit``.

Both verl lines' fit tests (each in its own venv) compare the sampler's state with this loop, written from
the paper's formula rather than from the sampler's code.
"""
import numpy as np
import pytest


def hand_posteriors(row_ids, steps, l1=0.2, l2=0.999):
    """{row id: (alpha, beta)} by the two-scale decay (paper Sec. 3.3), each step's evidence applied once.

    ``steps`` is ``[(step, rollout row ids, correct 0/1 per rollout), ...]`` in any order. A step that rolls a
    row out applies ``l1`` and adds its correct answers (successes) and wrong ones (trials - successes);
    every other step applies ``l2``.
    """
    posteriors = {}
    for rid in np.asarray(row_ids).tolist():
        alpha = beta = 0.0
        for _, ids, correct in sorted(steps, key=lambda s: s[0]):
            got = np.asarray(correct, dtype=np.float64)[np.asarray(ids) == rid]
            if got.size:
                alpha, beta = l1 * alpha + got.sum(), l1 * beta + got.size - got.sum()
            else:
                alpha, beta = l2 * alpha, l2 * beta
        posteriors[rid] = (alpha, beta)
    return posteriors


def assert_posteriors(sampler, expected):
    """The sampler's (alpha, beta) equal ``expected`` row by row."""
    for rid, (alpha, beta) in expected.items():
        (position,) = sampler.positions_of([rid])
        assert (sampler.state.alpha[position], sampler.state.beta[position]) == pytest.approx((alpha, beta), abs=1e-9), rid
