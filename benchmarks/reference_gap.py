"""Rollouts to reach verl random's final progress, relative to the best true-p reference, per
difficulty and seed; and each sampler's final progress against random's.

Usage::

    python benchmarks/reference_gap.py                                  # the tables in docs/simulate.md
    python benchmarks/reference_gap.py --dynamics per-group --presets mm-math --seeds 0,1 --samplers vade,vade-eig

For every ``--presets`` x ``--seeds`` pair it runs ``vade-verl simulate``'s samplers (default options
otherwise; ``--dynamics`` picks the learning dynamics with its calibrated parameters) on the same
population, with ``random`` and the four references that know the true p
(``vade_verl.sim.simulate.REFERENCES``), and prints two tables:

* per sampler, the cumulative rollouts at the first step whose mean solve probability reaches
  random's final one, divided by the best reference's of that run
  (``rollouts_to_target_vs_best_reference`` of ``summarise``); "never" when the sampler did not
  reach it within ``--steps``; and which reference was best;
* per sampler, its final mean solve probability minus random's after the same number of steps
  (negative: worse than random; the same rollouts for the samplers that generate B x G per step,
  more for DAPO, GRESO and MMR1), mean and range over the seeds.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from vade_verl.sim.population import DEFAULT_DYNAMICS, DYNAMICS_KINDS
from vade_verl.sim.simulate import LABELS, REFERENCES, SimConfig, simulate, summarise


def measure(presets, seeds, samplers, **options):
    """``{preset: {seed: {sampler: row of summarise}}}`` for ``random``, the references and
    ``samplers``; ``options`` are further ``SimConfig`` fields (dynamics, steps, batch_size, ...)."""
    names = tuple(dict.fromkeys(("random", *REFERENCES, *samplers)))
    table = {}
    for preset in presets:
        table[preset] = {}
        for seed in seeds:
            config = SimConfig(difficulty=preset, seed=seed, samplers=names, **options)
            table[preset][seed] = {row["sampler"]: row for row in summarise(simulate(config), config.batch_size)}
    return table


def _relative(row):
    return row.get("rollouts_to_target_vs_best_reference")


def format_relative(table, samplers) -> str:
    """Rollouts to random's final progress / the best reference's, per run, mean and worst."""
    lines = ["| preset | seed | best reference | " + " | ".join(samplers) + " |", "|---|---|---|" + "---|" * len(samplers)]
    for preset, by_seed in table.items():
        for seed, rows in by_seed.items():
            best = next((LABELS[name] for name, row in rows.items() if row.get("best_reference")), "none reached")
            cells = ["never" if _relative(rows[s]) is None else f"{_relative(rows[s]):.2f}x" for s in samplers]
            lines.append(f"| {preset} | {seed} | {best} | " + " | ".join(cells) + " |")
        for label, reduce in (("mean", np.mean), ("worst", np.max)):
            cells = []
            for s in samplers:
                values = [_relative(rows[s]) for rows in by_seed.values()]
                cells.append("never" if None in values else f"{reduce(values):.2f}x")
            lines.append(f"| {preset} | {label} | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_versus_random(table, samplers) -> str:
    """Final mean solve probability minus random's, mean (min..max) over the seeds."""
    lines = ["| preset | random's final p | " + " | ".join(samplers) + " |", "|---|---|" + "---|" * len(samplers)]
    for preset, by_seed in table.items():
        base = [rows["random"]["final_mean_solve_prob"] for rows in by_seed.values()]
        cells = []
        for s in samplers:
            diff = np.array([rows[s]["final_mean_solve_prob"] - rows["random"]["final_mean_solve_prob"] for rows in by_seed.values()])
            cells.append(f"{diff.mean():+.3f} ({diff.min():+.3f}..{diff.max():+.3f})")
        lines.append(f"| {preset} | {np.mean(base):.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="mm-math;uniform;beta:0.3,0.3;beta:0.5,0.5;beta:2,5;beta:5,2", help="';'-separated --difficulty values")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--samplers", default="random,vade,vade-eig,mopps,greso")
    p.add_argument("--dynamics", default=DEFAULT_DYNAMICS, choices=DYNAMICS_KINDS)
    for name in ("steps", "num_samples", "batch_size", "group_size"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(SimConfig, name))
    for name in ("learn", "transfer", "forget", "family"):
        p.add_argument(f"--{name}", type=float, default=None, help="dynamics parameter (default: calibrated)")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args(argv)
    presets = [x for x in args.presets.split(";") if x]
    seeds = [int(x) for x in args.seeds.split(",")]
    samplers = [x for x in args.samplers.split(",") if x]
    start = time.perf_counter()
    names = ("dynamics", "steps", "num_samples", "batch_size", "group_size", "learn", "transfer", "forget", "family")
    options = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    table = measure(presets, seeds, samplers, **options)
    print(format_relative(table, samplers))
    print()
    print(format_versus_random(table, [s for s in samplers if s != "random"]))
    print(f"\n{len(presets) * len(seeds)} runs ({options}) in {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({p: {str(s): v for s, v in by.items()} for p, by in table.items()}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
