"""``VADEV1Sampler`` on its own (runs under any verl): selection blocks, staleness stamps, mid-block resume.

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

from vade_verl.vade.sampler import VADESampler
from vade_verl.verl09.v1_sampler import STALENESS_METRIC, VADEV1Sampler
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


def test_one_prompt_per_fetch_still_selects_a_training_batch_per_draw():
    """With ``gen_batch_size=1`` the draws are those of the 0.7.1 sampler at block ``train_batch_size``."""
    v1 = VADEV1Sampler(ROWS, data_config(gen_batch_size=1))
    reference = VADESampler(ROWS, data_config(gen_batch_size=None))
    fetches = endless(loader(v1))
    first = [next(fetches)[0]["extra_info"]["index"] for _ in range(BATCH)]
    assert len(set(first)) == BATCH and v1.state.num_selections == 1
    next(fetches)
    assert v1.state.num_selections == 2
    assert first == [100 + p for p in itertools.islice(iter(reference), BATCH)]


def test_staleness_counts_the_steps_fed_after_the_block_was_drawn():
    """Hand-worked: block 1 drawn before any feedback (stamp 0), block 2 after step 1's (stamp 1)."""
    sampler = VADEV1Sampler(ROWS, data_config())
    fetches = endless(loader(sampler))
    first = fetch(sampler, fetches, 3)  # 3 of block 1
    uids = list(sampler._uid_stamps)
    assert sampler.feed(groups(zip(uids, first)), 1, uids, live_uids=set())[STALENESS_METRIC] == 0.0  # (1-1)-0
    rest = fetch(sampler, fetches, 1 + BATCH)  # block 1's last prompt, then block 2
    uids = list(sampler._uid_stamps)
    trained = list(zip(uids[:3], rest[:3]))  # block 1's last (stamp 0) and two of block 2 (stamp 1)
    metrics = sampler.feed(groups(trained), 3, [uid for uid, _ in trained], live_uids={uids[3]})
    assert metrics[STALENESS_METRIC] == pytest.approx((2 + 1 + 1) / 3)  # (3-1)-0, (3-1)-1, (3-1)-1
    assert metrics[f"{STALENESS_METRIC}_max"] == 2.0 and metrics["vade/evidence_unrecorded_groups"] == 0
    # uids[4] was neither trained nor live (evicted): its stamp is gone; uids[3] is still in flight
    assert list(sampler._uid_stamps) == [uids[3]]
    metrics = sampler.feed(groups([(uids[4], rest[4])]), 4, [uids[4]], live_uids=set())
    assert metrics["vade/evidence_unrecorded_groups"] == 1


def test_a_checkpoint_inside_a_block_resumes_with_the_rest_of_it():
    """``data.pt`` taken after 6 one-prompt fetches (block 2 half served) resumes on the same prompts."""
    sampler = VADEV1Sampler(ROWS, data_config())
    train_loader = loader(sampler)
    fetches = endless(train_loader)
    served = fetch(sampler, fetches, BATCH)
    uids = list(sampler._uid_stamps)
    sampler.feed(groups(zip(uids, served)), 1, uids, live_uids=set())
    fetch(sampler, fetches, 2)
    buffer = io.BytesIO()
    torch.save(train_loader.state_dict(), buffer)  # PPOTrainer._save_checkpoint
    uninterrupted = fetch(sampler, fetches, 3 * BATCH)  # crosses the 12-row epoch

    resumed = VADEV1Sampler(ROWS, data_config())
    resumed_loader = loader(resumed)
    buffer.seek(0)
    resumed_loader.load_state_dict(torch.load(buffer, weights_only=False))  # PPOTrainer._load_checkpoint
    assert fetch(resumed, endless(resumed_loader), 3 * BATCH) == uninterrupted
    assert resumed.evidence_step == 1 and np.array_equal(resumed.state.alpha, sampler.state.alpha)
    assert list(resumed._uid_stamps.values()) == list(sampler._uid_stamps.values())


def test_a_claim_that_does_not_match_the_yielded_prompts_is_refused():
    sampler = VADEV1Sampler(ROWS, data_config())
    fetches = endless(loader(sampler))
    next(fetches)
    with pytest.raises(RuntimeError, match=r"dataloader_num_workers must be 0"):
        sampler.claim(["a", "b"])


def test_a_legacy_sampler_checkpoint_is_refused():
    legacy = VADESampler(ROWS, data_config(gen_batch_size=None))
    with pytest.raises(ValueError, match=r"not written by VADEV1Sampler"):
        VADEV1Sampler(ROWS, data_config()).load_state_dict(legacy.state_dict())
