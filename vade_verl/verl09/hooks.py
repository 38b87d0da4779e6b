"""What both verl 0.9 entry points (legacy ``main_ppo``, V1 ``main_ppo_v1``) use to reach verl's trainer.

verl 0.8 removed the sampler plug-in point from ``create_rl_sampler`` and 0.9's trainers call that
function by its module-level name, so the entry points bind the name to ours while verl's own code
runs (``rebound``) instead of copying or patching verl.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any, Callable, Iterator

import ray
from omegaconf import DictConfig

from verl.trainer.main_ppo import run_ppo
from verl.trainer.ppo import utils as ppo_utils
from verl.utils.config import validate_config
from verl.utils.device import auto_set_device
from verl.utils.import_utils import load_extern_object


# Set on the V1 trainers of ``python3 -m vade_verl.verl09.main_ppo_v1`` (``v1_trainer.VADETrainerMixin``), which
# attach the loader's sampler to the replay buffer; the replay buffer checks it without importing the trainer.
FEEDS_REPLAY_BUFFER = "_vade_attaches_sampler_to_replay_buffer"


@contextlib.contextmanager
def rebound(module: ModuleType, **names: Any) -> Iterator[None]:
    """Bind ``module.<name> = value`` for each keyword while the block runs, then restore the old values."""
    saved = {name: getattr(module, name) for name in names}
    for name, value in names.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def sampler_class(data_config: DictConfig) -> type | None:
    """The class named by ``data.sampler.{class_path,class_name}``, or None when unset."""
    sampler_config = data_config.get("sampler") or {}
    if sampler_config.get("class_path") is None:
        return None
    return load_extern_object(sampler_config.class_path, sampler_config.class_name)


def create_rl_sampler(data_config: DictConfig, dataset: Any):
    """verl 0.7.1's ``create_rl_sampler``: a ``data.sampler.class_path`` sampler, else verl's own."""
    cls = sampler_class(data_config)
    if cls is None:
        return ppo_utils.create_rl_sampler(data_config, dataset)
    return cls(data_source=dataset, data_config=data_config)


def python_class(actor_class: Any) -> type:
    """The Python class behind a ``@ray.remote`` class (verl 0.9 decorates its ``TaskRunner``s)."""
    metadata = getattr(actor_class, "__ray_metadata__", None)
    return actor_class if metadata is None else metadata.modified_class


def run_checked(config: DictConfig, check_config: Callable[[DictConfig], None], task_runner_class: type) -> None:
    """What ``verl.trainer.main_ppo.main`` runs (device, ``validate_config``, ``run_ppo``), with our
    ``check_config`` first so that its errors, which name our keys, come before verl's."""
    auto_set_device(config)
    check_config(config)
    use_reference_policy, use_critic = ppo_utils.need_reference_policy(config), ppo_utils.need_critic(config)
    validate_config(config=config, use_reference_policy=use_reference_policy, use_critic=use_critic)
    run_ppo(config, task_runner_class=ray.remote(task_runner_class))
