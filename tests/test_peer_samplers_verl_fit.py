"""MoPPSSampler and GRESOSampler inside verl 0.7.1's real ``RayPPOTrainer.fit`` (and ``SeparateRayPPOTrainer.fit``).

As tests/test_vade_verl_fit.py: only the model, the rollout and the workers are stubbed
(``tests/verl_harness.py``); the trainer, loader, checkpoint save/load, GRPO and file logger are verl's.
The expected posteriors, streaks and exploration probabilities are worked out here from the rewards
the stub handed verl, with the authors' rules written out (MoPPS ``mopps.py:77-78``; GRESO
``presampling_selector.py`` and ``ray_trainer.py:1203-1219``), not by calling the packages' math.
"""

import numpy as np
import pytest

from verl.experimental.separation.ray_trainer import SeparateRayPPOTrainer
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
import verl_harness
from verl_harness import (
    GRESO_SAMPLER,
    MOPPS_SAMPLER,
    VADE_SAMPLER,
    compose_config,
    fit_overrides,
    logged_steps,
    make_train_loader,
    run_fit,
    write_parquet,
)
from vade_verl.verl_adapters.batch import build_rollout_batch

N, BATCH, ROLLOUT_N = 24, 4, 4  # 6 batches per epoch
ROW_IDS = np.random.default_rng(5).permutation(np.arange(700, 700 + N))
# A third impossible, a third trivial, a third at 50%.
RATES = {int(rid): (0.0, 1.0, 0.5)[k % 3] for k, rid in enumerate(sorted(ROW_IDS))}
SAMPLERS = {"mopps": MOPPS_SAMPLER, "greso": GRESO_SAMPLER}
TOTAL = 14  # into the third epoch: GRESO adapts its probabilities from the second on


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return write_parquet(str(tmp_path_factory.mktemp("data") / "train.parquet"), ROW_IDS)


correct_of = verl_harness.rate_correctness(RATES)


def binary_scores(ids, step):
    return {"score": correct_of(ids, step)}


def config_for(name, train_file, run_dir, total_steps, save_freq=-1, extra=()):
    overrides = [*SAMPLERS[name], *fit_overrides(ROLLOUT_N, total_steps, save_freq), *extra]
    return compose_config(train_file, BATCH, str(run_dir), overrides)


def selections(stub):
    """{step: the step's prompt ids in loader order} (rows are repeated rollout.n times, interleaved)."""
    return {step: ids[::ROLLOUT_N].tolist() for step, ids, _ in stub.calls}


def groups_by_step(stub):
    """{step: {row id: the step's 0/1 scores of that row}}."""
    out = {}
    for step, ids, scores in stub.calls:
        out[step] = {int(rid): scores[ids == rid] for rid in np.unique(ids)}
    return out


def mopps_posteriors_by_hand(stub, decay=0.5):
    """{row id: (alpha, beta)}: the authors' ``a <- l a + (1 - l) + s``, ``b <- l b + (1 - l) + (n - s)`` from
    ``Beta(1, 1)`` for each rolled-out row, others untouched; in counts ``alpha = a - 1``, ``beta = b - 1``."""
    a = {rid: 1.0 for rid in ROW_IDS.tolist()}
    b = dict(a)
    for groups in groups_by_step(stub).values():
        for rid, scores in groups.items():
            s = scores.sum()
            a[rid] = decay * a[rid] + (1 - decay) * 1.0 + s
            b[rid] = decay * b[rid] + (1 - decay) * 1.0 + (scores.size - s)
    return {rid: (a[rid] - 1.0, b[rid] - 1.0) for rid in a}


def greso_by_hand(stub, logged, p_start=0.5, target=0.25):
    """Streaks per row and (p_easy, p_hard) per step, from the rewards and the logged candidate counts.

    A step's batch was drawn in epoch ``ceil(candidates drawn so far / N)``; from the second epoch on the
    probabilities move by 0.01 within [0.05, 0.95]: down when the step's all-correct share reached
    target / 3 (p_easy) or its all-wrong share 2 target / 3 (p_hard), else up.
    """
    easy = {rid: 0 for rid in ROW_IDS.tolist()}
    hard = dict(easy)
    p_easy = p_hard = p_start
    drawn = 0
    probabilities = {}
    for step, groups in sorted(groups_by_step(stub).items()):
        drawn += logged[step]["greso/candidates_examined"] + logged[step]["greso/epoch_boundary_repeats"]
        all_correct = {rid for rid, s in groups.items() if s.min() == 1.0}
        all_wrong = {rid for rid, s in groups.items() if s.max() == 0.0}
        for rid in groups:
            easy[rid] = easy[rid] + 1 if rid in all_correct else 0
            hard[rid] = hard[rid] + 1 if rid in all_wrong else 0
        if -(-drawn // N) > 1:
            p_easy = max(p_easy - 0.01, 0.05) if len(all_correct) / len(groups) >= target / 3 else min(p_easy + 0.01, 0.95)
            p_hard = max(p_hard - 0.01, 0.05) if len(all_wrong) / len(groups) >= 2 * target / 3 else min(p_hard + 0.01, 0.95)
        probabilities[step] = (p_easy, p_hard)
    return easy, hard, probabilities


@pytest.fixture(scope="module", params=sorted(SAMPLERS))
def reference(request, train_file, tmp_path_factory):
    """An uninterrupted run of each sampler (RayPPOTrainer.fit, a checkpoint every 3 steps)."""
    name = request.param
    monkeypatch = pytest.MonkeyPatch()
    run_dir = tmp_path_factory.mktemp(f"reference_{name}")
    log = run_dir / "log.jsonl"
    trainer, stub = run_fit(monkeypatch, config_for(name, train_file, run_dir, TOTAL, save_freq=3), log, binary_scores)
    monkeypatch.undo()
    return name, trainer.train_dataloader.sampler, stub, logged_steps(str(log))


def test_each_step_rolls_out_one_batch_of_distinct_prompts(reference):
    _, _, stub, _ = reference
    chosen = selections(stub)
    assert sorted(chosen) == list(range(1, TOTAL + 1))
    assert all(len(ids) == len(set(ids)) == BATCH for ids in chosen.values())


def test_mopps_posteriors_follow_the_authors_update(reference):
    name, sampler, stub, _ = reference
    if name != "mopps":
        pytest.skip("MoPPS only")
    for rid, (alpha, beta) in mopps_posteriors_by_hand(stub).items():
        (position,) = sampler.positions_of([rid])
        assert sampler.state.posteriors.alpha[position] == pytest.approx(alpha, abs=1e-12)
        assert sampler.state.posteriors.beta[position] == pytest.approx(beta, abs=1e-12)


def test_mopps_batches_come_from_pools_of_eight_batches_of_one_shuffled_pass(reference):
    """candidates=8 x B=4 = 32 > N = 24: the pool is the whole data set, a fresh permutation each step."""
    name, _, _, logged = reference
    if name != "mopps":
        pytest.skip("MoPPS only")
    assert all(logged[step]["mopps/candidate_pool"] == N for step in logged)


def test_greso_streaks_and_probabilities_follow_the_authors_rules(reference):
    name, sampler, stub, logged = reference
    if name != "greso":
        pytest.skip("GRESO only")
    easy, hard, probabilities = greso_by_hand(stub, logged)
    for rid in ROW_IDS.tolist():
        (position,) = sampler.positions_of([rid])
        assert (sampler.state.streaks.easy_streak[position], sampler.state.streaks.hard_streak[position]) == (easy[rid], hard[rid])
    for step, (p_easy, p_hard) in probabilities.items():
        assert (logged[step]["greso/p_easy"], logged[step]["greso/p_hard"]) == pytest.approx((p_easy, p_hard), abs=1e-12)
    assert probabilities[TOTAL] != (0.5, 0.5)  # the run reached the epochs where GRESO adapts
    for step, metrics in logged.items():  # every examined candidate was either kept or skipped
        assert metrics["greso/candidates_examined"] == BATCH + metrics["greso/skipped_easy"] + metrics["greso/skipped_hard"]
    assert sum(m["greso/skipped_easy"] + m["greso/skipped_hard"] for m in logged.values()) > 0


def test_greso_never_skips_before_a_prompt_has_a_streak(reference):
    """In the first steps no prompt has a group yet, so every candidate is kept."""
    name, _, _, logged = reference
    if name != "greso":
        pytest.skip("GRESO only")
    assert logged[1]["greso/candidates_examined"] == BATCH and logged[1]["greso/skipped_easy"] == logged[1]["greso/skipped_hard"] == 0


def test_metrics_reach_verls_logger_every_step(reference):
    name, _, stub, logged = reference
    assert sorted(logged) == list(range(1, TOTAL + 1))
    for step, ids, scores in stub.calls:
        groups = scores.reshape(BATCH, ROLLOUT_N)
        metrics = logged[step]
        assert metrics[f"{name}/effective_ratio"] == pytest.approx(np.mean(groups.min(1) < groups.max(1)))
        assert metrics[f"{name}/updated_samples"] == BATCH
        assert metrics[f"{name}/skipped_rewards"] == 0


@pytest.mark.parametrize(
    "name, trainer_class, crash_at",
    [
        ("mopps", RayPPOTrainer, 3),
        ("mopps", SeparateRayPPOTrainer, 6),  # the last batch of an epoch
        ("greso", RayPPOTrainer, 9),  # in the second epoch, where the probabilities adapt
        ("greso", SeparateRayPPOTrainer, 3),
    ],
)
def test_a_stop_between_the_save_and_the_update_resumes_exactly(train_file, tmp_path, monkeypatch, name, trainer_class, crash_at):
    run_dir = tmp_path / "reference"
    _, stub = run_fit(monkeypatch, config_for(name, train_file, run_dir, TOTAL), tmp_path / "reference.jsonl", binary_scores, trainer_class=trainer_class)
    expected = selections(stub)

    run_dir = tmp_path / "run"
    config = config_for(name, train_file, run_dir, TOTAL, save_freq=3)
    _, crashed = run_fit(monkeypatch, config, tmp_path / "crashed.jsonl", binary_scores, trainer_class=trainer_class, crash_at=crash_at)
    assert (run_dir / f"global_step_{crash_at}" / "data.pt").exists()
    assert selections(crashed) == {step: expected[step] for step in range(1, crash_at + 1)}
    resumed, stub = run_fit(monkeypatch, config, tmp_path / "resumed.jsonl", binary_scores, trainer_class=trainer_class)
    assert selections(stub) == {step: expected[step] for step in range(crash_at + 1, TOTAL + 1)}
    assert (run_dir / f"{name}_sampler" / f"update_{TOTAL:08d}.npz").exists()


def batch_ids(batch_dict):
    return [info["index"] for info in batch_dict["extra_info"]]


def feed(sampler, batch_dict, step):
    """``update`` with the batch's rollouts as ``fit`` hands them over (Bernoulli(RATES) rewards of ``step``)."""
    ids = np.repeat(batch_ids(batch_dict), ROLLOUT_N)
    sampler.update(build_rollout_batch(batch_dict, ROLLOUT_N, correct_of(ids, step)))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_a_checkpoint_saved_without_its_update_resumes_from_the_update_record(train_file, tmp_path, name):
    """Another trainer's order: the loader state taken with update 2 pending and no trainer step on the stack
    is completed from ``<run>/<method>_sampler/update_00000002.npz``; the next batches are the uninterrupted ones."""
    config = config_for(name, train_file, tmp_path, TOTAL)
    loader = make_train_loader(config)
    batches = iter(loader)
    feed(loader.sampler, next(batches), 1)
    second = next(batches)
    pending_state = loader.state_dict()
    feed(loader.sampler, second, 2)
    expected = [batch_ids(next(batches)) for _ in range(2)]

    restored = make_train_loader(config)
    restored.load_state_dict(pending_state)
    resumed = iter(restored)  # the loader hands its sampler the state here
    assert restored.sampler.state.num_updates == 2
    assert [batch_ids(next(resumed)) for _ in range(2)] == expected


@pytest.mark.parametrize(
    "override, message",
    [
        ("+data.sampler.mopps.decya=0.5", r"unknown option\(s\) data\.sampler\.mopps\.decya"),
        ("+data.sampler.mopps.candidates=0", r"data\.sampler\.mopps\.candidates=0: must be an integer >= 1"),
        ("+data.sampler.mopps.target=1.5", r"data\.sampler\.mopps\.target=1\.5: must be a number in \[0, 1\]"),
        ("+data.sampler.mopps.correctness=binary", r"data\.sampler\.mopps\.correctness='binary'"),
        ("+data.sampler.greso.p_easy=2", r"data\.sampler\.greso\.p_easy=2: must be a number in \[0, 1\]"),
        ("+data.sampler.greso.hard_share=format", r"data\.sampler\.greso\.hard_share='format': must be one of"),
        ("+data.sampler.greso.p_min=0.96", r"data\.sampler\.greso\.p_min=0\.96: must not exceed data\.sampler\.greso\.p_max"),
        ("+data.sampler.greso.resume=never", r"data\.sampler\.greso\.resume='never'"),
        ("+data.sampler.greso.min_keep=0", r"data\.sampler\.greso\.min_keep=0: must be above 0"),
    ],
)
def test_a_wrong_option_is_refused_at_start_with_its_full_key(train_file, tmp_path, override, message):
    name = override.split(".")[2]
    with pytest.raises(ValueError, match=message):
        make_train_loader(config_for(name, train_file, tmp_path, 1, extra=[override]))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_a_reward_auto_cannot_read_fails_at_the_first_update_naming_the_option(train_file, tmp_path, monkeypatch, name):
    log = tmp_path / "log.jsonl"
    config = config_for(name, train_file, tmp_path, 3, save_freq=2)
    with pytest.raises(ValueError, match=rf"data\.sampler\.{name}\.correctness=auto .*\[0\.75\]"):
        run_fit(monkeypatch, config, log, lambda ids, step: {"score": np.full(ids.size, 0.75)})
    assert logged_steps(str(log)) == {}  # step 1 did not complete
    assert not (tmp_path / "global_step_2").exists()


def test_a_checkpoint_of_another_sampler_is_refused(train_file, tmp_path, monkeypatch):
    vade = compose_config(train_file, BATCH, str(tmp_path), [*VADE_SAMPLER, *fit_overrides(ROLLOUT_N, 2, 2)])
    run_fit(monkeypatch, vade, tmp_path / "vade.jsonl", binary_scores)
    with pytest.raises(ValueError, match=r"no 'mopps' entry .*resume a MoPPS run from a MoPPS checkpoint"):
        run_fit(monkeypatch, config_for("mopps", train_file, tmp_path, 3), tmp_path / "mopps.jsonl", binary_scores)
