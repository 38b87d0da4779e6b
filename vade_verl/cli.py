"""``vade-verl`` console script: one sub-command per tool, each a module with ``main(argv)``."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "simulate": ("vade_verl.sim.simulate", "simulate sampler dynamics on CPU and benchmark samplers (main job)"),
    "calibrate": ("vade_verl.sim.calibrate", "fit the simulator's learning dynamics to a real learning-benchmark run"),
    "dry-run": ("vade_verl.dryrun", "compose and validate a recipe's full verl config, build the sampler, exit"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        lines = [f"  {name:10s} {doc}" for name, (_, doc) in COMMANDS.items()]
        print("usage: vade-verl COMMAND [ARGS]\n\ncommands:\n" + "\n".join(lines), file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
