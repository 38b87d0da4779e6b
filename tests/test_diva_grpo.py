"""DIVA-GRPO math (vade_verl.diva_grpo) against hand-worked numbers and scipy."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from vade_verl.diva_grpo import (
    PAPER_MU,
    DifficultyConfig,
    DifficultyTracker,
    DivaAdvantageConfig,
    compute_diva_advantage,
    difficulty_delta,
    draw_variant_difficulty,
    update_difficulty,
    variant_difficulty_probs,
)

# Hand-worked batch: two problems, each an original and one variant, 4 rollouts per prompt.
#   problem 0: original "a0" d=3 rewards 1 1 0 0 ; variant "a1" (harder) d=7 rewards 1 0 0 0
#   problem 1: original "b0" d=8 rewards 0 0 0 0 ; variant "b1" (hint)   d=5 rewards 1 1 1 0
LOCAL = ["a0"] * 4 + ["a1"] * 4 + ["b0"] * 4 + ["b1"] * 4
GLOBAL = [0] * 8 + [1] * 8
DIFF = [3] * 4 + [7] * 4 + [8] * 4 + [5] * 4
REWARDS = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0]

# A_local by hand (unbiased std): a0 mean .5 std sqrt(1/3) -> +-0.866025; a1 mean .25 std .5 ->
# 1.5, -.5; b0 constant -> 0; b1 mean .75 std .5 -> .5, -1.5.
S3 = 0.5 / np.sqrt(1 / 3)
HAND_LOCAL = [S3, S3, -S3, -S3, 1.5, -0.5, -0.5, -0.5, 0, 0, 0, 0, 0.5, 0.5, 0.5, -1.5]
# A_global: both problems hold three 1s and five 0s: mean 3/8, std sqrt(1.875/7).
G_STD = np.sqrt(1.875 / 7)
POS, NEG = 0.625 / G_STD, -0.375 / G_STD
# dd: problem 0 mean difficulty 5 -> a0 -2, a1 +2; problem 1 mean 6.5 -> b0 +1.5, b1 -1.5.
# weight exp(0.1 * dd * sign(A_global)):
HAND_GLOBAL_W = (
    [POS * np.exp(-0.2)] * 2 + [NEG * np.exp(0.2)] * 2  # a0
    + [POS * np.exp(0.2)] + [NEG * np.exp(-0.2)] * 3  # a1
    + [NEG * np.exp(-0.15)] * 4  # b0
    + [POS * np.exp(-0.15)] * 3 + [NEG * np.exp(0.15)]  # b1
)  # fmt: skip


def _z(x):
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / x.std(ddof=1)


def _run(cfg=DivaAdvantageConfig()):
    return compute_diva_advantage(torch.tensor(REWARDS, dtype=torch.float64), LOCAL, GLOBAL, DIFF, cfg)


def test_hand_worked_parts():
    _, parts = _run()
    np.testing.assert_allclose(parts["A_local"].numpy(), HAND_LOCAL, atol=1e-5)
    assert POS == pytest.approx(1.207615, abs=1e-6) and NEG == pytest.approx(-0.724569, abs=1e-6)
    np.testing.assert_allclose(parts["dd"].numpy(), [-2] * 4 + [2] * 4 + [1.5] * 4 + [-1.5] * 4)
    np.testing.assert_allclose(parts["A_global_weighted"].numpy(), HAND_GLOBAL_W, atol=1e-5)


def test_hand_worked_advantage():
    adv, _ = _run()
    np.testing.assert_allclose(adv.numpy(), _z(HAND_LOCAL) + _z(HAND_GLOBAL_W), atol=1e-5)
    # The harder variant's lone success outranks the easy original's successes.
    assert adv[4] > adv[0]


def test_k_zero_is_unweighted_global():
    _, parts = _run(DivaAdvantageConfig(k=0.0))
    np.testing.assert_allclose(parts["A_global_weighted"].numpy(), [POS, POS, NEG, NEG, POS] + [NEG] * 7 + [POS] * 3 + [NEG], atol=1e-5)


def test_low_reward_damping_scales_only_low_groups():
    plain, _ = _run()
    damped, parts = _run(DivaAdvantageConfig(low_reward_damping=True))
    low = np.array([g == "b0" for g in LOCAL])
    np.testing.assert_array_equal(parts["low_reward_mask"].numpy(), low)
    np.testing.assert_allclose(damped.numpy()[low], 0.1 * plain.numpy()[low])
    np.testing.assert_allclose(damped.numpy()[~low], plain.numpy()[~low])


def test_no_std_division_centres_only():
    _, parts = _run(DivaAdvantageConfig(norm_by_std=False))
    np.testing.assert_allclose(parts["A_local"].numpy()[:4], [0.5, 0.5, -0.5, -0.5])
    np.testing.assert_allclose(parts["A_global"].numpy()[:2], [0.625, 0.625])


def test_group_mixing_difficulties_is_an_error():
    with pytest.raises(ValueError, match="mixes difficulties"):
        compute_diva_advantage(torch.zeros(2), ["u", "u"], [0, 0], [3, 4])


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match="unknown key"):
        DivaAdvantageConfig.from_mapping({"kk": 1})


@pytest.mark.parametrize(
    "score, delta",
    [(0.0, 2), (0.05, 2), (0.05 + 1e-9, 1), (0.3, 1), (0.3 + 1e-9, 0), (0.5, 0), (0.5 + 1e-9, -1),
     (0.7, -1), (0.7 + 1e-9, -2), (1.0, -2)],
)  # fmt: skip
def test_difficulty_band_edges(score, delta):
    assert int(difficulty_delta(score)) == delta
    assert int(update_difficulty(5, score)) == 5 + delta


def test_difficulty_clipped_and_validated():
    np.testing.assert_array_equal(update_difficulty([9, 8, 1, 2], [0.0, 0.0, 1.0, 1.0]), [9, 9, 1, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        difficulty_delta([0.5, 1.2])


def test_tracker_uses_mean_of_problem_and_variants():
    tracker = DifficultyTracker(3, initial=[5, 5, 9])
    # problem 0: mean .25 -> +1 ; problem 2: mean 0.75 -> -2 ; problem 1 absent -> unchanged
    changes = tracker.update([0, 0, 0, 0, 2, 2, 2, 2], [1, 0, 0, 0, 1, 1, 1, 0])
    assert changes == {0: (0.25, 5, 6), 2: (0.75, 9, 7)}
    np.testing.assert_array_equal(tracker.difficulty, [6, 5, 7])
    copy = DifficultyTracker(3)
    copy.load_state_dict(tracker.state_dict())
    np.testing.assert_array_equal(copy.difficulty, tracker.difficulty)
    with pytest.raises(ValueError, match="outside"):
        tracker.update([3], [1.0])


def _scipy_probs(mu, sigma=1.0):
    t = np.arange(1, 10)
    upper = norm.cdf(t + 0.5, mu, sigma)
    upper[-1] = 1.0
    lower = np.concatenate([[0.0], upper[:-1]])
    return upper - lower


@pytest.mark.parametrize("d", range(1, 10))
def test_variant_draw_histogram_matches_mu_table(d):
    rng = np.random.default_rng(1234 + d)
    n = 20000
    draws = np.array([draw_variant_difficulty(d, rng) for _ in range(n)])
    hist = np.bincount(draws, minlength=10)[1:] / n
    expected = _scipy_probs(PAPER_MU[d - 1])
    np.testing.assert_allclose(variant_difficulty_probs(d), expected, atol=1e-12)
    # about 4.7 binomial standard deviations at the widest bin (p = 0.38: sd 0.0034)
    assert np.max(np.abs(hist - expected)) < 0.016, (hist, expected)


def test_variant_draw_is_deterministic_and_validated():
    a = [draw_variant_difficulty(4, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(a)) == 1
    with pytest.raises(ValueError, match="integer"):
        draw_variant_difficulty(10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="mu needs"):
        DifficultyConfig(mu=(1.0, 2.0))
