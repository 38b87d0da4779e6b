"""Supervised warm start of the tiny Qwen2.5-VL on the counting task, and its per-row solve probabilities.

The random tiny model answers at chance, so RL on it cannot show which samples are informative. The
learning benchmark (``benchmarks/learning_benchmark.py``) first teaches it the task for a few hundred
supervised steps, with the counts drawn from ``count_weights``: counts seen often end up solved (p near
1), counts seen rarely stay hard (p near 0), the rest in between, as in a real pre-trained model facing a
dataset of mixed difficulty. Pure torch + transformers, no verl import.

The prompt is the text verl renders for a task row (``RLHFDataset`` splits the row's ``<image>`` prompt
into an image part and a text part and applies the processor's chat template with the generation prompt);
the supervised answer is the count then ``<|im_end|>``, the two tokens a correct rollout ends with.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from vade_verl.tiny.task import GRID_CELLS, QUESTION, draw_squares

MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]


def draw_counts(num: int, rng: np.random.Generator, count_weights: Sequence[float]) -> np.ndarray:
    """``num`` counts in 0..len(count_weights)-1, drawn with probability proportional to the weights."""
    weights = np.asarray(count_weights, dtype=float)
    if weights.ndim != 1 or not 1 <= weights.size <= GRID_CELLS + 1:
        raise ValueError(f"count_weights needs 1 to {GRID_CELLS + 1} entries (counts 0..), got {weights.size}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"count_weights must be finite, >= 0 and not all 0, got {weights.tolist()}")
    return rng.choice(weights.size, size=num, p=weights / weights.sum())


def _encode(processor, images, counts=None):
    """Processor inputs for prompts (and, given ``counts``, prompt + answer); every prompt has the same
    length (one 56x56 image = 4 tokens), so no padding is needed."""
    prompt = processor.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    texts = [prompt] * len(images) if counts is None else [f"{prompt}{int(n)} <|im_end|>" for n in counts]
    return processor(text=texts, images=list(images), return_tensors="pt")


def warm_start(
    model_dir: str,
    count_weights: Sequence[float],
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-4,
    seed: int = 0,
) -> list[float]:
    """Train the model in ``model_dir`` for ``steps`` AdamW steps (gradient norm clipped at 1) on fresh
    images whose counts follow ``count_weights``, with cross-entropy on the answer's two tokens; save it
    back to ``model_dir``. Returns the loss of every step."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if steps < 0 or batch_size < 1:
        raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {steps}, {batch_size}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        counts = draw_counts(batch_size, rng, count_weights)
        inputs = _encode(processor, [draw_squares(int(n), rng) for n in counts], counts)
        logits = model(**inputs).logits
        # the last two tokens are the answer (count, <|im_end|>); position t predicts token t + 1
        loss = torch.nn.functional.cross_entropy(
            logits[:, -3:-1].reshape(-1, logits.shape[-1]), inputs["input_ids"][:, -2:].reshape(-1)
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.save_pretrained(model_dir)
    return losses


def row_images(rows: Sequence[dict]) -> list:
    """The PIL image of each verl row (``images[0].bytes``)."""
    from PIL import Image

    return [Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB") for row in rows]


def first_token_solve_probs(model_dir: str, rows: Sequence[dict], batch_size: int = 64) -> np.ndarray:
    """Per row: the probability that the model's first sampled answer token (temperature 1) is the row's
    count. Rollouts that write something else first and the count later also score 1 under the task's
    rule, so this is a lower bound of the row's solve rate; after the warm start the first token is a digit
    nearly always."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    digit_ids = processor.tokenizer.convert_tokens_to_ids([str(d) for d in range(10)])
    images = row_images(rows)
    answers = np.array([int(row["reward_model"]["ground_truth"]) for row in rows])
    probs = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            logits = model(**_encode(processor, images[start : start + batch_size])).logits[:, -1]
            probs.append(torch.softmax(logits, dim=-1)[:, digit_ids].numpy())
    return np.concatenate(probs)[np.arange(len(rows)), answers]
