"""The DIVA-GRPO recipe's Hydra overrides compose with verl 0.7.1's own ppo_trainer config."""

import os
import subprocess

import pytest
from hydra import compose, initialize_config_dir

import verl
from recipe_run import recipe_overrides
from verl.utils.config import omega_conf_to_dataclass
from vade_verl.diva_grpo import DivaAdvantageConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "diva", "run_diva_geo3k.sh")
CONFIG_DIR = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")


def _compose(overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def test_recipe_composes_with_paper_settings():
    cfg = _compose(recipe_overrides(RECIPE, {"DIVA_K": "0.2"}, "trainer.total_training_steps=7"))
    rollout, actor = cfg.actor_rollout_ref.rollout, cfg.actor_rollout_ref.actor
    assert cfg.algorithm.adv_estimator == "diva_grpo" and rollout.n == 5
    assert DivaAdvantageConfig.from_mapping(cfg.algorithm.diva) == DivaAdvantageConfig(k=0.2)
    assert not actor.use_kl_loss and not cfg.algorithm.use_kl_in_reward and actor.optim.lr == 1e-6
    assert cfg.data.train_batch_size == 128 and actor.ppo_mini_batch_size == 128
    assert (cfg.data.custom_cls.path, cfg.data.custom_cls.name) == ("pkg://vade_verl.verl_diva", "DivaRLHFDataset")
    assert cfg.data.dataloader_num_workers == 0 and dict(cfg.data.diva) == {"num_variants": 1, "seed": 0}
    assert rollout.agent.agent_loop_manager_class == "vade_verl.verl_diva.DivaAgentLoopManager"
    assert cfg.data.sampler.class_path is None
    assert cfg.trainer.total_training_steps == 7
    # the rollout block still converts to verl's dataclass (the workers do this)
    assert omega_conf_to_dataclass(rollout).agent.agent_loop_manager_class.endswith("DivaAgentLoopManager")
    assert os.access(RECIPE, os.X_OK)


def test_recipe_combines_with_vade_sampler():
    cfg = _compose(recipe_overrides(RECIPE, {"SAMPLER": "vade"}))
    assert (cfg.data.sampler.class_path, cfg.data.sampler.class_name) == ("pkg://vade_verl.sampler", "VADESampler")
    assert cfg.algorithm.adv_estimator == "diva_grpo"
    with pytest.raises(subprocess.CalledProcessError):
        recipe_overrides(RECIPE, {"SAMPLER": "dapo"})
