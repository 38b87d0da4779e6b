"""Seconds to make the heaviest DIVA variant (d = 1 -> D = +8: rotation, Gaussian noise, salt-and-pepper and
blur at 0.5) of one random image, at its own size and bounded to ``--max-pixels`` first (as
``DivaRLHFDataset`` does, ``data.diva.max_pixels``; docs/diva.md).

    python benchmarks/diva_variant_cost.py [--sizes 2000x1500 4000x3000] [--max-pixels 1048576] [--skip-unbounded]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from vade_verl.diva.variants import VariantConfig, VariantSpec, apply_variant, bound_pixels

HEAVIEST = VariantSpec(9, 9, "perturb", ops=(("rotation", 0.5), ("gaussian_noise", 0.5), ("salt_pepper", 0.5), ("blur", 0.5)))


def seconds(image: Image.Image, max_pixels: int | None) -> float:
    start = time.perf_counter()
    source = image if max_pixels is None else bound_pixels(image, max_pixels)
    apply_variant(HEAVIEST, [source], "Find x.", np.random.default_rng(0), VariantConfig())
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["2000x1500", "4000x3000"])
    parser.add_argument("--max-pixels", type=int, default=1048576)
    parser.add_argument("--skip-unbounded", action="store_true")
    args = parser.parse_args(argv)
    for size in args.sizes:
        w, h = map(int, size.split("x"))
        image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
        bounded = f"{seconds(image, args.max_pixels):.2f} s at max_pixels {args.max_pixels}"
        full = "skipped" if args.skip_unbounded else f"{seconds(image, None):.2f} s"
        print(f"{size}: unbounded {full}; {bounded}")


if __name__ == "__main__":
    main()
