"""The MoPPS and GRESO selections the verl samplers run (``vade_verl.mopps.algorithm``, ``vade_verl.greso.algorithm``),
against hand-worked examples; their config blocks' defaults against the authors' scripts."""

import numpy as np
import pytest

from vade_verl.greso.algorithm import GRESOParams, GRESOSelector, group_outcomes
from vade_verl.greso.config import GRESOConfig
from vade_verl.mopps.algorithm import MoPPSSelector
from vade_verl.mopps.config import MoPPSConfig
from vade_verl.vade.algorithm import PermutationStream


def test_a_permutation_stream_chunks_drop_the_remainder_and_takes_cross_epochs():
    rng = np.random.default_rng(0)
    stream = PermutationStream(5)
    first, second = stream.chunk(2, rng), stream.chunk(2, rng)
    assert len(set(first) | set(second)) == 4 and stream.epochs == 1
    third = stream.chunk(2, rng)  # one position left: a new epoch, as a loader with drop_last
    assert stream.epochs == 2 and len(set(third)) == 2
    take = PermutationStream(3)
    crossed = take.take(5, rng)
    assert sorted(crossed[:3]) == [0, 1, 2] and take.epochs == 2 and set(crossed[3:]) <= {0, 1, 2}


def test_mopps_update_is_the_authors_decayed_update():
    """Authors' form (``mopps.py:77``): a <- l a + (1 - l) + s; from a = b = 3 (counts 2, 2), l = 0.5, 3 of 4
    correct: a = 1.5 + 0.5 + 3 = 5, b = 1.5 + 0.5 + 1 = 3, i.e. counts alpha = 4, beta = 2."""
    selector = MoPPSSelector(3, candidates=8, decay=0.5, target=0.5, seed=0)
    selector.posteriors.alpha[:] = 2.0
    selector.posteriors.beta[:] = 2.0
    record = selector.update(np.array([1, 1, 1, 1]), np.array([1.0, 1.0, 0.0, 1.0]))
    assert record["positions"].tolist() == [1] and record["successes"].tolist() == [3.0] and record["trials"].tolist() == [4.0]
    assert selector.posteriors.alpha.tolist() == [2.0, 4.0, 2.0] and selector.posteriors.beta.tolist() == [2.0, 2.0, 2.0]
    assert selector.num_updates == 1


def test_mopps_picks_the_candidates_whose_draws_are_nearest_the_target():
    """Counts so large that every draw sits at its mean: p_i = i / 9; target 0.5, whole data set as the pool."""
    n = 10
    selector = MoPPSSelector(n, candidates=8, decay=0.5, target=0.5, seed=1)
    mean = np.arange(n) / (n - 1)
    selector.posteriors.alpha[:] = 1e9 * mean
    selector.posteriors.beta[:] = 1e9 * (1 - mean)
    assert sorted(selector.select(4).tolist()) == [3, 4, 5, 6]  # |i/9 - 0.5| smallest
    assert selector.last_pool_size == n and selector.num_selections == 1


def test_mopps_pools_are_consecutive_chunks_of_one_shuffled_pass():
    """candidates=2, B=3: pools of 6 of N=12; two pools cover the data set once, every batch inside its pool."""
    selector = MoPPSSelector(12, candidates=2, decay=0.5, target=0.5, seed=2)
    chosen = [selector.select(3) for _ in range(2)]
    perm = selector.pools.perm
    assert set(chosen[0]) <= set(perm[:6]) and set(chosen[1]) <= set(perm[6:12])


def test_greso_group_outcomes_by_hand():
    """Rows: position 4 all correct, 2 none correct (one NaN skipped), 7 mixed, 9 only NaN (no group)."""
    positions = np.array([4, 4, 2, 2, 2, 7, 7, 9])
    correctness = np.array([1, 1, 0, 0, np.nan, 1, 0, np.nan])
    scores = np.array([1.0, 1.0, 0.1, 0.0, np.nan, 1.0, 0.1, np.nan])  # geo3k-style: 0.1 formatted, wrong
    paper = group_outcomes(positions, correctness, scores, "no_correct")
    assert paper["positions"].tolist() == [2, 4, 7]
    assert paper["all_correct"].tolist() == [False, True, False]
    assert paper["no_correct"].tolist() == [True, False, False] and paper["hard"].tolist() == [True, False, False]
    authors = group_outcomes(positions, correctness, scores, "all_0.1")  # position 2 has a 0 among its scores
    assert authors["no_correct"].tolist() == [True, False, False] and authors["hard"].tolist() == [False, False, False]
    only_formatted = group_outcomes(np.array([2, 2]), np.array([0.0, 0.0]), np.array([0.1, 0.1]), "all_0.1")
    assert only_formatted["hard"].tolist() == [True]


def test_greso_never_keeps_a_prompt_whose_keep_probability_is_zero():
    """p_easy = 0 and no floor: prompts 0..4 (easy streak 1) are always skipped, each counted once per look."""
    selector = GRESOSelector(10, GRESOParams(p_easy=0.0, min_keep=0.0), hard_share="no_correct", seed=3)
    selector.streaks.easy_streak[:5] = 1
    chosen = selector.select(5)
    assert sorted(chosen.tolist()) == [5, 6, 7, 8, 9]
    counts = selector.last_selection
    assert counts["skipped_easy"] == counts["examined"] - 5 and counts["skipped_hard"] == 0
    assert counts["examined"] + counts["repeats"] >= 10


def test_greso_adapts_only_after_the_first_epoch():
    """N = 4, B = 2: the first two batches come from epoch 1 (no adaptation), the third from epoch 2.
    Shares: all 2 groups all correct (1 >= 0.25/3: p_easy down), none all wrong (0 < 0.5/3: p_hard up)."""
    selector = GRESOSelector(4, GRESOParams(), hard_share="no_correct", seed=4)
    for expected in ((0.5, 0.5), (0.5, 0.5), (0.49, 0.51)):
        chosen = selector.select(2)
        selector.update(np.repeat(chosen, 2), np.ones(4), np.ones(4))
        assert (selector.streaks.p_easy, selector.streaks.p_hard) == pytest.approx(expected)


def test_greso_selection_resumes_exactly_from_its_state_dict():
    selector = GRESOSelector(20, GRESOParams(), hard_share="no_correct", seed=5)
    rng = np.random.default_rng(6)
    for _ in range(3):
        chosen = selector.select(4)
        selector.update(np.repeat(chosen, 2), (rng.random(8) < 0.5).astype(float), np.zeros(8))
    copy = GRESOSelector(20, GRESOParams(), hard_share="no_correct", seed=99)
    copy.load_state_dict(selector.state_dict())
    assert [copy.select(4).tolist() for _ in range(5)] == [selector.select(4).tolist() for _ in range(5)]


def test_the_config_defaults_are_the_authors():
    """MoPPS: geo3k script ts_ratio=8, bandit_decay_ratio=0.5, target 0.5; GRESO: p 0.5 / 0.5, target 0.25,
    step 0.01 in [0.05, 0.95], floor 0.01 (module docstrings cite the files)."""
    mopps = MoPPSConfig.from_mapping(None)
    assert (mopps.candidates, mopps.decay, mopps.target, mopps.correctness, mopps.resume) == (8, 0.5, 0.5, "auto", "exact")
    greso = GRESOConfig.from_mapping({}).params()
    assert greso == GRESOParams(p_easy=0.5, p_hard=0.5, target_zero_variance=0.25, step=0.01, p_min=0.05, p_max=0.95, min_keep=0.01)
    with pytest.raises(ValueError, match=r"data\.sampler\.greso\.easy_p"):
        GRESOConfig.from_mapping({"easy_p": 0.5})
