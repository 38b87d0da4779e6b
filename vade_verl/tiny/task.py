"""Synthetic counting task: an image with ``n`` squares, the answer is ``n``.

Pure data and scoring, no verl import. Rows follow verl's RL parquet layout (``data_source``, ``prompt``,
``images``, ``ability``, ``reward_model.ground_truth``, ``extra_info.index``); ``extra_info.index`` is the
row's position, so it is stable across runs and is what the VADE sampler keys its state on.
"""

import io
import json
import re
from collections import defaultdict

import numpy as np
from PIL import Image, ImageDraw

DATA_SOURCE = "vade_tiny/count_squares"
KEYS_DATA_SOURCE = "vade_tiny/key_lookup"  # the learning benchmark's task (vade_verl.tiny.keys), scored alike
SCORED_SOURCES = (DATA_SOURCE, KEYS_DATA_SOURCE)
QUESTION = "how many squares ?"
IMAGE_SIZE = 56
SQUARE = 8
MAX_SQUARES = 4  # the CI runs' rows: 0-4 squares
GRID_CELLS = 9  # the image is a 3x3 grid of cells, so at most 9 squares


def draw_squares(n: int, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    """Draw ``n`` non-overlapping filled squares on a white RGB image (a 3x3 grid of free cells)."""
    if not 0 <= n <= GRID_CELLS:
        raise ValueError(f"n must be in [0, {GRID_CELLS}], got {n}")
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    cell = size // 3
    for c in rng.choice(9, size=n, replace=False):
        x0 = (c % 3) * cell + (cell - SQUARE) // 2
        y0 = (c // 3) * cell + (cell - SQUARE) // 2
        draw.rectangle([x0, y0, x0 + SQUARE - 1, y0 + SQUARE - 1], fill="black")
    return image


def count_dark_squares(image: Image.Image) -> int:
    """Independent check of an image's answer: count connected dark blobs (4-neighbour flood fill)."""
    dark = np.asarray(image.convert("L")) < 128
    seen = np.zeros_like(dark)
    blobs = 0
    for y, x in zip(*np.nonzero(dark)):
        if seen[y, x]:
            continue
        blobs += 1
        stack = [(y, x)]
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < dark.shape[0] and 0 <= nx < dark.shape[1] and dark[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
    return blobs


def make_rows(num_rows: int, seed: int, split: str, with_image: bool, max_squares: int = MAX_SQUARES) -> list[dict]:
    """Build ``num_rows`` verl RL rows, each with a count drawn uniformly from 0..``max_squares`` (at most
    ``GRID_CELLS``). ``with_image=False`` spells the squares out as text tokens (``[] [] []``) for a text-only
    model; the answer and the reward are the same."""
    if not 0 <= max_squares <= GRID_CELLS:
        raise ValueError(f"max_squares must be in [0, {GRID_CELLS}], got {max_squares}")
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(num_rows):
        n = int(rng.integers(0, max_squares + 1))
        image = draw_squares(n, rng)
        row = {
            "data_source": DATA_SOURCE,
            "ability": "counting",
            "reward_model": {"style": "rule", "ground_truth": str(n)},
            "extra_info": {"index": index, "split": split, "answer": n},
        }
        if with_image:
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            row["prompt"] = [{"role": "user", "content": "<image>" + QUESTION}]
            row["images"] = [{"bytes": buf.getvalue()}]
        else:
            row["prompt"] = [{"role": "user", "content": " ".join(["[]"] * n + [QUESTION])}]
        rows.append(row)
    return rows


_FIRST_INT = re.compile(r"-?\d+")


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    """Rule reward: ``score`` 1.0 if the first integer in the response equals the ground truth, else 0.0.

    Signature of verl's ``custom_reward_function`` (``reward.custom_reward_function.path/name``). The dict
    form also reports ``row_index`` (the row's ``extra_info.index``): verl copies extra reward keys into its
    rollout dumps (``trainer.rollout_data_dir``), which lets a test join each scored rollout to its row. It is
    a float because verl 0.7.1's dump (``ray_trainer.py:415`` ``json.dumps``) cannot serialise numpy ints."""
    if data_source not in SCORED_SOURCES:
        raise ValueError(f"compute_score only scores {SCORED_SOURCES}, got data_source={data_source!r}")
    if not extra_info or "index" not in extra_info:
        raise ValueError(f"compute_score needs extra_info['index'] (stable row id), got extra_info={extra_info!r}")
    match = _FIRST_INT.search(solution_str)
    score = float(match is not None and match.group(0) == str(ground_truth).strip())
    return {"score": score, "row_index": float(extra_info["index"])}


def rollout_scores_by_row(dump_path, step: int) -> dict[int, list[float]]:
    """Row index -> the scores of its rollouts, from verl's rollout dump of ``step``
    (``<trainer.rollout_data_dir>/<step>.jsonl``; :func:`compute_score` reports each rollout's row as
    ``row_index``). Raises if a record belongs to another step."""
    rows = defaultdict(list)
    with open(dump_path) as f:
        for line in filter(str.strip, f):
            rec = json.loads(line)
            if rec["step"] != step:
                raise ValueError(f"{dump_path}: a record of step {rec['step']} in the dump of step {step}")
            rows[int(rec["row_index"])].append(float(rec["score"]))
    return dict(rows)
