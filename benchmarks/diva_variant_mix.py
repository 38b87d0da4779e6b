"""Which variants DIVA-GRPO builds for each difficulty, on a geo3k-like problem, with and without the
columns of ``python -m vade_verl.diva.prep`` (pure: no verl, no model).

    python benchmarks/diva_variant_mix.py [--draws 2000] [--variants 1] [--seed 0]

Prints, per start difficulty d = 1..9, the share of each variant kind ("copy" = an unchanged prompt)
and the mean recorded difficulty, for a problem with one figure and (a) no paraphrase or reasoning
steps, (b) two paraphrases and four steps. Defaults: the authors' one-variant targets, the paper's
draw otherwise (``vade_verl.diva.advantage``), the shift-to-variant table of ``vade_verl.diva.variants``.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from PIL import Image, ImageDraw

from vade_verl.diva.advantage import DifficultyConfig, draw_variant_difficulties
from vade_verl.diva.variants import VariantConfig, as_paraphrases, plan_variant

KINDS = ("copy", "paraphrase", "perturb", "render", "hint")


def figure() -> Image.Image:
    img = Image.new("RGB", (240, 180), "white")
    ImageDraw.Draw(img).polygon([(20, 160), (220, 160), (120, 20)], outline="black", width=2)
    return img


def mix(d: int, draws: int, variants: int, seed: int, paraphrases: list[str], steps: int) -> tuple[Counter, float]:
    """Plans only (what ``make_variants`` would build), ``draws`` problems' worth."""
    rng = np.random.default_rng(seed)
    cfg, dcfg = VariantConfig(), DifficultyConfig()
    kinds: Counter = Counter()
    difficulty = []
    for _ in range(draws):
        for target in draw_variant_difficulties(d, variants, rng, dcfg):
            spec = plan_variant(d, target, rng, cfg, True, bool(paraphrases), steps, dcfg)
            kinds[spec.kind] += 1
            difficulty.append(spec.difficulty)
    return kinds, float(np.mean(difficulty))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--variants", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cases = {
        "no prep columns": ([], 0),
        "paraphrases + steps": (as_paraphrases(["What is x?", "Find the value of x."]), 4),
    }
    for name, (paraphrases, steps) in cases.items():
        print(f"\n{name} ({args.variants} variant(s) per problem, {args.draws} problems per d)")
        print("d  " + "  ".join(f"{k:>10}" for k in KINDS) + "  mean variant d")
        for d in range(1, 10):
            kinds, mean_d = mix(d, args.draws, args.variants, args.seed + d, paraphrases, steps)
            total = sum(kinds.values())
            print(f"{d}  " + "  ".join(f"{kinds[k] / total:>10.1%}" for k in KINDS) + f"  {mean_d:14.2f}")


if __name__ == "__main__":
    main()
