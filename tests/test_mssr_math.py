"""MSSR pure math (vade_verl.mssr.advantage) against hand-worked numbers and independent computations."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from vade_verl.mssr.advantage import (
    MSSRBaselineConfig,
    MSSRBaselineState,
    MSSRShapingConfig,
    authors_rho,
    baseline_advantages,
    continuous_rho,
    full_vocab_entropy,
    initial_count,
    sampled_token_entropy,
    sequence_mean_kl,
    shape_advantages,
)

RHO_MIN, RHO_MAX, TARGET = 0.875, 0.96, 0.01


def test_defaults_are_the_authors_settings():
    cfg, shaping = MSSRBaselineConfig(), MSSRShapingConfig()
    # ruiiu/MSSR examples/config_mssr.yaml; window 10 = MVSRValueTracker.kl_window_size (the 20 is never passed)
    assert (cfg.rho_min, cfg.rho_max, cfg.target_kl, cfg.kl_window) == (0.875, 0.96, 0.01, 10)
    assert (shaping.alpha, shaping.kappa, shaping.entropy) == (0.4, 2.0, "full_vocab")


# ---------------------------------------------------------------- baseline: initialisation and update
def test_initial_count_is_one_over_one_minus_rho_min():
    assert initial_count(0.875) == pytest.approx(8.0)
    assert initial_count(0.5) == pytest.approx(2.0)


def test_initialise_averages_repeated_rollouts_with_n0():
    state = MSSRBaselineState(6)
    assert state.initialise(np.array([2, 2, 5, 1]), np.array([1.0, 0.0, 1.0, 0.0])) == 3
    # N0 = 8: prompt 2 v0 = 1/2 -> (4, 4); prompt 5 -> (8, 0); prompt 1 -> (0, 8)
    assert (state.alpha[[1, 2, 5]], state.beta[[1, 2, 5]]) == (pytest.approx([0, 4, 8]), pytest.approx([8, 4, 0]))
    assert state.values(np.array([2, 3])) == pytest.approx([0.5, np.nan], nan_ok=True)


def test_first_rollout_initialises_with_n0_then_forgetting_update():
    state = MSSRBaselineState(4)
    assert np.isnan(state.values(np.arange(4))).all()
    counts = state.update(np.array([0, 1]), np.array([1.0, 0.0]), rho=0.9)
    assert counts == {"initialised": 2, "updated": 0, "rollouts": 2}
    assert state.alpha[:2] == pytest.approx([8.0, 0.0]) and state.beta[:2] == pytest.approx([0.0, 8.0])

    counts = state.update(np.array([0]), np.array([0.0]), rho=0.9)
    assert counts == {"initialised": 0, "updated": 1, "rollouts": 1}
    # a = 0.9 * 8 + 0 = 7.2, b = 0.9 * 0 + 1 = 1
    assert (state.alpha[0], state.beta[0]) == pytest.approx((7.2, 1.0))
    state.update(np.array([0]), np.array([1.0]), rho=0.5)
    # a = 0.5 * 7.2 + 1 = 4.6, b = 0.5 * 1 + 0 = 0.5
    assert state.values(np.array([0]))[0] == pytest.approx(4.6 / 5.1)
    assert (state.alpha[1], state.beta[1]) == pytest.approx((0.0, 8.0))  # unvisited prompts do not decay


def test_repeated_rollouts_share_one_forgetting():
    state = MSSRBaselineState(5)
    state.update(np.array([3, 3]), np.array([1.0, 0.0]), rho=0.9)  # first visit: v0 = 0.5 -> a = b = 4
    state.update(np.array([3, 3, 2]), np.array([1.0, 0.5, 0.25]), rho=0.9)
    # prompt 3: a = 3.6 + 1.5, b = 3.6 + 0.5 ; prompt 2 first seen: v0 = 0.25 -> (2, 6)
    assert (state.alpha[3], state.beta[3]) == pytest.approx((5.1, 4.1))
    assert (state.alpha[2], state.beta[2]) == pytest.approx((2.0, 6.0))


def test_update_rejects_bad_input():
    state = MSSRBaselineState(3)
    with pytest.raises(ValueError, match=r"correctness in \[0, 1\]"):
        state.update(np.array([0]), np.array([1.5]), rho=0.9)
    with pytest.raises(IndexError, match="outside 0..2"):
        state.update(np.array([3]), np.array([1.0]), rho=0.9)
    with pytest.raises(ValueError, match="rho must lie"):
        state.update(np.array([0]), np.array([1.0]), rho=1.0)
    with pytest.raises(ValueError, match="1 outcomes for 2"):
        state.initialise(np.array([0, 1]), np.array([1.0]))


def test_state_dict_round_trip_and_size_check():
    state = MSSRBaselineState(3)
    state.observe_kl(0.02)
    state.update(np.array([0, 2]), np.array([1.0, 0.0]), rho=state.current_rho())
    other = MSSRBaselineState(3)
    other.load_state_dict(state.state_dict())
    assert other.values(np.arange(3)) == pytest.approx(state.values(np.arange(3)), nan_ok=True)
    assert list(other.kl_history) == [0.02] and other.last_rho == state.last_rho
    with pytest.raises(ValueError, match="this dataset has 4 prompts"):
        MSSRBaselineState(4).load_state_dict(state.state_dict())


# ---------------------------------------------------------------- KL-adaptive rho: two schedules
MID, HALF = (RHO_MIN + RHO_MAX) / 2, (RHO_MAX - RHO_MIN) / 2


@pytest.mark.parametrize(
    "kl, continuous, authors",
    [
        (0.0, RHO_MAX, RHO_MIN),  # no drift: continuous remembers most, the authors' code forgets most
        (TARGET / 4, MID + HALF * 15 / 17, 0.875 + 0.25 * 0.085),  # u = 1/4: (u^2-1)/(u^2+1) = -15/17
        (TARGET / 2, MID + HALF * 0.6, 0.875 + 0.5 * 0.085),  # u = 1/2: -0.6 -> 0.943 ; 0.9175
        (TARGET, MID, RHO_MAX),  # at the target: the midpoint 0.9175 ; the authors' top 0.96
        (TARGET * 1.000001, MID, RHO_MIN),  # just above: the authors' code jumps to 0.875
        (2 * TARGET, MID - HALF * 0.6, RHO_MIN),  # u = 2: +0.6 -> 0.892
        (math.inf, RHO_MIN, RHO_MIN),
    ],
)
def test_rho_schedules_hand_values(kl, continuous, authors):
    assert continuous_rho(kl, TARGET, RHO_MIN, RHO_MAX) == pytest.approx(continuous, abs=1e-6)
    assert authors_rho(kl, TARGET, RHO_MIN, RHO_MAX) == pytest.approx(authors)


def test_continuous_rho_is_continuous_and_decreasing():
    below = continuous_rho(TARGET * (1 - 1e-9), TARGET, RHO_MIN, RHO_MAX)
    above = continuous_rho(TARGET * (1 + 1e-9), TARGET, RHO_MIN, RHO_MAX)
    assert abs(above - below) < 1e-9
    grid = np.linspace(0, 10 * TARGET, 200)
    rhos = np.array([continuous_rho(k, TARGET, RHO_MIN, RHO_MAX) for k in grid])
    assert np.all(np.diff(rhos) < 0) and rhos.max() <= RHO_MAX and rhos.min() >= RHO_MIN
    with pytest.raises(ValueError):
        continuous_rho(-0.1, TARGET, RHO_MIN, RHO_MAX)


@pytest.mark.parametrize("schedule, expected", [
    # window 10 holds only the last ten 0.002s: u = 0.2 -> (0.04 - 1) / 1.04
    ("continuous", MID + HALF * 0.96 / 1.04),
    ("authors", 0.875 + 0.2 * 0.085),
])
def test_rho_uses_mean_of_last_window_steps_including_this_one(schedule, expected):
    state = MSSRBaselineState(2, MSSRBaselineConfig(rho_schedule=schedule))
    with pytest.raises(ValueError, match="observe this step's KL"):
        state.current_rho()
    for _ in range(5):
        state.observe_kl(1.0)  # pushed out of the 10-step window below
    for _ in range(10):
        state.observe_kl(0.002)
    assert state.current_rho() == pytest.approx(expected)
    assert MSSRBaselineState(2, MSSRBaselineConfig(rho=0.5)).current_rho() == 0.5


def authors_tracker_rhos(step_kls, window=10, rho_min=RHO_MIN, rho_max=RHO_MAX, target=TARGET):
    """The rho each step's update gets in the authors' MVSRValueTracker.update, written out from reading it:
    append the step's KL, keep the last `window`, then the piecewise rule on their mean."""
    history, rhos = [], []
    for kl in step_kls:
        history.append(kl)
        if len(history) > window:
            history.pop(0)
        mean = sum(history) / len(history)
        if mean > target:
            rho = rho_max - min(mean / target, 1.0) * (rho_max - rho_min)
        else:
            rho = rho_min + mean / target * (rho_max - rho_min)
        rhos.append(min(max(rho, rho_min), rho_max))
    return rhos


def test_authors_schedule_matches_their_tracker_step_by_step():
    kls = np.random.default_rng(0).uniform(0.0, 0.02, size=25)
    state = MSSRBaselineState(1, MSSRBaselineConfig(rho_schedule="authors"))
    ours = []
    for kl in kls:
        state.observe_kl(kl)
        ours.append(state.current_rho())
    assert ours == pytest.approx(authors_tracker_rhos(kls))


def test_sequence_mean_kl_is_mean_of_per_response_token_means():
    kl = torch.tensor([[1.0, 2.0, 9.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert sequence_mean_kl(kl, mask) == pytest.approx((1.5 + 4.0) / 2)  # a token mean would give 7 / 3


def test_config_validation():
    with pytest.raises(ValueError, match="rho_min <= rho_max"):
        MSSRBaselineConfig(rho_min=0.97, rho_max=0.96)
    with pytest.raises(ValueError, match="rho_schedule must be one of"):
        MSSRBaselineConfig(rho_schedule="linear")
    with pytest.raises(ValueError, match="kappa must be > 1"):
        MSSRShapingConfig(kappa=1.0)
    with pytest.raises(ValueError, match="entropy must be one of"):
        MSSRShapingConfig(entropy="logits")


# ---------------------------------------------------------------- advantage with batch normalisation
def test_baseline_advantages_hand_worked():
    r = torch.tensor([1.0, 0.0, 1.0, 0.0])
    v = torch.tensor([0.5, 0.5, 0.25, float("nan")])  # last: first visit -> batch-mean reward 0.5
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]])
    adv, fallback = baseline_advantages(r, v, mask)
    assert fallback == 1
    d = np.array([0.5, -0.5, 0.75, -0.5])  # r - v
    centred = d - 0.0625
    std = math.sqrt(float((centred**2).sum()) / 3)  # unbiased: 1.296875 / 3
    expected = centred / (std + 1e-6)
    assert adv[:, 0].numpy() == pytest.approx(expected, rel=1e-5)
    assert torch.equal(adv != 0, mask.bool())  # broadcast to response tokens only
    assert adv[2].numpy() == pytest.approx([expected[2]] * 3, rel=1e-5)
    centred_only, _ = baseline_advantages(r, v, mask, scale_by_std=False)
    assert centred_only[:, 0].numpy() == pytest.approx(centred, rel=1e-6)


def test_baseline_advantages_rejects_bad_shapes():
    with pytest.raises(ValueError, match="at least 2 rows"):
        baseline_advantages(torch.ones(1), torch.ones(1), torch.ones(1, 3))
    with pytest.raises(ValueError, match="equal shape"):
        baseline_advantages(torch.ones(3), torch.ones(2), torch.ones(3, 3))


# ---------------------------------------------------------------- entropy shaping
def test_shaping_hand_worked_clipped_by_abs_a_over_kappa():
    a = torch.tensor([1.0, -1.0, 0.1, -0.1, 0.0])
    h = torch.tensor([0.5, 0.5, 0.5, 2.0, 1.0])
    # alpha*H = [.2 .2 .2 .8 .4]; |A|/kappa = [.5 .5 .05 .05 0] -> bonus [.2 .2 .05 .05 0]
    shaped = shape_advantages(a, h, alpha=0.4, kappa=2.0)
    assert shaped.numpy() == pytest.approx([1.2, -0.8, 0.15, -0.05, 0.0])
    # the sign is kept (a negative advantage moves towards 0, never past it); not sign(A) * bonus
    assert torch.equal(torch.sign(shaped), torch.sign(a))
    assert shaped[1] > a[1]


def test_shaping_keeps_sign_for_any_entropy_and_detaches_h():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(1000, generator=gen) * 3
    h = (torch.rand(1000, generator=gen) * 20).requires_grad_()
    shaped = shape_advantages(a, h, alpha=0.4, kappa=2.0)
    assert torch.equal(torch.sign(shaped), torch.sign(a))
    assert torch.all((shaped - a).abs() <= a.abs() / 2 * (1 + 1e-6) + 1e-7)
    assert not shaped.requires_grad  # H detached: no gradient flows through the bonus
    with pytest.raises(ValueError, match="entropy must be >= 0"):
        shape_advantages(a, -h.detach(), alpha=0.4, kappa=2.0)


def test_entropy_choices():
    log_p = torch.log(torch.tensor([0.5, 1.0, 1 / math.e]))
    assert sampled_token_entropy(log_p).numpy() == pytest.approx([0.5 * math.log(2), 0.0, 1 / math.e])
    logits = torch.randn(3, 7, generator=torch.Generator().manual_seed(1))
    probs = torch.softmax(logits, dim=-1).numpy()
    assert full_vocab_entropy(logits).numpy() == pytest.approx(scipy_entropy(probs, axis=-1), rel=1e-5)
    assert full_vocab_entropy(torch.zeros(2, 4)).numpy() == pytest.approx([math.log(4)] * 2)
