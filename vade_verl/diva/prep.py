"""Offline DIVA-GRPO columns: paraphrases and reasoning-step hints, written once with a model you name.

    python -m vade_verl.diva.prep --input ~/data/geo3k/train.parquet \\
        --output ~/data/geo3k/train_diva.parquet --model Qwen/Qwen2.5-VL-7B-Instruct \\
        [--backend transformers|vllm] [--paraphrases 5] [--batch-size 8] [--max-new-tokens 1024] \\
        [--temperature 0.7] [--seed 0] [--question-key question] [--limit N] [--keep-unverified]

Then train on the output file: ``DivaRLHFDataset`` reads ``paraphrase`` (D = 0 variants, and the
paraphrase half of perturbed ones) and ``solution`` (D < 0 hint variants). This is the step the
authors run before training (GitHub Siaaaaaa1/DIVA_GRPO_release, ``verl/difficulty_variation/
augment_dataset.py`` and ``llm_client.py``: a hosted Qwen-VL writes 5 rewordings and 3-5 reasoning
steps ending in a boxed answer, and rows whose answer disagrees with the ground truth are dropped).
Ours asks any local chat model the same two things with its own prompts, through transformers (the
default; also CPU) or vLLM, and keeps every row: a row whose steps do not reach the ground truth
gets an empty ``solution`` (counted; its hint variants fall back, see docs/diva.md) unless
``--keep-unverified``.

The question sent to the model is the one training rewrites (:func:`vade_verl.diva.variants.row_question`:
``extra_info.question`` in verl's geo3k layout, else the prompt's user text), so the answer-format
instruction of the prompt is neither paraphrased nor lost. Images go to the model when it has an
image processor (a vision-language model) and are left out for a text-only model (logged).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from vade_verl.diva.variants import row_field, row_question

logger = logging.getLogger(__name__)

PARAPHRASE_COLUMN = "paraphrase"
SOLUTION_COLUMN = "solution"
MAX_IMAGES_PER_PROMPT = 4

PARAPHRASE_PROMPT = (
    "Rewrite the math problem below in {count} different ways. Every rewrite must ask exactly the same "
    "question, keep every number, name and condition, and have the same correct answer; change the wording "
    "and the sentence structure, shorter or longer as you like. Do not solve it. Answer only with the "
    "rewrites, each between its own tags: <variant1>...</variant1> up to <variant{count}>...</variant{count}>.\n\n"
    "Problem: {question}"
)
STEPS_PROMPT = (
    "Solve the math problem below, using the figure when there is one. Write 3 to 5 reasoning steps, the "
    "first describing what the figure shows, each between its own tags <step1>...</step1>, <step2>...</step2>, "
    "and so on, each following from the ones before; then give the final answer as \\boxed{{answer}}.\n\n"
    "Problem: {question}"
)

Generate = Callable[[Sequence[tuple[str, Sequence[Image.Image]]]], list[str]]
"""A model: (user text, images) pairs -> one reply each."""


# ---------------------------------------------------------------------------------------------
# Parsing the replies
# ---------------------------------------------------------------------------------------------
def parse_tagged(reply: str, tag: str) -> list[str]:
    """Contents of ``<tag1>..</tag1>``, ``<tag2>..``, ... in order, stopping at the first number missing;
    a closing tag may be missing when the next opening tag (or the end) follows."""
    items = []
    number = 1
    while True:
        match = re.search(rf"<{tag}{number}>(.*?)(?:</{tag}{number}>|(?=<{tag}{number + 1}>)|$)", reply, re.DOTALL)
        if not match or not match.group(1).strip():
            return items
        items.append(re.sub(r"\s+", " ", match.group(1)).strip())
        number += 1


def boxed_answer(reply: str) -> str | None:
    """Content of the last ``\\boxed{...}``, braces balanced; None when there is none."""
    start = reply.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    begin = i
    while i < len(reply) and depth:
        depth += {"{": 1, "}": -1}.get(reply[i], 0)
        i += 1
    return reply[begin : i - 1].strip() if depth == 0 else None


def same_answer(answer: str | None, truth: str) -> bool:
    """``mathruler``'s ``grade_answer`` (the grader of verl's geo3k reward) when installed, else equal
    text after removing spaces."""
    if answer is None:
        return False
    try:
        from mathruler.grader import grade_answer
    except ImportError:
        return re.sub(r"\s+", "", answer) == re.sub(r"\s+", "", str(truth))
    return bool(grade_answer(answer, str(truth)))


BOXED = "\\boxed{"


def remove_boxed(text: str) -> str:
    """``text`` without any ``\\boxed{..}``, nested braces included (``\\boxed{\\frac{1}{2}}`` whole); an
    unclosed one is cut to the end, so no part of a boxed answer survives into a hint."""
    out, i = [], 0
    while (start := text.find(BOXED, i)) >= 0:
        out.append(text[i:start])
        depth, j = 1, start + len(BOXED)
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def strip_steps(steps: list[str]) -> list[str]:
    """Steps as hints: any ``\\boxed{..}`` answer removed from them (:func:`remove_boxed`)."""
    return [s for s in (remove_boxed(step).strip() for step in steps) if s]


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------
def row_images(row: dict) -> list[Image.Image]:
    images = row.get("images")
    out = []
    for image in list(images) if images is not None else []:
        if isinstance(image, Image.Image):
            out.append(image)
        elif isinstance(image, dict) and image.get("bytes") is not None:
            out.append(Image.open(io.BytesIO(image["bytes"])).convert("RGB"))
        else:
            raise TypeError(f"cannot read image entry of type {type(image).__name__}")
    return out


def row_answer(row: dict, answer_key: str) -> str:
    reward = row.get("reward_model") or {}
    answer = reward.get("ground_truth") if isinstance(reward, dict) else None
    answer = row_field(row, answer_key) if answer is None else answer
    if answer is None:
        raise ValueError(f"row has no reward_model.ground_truth and no '{answer_key}' field to check the steps against")
    return str(answer)


@dataclass
class PrepStats:
    rows: int = 0
    paraphrases: int = 0
    rows_without_paraphrase: int = 0
    verified: int = 0
    unverified: int = 0
    no_steps: int = 0

    def summary(self) -> str:
        return (
            f"{self.rows} rows: {self.paraphrases} paraphrases ({self.rows_without_paraphrase} rows without any); "
            f"steps reaching the ground truth {self.verified}, not reaching it {self.unverified}, none parsed {self.no_steps}"
        )


def prepare_rows(
    rows: list[dict],
    generate: Generate,
    count: int = 5,
    question_key: str = "question",
    answer_key: str = "answer",
    prompt_key: str = "prompt",
    keep_unverified: bool = False,
    send_images: bool = True,
) -> tuple[list[list[str]], list[list[str]], PrepStats]:
    """Paraphrase and solution lists for ``rows`` (two model calls per row, batched by ``generate``)."""
    stats = PrepStats(rows=len(rows))
    questions = [row_question(row, question_key, prompt_key) for row in rows]
    images = [row_images(row) if send_images else [] for row in rows]
    paraphrase_replies = generate([(PARAPHRASE_PROMPT.format(count=count, question=q), []) for q in questions])
    steps_replies = generate([(STEPS_PROMPT.format(question=q), imgs) for q, imgs in zip(questions, images, strict=True)])
    paraphrases, solutions = [], []
    for row, reply_p, reply_s in zip(rows, paraphrase_replies, steps_replies, strict=True):
        found = parse_tagged(reply_p, "variant")[:count]
        paraphrases.append(found)
        stats.paraphrases += len(found)
        stats.rows_without_paraphrase += not found
        steps = strip_steps(parse_tagged(reply_s, "step"))
        if not steps:
            stats.no_steps += 1
        elif same_answer(boxed_answer(reply_s), row_answer(row, answer_key)):
            stats.verified += 1
        else:
            stats.unverified += 1
            steps = steps if keep_unverified else []
        solutions.append(steps)
    return paraphrases, solutions, stats


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------
class ChatPrompter:
    """The model's own chat template (its processor's for a vision-language model)."""

    def __init__(self, model_path: str):
        from transformers import AutoProcessor, AutoTokenizer

        self.processor = None
        if os.path.exists(os.path.join(model_path, "preprocessor_config.json")) or not os.path.isdir(model_path):
            try:
                processor = AutoProcessor.from_pretrained(model_path)
                self.processor = processor if hasattr(processor, "image_processor") else None
            except (OSError, ValueError):
                self.processor = None
        self.tokenizer = self.processor.tokenizer if self.processor is not None else AutoTokenizer.from_pretrained(model_path)
        if self.processor is None:
            logger.info("%s has no image processor: images are not sent to it", model_path)

    @property
    def sees_images(self) -> bool:
        return self.processor is not None

    def text(self, user_text: str, num_images: int) -> str:
        if self.processor is None:
            messages = [{"role": "user", "content": user_text}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        content = [{"type": "image"}] * num_images + [{"type": "text", "text": user_text}]
        return self.processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)


class TransformersGenerator:
    """``generate`` with ``transformers`` (``AutoModelForImageTextToText`` for a vision-language model)."""

    def __init__(self, model_path: str, max_new_tokens: int, temperature: float, batch_size: int, seed: int):
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

        self.prompter = ChatPrompter(model_path)
        cls = AutoModelForImageTextToText if self.prompter.sees_images else AutoModelForCausalLM
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = cls.from_pretrained(model_path, torch_dtype=dtype).to(self.device).eval()
        self.max_new_tokens, self.temperature, self.batch_size = max_new_tokens, temperature, batch_size
        torch.manual_seed(seed)

    def __call__(self, requests: Sequence[tuple[str, Sequence[Image.Image]]]) -> list[str]:
        import torch

        tokenizer = self.prompter.tokenizer
        tokenizer.padding_side = "left"
        replies = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            texts = [self.prompter.text(text, len(images)) for text, images in chunk]
            images = [img for _, imgs in chunk for img in imgs]
            if self.prompter.sees_images:
                inputs = self.prompter.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
            else:
                inputs = tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
            inputs.pop("token_type_ids", None)  # some tokenizers add it; causal LMs' generate refuses it
            inputs = inputs.to(self.device)
            sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {"do_sample": False}
            with torch.no_grad():
                out = self.model.generate(
                    **inputs, max_new_tokens=self.max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling
                )
            new_tokens = out[:, inputs["input_ids"].shape[1] :]
            replies.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
            logger.info("generated %d / %d replies", len(replies), len(requests))
        return replies


class VllmGenerator:
    """``generate`` with vLLM's offline ``LLM.generate`` (prompt text from the model's chat template,
    images as ``multi_modal_data``). Not exercised by the test suite (no vLLM in the CPU environment)."""

    def __init__(self, model_path: str, max_new_tokens: int, temperature: float, batch_size: int, seed: int):
        from vllm import LLM, SamplingParams

        self.prompter = ChatPrompter(model_path)
        vision = {"limit_mm_per_prompt": {"image": MAX_IMAGES_PER_PROMPT}} if self.prompter.sees_images else {}
        self.llm = LLM(model=model_path, seed=seed, **vision)
        self.sampling = SamplingParams(temperature=temperature, max_tokens=max_new_tokens, seed=seed)

    def __call__(self, requests: Sequence[tuple[str, Sequence[Image.Image]]]) -> list[str]:
        prompts = []
        for text, images in requests:
            prompt: dict[str, Any] = {"prompt": self.prompter.text(text, len(images))}
            if images:
                prompt["multi_modal_data"] = {"image": list(images)}
            prompts.append(prompt)
        return [result.outputs[0].text for result in self.llm.generate(prompts, self.sampling)]


BACKENDS = {"transformers": TransformersGenerator, "vllm": VllmGenerator}


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
def prepare_file(args: argparse.Namespace, generate: Generate | None = None) -> PrepStats:
    """Read ``args.input``, add the two columns, write ``args.output``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.read_parquet(args.input)
    if args.limit:
        frame = frame.iloc[: args.limit].copy()
    if generate is None:
        generate = BACKENDS[args.backend](args.model, args.max_new_tokens, args.temperature, args.batch_size, args.seed)
    sees_images = getattr(getattr(generate, "prompter", None), "sees_images", True)
    rows = frame.to_dict(orient="records")
    paraphrases, solutions, stats = prepare_rows(
        rows, generate, args.paraphrases, args.question_key, args.answer_key, args.prompt_key,
        args.keep_unverified, send_images=sees_images,
    )  # fmt: skip
    table = pa.Table.from_pandas(frame.drop(columns=[PARAPHRASE_COLUMN, SOLUTION_COLUMN], errors="ignore"), preserve_index=False)
    text_lists = pa.list_(pa.string())  # typed even when every list is empty
    table = table.append_column(PARAPHRASE_COLUMN, pa.array(paraphrases, type=text_lists))
    table = table.append_column(SOLUTION_COLUMN, pa.array(solutions, type=text_lists))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    pq.write_table(table, args.output)
    logger.info("%s -> %s", stats.summary(), args.output)
    return stats


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="verl parquet (e.g. from python -m vade_verl.data.geo3k)")
    parser.add_argument("--output", required=True, help="parquet to write: the input plus 'paraphrase' and 'solution'")
    parser.add_argument("--model", required=True, help="local path or hub name of a chat model (a vision-language one sees the images)")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="transformers")
    parser.add_argument("--paraphrases", type=int, default=5, help="rewordings asked per problem (the authors: 5)")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (transformers)")
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--temperature", type=float, default=0.7, help="0: greedy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--question-key", default="question", help="field with the bare problem (top level or extra_info)")
    parser.add_argument("--answer-key", default="answer", help="answer field when reward_model.ground_truth is absent")
    parser.add_argument("--prompt-key", default="prompt")
    parser.add_argument("--limit", type=int, default=0, help="only the first N rows (0: all)")
    parser.add_argument("--keep-unverified", action="store_true", help="keep steps whose boxed answer misses the ground truth")
    args = parser.parse_args(argv)
    if args.paraphrases < 1:
        parser.error("--paraphrases must be >= 1")
    return args


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    stats = prepare_file(parse_args(argv))
    print(stats.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
