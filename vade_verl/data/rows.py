"""verl RL rows from multimodal math records, with stable per-row ids (pure: no verl import).

A record is a mapping with ``problem`` (text, may hold ``<image>`` placeholders), ``answer`` and
``images`` (a list of PIL images or ``{"bytes": ..., "path": ...}`` dicts, as Hugging Face
``datasets`` yields them). A row is what verl's ``RLHFDataset`` reads (verl's own
``examples/data_preprocess/geo3k.py`` writes the same layout)::

    {"data_source": ..., "prompt": [{"role": "user", "content": "<image>... instruction"}],
     "images": [{"bytes": b"...", "path": None}], "ability": "math",
     "reward_model": {"style": "rule", "ground_truth": answer},
     "extra_info": {"split": ..., "index": <id>, "answer": ..., "question": ...}}

verl replaces each ``<image>`` of the prompt by the next image (and asserts the counts match), so
every row must hold exactly as many placeholders as images: a problem with none gets them in front,
a problem with a different non-zero count is an error naming the row.

Row ids (``extra_info.index``), chosen by ``--id`` (registry ``ID_SCHEMES``):

* ``position``: the record's position in its source split, before anything else happens to it
  (verl's geo3k convention). Stable as long as the source split and its order are.
* ``content``: the first 63 bits of SHA-256 over the problem, the answer and each image's decoded
  pixels (mode, size, bytes). Stable when the source is reordered, filtered or extended, and
  independent of how images were encoded; two identical records would share an id, so they are
  an error naming both positions.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any, Callable, Iterable, Mapping, Sequence

from PIL import Image

IMAGE_PLACEHOLDER = "<image>"

# The answer format verl's geo3k reward (verl.utils.reward_score.geo3k) scores: <think> ... </think>
# then \boxed{answer}. Same wording as verl's examples/data_preprocess/geo3k.py.
GEO3K_INSTRUCTION = (
    r"You FIRST think about the reasoning process as an internal monologue and then provide the final answer. "
    r"The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in \boxed{}."
)


def _as_pil(image: Any, where: str) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, Mapping) and image.get("bytes") is not None:
        return Image.open(io.BytesIO(image["bytes"]))
    raise TypeError(f"{where}: an image must be a PIL image or a dict with 'bytes', got {type(image).__name__}")


def encode_image(image: Any, where: str) -> dict:
    """``{"bytes", "path"}`` as Hugging Face's Image feature stores it; bytes are kept as given,
    a PIL image is written in its own format (PNG when it has none)."""
    if isinstance(image, Mapping) and image.get("bytes") is not None:
        return {"bytes": bytes(image["bytes"]), "path": image.get("path")}
    pil = _as_pil(image, where)
    buffer = io.BytesIO()
    pil.save(buffer, format=pil.format or "PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def content_id(problem: str, answer: str, images: Sequence[Any], where: str = "record") -> int:
    """63-bit id from SHA-256 over problem, answer and the images' decoded pixels."""
    digest = hashlib.sha256(json.dumps([problem, answer], ensure_ascii=False).encode("utf-8"))
    for image in images:
        pil = _as_pil(image, where)
        digest.update(f"|{pil.mode}|{pil.size[0]}x{pil.size[1]}|".encode())
        digest.update(pil.tobytes())
    return int.from_bytes(digest.digest()[:8], "big") & (2**63 - 1)


def position_ids(records: Sequence[Mapping[str, Any]]) -> list[int]:
    return list(range(len(records)))


def content_ids(records: Sequence[Mapping[str, Any]]) -> list[int]:
    ids = [content_id(str(r["problem"]), str(r["answer"]), r["images"] or [], f"record {i}") for i, r in enumerate(records)]
    first_at: dict[int, int] = {}
    for position, rid in enumerate(ids):
        if rid in first_at:
            raise ValueError(
                f"records {first_at[rid]} and {position} have the same problem, answer and images, so the same "
                "content id: remove the duplicate or use --id position"
            )
        first_at[rid] = position
    return ids


ID_SCHEMES: dict[str, Callable[[Sequence[Mapping[str, Any]]], list[int]]] = {
    "position": position_ids,
    "content": content_ids,
}


def build_prompt(problem: str, num_images: int, instruction: str, where: str) -> str:
    """The user turn: the problem with one ``<image>`` per image, then the instruction."""
    count = problem.count(IMAGE_PLACEHOLDER)
    if count == 0:
        problem = IMAGE_PLACEHOLDER * num_images + problem
    elif count != num_images:
        raise ValueError(f"{where}: the problem has {count} '{IMAGE_PLACEHOLDER}' placeholders but {num_images} images")
    return f"{problem} {instruction}" if instruction else problem


def make_rows(
    records: Iterable[Mapping[str, Any]],
    split: str,
    data_source: str,
    instruction: str = GEO3K_INSTRUCTION,
    id_scheme: str = "position",
    ability: str = "math",
) -> list[dict]:
    """verl rows for ``records`` (one split), ids by ``id_scheme`` (see the module docstring)."""
    if id_scheme not in ID_SCHEMES:
        raise ValueError(f"id scheme {id_scheme!r} unknown; choose one of {sorted(ID_SCHEMES)}")
    records = list(records)
    for position, record in enumerate(records):
        missing = [key for key in ("problem", "answer", "images") if key not in record]
        if missing:
            raise ValueError(f"{split} record {position} has no {', '.join(missing)} field (geo3k layout: images, problem, answer)")
    ids = ID_SCHEMES[id_scheme](records)
    rows = []
    for position, (record, rid) in enumerate(zip(records, ids)):
        where = f"{split} record {position}"
        images = list(record["images"] or [])
        problem, answer = str(record["problem"]), str(record["answer"])
        rows.append(
            {
                "data_source": data_source,
                "prompt": [{"role": "user", "content": build_prompt(problem, len(images), instruction, where)}],
                "images": [encode_image(image, where) for image in images],
                "ability": ability,
                "reward_model": {"style": "rule", "ground_truth": answer},
                "extra_info": {"split": split, "index": int(rid), "answer": answer, "question": problem},
            }
        )
    return rows
