"""A vLLM logits processor that keeps the tiny random Qwen2.5-VL from sampling vision tokens.

A trained Qwen2.5-VL never writes ``<|vision_start|>``, ``<|vision_end|>``, ``<|image_pad|>`` or ``<|video_pad|>``
in an answer; the random tiny model does (4 of its 33 tokens). verl then computes Qwen2-VL's 3-D rope
position ids over prompt + response (``experimental/agent_loop/agent_loop.py:745`` ->
transformers ``Qwen2_5_VLModel.get_rope_index``), which reads the token after every ``<|vision_start|>`` and
fails with IndexError when one ends the response, or counts a phantom image. So the CI run's rollout
masks these ids (logit -inf), read from the model config (``image_token_id``, ``video_token_id``,
``vision_start_token_id``, ``vision_end_token_id``). The FSDP actor is not masked: the sampled answers are
ones the unmasked policy also gives non-zero probability.

Selected with ``+actor_rollout_ref.rollout.engine_kwargs.vllm.logits_processors=[...:NoVisionTokens]``
(verl passes ``engine_kwargs.vllm`` to vLLM's server as arguments, ``vllm_async_server.py:215-326``).
"""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor

VISION_TOKEN_FIELDS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")


def vision_token_ids(hf_config) -> list[int]:
    """The vision special-token ids a Qwen2(.5)-VL config names; raises naming a missing field."""
    missing = [f for f in VISION_TOKEN_FIELDS if getattr(hf_config, f, None) is None]
    if missing:
        raise ValueError(f"NoVisionTokens needs a Qwen2-VL-style model config; it lacks {missing}")
    return [int(getattr(hf_config, f)) for f in VISION_TOKEN_FIELDS]


class NoVisionTokens(LogitsProcessor):
    """Sets the logits of the model's vision special tokens to -inf for every request."""

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        self.banned = torch.tensor(vision_token_ids(vllm_config.model_config.hf_config), device=device)

    def is_argmax_invariant(self) -> bool:
        return False  # a banned token may be the argmax

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        return None  # the same for every request

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        logits[:, self.banned] = float("-inf")
        return logits
