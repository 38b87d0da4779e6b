"""Key-lookup task: each key is a coloured 4x4 pattern with an arbitrary answer digit.

The learning benchmark's task (``benchmarks/learning_benchmark.py``): the answer of a key is drawn at
random, so learning one key's answer says nothing about another's; what RL can learn is key by key, and
which keys a sampler spends its rollouts on decides what the model learns. Pure data, no verl import.

* A key is a 4x4 grid of cells, each one of ``PALETTE``'s colours (``key_patterns``: distinct patterns).
* A render is the key's 56x56 image (cells of 14 px: one Qwen2-VL patch each) with independent pixel
  noise in [-``RENDER_NOISE``, ``RENDER_NOISE``] (``render_key``): every render is a different image, so
  the held-out rows are renders never in the pool (``check_disjoint_images`` asserts it byte for byte).
* Rows follow verl's RL parquet layout, as :mod:`vade_verl.tiny.task`'s do, with ``extra_info.key`` and
  are scored by the same rule (:func:`vade_verl.tiny.task.compute_score`: the first integer of the answer).
"""

from __future__ import annotations

import hashlib
import io
from typing import Sequence

import numpy as np
from PIL import Image

from vade_verl.tiny.task import IMAGE_SIZE, KEYS_DATA_SOURCE

QUESTION = "the answer is ?"  # every word is in the tiny tokenizer's vocabulary (vade_verl.tiny.model.WORDS)
GRID = 4
CELL = IMAGE_SIZE // GRID  # 14 px: one 14 px vision patch per cell
PALETTE = np.array([[0, 0, 0], [255, 255, 255], [220, 40, 40], [40, 80, 220]], dtype=np.int16)
RENDER_NOISE = 24
NUM_ANSWERS = 10


def key_patterns(num_keys: int, seed: int) -> np.ndarray:
    """``num_keys`` distinct patterns, shape (num_keys, GRID, GRID), entries indexing ``PALETTE``."""
    capacity = len(PALETTE) ** (GRID * GRID)
    if not 0 < num_keys <= capacity:
        raise ValueError(f"num_keys must be in 1..{capacity}, got {num_keys}")
    rng = np.random.default_rng(seed)
    codes = rng.choice(capacity, size=num_keys, replace=False)
    digits = (codes[:, None] // len(PALETTE) ** np.arange(GRID * GRID)) % len(PALETTE)
    return digits.reshape(num_keys, GRID, GRID).astype(np.int64)


def key_answers(num_keys: int, seed: int) -> np.ndarray:
    """An arbitrary answer digit per key, each digit as often as possible (a shuffled 0..9 cycle), so the
    answer prior alone scores 1/10."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(num_keys) % NUM_ANSWERS)


def render_key(pattern: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The key's image with fresh pixel noise: cell colours plus uniform noise in +-``RENDER_NOISE``."""
    cells = PALETTE[pattern]  # (GRID, GRID, 3)
    pixels = cells.repeat(CELL, axis=0).repeat(CELL, axis=1)
    noise = rng.integers(-RENDER_NOISE, RENDER_NOISE + 1, size=pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def make_key_rows(
    patterns: np.ndarray,
    answers: np.ndarray,
    keys: Sequence[int],
    renders_per_key: int,
    seed: int,
    split: str,
    first_index: int = 0,
) -> list[dict]:
    """``renders_per_key`` fresh renders of each key in ``keys`` as verl rows (key-major order);
    ``extra_info.index`` counts from ``first_index``."""
    if renders_per_key < 1:
        raise ValueError(f"renders_per_key must be >= 1, got {renders_per_key}")
    rng = np.random.default_rng(seed)
    rows = []
    for key in keys:
        for _ in range(renders_per_key):
            answer = int(answers[key])
            rows.append({
                "data_source": KEYS_DATA_SOURCE,
                "ability": "lookup",
                "prompt": [{"role": "user", "content": "<image>" + QUESTION}],
                "images": [{"bytes": _png(render_key(patterns[key], rng))}],
                "reward_model": {"style": "rule", "ground_truth": str(answer)},
                "extra_info": {"index": first_index + len(rows), "split": split, "key": int(key), "answer": answer},
            })
    return rows


def image_digests(rows: Sequence[dict]) -> list[str]:
    """SHA-256 of each row's image bytes."""
    return [hashlib.sha256(row["images"][0]["bytes"]).hexdigest() for row in rows]


def check_disjoint_images(pool: Sequence[dict], held_out: Sequence[dict]) -> None:
    """Raise if a held-out row's image equals a pool row's image byte for byte (or the pool repeats one)."""
    pool_digests = image_digests(pool)
    if len(set(pool_digests)) != len(pool_digests):
        raise ValueError(f"the pool repeats {len(pool_digests) - len(set(pool_digests))} image(s)")
    shared = set(pool_digests) & set(image_digests(held_out))
    if shared:
        raise ValueError(f"{len(shared)} held-out image(s) are byte-for-byte images of the pool: the held-out set overlaps it")


# --- the pool a warm start leaves ------------------------------------------------------------------------
# Each key gets a class: its warm-start examples carry its answer ("solved"), a fixed wrong digit
# ("blocked": unsolvable for now, the model is confidently wrong), or the answer with probability
# LEARNABLE_CORRECT and the wrong digit otherwise ("learnable": solve rate in between).
KEY_CLASSES = ("solved", "blocked", "learnable")
LEARNABLE_CORRECT = 0.3


def assign_classes(num_keys: int, shares: Sequence[float], seed: int) -> np.ndarray:
    """A class name per key, ``round(share * num_keys)`` keys of each of ``KEY_CLASSES`` (the last takes the rest)."""
    shares = np.asarray(shares, dtype=float)
    if shares.shape != (len(KEY_CLASSES),) or np.any(shares < 0) or not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"key class shares (solved, blocked, learnable) must be 3 numbers >= 0 summing to 1, got {shares.tolist()}")
    sizes = np.round(shares[:-1] * num_keys).astype(int)
    sizes = np.append(sizes, num_keys - sizes.sum())
    classes = np.repeat(np.array(KEY_CLASSES), sizes)
    return np.random.default_rng(seed).permutation(classes)


def decoy_answers(answers: np.ndarray, seed: int) -> np.ndarray:
    """A wrong digit per key (answer + a random offset in 1..9, mod 10)."""
    offsets = np.random.default_rng(seed).integers(1, NUM_ANSWERS, size=len(answers))
    return (np.asarray(answers) + offsets) % NUM_ANSWERS


def warm_start_labels(answers: np.ndarray, decoys: np.ndarray, classes: np.ndarray, keys: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """The supervised label of one warm-start example of each key in ``keys``, by the key's class."""
    correct = np.where(classes[keys] == "solved", True, np.where(classes[keys] == "blocked", False,
                                                                   rng.random(len(keys)) < LEARNABLE_CORRECT))
    return np.where(correct, answers[keys], decoys[keys])


def warm_start_examples(patterns: np.ndarray, answers: np.ndarray, decoys: np.ndarray, classes: np.ndarray):
    """``draw(rng, n)`` for :func:`vade_verl.tiny.warm_start.warm_start`: n fresh renders of uniformly drawn
    keys with :func:`warm_start_labels` (fresh noise: never a pool or held-out image)."""

    def draw(rng: np.random.Generator, num: int) -> tuple[list, np.ndarray]:
        keys = rng.integers(0, len(patterns), size=num)
        return [render_key(patterns[k], rng) for k in keys], warm_start_labels(answers, decoys, classes, keys, rng)

    return draw
