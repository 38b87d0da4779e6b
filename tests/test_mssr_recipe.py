"""The MSSR recipe's Hydra overrides compose with verl 0.7.1's own ppo_trainer config."""

import os

from hydra import compose, initialize_config_dir

import verl
from recipe_run import recipe_overrides
from verl.utils.config import omega_conf_to_dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "mssr", "run_mssr_geo3k.sh")
CONFIG_DIR = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")


def test_recipe_composes_with_paper_settings():
    overrides = recipe_overrides(RECIPE, {"MSSR_ALPHA": "0.3"}, "trainer.total_training_steps=7")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=overrides)
    rollout, actor = cfg.actor_rollout_ref.rollout, cfg.actor_rollout_ref.actor
    assert cfg.algorithm.adv_estimator == "mssr" and rollout.n == 1 and rollout.temperature == 1.0
    assert actor.policy_loss.loss_mode == "mssr" and actor.use_kl_loss and actor.kl_loss_type == "low_var_kl"
    assert (actor.kl_loss_coef, actor.optim.lr, actor.grad_clip) == (0.01, 1e-6, 0.5)
    assert cfg.data.train_batch_size == 128 and cfg.data.dataloader_num_workers == 0
    assert (cfg.data.custom_cls.path, cfg.data.custom_cls.name) == ("pkg://vade_verl.verl_mssr", "MSSRDataset")
    assert dict(cfg.data.mssr) == {"rho_min": 0.875, "rho_max": 0.96, "target_kl": 0.01, "kl_window": 20}
    env_vars = cfg.ray_kwargs.ray_init.runtime_env.env_vars
    assert env_vars.VERL_USE_EXTERNAL_MODULES == "vade_verl.verl_mssr" and env_vars.VADE_MSSR_ALPHA == "0.3"
    assert all(isinstance(v, str) for v in env_vars.values())  # Ray accepts only string env vars
    assert cfg.trainer.total_training_steps == 7
    # the actor block still converts to verl's dataclass (the workers do this)
    assert omega_conf_to_dataclass(actor).policy_loss.loss_mode == "mssr"
    assert os.access(RECIPE, os.X_OK)
