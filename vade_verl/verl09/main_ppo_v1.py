"""VADE (or MoPPS, GRESO: ``MoPPSV1Sampler``, ``GRESOV1Sampler``) on verl 0.9.x's V1 trainer (``trainer.use_v1=true``, verl 0.9's default).

    python3 -m vade_verl.verl09.main_ppo_v1 <verl's overrides> \\
        data.sampler.class_path=pkg://vade_verl.verl09.v1_sampler data.sampler.class_name=VADEV1Sampler \\
        trainer.v1.sampler.custom_sampler.path=pkg://vade_verl.verl09.replay_buffer \\
        trainer.v1.sampler.custom_sampler.name=VADEReplayBuffer   # VADEReplayBufferAsync in the async modes
        data.dataloader_num_workers=0

Configuration alone cannot reach V1's prompt selection: verl 0.9.1's ``PPOTrainer._init_dataloader``
builds the loader's sampler with ``create_rl_sampler(config.data, dataset)``
(``verl/trainer/ppo/v1/trainer_base.py:749``), which only makes a random or sequential sampler
(``verl/trainer/ppo/utils.py:140-168``), and the trainer class comes from a registry filled by verl's
own imports (``get_trainer_cls``, trainer_base.py:2017). The replay buffer, in contrast, is a
configuration plug-in (``trainer.v1.sampler.custom_sampler``). So this entry point

1. composes verl's ``ppo_trainer`` config plus ``data.sampler.{class_path,class_name}``
   (``config/vade_ppo_trainer_v1.yaml``), checks it (``check_config``) and runs what
   ``verl.trainer.main_ppo.main`` runs for V1 (device, ``validate_config``, ``run_ppo``);
2. uses ``VADETaskRunnerV1``: verl's ``TaskRunnerV1.run`` unchanged, during which
   ``verl.trainer.ppo.v1.get_trainer_cls`` (imported inside ``run``) resolves to
   ``vade_trainer_class``: verl's trainer for the mode with ``VADETrainerMixin`` in front
   (``vade_verl.verl09.v1_trainer``).
"""

from __future__ import annotations

import sys

from vade_verl.verl09 import check_verl_version

check_verl_version()

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import verl.trainer.ppo.v1 as verl_v1  # noqa: E402
from vade_verl.verl09.hooks import python_class, rebound, run_checked, sampler_class  # noqa: E402
from vade_verl.verl09.replay_buffer import ENTRY_HINT, _VADEFeedback  # noqa: E402
from vade_verl.verl09.v1_sampler import V1SamplerMixin  # noqa: E402
from vade_verl.verl_adapters.curriculum_sampler import CurriculumSampler  # noqa: E402
from vade_verl.verl09.v1_trainer import vade_trainer_class  # noqa: E402
from verl.trainer.main_ppo import TaskRunnerV1  # noqa: E402
from verl.utils.import_utils import load_extern_object  # noqa: E402

CONFIG_NAME = "vade_ppo_trainer_v1"


def replay_buffer_class(config: DictConfig) -> type | None:
    """The class of ``trainer.v1.sampler.custom_sampler``, or None (verl's test: trainer_base.py:147)."""
    custom = config.trainer.v1.sampler.get("custom_sampler") or {}
    if not (custom.get("path") and custom.get("name")):
        return None
    return load_extern_object(custom.path, custom.name)


def check_config(config: DictConfig) -> None:
    """What VADE on the V1 trainer needs beyond verl's ``validate_config``; errors name the key."""
    if not config.trainer.use_v1:
        raise ValueError(
            "trainer.use_v1=False: vade_verl.verl09.main_ppo_v1 runs verl's V1 trainer; for the legacy "
            "trainer run python3 -m vade_verl.verl09.main_ppo, else drop the override"
        )
    sampler = sampler_class(config.data)
    buffer = replay_buffer_class(config)
    vade_sampler = sampler is not None and issubclass(sampler, V1SamplerMixin)
    vade_buffer = buffer is not None and issubclass(buffer, _VADEFeedback)
    if sampler is not None and issubclass(sampler, CurriculumSampler) and not vade_sampler:
        raise ValueError(f"data.sampler.class_name={config.data.sampler.class_name} is the legacy trainer's sampler:{ENTRY_HINT}")
    if vade_sampler != vade_buffer:
        raise ValueError(
            f"data.sampler.class_name={config.data.sampler.class_name} with "
            f"trainer.v1.sampler.custom_sampler.name={config.trainer.v1.sampler.custom_sampler.name}:{ENTRY_HINT}"
        )
    if not vade_sampler:
        return
    buffer.check_trainer_mode(config.trainer.v1.trainer_mode)
    if config.data.dataloader_num_workers != 0:
        raise ValueError(
            f"data.dataloader_num_workers={config.data.dataloader_num_workers}: VADE needs 0 (a worker would "
            "draw prompts before the sampler has the last step's rewards)"
        )
    if (config.algorithm.get("filter_groups") or {}).get("enable", False):
        raise ValueError(
            "algorithm.filter_groups.enable=True: verl 0.9.1 gives group filtering to its built-in replay "
            "buffer only (trainer_base.py:165), not to VADEReplayBuffer"
        )
    if config.trainer.v1.sampler.get("sync_refill_failed_groups", False):
        raise ValueError(
            "trainer.v1.sampler.sync_refill_failed_groups=True: verl 0.9.1 gives it to its built-in replay "
            "buffer only (trainer_base.py:167), not to VADEReplayBuffer"
        )
    reward_model = config.reward.reward_model
    if reward_model.enable and not reward_model.enable_resource_pool:
        raise ValueError(
            "reward.reward_model.enable_resource_pool=False with a reward model: VADE reads the rewards when the "
            "replay buffer samples, and a colocated reward model scores only afterwards (trainer_base.py:577)"
        )


class VADETaskRunnerV1(python_class(TaskRunnerV1)):
    """verl's ``TaskRunnerV1``, run while V1's trainer registry lookup returns ``vade_trainer_class``."""

    def run(self, config):
        with rebound(verl_v1, get_trainer_cls=vade_trainer_class):
            return super().run(config)


@hydra.main(config_path="config", config_name=CONFIG_NAME, version_base=None)
def main(config: DictConfig) -> None:
    """``verl.trainer.main_ppo.main`` for V1, with our config check and task runner."""
    run_checked(config, check_config, VADETaskRunnerV1)


if __name__ == "__main__":
    # Run the importable module's main, so Ray pickles VADETaskRunnerV1 by reference, not from __main__.
    from vade_verl.verl09 import main_ppo_v1 as _module

    sys.exit(_module.main())
