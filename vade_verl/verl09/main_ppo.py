"""VADE on verl 0.9.x: verl's own (v0) PPO trainer with verl 0.7's sampler plug-in points restored.

    python3 -m vade_verl.verl09.main_ppo <the overrides you give python3 -m verl.trainer.main_ppo>

verl 0.8 removed ``data.sampler.class_path`` from ``create_rl_sampler`` and the
``sampler.update(batch=...)`` call from ``RayPPOTrainer.fit``; 0.9 defaults to a v1 trainer that
draws prompts through TransferQueue (VADE on it: ``vade_verl.verl09.main_ppo_v1``). This entry point
copies none of verl's trainer code. It

1. composes verl's ``ppo_trainer`` config plus ``data.sampler.{class_path,class_name}`` and
   ``trainer.use_v1=false`` (``config/vade_ppo_trainer.yaml``), checks it (``check_config``) and then
   runs what ``verl.trainer.main_ppo.main`` runs (device, ``validate_config``, ``run_ppo``);
2. uses ``VADETaskRunner``: verl's ``main_ppo_v0.TaskRunner.run`` unchanged, during which the
   TaskRunner process resolves the module-level names ``create_rl_sampler`` and ``RayPPOTrainer``
   of ``verl.trainer.main_ppo_v0`` to ours (``vade_hooks``);
3. ``create_rl_sampler`` (``vade_verl.verl09.hooks``) is verl 0.7's contract: ``class_path``/``class_name`` build
   ``cls(data_source=dataset, data_config=data.config)``, else verl's random/sequential sampler;
4. ``VADERayPPOTrainer`` overrides ``_update_actor`` only: it first calls the sampler's
   ``update(batch=batch)`` with the step's batch (rewards and advantages computed), so the
   ``vade/*`` metrics land in the step's ``metrics`` and are logged with it.

One difference from verl 0.7.1: there, ``fit`` calls ``update`` after saving the step's
checkpoint; here it runs before (``_update_actor`` precedes the save), so a checkpoint already
holds its step's update and the sampler's resume replay (``vade_verl.vade.sampler``) has nothing to
replay. ``_update_actor`` is skipped while ``trainer.critic_warmup`` exceeds the step (GAE runs
with a critic warm-up only), and so is the update.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from vade_verl.verl09 import check_verl_version

check_verl_version()

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from vade_verl.verl09.hooks import create_rl_sampler, python_class, rebound, run_checked, sampler_class  # noqa: E402
from vade_verl.verl09.v1_sampler import V1SamplerMixin  # noqa: E402
from verl.trainer import main_ppo_v0  # noqa: E402
from verl.trainer.ppo.ray_trainer import RayPPOTrainer  # noqa: E402

CONFIG_NAME = "vade_ppo_trainer"


def check_config(config: DictConfig) -> None:
    """What this entry point needs beyond verl's own ``validate_config``."""
    if config.trainer.use_v1:
        raise ValueError(
            "trainer.use_v1=True: vade_verl.verl09.main_ppo runs verl's legacy trainer (main_ppo_v0); "
            "for the V1 trainer run python3 -m vade_verl.verl09.main_ppo_v1, else set trainer.use_v1=False"
        )
    sampler = sampler_class(config.data)
    if sampler is not None and issubclass(sampler, V1SamplerMixin):
        raise ValueError(
            f"data.sampler.class_name={config.data.sampler.class_name} is the V1 trainer's sampler: run "
            "python3 -m vade_verl.verl09.main_ppo_v1, or take the 0.7.1 sampler here (e.g. pkg://vade_verl.vade.sampler VADESampler)"
        )
    if sampler is not None and config.data.dataloader_num_workers != 0:
        raise ValueError(
            f"data.dataloader_num_workers={config.data.dataloader_num_workers}: a curriculum sampler needs 0, "
            "or the loader draws batches before the sampler has seen the last step's rewards"
        )


class VADERayPPOTrainer(RayPPOTrainer):
    """verl 0.9's ``RayPPOTrainer`` that gives each step's batch to the sampler's ``update``."""

    def _update_actor(self, batch):
        sampler = self.train_dataloader.sampler
        if callable(getattr(sampler, "update", None)):
            sampler.update(batch=batch)
        return super()._update_actor(batch)


@contextlib.contextmanager
def vade_hooks() -> Iterator[None]:
    """Bind ``main_ppo_v0``'s ``create_rl_sampler`` and ``RayPPOTrainer`` to ours, then restore them."""
    with rebound(main_ppo_v0, create_rl_sampler=create_rl_sampler, RayPPOTrainer=VADERayPPOTrainer):
        yield


class VADETaskRunner(python_class(main_ppo_v0.TaskRunner)):
    """verl's v0 ``TaskRunner``, run with ``vade_hooks`` in its own (Ray actor) process."""

    def run(self, config):
        with vade_hooks():
            return super().run(config)


@hydra.main(config_path="config", config_name=CONFIG_NAME, version_base=None)
def main(config: DictConfig) -> None:
    """``verl.trainer.main_ppo.main`` with our config and task runner."""
    run_checked(config, check_config, VADETaskRunner)


if __name__ == "__main__":
    # Run the importable module's main, so Ray pickles VADETaskRunner by reference, not from __main__.
    from vade_verl.verl09 import main_ppo as _module

    sys.exit(_module.main())
