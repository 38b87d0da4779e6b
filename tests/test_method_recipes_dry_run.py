"""DRY_RUN=1 of the DIVA-GRPO and MSSR recipes through bash and a real interpreter: their full config
validates on CPU with the data absent (MSSR: the warm-start pass's and training's), a typo fails."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = ["recipes/diva/run_diva_geo3k.sh", "recipes/mssr/run_mssr_geo3k.sh"]
TRAINER_CALLS = {"recipes/diva/run_diva_geo3k.sh": 1, "recipes/mssr/run_mssr_geo3k.sh": 2}


def dry_run(recipe, *extra, tmp_path):
    absent = tmp_path / "absent"
    env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "DATA_DIR": str(absent), "CKPT_DIR": str(absent)}
    return subprocess.run(["bash", os.path.join(ROOT, recipe), *extra], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("recipe", RECIPES)
def test_dry_run_validates_and_stops_before_ray(recipe, tmp_path):
    result = dry_run(recipe, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    calls = TRAINER_CALLS[recipe]
    assert result.stdout.count("composed and validated") == result.stdout.count("stopped before Ray and model loading") == calls
    assert result.stdout.count("stand-in") == calls  # the data dir does not exist here, and it says so
    if "mssr" in recipe:  # the pass's dump is not written in a dry run: training's check notes it
        assert f"note: data.mssr.warm_start_file {tmp_path}/absent/mssr_warm_start/0.jsonl does not exist here" in result.stdout


@pytest.mark.parametrize("recipe", RECIPES)
def test_dry_run_fails_on_a_misspelled_key(recipe, tmp_path):
    result = dry_run(recipe, "actor_rollout_ref.actor.optim.lrr=1e-6", tmp_path=tmp_path)
    assert result.returncode == 1  # MSSR: the pass's check fails, training's is not run
    assert result.stderr.count("dry-run FAILED") == 1 and "lrr" in result.stderr
