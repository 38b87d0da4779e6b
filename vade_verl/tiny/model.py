"""Tiny tokenizer and random-weight model, built locally (no download).

Tokenizer: a word-level ``tokenizers`` model (whitespace split, each digit its own token) wrapped in a
``transformers.PreTrainedTokenizerFast`` with a Qwen-style chat template. Model: ``Qwen2ForCausalLM`` with a
few thousand parameters and random weights, saved with ``save_pretrained`` so that verl loads it exactly as it
loads a real checkpoint.
"""

import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
WORDS = ["user", "assistant", "system", "how", "many", "squares", "?", "[]", "the", "answer", "is", "."]
DIGITS = [str(d) for d in range(10)]

# Qwen2 chat format; content may be a string or verl's list of {"type": "text", "text": ...} parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
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


def build_tokenizer():
    """Word-level fast tokenizer: vocabulary = special tokens + task words + digits 0-9."""
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + WORDS + DIGITS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=True)]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins word tokens with single spaces
    core.add_special_tokens(SPECIAL_TOKENS[:3])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )


def build_model(out_dir: str, seed: int = 0) -> str:
    """Save a random-weight tiny ``Qwen2ForCausalLM`` plus its tokenizer to ``out_dir``; return ``out_dir``."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

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
    model = Qwen2ForCausalLM(config)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id).save_pretrained(
        out_dir
    )
    return out_dir
