"""Pure parts of the simulator: the population model and the competitor samplers, by hand."""

import itertools

import numpy as np
import pytest
from scipy.stats import norm

from vade_verl.sim.baseline_samplers import (
    GenerationLimitReached,
    dapo_fill,
    informative_probability,
    true_p_batch,
    outcome_variance_score,
    pass_rate_band,
    pass_rate_filter,
    variance_aware_batch,
    weighted_sample_without_replacement,
)
from vade_verl.greso.algorithm import GRESOParams, GRESOState
from vade_verl.mopps.algorithm import MoPPSState
from vade_verl.sim.peer_samplers import greso_fill
from vade_verl.sim.population import Dynamics, Population, initial_logits, sigmoid

# -- DAPO ----------------------------------------------------------------------------------------
# gen batches of 4 prompts, G = 2, train batch 3. Rewards per prompt (a group of 2):
SCRIPT = {
    0: [1, 1], 1: [0, 1], 2: [0, 0], 3: [1, 0],  # batch 1: keeps 1 and 3
    4: [0, 0], 5: [0, 0], 6: [1, 1], 7: [0, 1],  # batch 2: keeps 7 -> 3 kept, stop
    8: [1, 0], 9: [0, 1], 10: [1, 0], 11: [1, 1],  # batch 3: keeps 8, 9, 10
}


def _scripted(positions):
    return np.array([SCRIPT[int(p)] for p in positions], dtype=float).reshape(-1)


def _gen_batches():
    return iter([np.arange(0, 4), np.arange(4, 8), np.arange(8, 12)])


def test_dapo_rollout_count_matches_a_hand_count():
    step = dapo_fill(_gen_batches(), _scripted, group_size=2, train_batch_size=3, max_num_gen_batches=10)
    # Two generation batches of 4 prompts x 2 rollouts were generated: 16 rollouts.
    assert (step.num_gen_batches, step.rollouts, step.groups_generated, step.groups_kept) == (2, 16, 8, 3)
    assert step.positions.tolist() == [1, 3, 7]
    assert step.rewards.tolist() == [0, 1, 1, 0, 0, 1]


def test_dapo_trains_on_the_first_kept_groups_and_drops_the_surplus():
    step = dapo_fill(_gen_batches(), _scripted, group_size=2, train_batch_size=4, max_num_gen_batches=0)
    # 3 kept after two batches, 6 after the third: 24 rollouts generated, the first 4 trained.
    assert (step.num_gen_batches, step.rollouts, step.groups_kept) == (3, 24, 6)
    assert step.positions.tolist() == [1, 3, 7, 8]


def test_dapo_raises_with_the_rollouts_spent_when_the_generation_limit_is_reached():
    with pytest.raises(GenerationLimitReached, match="max_num_gen_batches=2") as error:
        dapo_fill(_gen_batches(), _scripted, group_size=2, train_batch_size=4, max_num_gen_batches=2)
    assert error.value.rollouts == 16


def test_dapo_keeps_single_rollout_groups_like_verl():
    step = dapo_fill(iter([np.arange(3)]), lambda p: np.zeros(p.size), group_size=1, train_batch_size=3, max_num_gen_batches=1)
    assert step.positions.tolist() == [0, 1, 2] and step.rollouts == 3


def test_dapo_with_a_pass_rate_band_keeps_the_closed_interval():
    keep = pass_rate_band(0.25, 0.75)
    groups = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=float)
    assert keep(groups.reshape(-1), 4).tolist() == [True, True, False, False, True]
    # The scripted DAPO run with band [0.5, 0.5]: batch 1 keeps 1 and 3, batch 2 keeps 7, batch 3 keeps 8, 9, 10.
    step = dapo_fill(_gen_batches(), _scripted, group_size=2, train_batch_size=4, max_num_gen_batches=3, keep_rule=pass_rate_band(0.5, 0.5))
    assert step.positions.tolist() == [1, 3, 7, 8] and step.rollouts == 24
    with pytest.raises(ValueError, match="pass-rate band"):
        pass_rate_band(0.8, 0.2)


# -- the true-p reference by P(informative) --------------------------------------------------------
def test_true_p_reference_takes_the_samples_most_likely_to_give_an_informative_group():
    # G = 2: 1 - p^2 - (1 - p)^2 = 2 p (1 - p).
    assert informative_probability(np.array([0.0, 0.5, 1.0, 0.25]), 2).tolist() == [0.0, 0.5, 0.0, 0.375]
    # G = 8: p = 0.9 -> 0.570, 0.5 -> 0.992, 0 -> 0, 0.3 -> 0.942, 0.6 -> 0.983.
    assert true_p_batch("informative", np.array([0.9, 0.5, 0.0, 0.3, 0.6]), 3, 8).tolist() == [1, 4, 3]


# -- MoPPS and GRESO -------------------------------------------------------------------------------
def test_mopps_update_is_the_authors_decayed_beta_update():
    # The authors' form (thu-rllab/MoPPS recipe/ours/mopps.py), prior Beta(1, 1), decay 0.5:
    # a <- 0.5 a + 0.5 + s, b <- 0.5 b + 0.5 + (n - s). 3 of 4 then 1 of 4: a = 4 -> 3.5, b = 2 -> 4.5.
    state = MoPPSState(3, decay=0.5, target=0.5, seed=0)
    state.update(np.array([1]), np.array([3.0]), np.array([4.0]))
    state.update(np.array([1]), np.array([1.0]), np.array([4.0]))
    assert (state.alpha + 1).tolist() == [1.0, 3.5, 1.0] and (state.beta + 1).tolist() == [1.0, 4.5, 1.0]


def test_mopps_picks_the_candidates_whose_draws_are_nearest_the_target():
    state = MoPPSState(9, decay=1.0, target=0.5, seed=0)
    # Posteriors so sharp that every draw is within 0.005 of its mean: 0.1, 0.45, 0.9, 0.6 for 5..8.
    means = np.array([0.1, 0.45, 0.9, 0.6])
    state.alpha[5:], state.beta[5:] = 1e6 * means, 1e6 * (1 - means)
    assert state.select(np.array([5, 6, 7, 8]), 2).tolist() == [6, 8]


def test_greso_keep_probability_streaks_and_adaptation_by_hand():
    state = GRESOState(4, GRESOParams(p_easy=0.5, p_hard=0.6))
    state.easy_streak[:] = [0, 2, 0, 9]
    state.hard_streak[:] = [0, 0, 3, 0]
    np.testing.assert_allclose(state.keep_probability(np.arange(4)), [1.0, 0.25, 0.216, 0.01])  # 0.5^9 < 0.01
    state.record(np.array([0, 1, 2]), np.array([1, 1, 1, 0, 0, 0], dtype=float), group_size=2)
    assert state.easy_streak.tolist() == [1, 0, 0, 9] and state.hard_streak.tolist() == [0, 0, 4, 0]
    # targets: easy 0.25 / 3 = 0.083, hard 2 * 0.25 / 3 = 0.167
    state.adapt(easy_share=0.1, hard_share=0.1)
    assert (state.p_easy, state.p_hard) == pytest.approx((0.49, 0.61))


def test_greso_fill_rolls_out_shrinking_batches_and_trains_on_what_the_last_one_gave():
    # Fresh state: every prompt is kept. Sampling batches of 4 (at least 2), G = 2, train batch 3.
    step = greso_fill(iter(range(12)), GRESOState(12), _scripted, 2, 3, 4, 2, 10, np.random.default_rng(0))
    # Batch 1 (0-3) keeps 1 and 3; 1 more group wanted at an informative share of 1/2:
    # int(1 / 0.5 * 1.25) = 2 <= 4, so batch 2 (4, 5) of size 2 is the last; it keeps nothing.
    assert step.positions.tolist() == [1, 3]
    assert (step.rollouts, step.groups_generated, step.groups_kept, step.all_correct, step.all_wrong) == (12, 6, 2, 1, 3)


def test_greso_fill_raises_at_the_simulator_guard():
    state = GRESOState(8)
    with pytest.raises(GenerationLimitReached, match="2 sampling batches") as error:
        greso_fill(iter(range(100)), state, lambda p: np.zeros(2 * p.size), 2, 3, 4, 2, 2, np.random.default_rng(0))
    assert error.value.rollouts == 16
    assert state.hard_streak[:8].tolist() == [1] * 8


# -- offline filter and MMR1 -----------------------------------------------------------------------
def test_pass_rate_filter_keeps_the_open_interval():
    successes = np.array([0, 1, 4, 8, 7, 2])
    assert pass_rate_filter(successes, 8).tolist() == [1, 2, 4, 5]
    assert pass_rate_filter(successes, 8, min_rate=0.2, max_rate=0.9).tolist() == [2, 4, 5]
    with pytest.raises(ValueError, match="min_rate < max_rate"):
        pass_rate_filter(successes, 8, min_rate=0.5, max_rate=0.5)


def test_outcome_variance_score_by_hand():
    assert outcome_variance_score(np.array([0, 2, 4, 8]), 8).tolist() == [0.0, 0.1875, 0.25, 0.0]


def test_weighted_draw_without_replacement_matches_the_exact_sequential_probabilities():
    weights = np.array([1.0, 2.0, 3.0, 0.0])
    rng = np.random.default_rng(0)
    trials = 12_000
    counts = {}
    for _ in range(trials):
        pair = tuple(weighted_sample_without_replacement(weights, 2, rng).tolist())
        counts[pair] = counts.get(pair, 0) + 1
    total = weights.sum()
    for first, second in itertools.permutations(range(3), 2):
        exact = weights[first] / total * weights[second] / (total - weights[first])
        seen = counts.get((first, second), 0) / trials
        assert abs(seen - exact) < 5 * np.sqrt(exact * (1 - exact) / trials), (first, second, seen, exact)
    assert not any(3 in pair for pair in counts)  # zero weight is never drawn


def test_variance_aware_batch_mixes_weighted_and_uniform_and_reports_a_shortfall():
    vps = np.zeros(100)
    vps[[3, 5]] = 0.25
    positions, shortfall = variance_aware_batch(vps, 10, 0.5, np.random.default_rng(0))
    assert len(set(positions.tolist())) == 10
    assert {3, 5} <= set(positions[:2].tolist())
    assert shortfall == 3  # 5 weighted slots wanted, only 2 samples have VPS > 0


# -- population ------------------------------------------------------------------------------------
def test_population_training_step_by_hand():
    pop = Population(np.array([0.0, 1.0, -2.0, np.inf]), Dynamics("per-group", learn=0.5, transfer=0.2, forget=0.1))
    pop.z[:3] += [0.3, 0.0, 0.0]  # z = [0.3, 1, -2, inf], z0 = [0, 1, -2, inf]
    pop.train(np.array([0, 2]), np.array([True, False]), batch_size=2)
    # learn on 0; drift 0.2 * 1/2 = 0.1 on every finite z; then z -= 0.1 * (z - z0)
    expected = np.array([0.9 - 0.1 * 0.9, 1.1 - 0.1 * 0.1, -1.9 - 0.1 * 0.1, np.inf])
    np.testing.assert_allclose(pop.z, expected)


def test_rollouts_are_grouped_per_prompt_with_the_right_rate():
    pop = Population(np.array([-np.inf, np.inf, 0.0]), Dynamics())
    rewards = pop.rollout(np.array([0, 1, 2]), 4000, np.random.default_rng(0)).reshape(3, 4000)
    assert rewards[0].sum() == 0 and rewards[1].sum() == 4000
    assert abs(rewards[2].mean() - 0.5) < 5 * np.sqrt(0.25 / 4000)


def test_initial_difficulty_presets_and_errors():
    rng = np.random.default_rng(0)
    n = 20_000
    p = sigmoid(initial_logits("mm-math", n, rng))
    # The documented mixture: 20% N(-5, 1), 20% N(4.5, 1), 60% N(0.5, 1.5) on the logit scale.
    for cut in (0.02, 0.5, 0.97):
        z = np.log(cut / (1 - cut))
        exact = 0.2 * norm.cdf(z + 5) + 0.2 * norm.cdf(z - 4.5) + 0.6 * norm.cdf((z - 0.5) / 1.5)
        assert abs(np.mean(p < cut) - exact) < 5 * np.sqrt(exact * (1 - exact) / n), cut
    beta = sigmoid(initial_logits("beta:2,5", 20_000, rng))
    assert abs(beta.mean() - 2 / 7) < 0.01
    with pytest.raises(ValueError, match="unknown difficulty"):
        initial_logits("hard", 10, rng)
    with pytest.raises(ValueError, match="beta:A,B"):
        initial_logits("beta:1", 10, rng)
    with pytest.raises(ValueError, match="forget"):
        Dynamics(forget=-1)
