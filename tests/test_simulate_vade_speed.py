"""The fast paths of ``vade_verl.vade.algorithm`` used at scale (benchmarks/bench_select_update.py) are exact."""

import numpy as np
import pytest
from scipy import stats

from vade_verl.vade.algorithm import thompson_draw, top_b


def _brute_force(scores, b):
    return sorted(range(scores.size), key=lambda i: (-scores[i], i))[:b]


@pytest.mark.parametrize(
    "make",
    [
        lambda rng, n: rng.random(n),  # continuous: the strided cut is taken
        lambda rng, n: rng.integers(0, 50, n).astype(float),  # heavy ties across the cut
        lambda rng, n: np.sort(rng.random(n)),  # ascending: the subsample overshoots, still exact
        lambda rng, n: np.sort(rng.random(n))[::-1].copy(),  # descending
        lambda rng, n: np.where(np.arange(n) % 97 == 0, 1.0, 0.0),  # winners hidden off the stride
    ],
)
def test_top_b_on_large_arrays_matches_brute_force(make):
    rng = np.random.default_rng(0)
    n, b = 40_000, 64  # stride 9: the subsample path is used
    scores = make(rng, n)
    assert top_b(scores, b).tolist() == _brute_force(scores, b)


def test_thompson_draw_uses_exact_closed_forms_and_numpy_beta():
    # Blocks of unseen (0, 0), general, only failures (alpha = 0) and only successes (beta = 0):
    # each must follow its own Beta(alpha + 1, beta + 1) (Kolmogorov-Smirnov, seeded).
    n = 20_000
    alpha = np.concatenate([np.zeros(n), np.full(n, 3.0), np.zeros(n), np.full(n, 0.4)])
    beta = np.concatenate([np.zeros(n), np.full(n, 1.5), np.full(n, 2.0), np.zeros(n)])
    params = [(1, 1), (4, 2.5), (1, 3), (1.4, 1)]
    draws = thompson_draw(alpha, beta, np.random.default_rng(0)).reshape(4, n)
    for block, (a, b) in zip(draws, params):
        assert stats.kstest(block, stats.beta(a, b).cdf).pvalue > 1e-4, (a, b)
    # All unseen: the uniform fast path.
    unseen = thompson_draw(np.zeros(n), np.zeros(n), np.random.default_rng(1))
    assert stats.kstest(unseen, stats.uniform.cdf).pvalue > 1e-4
