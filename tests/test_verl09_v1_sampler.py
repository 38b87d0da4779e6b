"""The V1 samplers (``VADEV1Sampler``, ``MoPPSV1Sampler``, ``GRESOV1Sampler``) on their own (runs under any verl):
selection blocks, staleness stamps, mid-block resume.

The loader is torchdata's ``StatefulDataLoader`` with one prompt per fetch, as verl 0.9's async V1
trainers build it (``data.gen_batch_size`` forced to 1); tests/test_verl09_v1.py runs the sampler in
verl's V1 training loop.
"""

import io
import itertools

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torchdata.stateful_dataloader import StatefulDataLoader

from vade_verl.greso.sampler import GRESOSampler
from vade_verl.mopps.sampler import MoPPSSampler
from vade_verl.vade.sampler import VADESampler
from vade_verl.verl09.v1_sampler import GRESOV1Sampler, MoPPSV1Sampler, VADEV1Sampler
from vade_verl.verl_adapters.batch import Rollouts

N, BATCH, ROLLOUT_N = 12, 4, 2
ROWS = [{"extra_info": {"index": 100 + i}} for i in range(N)]


def data_config(gen_batch_size=1):
    return OmegaConf.create({"train_batch_size": BATCH, "gen_batch_size": gen_batch_size, "seed": 3})


UIDS = itertools.count()


def loader(sampler):
    """verl's V1 train loader shape: StatefulDataLoader, ``gen_batch_size`` 1, no workers."""
    return StatefulDataLoader(ROWS, batch_size=1, sampler=sampler, num_workers=0, drop_last=True, collate_fn=lambda rows: rows)


def endless(train_loader):
    """V1's ``_fetch_one_gen_batch``: a new pass over the loader when one ends."""
    while True:
        yield from train_loader


def fetch(sampler, fetches, count):
    """``count`` one-prompt fetches, each claimed under a fresh uid as ``_fetch_one_gen_batch`` does."""
    rows = []
    for _ in range(count):
        (row,) = next(fetches)
        sampler.claim([f"u{next(UIDS)}"])
        rows.append(row["extra_info"]["index"])
    return rows


def groups(uids_and_rows):
    """One group of ``ROLLOUT_N`` correct rollouts per (uid, row id)."""
    uids_and_rows = list(uids_and_rows)
    uids = [uid for uid, _ in uids_and_rows for _ in range(ROLLOUT_N)]
    infos = [{"index": row} for _, row in uids_and_rows for _ in range(ROLLOUT_N)]
    return Rollouts.from_columns(uids, infos, [1.0] * len(uids))


# (V1 sampler, its verl 0.7.1 sampler): the same selection
PAIRS = [(VADEV1Sampler, VADESampler), (MoPPSV1Sampler, MoPPSSampler), (GRESOV1Sampler, GRESOSampler)]
V1_CLASSES = [v1 for v1, _ in PAIRS]


@pytest.mark.parametrize("v1_class, legacy_class", PAIRS)
def test_one_prompt_per_fetch_still_selects_a_training_batch_per_draw(v1_class, legacy_class):
    """With ``gen_batch_size=1`` the draws are those of the 0.7.1 sampler at block ``train_batch_size``."""
    v1 = v1_class(ROWS, data_config(gen_batch_size=1))
    reference = legacy_class(ROWS, data_config(gen_batch_size=None))
    fetches = endless(loader(v1))
    first = [next(fetches)[0]["extra_info"]["index"] for _ in range(BATCH)]
    assert len(set(first)) == BATCH and v1.state.num_selections == 1
    next(fetches)
    assert v1.state.num_selections == 2
    assert first == [100 + p for p in itertools.islice(iter(reference), BATCH)]


@pytest.mark.parametrize("v1_class", V1_CLASSES)
def test_staleness_counts_the_steps_fed_after_the_block_was_drawn(v1_class):
    """Hand-worked: block 1 drawn before any feedback (stamp 0), block 2 after step 1's (stamp 1)."""
    sampler = v1_class(ROWS, data_config())
    metric = f"{sampler.name}/evidence_staleness_steps"
    fetches = endless(loader(sampler))
    first = fetch(sampler, fetches, 3)  # 3 of block 1
    uids = list(sampler._uid_stamps)
    assert sampler.feed(groups(zip(uids, first)), 1, uids, live_uids=set())[metric] == 0.0  # (1-1)-0
    rest = fetch(sampler, fetches, 1 + BATCH)  # block 1's last prompt, then block 2
    uids = list(sampler._uid_stamps)
    trained = list(zip(uids[:3], rest[:3]))  # block 1's last (stamp 0) and two of block 2 (stamp 1)
    metrics = sampler.feed(groups(trained), 3, [uid for uid, _ in trained], live_uids={uids[3]})
    assert metrics[metric] == pytest.approx((2 + 1 + 1) / 3)  # (3-1)-0, (3-1)-1, (3-1)-1
    assert metrics[f"{metric}_max"] == 2.0 and metrics[f"{sampler.name}/evidence_unrecorded_groups"] == 0
    # uids[4] was neither trained nor live (evicted): its stamp is gone; uids[3] is still in flight
    assert list(sampler._uid_stamps) == [uids[3]]
    metrics = sampler.feed(groups([(uids[4], rest[4])]), 4, [uids[4]], live_uids=set())
    assert metrics[f"{sampler.name}/evidence_unrecorded_groups"] == 1


def assert_same_state(got: dict, want: dict):
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got[key], value, err_msg=key)
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("v1_class", V1_CLASSES)
def test_a_checkpoint_inside_a_block_resumes_with_the_rest_of_it(v1_class):
    """``data.pt`` taken after 6 one-prompt fetches (block 2 half served) resumes on the same prompts."""
    sampler = v1_class(ROWS, data_config())
    train_loader = loader(sampler)
    fetches = endless(train_loader)
    served = fetch(sampler, fetches, BATCH)
    uids = list(sampler._uid_stamps)
    sampler.feed(groups(zip(uids, served)), 1, uids, live_uids=set())
    fetch(sampler, fetches, 2)
    buffer = io.BytesIO()
    torch.save(train_loader.state_dict(), buffer)  # PPOTrainer._save_checkpoint
    uninterrupted = fetch(sampler, fetches, 3 * BATCH)  # crosses the 12-row epoch

    resumed = v1_class(ROWS, data_config())
    resumed_loader = loader(resumed)
    buffer.seek(0)
    resumed_loader.load_state_dict(torch.load(buffer, weights_only=False))  # PPOTrainer._load_checkpoint
    assert fetch(resumed, endless(resumed_loader), 3 * BATCH) == uninterrupted
    assert resumed.evidence_step == 1
    assert_same_state(resumed.state.state_dict(), sampler.state.state_dict())
    assert list(resumed._uid_stamps.values()) == list(sampler._uid_stamps.values())


def test_a_claim_that_does_not_match_the_yielded_prompts_is_refused():
    sampler = VADEV1Sampler(ROWS, data_config())
    fetches = endless(loader(sampler))
    next(fetches)
    with pytest.raises(RuntimeError, match=r"dataloader_num_workers must be 0"):
        sampler.claim(["a", "b"])


@pytest.mark.parametrize("v1_class, legacy_class", PAIRS)
def test_a_legacy_sampler_checkpoint_is_refused(v1_class, legacy_class):
    legacy = legacy_class(ROWS, data_config(gen_batch_size=None))
    with pytest.raises(ValueError, match=rf"not written by {v1_class.__name__}"):
        v1_class(ROWS, data_config()).load_state_dict(legacy.state_dict())


def test_another_methods_v1_checkpoint_is_refused():
    vade = VADEV1Sampler(ROWS, data_config())
    with pytest.raises(ValueError, match=r"no 'greso' entry"):
        GRESOV1Sampler(ROWS, data_config()).load_state_dict(vade.state_dict())
