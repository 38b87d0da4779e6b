"""Supervised warm start of the tiny Qwen2.5-VL on a one-digit-answer image task, and its per-row solve probabilities.

The random tiny model answers at chance, so RL on it cannot show which samples are informative. The
learning benchmark (``benchmarks/learning_benchmark.py``) first teaches it for a few hundred supervised
steps on examples from ``draw_examples`` (``vade_verl.tiny.keys.warm_start_examples``: some keys taught
their answer, some a wrong one, some a mix), so that the pool starts with solved, unsolvable and
learnable rows, as a real pre-trained model facing a dataset of mixed difficulty. :func:`counting_examples`
does the same for the counting task (counts seen often end up solved). Pure torch + transformers, no verl
import.

The prompt is the text verl renders for a task row (``RLHFDataset`` splits the row's ``<image>`` prompt
into an image part and a text part and applies the processor's chat template with the generation prompt);
the supervised answer is the count then ``<|im_end|>``, the two tokens a correct rollout ends with.
"""

from __future__ import annotations

import io
from typing import Callable, Sequence

import numpy as np

from vade_verl.tiny.task import GRID_CELLS, QUESTION, draw_squares

# draw_examples(rng, n) -> (n PIL images, n answer digits)
ExampleDraw = Callable[[np.random.Generator, int], tuple[list, np.ndarray]]


def messages(question: str) -> list[dict]:
    """The user turn verl renders for a task row (an image part, then the question)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def draw_counts(num: int, rng: np.random.Generator, count_weights: Sequence[float]) -> np.ndarray:
    """``num`` counts in 0..len(count_weights)-1, drawn with probability proportional to the weights."""
    weights = np.asarray(count_weights, dtype=float)
    if weights.ndim != 1 or not 1 <= weights.size <= GRID_CELLS + 1:
        raise ValueError(f"count_weights needs 1 to {GRID_CELLS + 1} entries (counts 0..), got {weights.size}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"count_weights must be finite, >= 0 and not all 0, got {weights.tolist()}")
    return rng.choice(weights.size, size=num, p=weights / weights.sum())


def counting_examples(count_weights: Sequence[float]) -> ExampleDraw:
    """Fresh counting images whose counts follow ``count_weights`` (the answer is the count)."""

    def draw(rng: np.random.Generator, num: int) -> tuple[list, np.ndarray]:
        counts = draw_counts(num, rng, count_weights)
        return [draw_squares(int(n), rng) for n in counts], counts

    return draw


def _encode(processor, images, question: str, answers=None):
    """Processor inputs for prompts (and, given ``answers``, prompt + answer); every prompt has the same
    length (one 56x56 image = 4 tokens), so no padding is needed."""
    prompt = processor.apply_chat_template(messages(question), add_generation_prompt=True, tokenize=False)
    texts = [prompt] * len(images) if answers is None else [f"{prompt}{int(n)} <|im_end|>" for n in answers]
    return processor(text=texts, images=list(images), return_tensors="pt")


def warm_start(
    model_dir: str,
    draw_examples: ExampleDraw,
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-4,
    seed: int = 0,
    question: str = QUESTION,
) -> list[float]:
    """Train the model in ``model_dir`` for ``steps`` AdamW steps (gradient norm clipped at 1) on batches
    from ``draw_examples``, with cross-entropy on the answer's two tokens (the digit, ``<|im_end|>``); save
    it back to ``model_dir``. Returns the loss of every step."""
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
        images, answers = draw_examples(rng, batch_size)
        inputs = _encode(processor, images, question, answers)
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


def first_token_solve_probs(model_dir: str, rows: Sequence[dict], batch_size: int = 64, question: str = QUESTION) -> np.ndarray:
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
            logits = model(**_encode(processor, images[start : start + batch_size], question)).logits[:, -1]
            probs.append(torch.softmax(logits, dim=-1)[:, digit_ids].numpy())
    return np.concatenate(probs)[np.arange(len(rows)), answers]
