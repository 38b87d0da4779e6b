"""Prepare a geo3k-layout multimodal math dataset as verl parquet files with stable row ids.

    python -m vade_verl.data.geo3k --out ~/data/geo3k                      # hiyouga/geometry3k
    python -m vade_verl.data.geo3k --source /path/to/saved_or_hub_dataset --out DIR \\
        [--splits train test] [--id position|content] [--data-source NAME]

``--source`` is a Hugging Face hub name, a folder written by ``datasets.save_to_disk``, or any
path ``datasets.load_dataset`` reads; its rows have ``images``, ``problem`` and ``answer``.
Writes ``<out>/<split>.parquet`` for each split (verl's layout, see ``vade_verl.data.rows``).
``--data-source`` picks verl's reward function: the default, ``hiyouga/geometry3k``, is scored
by ``verl.utils.reward_score.geo3k`` (0.9 * boxed-answer accuracy + 0.1 * format; needs the
``mathruler`` package).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Optional

from vade_verl.data.rows import GEO3K_INSTRUCTION, ID_SCHEMES, make_rows

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = "hiyouga/geometry3k"


def load_split(source: str, split: str, config: Optional[str] = None) -> Any:
    """One split of ``source``: a ``save_to_disk`` folder, else whatever ``load_dataset`` reads
    (``config``: the Hub dataset's configuration name, if it has several)."""
    import datasets

    saved = os.path.isdir(source) and any(
        os.path.exists(os.path.join(source, name)) for name in ("dataset_dict.json", "state.json")
    )
    if not saved:
        return datasets.load_dataset(source, config, split=split)
    loaded = datasets.load_from_disk(source)
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ValueError(f"{source} has splits {sorted(loaded)}, not '{split}'")
        return loaded[split]
    return loaded


def write_rows(rows: list[dict], path: str) -> str:
    import pandas as pd

    if not rows:
        raise ValueError(f"no rows to write to {path}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def prepare(source: str, out: str, splits: list[str], id_scheme: str, data_source: str, instruction: str) -> dict:
    """Write ``<out>/<split>.parquet`` for every split; returns ``{split: (path, rows)}``."""
    written = {}
    for split in splits:
        rows = make_rows(load_split(source, split), split, data_source, instruction, id_scheme)
        path = write_rows(rows, os.path.join(out, f"{split}.parquet"))
        written[split] = (path, len(rows))
        logger.info("%s: %d rows (ids: %s) -> %s", split, len(rows), id_scheme, path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"dataset to convert (default {DEFAULT_SOURCE})")
    parser.add_argument("--out", required=True, help="folder for <split>.parquet")
    parser.add_argument("--splits", nargs="+", default=["train", "test"])
    parser.add_argument("--id", dest="id_scheme", choices=sorted(ID_SCHEMES), default="position")
    parser.add_argument("--data-source", default=DEFAULT_SOURCE, help="verl data_source (selects the reward function)")
    parser.add_argument("--instruction", default=GEO3K_INSTRUCTION, help="text appended to every problem")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    written = prepare(args.source, os.path.expanduser(args.out), args.splits, args.id_scheme, args.data_source, args.instruction)
    for split, (path, count) in written.items():
        print(f"{split}: {count} rows -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
