"""Build the tiny model and the counting-task parquet files into one folder.

    python -m vade_verl.tiny.build --out /tmp/vade_tiny [--train-rows 64 --val-rows 8 --seed 0] [--text]
                                   [--max-squares 4]

writes ``<out>/model`` (tokenizer, processor and a random Qwen2.5-VL; with ``--text`` a text-only Qwen2 and
rows that spell the squares out as text) and ``<out>/data/{train,val}.parquet`` (image rows with 0 to
``--max-squares`` squares).
"""

import argparse
import os

from vade_verl.tiny.model import build_model, build_vl_model
from vade_verl.tiny.task import MAX_SQUARES, make_rows


def write_parquet(rows: list[dict], path: str) -> str:
    """Write verl RL rows to parquet (one row per dict, nested fields as structs/lists)."""
    import pandas as pd

    if not rows:
        raise ValueError(f"no rows to write to {path}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def build_all(
    out: str, train_rows: int, val_rows: int, seed: int, vision: bool = True, max_squares: int = MAX_SQUARES
) -> dict:
    """Build model + train/val parquet under ``out``; return their paths."""
    build = build_vl_model if vision else build_model
    data = os.path.join(out, "data")
    paths = {
        "model": build(os.path.join(out, "model"), seed=seed),
        "train": write_parquet(make_rows(train_rows, seed, "train", vision, max_squares), f"{data}/train.parquet"),
        "val": write_parquet(make_rows(val_rows, seed + 1, "val", vision, max_squares), f"{data}/val.parquet"),
    }
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--train-rows", type=int, default=64)
    parser.add_argument("--val-rows", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text", action="store_true", help="text-only Qwen2 and text rows")
    parser.add_argument("--max-squares", type=int, default=MAX_SQUARES, help="counts 0..this (at most 9)")
    args = parser.parse_args(argv)
    paths = build_all(args.out, args.train_rows, args.val_rows, args.seed, not args.text, args.max_squares)
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
