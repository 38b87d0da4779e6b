"""VADESampler driven through verl 0.7.1's own dataloader path, with trainer-shaped batches.

Here the sampler is fed directly, outside any verl trainer step, as a trainer that saves before the
update without exposing its batch would: the update-record path of resume. Inside verl's real
``RayPPOTrainer.fit`` (metrics publication, resume across a stop): tests/test_vade_verl_fit.py.
"""

import itertools
import logging
import os

import numpy as np
import pandas as pd
import pytest
import torch

from vade_verl.vade.sampler import VADESampler
from vade_verl.verl_adapters.batch import build_rollout_batch
from verl_harness import VADE_SAMPLER, bernoulli_rewards, compose_config, make_train_loader, write_parquet

N, BATCH, ROLLOUT_N = 64, 8, 8
# Row ids are not dataset positions (shuffled, offset): the sampler must map extra_info.index.
ROW_IDS = np.random.default_rng(0).permutation(np.arange(1000, 1000 + N))
# A third impossible, a third trivial, a third at 50%: only the last third gives a learning signal.
RATES = {int(rid): (0.0, 1.0, 0.5)[k % 3] for k, rid in enumerate(sorted(ROW_IDS))}


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return write_parquet(str(tmp_path_factory.mktemp("data") / "train.parquet"), ROW_IDS)


def endless(loader):
    """Batches across epochs, as ``fit``'s epoch loop draws them."""
    while True:
        yield from loader


def batch_ids(batch_dict):
    return np.array([info["index"] for info in batch_dict["extra_info"]])


def feed(sampler, batch):
    """The step's update; returns the metrics the sampler computed (kept in ``last_metrics``)."""
    sampler.update(batch=batch)
    return sampler.last_metrics


def run_steps(batches, sampler, steps, first_step=0):
    """Roll out (Bernoulli from RATES, seeded by step) and feed back; returns ids and metrics."""
    chosen, logged = [], []
    for step, batch_dict in zip(range(first_step, first_step + steps), batches):
        ids = batch_ids(batch_dict)
        rewards = bernoulli_rewards(ids, RATES, ROLLOUT_N, seed=step)
        if sampler is not None:
            logged.append(feed(sampler, build_rollout_batch(batch_dict, ROLLOUT_N, rewards)))
        chosen.append(ids)
    return chosen, logged


def group_effective_ratio(ids):
    """Expected share of informative groups from the known rates (1 - P(all same))."""
    p = np.array([RATES[int(i)] for i in ids])
    return float(np.mean(1 - p**ROLLOUT_N - (1 - p) ** ROLLOUT_N))


def test_verl_builds_our_sampler_and_it_beats_random_sampling(train_file, tmp_path):
    loader = make_train_loader(compose_config(train_file, BATCH, str(tmp_path / "vade"), VADE_SAMPLER))
    sampler = loader.sampler
    assert isinstance(sampler, VADESampler)
    steps = 3 * N // BATCH
    chosen, logged = run_steps(endless(loader), sampler, steps)
    assert all("vade/effective_ratio" in m and "vade/never_seen" in m for m in logged)

    random_loader = make_train_loader(
        compose_config(train_file, BATCH, str(tmp_path / "random"), ["data.shuffle=True", "data.seed=1"])
    )
    assert type(random_loader.sampler).__name__ == "RandomSampler"
    random_chosen, _ = run_steps(endless(random_loader), None, steps)

    late = slice(steps // 2, None)
    vade_eff = np.mean([m["vade/effective_ratio"] for m in logged[late]])
    random_eff = np.mean([group_effective_ratio(ids) for ids in random_chosen[late]])
    assert vade_eff > random_eff + 0.2, (vade_eff, random_eff)  # seeded: 0.64 vs 0.35

    # The posteriors moved toward the known rates for every sample VADE has rolled out.
    mean = (sampler.state.alpha + 1) / (sampler.state.alpha + sampler.state.beta + 2)
    rates = np.array([RATES[int(i)] for i in sampler.row_ids])
    seen = sampler.state.seen
    assert seen.sum() >= N // 2
    assert np.all(np.abs(mean[seen] - rates[seen]) < 0.4)
    assert np.corrcoef(mean[seen], rates[seen])[0, 1] > 0.9


def save_like_verl(loader, path):
    """``RayPPOTrainer._save_checkpoint``: ``torch.save(train_dataloader.state_dict(), data.pt)``."""
    torch.save(loader.state_dict(), path)


@pytest.mark.parametrize("stop_after", [3, N // BATCH])  # mid-epoch and at an epoch boundary
def test_resume_selects_exactly_the_uninterrupted_batches(train_file, tmp_path, stop_after):
    total = stop_after + 4
    reference = make_train_loader(compose_config(train_file, BATCH, str(tmp_path / "ref"), VADE_SAMPLER))
    expected, _ = run_steps(endless(reference), reference.sampler, total)

    config = compose_config(train_file, BATCH, str(tmp_path / "run"), VADE_SAMPLER)
    first = make_train_loader(config)
    batches = endless(first)
    run_steps(batches, first.sampler, stop_after - 1)
    # step `stop_after`: fit saves the checkpoint *before* calling the sampler's update
    last_dict = next(batches)
    ckpt = tmp_path / "data.pt"
    save_like_verl(first, ckpt)
    ids = batch_ids(last_dict)
    rewards = bernoulli_rewards(ids, RATES, ROLLOUT_N, seed=stop_after - 1)
    feed(first.sampler, build_rollout_batch(last_dict, ROLLOUT_N, rewards))

    resumed = make_train_loader(config)
    resumed.load_state_dict(torch.load(ckpt, weights_only=False))
    resumed_ids, _ = run_steps(endless(resumed), resumed.sampler, total - stop_after, first_step=stop_after)
    for step, (got, want) in enumerate(zip(resumed_ids, expected[stop_after:]), start=stop_after + 1):
        assert got.tolist() == want.tolist(), f"step {step} differs after resume"
    np.testing.assert_array_equal(resumed.sampler.state.alpha, reference.sampler.state.alpha)


def pending_checkpoint(loader):
    """The loader's state taken as verl saves it: step's batch selected, its update not yet run."""
    batch_dict = next(iter(loader))
    return loader.state_dict(), batch_dict


def test_resume_without_the_update_record_refuses(train_file, tmp_path):
    config = compose_config(train_file, BATCH, str(tmp_path / "run"), VADE_SAMPLER)
    state, _ = pending_checkpoint(make_train_loader(config))
    resumed = make_train_loader(config)
    resumed.load_state_dict(state)  # torchdata applies it lazily, when iteration starts
    with pytest.raises(RuntimeError, match=r"update_00000001\.npz does not exist.*data\.sampler\.vade\.resume=approximate"):
        next(iter(resumed))


def test_approximate_resume_without_the_record_warns_and_continues(train_file, tmp_path, caplog):
    config = compose_config(train_file, BATCH, str(tmp_path / "run"), [*VADE_SAMPLER, "+data.sampler.vade.resume=approximate"])
    state, _ = pending_checkpoint(make_train_loader(config))
    resumed = make_train_loader(config)
    resumed.load_state_dict(state)
    with caplog.at_level(logging.WARNING, logger="vade_verl.verl_adapters.curriculum_sampler"):
        batch_dict = next(iter(resumed))
    assert "batch 1 was selected and before its rewards reached the sampler" in caplog.text
    # the missing step counts as one without evidence, so the next step's update completes the next checkpoint
    sampler = resumed.sampler
    assert (sampler.state.num_selections, sampler.state.num_updates) == (2, 1) and not sampler.state.alpha.any()
    feed(sampler, build_rollout_batch(batch_dict, ROLLOUT_N, np.ones(BATCH * ROLLOUT_N)))
    assert sampler.state.num_updates == 2 and sampler.state.alpha.sum() == BATCH * ROLLOUT_N


@pytest.mark.parametrize("resume", ["exact", "approximate"])
def test_a_record_of_another_run_is_never_applied(train_file, tmp_path, caplog, resume):
    """An earlier run (other seed) in the same folder left update_00000001.npz; ours stopped before its own."""
    folder = str(tmp_path / "run")
    earlier = make_train_loader(compose_config(train_file, BATCH, folder, [*VADE_SAMPLER, "data.seed=7"]))
    batch_dict = next(iter(earlier))
    feed(earlier.sampler, build_rollout_batch(batch_dict, ROLLOUT_N, np.ones(BATCH * ROLLOUT_N)))
    assert os.path.exists(os.path.join(folder, "vade_sampler", "update_00000001.npz"))

    option = [] if resume == "exact" else [f"+data.sampler.vade.resume={resume}"]  # exact: the default
    config = compose_config(train_file, BATCH, folder, [*VADE_SAMPLER, *option])
    state, _ = pending_checkpoint(make_train_loader(config))
    resumed = make_train_loader(config)
    resumed.load_state_dict(state)
    with caplog.at_level(logging.WARNING, logger="vade_verl.verl_adapters.curriculum_sampler"):
        if resume == "exact":
            with pytest.raises(RuntimeError, match="belongs to another run or another selection"):
                next(iter(resumed))
        else:
            next(iter(resumed))
            assert not resumed.sampler.state.alpha.any() and not resumed.sampler.state.beta.any()
    assert "it is NOT applied" in caplog.text


def test_data_seed_zero_is_the_seed(train_file, tmp_path):
    first = {}
    for seed in (0, 1):
        loader = make_train_loader(compose_config(train_file, BATCH, str(tmp_path), [*VADE_SAMPLER, f"data.seed={seed}"]))
        assert loader.sampler.state.rng.bit_generator.state == np.random.default_rng(seed).bit_generator.state
        first[seed] = batch_ids(next(iter(loader))).tolist()
    assert first[0] != first[1]


def test_two_scale_decay_through_update_by_hand(train_file, tmp_path):
    """The paper's l1 = 0.2, l2 = 0.999 (Sec. 3.3, Fig. 2), worked by hand for three samples."""
    loader = make_train_loader(compose_config(train_file, BATCH, str(tmp_path), VADE_SAMPLER))
    sampler = loader.sampler
    assert (sampler.config.l1, sampler.config.l2) == (0.2, 0.999)
    batch_dict = next(iter(loader))
    chosen, other = batch_ids(batch_dict)[:2], batch_ids(batch_dict)[2]
    unselected = next(int(i) for i in ROW_IDS if int(i) not in batch_ids(batch_dict))
    p_a, p_b, p_u = sampler.positions_of([chosen[0], chosen[1], unselected])
    sampler.state.alpha[[p_a, p_b, p_u]] = [3.0, 0.5, 10.0]
    sampler.state.beta[[p_a, p_b, p_u]] = [1.0, 2.0, 4.0]
    rewards = np.zeros((BATCH, ROLLOUT_N))
    rewards[0] = [1, 1, 0, 1, 0, 0, 0, 1]  # 4 of 8 correct
    rewards[1] = [0, 0, 0, 0, 0, 0, 0, 1]  # 1 of 8 correct
    feed(sampler, build_rollout_batch(batch_dict, ROLLOUT_N, rewards.ravel()))
    # 0.2 * 3 + 4 = 4.6, 0.2 * 1 + 4 = 4.2 | 0.2 * 0.5 + 1 = 1.1, 0.2 * 2 + 7 = 7.4 | 0.999 * 10, 0.999 * 4
    np.testing.assert_allclose(sampler.state.alpha[[p_a, p_b, p_u]], [4.6, 1.1, 9.99])
    np.testing.assert_allclose(sampler.state.beta[[p_a, p_b, p_u]], [4.2, 7.4, 3.996])
    (p_other,) = sampler.positions_of([other])
    assert (sampler.state.alpha[p_other], sampler.state.beta[p_other]) == (0.0, 8.0)


def test_nan_rewards_are_skipped_and_counted(train_file, tmp_path):
    loader = make_train_loader(compose_config(train_file, BATCH, str(tmp_path), VADE_SAMPLER))
    batch_dict = next(iter(loader))
    rewards = np.ones(BATCH * ROLLOUT_N)
    rewards[:ROLLOUT_N] = np.nan  # every rollout of the first prompt
    rewards[ROLLOUT_N] = np.nan  # one rollout of the second
    metrics = feed(loader.sampler, build_rollout_batch(batch_dict, ROLLOUT_N, rewards))
    assert metrics["vade/skipped_rewards"] == ROLLOUT_N + 1
    assert metrics["vade/updated_samples"] == BATCH - 1
    first, second = loader.sampler.positions_of(batch_ids(batch_dict)[:2])
    assert loader.sampler.state.alpha[first] == 0 and not loader.sampler.state.seen[first]
    assert loader.sampler.state.alpha[second] == ROLLOUT_N - 1


def test_config_errors_fail_at_start_naming_the_key(train_file, tmp_path):
    for override, key in [("+data.sampler.vade.l1=1.5", "data.sampler.vade.l1"), ("+data.sampler.vade.lr=0.1", "data.sampler.vade.lr")]:
        with pytest.raises(ValueError, match=key.replace(".", r"\.")):
            make_train_loader(compose_config(train_file, BATCH, str(tmp_path), [*VADE_SAMPLER, override]))


def test_missing_row_index_names_the_field_to_add(tmp_path):
    path = str(tmp_path / "noindex.parquet")
    write_parquet(path, range(16))
    frame = pd.read_parquet(path)
    frame["extra_info"] = [{"split": "train"}] * len(frame)
    frame.to_parquet(path)
    with pytest.raises(ValueError, match=r"extra_info\.index"):
        make_train_loader(compose_config(path, 4, str(tmp_path), VADE_SAMPLER))


def test_disabled_vade_is_uniform_random_with_the_same_metrics(train_file, tmp_path):
    config = compose_config(train_file, BATCH, str(tmp_path), [*VADE_SAMPLER, "+data.sampler.vade.enable=False"])
    loader = make_train_loader(config)
    chosen, logged = run_steps(endless(loader), loader.sampler, N // BATCH)
    assert sorted(itertools.chain.from_iterable(c.tolist() for c in chosen)) == sorted(ROW_IDS.tolist())
    assert all("vade/effective_ratio" in m for m in logged)
    assert os.path.exists(tmp_path / "vade_sampler" / "update_00000001.npz")


def test_diva_variant_rows_are_not_evidence_for_their_problem(train_file, tmp_path):
    loader = make_train_loader(compose_config(train_file, BATCH, str(tmp_path), VADE_SAMPLER))
    batch_dict = next(iter(loader))
    first = batch_dict["extra_info"][0]
    batch_dict["extra_info"][0] = {**first, "diva_variant": "gaussian_noise"}
    metrics = feed(loader.sampler, build_rollout_batch(batch_dict, ROLLOUT_N, np.ones(BATCH * ROLLOUT_N)))
    assert metrics["vade/variant_rollouts_ignored"] == ROLLOUT_N
    assert metrics["vade/updated_samples"] == BATCH - 1
    (position,) = loader.sampler.positions_of([first["index"]])
    assert loader.sampler.state.alpha[position] == 0 and not loader.sampler.state.seen[position]
