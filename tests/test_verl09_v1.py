"""VADE on verl 0.9's V1 trainer (``vade_verl.verl09.main_ppo_v1``) against verl 0.9.1's real V1 classes.

Runs where verl 0.9.x and TransferQueue are installed (the ``.[verl09]`` extra); skipped elsewhere.
It starts one local Ray with TransferQueue for the module (about 15 s on 2 CPU cores).

What is verl's own code here: ``TaskRunnerV1.run`` (config to trainer, sampler, replay buffer),
``PPOTrainer.__init__``/``_build_replay_buffer``/``_init_dataloader``, and for the training loop
``PPOTrainer.fit``/``step``/``_step_once``/``prepare_step``/``_add_prompts_to_generate``/
``_save_checkpoint``/``_load_checkpoint``, verl's ``ReplayBuffer``/``ReplayBufferAsync.sample`` and a
real TransferQueue. Stand-ins: the rollout (``FakeAgentLoop`` writes each group into TransferQueue as
``AgentLoopWorkerTQ`` does, with Bernoulli rewards per prompt) and the worker steps after sampling
(old log-prob, advantage, actor update, metrics), which only record what they are given.
"""

import copy
import importlib.metadata
import importlib.util
import os
import uuid
from unittest import mock

import numpy as np
import pytest

if not importlib.metadata.version("verl").startswith("0.9."):
    pytest.skip(f"needs verl 0.9.x, found {importlib.metadata.version('verl')} (run in .venv09)", allow_module_level=True)
if importlib.util.find_spec("transfer_queue") is None:
    pytest.skip("needs TransferQueue (pip install -e '.[verl09]')", allow_module_level=True)

import ray  # noqa: E402
import torch  # noqa: E402
import transfer_queue as tq  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from tensordict import NonTensorData, NonTensorStack  # noqa: E402

import verl.trainer.ppo.v1 as verl_v1  # noqa: E402
from vade_verl.tiny.model import build_model  # noqa: E402
from vade_verl.verl09 import main_ppo, main_ppo_v1  # noqa: E402
from vade_verl.verl09.replay_buffer import VADEReplayBuffer, VADEReplayBufferAsync, prompt_uids  # noqa: E402
from vade_verl.verl09.v1_sampler import STALENESS_METRIC, VADEV1Sampler  # noqa: E402
from vade_verl.verl09.v1_trainer import vade_trainer_class  # noqa: E402
from verl.experimental.agent_loop import AgentLoopOutput  # noqa: E402
from verl.trainer.ppo.v1 import PPOTrainerColocateAsync, PPOTrainerSync, trainer_base  # noqa: E402
from verl.trainer.ppo.v1.trainer_separate_async import HybridEngineMode  # noqa: E402
from verl.utils.tensordict_utils import list_of_dict_to_tensordict  # noqa: E402
from verl_harness import verl09_overrides, write_parquet  # noqa: E402

CONFIG_DIR = os.path.join(os.path.dirname(main_ppo_v1.__file__), "config")
N, BATCH, ROLLOUT_N = 48, 8, 8
ROW_IDS = np.random.default_rng(1).permutation(np.arange(500, 500 + N))
RATES = {int(rid): (0.0, 1.0, 0.5)[k % 3] for k, rid in enumerate(sorted(ROW_IDS))}
VADE_V1 = [
    "data.sampler.class_path=pkg://vade_verl.verl09.v1_sampler",
    "data.sampler.class_name=VADEV1Sampler",
    "trainer.v1.sampler.custom_sampler.path=pkg://vade_verl.verl09.replay_buffer",
]
BUFFER = {"sync": "VADEReplayBuffer", "colocate_async": "VADEReplayBufferAsync"}


V1_SAMPLERS = {"vade": "VADEV1Sampler", "mopps": "MoPPSV1Sampler", "greso": "GRESOV1Sampler"}


def vade_overrides(mode, sampler="vade"):
    """The V1 route for ``sampler`` (vade, mopps, greso) in trainer mode ``mode``."""
    return [
        *VADE_V1,
        f"data.sampler.class_name={V1_SAMPLERS[sampler]}",
        f"trainer.v1.sampler.custom_sampler.name={BUFFER[mode]}",
        f"trainer.v1.trainer_mode={mode}",
    ]


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return write_parquet(str(tmp_path_factory.mktemp("data") / "train.parquet"), ROW_IDS)


@pytest.fixture(scope="module")
def transfer_queue():
    """One local Ray with TransferQueue (one storage unit) for the module, emptied before each use."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
    yield
    tq.close()
    ray.shutdown()


def clear_transfer_queue():
    """A fresh TransferQueue, as after a restart."""
    for partition, items in (tq.kv_list() or {}).items():
        if items:
            tq.kv_clear(keys=list(items), partition_id=partition)


def compose_config(train_file, ckpt_dir, overrides=(), model_path="unused"):
    """The config ``python -m vade_verl.verl09.main_ppo_v1`` composes (verl's ppo_trainer + ours)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(
            config_name=main_ppo_v1.CONFIG_NAME,
            overrides=[
                *verl09_overrides(train_file, BATCH, ROLLOUT_N, ckpt_dir, model_path),
                "actor_rollout_ref.actor.use_kl_loss=False",
                "trainer.logger=[console]",
                "trainer.val_before_train=False",
                "trainer.test_freq=-1",
                *overrides,
            ],
        )


def success(row_id, global_steps, session):
    """The deterministic Bernoulli(RATES[row]) reward of one rollout."""
    rng = np.random.default_rng([int(row_id), int(global_steps), int(session)])
    return float(rng.random() < RATES[int(row_id)])


def failed(row_id, global_steps):
    """Every 5th (row, step) pair fails its whole group (no trajectories), when failures are on."""
    return (int(row_id) * 7 + int(global_steps)) % 5 == 0


class FakeAgentLoop:
    """``AgentLoopManagerTQ.generate_sequences`` done at once: each prompt's ``rollout.n`` trajectories
    go into TransferQueue as ``AgentLoopWorkerTQ._agent_loop_postprocess`` writes them
    (``AgentLoopOutput.as_dict()`` plus the prompt's fields), then its status turns "finished"
    (or "failure", with no trajectories, where ``with_failures``)."""

    def __init__(self, with_failures=False, format_score_with_acc=False):
        self.with_failures = with_failures
        # the score is a format reward (1.0) and `acc` the correctness, None on every third session
        self.format_score_with_acc = format_score_with_acc
        self.submitted = []  # (global_steps, row id) in the order the loader gave them
        self.groups = {}  # uid -> (global_steps, row id)

    def generate_sequences(self, batch):
        global_steps = batch["global_steps"]
        for i in range(len(batch)):
            prompt = {}
            for key, value in batch.items():
                if isinstance(value, torch.Tensor):
                    prompt[key] = value[i]
                elif isinstance(value, NonTensorStack):
                    prompt[key] = value[i].data
                elif isinstance(value, NonTensorData):
                    prompt[key] = value.data
            uid, row_id = prompt["uid"], prompt["extra_info"]["index"]
            self.submitted.append((global_steps, row_id))
            self.groups[uid] = (global_steps, row_id)
            tq.kv_put(key=uid, partition_id="train", tag={"status": "running"})
            if self.with_failures and failed(row_id, global_steps):
                tq.kv_put(key=uid, partition_id="train", tag={"status": "failure"})
                continue
            keys, fields, tags = [], [], []
            for session in range(ROLLOUT_N):
                output = AgentLoopOutput(
                    prompt_ids=[1, 2], response_ids=[3, 4, 5], response_mask=[1, 1, 1], num_turns=2, metrics={}
                )
                output.reward_score = success(row_id, global_steps, session)
                output.extra_fields["reward_extra_info"] = {"acc": output.reward_score}  # verl's naive manager
                if self.format_score_with_acc:
                    output.extra_fields["reward_extra_info"] = {"acc": None if session % 3 == 0 else output.reward_score}
                    output.reward_score = 1.0
                field = output.as_dict()
                field.update(prompt, session_id=session)
                keys.append(f"{uid}_{session}_0")
                fields.append(field)
                tags.append({"status": "success", "global_steps": global_steps})
            tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(fields), tags=tags)
            tq.kv_put(key=uid, partition_id="train", tag={"status": "finished"})


class Recorder:
    """Stands in for the steps after sampling; records the trained groups and the step's metrics."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.trained = {}  # global step -> sorted row ids of the trained groups
        self.trained_uids = {}  # global step -> uids of the trained groups, over its parameter_sync_step updates
        self.metrics = {}  # global step -> the step's metrics as fit logs them
        self.states = {}  # global step -> the sampler's selection state (state_dict) after the step
        self.updates = 0

    def update_actor(self, batch, metrics):
        infos = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_info"])
        uids = {key.split("_")[0]: info["index"] for key, info in zip(batch.keys, list(infos["extra_info"]))}
        step = self.trainer.global_steps  # a step's parameter_sync_step local updates add up
        self.trained[step] = sorted(self.trained.get(step, []) + list(uids.values()))
        self.trained_uids[step] = self.trained_uids.get(step, []) + list(uids)
        self.updates += 1
        return batch

    def compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        self.metrics[global_steps] = dict(metrics)
        self.states[global_steps] = copy.deepcopy(self.trainer.train_dataloader.sampler.state.state_dict())


def make_trainer(config):
    """Our V1 trainer as ``TaskRunnerV1.run`` makes it, with stand-ins for the workers and rollout servers."""
    trainer = vade_trainer_class(config.trainer.v1.trainer_mode)(config)
    trainer.tokenizer = trainer.processor = None
    trainer._init_dataloader()
    trainer._init_dump_executor()
    trainer.actor_rollout_wg = mock.MagicMock()
    trainer.checkpoint_manager = mock.MagicMock()
    trainer.reward_loop_manager = mock.MagicMock(reward_loop_worker_handles=["rule-based reward in the agent loop"])
    recorder = Recorder(trainer)
    trainer._balance_batch = lambda batch, metrics: batch
    trainer._compute_old_log_prob = lambda batch, metrics: batch
    trainer._compute_advantage = lambda batch, metrics: batch
    trainer._update_actor = recorder.update_actor
    trainer._compute_metrics = recorder.compute_metrics
    trainer._load_checkpoint()
    return trainer, recorder


def train(config, with_failures=False):
    """``PPOTrainer.fit`` (resuming if ``trainer.default_local_dir`` holds a checkpoint)."""
    trainer, recorder = make_trainer(config)
    agent_loop = FakeAgentLoop(with_failures)
    trainer.fit(agent_loop)
    return trainer, recorder, agent_loop


L1, L2 = 0.2, 0.999  # VADEConfig's default fast and slow decay


def hand_alpha_beta(trained_uids, groups, steps, correct=success):
    """VADE's (alpha, beta) per row id after ``steps`` global steps, one two-scale decay per global step
    (paper Sec. 3.3): a row trained at step t gets ``l1 * . + successes`` (``l1 * . + failures``), the
    others ``l2 * .``; a group's successes are its ``correct`` draws, from the step it was submitted at."""
    alpha, beta = dict.fromkeys(RATES, 0.0), dict.fromkeys(RATES, 0.0)
    for step in range(1, steps + 1):
        wins, trials = {}, {}
        for uid in trained_uids.get(step, []):
            submitted_at, row = groups[uid]
            wins[row] = wins.get(row, 0.0) + sum(correct(row, submitted_at, s) for s in range(ROLLOUT_N))
            trials[row] = trials.get(row, 0) + ROLLOUT_N
        for row in RATES:
            if row in trials:
                alpha[row], beta[row] = L1 * alpha[row] + wins[row], L1 * beta[row] + trials[row] - wins[row]
            else:
                alpha[row], beta[row] = L2 * alpha[row], L2 * beta[row]
    return alpha, beta


class CountingUUIDs:
    """Prompt uids 1, 2, 3, ... instead of ``uuid4`` (``trainer_base._fetch_one_gen_batch``).

    verl's async replay buffer trains the oldest groups and breaks ties among groups of the same step
    by set order of their random uids (replay_buffer.py:388), so two async runs may train different
    groups; with the same uids in the same order they train the same ones.
    """

    def __init__(self):
        self.count = 0

    def uuid4(self):
        self.count += 1
        return uuid.UUID(int=self.count)


@pytest.fixture
def counting_uuids(monkeypatch):
    uuids = CountingUUIDs()
    monkeypatch.setattr(trainer_base, "uuid", uuids)
    return uuids


def positions(sampler, row_ids):
    return sampler.positions_of(np.asarray(row_ids))


class StopBeforeWorkers(Exception):
    def __init__(self, trainer):
        super().__init__("stopped before the resource pools")
        self.trainer = trainer


def test_task_runner_v1_builds_our_trainer_sampler_and_replay_buffer(train_file, tmp_path, monkeypatch, transfer_queue):
    """verl's ``TaskRunnerV1.run`` (registry, trainer, replay buffer, tokenizer, datasets, loader) up to Ray workers."""

    def stop(self):
        raise StopBeforeWorkers(self)

    monkeypatch.setattr(PPOTrainerSync, "_init_resource_pool_mgr", stop)
    monkeypatch.setattr(tq, "close", lambda: None)  # run() closes TransferQueue on its way out; the module's stays
    model = build_model(str(tmp_path / "model"))
    config = compose_config(train_file, str(tmp_path / "ckpt"), vade_overrides("sync"), model_path=model)
    main_ppo_v1.check_config(config)
    with pytest.raises(StopBeforeWorkers) as stopped:
        main_ppo_v1.VADETaskRunnerV1().run(config)
    trainer = stopped.value.trainer
    assert type(trainer) is vade_trainer_class("sync") and isinstance(trainer, PPOTrainerSync)
    assert type(trainer.replay_buffer) is VADEReplayBuffer
    sampler = trainer.train_dataloader.sampler
    assert isinstance(sampler, VADEV1Sampler) and trainer.replay_buffer.vade_sampler is sampler
    assert sampler.row_ids.tolist() == ROW_IDS.tolist()
    assert verl_v1.get_trainer_cls("sync") is PPOTrainerSync  # verl's registry lookup is its own again


def test_sync_fit_feeds_vade_the_groups_verl_trains(train_file, tmp_path, transfer_queue, monkeypatch):
    clear_transfer_queue()
    steps = 3 * N // BATCH
    config = compose_config(train_file, str(tmp_path), [*vade_overrides("sync"), f"trainer.total_training_steps={steps}"])
    fed = []
    original_update = VADEV1Sampler.update_rollouts
    monkeypatch.setattr(VADEV1Sampler, "update_rollouts", lambda self, rollouts: fed.append(rollouts) or original_update(self, rollouts))
    trainer, recorder, agent_loop = train(config, with_failures=True)
    # what the replay buffer fed at step 1: one rollout per session, with the reward function's `acc`
    rows = fed[0].row_ids.tolist()
    assert sorted(set(rows)) == recorder.trained[1] and len(rows) == len(recorder.trained[1]) * ROLLOUT_N
    assert fed[0].reward_extras["acc"].tolist() == fed[0].scores.tolist()
    assert len(fed) == steps  # one update per global step
    assert sorted(recorder.trained) == list(range(1, steps + 1)) and recorder.updates == steps
    for step in recorder.trained:  # sync V1 trains exactly the prompts the loader gave at that step, but failed ones
        assert recorder.trained[step] == sorted(row for s, row in agent_loop.submitted if s == step and not failed(row, s))
    assert sum(failed(row, s) for s, row in agent_loop.submitted) > 0
    assert not trainer.train_dataloader.sampler._uid_stamps  # failed groups' stamps are dropped too

    # the posteriors after step 1 hold exactly the rewards of step 1's groups (prior 0, l1 applied to 0)
    sampler = trainer.train_dataloader.sampler
    first = recorder.trained[1]
    want = np.zeros(N)
    for row in first:
        want[positions(sampler, [row])[0]] = sum(success(row, 1, s) for s in range(ROLLOUT_N))
    np.testing.assert_array_equal(recorder.states[1]["alpha"], want)

    assert all(recorder.metrics[s][STALENESS_METRIC] == 0 for s in recorder.metrics)  # sync: nothing stale
    late = [recorder.metrics[s]["vade/effective_ratio"] for s in range(steps // 2, steps + 1)]
    random_eff = (1 - 2 * 0.5**ROLLOUT_N) / 3  # a random batch: a third of the prompts at p = 0.5
    assert np.mean(late) > random_eff + 0.2, (np.mean(late), random_eff)


def test_async_staleness_counts_the_batches_in_flight(train_file, tmp_path, transfer_queue):
    """colocate_async with 2 warm-up batches: step t trains prompts drawn at step t-2 with evidence up to t-3."""
    clear_transfer_queue()
    steps = 6
    overrides = [*vade_overrides("colocate_async"), "trainer.v1.colocate_async.num_warmup_batches=2"]
    config = compose_config(train_file, str(tmp_path), [*overrides, f"trainer.total_training_steps={steps}"])
    trainer, recorder, agent_loop = train(config)
    # verl's oldest-first choice is unchanged: the 3 batches submitted at step 1 (2 warm-up, 1 for the step)
    # are trained at steps 1-3 (in an order verl leaves to chance), then step t trains step t-2's batch
    def submitted_at(step):
        return sorted(row for s, row in agent_loop.submitted if s == step)

    assert sorted(recorder.trained[1] + recorder.trained[2] + recorder.trained[3]) == submitted_at(1)
    for step in range(4, steps + 1):
        assert recorder.trained[step] == submitted_at(step - 2)
    # selections: warm-up (evidence 0, 0), then step s draws with evidence s-1 for step s+2
    staleness = [recorder.metrics[s][STALENESS_METRIC] for s in range(1, steps + 1)]
    assert staleness == [0, 1, 2, 2, 2, 2]
    assert [recorder.metrics[s][f"{STALENESS_METRIC}_max"] for s in range(1, steps + 1)] == staleness


@pytest.mark.parametrize(
    "sampler, mode, k",
    [("vade", "sync", 1), ("vade", "colocate_async", 1), ("vade", "sync", 2), ("mopps", "sync", 1), ("greso", "colocate_async", 1)],
)
def test_resume_selects_exactly_the_uninterrupted_batches(train_file, tmp_path, transfer_queue, counting_uuids, sampler, mode, k):
    """A run resumed from V1's checkpoint (data.pt, and TransferQueue in async) draws the same prompts."""
    total, stop_after = 14, 5  # 14 steps of 8 prompts cross the 48-row epoch twice
    with_failures = mode != "sync"  # async refills failed groups one prompt at a time: checkpoints fall mid-block
    overrides = [*vade_overrides(mode, sampler), f"trainer.save_freq={stop_after}", *(SYNC_STEP_OVERRIDES[mode](k) if k > 1 else [])]
    staleness_metric = f"{sampler}/evidence_staleness_steps"

    clear_transfer_queue()
    ref = compose_config(train_file, str(tmp_path / "ref"), [*overrides, f"trainer.total_training_steps={total}"])
    ref_trainer, ref_recorder, ref_loop = train(ref, with_failures)

    clear_transfer_queue()
    counting_uuids.count = 0
    run_dir = str(tmp_path / "run")
    interrupted, _, _ = train(compose_config(train_file, run_dir, [*overrides, f"trainer.total_training_steps={stop_after}"]), with_failures)
    mid_block = interrupted.train_dataloader.sampler._epoch_served % BATCH != 0
    assert mid_block == with_failures  # the async checkpoint falls inside a selection block
    clear_transfer_queue()  # a restart: TransferQueue starts empty, verl restores it from the checkpoint
    resumed = compose_config(train_file, run_dir, [*overrides, f"trainer.total_training_steps={total}"])
    res_trainer, res_recorder, res_loop = train(resumed, with_failures)

    assert res_trainer.train_dataloader.sampler.state.num_updates == ref_trainer.train_dataloader.sampler.state.num_updates
    want = [item for item in ref_loop.submitted if item[0] > stop_after]
    assert res_loop.submitted == want  # every prompt the loader gave after the checkpoint, index by index
    assert sorted(res_recorder.trained) == list(range(stop_after + 1, total + 1))
    for step in res_recorder.trained:
        assert res_recorder.trained[step] == ref_recorder.trained[step], f"step {step} differs after resume"
        assert res_recorder.metrics[step][staleness_metric] == ref_recorder.metrics[step][staleness_metric]
        assert res_recorder.metrics[step][f"{sampler}/effective_ratio"] == ref_recorder.metrics[step][f"{sampler}/effective_ratio"]
    for key, value in ref_recorder.states[total].items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(res_recorder.states[total][key], value, err_msg=key)
    # the stamps kept are exactly those of the prompts still in flight (evicted groups' are dropped)
    assert set(res_trainer.train_dataloader.sampler._uid_stamps) == prompt_uids("train")


SYNC_STEP_OVERRIDES = {
    "sync": lambda k: [f"+trainer.v1.sync.parameter_sync_step={k}"],
    "colocate_async": lambda k: [f"+trainer.v1.colocate_async.parameter_sync_step={k}"],
    # separate_async asks train_batch_size == parameter_sync_step * ppo_mini_batch_size and a rollout pool
    # of its own (PPOTrainerSeparateAsync.__init__)
    "separate_async": lambda k: [
        f"trainer.v1.separate_async.parameter_sync_step={k}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={BATCH // k}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={BATCH // k}",
        "actor_rollout_ref.rollout.nnodes=1",
        "actor_rollout_ref.rollout.n_gpus_per_node=1",
        "actor_rollout_ref.rollout.checkpoint_engine.backend=nccl",
    ],
}
BUFFER["separate_async"] = "VADEReplayBufferAsync"


@pytest.mark.parametrize("mode, k", [("sync", 2), ("sync", 4), ("colocate_async", 2), ("separate_async", 4)])
def test_parameter_sync_step_decays_once_per_global_step(train_file, tmp_path, transfer_queue, mode, k):
    """verl samples ``parameter_sync_step`` = k mini-batches per global step (``PPOTrainer.step``); VADE takes
    the step's groups as one update: one decay per global step, as with k = 1."""
    clear_transfer_queue()
    steps = 5
    overrides = [*vade_overrides(mode), *SYNC_STEP_OVERRIDES[mode](k), f"trainer.total_training_steps={steps}"]
    trainer, recorder = make_trainer(compose_config(train_file, str(tmp_path), overrides))
    if mode == "separate_async":  # what PPOTrainerSeparateAsync._setup sets up with its rollout pool
        trainer.current_mode = HybridEngineMode.TRAINER
        trainer.standalone_checkpoint_manager = mock.MagicMock()
    agent_loop = FakeAgentLoop()
    trainer.fit(agent_loop)
    assert trainer.parameter_sync_step == k and recorder.updates == k * steps  # verl's k local updates per step
    sampler = trainer.train_dataloader.sampler
    assert sampler.state.num_updates == steps
    alpha, beta = hand_alpha_beta(recorder.trained_uids, agent_loop.groups, steps)
    for row in RATES:
        (position,) = positions(sampler, [row])
        assert (sampler.state.alpha[position], sampler.state.beta[position]) == pytest.approx((alpha[row], beta[row]), abs=1e-9), row
    assert all(recorder.metrics[t]["vade/updated_samples"] == len(set(recorder.trained[t])) for t in range(1, steps + 1))


def test_a_none_acc_falls_back_to_that_rows_score(train_file, tmp_path, transfer_queue):
    """``correctness=auto`` reads ``reward_extra_info.acc``; where it is None, that row's score (here 1.0)."""
    clear_transfer_queue()
    steps = 3
    trainer, recorder = make_trainer(compose_config(train_file, str(tmp_path), [*vade_overrides("sync"), f"trainer.total_training_steps={steps}"]))
    agent_loop = FakeAgentLoop(format_score_with_acc=True)
    trainer.fit(agent_loop)

    def correct(row, step, session):
        return 1.0 if session % 3 == 0 else success(row, step, session)

    alpha, beta = hand_alpha_beta(recorder.trained_uids, agent_loop.groups, steps, correct)
    sampler = trainer.train_dataloader.sampler
    for row in RATES:
        (position,) = positions(sampler, [row])
        assert (sampler.state.alpha[position], sampler.state.beta[position]) == pytest.approx((alpha[row], beta[row]), abs=1e-9), row
    none_rows = BATCH * len(range(0, ROLLOUT_N, 3))
    assert [recorder.metrics[t]["vade/correctness_from_score"] for t in range(1, steps + 1)] == [none_rows] * steps
    assert all(recorder.metrics[t]["vade/skipped_rewards"] == 0 for t in range(1, steps + 1))


def test_without_a_sampler_class_verl_v1_samplers_are_kept(train_file, tmp_path, transfer_queue):
    trainer = vade_trainer_class("sync")(compose_config(train_file, str(tmp_path), ["data.shuffle=True"]))
    trainer.tokenizer = trainer.processor = None
    trainer._init_dataloader()
    assert type(trainer.train_dataloader.sampler).__name__ == "RandomSampler"
    assert type(trainer.replay_buffer).__name__ == "ReplayBuffer"


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["trainer.use_v1=False"], r"trainer\.use_v1=False"),
        (["trainer.v1.sampler.custom_sampler.name=VADEReplayBufferAsync"], r"custom_sampler\.name=VADEReplayBufferAsync"),
        (["trainer.v1.sampler.custom_sampler.path=null"], r"custom_sampler\.name=VADEReplayBuffer"),
        (["data.sampler.class_path=pkg://vade_verl.vade.sampler", "data.sampler.class_name=VADESampler"], r"class_name=VADESampler"),
        (["data.sampler.class_path=pkg://vade_verl.mopps.sampler", "data.sampler.class_name=MoPPSSampler"], r"class_name=MoPPSSampler"),
        (["data.dataloader_num_workers=2"], r"data\.dataloader_num_workers=2"),
        (["algorithm.filter_groups.enable=True"], r"algorithm\.filter_groups\.enable"),
        (["trainer.v1.sampler.sync_refill_failed_groups=True"], r"sync_refill_failed_groups"),
        (["reward.reward_model.enable=True"], r"reward\.reward_model\.enable_resource_pool"),
    ],
)
def test_v1_config_errors_fail_at_start_naming_the_key(train_file, tmp_path, overrides, key):
    config = compose_config(train_file, str(tmp_path), [*vade_overrides("sync"), *overrides])
    with pytest.raises(ValueError, match=key):
        main_ppo_v1.main(config)  # hydra's main runs the function on a given config


def test_trainer_use_v1_true_with_the_legacy_entry_point_fails_at_start(train_file, tmp_path):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        config = compose(
            config_name=main_ppo.CONFIG_NAME,
            overrides=[f"data.train_files={train_file}", f"data.val_files={train_file}", "trainer.use_v1=True"],
        )
    with pytest.raises(ValueError, match=r"trainer\.use_v1=True.*main_ppo_v1"):
        main_ppo.main(config)


def test_replay_buffer_mode_and_entry_point_are_checked(train_file, tmp_path, transfer_queue):
    config = compose_config(train_file, str(tmp_path), [*vade_overrides("sync"), "trainer.v1.trainer_mode=colocate_async"])
    with pytest.raises(ValueError, match=r"custom_sampler\.name=VADEReplayBuffer does not fit trainer\.v1\.trainer_mode=colocate_async"):
        vade_trainer_class("colocate_async")(config)
    config = compose_config(train_file, str(tmp_path), vade_overrides("colocate_async"))
    with pytest.raises(ValueError, match=r"VADEReplayBufferAsync needs the trainer of python3 -m vade_verl\.verl09\.main_ppo_v1"):
        PPOTrainerColocateAsync(config)  # verl's own trainer (python -m verl.trainer.main_ppo) with our buffer
    assert VADEReplayBufferAsync.sync_mode is False
