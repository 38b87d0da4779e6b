"""The VADE recipes and baselines: every dry run passes on geo3k-layout data made here, every
documented knob changes the composed config, unknown and old knobs are refused, typos fail.

The recipes run under bash with ``PYTHON`` set to a shim that records the command line it gets; the
recorded dry-run commands then run in this process (verl imported once). Knobs are read through
``PRINT_OVERRIDES=1`` and the printed overrides composed with the trainer's config (Hydra, ~0.2 s).
The MSSR recipe calls the trainer twice (warm-start pass, then training): the shim records every
call, and the knobs are read from the last (training) call's overrides.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from vade_verl import dryrun
from vade_verl.data.geo3k import write_rows
from vade_verl.data.rows import make_rows

ROOT = Path(__file__).resolve().parents[1]
ON_VERL09 = dryrun.verl_version() >= (0, 8)
TRAINER = dryrun.default_trainer()
COMMON = [
    "MODEL_PATH", "DATA_DIR", "TRAIN_FILES", "VAL_FILES", "TRAIN_BATCH", "MINI_BATCH", "MICRO_BATCH", "LR",
    "MAX_PROMPT", "MAX_RESPONSE", "TOTAL_EPOCHS", "N_GPUS", "NNODES", "ROLLOUT_TP", "SAVE_FREQ", "TEST_FREQ",
    "CKPT_KEEP", "CKPT_DIR", "PROJECT", "EXPERIMENT", "LOGGER",
]  # fmt: skip
SHARED = [*COMMON, "ROLLOUT_N", "KL_COEF"]  # the VADE recipes and baselines
GSPO_KNOBS = [k for k in SHARED if k != "KL_COEF"]  # GSPO: no KL loss, as verl's examples/gspo_trainer
MSSR_KNOBS = [
    *COMMON, "KL_COEF", "GRAD_CLIP", "TOTAL_STEPS", "MSSR_ALPHA", "MSSR_KAPPA", "MSSR_ENTROPY", "MSSR_RHO_SCHEDULE",
    "MSSR_KL_WINDOW", "MSSR_CORRECTNESS", "MSSR_INIT", "MSSR_WARM_DIR",
]  # fmt: skip
DIVA_KNOBS = [*COMMON, "ROLLOUT_N", "DIVA_K", "DIVA_NUM_VARIANTS", "DIVA_SEED", "DIVA_SAMPLER"]
# knob -> (value set in the environment, {config key: value expected there})
PROBES = {
    "MODEL_PATH": ("/models/probe", {"actor_rollout_ref.model.path": "/models/probe"}),
    "DATA_DIR": ("/probe", {"data.train_files": "/probe/train.parquet", "data.val_files": "/probe/test.parquet"}),
    "TRAIN_FILES": ("/t/train_probe.parquet", {"data.train_files": "/t/train_probe.parquet"}),
    "VAL_FILES": ("[/v/a.parquet,/v/b.parquet]", {"data.val_files": ["/v/a.parquet", "/v/b.parquet"]}),
    "TRAIN_BATCH": ("64", {"data.train_batch_size": 64}),
    "ROLLOUT_N": ("4", {"actor_rollout_ref.rollout.n": 4}),
    "MINI_BATCH": ("16", {"actor_rollout_ref.actor.ppo_mini_batch_size": 16}),
    "MICRO_BATCH": ("2", {"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 2}),
    "LR": ("3e-6", {"actor_rollout_ref.actor.optim.lr": 3e-6}),
    "KL_COEF": ("0.02", {"actor_rollout_ref.actor.kl_loss_coef": 0.02}),
    "MAX_PROMPT": ("4096", {"data.max_prompt_length": 4096}),
    "MAX_RESPONSE": ("1024", {"data.max_response_length": 1024}),
    "TOTAL_EPOCHS": ("3", {"trainer.total_epochs": 3}),
    "N_GPUS": ("4", {"trainer.n_gpus_per_node": 4}),
    "NNODES": ("2", {"trainer.nnodes": 2}),
    "ROLLOUT_TP": ("4", {"actor_rollout_ref.rollout.tensor_model_parallel_size": 4}),
    "SAVE_FREQ": ("7", {"trainer.save_freq": 7}),
    "TEST_FREQ": ("3", {"trainer.test_freq": 3}),
    "CKPT_KEEP": ("5", {"trainer.max_actor_ckpt_to_keep": 5, "trainer.max_critic_ckpt_to_keep": 5}),
    "CKPT_DIR": ("/ckpt/probe", {"trainer.default_local_dir": "/ckpt/probe"}),
    "PROJECT": ("probe_project", {"trainer.project_name": "probe_project"}),
    "EXPERIMENT": ("probe_run", {"trainer.experiment_name": "probe_run"}),
    "LOGGER": ('["console"]', {"trainer.logger": ["console"]}),
    "DAPO_GEN_BATCH": ("256", {"data.gen_batch_size": 256}),
    "GRAD_CLIP": ("0.7", {"actor_rollout_ref.actor.grad_clip": 0.7}),
    "TOTAL_STEPS": ("40", {"trainer.total_training_steps": 40}),
    "MSSR_ALPHA": ("0.3", {"data.mssr.alpha": 0.3}),
    "MSSR_KAPPA": ("3", {"data.mssr.kappa": 3}),
    "MSSR_ENTROPY": ("sampled", {"data.mssr.entropy": "sampled"}),
    "MSSR_RHO_SCHEDULE": ("authors", {"data.mssr.rho_schedule": "authors"}),
    "MSSR_KL_WINDOW": ("20", {"data.mssr.kl_window": 20}),
    "MSSR_CORRECTNESS": ("0.5", {"data.mssr.correctness": 0.5}),
    "MSSR_INIT": ("first_visit", {"data.mssr.init": "first_visit"}),
    "MSSR_WARM_DIR": ("/warm/probe", {"data.mssr.warm_start_file": "/warm/probe/0.jsonl"}),
    "DIVA_K": ("0.2", {"algorithm.diva.k": 0.2}),
    "DIVA_NUM_VARIANTS": ("3", {"data.diva.num_variants": 3}),  # with TRAIN_BATCH=64: 16 problems (tested apart)
    "DIVA_SEED": ("7", {"data.diva.seed": 7}),
    "DIVA_SAMPLER": ("vade", {"data.sampler.class_path": "pkg://vade_verl.vade.sampler", "data.sampler.class_name": "VADESampler"}),
}
# knobs that pick what runs rather than a config value: tested one by one below
RUN_KNOBS = {"TRAINER", "PYTHON", "DRY_RUN", "PRINT_OVERRIDES", "VADE_ABLATION", "VERL_RECIPE_ROOT"}
# recipe id -> (file under recipes/, extra environment, knobs it reads, {key: default}, trainer)
M7, M3 = "Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-3B-Instruct"
RECIPES = {
    "grpo_vade_7b": ("vade/run_qwen2_5_vl_7b_grpo_vade.sh", {}, SHARED, {"actor_rollout_ref.model.path": M7}, TRAINER),
    "grpo_vade_3b": ("vade/run_qwen2_5_vl_3b_grpo_vade.sh", {}, SHARED, {"actor_rollout_ref.model.path": M3}, TRAINER),
    "gspo_vade_7b": ("vade/run_qwen2_5_vl_7b_gspo_vade.sh", {}, GSPO_KNOBS, {"actor_rollout_ref.actor.policy_loss.loss_mode": "gspo"}, TRAINER),
    "gspo_vade_3b": ("vade/run_qwen2_5_vl_3b_gspo_vade.sh", {}, GSPO_KNOBS, {"actor_rollout_ref.rollout.tensor_model_parallel_size": 1}, TRAINER),
    **{
        f"ablation_{a}": ("vade/run_qwen2_5_vl_7b_grpo_vade_ablation.sh", {"VADE_ABLATION": a}, SHARED, {f"data.sampler.vade.{k}": v}, TRAINER)
        for a, (k, v) in {"variance": ("score", "variance"), "greedy": ("selection", "greedy"), "no_decay": ("decay", False)}.items()
    },
    "grpo": ("baselines/run_qwen2_5_vl_7b_grpo.sh", {}, SHARED, {"data.sampler.vade.enable": False}, TRAINER),
    "gspo": ("baselines/run_qwen2_5_vl_7b_gspo.sh", {}, GSPO_KNOBS, {"data.sampler.vade.enable": False, "actor_rollout_ref.actor.policy_loss.loss_mode": "gspo"}, TRAINER),
    "grpo_dapo": ("baselines/run_qwen2_5_vl_7b_grpo_dapo.sh", {}, [*SHARED, "DAPO_GEN_BATCH"], {"data.gen_batch_size": 384, "data.sampler.class_path": None}, dryrun.DAPO_ENTRY),
    "mssr": ("mssr/run_mssr_geo3k.sh", {}, MSSR_KNOBS, {"algorithm.adv_estimator": "mssr", "actor_rollout_ref.rollout.n": 1, "data.train_batch_size": 2048, "data.mssr.init": "warm_start"}, TRAINER),
    "diva": ("diva/run_diva_geo3k.sh", {}, DIVA_KNOBS, {"algorithm.adv_estimator": "diva_grpo", "data.gen_batch_size": 64, "data.train_batch_size": 128, "data.sampler.class_path": None}, TRAINER),
    "diva_vade": ("diva/run_diva_geo3k.sh", {"DIVA_SAMPLER": "vade"}, [k for k in DIVA_KNOBS if k != "DIVA_SAMPLER"], {"data.sampler.class_name": "VADESampler", "data.gen_batch_size": 64}, TRAINER),
}  # fmt: skip
# the sampler each recipe's dry run builds (verl's RandomSampler without data.sampler.class_path)
SAMPLERS = {rid: "RandomSampler" if rid in ("grpo_dapo", "mssr", "diva") else "VADESampler" for rid in RECIPES}
EXPECTED_EXPERIMENTS = {
    "grpo_vade_7b": "qwen2_5_vl_7b_grpo_vade", "grpo_vade_3b": "qwen2_5_vl_3b_grpo_vade",
    "gspo_vade_7b": "qwen2_5_vl_7b_gspo_vade", "gspo_vade_3b": "qwen2_5_vl_3b_gspo_vade",
    "ablation_variance": "qwen2_5_vl_7b_grpo_vade_variance", "ablation_greedy": "qwen2_5_vl_7b_grpo_vade_greedy",
    "ablation_no_decay": "qwen2_5_vl_7b_grpo_vade_no_decay", "grpo": "qwen2_5_vl_7b_grpo",
    "gspo": "qwen2_5_vl_7b_gspo", "grpo_dapo": "qwen2_5_vl_7b_grpo_dapo", "mssr": "mssr_geo3k",
    "diva": "diva_geo3k", "diva_vade": "diva_geo3k",
}  # fmt: skip
DAPO_ON_VERL09 = "the DAPO baseline is pinned to verl-recipe 8f9e7ac, which needs verl 0.7.1"
END_OF_CALL = "--- end of call ---"
SHIM = f"""#!/usr/bin/env bash
# Appends "$PWD", PYTHONPATH, the arguments (one per line) and an end-of-call line to $CAPTURE. Like verl, a
# validation-only training run (not a dry run) writes its dump <trainer.validation_data_dir>/0.jsonl (unless
# $SHIM_NO_DUMP is set).
{{ echo "$PWD"; echo "${{PYTHONPATH:-}}"; printf '%s\\n' "$@"; echo "{END_OF_CALL}"; }} >> "$CAPTURE"
dump=""
for arg in "$@"; do case "$arg" in trainer.validation_data_dir=*) dump="${{arg#*=}}" ;; esac; done
case " $* " in *" vade_verl.dryrun "*) ;; *" trainer.val_only=True "*) if [ -n "$dump" ] && [ -z "${{SHIM_NO_DUMP:-}}" ]; then mkdir -p "$dump" && : > "$dump/0.jsonl"; fi ;; esac
"""


def skip_dapo_on_verl09(rid):
    if ON_VERL09 and rid == "grpo_dapo":
        pytest.skip(DAPO_ON_VERL09)


def base_env(rid="grpo_vade_7b", **extra):
    """The environment without any recipe knob (a CI runner's own must not leak in); on verl 0.9.x
    with TRAINER set as docs/recipes.md says, for the recipes that read it."""
    env = {k: v for k, v in os.environ.items() if k not in PROBES and k not in RUN_KNOBS}
    if ON_VERL09 and RECIPES[rid][4] != dryrun.DAPO_ENTRY:
        env["TRAINER"] = dryrun.VERL09_ENTRY
    return {**env, **extra}


def bash(name, env, *args, timeout=60):
    return subprocess.run(["bash", str(ROOT / "recipes" / name), *args], env=env, capture_output=True, text=True, timeout=timeout)


def printed_overrides(rid, **knobs):
    """The overrides of the recipe's last trainer call (PRINT_OVERRIDES=1 separates calls by an empty line)."""
    name, env, *_ = RECIPES[rid]
    done = bash(name, base_env(rid, **{**env, **knobs}, PRINT_OVERRIDES="1"))
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n\n")[-1].splitlines()


def composed(rid, overrides, tmp_path):
    """The recipe's trainer config with ``overrides`` (no validation: that is the dry run's job)."""
    trainer = RECIPES[rid][4]
    config_dir, config_name, _ = dryrun.trainer_config(trainer, overrides, str(tmp_path))
    return dryrun.compose_config(config_dir, config_name, overrides)


def test_every_recipe_is_covered():
    """Every 8-GPU recipe (the tiny CPU runs are tested by their e2e tests)."""
    on_disk = {
        str(p.relative_to(ROOT / "recipes"))
        for d in ("vade", "baselines", "mssr", "diva")
        for p in (ROOT / "recipes" / d).glob("run_*.sh")
        if not p.name.endswith("tiny_cpu.sh")
    }
    assert on_disk == {name for name, *_ in RECIPES.values()}


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


def run_recipe_calls(rid, shim, tmp_path, *extra, dry_run="1", **env):
    """Run a recipe with the recording shim; returns (completed process, [(cwd, PYTHONPATH, args) per call])."""
    capture = tmp_path / "capture.txt"
    capture.unlink(missing_ok=True)
    name, recipe_env, *_ = RECIPES[rid]
    full_env = base_env(rid, **{**recipe_env, **env}, PYTHON=str(shim), CAPTURE=str(capture), DRY_RUN=dry_run)
    done = bash(name, full_env, *extra)
    blocks = capture.read_text().split(f"{END_OF_CALL}\n")[:-1] if capture.exists() else []
    calls = [(cwd, pythonpath, args) for cwd, pythonpath, *args in (b.splitlines() for b in blocks)]
    return done, calls


def run_recipe(rid, shim, tmp_path, *extra, dry_run="1", **env):
    """(completed process, cwd, PYTHONPATH, args) of the recipe's last call (Nones when none was made)."""
    done, calls = run_recipe_calls(rid, shim, tmp_path, *extra, dry_run=dry_run, **env)
    return (done, *calls[-1]) if calls else (done, None, None, None)


@pytest.fixture(scope="module")
def recorded(shim, data_dir, tmp_path_factory):
    """{recipe id: the dry-run command lines it records, one per trainer call} with DATA_DIR set to
    the prepared data (the MSSR recipe: its warm-start pass, then training)."""
    commands = {}
    for rid in RECIPES:
        done, calls = run_recipe_calls(rid, shim, tmp_path_factory.mktemp("run"), DATA_DIR=str(data_dir))
        assert done.returncode == 0, done.stderr
        commands[rid] = [args for _, _, args in calls]
    return commands


@pytest.mark.parametrize("rid", RECIPES)
def test_recipe_dry_run_passes(recorded, rid, capsys):
    skip_dapo_on_verl09(rid)
    assert len(recorded[rid]) == (2 if rid == "mssr" else 1)  # MSSR: the warm-start pass, then training
    for args in recorded[rid]:
        assert args[:4] == ["-m", "vade_verl.dryrun", "--trainer", RECIPES[rid][4]]
        assert dryrun.main(args[2:]) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert "composed and validated" in out and "stopped before Ray" in out
        assert "stand-in" not in out  # built on the prepared train.parquet
        assert f"sampler {SAMPLERS[rid]} over 400 rows" in out
    if rid == "grpo_dapo":
        assert "'enable': True" in out and "data.gen_batch_size=384" in out
    if rid == "mssr":  # the dump the pass would write is not there: noted, not an error
        assert "note: data.mssr.warm_start_file" in out and "does not exist here" in out


@pytest.mark.parametrize("rid", RECIPES)
def test_every_knob_changes_the_composed_config(rid, tmp_path):
    """All of a recipe's knobs set at once (DATA_DIR apart: TRAIN_FILES/VAL_FILES override it), each
    key compared with its probe value in the (last) trainer call; the defaults differ from every probe value."""
    skip_dapo_on_verl09(rid)
    knobs = RECIPES[rid][2]
    defaults = composed(rid, printed_overrides(rid), tmp_path)
    probed = composed(rid, printed_overrides(rid, **{k: PROBES[k][0] for k in knobs if k != "DATA_DIR"}), tmp_path)
    by_data_dir = composed(rid, printed_overrides(rid, DATA_DIR=PROBES["DATA_DIR"][0]), tmp_path)
    wrong = []
    for knob in knobs:
        config = by_data_dir if knob == "DATA_DIR" else probed
        for key, expected in PROBES[knob][1].items():
            got, default = OmegaConf.select(config, key), OmegaConf.select(defaults, key)
            got, default = (OmegaConf.to_object(v) if OmegaConf.is_config(v) else v for v in (got, default))
            if got != expected or default == expected:
                wrong.append(f"{knob}: {key} = {got!r} (default {default!r}, expected {expected!r})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("rid", RECIPES)
def test_recipe_defaults(rid, tmp_path):
    skip_dapo_on_verl09(rid)
    config = composed(rid, printed_overrides(rid), tmp_path)
    expected = {**RECIPES[rid][3], "trainer.experiment_name": EXPECTED_EXPERIMENTS[rid]}
    assert {key: OmegaConf.select(config, key) for key in expected} == expected
    assert config.actor_rollout_ref.model.use_fused_kernels is True
    assert config.actor_rollout_ref.rollout.free_cache_engine is True
    assert config.trainer.max_actor_ckpt_to_keep == 2 and config.trainer.max_critic_ckpt_to_keep == 2


def documented_knobs():
    """{knob: Hydra keys} from docs/recipes.md's knob table."""
    text = (ROOT / "docs" / "recipes.md").read_text()
    table = text.split("## 3. Knobs", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_0-9]+)` \| ([^|]*) \|", table, flags=re.M)
    return {knob: re.findall(r"`([a-z_][\w.]*)`", sets) for knob, sets in rows}


def knob_key(name):
    done = subprocess.run(["bash", "-c", f'source "{ROOT}/recipes/common.sh"; knob_key {name}'], capture_output=True, text=True)
    return done.stdout.strip()


def test_the_knob_table_is_the_tested_one():
    documented = documented_knobs()
    full = ("common.sh", "vade/run_qwen2_5_vl_7b_grpo_vade.sh", "mssr/run_mssr_geo3k.sh", "diva/run_diva_geo3k.sh")
    read = {k for f in full for k in re.findall(r"^\s*knob ([A-Z_0-9]+) ", (ROOT / "recipes" / f).read_text(), flags=re.M)}
    read |= {"VADE_ABLATION", "DAPO_GEN_BATCH", "VERL_RECIPE_ROOT"}
    assert set(documented) == read
    assert set(documented) == set(PROBES) | RUN_KNOBS
    for knob, (_, expected) in PROBES.items():
        if knob != "DATA_DIR":
            assert documented[knob][:len(expected)] == list(expected), knob
    for knob in {*SHARED, *MSSR_KNOBS, *DIVA_KNOBS} - {"DATA_DIR"}:  # a shared name is refused with its key
        method_knob = knob.startswith(("MSSR_", "DIVA_"))
        assert knob_key(knob) == ("" if method_knob else documented[knob][0]), knob


@pytest.mark.parametrize(
    "knob, value, message",
    [
        ("VADE_THRESHOLD", "0.5", "data.sampler.vade.correctness"),
        ("GRAD_CLIP", "0.5", "knob GRAD_CLIP: not read by this recipe: pass actor_rollout_ref.actor.grad_clip=... as an argument"),
        ("TOTAL_STEPS", "9", "knob TOTAL_STEPS: not read by this recipe: pass trainer.total_training_steps=... as an argument"),
        ("NUM_VARIANTS", "2", "knob NUM_VARIANTS: renamed DIVA_NUM_VARIANTS"),
        ("GEN_BATCH", "256", "knob GEN_BATCH: renamed DAPO_GEN_BATCH"),
        ("DIVA_K", "0.2", "knob DIVA_K: not a knob of this recipe"),
        ("MSSR_ALPHA", "0.4", "knob MSSR_ALPHA: not a knob of this recipe"),
        ("VADE_ABLATION", "greedy", "read only by recipes/vade/run_qwen2_5_vl_7b_grpo_vade_ablation.sh"),
        ("DAPO_GEN_BATCH", "256", "knob DAPO_GEN_BATCH: not a knob of this recipe"),
    ],
)
def test_unknown_and_old_knobs_are_refused(knob, value, message):
    done = bash("vade/run_qwen2_5_vl_7b_grpo_vade.sh", base_env(PRINT_OVERRIDES="1", **{knob: value}))
    assert done.returncode == 2 and done.stdout == "" and message in done.stderr


# the recipes of the four methods (VADE, the DAPO baseline, MSSR, DIVA-GRPO)
METHOD_RECIPES = ["grpo_vade_7b", "grpo_dapo", "mssr", "diva"]
# misspelled knob -> (value, the knob it means): edit distance 1, a spelled-out name, the Hydra key's last word added
TYPOS = {"ROLOUT_N": ("4", "ROLLOUT_N"), "MAX_RESPONCE": ("512", "MAX_RESPONSE"), "LEARNING_RATE": ("3e-6", "LR"),
         "TRAIN_BATCH_SIZE": ("64", "TRAIN_BATCH")}  # fmt: skip
# names a shell or launcher may export that no recipe owns: left alone
GENERIC = {
    "N": "5", "TP": "1", "BATCH": "64", "EPOCHS": "3", "ROLLOUT": "sglang", "SAMPLER": "x", "ABLATION": "greedy",
    "LOCAL_RANK": "0", "WORLD_SIZE": "8", "NODE_RANK": "0", "MASTER_PORT": "29500", "CUDA_VISIBLE_DEVICES": "0,1",
    "OMP_NUM_THREADS": "4", "TMPDIR": "/tmp", "HF_HOME": "/hf", "WANDB_PROJECT": "p", "NCCL_DEBUG": "WARN",
    "PYTHONHASHSEED": "0", "LOGNAME": "me", "PROJECT_ROOT": "/r", "SAVE_DIR": "/s", "MODEL_NAME": "m",
}  # fmt: skip


@pytest.mark.parametrize("rid", METHOD_RECIPES)
@pytest.mark.parametrize("typo", TYPOS)
def test_a_misspelled_knob_is_refused_naming_the_knob(rid, typo):
    """Each recipe header says "others are refused": a near miss of a knob is, naming the knob."""
    skip_dapo_on_verl09(rid)
    value, knob = TYPOS[typo]
    name, env, *_ = RECIPES[rid]
    done = bash(name, base_env(rid, **env, PRINT_OVERRIDES="1", **{typo: value}))
    assert done.returncode == 2 and done.stdout == ""
    assert f"knob {typo}: did you mean {knob}?" in done.stderr


@pytest.mark.parametrize("rid", METHOD_RECIPES)
def test_generic_names_are_left_alone(rid):
    skip_dapo_on_verl09(rid)
    name, env, *_ = RECIPES[rid]
    plain = bash(name, base_env(rid, **env, PRINT_OVERRIDES="1"))
    with_generic = bash(name, base_env(rid, **env, PRINT_OVERRIDES="1", **GENERIC))
    assert plain.returncode == 0 and with_generic.returncode == 0, with_generic.stderr
    assert with_generic.stdout == plain.stdout


def osa_distance(a, b):
    """Optimal string alignment distance (Damerau-Levenshtein, each substring edited once), by recursion."""
    from functools import lru_cache

    @lru_cache(maxsize=None)
    def d(i, j):
        if min(i, j) == 0:
            return max(i, j)
        best = min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
        if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
            best = min(best, d(i - 2, j - 2) + 1)
        return best

    return d(len(a), len(b))


def near_by_rule(name, knobs):
    """docs/recipes.md section 3's rule, written out independently of recipes/common.sh."""
    hits = []
    for knob in knobs:
        shortest = min(len(name), len(knob))
        allowed = 2 if shortest >= 8 else 1 if shortest >= 4 else 0
        distance = osa_distance(name, knob)
        if name != knob and (0 < distance <= allowed or ("_" in knob and name.startswith(knob + "_"))):
            hits.append((0 if name.startswith(knob + "_") else distance, knob))
    return min(hits)[1] if hits else ""


def test_knob_near_follows_the_documented_rule():
    knobs = ["ROLLOUT_N", "ROLLOUT_TP", "MAX_RESPONSE", "MAX_PROMPT", "TRAIN_BATCH", "MINI_BATCH", "N_GPUS", "NNODES",
             "LOGGER", "DRY_RUN", "LR", "DATA_DIR", "CKPT_DIR", "TEST_FREQ", "SAVE_FREQ", "KL_COEF"]  # fmt: skip
    names = ["ROLOUT_N", "ROLLOTU_N", "ROLLOUT", "MAX_RESPONCE", "MAX_REPSONSE", "MAX_RESPONSE_LENGTH", "TRAIN_BATCH_SIZE",
             "MINI_BACH", "NGPUS", "N_NODES", "LOGER", "DRYRUN", "LS", "LOCAL_RANK", "DATADIR", "CKPTDIR", "TEST_FRQ",
             "KL_COEFF", "TMPDIR", "SAVE_DIR", "MAX_JOBS", "N", "TP", "BATCH", "EPOCHS", "ROLLOUT_NN", "TRAIN_BATCHES"]  # fmt: skip
    script = f'source "{ROOT}/recipes/common.sh"; for n in {" ".join(names)}; do echo "$n=$(knob_near "$n" {" ".join(knobs)})"; done'
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    got = dict(line.split("=", 1) for line in done.stdout.splitlines())
    expected = {name: near_by_rule(name, knobs) for name in names}
    assert got == expected
    assert sum(1 for v in expected.values() if v) >= 15  # the rule finds the typos above, not only the generic names


@pytest.mark.parametrize(
    "good, typo",
    [
        ("data.max_response_length=", "data.max_respones_length="),
        ("actor_rollout_ref.actor.kl_loss_coef=", "actor_rollout_ref.actor.kl_loss_cofe="),
        ("data.sampler.class_name=", "data.sampler.clas_name="),
        ("actor_rollout_ref.model.use_fused_kernels=", "actor_rollout_ref.model.use_fused_kernel="),
        ("actor_rollout_ref.rollout.n=", "actor_rollout_ref.rollout.num="),
    ],
)
def test_a_misspelled_key_in_a_recipe_fails(recorded, good, typo, capsys):
    args = recorded["gspo_vade_7b"][-1][2:]
    changed = [typo + a[len(good) :] if a.startswith(good) else a for a in args]
    assert changed != args
    assert dryrun.main(changed) == 1
    assert typo.rstrip("=").split(".")[-1] in capsys.readouterr().err


@pytest.mark.parametrize(
    "override, message",
    [
        ("actor_rollout_ref.actor.policy_loss.loss_mode=gpso", "gpso"),  # a value, not a key: verl's registry
        ("+data.sampler.vade.selection=thompsom", "data.sampler.vade.selection='thompsom'"),  # our VADEConfig
        ("+data.sampler.vade.correctnes=auto", "data.sampler.vade.correctnes"),  # a misspelled VADE key
        ("+data.sampler.vade.reward_threshold=0.5", "data.sampler.vade.correctness"),  # the renamed key
        ("actor_rollout_ref.actor.ppo_mini_batch_size=256", "ppo_mini_batch_size"),  # verl's validate_config
        ("reward.custom_reward_function.name=compute_scor", "compute_scor"),  # the pkg:// reward function
    ],
)
def test_bad_values_fail(recorded, override, message, capsys):
    assert dryrun.main([*recorded["gspo_vade_7b"][-1][2:], override]) == 1
    assert message in capsys.readouterr().err


def test_vade_options_without_the_vade_sampler_fail(recorded, capsys):
    if ON_VERL09:
        pytest.skip(DAPO_ON_VERL09)
    assert dryrun.main([*recorded["grpo_dapo"][-1][2:], "+data.sampler.vade.decay=False"]) == 1
    assert "read only by VADESampler" in capsys.readouterr().err


def test_missing_data_uses_a_stand_in_and_says_so(recorded, tmp_path, capsys):
    args = [a for a in recorded["grpo_vade_7b"][-1][2:] if not a.startswith("data.train_files=")]
    assert dryrun.main([*args, f"data.train_files={tmp_path}/nowhere.parquet"]) == 0
    assert "stand-in of 256 text rows (not found here" in capsys.readouterr().out


def test_without_dry_run_the_recipes_call_the_trainer_with_the_same_overrides(recorded, shim, data_dir, tmp_path):
    done, _, _, args = run_recipe("grpo_vade_7b", shim, tmp_path, "trainer.total_epochs=1", dry_run="0", DATA_DIR=str(data_dir))
    assert done.returncode == 0, done.stderr
    assert args[:2] == ["-m", TRAINER]
    assert args[2:] == [*recorded["grpo_vade_7b"][-1][4:], "trainer.total_epochs=1"]  # "$@" passes through, last


def test_the_trainer_knob_picks_the_module(shim, tmp_path):
    done, _, _, args = run_recipe("gspo_vade_3b", shim, tmp_path, dry_run="0", TRAINER="vade_verl.verl09.main_ppo")
    assert done.returncode == 0, done.stderr
    assert args[:2] == ["-m", "vade_verl.verl09.main_ppo"]


def test_verl_trainer_on_verl09_is_refused_with_the_fix(recorded, capsys):
    if not ON_VERL09:
        pytest.skip("verl 0.7.1's verl.trainer.main_ppo has data.sampler")
    assert dryrun.main(["--trainer", dryrun.VERL_ENTRY, *recorded["grpo_vade_7b"][-1][4:]]) == 1
    assert f"TRAINER={dryrun.VERL09_ENTRY}" in capsys.readouterr().err


def test_dapo_needs_a_verl_recipe_checkout_and_runs_its_trainer(recorded, shim, data_dir, tmp_path):
    done, *_ = run_recipe("grpo_dapo", shim, tmp_path, dry_run="0", DATA_DIR=str(data_dir))
    assert done.returncode == 2 and "set VERL_RECIPE_ROOT to a verl-recipe checkout at 8f9e7ac" in done.stderr
    verl_root = tmp_path / "verl"  # a verl checkout's root: recipe/dapo/, and a verl/ that would shadow
    (verl_root / "recipe" / "dapo").mkdir(parents=True)
    (verl_root / "recipe" / "dapo" / "main_dapo.py").write_text("")
    done, *_ = run_recipe("grpo_dapo", shim, tmp_path, dry_run="0", VERL_RECIPE_ROOT=str(verl_root))
    assert done.returncode == 2 and "has no dapo/main_dapo.py" in done.stderr
    done, *_ = run_recipe("grpo_dapo", shim, tmp_path, dry_run="0", VERL_RECIPE_ROOT=str(verl_root / "recipe"), TRAINER="x")
    assert done.returncode == 2 and "knob TRAINER: not read by this recipe" in done.stderr
    root = str(verl_root / "recipe")
    done, cwd, pythonpath, args = run_recipe("grpo_dapo", shim, tmp_path, dry_run="0", DATA_DIR=str(data_dir), VERL_RECIPE_ROOT=root)
    assert done.returncode == 0, done.stderr
    assert pythonpath.split(":")[0] == root and args[:2] == ["-m", "dapo.main_dapo"]
    assert args[2:] == recorded["grpo_dapo"][-1][4:]  # the same overrides as the dry run's


def test_dapo_strict_dry_run_needs_the_checkout(shim, data_dir, tmp_path):
    done, *_ = run_recipe("grpo_dapo", shim, tmp_path, dry_run="strict", DATA_DIR=str(data_dir))
    assert done.returncode == 2 and "set VERL_RECIPE_ROOT to a verl-recipe checkout at 8f9e7ac" in done.stderr
    done, *_, args = run_recipe("grpo_vade_7b", shim, tmp_path, dry_run="strict", DATA_DIR=str(data_dir))
    assert done.returncode == 0 and args[:5] == ["-m", "vade_verl.dryrun", "--strict", "--trainer", TRAINER]
    done, *_, args = run_recipe("grpo_vade_7b", shim, tmp_path, dry_run="yes")
    assert done.returncode == 2 and args is None and "DRY_RUN=yes: use 0" in done.stderr


FAKE_MAIN_DAPO = "from verl.trainer.main_ppo import TaskRunner, create_rl_dataset, create_rl_sampler, run_ppo\n"
FAKE_TRAINER = "from verl.trainer.ppo.ray_trainer import RayPPOTrainer\n\n\nclass RayDAPOTrainer(RayPPOTrainer):\n    pass\n"


def fake_verl_recipe(root, main_dapo=FAKE_MAIN_DAPO):
    """A git checkout shaped like verl-recipe's dapo/ (main_dapo.py, dapo_ray_trainer.py, config/dapo_trainer.yaml
    from DAPO_RECIPE_KEYS); returns its HEAD commit. The real one needs GitHub, which tests cannot reach."""
    (root / "dapo" / "config").mkdir(parents=True)
    (root / "dapo" / "main_dapo.py").write_text(main_dapo)
    (root / "dapo" / "dapo_ray_trainer.py").write_text(FAKE_TRAINER)
    config = {"hydra": {"searchpath": ["file://verl/trainer/config"]}, "defaults": ["ppo_trainer", "_self_"], **dryrun.DAPO_RECIPE_KEYS}
    OmegaConf.save(OmegaConf.create(config), root / "dapo" / "config" / "dapo_trainer.yaml")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fake dapo"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def dapo_path(monkeypatch):
    """Puts a checkout on sys.path as the recipe puts VERL_RECIPE_ROOT on PYTHONPATH; forgets its modules after."""

    def put(root):
        monkeypatch.syspath_prepend(str(root))
        forget()

    def forget():
        for name in [m for m in sys.modules if m == "dapo" or m.startswith("dapo.")]:
            del sys.modules[name]

    yield put
    forget()


def test_dapo_dry_run_imports_the_trainer_and_checks_the_pin(recorded, tmp_path, dapo_path, monkeypatch, capsys):
    """The dry run imports dapo.main_dapo and dapo.dapo_ray_trainer.RayDAPOTrainer under the installed verl, as the
    run does, and compares the checkout's commit with the pin: verl-recipe's current HEAD imports
    verl.trainer.main_ppo_v0, which verl 0.7.1 lacks (a fake checkout stands for it here)."""
    if ON_VERL09:
        pytest.skip(DAPO_ON_VERL09)
    args = recorded["grpo_dapo"][-1][2:]
    head = fake_verl_recipe(tmp_path / "pinned")
    dapo_path(tmp_path / "pinned")
    assert dryrun.main(args) == 1  # the fake's commit is not the pin
    err = capsys.readouterr().err
    assert f"is at {head[:12]}" in err and dryrun.DAPO_RECIPE_COMMIT in err and "git -C" in err
    monkeypatch.setattr(dryrun, "DAPO_RECIPE_COMMIT", head)
    assert dryrun.main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"DAPO trainer: verl-recipe {head[:12]}" in out and "dapo.dapo_ray_trainer.RayDAPOTrainer import under verl" in out
    head = fake_verl_recipe(tmp_path / "newer", main_dapo="from verl.trainer.main_ppo_v0 import BaseTaskRunner\n")
    dapo_path(tmp_path / "newer")
    monkeypatch.setattr(dryrun, "DAPO_RECIPE_COMMIT", head)
    assert dryrun.main(args) == 1
    err = capsys.readouterr().err
    assert "does not import under verl" in err and "No module named 'verl.trainer.main_ppo_v0'" in err


def test_dapo_pin_is_the_one_the_recipe_and_docs_give():
    recipe = (ROOT / "recipes" / "baselines" / "run_qwen2_5_vl_7b_grpo_dapo.sh").read_text()
    docs = (ROOT / "docs" / "recipes.md").read_text()
    assert f"checkout {dryrun.DAPO_RECIPE_COMMIT}" in recipe and f"checkout {dryrun.DAPO_RECIPE_COMMIT}" in docs


def test_dapo_and_gspo_settings_stated_in_the_docs(tmp_path, capsys):
    """docs/recipes.md: the DAPO run keeps verl's token-mean loss and loader workers (the VADE recipe's 0 is for
    VADE's per-step update); the GSPO recipes turn the KL loss off as verl's examples/gspo_trainer do, and refuse
    KL_COEF."""
    verl_default = dryrun.compose_config(dryrun.verl_config_dir(), "ppo_trainer", [])
    if not ON_VERL09:
        dapo = composed("grpo_dapo", printed_overrides("grpo_dapo"), tmp_path)
        assert dapo.actor_rollout_ref.actor.loss_agg_mode == "token-mean"
        assert dapo.data.dataloader_num_workers == verl_default.data.dataloader_num_workers
    for rid in ("gspo_vade_7b", "gspo_vade_3b", "gspo"):
        config = composed(rid, printed_overrides(rid), tmp_path)
        assert config.actor_rollout_ref.actor.use_kl_loss is False and config.algorithm.use_kl_in_reward is False
        name, env, *_ = RECIPES[rid]
        done = bash(name, base_env(rid, **env, PRINT_OVERRIDES="1", KL_COEF="0.02"))
        assert done.returncode == 2 and "knob KL_COEF: the GSPO recipes have no KL loss" in done.stderr


def test_ablation_recipe_refuses_an_unknown_ablation(shim, tmp_path):
    done, *_, args = run_recipe("ablation_greedy", shim, tmp_path, VADE_ABLATION="decay")
    assert done.returncode == 2 and args is None and "set VADE_ABLATION to variance, greedy or no_decay" in done.stderr


def dapo_checkout():
    root = os.environ.get("VERL_RECIPE_ROOT")
    if not root or not os.path.isfile(os.path.join(root, "dapo", "main_dapo.py")):
        pytest.skip("needs VERL_RECIPE_ROOT: a verl-recipe checkout at 8f9e7ac (CI has no GitHub access)")
    if ON_VERL09:
        pytest.skip(DAPO_ON_VERL09)
    return root


def test_dapo_dry_run_composes_the_recipes_own_config(recorded, tmp_path, monkeypatch, capsys):
    """Where a checkout is given, the dry run composes its dapo_trainer.yaml, and our stand-in keys
    compose to the same config."""
    root = dapo_checkout()
    monkeypatch.syspath_prepend(root)
    overrides = recorded["grpo_dapo"][-1][4:]
    assert dryrun.main(["--trainer", dryrun.DAPO_ENTRY, *overrides]) == 0, capsys.readouterr().err
    assert "the DAPO recipe's dapo_trainer" in capsys.readouterr().out
    real_dir, real_name, _ = dryrun.trainer_config(dryrun.DAPO_ENTRY, overrides, str(tmp_path))
    stand_in_dir, stand_in_name = dryrun.with_extra_keys(dryrun.verl_config_dir(), "ppo_trainer", dryrun.DAPO_RECIPE_KEYS, str(tmp_path))
    real = OmegaConf.to_container(dryrun.compose_config(real_dir, real_name, overrides))
    stand_in = OmegaConf.to_container(dryrun.compose_config(stand_in_dir, stand_in_name, overrides))
    assert real == stand_in


def test_one_recipe_end_to_end_in_a_subprocess(data_dir):
    """The real command: bash recipe -> python -m vade_verl.dryrun, and a typo from "$@" failing it."""
    env = base_env(DRY_RUN="1", PYTHON=sys.executable, DATA_DIR=str(data_dir))
    done = bash("vade/run_qwen2_5_vl_3b_grpo_vade.sh", env, "data.trian_files=x", timeout=300)
    assert done.returncode == 1
    assert "dry-run FAILED" in done.stderr and "trian_files" in done.stderr


def test_mssr_runs_its_warm_start_pass_then_trains(shim, data_dir, tmp_path):
    """Without the dump: the pass (training overrides, the recipe's arguments, then the pass's own,
    written out here from docs/mssr.md), then training; with the dump or first_visit: training only."""
    warm = tmp_path / "warm"
    env = {"DATA_DIR": str(data_dir), "MSSR_WARM_DIR": str(warm), "EXPERIMENT": "x"}
    done, calls = run_recipe_calls("mssr", shim, tmp_path, "trainer.total_epochs=1", dry_run="0", **env)
    assert done.returncode == 0, done.stderr
    assert [args[:2] for *_, args in calls] == [["-m", TRAINER]] * 2
    pass_args, train_args = calls[0][2][2:], calls[1][2][2:]
    assert train_args[-1] == "trainer.total_epochs=1" and f"+data.mssr.warm_start_file={warm}/0.jsonl" in train_args
    assert pass_args[: len(train_args)] == train_args
    assert pass_args[len(train_args) :] == [
        "trainer.val_only=True", "trainer.val_before_train=True", "trainer.resume_mode=disable",
        f"data.val_files={data_dir}/train.parquet", "data.validation_shuffle=False", "data.val_max_samples=-1",
        "actor_rollout_ref.rollout.val_kwargs.do_sample=True", "actor_rollout_ref.rollout.val_kwargs.temperature=1.0",
        "actor_rollout_ref.rollout.val_kwargs.top_p=1.0", "actor_rollout_ref.rollout.val_kwargs.top_k=-1",
        "actor_rollout_ref.rollout.val_kwargs.n=1", f"trainer.validation_data_dir={warm}", "trainer.experiment_name=x_warm_start",
    ]  # fmt: skip
    assert (warm / "0.jsonl").exists()  # the shim's pass wrote the dump, as verl's validation does
    done, calls = run_recipe_calls("mssr", shim, tmp_path, dry_run="0", **env)
    assert done.returncode == 0 and len(calls) == 1 and calls[0][2][2:] == train_args[:-1]
    done, calls = run_recipe_calls("mssr", shim, tmp_path, dry_run="0", **{**env, "MSSR_WARM_DIR": str(tmp_path / "none")}, MSSR_INIT="first_visit")
    assert done.returncode == 0 and len(calls) == 1 and "+data.mssr.init=first_visit" in calls[0][2]


def test_a_warm_start_pass_that_wrote_no_dump_stops_before_training(shim, data_dir, tmp_path):
    warm = tmp_path / "warm"
    env = {"DATA_DIR": str(data_dir), "MSSR_WARM_DIR": str(warm), "SHIM_NO_DUMP": "1"}
    done, calls = run_recipe_calls("mssr", shim, tmp_path, dry_run="0", **env)
    assert done.returncode == 2 and len(calls) == 1  # the pass ran, training did not
    assert f"the warm-start pass wrote no {warm}/0.jsonl" in done.stderr and "MSSR_INIT=first_visit" in done.stderr


def test_a_failed_warm_start_pass_stops_the_mssr_recipe(data_dir, tmp_path):
    shim = tmp_path / "python"
    shim.write_text('#!/usr/bin/env bash\necho call >> "$CAPTURE"\nexit 3\n')
    shim.chmod(0o755)
    capture = tmp_path / "capture.txt"
    env = base_env("mssr", PYTHON=str(shim), CAPTURE=str(capture), DATA_DIR=str(data_dir), MSSR_WARM_DIR=str(tmp_path / "w"))
    done = bash("mssr/run_mssr_geo3k.sh", env)
    assert done.returncode == 3 and capture.read_text() == "call\n"
