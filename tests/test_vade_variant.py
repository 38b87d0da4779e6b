"""Our VADE variant "eig" (expected InfoGain, gated fast decay): math by hand and scipy, and the
verl sampler option ``data.sampler.vade.variant`` reaching ``VADEState``."""

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy import integrate, stats

from vade_verl.vade.config import VADEConfig
from vade_verl.vade.algorithm import VADEState, expected_info_gain, expected_variance, gated_fast_decay, two_scale_decay


def test_expected_scores_by_hand_and_by_quadrature():
    # Beta(1, 1): E[p (1-p)^2] = 1 * 1 * 2 / (2 * 3 * 4) = 1/12; Beta(4, 2): 4 * 2 * 3 / (6 * 7 * 8) = 1/14.
    alpha, beta = np.array([0.0, 3.0, 0.4, 12.0]), np.array([0.0, 1.0, 7.5, 0.0])
    assert expected_info_gain(alpha[:2], beta[:2]) == pytest.approx([1 / 12, 1 / 14])
    # E[p (1-p)] for Beta(4, 2): 4 * 2 / (6 * 7) = 4/21.
    assert expected_variance(alpha[1:2], beta[1:2]) == pytest.approx([4 / 21])
    for a, b, gain, var in zip(alpha + 1, beta + 1, expected_info_gain(alpha, beta), expected_variance(alpha, beta)):
        pdf = stats.beta(a, b).pdf
        assert gain == pytest.approx(integrate.quad(lambda p: p * (1 - p) ** 2 * pdf(p), 0, 1)[0], rel=1e-7)
        assert var == pytest.approx(integrate.quad(lambda p: p * (1 - p) * pdf(p), 0, 1)[0], rel=1e-7)


def test_gated_fast_decay_applies_l1_only_to_informative_groups():
    successes = np.array([0.0, 3.0, 4.0, 0.5, 2.0])
    trials = np.array([4.0, 4.0, 4.0, 1.0, 4.0])
    # all wrong, mixed, all right, one fractional reward 0.5 (interior: counts as informative), mixed
    assert gated_fast_decay(successes, trials, 0.2, 0.999).tolist() == [0.999, 0.2, 0.999, 0.2, 0.2]


def test_two_scale_decay_with_one_fast_factor_per_sample_by_hand():
    alpha, beta = np.array([2.0, 2.0, 0.0]), np.array([2.0, 2.0, 5.0])
    two_scale_decay(alpha, beta, np.array([0, 1]), np.array([4.0, 2.0]), np.array([4.0, 4.0]), np.array([0.9, 0.5]), 0.8)
    # sample 0: 0.9 * 2 + 4, 0.9 * 2 + 0; sample 1: 0.5 * 2 + 2 twice; sample 2 unselected: 0.8 * (0, 5)
    np.testing.assert_allclose(alpha, [5.8, 3.0, 0.0])
    np.testing.assert_allclose(beta, [1.8, 3.0, 4.0])


def _state(variant):
    state = VADEState(3, l1=0.5, l2=0.9, score="infogain", selection="thompson", seed=0, variant=variant)
    state.alpha[:] = [2.0, 2.0, 0.0]
    state.beta[:] = [2.0, 2.0, 5.0]
    return state


def test_eig_update_and_selection_by_hand():
    # Sample 0 all right (constant group: slow factor 0.9), sample 1 half right (informative: 0.5).
    positions = np.repeat([0, 1], 4)
    rewards = np.array([1, 1, 1, 1, 1, 0, 1, 0], dtype=float)
    eig = _state("eig")
    eig.update(positions, rewards)
    np.testing.assert_allclose(eig.alpha, [0.9 * 2 + 4, 0.5 * 2 + 2, 0.0])
    np.testing.assert_allclose(eig.beta, [0.9 * 2, 0.5 * 2 + 2, 0.9 * 5])
    paper = _state("paper")
    paper.update(positions, rewards)
    np.testing.assert_allclose(paper.alpha, [0.5 * 2 + 4, 0.5 * 2 + 2, 0.0])
    # Expected InfoGain now: sample 0 Beta(6.8, 2.8) -> 6.8*2.8*3.8/(9.6*10.6*11.6) = 0.0613;
    # sample 1 Beta(4, 4) -> 4*4*5/(8*9*10) = 0.1111; sample 2 Beta(1, 5.5) -> 5.5*6.5/(6.5*7.5*8.5) = 0.0863.
    assert eig.select(2).tolist() == [1, 2]
    assert eig.select(3).tolist() == [1, 2, 0]  # deterministic: no Thompson draw


def test_eig_keeps_evidence_on_an_always_wrong_sample_where_the_paper_caps_it():
    # 30 steps of 8 wrong rollouts: the paper's l1 = 0.2 caps beta at 8 / (1 - 0.2) = 10 rollouts,
    # "eig" accumulates 8 * (1 - 0.999^30) / (1 - 0.999) = 236.5 of them.
    states = {v: VADEState(1, l1=0.2, l2=0.999, score="infogain", selection="thompson", seed=0, variant=v) for v in ("paper", "eig")}
    for _ in range(30):
        for state in states.values():
            state.update(np.zeros(8, dtype=np.int64), np.zeros(8))
    assert states["paper"].beta[0] == pytest.approx(8 * (1 - 0.2**30) / (1 - 0.2))
    assert states["eig"].beta[0] == pytest.approx(8 * (1 - 0.999**30) / (1 - 0.999))


def test_variant_option_is_validated_and_named():
    assert VADEConfig.from_mapping(None).variant == "paper"
    assert VADEConfig.from_mapping({"variant": "eig"}).variant == "eig"
    with pytest.raises(ValueError, match=r"data\.sampler\.vade\.variant='bayes'"):
        VADEConfig.from_mapping({"variant": "bayes"})
    with pytest.raises(ValueError, match=r"data\.sampler\.vade\.variant='eig'.*selection"):
        VADEConfig.from_mapping({"variant": "eig", "selection": "greedy"})
    with pytest.raises(ValueError, match="unknown VADE variant"):
        VADEState(3, l1=0.2, l2=0.999, score="infogain", selection="thompson", seed=0, variant="bayes")


class _Rows:
    """What ``VADESampler`` reads from verl's ``RLHFDataset``: ``dataframe`` with ``extra_info.index``."""

    def __init__(self, ids):
        self.dataframe = pd.DataFrame({"extra_info": [{"index": i} for i in ids]})

    def __len__(self):
        return len(self.dataframe)


def test_sampler_option_reaches_the_state_and_its_update():
    import torch

    from vade_verl.vade.sampler import VADESampler
    from vade_verl.verl_adapters.batch import build_rollout_batch

    data_config = OmegaConf.create({"train_batch_size": 2, "seed": 0, "sampler": {"vade": {"variant": "eig", "l1": 0.5, "l2": 0.9}}})
    sampler = VADESampler(data_source=_Rows([10, 11, 12, 13]), data_config=data_config)
    assert sampler.state.variant == "eig"
    # Row ids 11 (all right, twice: slow factor 0.9) and 13 (mixed, twice: fast factor 0.5), 4 rollouts each.
    for _ in range(2):
        batch = build_rollout_batch(
            {"input_ids": torch.zeros(2, 1, dtype=torch.long), "extra_info": np.array([{"index": 11}, {"index": 13}], dtype=object)},
            4,
            np.array([1, 1, 1, 1, 0, 1, 0, 0], dtype=float),
        )
        sampler.update(batch=batch)
    # 11: alpha 0.9 * 4 + 4 = 7.6 (the paper's l1 would give 0.5 * 4 + 4 = 6); 13: 0.5 * (1, 3) + (1, 3).
    np.testing.assert_allclose(sampler.state.alpha, [0.0, 7.6, 0.0, 1.5])
    np.testing.assert_allclose(sampler.state.beta, [0.0, 0.0, 0.0, 4.5])
    default = VADESampler(data_source=_Rows([10, 11]), data_config=OmegaConf.create({"train_batch_size": 1}))
    assert default.state.variant == "paper"
