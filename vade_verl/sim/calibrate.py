"""``python -m vade_verl.sim.calibrate RUN.json``: fit the simulator's learning dynamics to a real run.

Input: one JSON file describing a real GRPO run through verl's trainer, in the layout of the learning
benchmark's ``summary.json`` (``benchmarks/learning_benchmark.py``), of which only these keys are read::

    config.batch_size, config.group_size       B and G of the run (data.train_batch_size, rollout.n)
    accuracy_se                                one standard error of a held-out accuracy (optional)
    config.val_rows, config.val_n              held-out rows and answers per row (optional)
    pool.pool_solve_probs                      the training pool's solve probability per row at the start
                                               (or task.pool_solve_probs)
    pool.pool_counts                           a family id per row (or task.pool_keys; optional, needed
                                               for ``family``)
    arms.random.val_rollouts, .val_accuracy    the random arm's held-out accuracy per evaluation, at
                                               that many training rollouts (the first one at 0); or
                                               arms.random.<seed>.val_rollouts, ... for several seeds,
                                               whose mean curve is fitted
    arms.<sampler>....                         other arms, the same way (optional; simulator sampler
                                               names such as ``vade``, ``vade-eig``): shown next to the
                                               prediction
    task.key_classes, arms.*.val_accuracy_by_class
                                               a class name per key (list by key id, or dict) and each
                                               run's held-out accuracy per class (optional; needed for
                                               ``--by-class``, with task.pool_keys and 2+ random seeds)

The standard error of the random arm's (mean) accuracy: ``accuracy_se`` if given; else, with several
random seeds, the seeds' spread (standard deviation pooled over the evaluations after the start,
divided by the square root of the number of seeds); else the binomial ``sqrt(a (1 - a) / answers)``
with ``answers = config.val_rows x config.val_n`` and ``a`` the arm's mean accuracy.

``benchmarks/calibration/learning_benchmark_seed0.json`` is such a file, made from
docs/learning_benchmark.md (its ``source`` says how).

Fit: for each dynamics kind, every point of a parameter grid (``GRIDS``) runs the simulator's
``random`` sampler on the pool (N = rows, the run's B and G, as many steps as the last evaluation)
for ``--seeds`` seeds, and scores ``chi2 = sum_e ((m_e - m_0) - (a_e - a_0))^2 / se^2`` over the
evaluations e >= 1, with ``m`` the simulated pool's mean solve probability averaged over the seeds
and ``a`` the measured held-out accuracy: the fit matches the random arm's gain since the start, not
its level (held-out rows are not the pool). The parameters with the lowest chi2 are the fit; the
points within ``chi2_min + 4`` are "plausible". Prediction: under the fitted parameters (and at up
to ``--plausible`` plausible points), each other sampler and random run from the same seeds, and the
differences in the simulated mean solve probability at the last evaluation and averaged over the
evaluations after the start are reported, mean and standard deviation over the seeds, next to the
measured differences in held-out accuracy.

``--by-class`` fits the random arm's gain per key class instead of its all-key mean: chi2 is summed
over the classes, each simulated class mean (the pool rows of that class's keys) against the measured
class accuracy, in that class's standard error (the random seeds' spread, as above); the prediction
is then also reported per class. ``--fit-forget`` adds ``forget`` (relaxation toward the start,
``FORGET_GRID``) to every kind's grid.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from vade_verl.sim.population import DYNAMICS_KINDS, logit
from vade_verl.sim.simulate import SimConfig, simulate

# Parameter grids per dynamics kind: {parameter: values}; the other parameters stay 0.
GRIDS: Dict[str, Dict[str, np.ndarray]] = {
    "per-group": {"learn": np.geomspace(0.003, 3.0, 19), "transfer": np.r_[0.0, np.geomspace(1e-4, 0.3, 10)]},
    "per-step": {"learn": np.geomspace(0.03, 30.0, 19), "transfer": np.r_[0.0, np.geomspace(1e-4, 0.1, 10)]},
    "family": {
        "learn": np.geomspace(0.03, 30.0, 13),
        "family": np.array([0.03, 0.1, 0.3, 1.0]),
        "transfer": np.array([0.0, 1e-3, 1e-2]),
    },
}
# ``--fit-forget``: the values of ``forget`` added to every grid (otherwise forget stays 0).
FORGET_GRID = np.array([0.0, 1e-3, 3e-3, 1e-2, 3e-2])


@dataclasses.dataclass
class RealRun:
    """What the fit reads from a real run (module docstring)."""

    batch_size: int
    group_size: int
    solve_probs: np.ndarray
    families: Optional[np.ndarray]
    eval_steps: np.ndarray  # training steps at each evaluation (rollouts / (B G))
    accuracy: Dict[str, np.ndarray]  # arm -> held-out accuracy per evaluation
    accuracy_se: float
    row_classes: Optional[np.ndarray] = None  # key class per pool row
    class_accuracy: Optional[Dict[str, Dict[str, np.ndarray]]] = None  # arm -> class -> accuracy per evaluation
    class_se: Optional[Dict[str, float]] = None  # class -> one standard error of the random arm's class accuracy

    @property
    def classes(self) -> List[str]:
        return sorted(self.class_se) if self.class_se else []


def _get(data: dict, path: str, source: str):
    node = data
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise ValueError(f"{source}: missing key {path!r} (see vade_verl.sim.calibrate for the format)")
        node = node[key]
    return node


def _run_list(record, where: str) -> list:
    """One arm's runs: ``record`` is one run (``val_rollouts``, ``val_accuracy``) or ``{seed: run}``."""
    runs = [record] if isinstance(record, dict) and "val_rollouts" in record else list(dict(record).values())
    if not runs:
        raise ValueError(f"{where}: no run")
    return runs


def _runs(record, where: str) -> Tuple[np.ndarray, np.ndarray]:
    """One arm's evaluation rollouts and its accuracy per seed (rows)."""
    runs = _run_list(record, where)
    rollouts = np.asarray(_get(runs[0], "val_rollouts", where), dtype=np.int64)
    accuracy = []
    for run in runs:
        if not np.array_equal(np.asarray(_get(run, "val_rollouts", where), dtype=np.int64), rollouts):
            raise ValueError(f"{where}: its seeds were evaluated at different rollouts")
        accuracy.append(np.asarray(_get(run, "val_accuracy", where), dtype=np.float64))
    return rollouts, np.array(accuracy)


def _class_runs(record, where: str, classes: List[str], evaluations: int) -> Optional[Dict[str, np.ndarray]]:
    """One arm's accuracy per class and seed (``val_accuracy_by_class``), or None where a run lacks it."""
    runs = _run_list(record, where)
    if any("val_accuracy_by_class" not in run for run in runs):
        return None
    out = {}
    for name in classes:
        rows = [np.asarray(_get(run, f"val_accuracy_by_class.{name}", where), dtype=np.float64) for run in runs]
        if any(row.shape != (evaluations,) or np.isnan(row).any() for row in rows):
            raise ValueError(f"{where}: val_accuracy_by_class.{name} needs {evaluations} accuracies, no NaN")
        out[name] = np.array(rows)
    return out


def _seed_se(runs: np.ndarray) -> float:
    """One standard error of a seed mean: the seeds' variance pooled over the evaluations after the
    start, divided by the number of seeds."""
    return float(np.sqrt(runs[:, 1:].var(axis=0, ddof=1).mean() / runs.shape[0]))


def _load_classes(data: dict, pool_key: str, rows: int, path: str, evaluations: int):
    """``(row_classes, class_accuracy, class_se)`` from task.key_classes, or Nones where the file has
    no classes (module docstring)."""
    pool = data[pool_key]
    if "key_classes" not in pool:
        return None, None, None
    if "pool_keys" not in pool:
        raise ValueError(f"{path}: {pool_key}.key_classes needs {pool_key}.pool_keys (the key of each pool row)")
    key_classes = pool["key_classes"]
    if isinstance(key_classes, dict):
        row_classes = [key_classes.get(str(k)) for k in pool["pool_keys"]]
    else:
        row_classes = [key_classes[k] if isinstance(k, int) and 0 <= k < len(key_classes) else None for k in pool["pool_keys"]]
    if any(c is None for c in row_classes) or len(row_classes) != rows:
        raise ValueError(f"{path}: {pool_key}.key_classes has no class for some of {pool_key}.pool_keys")
    classes = sorted(set(row_classes))
    accuracy = {}
    for arm, record in data["arms"].items():
        runs = _class_runs(record, f"{path}: arms.{arm}", classes, evaluations)
        if runs is not None:
            accuracy[arm] = runs
    if "random" not in accuracy or accuracy["random"][classes[0]].shape[0] < 2:
        return np.array(row_classes), None, None
    se = {name: _seed_se(accuracy["random"][name]) for name in classes}
    flat = [name for name, value in se.items() if not value > 0]
    if flat:
        raise ValueError(f"{path}: arms.random's seeds agree exactly on class(es) {flat}: no standard error to fit them in")
    return np.array(row_classes), {arm: {c: runs[c].mean(axis=0) for c in classes} for arm, runs in accuracy.items()}, se


def load_real_run(path: str) -> RealRun:
    """Read and check a real run's file; errors name the file and the key."""
    with open(path) as handle:
        data = json.load(handle)
    batch_size = int(_get(data, "config.batch_size", path))
    group_size = int(_get(data, "config.group_size", path))
    pool_key = next((k for k in ("pool", "task") if k in data), None)
    if pool_key is None:
        raise ValueError(f"{path}: missing key 'pool.pool_solve_probs' (or 'task.pool_solve_probs')")
    probs = np.asarray(_get(data, f"{pool_key}.pool_solve_probs", path), dtype=np.float64)
    if probs.ndim != 1 or probs.size < batch_size:
        raise ValueError(f"{path}: {pool_key}.pool_solve_probs must list at least config.batch_size={batch_size} rows")
    if np.isnan(probs).any() or (probs < 0).any() or (probs > 1).any():
        raise ValueError(f"{path}: {pool_key}.pool_solve_probs has {int(np.sum(~((probs >= 0) & (probs <= 1))))} values outside [0, 1] or NaN")
    families = next((data[pool_key][k] for k in ("pool_counts", "pool_keys") if k in data[pool_key]), None)
    if families is not None:
        if len(families) != probs.size:
            raise ValueError(f"{path}: {pool_key} has {len(families)} family ids (pool_counts / pool_keys) for {probs.size} rows")
        families = np.unique(np.asarray(families), return_inverse=True)[1].astype(np.int64)
    arms = _get(data, "arms", path)
    if "random" not in arms:
        raise ValueError(f"{path}: arms.random is missing; the fit needs the random arm")
    rollouts_per_step = batch_size * group_size
    accuracy, steps, random_runs = {}, None, None
    for arm, record in arms.items():
        rollouts, runs = _runs(record, f"{path}: arms.{arm}")
        if runs.shape[1] != rollouts.size or rollouts.size < 2 or rollouts[0] != 0:
            raise ValueError(f"{path}: arms.{arm} needs as many val_rollouts as val_accuracy, at least 2, the first at 0 rollouts")
        if (rollouts % rollouts_per_step).any() or (np.diff(rollouts) <= 0).any():
            raise ValueError(f"{path}: arms.{arm}.val_rollouts must increase in whole steps of B x G = {rollouts_per_step}")
        if np.isnan(runs).any():
            raise ValueError(f"{path}: arms.{arm}.val_accuracy has NaN")
        if steps is not None and not np.array_equal(rollouts // rollouts_per_step, steps):
            raise ValueError(f"{path}: arms.{arm} was evaluated at other rollouts than arms.random")
        steps = rollouts // rollouts_per_step if steps is None else steps
        accuracy[arm] = runs.mean(axis=0)
        if arm == "random":
            random_runs = runs
    config = data["config"]
    if "accuracy_se" in data:
        se = float(data["accuracy_se"])
    elif random_runs.shape[0] > 1:
        se = _seed_se(random_runs)
    elif "val_rows" in config and "val_n" in config:
        answers = int(config["val_rows"]) * int(config["val_n"])
        mean = float(np.mean(accuracy["random"]))
        se = float(np.sqrt(mean * (1 - mean) / answers))
    else:
        raise ValueError(f"{path}: give accuracy_se, several random seeds, or config.val_rows and config.val_n")
    if not se > 0:
        raise ValueError(f"{path}: the accuracy's standard error is {se}; give accuracy_se > 0")
    row_classes, class_accuracy, class_se = _load_classes(data, pool_key, probs.size, path, steps.size)
    return RealRun(batch_size, group_size, probs, families, steps, accuracy, se, row_classes, class_accuracy, class_se)


def simulated_curves(run: RealRun, dynamics: dict, sampler: str, seeds: List[int]) -> np.ndarray:
    """The pool's simulated mean solve probability at each evaluation, one row per seed."""
    return simulated_class_curves(run, dynamics, sampler, seeds, [])["all"]


def simulated_class_curves(run: RealRun, dynamics: dict, sampler: str, seeds: List[int], classes: List[str]) -> Dict[str, np.ndarray]:
    """``{"all": curves, class: curves, ...}``: the simulated mean solve probability of the whole pool
    and of each class's rows at each evaluation, one row per seed."""
    z0 = logit(run.solve_probs)
    masks = {name: run.row_classes == name for name in classes}

    def observe(population) -> dict:
        probs = population.probs()
        return {f"class/{name}": float(probs[mask].mean()) for name, mask in masks.items()}

    curves = {name: [] for name in ["all", *classes]}
    for seed in seeds:
        config = SimConfig(
            num_samples=run.solve_probs.size,
            batch_size=run.batch_size,
            group_size=run.group_size,
            steps=int(run.eval_steps[-1]),
            seed=seed,
            samplers=(sampler,),
            **dynamics,
        )
        records = simulate(config, z0=z0, families=run.families, observe=observe)[sampler]
        for name in curves:
            key, start = ("mean_solve_prob", run.solve_probs.mean()) if name == "all" else (f"class/{name}", run.solve_probs[masks[name]].mean())
            progress = np.r_[start, [r[key] for r in records]]
            curves[name].append(progress[run.eval_steps])
    return {name: np.array(rows) for name, rows in curves.items()}


def _misfit(simulated: np.ndarray, measured: np.ndarray, se: float) -> float:
    return float(np.sum(((simulated[1:] - simulated[0]) - (measured[1:] - measured[0])) ** 2) / se**2)


def chi2(run: RealRun, curve: np.ndarray) -> float:
    """Squared misfit of the simulated gain since the start to the random arm's, in standard errors."""
    return _misfit(curve, run.accuracy["random"], run.accuracy_se)


def chi2_by_class(run: RealRun, curves: Dict[str, np.ndarray]) -> float:
    """``chi2`` per key class, each in its own standard error, summed over the classes."""
    return sum(_misfit(curves[name], run.class_accuracy["random"][name], run.class_se[name]) for name in run.classes)


def grid_points(kind: str, fit_forget: bool = False) -> List[dict]:
    grid = {**GRIDS[kind], **({"forget": FORGET_GRID} if fit_forget else {})}
    names = list(grid)
    mesh = np.meshgrid(*[grid[n] for n in names], indexing="ij")
    return [
        {"dynamics": kind, "forget": 0.0, "family": 0.0, **{n: float(m.flat[i]) for n, m in zip(names, mesh)}}
        for i in range(mesh[0].size)
    ]


def fit(run: RealRun, kind: str, seeds: List[int], by_class: bool = False, fit_forget: bool = False) -> List[Tuple[float, dict]]:
    """``(chi2, dynamics)`` for every grid point of ``kind``, best first; ``by_class``: ``chi2_by_class``."""
    classes = run.classes if by_class else []
    scored = []
    for point in grid_points(kind, fit_forget):
        mean = {name: rows.mean(axis=0) for name, rows in simulated_class_curves(run, point, "random", seeds, classes).items()}
        scored.append((chi2_by_class(run, mean) if by_class else chi2(run, mean["all"]), point))
    return sorted(scored, key=lambda item: item[0])


def differences(curves: Dict[str, np.ndarray], arm: str) -> dict:
    """Arm minus random: at the last evaluation and averaged after the start (mean, sd over seeds)."""
    final = curves[arm][:, -1] - curves["random"][:, -1]
    average = curves[arm][:, 1:].mean(axis=1) - curves["random"][:, 1:].mean(axis=1)
    return {"final": float(final.mean()), "final_sd": float(final.std()), "average": float(average.mean()), "average_sd": float(average.std())}


def measured_differences(run: RealRun, arm: str) -> dict:
    a, r = run.accuracy[arm], run.accuracy["random"]
    return {"final": float(a[-1] - r[-1]), "average": float(a[1:].mean() - r[1:].mean())}


def measured_class_differences(run: RealRun, arm: str) -> Dict[str, float]:
    """Arm minus random, held-out accuracy per class at the last evaluation."""
    return {name: float(run.class_accuracy[arm][name][-1] - run.class_accuracy["random"][name][-1]) for name in run.classes}


def predict(run: RealRun, dynamics: dict, arms: List[str], seeds: List[int], by_class: bool = False) -> Dict[str, dict]:
    """Per arm: ``differences`` to random in the pool's mean solve probability; with ``by_class``, also
    per key class under ``"by_class"``."""
    classes = run.classes if by_class else []
    curves = {arm: simulated_class_curves(run, dynamics, arm, seeds, classes) for arm in ["random", *arms]}
    prediction = {}
    for arm in arms:
        prediction[arm] = differences({a: c["all"] for a, c in curves.items()}, arm)
        if by_class:
            prediction[arm]["by_class"] = {name: differences({a: c[name] for a, c in curves.items()}, arm) for name in classes}
    return prediction


def calibrate(
    run: RealRun, kinds: List[str], arms: List[str], seeds: List[int], plausible: int, by_class: bool = False, fit_forget: bool = False
) -> List[dict]:
    """Per kind: the fit, its prediction for ``arms``, and the prediction's range over plausible points."""
    reports = []
    for kind in kinds:
        scored = fit(run, kind, seeds, by_class, fit_forget)
        best_chi2, best = scored[0]
        near = [point for value, point in scored if value <= best_chi2 + 4.0]
        picks = [near[i] for i in np.unique(np.linspace(0, len(near) - 1, min(plausible, len(near))).round().astype(int))]
        prediction = predict(run, best, arms, seeds, by_class)
        ranges = {arm: [prediction[arm]["final"]] * 2 for arm in arms}
        for point in picks:
            for arm, diff in predict(run, point, arms, seeds).items():
                ranges[arm] = [min(ranges[arm][0], diff["final"]), max(ranges[arm][1], diff["final"])]
        reports.append(
            {
                "dynamics": best,
                "chi2": best_chi2,
                "evaluations": int(run.eval_steps.size - 1) * (len(run.classes) if by_class else 1),
                "plausible_points": len(near),
                "prediction": prediction,
                "plausible_final_range": ranges,
            }
        )
    return reports


def _parameters(dynamics: dict) -> str:
    return ", ".join(f"{n}={dynamics[n]:.3g}" for n in ("learn", "transfer", "forget", "family") if dynamics[n] or n in ("learn", "transfer"))


def format_report(run: RealRun, reports: List[dict], arms: List[str]) -> str:
    lines = [
        f"real run: N={run.solve_probs.size}, B={run.batch_size}, G={run.group_size}, {int(run.eval_steps[-1])} steps, "
        f"{run.eval_steps.size} evaluations, accuracy se {run.accuracy_se:.4f}; random arm "
        f"{run.accuracy['random'][0]:.3f} -> {run.accuracy['random'][-1]:.3f}",
        "",
        f"{'dynamics':<10}{'fitted parameters':<48}{'chi2':>7}{'plaus.':>7}  " + "".join(f"{arm + ' - random, final (range) | mean':<44}" for arm in arms),
    ]
    for report in sorted(reports, key=lambda r: r["chi2"]):
        cells = []
        for arm in arms:
            p, (low, high) = report["prediction"][arm], report["plausible_final_range"][arm]
            cells.append(f"{p['final']:+.3f}+-{p['final_sd']:.3f} ({low:+.3f}..{high:+.3f}) | {p['average']:+.3f}".ljust(44))
        lines.append(
            f"{report['dynamics']['dynamics']:<10}{_parameters(report['dynamics']):<48}{report['chi2']:>7.1f}"
            f"{report['plausible_points']:>7}  " + "".join(cells)
        )
    measured = [arm for arm in arms if arm in run.accuracy]
    if measured:
        cells = [f"{measured_differences(run, arm)['final']:+.3f}{'':<22}| {measured_differences(run, arm)['average']:+.3f}".ljust(44) for arm in measured]
        lines.append(f"{'measured':<10}{'(held-out accuracy, this run)':<48}{'':>7}{'':>7}  " + "".join(cells))
    by_class = [r for r in reports if any("by_class" in p for p in r["prediction"].values())]
    if by_class:
        lines += ["", "per key class, arm - random at the last evaluation: simulated (each kind's fit) | measured (held-out accuracy)"]
        lines.append(f"{'dynamics':<10}{'arm':<10}" + "".join(f"{name:<18}" for name in run.classes))
        for report in sorted(by_class, key=lambda r: r["chi2"]):
            for arm in arms:
                real = measured_class_differences(run, arm) if arm in (run.class_accuracy or {}) else {}
                cells = [
                    f"{report['prediction'][arm]['by_class'][name]['final']:+.3f} | " + (f"{real[name]:+.3f}" if name in real else "  -   ")
                    for name in run.classes
                ]
                lines.append(f"{report['dynamics']['dynamics']:<10}{arm:<10}" + "".join(f"{cell:<18}" for cell in cells))
    best = min(reports, key=lambda r: r["chi2"])
    lines += ["", f"best fit: {best['dynamics']['dynamics']} ({_parameters(best['dynamics'])}), chi2 {best['chi2']:.1f} over {best['evaluations']} evaluations"]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m vade_verl.sim.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="the real run's JSON (format in this module's docstring)")
    p.add_argument("--dynamics", default=",".join(DYNAMICS_KINDS), help="kinds to fit, comma-separated")
    p.add_argument("--arms", default="vade,vade-eig", help="samplers whose difference to random is predicted")
    p.add_argument("--seeds", type=int, default=4, help="simulation seeds per grid point and prediction")
    p.add_argument("--plausible", type=int, default=6, help="plausible grid points whose prediction bounds the range")
    p.add_argument("--by-class", action="store_true", help="fit the random arm's gain per key class (task.key_classes) and predict per class")
    p.add_argument("--fit-forget", action="store_true", help=f"add forget {FORGET_GRID.tolist()} to every kind's grid")
    p.add_argument("--json", default=None, help="also write the reports here")
    args = p.parse_args(argv)
    kinds = [k for k in args.dynamics.split(",") if k]
    arms = [a for a in args.arms.split(",") if a]
    try:
        run = load_real_run(args.run)
        unknown = [k for k in kinds if k not in DYNAMICS_KINDS]
        if unknown:
            raise ValueError(f"--dynamics: unknown {unknown}; choose from {list(DYNAMICS_KINDS)}")
        if "family" in kinds and run.families is None:
            raise ValueError(f"{args.run}: the family dynamics needs pool.pool_counts or task.pool_keys (a family id per row)")
        if args.by_class and run.class_se is None:
            raise ValueError(
                f"{args.run}: --by-class needs task.key_classes with task.pool_keys, and arms.random with val_accuracy_by_class "
                "in at least 2 seeds (their spread is each class's standard error)"
            )
    except (OSError, ValueError) as error:
        print(f"calibrate: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    reports = calibrate(run, kinds, arms, list(range(args.seeds)), args.plausible, args.by_class, args.fit_forget)
    print(format_report(run, reports, arms))
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(reports, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
