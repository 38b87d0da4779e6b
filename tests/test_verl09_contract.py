"""VADE on verl 0.9.x through ``vade_verl.verl09.main_ppo`` (run in .venv09; skipped on other verl).

The same contract as tests/test_vade_verl_contract.py for 0.7.1: verl's own (v0) TaskRunner code
builds our sampler and trainer, and the sampler's update runs with trainer-shaped batches, here
through verl's ``compute_advantage`` as ``VADERayPPOTrainer.fit`` wraps it. verl's whole ``fit``
loop (warm-up, checkpoints, resume) is driven in tests/test_verl09_fit.py.
"""

import importlib.metadata
import os

import numpy as np
import pytest

if not importlib.metadata.version("verl").startswith("0.9."):
    pytest.skip(f"needs verl 0.9.x, found {importlib.metadata.version('verl')} (run in .venv09)", allow_module_level=True)

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from vade_verl.vade.sampler import VADESampler  # noqa: E402
from vade_verl.tiny.model import build_model  # noqa: E402
from vade_verl.verl09 import main_ppo  # noqa: E402
from vade_verl.verl_adapters.batch import build_rollout_batch  # noqa: E402
from verl.trainer import main_ppo_v0  # noqa: E402
from verl.trainer.ppo import utils as ppo_utils  # noqa: E402
from verl.trainer.ppo.ray_trainer import RayPPOTrainer  # noqa: E402
from verl_harness import VADE_SAMPLER, bernoulli_rewards, verl09_overrides, write_parquet  # noqa: E402

CONFIG_DIR = os.path.join(os.path.dirname(main_ppo.__file__), "config")
N, BATCH, ROLLOUT_N = 48, 8, 8
ROW_IDS = np.random.default_rng(1).permutation(np.arange(500, 500 + N))
RATES = {int(rid): (0.0, 1.0, 0.5)[k % 3] for k, rid in enumerate(sorted(ROW_IDS))}


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return write_parquet(str(tmp_path_factory.mktemp("data") / "train.parquet"), ROW_IDS)


def compose_config(train_file, ckpt_dir, overrides=(), model_path="unused"):
    """The config ``python -m vade_verl.verl09.main_ppo`` composes (verl's ppo_trainer + ours)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(
            config_name=main_ppo.CONFIG_NAME,
            overrides=[*verl09_overrides(train_file, BATCH, ROLLOUT_N, ckpt_dir, model_path), *overrides],
        )


def make_trainer(config):
    """The trainer's loader as ``TaskRunner.run`` builds it: dataset, our create_rl_sampler, _create_dataloader."""
    trainer = main_ppo.VADERayPPOTrainer.__new__(main_ppo.VADERayPPOTrainer)
    trainer.config, trainer.tokenizer, trainer.processor = config, None, None
    dataset = ppo_utils.create_rl_dataset(config.data.train_files, config.data, None, None)
    trainer._create_dataloader(dataset, dataset, None, main_ppo.create_rl_sampler(config.data, dataset))
    return trainer


def fit(trainer, batch_dict, step):
    """One step of ``RayPPOTrainer.fit`` as far as VADE sees it: roll out, reward, compute advantages.

    Returns the metrics the sampler computed (its ``last_metrics``: no verl ``fit`` runs here to publish into).
    """
    ids = np.array([info["index"] for info in batch_dict["extra_info"]])
    batch = build_rollout_batch(batch_dict, ROLLOUT_N, bernoulli_rewards(ids, RATES, ROLLOUT_N, seed=step))
    with_advantages = trainer._compute_advantage_and_feed_sampler(batch, adv_estimator="grpo", num_repeat=ROLLOUT_N)
    assert "advantages" in with_advantages.batch.keys()  # verl's compute_advantage still runs
    return ids, batch, dict(trainer.train_dataloader.sampler.last_metrics)


def run_steps(trainer, steps, first_step=0, batches=None):
    batches = batches or endless(trainer.train_dataloader)
    return [fit(trainer, next(batches), step) for step in range(first_step, first_step + steps)]


def endless(loader):
    while True:
        yield from loader


class StopBeforeWorkers(Exception):
    def __init__(self, trainer):
        super().__init__("stopped before init_workers")
        self.trainer = trainer


def test_verl_task_runner_builds_our_sampler_and_trainer(train_file, tmp_path, monkeypatch):
    """verl's own ``main_ppo_v0.TaskRunner.run`` (tokenizer, datasets, sampler, trainer) up to Ray workers."""

    def stop(self):
        raise StopBeforeWorkers(self)

    monkeypatch.setattr(main_ppo.VADERayPPOTrainer, "init_workers", stop)
    model = build_model(str(tmp_path / "model"))
    config = compose_config(train_file, str(tmp_path / "ckpt"), VADE_SAMPLER, model_path=model)
    main_ppo.check_config(config)
    with pytest.raises(StopBeforeWorkers) as stopped:
        main_ppo.VADETaskRunner().run(config)
    trainer = stopped.value.trainer
    assert type(trainer) is main_ppo.VADERayPPOTrainer
    assert isinstance(trainer.train_dataloader.sampler, VADESampler)
    assert trainer.train_dataloader.sampler.row_ids.tolist() == ROW_IDS.tolist()
    # the names are verl's own again outside the task runner
    assert main_ppo_v0.create_rl_sampler is ppo_utils.create_rl_sampler and main_ppo_v0.RayPPOTrainer is RayPPOTrainer

    steps = run_steps(trainer, 3 * N // BATCH)
    assert all("vade/effective_ratio" in m and "vade/updated_samples" in m for _, _, m in steps)
    late = steps[len(steps) // 2 :]
    vade_eff = np.mean([m["vade/effective_ratio"] for _, _, m in late])
    # random batches: informative share = 1/3 of prompts x P(group not all-same at p=0.5)
    random_eff = (1 - 2 * 0.5**ROLLOUT_N) / 3
    assert vade_eff > random_eff + 0.2, (vade_eff, random_eff)


def test_resume_selects_exactly_the_uninterrupted_batches(train_file, tmp_path):
    """0.9's order: the update runs with ``compute_advantage``, before ``fit`` saves the step's checkpoint."""
    stop_after, total = 3, 8
    reference = make_trainer(compose_config(train_file, str(tmp_path / "ref"), VADE_SAMPLER))
    expected = [ids for ids, _, _ in run_steps(reference, total)]

    config = compose_config(train_file, str(tmp_path / "run"), VADE_SAMPLER)
    first = make_trainer(config)
    run_steps(first, stop_after)
    ckpt = tmp_path / "data.pt"
    torch.save(first.train_dataloader.state_dict(), ckpt)  # RayPPOTrainer._save_checkpoint

    resumed = make_trainer(config)
    resumed.train_dataloader.load_state_dict(torch.load(ckpt, weights_only=False))
    got = [ids for ids, _, _ in run_steps(resumed, total - stop_after, first_step=stop_after)]
    for step, (ids, want) in enumerate(zip(got, expected[stop_after:]), start=stop_after + 1):
        assert ids.tolist() == want.tolist(), f"step {step} differs after resume"


def test_without_a_sampler_class_verl_samplers_are_kept(train_file, tmp_path):
    trainer = make_trainer(compose_config(train_file, str(tmp_path), ["data.shuffle=True"]))
    assert type(trainer.train_dataloader.sampler).__name__ == "RandomSampler"


def test_config_errors_fail_at_start_naming_the_key(train_file, tmp_path):
    with pytest.raises(ValueError, match=r"data\.sampler\.vade\.l1"):
        make_trainer(compose_config(train_file, str(tmp_path), [*VADE_SAMPLER, "+data.sampler.vade.l1=1.5"]))
    with pytest.raises(ValueError, match=rf"data\.gen_batch_size={N + 1} must be in 1\.\.{N}"):
        make_trainer(compose_config(train_file, str(tmp_path), [*VADE_SAMPLER, f"data.gen_batch_size={N + 1}"]))
    with pytest.raises(ValueError, match=r"trainer\.use_v1=True"):
        main_ppo.check_config(compose_config(train_file, str(tmp_path), [*VADE_SAMPLER, "trainer.use_v1=True"]))
    with pytest.raises(ValueError, match=r"data\.dataloader_num_workers=2"):
        main_ppo.check_config(compose_config(train_file, str(tmp_path), [*VADE_SAMPLER, "data.dataloader_num_workers=2"]))


@pytest.mark.parametrize("module", ["vade_verl.verl09.main_ppo", "vade_verl.verl09.main_ppo_v1"])
def test_the_entry_points_compose_their_config_from_the_command_line(module, tmp_path):
    """``python3 -m <module>`` as the docs give it: Hydra finds the module's config package (``--cfg job`` prints it)."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's vade_verl, not an installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", module, "--cfg", "job"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "class_path: null" in done.stdout and "class_name: null" in done.stdout  # our data.sampler node
