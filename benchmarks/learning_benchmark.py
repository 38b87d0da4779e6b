"""Learning benchmark through verl's own trainer on CPU: verl's random sampler, VADE and VADE-EIG.

Usage (the run in docs/learning_benchmark.md; 38 minutes on 2 cores, run it alone)::

    python benchmarks/learning_benchmark.py --figure docs/figures/learning_benchmark.png
    python benchmarks/learning_benchmark.py --steps 2 --train-rows 32 --val-rows 8 ...   # the CI smoke

1. Build (``vade_verl.tiny.build``): the tiny Qwen2.5-VL, a training pool and held-out rows of the counting
   task with 0-9 squares (``--train-rows``, ``--val-rows``; different images).
2. Warm start (``vade_verl.tiny.warm_start``): ``--warm-start-steps`` supervised steps with the counts drawn
   by ``--count-weights`` (small counts often, large ones rarely), so that the pool's solve rates spread from
   0 to 1. The pool's first-token solve probabilities are measured after it.
3. Each arm (``--arms``) trains a copy of the warm-started model with GRPO through
   ``python -m verl.trainer.main_ppo`` (``benchmarks/learning_benchmark_arm.sh``: the tiny CI run's CPU
   settings, verl's vLLM rollout), from the same seed (``data.seed``), for ``--steps`` steps of
   ``--batch-size`` prompts x ``--group-size`` rollouts. verl validates on the held-out rows before training
   and every ``--test-freq`` steps (``--val-n`` sampled answers per row at temperature 1: mean@n accuracy).
   A launch that dies (a vLLM or actor worker can crash on this shared CPU host) is relaunched up to
   ``--retries`` times; verl resumes from its last checkpoint (every ``--test-freq`` steps).
4. From what verl wrote (its file logger and rollout dumps): the effective-gradient ratio of every step (the
   share of the step's groups whose rollouts are not all equal: a GRPO group with equal rewards has zero
   advantage), held-out accuracy against cumulative training rollouts, accuracy per count at the end.
   Prints the table, writes ``<out>/summary.json`` and the figure (``<out>/learning_benchmark.png``, and
   ``--figure`` if given).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vade_verl.tiny.build import build_all  # noqa: E402
from vade_verl.tiny.task import DATA_SOURCE, GRID_CELLS, rollout_scores_by_row  # noqa: E402

ARM_SCRIPT = os.path.join(ROOT, "benchmarks", "learning_benchmark_arm.sh")
ARMS = ("random", "vade", "vade-eig")
LABELS = {"random": "verl random", "vade": "VADE (paper)", "vade-eig": "VADE-EIG (ours)"}
COLORS = {"random": "tab:gray", "vade": "tab:blue", "vade-eig": "tab:red"}
# counts 0-3 most of the warm start, 9 almost never (weights, normalised)
DEFAULT_COUNT_WEIGHTS = "8,8,8,8,4,2,1,0.5,0.25,0.12"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "outputs", "learning_benchmark"))
    p.add_argument("--figure", default=None, help="also save the figure here (e.g. docs/figures/...png)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {ARMS}")
    p.add_argument("--seed", type=int, default=0, help="model, rows, warm start and data.seed of every arm")
    p.add_argument("--train-rows", type=int, default=512)
    p.add_argument("--val-rows", type=int, default=256)
    p.add_argument("--warm-start-steps", type=int, default=300)
    p.add_argument("--warm-start-lr", type=float, default=3e-4)
    p.add_argument("--count-weights", default=DEFAULT_COUNT_WEIGHTS, help="warm-start weight of counts 0, 1, ...")
    p.add_argument("--steps", type=int, default=160)
    p.add_argument("--batch-size", type=int, default=16, help="data.train_batch_size (prompts per step)")
    p.add_argument("--group-size", type=int, default=8, help="actor_rollout_ref.rollout.n")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--test-freq", type=int, default=20, help="validation (and checkpoint) every this many steps")
    p.add_argument("--val-n", type=int, default=4, help="sampled answers per held-out row")
    p.add_argument("--retries", type=int, default=1, help="relaunches of a launch that died")
    p.add_argument("--arm-timeout", type=int, default=1500, help="seconds per launch")
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args(argv)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(args.arms) - set(ARMS))
    if unknown or not args.arms:
        p.error(f"--arms: unknown {unknown}; choose from {ARMS}")
    args.count_weights = [float(w) for w in args.count_weights.split(",")]
    return args


def val_key(val_n: int) -> str:
    """verl's held-out accuracy metric: mean reward of the ``val_n`` answers per row, averaged over rows."""
    return f"val-core/{DATA_SOURCE}/reward/mean@{val_n}"


# --- 1-2: build and warm start --------------------------------------------------------------------------


def prepare(work: str, args) -> dict:
    """Build the model and rows into ``work``, warm-start the model; return the pool's solve probabilities."""
    import pandas as pd

    from vade_verl.tiny.warm_start import first_token_solve_probs, warm_start

    paths = build_all(work, args.train_rows, args.val_rows, args.seed, vision=True, max_squares=GRID_CELLS)
    losses = warm_start(paths["model"], args.count_weights, args.warm_start_steps, lr=args.warm_start_lr,
                        seed=args.seed)
    rows = pd.read_parquet(paths["train"]).to_dict("records")
    probs = first_token_solve_probs(paths["model"], rows)
    counts = np.array([int(r["reward_model"]["ground_truth"]) for r in rows])
    return {
        "warm_start_loss_last10": float(np.mean(losses[-10:])) if losses else None,
        "pool_solve_probs": probs.tolist(),
        "pool_counts": counts.tolist(),
    }


# --- 3: one arm through verl ----------------------------------------------------------------------------


def trainer_overrides(args) -> list[str]:
    """The benchmark's Hydra overrides on top of the tiny CI run's (the arm script adds the sampler)."""
    rollouts = args.batch_size * args.group_size
    return [
        "data.max_prompt_length=32",
        "data.max_response_length=1",  # the answer is one digit token: the rollout is that token
        f"data.train_batch_size={args.batch_size}",
        f"data.seed={args.seed}",
        f"actor_rollout_ref.rollout.n={args.group_size}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={args.batch_size}",  # one on-policy update per step
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={rollouts}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={rollouts}",
        f"actor_rollout_ref.rollout.max_num_seqs={rollouts}",
        f"actor_rollout_ref.actor.optim.lr={args.lr}",
        f"actor_rollout_ref.actor.optim.lr_warmup_steps={args.warmup_steps}",
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


def run_arm(work: str, arm: str, args) -> dict:
    """Launch the arm (relaunching a dead launch from its checkpoint); returns wall time and launches."""
    run_dir = os.path.join(work, arm)
    start = time.monotonic()
    for launch in range(1, args.retries + 2):
        env = dict(os.environ, PYTHON=args.python, LAUNCH=str(launch), LAUNCH_TIMEOUT_S=str(args.arm_timeout))
        env.pop("RAY_ADDRESS", None)
        proc = subprocess.run(
            ["bash", ARM_SCRIPT, work, arm, *trainer_overrides(args),
             f"trainer.validation_data_dir={run_dir}/validation"],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        finished = proc.returncode == 0 and args.steps in read_metrics(run_dir)
        if finished:
            return {"wall_s": time.monotonic() - start, "launches": launch}
        tail = proc.stdout[-3000:]
        if not has_checkpoint(run_dir) or launch == args.retries + 1:
            raise RuntimeError(f"arm {arm}: launch {launch} failed (rc={proc.returncode}); tail:\n{tail}")
        print(f"arm {arm}: launch {launch} died (rc={proc.returncode}); resuming from its checkpoint", flush=True)
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


def accuracy_by_count(run_dir: str, step: int) -> dict[str, float]:
    """Held-out accuracy per count at ``step``, from verl's validation dump (``trainer.validation_data_dir``)."""
    scores = defaultdict(list)
    for rec in read_jsonl(os.path.join(run_dir, "validation", f"{step}.jsonl")):
        scores[str(rec["gts"])].append(float(rec["score"]))
    return {count: float(np.mean(s)) for count, s in sorted(scores.items())}


def read_arm(run_dir: str, args) -> dict:
    metrics = read_metrics(run_dir)
    missing = [s for s in range(1, args.steps + 1) if s not in metrics]
    if missing:
        raise RuntimeError(f"{run_dir}: verl logged no metrics for steps {missing[:5]}...")
    key = val_key(args.val_n)
    val_steps = sorted(s for s, d in metrics.items() if key in d)
    rollouts_per_step = args.batch_size * args.group_size
    return {
        "effective_ratio": effective_ratios(run_dir, args.steps),
        # VADE's own count (groups by verl's uid, vade_verl.vade.algorithm.effective_ratio); None for verl's sampler
        "sampler_effective_ratio": [metrics[s].get("vade/effective_ratio") for s in range(1, args.steps + 1)],
        "train_score": [metrics[s]["critic/score/mean"] for s in range(1, args.steps + 1)],
        "val_steps": val_steps,
        "val_rollouts": [s * rollouts_per_step for s in val_steps],
        "val_accuracy": [metrics[s][key] for s in val_steps],
        "val_accuracy_by_count_start": accuracy_by_count(run_dir, val_steps[0]),
        "val_accuracy_by_count_end": accuracy_by_count(run_dir, val_steps[-1]),
        "step_s_median": float(np.median([metrics[s]["timing_s/step"] for s in range(1, args.steps + 1)])),
    }


def summarise(arms: dict, batch_size: int) -> list[dict]:
    """One row per arm; ``rollouts_to_random_final``: training rollouts at the first validation whose
    accuracy reaches random's final accuracy (None if it never does)."""
    target = arms["random"]["val_accuracy"][-1] if "random" in arms else None
    rows = []
    for arm, data in arms.items():
        ratio, acc = np.array(data["effective_ratio"]), data["val_accuracy"]
        reach = None
        if target is not None:
            reach = next((r for r, a in zip(data["val_rollouts"], acc) if a >= target), None)
        rows.append({
            "arm": arm,
            "effective_ratio_mean": float(ratio.mean()),
            "effective_ratio_last_quarter": float(ratio[len(ratio) * 3 // 4 :].mean()),
            "informative_groups": int(round(float(ratio.sum()) * batch_size)),
            "val_accuracy_start": acc[0],
            "val_accuracy_final": acc[-1],
            "val_accuracy_best": max(acc),
            "val_accuracy_mean_after_start": float(np.mean(acc[1:])) if len(acc) > 1 else acc[0],
            "rollouts_to_random_final": reach,
        })
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'arm':<18}{'eff. ratio':>11}{'last 1/4':>9}{'val start':>10}{'val final':>10}{'val best':>9}"
             f"{'rollouts to random final':>26}"]
    for r in rows:
        reach = "never" if r["rollouts_to_random_final"] is None else f"{r['rollouts_to_random_final']:,}"
        lines.append(f"{LABELS[r['arm']]:<18}{r['effective_ratio_mean']:>11.3f}{r['effective_ratio_last_quarter']:>9.3f}"
                     f"{r['val_accuracy_start']:>10.3f}{r['val_accuracy_final']:>10.3f}{r['val_accuracy_best']:>9.3f}"
                     f"{reach:>26}")
    return "\n".join(lines)


def moving_average(x, window: int) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    window = max(1, min(window, x.size))
    return np.convolve(x, np.ones(window) / window, mode="valid")


def plot(summary: dict, paths: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms, cfg = summary["arms"], summary["config"]
    window = max(1, cfg["steps"] // 16)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    ax = axes[0]
    ax.hist(summary["pool"]["pool_solve_probs"], bins=np.linspace(0, 1, 21), color="tab:green")
    ax.set(title="(a) training pool after the warm start", xlabel="first-token solve probability", ylabel="rows")
    ax = axes[1]
    for arm, data in arms.items():
        ma = moving_average(data["effective_ratio"], window)
        ax.plot(np.arange(ma.size) + window, ma, color=COLORS[arm], label=LABELS[arm])
    ax.set(title=f"(b) effective-gradient ratio ({window}-step mean)", xlabel="training step",
           ylabel="groups with unequal rewards", ylim=(0, 1))
    ax.legend()
    ax = axes[2]
    for arm, data in arms.items():
        ax.plot(data["val_rollouts"], data["val_accuracy"], marker="o", color=COLORS[arm], label=LABELS[arm])
    ax.set(title=f"(c) held-out accuracy (verl validation, mean@{cfg['val_n']})",
           xlabel="training rollouts", ylabel="accuracy")
    ax.legend()
    fig.suptitle(f"tiny Qwen2.5-VL, counting 0-9 squares, GRPO through verl's trainer on CPU "
                 f"(B={cfg['batch_size']}, G={cfg['group_size']}, seed {cfg['seed']})")
    fig.tight_layout()
    for path in paths:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    work = os.path.join(os.path.abspath(args.out), "work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    pool = prepare(work, args)
    timing = {"build_and_warm_start_s": time.monotonic() - start}
    probs = np.array(pool["pool_solve_probs"])
    print(f"warm start: pool mean first-token solve probability {probs.mean():.3f}; "
          f"rows < 0.05: {np.mean(probs < 0.05):.0%}, > 0.95: {np.mean(probs > 0.95):.0%} "
          f"({timing['build_and_warm_start_s']:.0f} s)", flush=True)
    arms = {}
    for arm in args.arms:
        info = run_arm(work, arm, args)
        arms[arm] = {**read_arm(os.path.join(work, arm), args), **info}
        timing[f"{arm}_s"] = info["wall_s"]
        print(f"arm {arm}: {info['wall_s']:.0f} s, final held-out accuracy {arms[arm]['val_accuracy'][-1]:.3f}",
              flush=True)
    timing["total_s"] = time.monotonic() - start
    config = {k: v for k, v in vars(args).items() if k not in ("python",)}
    rows = summarise(arms, args.batch_size)
    summary = {"config": config, "timing": timing, "pool": pool, "arms": arms, "table": rows}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    plot(summary, [os.path.join(args.out, "learning_benchmark.png")] + ([args.figure] if args.figure else []))
    print(format_table(rows))
    print(f"total {timing['total_s']:.0f} s; summary: {os.path.join(args.out, 'summary.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
