"""Pure parts of the simulator: the population model and the competitor samplers, by hand."""

import itertools

import numpy as np
import pytest
from scipy.stats import norm

from vade_verl.baselines import (
    GenerationLimitReached,
    dapo_fill,
    outcome_variance_score,
    pass_rate_filter,
    variance_aware_batch,
    weighted_sample_without_replacement,
)
from vade_verl.population import Dynamics, Population, initial_logits, sigmoid

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
    pop = Population(np.array([0.0, 1.0, -2.0, np.inf]), Dynamics(learn=0.5, transfer=0.2, forget=0.1))
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
