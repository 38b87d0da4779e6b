"""VADE math against hand-worked numbers, brute force and scipy (no verl needed)."""

import numpy as np
import pytest
from scipy import optimize, stats

from vade_verl.vade.config import VADEConfig
from vade_verl.vade.algorithm import (
    VADEState,
    aggregate_rollouts,
    bernoulli_variance,
    effective_ratio,
    info_gain,
    posterior_mean,
    thompson_draw,
    top_b,
    two_scale_decay,
)


def test_update_and_decay_hand_worked():
    # alpha, beta before; l1 = 0.5, l2 = 0.9.
    alpha = np.array([1.0, 2.0, 0.0, 4.0])
    beta = np.array([3.0, 0.0, 1.0, 4.0])
    # sample 0: 4 rollouts, rewards 1,0,1,1 (r=3, G=4); sample 2: fractional 0.5, 0.25 (r=0.75, G=2);
    # sample 3: both rewards NaN (no evidence -> slow decay, 2 skipped); sample 1 not in the batch.
    positions = np.array([0, 2, 0, 3, 0, 2, 0, 3])
    rewards = np.array([1, 0.5, 0, np.nan, 1, 0.25, 1, np.nan])
    samples, successes, trials, skipped = aggregate_rollouts(positions, rewards)
    assert samples.tolist() == [0, 2, 3]
    assert successes.tolist() == [3.0, 0.75, 0.0]
    assert trials.tolist() == [4.0, 2.0, 0.0]
    assert skipped == 2
    two_scale_decay(alpha, beta, samples, successes, trials, l1=0.5, l2=0.9)
    # by hand: 0.5*1+3, 0.5*3+1 | 0.9*2, 0.9*0 | 0.5*0+0.75, 0.5*1+1.25 | 0.9*4, 0.9*4
    np.testing.assert_allclose(alpha, [3.5, 1.8, 0.75, 3.6])
    np.testing.assert_allclose(beta, [2.5, 0.0, 1.75, 3.6])


def test_rewards_outside_unit_interval_are_rejected_with_the_fix():
    with pytest.raises(ValueError, match=r"data\.sampler\.vade\.correctness"):
        aggregate_rollouts(np.array([0, 0]), np.array([1.0, -1.0]))


def test_infogain_peaks_at_one_third():
    result = optimize.minimize_scalar(lambda p: -info_gain(np.array(p)), bounds=(0, 1), method="bounded")
    assert result.x == pytest.approx(1 / 3, abs=1e-5)
    assert info_gain(np.array(1 / 3)) == pytest.approx(4 / 27)
    grid = np.linspace(0, 1, 30001)
    assert grid[np.argmax(info_gain(grid))] == pytest.approx(1 / 3, abs=1e-4)
    assert grid[np.argmax(bernoulli_variance(grid))] == pytest.approx(0.5, abs=1e-4)


@pytest.mark.parametrize("b", [1, 7, 50, 200])
def test_top_b_matches_brute_force_sort(b):
    rng = np.random.default_rng(b)
    for scores in (rng.random(200), rng.integers(0, 5, 200).astype(float)):  # continuous and heavy ties
        brute = sorted(range(scores.size), key=lambda i: (-scores[i], i))[:b]
        assert top_b(scores, b).tolist() == brute


def test_top_b_rejects_a_batch_larger_than_the_dataset():
    with pytest.raises(ValueError, match="batch size 5"):
        top_b(np.zeros(4), 5)


def test_thompson_draws_match_the_beta_posterior():
    # 200k draws per arm, seeded; tolerance: 5 standard errors of the mean (false alarm < 1e-6).
    n = 200_000
    alpha = np.repeat([0.0, 3.0, 10.0, 0.5], n)
    beta = np.repeat([0.0, 7.0, 1.0, 20.0], n)
    draws = thompson_draw(alpha, beta, np.random.default_rng(0)).reshape(4, n)
    a, b = alpha[::n] + 1, beta[::n] + 1
    mean, var = stats.beta.mean(a, b), stats.beta.var(a, b)
    assert np.all(np.abs(draws.mean(axis=1) - mean) < 5 * np.sqrt(var / n))
    np.testing.assert_allclose(posterior_mean(alpha[::n], beta[::n]), mean)
    for row, (ai, bi) in zip(draws, zip(a, b)):  # whole distribution, not only the mean
        assert stats.kstest(row[:20_000], stats.beta(ai, bi).cdf).pvalue > 1e-4


def test_effective_ratio_against_a_loop():
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 40, 400).astype(str)
    rewards = rng.integers(0, 2, 400).astype(float)
    rewards[rng.random(400) < 0.05] = np.nan
    groups = {}
    for k, r in zip(keys, rewards):
        if not np.isnan(r):
            groups.setdefault(k, set()).add(r)
    expected = np.mean([len(v) > 1 for v in groups.values()])
    assert effective_ratio(keys, rewards) == pytest.approx(expected)


def _state(selection="thompson", n=50, seed=0):
    return VADEState(n, l1=0.2, l2=0.999, score="infogain", selection=selection, seed=seed)


def test_greedy_picks_posterior_means_nearest_one_third():
    state = _state("greedy", n=5)
    # posterior means: 1/2, 1/12, 11/12, 3/8 (~0.375), 4/12 (= 1/3)
    state.alpha[:] = [0, 0, 10, 2, 3]
    state.beta[:] = [0, 10, 0, 4, 7]
    assert state.select(2).tolist() == [4, 3]


def test_random_selection_is_a_permutation_per_epoch():
    state = _state("random", n=10)
    first_epoch = np.concatenate([state.select(3) for _ in range(3)])
    assert np.unique(first_epoch).size == 9  # distinct within an epoch (drop_last leaves one out)


def test_state_dict_round_trip_reproduces_the_selections():
    state = _state()
    rng = np.random.default_rng(1)
    for _ in range(3):
        chosen = state.select(8)
        state.update(np.repeat(chosen, 4), rng.integers(0, 2, 32).astype(float))
    saved = state.state_dict()
    expected = [state.select(8).tolist() for _ in range(3)]
    restored = _state(seed=99)
    restored.load_state_dict(saved)
    assert [restored.select(8).tolist() for _ in range(3)] == expected


def test_config_defaults_are_the_papers_and_bad_values_name_the_key():
    config = VADEConfig.from_mapping(None)
    assert (config.l1, config.l2, config.score, config.selection) == (0.2, 0.999, "infogain", "thompson")
    assert (VADEConfig.from_mapping({"decay": False}).fast_decay, VADEConfig.from_mapping({"decay": False}).slow_decay) == (1.0, 1.0)
    with pytest.raises(ValueError, match=r"data\.sampler\.vade\.l3"):
        VADEConfig.from_mapping({"l3": 0.5})
    with pytest.raises(ValueError, match=r"data\.sampler\.vade\.l1=1\.5"):
        VADEConfig.from_mapping({"l1": 1.5})
    with pytest.raises(ValueError, match=r"data\.sampler\.vade\.score='entropy'"):
        VADEConfig.from_mapping({"score": "entropy"})
    with pytest.raises(ValueError, match=r"data\.sampler\.vade\.enable"):
        VADEConfig.from_mapping({"enable": "yes"})


def test_correctness_and_resume_options_are_checked_at_start():
    config = VADEConfig.from_mapping(None)
    assert (config.correctness, config.resume) == ("auto", "exact")
    assert VADEConfig.from_mapping({"correctness": 0.5}).correctness_rule().threshold == 0.5
    assert VADEConfig.from_mapping({"correctness": "fractional"}).correctness_rule().mode == "fractional"
    with pytest.raises(ValueError, match=r"data\.sampler\.vade\.correctness='binary'"):
        VADEConfig.from_mapping({"correctness": "binary"})
    with pytest.raises(ValueError, match=r"data\.sampler\.vade\.resume='never'"):
        VADEConfig.from_mapping({"resume": "never"})
    with pytest.raises(ValueError, match=r"data\.sampler\.vade\.reward_threshold is now data\.sampler\.vade\.correctness"):
        VADEConfig.from_mapping({"reward_threshold": 0.5})
