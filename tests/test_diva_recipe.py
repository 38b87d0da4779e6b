"""The DIVA-GRPO recipe composes the authors' settings (docs/diva.md's table, Siaaaaaa1/DIVA_GRPO_release
examples/config.yaml and its main-experiment script, written out here) with verl 0.7.1's ppo_trainer,
and verl's own loader then yields the authors' step: 64 problems + 64 variants = 128 prompts."""

import os
import subprocess

import pytest
from hydra import compose, initialize_config_dir

import verl
from recipe_run import recipe_calls
from test_diva_verl import _loader, _write_geo3k_parquet
from verl.utils.config import omega_conf_to_dataclass
from vade_verl.diva.advantage import DivaAdvantageConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "diva", "run_diva_geo3k.sh")
CONFIG_DIR = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")


def _compose(overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def _overrides(env=None, *extra):
    (overrides,) = recipe_calls(RECIPE, env, *extra)  # one trainer call
    return overrides


def test_recipe_has_the_authors_settings(tmp_path):
    cfg = _compose(_overrides({"DATA_DIR": str(tmp_path)}, "trainer.total_training_steps=7"))
    data, algorithm, actor, rollout = cfg.data, cfg.algorithm, cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    assert (algorithm.adv_estimator, algorithm.norm_adv_by_std_in_grpo, algorithm.use_kl_in_reward) == ("diva_grpo", True, False)
    # k = 0.1 set; the authors' order, damping on and correctness auto are the estimator's defaults
    assert dict(algorithm.diva) == {"k": 0.1}
    advantage = DivaAdvantageConfig.from_mapping(algorithm.diva)
    assert (advantage.k, advantage.order, advantage.low_reward_damping) == (0.1, "authors", True)
    assert (data.custom_cls.path, data.custom_cls.name) == ("pkg://vade_verl.diva.verl_plugin", "DivaRLHFDataset")
    assert data.dataloader_num_workers == 0 and dict(data.diva) == {"num_variants": 1, "seed": 0, "max_pixels": 1048576}
    # the release's actor defaults (verl/workers/actor/config.py), which their scripts do not override
    assert (actor.clip_ratio_low, actor.clip_ratio_high, actor.clip_ratio_c) == (0.2, 0.3, 3.0)
    # layout: the loader takes 64 problems, a step holds 128 prompts, one optimizer step of 128
    assert (data.gen_batch_size, data.train_batch_size, actor.ppo_mini_batch_size) == (64, 128, 128)
    assert (rollout.n, actor.optim.lr, actor.use_kl_loss) == (5, 1e-6, False)
    assert (data.max_prompt_length, data.max_response_length) == (2048, 4096)
    assert (rollout.val_kwargs.do_sample, rollout.val_kwargs.temperature, rollout.val_kwargs.top_p) == (True, 0.6, 0.95)
    assert rollout.agent.agent_loop_manager_class == "vade_verl.diva.verl_plugin.DivaAgentLoopManager"
    assert cfg.data.sampler.class_path is None and data.train_files == f"{tmp_path}/train.parquet"
    assert cfg.trainer.total_training_steps == 7  # "$@" last
    assert omega_conf_to_dataclass(rollout).agent.agent_loop_manager_class.endswith("DivaAgentLoopManager")
    assert os.access(RECIPE, os.X_OK)


@pytest.mark.parametrize("env, problems, prompts", [({}, 64, 128), ({"TRAIN_BATCH": "16", "DIVA_NUM_VARIANTS": "3"}, 4, 16)])
def test_verls_loader_yields_train_batch_prompts_per_step(tmp_path, env, problems, prompts):
    """gen_batch_size problems from verl's loader, each with its variants: data.train_batch_size rows."""
    train = _write_geo3k_parquet(tmp_path / "train.parquet", problems)
    cfg = _compose(_overrides({"TRAIN_FILES": train, "VAL_FILES": train, **env}, "data.filter_overlong_prompts=False"))
    assert cfg.data.gen_batch_size == problems
    batch = next(iter(_loader(cfg)[0]))
    assert len(batch["extra_info"]) == cfg.data.train_batch_size == prompts
    assert sum(info["diva_variant"] == "original" for info in batch["extra_info"]) == problems


def test_train_files_default_to_the_data_prep_output_when_it_exists(tmp_path):
    (tmp_path / "train_diva.parquet").write_text("")
    assert f"data.train_files={tmp_path}/train_diva.parquet" in _overrides({"DATA_DIR": str(tmp_path)})


def test_training_without_the_data_prep_output_is_warned(tmp_path):
    """Issue 23 item 1: without train_diva.parquet hard problems get copies, not hints: said on stderr."""
    env = {**os.environ, "PRINT_OVERRIDES": "1", "DATA_DIR": str(tmp_path)}
    done = subprocess.run(["bash", RECIPE], env=env, capture_output=True, text=True, check=True)
    assert f"data.train_files={tmp_path}/train.parquet" in done.stdout.splitlines()
    assert "WARNING" in done.stderr and "hard problems get copies" in done.stderr


def test_recipe_combines_with_the_vade_sampler():
    cfg = _compose(_overrides({"DIVA_SAMPLER": "vade"}))
    assert (cfg.data.sampler.class_path, cfg.data.sampler.class_name) == ("pkg://vade_verl.vade.sampler", "VADESampler")
    assert cfg.algorithm.adv_estimator == "diva_grpo" and cfg.data.gen_batch_size == 64


@pytest.mark.parametrize(
    "env, message",
    [
        ({"DIVA_SAMPLER": "dapo"}, "set DIVA_SAMPLER to random or vade"),
        ({"TRAIN_BATCH": "100", "DIVA_NUM_VARIANTS": "2"}, "must be a multiple of 1 + DIVA_NUM_VARIANTS"),
        ({"NUM_VARIANTS": "2"}, "knob NUM_VARIANTS: renamed DIVA_NUM_VARIANTS"),
        ({"DIVA_SAMPLR": "vade"}, "knob DIVA_SAMPLR: did you mean DIVA_SAMPLER?"),
        ({"DIVA_DAMPING": "False"}, "+algorithm.diva.low_reward_damping=False"),
        ({"KL_COEF": "0.01"}, "knob KL_COEF: not read by this recipe"),
    ],
)
def test_bad_and_old_knobs_are_refused(env, message):
    with pytest.raises(subprocess.CalledProcessError) as failed:
        recipe_calls(RECIPE, env)
    assert failed.value.returncode == 2 and message in failed.value.stderr
