"""Every recipe's dry run on CPU, on geo3k-layout data prepared here; misspelled keys must fail.

The recipes are run by bash with ``PYTHON`` set to a shim that records the command line it gets
(and runs real Python only for the recipes' verl-version probe); the recorded dry-run commands
are then run in this process (verl imported once), and one recipe end to end as a subprocess.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vade_verl import dryrun
from vade_verl.data.geo3k import write_rows
from vade_verl.data.rows import make_rows

ROOT = Path(__file__).resolve().parents[1]
ABLATIONS = ["variance", "greedy", "no_decay"]
RECIPES = [
    ("vade/run_qwen2_5_vl_7b_grpo_vade.sh", {}),
    ("vade/run_qwen2_5_vl_3b_grpo_vade.sh", {}),
    ("vade/run_qwen2_5_vl_7b_gspo_vade.sh", {}),
    ("vade/run_qwen2_5_vl_3b_gspo_vade.sh", {}),
    *[("vade/run_qwen2_5_vl_7b_grpo_vade_ablation.sh", {"ABLATION": a}) for a in ABLATIONS],
    ("baselines/run_qwen2_5_vl_7b_grpo.sh", {}),
    ("baselines/run_qwen2_5_vl_7b_gspo.sh", {}),
    ("baselines/run_qwen2_5_vl_7b_grpo_dapo.sh", {}),
]
RECIPE_IDS = [f"{name}{':' + env['ABLATION'] if env else ''}" for name, env in RECIPES]
SHIM = """#!/usr/bin/env bash
# Records "$PWD" and the arguments (one per line) to $CAPTURE; runs real Python for `-c` probes.
if [ "$1" = -c ]; then exec "$REAL_PYTHON" "$@"; fi
{ echo "$PWD"; printf '%s\\n' "$@"; } > "$CAPTURE"
"""


def test_every_recipe_is_covered():
    on_disk = sorted(str(p.relative_to(ROOT / "recipes")) for d in ("vade", "baselines") for p in (ROOT / "recipes" / d).glob("*.sh"))
    assert on_disk == sorted({name for name, _ in RECIPES})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """train/test parquet as `python -m vade_verl.data.geo3k` writes them: 400 rows, tiny images."""
    out = tmp_path_factory.mktemp("geo3k")
    rng = np.random.default_rng(0)
    records = [
        {"images": [Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8))], "problem": f"<image>Find x{i}.", "answer": str(i)}
        for i in range(400)
    ]
    write_rows(make_rows(records, "train", "hiyouga/geometry3k", id_scheme="content"), str(out / "train.parquet"))
    write_rows(make_rows(records[:8], "test", "hiyouga/geometry3k"), str(out / "test.parquet"))
    return out


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    path = tmp_path_factory.mktemp("shim") / "python"
    path.write_text(SHIM)
    path.chmod(0o755)
    return path


def run_recipe(name, env, shim, tmp_path, *extra, dry_run="1", **more_env):
    """Run a recipe with the recording shim; returns (completed process, cwd, recorded args)."""
    capture = tmp_path / "capture.txt"
    full_env = {
        **os.environ,
        **env,
        **more_env,
        "PYTHON": str(shim),
        "REAL_PYTHON": sys.executable,
        "CAPTURE": str(capture),
        "DRY_RUN": dry_run,
    }
    done = subprocess.run(["bash", str(ROOT / "recipes" / name), *extra], env=full_env, capture_output=True, text=True, timeout=120)
    if not capture.exists():
        return done, None, None
    cwd, *args = capture.read_text().splitlines()
    return done, cwd, args


@pytest.fixture(scope="module")
def recorded(shim, data_dir, tmp_path_factory):
    """{recipe id: the dry-run command line it records} with DATA_DIR set to the prepared data."""
    commands = {}
    for rid, (name, env) in zip(RECIPE_IDS, RECIPES):
        done, _, args = run_recipe(name, {**env, "DATA_DIR": str(data_dir)}, shim, tmp_path_factory.mktemp("run"))
        assert done.returncode == 0, done.stderr
        commands[rid] = args
    return commands


@pytest.mark.parametrize("rid", RECIPE_IDS)
def test_recipe_dry_run_passes(recorded, rid, capsys):
    args = recorded[rid]
    assert args[:2] == ["-m", "vade_verl.dryrun"]
    assert dryrun.main(args[2:]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "composed and validated" in out and "stopped before Ray" in out
    assert "stand-in" not in out  # built on the prepared train.parquet
    expected_sampler = "VADESampler" if rid.startswith("vade/") else "RandomSampler"
    assert f"sampler {expected_sampler} over 400 rows" in out
    if "gspo" in rid:
        assert "loss_mode=gspo" in out
    if rid.endswith("dapo.sh"):
        assert args[2] == "--dapo" and "'enable': True" in out and "data.gen_batch_size=384" in out
    if ":" in rid:
        ablation = rid.split(":")[1]
        expected = {"variance": "score='variance'", "greedy": "selection='greedy'", "no_decay": "decay=False"}[ablation]
        assert expected in out


@pytest.mark.parametrize(
    "good, typo",
    [
        ("data.max_response_length=", "data.max_respones_length="),
        ("actor_rollout_ref.actor.kl_loss_coef=", "actor_rollout_ref.actor.kl_loss_cofe="),
        ("data.sampler.class_name=", "data.sampler.clas_name="),
        ("actor_rollout_ref.rollout.n=", "actor_rollout_ref.rollout.num="),
    ],
)
def test_a_misspelled_key_in_a_recipe_fails(recorded, good, typo, capsys):
    args = recorded["vade/run_qwen2_5_vl_7b_gspo_vade.sh"][2:]
    changed = [typo + a[len(good) :] if a.startswith(good) else a for a in args]
    assert changed != args
    assert dryrun.main(changed) == 1
    wrong_key = typo.rstrip("=").lstrip("+")
    assert wrong_key.split(".")[-1] in capsys.readouterr().err


@pytest.mark.parametrize(
    "override, message",
    [
        ("actor_rollout_ref.actor.policy_loss.loss_mode=gpso", "gpso"),  # a value, not a key: verl's registry
        ("+data.sampler.vade.selection=thompsom", "data.sampler.vade.selection='thompsom'"),  # our VADEConfig
        ("+data.sampler.vade.correctnes=auto", "data.sampler.vade.correctnes"),  # a misspelled VADE key
        ("+data.sampler.vade.reward_threshold=0.5", "data.sampler.vade.correctness"),  # the renamed key
        ("actor_rollout_ref.actor.ppo_mini_batch_size=256", "ppo_mini_batch_size"),  # verl's validate_config
    ],
)
def test_bad_values_fail(recorded, override, message, capsys):
    assert dryrun.main([*recorded["vade/run_qwen2_5_vl_7b_gspo_vade.sh"][2:], override]) == 1
    assert message in capsys.readouterr().err


def test_vade_options_without_the_vade_sampler_fail(recorded, capsys):
    args = [*recorded["baselines/run_qwen2_5_vl_7b_grpo.sh"][2:], "+data.sampler.vade.decay=False"]
    assert dryrun.main(args) == 1
    assert "read only by VADESampler" in capsys.readouterr().err


def test_missing_data_uses_a_stand_in_and_says_so(recorded, tmp_path, capsys):
    args = [a for a in recorded["vade/run_qwen2_5_vl_7b_grpo_vade.sh"][2:] if not a.startswith("data.train_files=")]
    assert dryrun.main([*args, f"data.train_files={tmp_path}/nowhere.parquet"]) == 0
    assert "stand-in of 256 text rows (not found here" in capsys.readouterr().out


def test_without_dry_run_the_recipes_call_the_trainer_with_the_same_overrides(recorded, shim, data_dir, tmp_path):
    name = "vade/run_qwen2_5_vl_7b_grpo_vade.sh"
    done, _, args = run_recipe(name, {"DATA_DIR": str(data_dir)}, shim, tmp_path, "trainer.total_epochs=1", dry_run="0")
    assert done.returncode == 0, done.stderr
    assert args[:2] == ["-m", "verl.trainer.main_ppo" if dryrun.verl_version() < (0, 8) else "vade_verl.verl09.main_ppo"]
    assert args[2:] == [*recorded[name][2:], "trainer.total_epochs=1"]  # "$@" passes through, last


def test_dapo_runs_verls_recipe_trainer_from_a_checkout(recorded, shim, data_dir, tmp_path):
    name = "baselines/run_qwen2_5_vl_7b_grpo_dapo.sh"
    done, _, _ = run_recipe(name, {"DATA_DIR": str(data_dir)}, shim, tmp_path, dry_run="0")
    assert done.returncode != 0 and "set VERL_RECIPE_ROOT" in done.stderr
    done, cwd, args = run_recipe(name, {"DATA_DIR": str(data_dir), "VERL_RECIPE_ROOT": str(tmp_path)}, shim, tmp_path, dry_run="0")
    assert done.returncode == 0, done.stderr
    assert cwd == str(tmp_path) and args[:2] == ["-m", "recipe.dapo.main_dapo"]
    assert args[2:] == recorded[name][3:]  # the same overrides, without the dry run's --dapo


def test_ablation_recipe_refuses_an_unknown_ablation(shim, tmp_path):
    done, _, args = run_recipe("vade/run_qwen2_5_vl_7b_grpo_vade_ablation.sh", {"ABLATION": "decay"}, shim, tmp_path)
    assert done.returncode == 2 and args is None and "set ABLATION to variance, greedy or no_decay" in done.stderr


def test_one_recipe_end_to_end_in_a_subprocess(data_dir, tmp_path):
    """The real command: bash recipe -> python -m vade_verl.dryrun, and a typo from "$@" failing it."""
    env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "DATA_DIR": str(data_dir)}
    recipe = str(ROOT / "recipes/vade/run_qwen2_5_vl_3b_grpo_vade.sh")
    done = subprocess.run(["bash", recipe, "data.trian_files=x"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "dry-run FAILED" in done.stderr and "trian_files" in done.stderr
