"""Rollouts to reach verl random's final progress, relative to the oracle, per difficulty and seed.

Usage::

    python benchmarks/oracle_gap.py                                    # the table in docs/simulate.md
    python benchmarks/oracle_gap.py --presets mm-math --seeds 0,1 --samplers vade,vade-eig --steps 400 --batch-size 256

For every ``--presets`` x ``--seeds`` pair it runs ``vade-verl simulate``'s samplers (default
options otherwise) on the same population and prints, per sampler, the cumulative rollouts at the
first step whose mean solve probability reaches verl random's final one, divided by the oracle's
(``rollouts_to_target_vs_oracle`` of ``vade_verl.sim.simulate.summarise``); "never" when the sampler
did not reach it within ``--steps``. The last rows give the mean and worst case per preset, and the
number of (preset, seed) pairs where the first sampler after ``vade`` beats or ties ``vade`` (pairs
where neither reached the target are counted apart).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from vade_verl.sim.simulate import SimConfig, simulate, summarise


def measure(presets, seeds, samplers, **options):
    """``{preset: {seed: {sampler: relative or None}}}`` for ``random``, ``oracle`` and ``samplers``;
    ``options`` are further ``SimConfig`` fields (steps, batch_size, ...)."""
    names = ("random", "oracle", *[s for s in samplers if s not in ("random", "oracle")])
    table = {}
    for preset in presets:
        table[preset] = {}
        for seed in seeds:
            config = SimConfig(difficulty=preset, seed=seed, samplers=names, **options)
            rows = summarise(simulate(config), config.batch_size)
            table[preset][seed] = {row["sampler"]: row.get("rollouts_to_target_vs_oracle") for row in rows}
    return table


def format_table(table, samplers) -> str:
    def cell(value):
        return "never" if value is None else f"{value:.2f}x"

    lines = ["| preset | seed | " + " | ".join(samplers) + " |", "|---|---|" + "---|" * len(samplers)]
    for preset, by_seed in table.items():
        for seed, values in by_seed.items():
            lines.append(f"| {preset} | {seed} | " + " | ".join(cell(values[s]) for s in samplers) + " |")
        for label, reduce in (("mean", np.mean), ("worst", np.max)):
            cells = []
            for s in samplers:
                values = [v[s] for v in by_seed.values()]
                cells.append("never" if None in values else f"{reduce(values):.2f}x")
            lines.append(f"| {preset} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="mm-math;uniform;beta:0.3,0.3;beta:0.5,0.5;beta:2,5;beta:5,2", help="';'-separated --difficulty values")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--samplers", default="random,vade,vade-eig,mopps,greso")
    for name in ("steps", "num_samples", "batch_size", "group_size"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(SimConfig, name))
    p.add_argument("--json", default=None, help="also write the table here")
    args = p.parse_args(argv)
    presets = [x for x in args.presets.split(";") if x]
    seeds = [int(x) for x in args.seeds.split(",")]
    samplers = [x for x in args.samplers.split(",") if x]
    start = time.perf_counter()
    options = {name: getattr(args, name) for name in ("steps", "num_samples", "batch_size", "group_size")}
    table = measure(presets, seeds, samplers, **options)
    print(format_table(table, samplers))
    if "vade" in samplers and samplers.index("vade") + 1 < len(samplers):
        challenger = samplers[samplers.index("vade") + 1]
        pairs = [(v["vade"], v[challenger]) for by_seed in table.values() for v in by_seed.values()]
        decided = [(b, c) for b, c in pairs if (b, c) != (None, None)]
        wins = sum(c is not None and (b is None or c <= b) for b, c in decided)
        print(
            f"\n{challenger} needs no more rollouts than vade in {wins} of {len(decided)} (preset, seed) pairs "
            f"where either reached the target; neither did in {len(pairs) - len(decided)}"
        )
    print(f"{len(presets) * len(seeds)} runs ({options}) in {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({p: {str(s): v for s, v in by.items()} for p, by in table.items()}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
