"""DRY_RUN=1 of the DIVA-GRPO and MSSR recipes: their full config validates on CPU, a typo fails."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = ["recipes/diva/run_diva_geo3k.sh", "recipes/mssr/run_mssr_geo3k.sh"]


def dry_run(recipe, *extra, tmp_path):
    env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "DATA_DIR": str(tmp_path / "absent")}
    return subprocess.run(["bash", os.path.join(ROOT, recipe), *extra], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("recipe", RECIPES)
def test_dry_run_validates_and_stops_before_ray(recipe, tmp_path):
    result = dry_run(recipe, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "dry-run: stopped before Ray and model loading" in result.stdout
    assert "stand-in" in result.stdout  # the data dir does not exist here, and it says so


@pytest.mark.parametrize("recipe", RECIPES)
def test_dry_run_fails_on_a_misspelled_key(recipe, tmp_path):
    result = dry_run(recipe, "actor_rollout_ref.actor.optim.lrr=1e-6", tmp_path=tmp_path)
    assert result.returncode == 1
    assert "lrr" in result.stderr
