"""Dry run of a recipe: compose its full verl config, validate it, build the sampler, exit.

    python3 -m vade_verl.dryrun [--strict] [--trainer MODULE] [--config-dir DIR --config-name NAME] [--print-config] OVERRIDES...
    vade-verl dry-run ...                                  # the same
    DRY_RUN=1 bash recipes/vade/run_qwen2_5_vl_7b_grpo_vade.sh        # every recipe: its trainer and overrides
    DRY_RUN=strict bash recipes/vade/run_qwen2_5_vl_7b_grpo_vade.sh   # the same with --strict

With the overrides the trainer would get, in this order, each step failing the run with the
reason (exit 1):

1. Hydra composes the config of the trainer ``--trainer`` names (``TRAINERS``; default: the
   recipes' entry point for the installed verl): ``verl.trainer.main_ppo`` composes verl's real
   ``ppo_trainer.yaml``; ``vade_verl.verl09.main_ppo`` its own config (verl 0.9.x);
   ``dapo.main_dapo`` (verl-recipe's DAPO trainer) the DAPO recipe's ``dapo_trainer.yaml`` when
   ``dapo`` is importable (the DAPO recipe puts ``VERL_RECIPE_ROOT`` on ``PYTHONPATH``), else
   verl's ``ppo_trainer`` plus the keys that file adds (``DAPO_RECIPE_KEYS``, verl-recipe
   8f9e7ac), and says so. verl's config is struct, so a misspelled key fails here. For
   ``dapo.main_dapo`` with a checkout, :func:`check_dapo_checkout` first imports ``dapo.main_dapo``
   and its trainer ``dapo.dapo_ray_trainer.RayDAPOTrainer`` under the installed verl, as the run
   will, and compares the checkout's git commit with ``DAPO_RECIPE_COMMIT``.
   ``--config-dir``/``--config-name`` compose another config instead.
2. What verl's ``main_ppo`` does before starting Ray: the legacy-reward migration (0.7),
   resolving every interpolation, ``verl.utils.config.validate_config`` (actor dataclass, batch
   divisibility, micro-batch settings), and for ``vade_verl.verl09.main_ppo`` its ``check_config``.
3. verl's ``RolloutConfig`` dataclass for ``actor_rollout_ref.rollout`` (as the workers build it),
   and the registries: ``algorithm.adv_estimator`` and ``policy_loss.loss_mode`` must name a
   registered estimator / loss, after importing what verl would (``VERL_USE_EXTERNAL_MODULES``,
   ``actor_rollout_ref.model.external_lib``, ``data.custom_cls``, a ``pkg://`` reward function).
4. ``data.sampler.vade`` options given to a sampler other than ``VADESampler`` are an error.
5. The sampler, built by the trainer's own ``create_rl_sampler`` (verl's, or
   ``vade_verl.verl09.main_ppo``'s on 0.9) on the dataset of ``data.train_files`` read by verl's
   dataset class without tokenizer (so the prompt-length filter is not run). When a train file
   does not exist here, a stand-in of 2 x batch text rows is used instead, and the output says so.
6. The data against the model (``vade_verl.verl_adapters.data_check.check_data``): ``data.train_files`` and
   ``data.val_files``, each read by the configured dataset class with the model's own tokenizer and
   processor (a local folder, or a Hub id's snapshot in the Hugging Face cache); rows with images for a
   model without a processor, ``<image>`` placeholders without ``data.image_key``'s column, images verl
   cannot open, and prompts over ``data.max_prompt_length`` once images are tokens fail here, naming the
   key and the row; the report gives the prompt lengths. 256 rows of each list, evenly spaced (every row
   with ``--strict``).

Nothing starts Ray or loads a model's weights. Without ``--strict`` (the dry run on a laptop) a model, data
file, reward-function file or DAPO checkout that is not on this machine is reported and the check that
needs it skipped; with ``--strict`` (``DRY_RUN=strict``, on the machine that will train) each is an error
(:func:`missing_inputs`). The MSSR warm-start dump (``data.mssr.warm_start_file``, written by the recipe's
warm-start pass and read at the first training step) is only noted in both.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.metadata
import os
import subprocess
import sys
import tempfile
from typing import Any, Optional

from omegaconf import OmegaConf

from vade_verl.verl_adapters.data_check import check_data, files_of, local_model_dir, missing_files

VADE_SAMPLER_NAME = "VADESampler"

VERL_ENTRY = "verl.trainer.main_ppo"
VERL09_ENTRY = "vade_verl.verl09.main_ppo"
DAPO_ENTRY = "dapo.main_dapo"
TRAINERS = (VERL_ENTRY, VERL09_ENTRY, DAPO_ENTRY)

# The verl-recipe commit the DAPO baseline is pinned to (docs/recipes.md section 5): its dapo/ imports under
# verl 0.7.1; later commits import verl.trainer.main_ppo_v0, which 0.7.1 lacks.
DAPO_RECIPE_COMMIT = "8f9e7ac93acac57f6ef7e8dffa3de788d148a09a"
DAPO_TRAINER_MODULE, DAPO_TRAINER_CLASS = "dapo.dapo_ray_trainer", "RayDAPOTrainer"

# What verl-recipe's dapo/config/dapo_trainer.yaml (commit 8f9e7ac) adds to verl's ppo_trainer; the
# stand-in for that file when no verl-recipe checkout is importable. tests/test_recipes.py compares
# the two where a checkout is given (VERL_RECIPE_ROOT).
DAPO_RECIPE_KEYS = {
    "data": {"gen_batch_size": "${data.train_batch_size}"},
    "reward": {
        "reward_manager": {"name": "dapo"},
        "reward_kwargs": {
            "overlong_buffer_cfg": {"enable": False, "len": 0, "penalty_factor": 0.0, "log": False},
            "max_resp_len": None,
        },
    },
    "algorithm": {
        "filter_groups": {
            "_target_": "verl.trainer.config.FilterGroupsConfig",
            "enable": False,
            "metric": None,
            "max_num_gen_batches": 0,
        }
    },
    "trainer": {"project_name": "verl-dapo"},
}


class DryRunError(Exception):
    """A check failed: the message says which and why."""


def verl_version() -> tuple[int, int]:
    major, minor = importlib.metadata.version("verl").split(".")[:2]
    return int(major), int(minor)


def default_trainer() -> str:
    """The recipes' entry point for the installed verl (their ``TRAINER`` knob)."""
    return VERL09_ENTRY if verl_version() >= (0, 8) else VERL_ENTRY


def verl_config_dir() -> str:
    import verl

    return os.path.join(os.path.dirname(verl.__file__), "trainer", "config")


def dapo_recipe_config_dir() -> Optional[str]:
    """verl-recipe's ``dapo/config`` when ``dapo.main_dapo`` is importable, else None."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(DAPO_ENTRY)
    except ImportError:
        return None
    return os.path.join(os.path.dirname(spec.origin), "config") if spec and spec.origin else None


def git_commit(folder: str) -> Optional[str]:
    """The commit checked out in ``folder`` (a git work tree or submodule), or None when it is not one (or git
    is not installed)."""
    try:
        done = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def check_dapo_checkout(strict: bool) -> list[str]:
    """The DAPO recipe's trainer as the run will load it: ``dapo.main_dapo`` and ``dapo.dapo_ray_trainer``'s
    ``RayDAPOTrainer`` imported under the installed verl (``main_dapo`` imports the trainer only inside its task
    runner, so both are imported here), then the checkout's commit compared with ``DAPO_RECIPE_COMMIT``.
    Returns report lines; raises :class:`DryRunError`. Without an importable checkout: a line saying the trainer
    was not checked (``strict``: an error)."""
    import importlib.util

    pin = DAPO_RECIPE_COMMIT
    try:
        spec = importlib.util.find_spec(DAPO_ENTRY)
    except ImportError:
        spec = None
    if spec is None or not spec.origin:
        what = f"no verl-recipe checkout importable ({DAPO_ENTRY} not found: set VERL_RECIPE_ROOT)"
        if strict:
            raise DryRunError(f"DRY_RUN=strict: {what}")
        return [f"DAPO trainer: not checked, {what}"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))
    commit = git_commit(root)
    where = f"{root} (at {commit[:12] if commit else 'no git commit'}; the recipe's pin: verl-recipe {pin[:12]})"
    verl = importlib.metadata.version("verl")
    try:
        importlib.import_module(DAPO_ENTRY)
        getattr(importlib.import_module(DAPO_TRAINER_MODULE), DAPO_TRAINER_CLASS)
    except Exception as error:  # the run would fail here, after Ray has started: report it now
        raise DryRunError(
            f"verl-recipe's DAPO trainer does not import under verl {verl}: {type(error).__name__}: {error}. "
            f"Checkout {where}: git -C {root} checkout {pin}"
        ) from error
    if commit != pin:
        if commit is None and not strict:
            return [f"DAPO trainer: {DAPO_ENTRY} and {DAPO_TRAINER_MODULE}.{DAPO_TRAINER_CLASS} import under verl {verl}; "
                    f"{root} is not a git checkout, so its commit was not compared with the pin {pin[:12]}"]
        raise DryRunError(
            f"VERL_RECIPE_ROOT={root} is at {commit[:12] if commit else '(not a git checkout)'}, but the DAPO recipe "
            f"is pinned to verl-recipe {pin} (docs/recipes.md section 5): git -C {root} checkout {pin}"
        )
    return [f"DAPO trainer: verl-recipe {commit[:12]} at {root} (the pinned commit): {DAPO_ENTRY} and "
            f"{DAPO_TRAINER_MODULE}.{DAPO_TRAINER_CLASS} import under verl {verl}"]


def trainer_config(trainer: str, overrides: list[str], workdir: str) -> tuple[str, str, str]:
    """(config dir, config name, where it comes from) that ``trainer`` composes."""
    if trainer == VERL_ENTRY:
        if verl_version() >= (0, 8) and any(o.lstrip("+").startswith("data.sampler.") for o in overrides):
            raise DryRunError(
                f"verl {importlib.metadata.version('verl')}'s {VERL_ENTRY} has no data.sampler (removed in verl 0.8): "
                f"run {VERL09_ENTRY} instead (recipes: TRAINER={VERL09_ENTRY}; docs/verl09.md)"
            )
        return verl_config_dir(), "ppo_trainer", "verl's ppo_trainer"
    if trainer == VERL09_ENTRY:
        from vade_verl.verl09 import main_ppo

        return os.path.join(os.path.dirname(main_ppo.__file__), "config"), main_ppo.CONFIG_NAME, "vade_verl.verl09's config"
    if trainer == DAPO_ENTRY:
        recipe_dir = dapo_recipe_config_dir()
        if recipe_dir:
            return recipe_dir, "dapo_trainer", f"the DAPO recipe's dapo_trainer ({recipe_dir})"
        config_dir, config_name = with_extra_keys(verl_config_dir(), "ppo_trainer", DAPO_RECIPE_KEYS, workdir)
        return config_dir, config_name, "verl's ppo_trainer + the DAPO recipe's keys (no verl-recipe checkout importable)"
    raise DryRunError(f"unknown trainer {trainer!r}: the recipes run one of {', '.join(TRAINERS)}")


def with_extra_keys(config_dir: str, config_name: str, extra: dict, workdir: str) -> tuple[str, str]:
    """A config that is ``config_name`` plus ``extra`` (keys added, struct like the rest)."""
    primary = {"hydra": {"searchpath": [f"file://{os.path.abspath(config_dir)}"]}, "defaults": [config_name, "_self_"], **extra}
    OmegaConf.save(OmegaConf.create(primary), os.path.join(workdir, "dryrun_config.yaml"))
    return workdir, "dryrun_config"


def compose_config(config_dir: str, config_name: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=os.path.abspath(config_dir), version_base=None):
        return compose(config_name=config_name, overrides=overrides)


def validate_like_main_ppo(config, trainer: str):
    """Step 2 of the module docstring."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    if verl_version() < (0, 8):
        from verl.experimental.reward_loop import migrate_legacy_reward_impl

        config = migrate_legacy_reward_impl(config)
    OmegaConf.resolve(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    if trainer == VERL09_ENTRY:
        from vade_verl.verl09.main_ppo import check_config

        check_config(config)
    return config


def import_configured_modules(config) -> None:
    """Import what registers plug-ins in verl's processes: ``VERL_USE_EXTERNAL_MODULES`` (from the
    environment or the config's Ray ``runtime_env``), ``actor_rollout_ref.model.external_lib``, the
    module of ``data.custom_cls`` (which verl loads in the driver) and a ``pkg://`` reward function."""
    from verl.utils.import_utils import load_extern_object

    listed = OmegaConf.select(config, "ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES")
    for modules in (os.environ.get("VERL_USE_EXTERNAL_MODULES"), listed):
        for name in str(modules or "").split(","):
            if name.strip():
                importlib.import_module(name.strip())
    external_lib = config.actor_rollout_ref.model.get("external_lib")
    if external_lib:
        importlib.import_module(external_lib)
    custom_cls = config.data.get("custom_cls") or {}
    if custom_cls.get("path"):
        load_extern_object(custom_cls.path, custom_cls.name)
    reward_fn = OmegaConf.select(config, "reward.custom_reward_function") or {}
    if str(reward_fn.get("path") or "").startswith("pkg://"):  # a file path may exist only on the GPU machine
        load_extern_object(reward_fn.path, reward_fn.name)


def validate_dataclasses_and_registries(config) -> None:
    """Step 3 of the module docstring."""
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn
    from verl.utils.config import omega_conf_to_dataclass

    import_configured_modules(config)
    # the workers build RolloutConfig from this node (verl 0.7.1 fsdp_workers.py); ``algorithm`` is
    # read as a DictConfig, so extra keys there (+algorithm.diva.*) are legal and not checked here
    omega_conf_to_dataclass(config.actor_rollout_ref.rollout)
    get_adv_estimator_fn(config.algorithm.adv_estimator)
    get_policy_loss_fn(config.actor_rollout_ref.actor.policy_loss.loss_mode)


def check_sampler_options(config) -> None:
    """Step 4: VADE options are read by VADESampler only."""
    sampler = config.data.get("sampler") or {}
    if sampler.get("vade") is not None and sampler.get("class_name") != VADE_SAMPLER_NAME:
        raise DryRunError(
            f"data.sampler.vade options are set but data.sampler.class_name={sampler.get('class_name')!r}: "
            f"they are read only by {VADE_SAMPLER_NAME} (data.sampler.class_path=pkg://vade_verl.vade.sampler)"
        )


def write_stand_in(path: str, rows: int) -> str:
    import pandas as pd

    pd.DataFrame(
        [
            {
                "data_source": "dry_run",
                "prompt": [{"role": "user", "content": f"stand-in question {i}"}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": "0"},
                "extra_info": {"index": i, "split": "train"},
            }
            for i in range(rows)
        ]
    ).to_parquet(path)
    return path


def build_sampler(config, workdir: str, trainer: str) -> tuple[Any, int, str]:
    """Step 5: (sampler, dataset rows, where the rows came from)."""
    if verl_version() < (0, 8):
        from verl.trainer.main_ppo import create_rl_dataset, create_rl_sampler
    else:
        from verl.trainer.ppo.utils import create_rl_dataset

        if trainer == VERL09_ENTRY:
            from vade_verl.verl09.main_ppo import create_rl_sampler
        else:
            from verl.trainer.ppo.utils import create_rl_sampler

    data_config = copy.deepcopy(config.data)
    data_config.filter_overlong_prompts = False
    files = files_of(config.data.train_files)
    missing = missing_files(files)
    if missing:
        batch = int(data_config.get("gen_batch_size") or data_config.train_batch_size)
        files = [write_stand_in(os.path.join(workdir, "stand_in.parquet"), 2 * batch)]
        source = f"a stand-in of {2 * batch} text rows (not found here: {', '.join(missing)})"
    else:
        source = ", ".join(files)
    dataset = create_rl_dataset(files, data_config, None, None, is_train=True, max_samples=data_config.get("train_max_samples", -1))
    return create_rl_sampler(data_config, dataset), len(dataset), source


def reward_function_file(config) -> Optional[str]:
    """The custom reward function's file when it is a file path (not ``pkg://``)."""
    path = OmegaConf.select(config, "reward.custom_reward_function.path") or OmegaConf.select(
        config, "custom_reward_function.path"
    )
    return str(path) if path and not str(path).startswith("pkg://") else None


def missing_inputs(config) -> list[str]:
    """What the run reads that is not on this machine: the model (a local folder, or a Hub id's snapshot in the
    Hugging Face cache), the train and validation files, a reward-function file. ``--strict`` refuses them."""
    model = str(config.actor_rollout_ref.model.path)
    missing = []
    if local_model_dir(model)[0] is None:
        missing.append(f"actor_rollout_ref.model.path={model}: {local_model_dir(model)[1]}")
    for key in ("data.train_files", "data.val_files"):
        missing.extend(f"{key}: {f} not on this machine" for f in missing_files(OmegaConf.select(config, key)))
    reward_fn = reward_function_file(config)
    if reward_fn and not os.path.exists(os.path.expanduser(reward_fn)):
        missing.append(f"reward.custom_reward_function.path: {reward_fn} not on this machine")
    return missing


def notes_on_local_paths(config) -> list[str]:
    notes = []
    reward_fn = reward_function_file(config)
    if reward_fn and not os.path.exists(os.path.expanduser(reward_fn)):
        notes.append(f"reward function file {reward_fn} does not exist here")
    warm_start = OmegaConf.select(config, "data.mssr.warm_start_file")
    if OmegaConf.select(config, "data.mssr.init", default="warm_start") == "warm_start" and warm_start:
        if not os.path.exists(os.path.expanduser(str(warm_start))):
            notes.append(f"data.mssr.warm_start_file {warm_start} does not exist here (the warm-start pass writes it; "
                         "the training run reads it at its first step)")
    return notes


def dry_run(
    overrides: list[str],
    trainer: Optional[str] = None,
    config_dir: Optional[str] = None,
    config_name: Optional[str] = None,
    strict: bool = False,
) -> tuple[Any, list[str]]:
    """Steps 1-6; returns the resolved config and the report lines. Raises on the first failure; with
    ``strict``, also when the model, a data file, a reward-function file or the DAPO checkout is not here."""
    import ray

    trainer = trainer or default_trainer()
    with tempfile.TemporaryDirectory(prefix="vade_dryrun_") as workdir:
        dapo_lines = check_dapo_checkout(strict) if trainer == DAPO_ENTRY else []
        if config_dir:
            config_from = f"{config_name} in {config_dir}"
        else:
            config_dir, config_name, config_from = trainer_config(trainer, overrides, workdir)
        config = compose_config(config_dir, config_name, overrides)
        config = validate_like_main_ppo(config, trainer)
        missing = missing_inputs(config) if strict else []
        if missing:
            raise DryRunError("DRY_RUN=strict: " + "; ".join(missing))
        validate_dataclasses_and_registries(config)
        check_sampler_options(config)
        sampler, rows, source = build_sampler(config, workdir, trainer)
        data_lines = check_data(config, max_rows=None if strict else 256)
    if ray.is_initialized():
        raise DryRunError("Ray was started during the dry run")
    data = config.data
    report = [
        f"verl {importlib.metadata.version('verl')}, trainer {trainer}, config {config_from} + {len(overrides)} overrides: "
        "composed and validated",
        f"algorithm.adv_estimator={config.algorithm.adv_estimator} "
        f"loss_mode={config.actor_rollout_ref.actor.policy_loss.loss_mode} "
        f"rollout.n={config.actor_rollout_ref.rollout.n} data.train_batch_size={data.train_batch_size}"
        + (f" data.gen_batch_size={data.gen_batch_size}" if data.get("gen_batch_size") else ""),
        f"sampler {type(sampler).__name__} over {rows} rows of {source}",
    ]
    if type(sampler).__name__ == VADE_SAMPLER_NAME:
        report.append(f"VADE {sampler.config}")
    if trainer == DAPO_ENTRY:
        report.append(f"algorithm.filter_groups={OmegaConf.to_container(config.algorithm.filter_groups)}")
        report.extend(dapo_lines)
    report.extend(data_lines)
    report.extend(f"note: {note}" for note in notes_on_local_paths(config))
    report.append("stopped before Ray and model loading")
    return config, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="vade-verl dry-run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--strict", action="store_true", help="a model, data file or checkout not on this machine is an error; every data row is checked"
    )
    parser.add_argument("--trainer", choices=TRAINERS, help="the module the recipe runs (default: the recipes' entry for this verl)")
    parser.add_argument("--config-dir", help="compose this config folder instead of the trainer's default")
    parser.add_argument("--config-name", help="config name in --config-dir")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as given to the trainer")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if bool(args.config_dir) != bool(args.config_name):
        parser.error("--config-dir and --config-name go together")
    try:
        config, report = dry_run(args.overrides, args.trainer, args.config_dir, args.config_name, args.strict)
    except Exception as error:  # every failure is a finding about the recipe: report it, exit 1
        print(f"dry-run FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if args.print_config:
        print(OmegaConf.to_yaml(config))
    print("\n".join(f"dry-run: {line}" for line in report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
