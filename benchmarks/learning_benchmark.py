"""Learning benchmark through verl's own trainer on CPU: does a sampler make the model learn faster?

Usage (the run in docs/learning_benchmark.md; run it alone on the 2-core machine where you can)::

    python benchmarks/learning_benchmark.py --figure docs/figures/learning_benchmark.png
    python benchmarks/learning_benchmark.py --arms "random:0,1 vade:0" --steps 2 ...   # the CI smoke

1. Task (``vade_verl.tiny.keys``): ``--keys`` keys, each a coloured 4x4 pattern with an arbitrary answer
   digit, so learning one key teaches nothing about another. The pool holds ``--pool-renders`` renders of
   every key, the held-out set ``--held-out-renders`` other renders (checked byte for byte: no held-out
   image is a pool image).
2. Warm start (``vade_verl.tiny.warm_start``) of the tiny Qwen2.5-VL for ``--warm-start-steps`` supervised
   steps on fresh renders: "solved" keys are taught their answer, "blocked" keys a wrong digit (unsolvable
   for now), "learnable" keys their answer 30% of the time (``--class-shares``). The pool's first-token
   solve probabilities are measured after it.
3. Each arm (``--arms "NAME:SEED,SEED ..."``) trains a copy of the warm-started model with GRPO through
   ``python -m verl.trainer.main_ppo`` (``benchmarks/learning_benchmark_arm.sh``: the tiny CI run's CPU
   settings, verl's vLLM rollout) for ``--steps`` steps of ``--batch-size`` prompts x ``--group-size``
   rollouts, with ``data.seed`` = the seed. verl validates on the held-out rows before training and every
   ``--test-freq`` steps (``--val-n`` answers per row at temperature 1).
4. From what verl wrote (file logger, rollout and validation dumps): effective-gradient ratio per step,
   held-out accuracy per key class against cumulative rollouts; per arm the mean and range over seeds; the
   random-vs-random gap (noise floor); area under the learnable-key curve; rollouts to the fixed target.

Resumable: the task and warm start (``task.json``) and every finished arm (``<arm>-s<seed>/result.json``)
are kept in the ``work`` folder under ``--out``; a rerun skips them and says so, and refuses a cached part
made with other settings, naming the setting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vade_verl.tiny.task import KEYS_DATA_SOURCE, rollout_scores_by_row  # noqa: E402

ARM_SCRIPT = os.path.join(ROOT, "benchmarks", "learning_benchmark_arm.sh")
ARMS = ("random", "vade", "vade-eig", "mopps", "greso")
LABELS = {"random": "verl random", "vade": "VADE (paper)", "vade-eig": "VADE-EIG (ours)", "mopps": "MoPPS",
          "greso": "GRESO"}
COLORS = {"random": "tab:gray", "vade": "tab:blue", "vade-eig": "tab:red", "mopps": "tab:green", "greso": "tab:purple"}
DEFAULT_ARMS = "random:0,1,2 vade:0,1,2 vade-eig:0,1,2 mopps:0,1,2 greso:0,1,2"
CLASSES = ("learnable", "solved", "blocked")
# Predeclared in docs/learning_benchmark.md before the run: the learnable-key held-out accuracy to reach.
TARGET_LEARNABLE_ACCURACY = 0.5
# The settings a cached task or arm must share with this run (everything that changes what it computes).
TASK_SETTINGS = ("keys", "pool_renders", "held_out_renders", "class_shares", "warm_start_steps", "warm_start_lr",
                 "task_seed")
ARM_SETTINGS = ("steps", "batch_size", "group_size", "lr", "warmup_steps", "test_freq", "val_n", "optimizer", "grad_clip")
# Settings added after arms were cached: a cached arm that does not record one ran with this value (verl's default).
ARM_SETTINGS_BEFORE_RECORDED = {"optimizer": "AdamW", "grad_clip": 1.0}


def parse_arms(spec: str) -> dict[str, list[int]]:
    """``"random:0,1,2 vade:0"`` -> {"random": [0, 1, 2], "vade": [0]}; unknown arms and bad seeds raise."""
    arms: dict[str, list[int]] = {}
    for item in spec.split():
        name, _, seeds = item.partition(":")
        if name not in ARMS:
            raise ValueError(f"--arms: unknown arm {name!r}; choose from {ARMS}")
        if name in arms:
            raise ValueError(f"--arms: arm {name!r} is listed twice")
        try:
            arms[name] = sorted({int(s) for s in seeds.split(",")}) if seeds else [0]
        except ValueError:
            raise ValueError(f"--arms: seeds of {name!r} must be integers, got {seeds!r}") from None
    if not arms:
        raise ValueError("--arms names no arm")
    return arms


def check_arms(arms: dict[str, list[int]]) -> None:
    """Every arm is compared with verl's random sampler on the same seeds (paired): its seeds must all be
    seeds of the random arm, which needs two seeds or more for the random-vs-random noise floor."""
    if "random" not in arms:
        raise ValueError("--arms must include 'random' (verl's sampler, the reference every arm is compared with)")
    if len(arms["random"]) < 2:
        raise ValueError(f"--arms: random needs at least 2 seeds for the noise floor, got {arms['random']}")
    for name, seeds in arms.items():
        unpaired = sorted(set(seeds) - set(arms["random"]))
        if unpaired:
            raise ValueError(f"--arms: {name} runs seeds {unpaired} that random does not: arms would differ in seeds")


def run_order(arms: dict[str, list[int]]) -> list[tuple[str, int]]:
    """Random and VADE seed by seed first (the noise floor and the main comparison finish together, so an
    interrupted benchmark has the most useful arms), then the other arms."""
    first = ("random", "vade")
    seeds = sorted({s for name in first for s in arms.get(name, [])})
    order = [(name, s) for s in seeds for name in first if s in arms.get(name, [])]
    return order + [(name, s) for name, ss in arms.items() if name not in first for s in ss]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "outputs", "learning_benchmark"))
    p.add_argument("--figure", default=None, help="also save the figure here (e.g. docs/figures/...png)")
    p.add_argument("--arms", default=DEFAULT_ARMS, help=f"'NAME:SEED,SEED ...' with NAME from {ARMS}")
    p.add_argument("--task-seed", type=int, default=0, help="keys, answers, renders, model and warm start")
    p.add_argument("--keys", type=int, default=96)
    p.add_argument("--pool-renders", type=int, default=4, help="renders of each key in the training pool")
    p.add_argument("--held-out-renders", type=int, default=4, help="other renders of each key, held out")
    p.add_argument("--class-shares", default="0.333,0.333,0.334", help="solved,blocked,learnable shares of the keys")
    p.add_argument("--warm-start-steps", type=int, default=300)
    p.add_argument("--warm-start-lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--batch-size", type=int, default=16, help="data.train_batch_size (prompts per step)")
    p.add_argument("--group-size", type=int, default=8, help="actor_rollout_ref.rollout.n")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--optimizer", default="AdamW", choices=("AdamW", "SGD"),
                   help="actor_rollout_ref.actor.optim.optimizer (torch.optim); SGD: the step grows with the informative groups")
    p.add_argument("--grad-clip", type=float, default=1.0,
                   help="actor_rollout_ref.actor.grad_clip (verl's default 1.0); raise it with SGD so the clip does not bind")
    p.add_argument("--test-freq", type=int, default=20, help="validation (and checkpoint) every this many steps")
    p.add_argument("--val-n", type=int, default=4, help="sampled answers per held-out row")
    p.add_argument("--retries", type=int, default=1, help="relaunches of a launch that died")
    p.add_argument("--arm-timeout", type=int, default=1800, help="seconds per launch")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--report-only", action="store_true",
                   help="summarise the arms already finished (the others are listed as not run), launch nothing")
    p.add_argument("--prepare-only", action="store_true", help="build the task and warm start, print the pool, stop")
    p.add_argument("--predict", action="store_true",
                   help="after the task: the simulator's prediction for this pool (random vs VADE), then stop")
    args = p.parse_args(argv)
    try:
        args.arms = parse_arms(args.arms)
        check_arms(args.arms)
        args.class_shares = [float(s) for s in args.class_shares.split(",")]
    except ValueError as err:
        p.error(str(err))
    return args


def settings(args, names) -> dict:
    return {name: getattr(args, name) for name in names}


def check_cached(path: str, recorded: dict, wanted: dict, what: str) -> None:
    """Refuse a cached part made with other settings, naming each setting that differs."""
    differ = {k: (old, v) for k, v in wanted.items()
              if (old := recorded.get(k, ARM_SETTINGS_BEFORE_RECORDED.get(k))) != v}
    if differ:
        said = ", ".join(f"{k}={old!r} (now {new!r})" for k, (old, new) in differ.items())
        raise RuntimeError(f"{path}: the cached {what} was made with {said}; use another --out or delete it")


def val_key(val_n: int) -> str:
    """verl's held-out accuracy metric: mean reward of the ``val_n`` answers per row, averaged over rows."""
    return f"val-core/{KEYS_DATA_SOURCE}/reward/mean@{val_n}"


# --- 1-2: task and warm start ------------------------------------------------------------------------------


def pool_shares(probs: np.ndarray, group_size: int) -> dict:
    """Shares of pool rows by how often a group of ``group_size`` is informative at the start:
    P(informative) = 1 - p^G - (1 - p)^G < 0.1 with p >= 1/2 ("solved"), with p < 1/2 ("unsolvable for
    now"), else "learnable"."""
    informative = 1 - probs**group_size - (1 - probs) ** group_size
    low = informative < 0.1
    return {"solved": float(np.mean(low & (probs >= 0.5))), "unsolvable": float(np.mean(low & (probs < 0.5))),
            "learnable": float(np.mean(~low))}


def build_task(work: str, args) -> dict:
    """Keys, pool and held-out parquet files, model, warm start; the pool's measured solve probabilities."""
    from vade_verl.tiny import keys as K
    from vade_verl.tiny.build import write_parquet
    from vade_verl.tiny.model import build_vl_model
    from vade_verl.tiny.warm_start import first_token_solve_probs, warm_start

    seed = args.task_seed
    patterns = K.key_patterns(args.keys, seed)
    answers = K.key_answers(args.keys, seed + 1)
    decoys = K.decoy_answers(answers, seed + 2)
    classes = K.assign_classes(args.keys, args.class_shares, seed + 3)
    every_key = range(args.keys)
    pool = K.make_key_rows(patterns, answers, every_key, args.pool_renders, seed + 4, "train")
    held_out = K.make_key_rows(patterns, answers, every_key, args.held_out_renders, seed + 5, "val")
    K.check_disjoint_images(pool, held_out)
    data = os.path.join(work, "data")
    write_parquet(pool, os.path.join(data, "train.parquet"))
    write_parquet(held_out, os.path.join(data, "val.parquet"))
    model = build_vl_model(os.path.join(work, "model"), seed=seed)
    losses = warm_start(model, K.warm_start_examples(patterns, answers, decoys, classes), args.warm_start_steps,
                        lr=args.warm_start_lr, seed=seed, question=K.QUESTION)
    probs = first_token_solve_probs(model, pool, question=K.QUESTION)
    pool_keys = np.array([row["extra_info"]["key"] for row in pool])
    return {
        "settings": settings(args, TASK_SETTINGS),
        "key_classes": classes.tolist(),
        "warm_start_loss_last10": float(np.mean(losses[-10:])) if losses else None,
        "pool_solve_probs": probs.tolist(),
        "pool_keys": pool_keys.tolist(),
        "pool_shares": pool_shares(probs, args.group_size),
        "pool_solve_prob_by_class": {c: float(probs[classes[pool_keys] == c].mean()) for c in CLASSES
                                     if np.any(classes[pool_keys] == c)},
    }


def load_or_build_task(work: str, args) -> dict:
    path = os.path.join(work, "task.json")
    if os.path.exists(path):
        with open(path) as f:
            task = json.load(f)
        check_cached(path, task["settings"], settings(args, TASK_SETTINGS), "task and warm start")
        print(f"task: cached ({path})", flush=True)
        return task
    os.makedirs(work, exist_ok=True)
    start = time.monotonic()
    task = build_task(work, args)
    task["build_s"] = time.monotonic() - start
    with open(path, "w") as f:
        json.dump(task, f)
    return task


# --- 3: one arm through verl ----------------------------------------------------------------------------


def trainer_overrides(args, seed: int) -> list[str]:
    """The benchmark's Hydra overrides on top of the tiny CI run's (the arm script adds the sampler)."""
    rollouts = args.batch_size * args.group_size
    return [
        "data.max_prompt_length=32",
        "data.max_response_length=1",  # the answer is one digit token: the rollout is that token
        f"data.train_batch_size={args.batch_size}",
        f"data.seed={seed}",
        f"actor_rollout_ref.rollout.n={args.group_size}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={args.batch_size}",  # one on-policy update per step
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={rollouts}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={rollouts}",
        f"actor_rollout_ref.rollout.max_num_seqs={rollouts}",
        f"actor_rollout_ref.actor.optim.lr={args.lr}",
        f"actor_rollout_ref.actor.optim.lr_warmup_steps={args.warmup_steps}",
        f"actor_rollout_ref.actor.optim.optimizer={args.optimizer}",
        f"actor_rollout_ref.actor.grad_clip={args.grad_clip}",
        "actor_rollout_ref.actor.freeze_vision_tower=True",
        f"trainer.total_training_steps={args.steps}",
        "trainer.val_before_train=True",
        f"trainer.test_freq={args.test_freq}",
        f"trainer.save_freq={args.test_freq}",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra]",
        "actor_rollout_ref.rollout.val_kwargs.do_sample=True",
        "actor_rollout_ref.rollout.val_kwargs.temperature=1.0",
        f"actor_rollout_ref.rollout.val_kwargs.n={args.val_n}",
    ]


def has_checkpoint(run_dir: str) -> bool:
    return os.path.isfile(os.path.join(run_dir, "ckpt", "latest_checkpointed_iteration.txt"))


def next_launch(run_dir: str) -> int:
    """The number of the next launch of a run: one more than its last ``metrics_<n>.jsonl``."""
    launch = 1
    while os.path.exists(os.path.join(run_dir, f"metrics_{launch}.jsonl")):
        launch += 1
    return launch


def run_arm(work: str, arm: str, seed: int, args) -> dict:
    """Launch the arm (relaunching a dead launch from its checkpoint); returns wall time and launches."""
    name = f"{arm}-s{seed}"
    run_dir = os.path.join(work, name)
    start = time.monotonic()
    # an arm interrupted with a checkpoint (a killed benchmark) resumes from it in a new launch
    first = next_launch(run_dir) if has_checkpoint(run_dir) else 1
    if first > 1:
        print(f"arm {name}: resuming from its checkpoint (launch {first})", flush=True)
    for launch in range(first, first + args.retries + 1):
        env = dict(os.environ, PYTHON=args.python, LAUNCH=str(launch), LAUNCH_TIMEOUT_S=str(args.arm_timeout))
        env.pop("RAY_ADDRESS", None)
        proc = subprocess.run(
            ["bash", ARM_SCRIPT, work, arm, name, *trainer_overrides(args, seed),
             f"trainer.validation_data_dir={run_dir}/validation"],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        if proc.returncode == 0 and args.steps in read_metrics(run_dir):
            return {"wall_s": time.monotonic() - start, "launches": launch}
        tail = proc.stdout[-3000:]
        if not has_checkpoint(run_dir) or launch == first + args.retries:
            raise RuntimeError(f"arm {name}: launch {launch} failed (rc={proc.returncode}); tail:\n{tail}")
        print(f"arm {name}: launch {launch} died (rc={proc.returncode}); resuming from its checkpoint", flush=True)
    raise AssertionError("unreachable")


# --- 4: what verl wrote -----------------------------------------------------------------------------------


def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_metrics(run_dir: str) -> dict[int, dict]:
    """verl's file-logger records by step, over all launches (a later launch redoes the steps after its
    checkpoint; its records replace the earlier launch's)."""
    by_step: dict[int, dict] = {}
    launch = 1
    while os.path.exists(path := os.path.join(run_dir, f"metrics_{launch}.jsonl")):
        for rec in read_jsonl(path):
            by_step.setdefault(rec["step"], {}).update(rec["data"])
        launch += 1
    return by_step


def effective_ratios(run_dir: str, steps: int) -> list[float]:
    """Per step: the share of the step's prompts whose rollouts do not all score the same, from verl's
    rollout dump (``trainer.rollout_data_dir``; the task's reward reports each rollout's row id)."""
    ratios = []
    for step in range(1, steps + 1):
        groups = rollout_scores_by_row(os.path.join(run_dir, "rollouts", f"{step}.jsonl"), step)
        ratios.append(float(np.mean([min(g) != max(g) for g in groups.values()])))
    return ratios


def accuracy_by_class(run_dir: str, step: int, row_class: dict[int, str]) -> dict[str, float]:
    """Held-out accuracy per key class at ``step``, from verl's validation dump (``row_index`` -> class)."""
    scores: dict[str, list[float]] = {}
    for rec in read_jsonl(os.path.join(run_dir, "validation", f"{step}.jsonl")):
        scores.setdefault(row_class[int(rec["row_index"])], []).append(float(rec["score"]))
    return {cls: float(np.mean(s)) for cls, s in sorted(scores.items())}


def held_out_classes(work: str, key_classes: list[str]) -> dict[int, str]:
    """Held-out row id -> its key's class, from the held-out parquet."""
    import pandas as pd

    rows = pd.read_parquet(os.path.join(work, "data", "val.parquet"))
    return {int(info["index"]): key_classes[int(info["key"])] for info in rows["extra_info"]}


def read_arm(run_dir: str, args, row_class: dict[int, str]) -> dict:
    metrics = read_metrics(run_dir)
    missing = [s for s in range(1, args.steps + 1) if s not in metrics]
    if missing:
        raise RuntimeError(f"{run_dir}: verl logged no metrics for steps {missing[:5]}...")
    val_steps = sorted(s for s, d in metrics.items() if val_key(args.val_n) in d)
    rollouts_per_step = args.batch_size * args.group_size
    by_class = [accuracy_by_class(run_dir, s, row_class) for s in val_steps]
    return {
        "effective_ratio": effective_ratios(run_dir, args.steps),
        # the sampler's own count (groups by verl's uid, e.g. vade_verl.vade.algorithm.effective_ratio); None for verl's
        "sampler_effective_ratio": [metrics[s].get("vade/effective_ratio") for s in range(1, args.steps + 1)],
        "train_score": [metrics[s]["critic/score/mean"] for s in range(1, args.steps + 1)],
        # the actor's gradient norm before clipping (verl clips it to grad_clip): does the clip bind?
        "grad_norm": [metrics[s]["actor/grad_norm"] for s in range(1, args.steps + 1)],
        "val_steps": val_steps,
        "val_rollouts": [s * rollouts_per_step for s in val_steps],
        "val_accuracy": [metrics[s][val_key(args.val_n)] for s in val_steps],
        "val_accuracy_by_class": {cls: [acc[cls] for acc in by_class] for cls in by_class[0]},
        "step_s_median": float(np.median([metrics[s]["timing_s/step"] for s in range(1, args.steps + 1)])),
    }


def run_or_load_arm(work: str, arm: str, seed: int, args, row_class: dict[int, str]) -> dict:
    run_dir = os.path.join(work, f"{arm}-s{seed}")
    path = os.path.join(run_dir, "result.json")
    wanted = settings(args, ARM_SETTINGS)
    if os.path.exists(path):
        with open(path) as f:
            result = json.load(f)
        check_cached(path, result["settings"], wanted, f"arm {arm} seed {seed}")
        print(f"arm {arm} seed {seed}: cached ({path})", flush=True)
        return result
    if args.steps in read_metrics(run_dir) and os.path.exists(os.path.join(run_dir, "settings.json")):
        with open(os.path.join(run_dir, "settings.json")) as f:
            check_cached(run_dir, json.load(f), wanted, f"run of arm {arm} seed {seed}")
        print(f"arm {arm} seed {seed}: finished run found in {run_dir}, reading it", flush=True)
        info = {"wall_s": None, "launches": None}
    else:
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "settings.json"), "w") as f:
            json.dump(wanted, f)
        info = run_arm(work, arm, seed, args)
    result = {"settings": wanted, **read_arm(run_dir, args, row_class), **info}
    with open(path, "w") as f:
        json.dump(result, f)
    print(f"arm {arm} seed {seed}: {info['wall_s'] or 0:.0f} s, learnable-key held-out accuracy "
          f"{result['val_accuracy_by_class']['learnable'][0]:.3f} -> {result['val_accuracy_by_class']['learnable'][-1]:.3f}",
          flush=True)
    return result


# --- the simulator's prediction -----------------------------------------------------------------------------

PREDICTION_SEEDS = (0, 1, 2)
# The simulator's dynamics the prediction is made under (vade_verl.sim.population). The first two are the
# predeclared ones (the simulator's dynamics of commit 1fe4bfb: a logit step per informative group and a
# shared drift, and the same without the drift, since keys with arbitrary answers do not transfer); the
# others are the dynamics calibrated on the earlier counting benchmark's random arm (docs/simulate.md),
# "family" with each key's renders as one family.
PREDICTION_DYNAMICS = {
    "per-group (1fe4bfb)": {"dynamics": "per-group", "learn": 0.5, "transfer": 0.015, "forget": 0.001},
    "per-group (1fe4bfb), no transfer": {"dynamics": "per-group", "learn": 0.5, "transfer": 0.0, "forget": 0.001},
    "per-step (calibrated)": {"dynamics": "per-step"},
    "family (calibrated)": {"dynamics": "family"},
}


def predict(task: dict, args) -> dict:
    """Simulated random and VADE runs on this pool's measured solve probabilities (clipped to [1e-4, 1 - 1e-4]):
    mean solve probability after ``--steps`` steps and mean effective ratio, per dynamics and seed."""
    from vade_verl.sim.population import logit
    from vade_verl.sim.simulate import SimConfig, simulate

    z0 = logit(np.clip(np.asarray(task["pool_solve_probs"]), 1e-4, 1 - 1e-4))
    out = {}
    for name, dynamics in PREDICTION_DYNAMICS.items():
        for seed in PREDICTION_SEEDS:
            config = SimConfig(samplers=("random", "vade"), num_samples=z0.size, batch_size=args.batch_size,
                               group_size=args.group_size, steps=args.steps, seed=seed, **dynamics)
            for sampler, records in simulate(config, z0=z0, families=np.asarray(task["pool_keys"])).items():
                entry = out.setdefault(name, {}).setdefault(sampler, {"final_mean_p": [], "effective_ratio": []})
                entry["final_mean_p"].append(records[-1]["mean_solve_prob"])
                entry["effective_ratio"].append(float(np.mean([r["effective_ratio"] for r in records])))
    return {"start_mean_p": float(np.mean(task["pool_solve_probs"])), "by_dynamics": out}


def format_prediction(prediction: dict) -> str:
    lines = [f"simulator prediction (start mean solve probability {prediction['start_mean_p']:.3f}; seeds {PREDICTION_SEEDS})"]
    for name, by_sampler in prediction["by_dynamics"].items():
        for sampler, entry in by_sampler.items():
            p, r = np.asarray(entry["final_mean_p"]), np.asarray(entry["effective_ratio"])
            lines.append(f"  {name:34s} {sampler:7s} final mean p {p.mean():.3f} [{p.min():.3f}, {p.max():.3f}]  "
                         f"effective ratio {r.mean():.3f}")
    return "\n".join(lines)


# --- summary -----------------------------------------------------------------------------------------------


def rollouts_to(target: float, rollouts: list[int], accuracy: list[float]) -> float | None:
    """Rollouts at which the accuracy curve first reaches ``target``, linear between evaluations; None if never."""
    for i, acc in enumerate(accuracy):
        if acc >= target:
            if i == 0:
                return float(rollouts[0])
            r0, r1, a0 = rollouts[i - 1], rollouts[i], accuracy[i - 1]
            return float(r0 + (r1 - r0) * (target - a0) / (acc - a0))
    return None


def area_under(rollouts: list[int], accuracy: list[float]) -> float:
    """Mean accuracy over the rollout budget: trapezoidal area under the curve divided by its span."""
    x, y = np.asarray(rollouts, dtype=float), np.asarray(accuracy, dtype=float)
    return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum() / (x[-1] - x[0]))


def noise_floor(curves: list[list[float]]) -> list[float]:
    """At each evaluation, the largest gap between two runs of the same arm (different seeds)."""
    curves_arr = np.asarray(curves, dtype=float)
    return (curves_arr.max(axis=0) - curves_arr.min(axis=0)).tolist()


def summarise(results: dict[str, dict[int, dict]]) -> dict:
    """Per arm over its seeds: mean and range of the learnable-key and all-key curves, their areas, rollouts to
    the target; the random-vs-random band; and the predeclared verdict of each arm against random."""
    rows, curves = [], {}
    for arm, by_seed in results.items():
        runs = list(by_seed.values())
        learn = [r["val_accuracy_by_class"]["learnable"] for r in runs]
        rollouts = runs[0]["val_rollouts"]
        reach = [rollouts_to(TARGET_LEARNABLE_ACCURACY, r["val_rollouts"], r["val_accuracy_by_class"]["learnable"]) for r in runs]
        areas = [area_under(r["val_rollouts"], r["val_accuracy_by_class"]["learnable"]) for r in runs]
        curves[arm] = {"rollouts": rollouts, "learnable_mean": np.mean(learn, axis=0).tolist(),
                       "learnable_min": np.min(learn, axis=0).tolist(), "learnable_max": np.max(learn, axis=0).tolist(),
                       "all_mean": np.mean([r["val_accuracy"] for r in runs], axis=0).tolist()}
        rows.append({
            "arm": arm,
            "seeds": sorted(by_seed),
            "effective_ratio": [float(np.mean(r["effective_ratio"])) for r in runs],
            "learnable_start": [c[0] for c in learn],
            "learnable_final": [c[-1] for c in learn],
            "learnable_area": areas,
            "solved_final": [r["val_accuracy_by_class"]["solved"][-1] for r in runs],
            "all_final": [r["val_accuracy"][-1] for r in runs],
            "rollouts_to_target": reach,
        })
    random_runs = list(results["random"].values())
    floor = noise_floor([r["val_accuracy_by_class"]["learnable"] for r in random_runs]) if len(random_runs) > 1 else []
    random = curves["random"]
    for row in rows:
        row["verdict"] = (verdict(curves[row["arm"]]["learnable_mean"], random, row, next(r for r in rows if r["arm"] == "random"))
                          if floor else "n/a: random has one seed")
    return {"rows": rows, "curves": curves, "random_noise_floor": floor}


def verdict(mean_curve: list[float], random: dict, row: dict, random_row: dict) -> str:
    """The predeclared rule (docs/learning_benchmark.md), on the last 4 evaluations of the learnable-key
    held-out accuracy: "better than random" when the arm's seed mean is above random's best seed at 3 or
    more of them and it needs < 0.9x random's mean rollouts to the target (or reaches it where random does
    not); "no better than random" when its seed mean is at or below random's best seed at 3 or more of them,
    or it needs >= 0.9x random's rollouts (or never reaches a target random reaches); else "undecided"."""
    last = slice(-4, None)
    above = int(np.sum(np.asarray(mean_curve[last]) > np.asarray(random["learnable_max"][last])))
    at_or_below = len(mean_curve[last]) - above
    mine, theirs = _mean_reach(row["rollouts_to_target"]), _mean_reach(random_row["rollouts_to_target"])
    faster = None if mine is None and theirs is None else (mine is not None and (theirs is None or mine < 0.9 * theirs))
    if above >= 3 and faster is True:
        return "better than random"
    if at_or_below >= 3 or faster is False:
        return "no better than random"
    return "undecided"


def _mean_reach(values: list) -> float | None:
    """Mean rollouts to the target over seeds; None when a seed never reached it."""
    return None if any(v is None for v in values) else float(np.mean(values))


def format_table(summary: dict) -> str:
    def span(values, fmt="{:.3f}"):
        vals = [v for v in values if v is not None]
        if len(vals) < len(values):
            return "not reached" if not vals else f"{fmt.format(np.mean(vals))} ({len(values) - len(vals)} not reached)"
        return fmt.format(np.mean(vals)) + (f" [{fmt.format(min(vals))}, {fmt.format(max(vals))}]" if len(vals) > 1 else "")

    lines = ["| arm | seeds | effective ratio | learnable: start | learnable: final | learnable: area | solved: final | all keys: final "
             f"| rollouts to learnable {TARGET_LEARNABLE_ACCURACY} | predeclared verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(f"| {LABELS[r['arm']]} | {','.join(map(str, r['seeds']))} | {span(r['effective_ratio'])} | "
                     f"{span(r['learnable_start'])} | {span(r['learnable_final'])} | {span(r['learnable_area'])} | "
                     f"{span(r['solved_final'])} | {span(r['all_final'])} | {span(r['rollouts_to_target'], '{:,.0f}')} | "
                     f"{'(reference)' if r['arm'] == 'random' else r['verdict']} |")
    floor = ", ".join(f"{v:.3f}" for v in summary["random_noise_floor"]) or "n/a (one random seed)"
    lines.append(f"\nrandom-vs-random gap in learnable-key accuracy per evaluation (noise floor): {floor}")
    return "\n".join(lines)


def clip_shares(results: dict, grad_clip: float) -> dict[str, list[float]]:
    """Per arm and seed, the share of steps whose gradient norm exceeded ``grad_clip`` (verl then scaled the
    step down to it); arms cached before the gradient norm was recorded are left out."""
    return {arm: [float(np.mean(np.asarray(run["grad_norm"]) > grad_clip)) for run in by_seed.values()]
            for arm, by_seed in results.items() if all("grad_norm" in run for run in by_seed.values())}


def format_runs(results: dict) -> str:
    """Held-out accuracy per evaluation, per run and key class (markdown)."""
    lines = ["| run | learnable keys | solved keys | blocked keys | all keys |", "|---|---|---|---|---|"]
    for arm, by_seed in results.items():
        for seed, run in by_seed.items():
            cells = [", ".join(f"{v:.3f}" for v in run["val_accuracy_by_class"][c]) for c in ("learnable", "solved", "blocked")]
            lines.append(f"| {LABELS[arm]}, seed {seed} | {' | '.join(cells)} | {', '.join(f'{v:.3f}' for v in run['val_accuracy'])} |")
    return "\n".join(lines)


def plot(task: dict, results: dict, summary: dict, args, paths: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(21, 4.4))
    ax = axes[0]
    ax.hist(task["pool_solve_probs"], bins=np.linspace(0, 1, 21), color="tab:green")
    ax.set(title="(a) pool after the warm start", xlabel="first-token solve probability", ylabel="rows")
    window = max(1, args.steps // 10)
    for arm, by_seed in results.items():
        for i, run in enumerate(by_seed.values()):
            ratio = np.convolve(run["effective_ratio"], np.ones(window) / window, mode="valid")
            axes[1].plot(np.arange(ratio.size) + window, ratio, color=COLORS[arm], alpha=0.8,
                         label=LABELS[arm] if i == 0 else None)
    axes[1].set(title=f"(b) effective-gradient ratio ({window}-step mean)", xlabel="training step", ylim=(0, 1))
    axes[1].legend(fontsize=8)
    for ax, key, title in ((axes[2], "learnable", "(c) held-out, learnable keys"),
                           (axes[3], None, "(d) held-out, all keys")):
        for arm, curve in summary["curves"].items():
            if key:
                ax.plot(curve["rollouts"], curve["learnable_mean"], marker="o", color=COLORS[arm], label=LABELS[arm])
                ax.fill_between(curve["rollouts"], curve["learnable_min"], curve["learnable_max"], color=COLORS[arm], alpha=0.2)
            else:
                runs = [r["val_accuracy"] for r in results[arm].values()]
                ax.plot(curve["rollouts"], curve["all_mean"], marker="o", color=COLORS[arm], label=LABELS[arm])
                ax.fill_between(curve["rollouts"], np.min(runs, axis=0), np.max(runs, axis=0), color=COLORS[arm], alpha=0.2)
        ax.set(title=title + " (seeds: mean, min-max)", xlabel="training rollouts", ylabel="accuracy")
        ax.legend(fontsize=8)
    axes[2].axhline(TARGET_LEARNABLE_ACCURACY, color="k", lw=0.8, ls=":")
    fig.suptitle(f"tiny Qwen2.5-VL, {args.keys} keys with arbitrary answers, GRPO through verl's trainer on CPU "
                 f"(B={args.batch_size}, G={args.group_size}, {args.steps} steps, {args.optimizer} lr {args.lr:g})")
    fig.tight_layout()
    for path in paths:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    work = os.path.join(os.path.abspath(args.out), "work")
    if args.report_only and not os.path.exists(os.path.join(work, "task.json")):
        print(f"--report-only: no task in {work} (nothing has run there)", file=sys.stderr)
        return 2
    task = load_or_build_task(work, args)
    print(f"pool after the warm start: shares {task['pool_shares']}; mean solve probability by key class "
          f"{task['pool_solve_prob_by_class']}", flush=True)
    if args.predict:
        print(format_prediction(predict(task, args)))
        return 0
    if args.prepare_only:
        return 0
    row_class = held_out_classes(work, task["key_classes"])
    results: dict[str, dict[int, dict]] = {}
    for arm, seed in run_order(args.arms):
        if args.report_only and not os.path.exists(os.path.join(work, f"{arm}-s{seed}", "result.json")):
            print(f"arm {arm} seed {seed}: not run yet (left out of this report)", flush=True)
            continue
        results.setdefault(arm, {})[seed] = run_or_load_arm(work, arm, seed, args, row_class)
    results = {arm: dict(sorted(results[arm].items())) for arm in args.arms if arm in results}
    if "random" not in results:
        print("no random arm has finished: nothing to compare with", flush=True)
        return 0
    summary = summarise(results)
    out = {"config": {k: v for k, v in vars(args).items() if k != "python"}, "task": task, "arms": results,
           "summary": summary, "wall_s": time.monotonic() - start}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(out, f, indent=1)
    plot(task, results, summary, args, [os.path.join(args.out, "learning_benchmark.png")] + ([args.figure] if args.figure else []))
    print(format_table(summary))
    print(format_runs(results))
    for arm, shares in clip_shares(results, args.grad_clip).items():
        print(f"{LABELS[arm]}: share of steps with the gradient norm above grad_clip={args.grad_clip} (clipped), "
              f"per seed: {', '.join(f'{v:.2f}' for v in shares)}")
    print(f"total {out['wall_s']:.0f} s (this launch); summary: {os.path.join(args.out, 'summary.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
