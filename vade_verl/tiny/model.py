"""Tiny tokenizer, processor and random-weight models, built locally (no download).

Tokenizer: a word-level ``tokenizers`` model (whitespace split, each digit its own token) with Qwen's chat
and vision special tokens, wrapped in ``Qwen2TokenizerFast`` (``Qwen2_5_VLProcessor`` accepts only a Qwen2
tokenizer class) with a Qwen-style chat template that renders an image part as
``<|vision_start|><|image_pad|><|vision_end|>``.

- ``build_vl_model``: ``Qwen2_5_VLForConditionalGeneration`` (text hidden 128, 2 layers, 2 heads so that
  head_dim is 64, which vLLM's CPU attention accepts; vision tower depth 2, hidden 64) plus a
  ``Qwen2_5_VLProcessor`` whose image processor keeps images between 56x56 and 112x112 pixels (a 56x56
  image becomes 4x4 patches of 14 px, merged 2x2 into 4 ``<|image_pad|>`` tokens). This is what the CI run
  trains through verl's vLLM rollout.
- ``build_model``: a text-only ``Qwen2ForCausalLM`` with the same tokenizer (the verl 0.9 contract test,
  and the bad-input check "a text-only model given image rows").

Both are saved with ``save_pretrained``, so that verl and vLLM load them exactly as a real checkpoint.
"""

import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

CHAT_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
SPECIAL_TOKENS = CHAT_TOKENS + VISION_TOKENS + ["<unk>"]
WORDS = ["user", "assistant", "system", "how", "many", "squares", "?", "[]", "the", "answer", "is", "."]
DIGITS = [str(d) for d in range(10)]

# Qwen2-VL chat format; content may be a string or verl's list of {"type": "text"|"image", ...} parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|> ' }}"
    "{% elif part['type'] == 'video' %}{{ '<|vision_start|><|video_pad|><|vision_end|> ' }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{{ ' <|im_end|> ' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant ' }}{% endif %}"
)

TINY_QWEN2 = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    rope_theta=10000.0,
    tie_word_embeddings=True,
)

# head_dim = 128 / 2 = 64 (vLLM's CPU attention refuses 16); mrope sections sum to head_dim / 2.
TINY_QWEN2_5_VL_TEXT = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=512,
    rope_theta=10000.0,
    rope_scaling={"type": "mrope", "mrope_section": [16, 8, 8]},
    tie_word_embeddings=True,
)
TINY_QWEN2_5_VL_VISION = dict(
    depth=2,
    hidden_size=64,
    intermediate_size=128,
    num_heads=2,
    out_hidden_size=128,  # = the text hidden size
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=56,
    fullatt_block_indexes=[1],
)
# the image processor's resize bounds (pixels); the counting task draws 56x56 images
MIN_PIXELS, MAX_PIXELS = 56 * 56, 112 * 112


def build_tokenizer():
    """Word-level fast tokenizer: vocabulary = special tokens + task words + digits 0-9."""
    from transformers import Qwen2TokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + WORDS + DIGITS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=True)]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins word tokens with single spaces
    core.add_special_tokens(CHAT_TOKENS + VISION_TOKENS)
    return Qwen2TokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )


def build_processor(tokenizer):
    """``Qwen2_5_VLProcessor`` with small resize bounds (the video processor is required by the class)."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )


def save(model, tokenizer, out_dir: str, processor=None) -> str:
    from transformers import GenerationConfig

    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    (processor or tokenizer).save_pretrained(out_dir)
    GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id).save_pretrained(
        out_dir
    )
    return out_dir


def build_model(out_dir: str, seed: int = 0) -> str:
    """Save a random-weight tiny text-only ``Qwen2ForCausalLM`` plus its tokenizer to ``out_dir``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
        **TINY_QWEN2,
    )
    torch.manual_seed(seed)
    return save(Qwen2ForCausalLM(config), tokenizer, out_dir)


def build_vl_model(out_dir: str, seed: int = 0) -> str:
    """Save a random-weight tiny ``Qwen2_5_VLForConditionalGeneration``, tokenizer and processor."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = build_tokenizer()
    token_id = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **TINY_QWEN2_5_VL_TEXT,
        ),
        vision_config=TINY_QWEN2_5_VL_VISION,
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    save(model, tokenizer, out_dir, processor=build_processor(tokenizer))
    drop_text_model_type(out_dir)
    return out_dir


def drop_text_model_type(model_dir: str) -> None:
    """Remove ``text_config.model_type`` from a saved Qwen2.5-VL ``config.json``, so that verl sees the model as
    ``qwen2_5_vl`` and applies its vision-language patches (``vade_verl.verl_adapters.data_check.check_model_type`` says why:
    transformers 4.x answers the nested value first). The text config's class fixes its type anyway."""
    path = os.path.join(model_dir, "config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    config.get("text_config", {}).pop("model_type", None)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
