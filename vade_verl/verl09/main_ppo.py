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
4. ``VADERayPPOTrainer`` changes two methods and copies neither:

   * ``fit`` is verl's, run while the module-level ``compute_advantage`` of
     ``verl.trainer.ppo.ray_trainer`` (called once per step, ``ray_trainer.py:1667``) is verl's followed
     by the sampler's ``update(batch=batch)``: every step's rollouts reach the sampler once, with
     rewards, advantages, ``uid`` and ``extra_info``, before the actor update and before the step's
     checkpoint, also in the ``trainer.critic_warmup`` steps where verl skips ``_update_actor``
     (verl 0.7.1's ``fit`` also feeds every step, ``ray_trainer.py:1600`` there). The ``vade/*``
     metrics land in the step's ``metrics``.
   * ``_load_checkpoint`` is verl's, then, where verl skipped ``data.pt`` because the checkpoint
     sits on an epoch boundary (``ray_trainer.py:1102-1115``), it restores the sampler's state from
     that file itself (VADE's posteriors and generator live there) and says so.

One difference from verl 0.7.1: there, ``fit`` calls ``update`` after saving the step's
checkpoint; here it runs before, so a checkpoint already holds its step's update and the
sampler's resume replay (``vade_verl.vade.sampler``) has nothing to replay.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Iterator, Optional

from vade_verl.verl09 import check_verl_version

check_verl_version()

import hydra  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from vade_verl.verl09.hooks import create_rl_sampler, python_class, rebound, run_checked, sampler_class  # noqa: E402
from vade_verl.verl09.v1_sampler import V1SamplerMixin  # noqa: E402
from vade_verl.verl_adapters.curriculum_sampler import CurriculumSampler  # noqa: E402
from verl.trainer import main_ppo_v0  # noqa: E402
from verl.trainer.ppo import ray_trainer  # noqa: E402
from verl.trainer.ppo.ray_trainer import RayPPOTrainer  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage as verl_compute_advantage  # noqa: E402
from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path  # noqa: E402

logger = logging.getLogger(__name__)

CONFIG_NAME = "vade_ppo_trainer"
# Where torchdata's StatefulDataLoader keeps its sampler's state_dict (torchdata/stateful_dataloader:
# stateful_dataloader.py ``_SAMPLER_ITER_STATE``, sampler.py ``_BatchSamplerIterator._SAMPLER_STATE``).
LOADER_SAMPLER_STATE = ("_sampler_iter_state", "sampler_state")


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


def resume_folder(trainer_config: DictConfig) -> Optional[str]:
    """The ``global_step_<k>`` folder verl's ``_load_checkpoint`` resumes from, or None (ray_trainer.py:1053-1080):
    ``trainer.resume_from_path`` with ``resume_mode=resume_path``, else the newest in ``trainer.default_local_dir``."""
    if trainer_config.resume_mode == "disable":
        return None
    if trainer_config.resume_mode == "resume_path":
        folder = trainer_config.resume_from_path
    else:
        folder = find_latest_ckpt_path(trainer_config.default_local_dir)
    return None if folder is None else os.path.abspath(folder)


def loader_sampler_state(loader_state: dict, path: str) -> dict:
    """The sampler's ``state_dict`` inside a saved ``StatefulDataLoader`` state (``data.pt``)."""
    state: Any = loader_state
    for key in LOADER_SAMPLER_STATE:
        if not isinstance(state, dict) or key not in state:
            raise ValueError(f"{path} holds no sampler state at {'/'.join(LOADER_SAMPLER_STATE)}: not a StatefulDataLoader checkpoint")
        state = state[key]
    return state


class VADERayPPOTrainer(RayPPOTrainer):
    """verl 0.9's ``RayPPOTrainer`` that feeds every step's batch to the sampler and resumes it on epoch boundaries."""

    def fit(self):
        with rebound(ray_trainer, compute_advantage=self._compute_advantage_and_feed_sampler):
            return super().fit()

    def _compute_advantage_and_feed_sampler(self, batch, *args, **kwargs):
        """verl's ``compute_advantage``, then the sampler's ``update`` with the step's finished batch."""
        batch = verl_compute_advantage(batch, *args, **kwargs)
        sampler = self.train_dataloader.sampler
        if callable(getattr(sampler, "update", None)):
            sampler.update(batch=batch)
        return batch

    def _load_checkpoint(self):
        resumed = super()._load_checkpoint()
        sampler = self.train_dataloader.sampler
        steps_per_epoch = len(self.train_dataloader)
        folder = resume_folder(self.config.trainer)
        if not isinstance(sampler, CurriculumSampler) or folder is None or steps_per_epoch == 0 or self.global_steps % steps_per_epoch:
            return resumed
        path = os.path.join(folder, "data.pt")
        if os.path.exists(path):  # verl skipped it: the loader is exhausted there, but the sampler's state is not
            sampler.load_state_dict(loader_sampler_state(torch.load(path, weights_only=False), path))
            logger.warning(
                "%s: global_steps=%d is an epoch boundary (%d steps per epoch), where verl does not restore the "
                "dataloader; the sampler's state (posteriors, generator) was restored from %s",
                type(sampler).__name__,
                self.global_steps,
                steps_per_epoch,
                path,
            )
        return resumed


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
