"""The verl batch parsed once (vade_verl.verl_adapters.batch): a DataProto laid out as RayPPOTrainer.fit hands
it to ``sampler.update`` becomes one ``Rollouts`` record, checked once, with errors naming what is missing."""

import numpy as np
import pytest
import torch

from vade_verl.verl_adapters.batch import Rollouts, build_rollout_batch, parse_rollouts


def batch_of(row_ids, rewards, rollout_n=2, variants=None):
    infos = [{"index": int(i), **({"diva_variant": variants[k]} if variants else {})} for k, i in enumerate(row_ids)]
    batch_dict = {"extra_info": np.array(infos, dtype=object), "dummy": torch.zeros(len(row_ids), 1)}
    return build_rollout_batch(batch_dict, rollout_n, np.asarray(rewards, dtype=np.float32))


def test_a_batch_becomes_one_record_of_plain_arrays():
    batch = batch_of([7, 3], [1.0, 0.0, 0.5, float("nan")])
    batch.non_tensor_batch["acc"] = np.array([True, False, None, True], dtype=object)
    record = parse_rollouts(batch, extras=("acc", "absent"))
    assert record.row_ids.tolist() == [7, 7, 3, 3]  # repeat(interleave=True): rollouts of a prompt together
    assert record.scores[:3].tolist() == [1.0, 0.0, 0.5] and np.isnan(record.scores[3])
    assert record.group_keys[0] == record.group_keys[1] != record.group_keys[2] == record.group_keys[3]
    assert record.is_evidence.all() and len(record) == 4
    assert list(record.reward_extras) == ["acc"]  # an extra the batch does not have is left out
    acc = record.reward_extras["acc"]
    assert acc[[0, 1, 3]].tolist() == [1.0, 0.0, 1.0] and np.isnan(acc[2])  # None is read as NaN


def test_the_score_is_summed_over_the_response_without_the_mask():
    batch = batch_of([1], [0.0, 0.0])
    batch.batch["token_level_scores"][0, -1] = 1.0
    batch.batch["token_level_scores"][1, 0] = 0.25
    batch.batch["response_mask"][0, -1] = 0  # verl's GRPO sums without the mask (core_algos.py:304)
    assert parse_rollouts(batch).scores.tolist() == [1.0, 0.25]


def test_diva_variant_rows_are_not_evidence():
    record = parse_rollouts(batch_of([4, 4], [1, 0, 1, 1], variants=["original", "hard_image"]))
    assert record.is_evidence.tolist() == [True, True, False, False]


def test_what_is_missing_is_named():
    batch = batch_of([1], [1.0, 0.0])
    no_uid = batch_of([1], [1.0, 0.0])
    del no_uid.non_tensor_batch["uid"]
    with pytest.raises(ValueError, match="no non_tensor 'uid' field"):
        parse_rollouts(no_uid)
    with pytest.raises(ValueError, match="no tensor 'rm_scores'"):
        parse_rollouts(batch, score_key="rm_scores")
    batch.non_tensor_batch["extra_info"] = np.array([{"index": 1}, {}], dtype=object)
    with pytest.raises(ValueError, match=r"1 of 2 rows of the batch have no extra_info.index"):
        parse_rollouts(batch)
    text = batch_of([1], [1.0, 0.0])
    text.non_tensor_batch["acc"] = np.array(["yes", "no"], dtype=object)
    with pytest.raises(ValueError, match="extra output 'acc' is not numeric"):
        parse_rollouts(text, extras=("acc",))


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match=r"2 row ids, but \{'scores': 3\}"):
        Rollouts.from_columns(["a", "a"], [{"index": 0}, {"index": 0}], [1.0, 0.0, 1.0])
    record = Rollouts.from_columns(["a", "b"], [{"index": 5}, {"index": 6}], [1.0, 0.0], {"acc": [None, 1]})
    assert record.row_ids.tolist() == [5, 6] and np.isnan(record.reward_extras["acc"][0])
