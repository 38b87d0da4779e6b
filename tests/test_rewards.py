"""The shared correctness rule, checked against verl 0.7.1's own scorers where they run here."""

import numpy as np
import pytest

from vade_verl.verl_adapters.rewards import CorrectnessRule, as_correctness

KEY = "data.sampler.vade.correctness"


def test_auto_reads_every_builtin_scorer_as_its_accuracy():
    # geo3k {0, 0.1, 0.9, 1}: correct iff the 0.9 accuracy part is present
    geo3k = np.array([0.0, 0.1, 0.9, 1.0])
    assert as_correctness(geo3k, CorrectnessRule(), KEY).tolist() == [0, 0, 1, 1]
    # math_dapo +-1
    assert as_correctness([-1.0, 1.0, 1.0], CorrectnessRule(), KEY).tolist() == [0, 1, 1]
    # float32 round trip of 0.9 (verl stores scores in float32 tensors)
    assert as_correctness(np.float32([0.9, 0.1]), CorrectnessRule(), KEY).tolist() == [1, 0]


def test_auto_agrees_with_verl_geo3k_scorer():
    geo3k = pytest.importorskip("verl.utils.reward_score.geo3k")
    pytest.importorskip("mathruler")
    answers = {
        "<think>x</think> \\boxed{3}": 1,  # right + formatted
        "\\boxed{3}": 1,  # right, no think block
        "<think>x</think> \\boxed{4}": 0,  # wrong + formatted
        "4": 0,
    }
    scores = [geo3k.compute_score(text, "3") for text in answers]
    accs = [geo3k.acc_reward(text, "3") for text in answers]
    assert as_correctness(scores, CorrectnessRule(), KEY).tolist() == accs == list(answers.values())


def test_nan_is_kept_and_not_counted_as_wrong():
    out = as_correctness([np.nan, 1.0], CorrectnessRule(), KEY)
    assert np.isnan(out[0]) and out[1] == 1.0


@pytest.mark.parametrize("odd", [0.5, 0.37, -0.002, 1.2, -1.3])
def test_auto_refuses_scores_it_cannot_interpret_naming_the_option(odd):
    with pytest.raises(ValueError, match=KEY.replace(".", r"\.")):
        as_correctness([1.0, odd], CorrectnessRule(), KEY)


def test_threshold_and_fractional():
    rule = CorrectnessRule.parse(0.3, KEY)
    assert as_correctness([0.2, 0.31, -1.0, 5.0], rule, KEY).tolist() == [0, 1, 0, 1]
    frac = CorrectnessRule.parse("fractional", KEY)
    assert as_correctness([0.25, 1.0], frac, KEY).tolist() == [0.25, 1.0]
    with pytest.raises(ValueError, match="fractional needs rewards in"):
        as_correctness([1.5], frac, KEY)


def test_infinite_reward_is_an_error():
    with pytest.raises(ValueError, match="infinite reward"):
        as_correctness([np.inf], CorrectnessRule(), KEY)


@pytest.mark.parametrize("bad", ["sometimes", True, float("nan"), [0.5]])
def test_parse_names_the_key(bad):
    with pytest.raises(ValueError, match=KEY.replace(".", r"\.")):
        CorrectnessRule.parse(bad, KEY)


def test_parse_defaults_to_auto():
    assert CorrectnessRule.parse(None, KEY) == CorrectnessRule.parse("auto", KEY) == CorrectnessRule("auto")
