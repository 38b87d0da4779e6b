"""DIVA-GRPO math (vade_verl.diva.advantage) against hand-worked numbers, numpy re-derivations and scipy."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

import diva_reference as ref
from vade_verl.diva.advantage import (
    PAPER_MU,
    DifficultyConfig,
    DifficultyTracker,
    DivaAdvantageConfig,
    compute_diva_advantage,
    difficulty_delta,
    draw_variant_difficulties,
    draw_variant_difficulty,
    update_difficulty,
    variant_difficulty_probs,
)

PAPER = DivaAdvantageConfig(order="paper", low_reward_damping=False)

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


def _run(cfg=PAPER):
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
    _, parts = _run(DivaAdvantageConfig(order="paper", k=0.0))
    np.testing.assert_allclose(parts["A_global_weighted"].numpy(), [POS, POS, NEG, NEG, POS] + [NEG] * 7 + [POS] * 3 + [NEG], atol=1e-5)


def test_paper_order_damping_scales_the_whole_advantage_of_low_local_groups():
    plain, _ = _run()
    damped, parts = _run(DivaAdvantageConfig(order="paper"))
    low = np.array([g == "b0" for g in LOCAL])
    np.testing.assert_array_equal(parts["low_local"].numpy(), low)
    np.testing.assert_allclose(damped.numpy()[low], 0.1 * plain.numpy()[low])
    np.testing.assert_allclose(damped.numpy()[~low], plain.numpy()[~low])


# Authors' order, hand-worked. Three problems, an original and one variant each, 4 rollouts per prompt,
# rewards as the authors' scorer gives them (0.9 accuracy + 0.1 format):
#   a0 d=3: 1 1 0 0      a1 d=7: 1 0 0 0        (problem 0)
#   b0 d=8: .1 0 0 0     b1 d=5: 1 1 1 0        (problem 1: b0 is low, its problem is not)
#   c0 d=9: .1 0 0 0     c1 d=7: 0 0 .1 .1      (problem 2: low as a whole)
A_LOCAL_IDS = ["a0"] * 4 + ["a1"] * 4 + ["b0"] * 4 + ["b1"] * 4 + ["c0"] * 4 + ["c1"] * 4
A_PROBLEMS = [0] * 8 + [1] * 8 + [2] * 8
A_DIFF = [3] * 4 + [7] * 4 + [8] * 4 + [5] * 4 + [9] * 4 + [7] * 4
A_REWARDS = [1, 1, 0, 0, 1, 0, 0, 0, 0.1, 0, 0, 0, 1, 1, 1, 0, 0.1, 0, 0, 0, 0, 0, 0.1, 0.1]
# Local z-scores by hand: b0 and c0 mean .025, std .05 -> 1.5, -.5 x3; c1 mean .05, std sqrt(.01/3) -> -+0.866.
# dd by hand: problem 0 mean 5 -> -2, +2; problem 1 mean 6.5 -> +1.5, -1.5; problem 2 mean 8 -> +1, -1.
HAND_A_LOCAL_B0 = [1.5, -0.5, -0.5, -0.5]
HAND_A_LOCAL_C1 = [-S3, -S3, S3, S3]
HAND_DD = [-2] * 4 + [2] * 4 + [1.5] * 4 + [-1.5] * 4 + [1] * 4 + [-1] * 4


def _authors(cfg=DivaAdvantageConfig()):
    return compute_diva_advantage(torch.tensor(A_REWARDS, dtype=torch.float64), A_LOCAL_IDS, A_PROBLEMS, A_DIFF, cfg)


def test_authors_order_is_the_default():
    assert DivaAdvantageConfig().order == "authors" and DivaAdvantageConfig().low_reward_damping


def test_authors_order_hand_worked():
    adv, parts = _authors()
    np.testing.assert_allclose(parts["A_local"].numpy()[8:12], HAND_A_LOCAL_B0, atol=1e-4)  # eps 1e-6 on std .05
    np.testing.assert_allclose(parts["A_local"].numpy()[20:24], HAND_A_LOCAL_C1, atol=1e-4)
    np.testing.assert_allclose(parts["dd"].numpy(), HAND_DD)
    low_local = np.array([g in ("b0", "c0", "c1") for g in A_LOCAL_IDS])
    low_global = np.array([p == 2 for p in A_PROBLEMS])
    np.testing.assert_array_equal(parts["low_local"].numpy(), low_local)
    np.testing.assert_array_equal(parts["low_global"].numpy(), low_global)
    # normalise (over the batch), weight by exp(k dd sign), damp each part by its own group, add
    local = ref.zscore(ref.grpo(A_REWARDS, A_LOCAL_IDS))
    glob = ref.zscore(ref.grpo(A_REWARDS, A_PROBLEMS))
    weighted = glob * np.exp(0.1 * np.array(HAND_DD) * np.sign(glob))
    expected = np.where(low_local, 0.1 * local, local) + np.where(low_global, 0.1 * weighted, weighted)
    np.testing.assert_allclose(adv.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(adv.numpy(), ref.authors_advantage(A_REWARDS, A_LOCAL_IDS, A_PROBLEMS, A_DIFF), atol=1e-5)
    # b0 is low but its problem is not: its local part is damped, its global part kept
    np.testing.assert_allclose(adv.numpy()[8:12], 0.1 * local[8:12] + weighted[8:12], atol=1e-5)
    # and the orders differ
    assert np.abs(adv.numpy() - ref.paper_advantage(A_REWARDS, A_LOCAL_IDS, A_PROBLEMS, A_DIFF)).max() > 0.05


def test_authors_order_without_damping_and_with_separate_task_scores():
    adv, _ = _authors(DivaAdvantageConfig(low_reward_damping=False))
    undamped = ref.authors_advantage(A_REWARDS, A_LOCAL_IDS, A_PROBLEMS, A_DIFF, scale=1.0)
    np.testing.assert_allclose(adv.numpy(), undamped, atol=1e-5)
    # rewards shifted by a KL-like penalty; lowness read from the task scores passed per row
    shifted = np.asarray(A_REWARDS) - 0.002
    low = ref.all_below(A_REWARDS, A_LOCAL_IDS, 0.15)
    adv, parts = compute_diva_advantage(torch.tensor(shifted), A_LOCAL_IDS, A_PROBLEMS, A_DIFF, DivaAdvantageConfig(), low)
    expected = ref.authors_advantage(shifted, A_LOCAL_IDS, A_PROBLEMS, A_DIFF, damping_scores=A_REWARDS)
    np.testing.assert_allclose(adv.numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(parts["low_local"].numpy(), low)


def test_any_finite_reward_scale_is_accepted_and_nan_is_named():
    dapo = 2.0 * np.asarray(REWARDS) - 1.0  # math_dapo's +-1
    adv, _ = compute_diva_advantage(torch.tensor(dapo), LOCAL, GLOBAL, DIFF)
    np.testing.assert_allclose(adv.numpy(), ref.authors_advantage(dapo, LOCAL, GLOBAL, DIFF), atol=1e-5)
    with pytest.raises(ValueError, match="non-finite"):
        compute_diva_advantage(torch.tensor([np.nan, 1.0]), ["u", "u"], [0, 0], [3, 3])
    with pytest.raises(ValueError, match="order"):
        DivaAdvantageConfig(order="mixed")


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
    # problem 0: mean .25 -> +1 ; problem 2: mean 0.75 -> -2 ; problem 1 absent -> unchanged; NaN left out
    changes = tracker.update([0, 0, 0, 0, 0, 2, 2, 2, 2], [1, 0, 0, 0, np.nan, 1, 1, 1, 0])
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


def test_one_variant_takes_the_authors_fixed_target():
    rng = np.random.default_rng(0)
    # release gen_new_item.py DIFFICULTY_MAPPING, by hand
    assert [draw_variant_difficulties(d, 1, rng)[0] for d in range(1, 10)] == [9, 8, 7, 6, 6, 5, 5, 5, 4]
    paper = DifficultyConfig(single_variant_targets=None)
    draws = [draw_variant_difficulties(5, 1, rng, paper)[0] for _ in range(4000)]
    hist = np.bincount(draws, minlength=10)[1:] / len(draws)
    assert np.max(np.abs(hist - _scipy_probs(6.0))) < 0.03


def test_several_variants_keep_one_hint():
    rng = np.random.default_rng(3)
    seen_replaced = set()
    for _ in range(3000):
        targets = draw_variant_difficulties(8, 3, rng)  # mu(8) = 3.5: most draws are below 8
        assert sum(t < 8 for t in targets) <= 1
        seen_replaced.update(t for t in targets[1:] if t >= 8)
    assert seen_replaced == {8, 9}  # 8 + {0, 1, 2, 3}, clipped at 9
    free = DifficultyConfig(single_hint=False)
    assert any(sum(t < 8 for t in draw_variant_difficulties(8, 3, rng, free)) > 1 for _ in range(50))


def test_variant_draw_is_validated():
    with pytest.raises(ValueError, match="integer"):
        draw_variant_difficulty(10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="mu needs"):
        DifficultyConfig(mu=(1.0, 2.0))
    with pytest.raises(ValueError, match="single_variant_targets"):
        DifficultyConfig(single_variant_targets=(9, 8))
