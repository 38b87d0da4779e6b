"""The MSSR recipe composes the authors' settings (docs/mssr.md's tables, ruiiu/MSSR config_mssr.yaml
and 7b_mssr.sh, written out here) with verl 0.7.1's ppo_trainer, and its warm-start pass is a
validation of the initial policy over the training rows that verl dumps where training reads it."""

import json
import os
from types import SimpleNamespace

from hydra import compose, initialize_config_dir

import verl
from recipe_run import recipe_calls
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.utils.config import omega_conf_to_dataclass
from vade_verl.mssr.advantage import MSSRBaselineConfig, MSSRShapingConfig
from vade_verl.verl_adapters.rewards import CorrectnessRule
from vade_verl.mssr.verl_plugin import MSSROptions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "mssr", "run_mssr_geo3k.sh")
CONFIG_DIR = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")


def _compose(overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def _calls(tmp_path, env=None, *extra):
    base = {"DATA_DIR": str(tmp_path / "geo3k"), "MSSR_WARM_DIR": str(tmp_path / "warm"), "EXPERIMENT": "run"}
    return recipe_calls(RECIPE, {**base, **(env or {})}, *extra)


def test_training_run_has_the_authors_settings(tmp_path):
    warm_pass, training = _calls(tmp_path, None, "trainer.total_training_steps=7")
    cfg = _compose(training)
    data, algorithm, trainer = cfg.data, cfg.algorithm, cfg.trainer
    actor, rollout, ref = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout, cfg.actor_rollout_ref.ref
    assert (algorithm.adv_estimator, algorithm.norm_adv_by_std_in_grpo, algorithm.use_kl_in_reward) == ("mssr", True, False)
    assert (data.custom_cls.path, data.custom_cls.name, data.dataloader_num_workers) == ("pkg://vade_verl.mssr.verl_plugin", "MSSRDataset", 0)
    # batch layout: 2048 prompts per step, 16 updates of 128, micro batches 4 (update) and 16 (log-probs)
    assert (data.train_batch_size, rollout.n, actor.ppo_mini_batch_size, actor.ppo_epochs) == (2048, 1, 128, 1)
    assert data.train_batch_size * rollout.n // actor.ppo_mini_batch_size == 16
    assert actor.ppo_micro_batch_size_per_gpu == 4
    assert rollout.log_prob_micro_batch_size_per_gpu == ref.log_prob_micro_batch_size_per_gpu == 16
    assert (data.max_prompt_length, data.max_response_length) == (2048, 4096)
    # loss: verl's vanilla PPO loss with the authors' clip, KL loss 0.01 low_var_kl, no entropy loss
    assert actor.policy_loss.loss_mode == "vanilla"
    assert (actor.clip_ratio_low, actor.clip_ratio_high, actor.clip_ratio_c, actor.loss_agg_mode) == (0.2, 0.3, 3.0, "token-mean")
    assert (actor.use_kl_loss, actor.kl_loss_coef, actor.kl_loss_type, actor.entropy_coeff) == (True, 0.01, "low_var_kl", 0)
    assert (actor.optim.lr, actor.grad_clip) == (1e-6, 0.5)
    # sampling: T = 1, top-p 1, no top-k; validation sampled at T = 0.6, once
    assert (rollout.temperature, rollout.top_p, rollout.top_k, rollout.tensor_model_parallel_size) == (1.0, 1.0, -1, 1)
    val = rollout.val_kwargs
    assert (val.do_sample, val.temperature, val.n) == (True, 0.6, 1)
    # schedule: the recipe's "$@" comes last (7 steps here, the authors' 150 by default)
    assert (trainer.total_training_steps, trainer.test_freq, trainer.save_freq, trainer.val_before_train) == (7, 5, 5, True)
    assert _compose(warm_pass).trainer.total_training_steps == 7 and "trainer.total_training_steps=150" in training
    # MSSR options, all Hydra keys: nothing reaches the workers through the environment any more
    assert MSSROptions.from_data_config(data) == MSSROptions(
        baseline=MSSRBaselineConfig(kl_window=10, rho_schedule="continuous"),
        shaping=MSSRShapingConfig(alpha=0.4, kappa=2, entropy="full_vocab"),
        correctness=CorrectnessRule.parse("auto", "data.mssr.correctness"),
        init="warm_start",
        warm_start_file=f"{tmp_path}/warm/0.jsonl",
    )
    assert "ray_kwargs" not in " ".join(training) and "loss_mode" not in " ".join(training)
    assert omega_conf_to_dataclass(actor).clip_ratio_high == 0.3  # the workers build verl's dataclass
    assert os.access(RECIPE, os.X_OK)


def test_warm_start_pass_validates_the_training_rows_and_writes_what_training_reads(tmp_path):
    warm_pass, training = _calls(tmp_path, None, "trainer.val_before_train=False")
    run, dump = _compose(warm_pass), _compose(training)
    assert warm_pass[: len(training)] == training  # the same run, plus the pass's overrides after "$@"
    assert (run.trainer.val_only, run.trainer.val_before_train, run.trainer.resume_mode) == (True, True, "disable")
    assert dump.trainer.val_before_train is False  # the argument reached training only
    assert run.data.val_files == run.data.train_files == f"{tmp_path}/geo3k/train.parquet"
    assert (run.data.validation_shuffle, run.data.val_max_samples) == (False, -1)
    val = run.actor_rollout_ref.rollout.val_kwargs
    assert (val.do_sample, val.temperature, val.top_p, val.top_k, val.n) == (True, 1.0, 1.0, -1, 1)
    assert run.trainer.experiment_name == "run_warm_start" and dump.trainer.experiment_name == "run"
    # the file training reads is the one verl's _dump_generations writes at the pass's global step 0
    stub = SimpleNamespace(global_steps=0)  # fit() starts at 0 with resume_mode=disable (ray_trainer.py:1248)
    RayPPOTrainer._dump_generations(stub, ["q"], ["a"], ["1"], [1.0], {}, run.trainer.validation_data_dir)
    assert run.data.mssr.warm_start_file == dump.data.mssr.warm_start_file
    with open(dump.data.mssr.warm_start_file) as handle:
        assert json.loads(handle.read())["gts"] == "1"


def test_the_pass_is_skipped_when_its_dump_exists_or_without_warm_start(tmp_path):
    os.makedirs(tmp_path / "warm")
    (tmp_path / "warm" / "0.jsonl").write_text("")
    (training,) = _calls(tmp_path)
    assert not any(o.startswith("trainer.val_only") for o in training)
    (first_visit,) = _calls(tmp_path, {"MSSR_INIT": "first_visit", "MSSR_WARM_DIR": str(tmp_path / "none")})
    assert _compose(first_visit).data.mssr.init == "first_visit"


def test_header_names_the_two_options_that_are_not_the_authors():
    """Issue 23 item 8: the recipe says which of its defaults differ from the authors' code, and how to get theirs."""
    recipe = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes", "mssr", "run_mssr_geo3k.sh")
    header = open(recipe).read().split("set -euo pipefail")[0]
    assert "but two" in header and "MSSR_RHO_SCHEDULE=continuous" in header and "MSSR_ENTROPY=full_vocab" in header
    assert "`authors`" in header and "`sampled`" in header
