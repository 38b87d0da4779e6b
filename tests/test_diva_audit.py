"""Issue 23 items 1, 2 and 4: DIVA-GRPO on data without the prep columns or the bare question, and the
cost of perturbing large images, through verl's own loader (the helpers of tests/test_diva_verl.py)."""

import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from test_diva_verl import _all_variants, _loader, _user_text, _write_geo3k_parquet
from vade_verl.data.rows import GEO3K_INSTRUCTION
from vade_verl.diva import verl_plugin as verl_diva
from vade_verl.diva import variants
from verl_harness import compose_config

DIVA_DATA = ["data.custom_cls.path=pkg://vade_verl.diva.verl_plugin", "data.custom_cls.name=DivaRLHFDataset"]


def _config(tmp_path, train, *extra, batch_size=3):
    val = _write_geo3k_parquet(tmp_path / "val.parquet", 2)
    return compose_config(train, batch_size=batch_size, ckpt_dir=str(tmp_path / "ckpt"),
                          overrides=[*DIVA_DATA, f"data.val_files={val}", "+data.diva.seed=5", *extra])


def test_hard_problems_without_steps_get_copies_at_their_difficulty_and_a_warning(tmp_path, caplog):
    """Item 1: d = 6..9 draw easier variants (targets 5, 5, 5, 4); without reasoning steps they are copies at
    d (the authors' gen_think_step), not rendered questions recorded harder (8-9), and the start says so."""
    train = _write_geo3k_parquet(tmp_path / "train.parquet", 8, difficulty=[6, 7, 8, 9], prep_columns=False)
    with caplog.at_level(logging.WARNING, logger=verl_diva.__name__):
        train_loader, _ = _loader(_config(tmp_path, train, batch_size=4))
    assert "8 of 8 rows have no 'solution': their D < 0 variants" in caplog.text
    originals, variants = _all_variants(train_loader, 4)
    start = {i: [6, 7, 8, 9][i % 4] for i in range(8)}
    for info, messages in variants:
        d = start[info["diva_problem_id"]]
        assert (info["diva_variant"], info["diva_difficulty"]) == ("copy", d), info
        assert info["diva_drawn_difficulty"] == {6: 5, 7: 5, 8: 5, 9: 4}[d]
        assert _user_text(messages) == _user_text(originals[info["diva_problem_id"]])


def test_rows_without_the_bare_question_are_warned_and_counted(tmp_path, caplog):
    """Item 2: without extra_info.question the variant rewrites the whole user text, so a paraphrase or a
    rendered question drops geo3k's answer-format instruction: a warning at start, and every such variant
    counted in variant_counts['question_from_prompt'] (checked against the variants whose message no longer
    ends with it: lost, or followed by a hint or rotation note)."""
    path = _write_geo3k_parquet(tmp_path / "train.parquet", 9, difficulty=[1, 2, 3])
    frame = pd.read_parquet(path)
    frame["extra_info"] = [{k: v for k, v in info.items() if k != "question"} for info in frame["extra_info"]]
    frame.to_parquet(path)
    with caplog.at_level(logging.WARNING, logger=verl_diva.__name__):
        train_loader, _ = _loader(_config(tmp_path, path))
    assert "9 of 9 rows have no 'question': their variants rewrite the whole user message" in caplog.text
    _, variants = _all_variants(train_loader, 6)
    moved = sum(not _user_text(messages).endswith(GEO3K_INSTRUCTION) for _, messages in variants)
    lost = sum(GEO3K_INSTRUCTION not in _user_text(messages) for _, messages in variants)
    assert lost > 0 and train_loader.dataset.variant_counts["question_from_prompt"] == moved


def test_bound_pixels_keeps_the_aspect_and_small_images():
    small = Image.new("RGB", (40, 30))
    assert variants.bound_pixels(small, 1200) is small
    big = variants.bound_pixels(Image.new("RGB", (2000, 1500)), 1_048_576)
    w, h = big.size
    assert w * h <= 1_048_576 and (w + 1) * (h + 1) > 1_048_576  # the largest floor-scaled size within
    assert abs(w / h - 2000 / 1500) < 2 / h
    with pytest.raises(ValueError, match="max_pixels"):
        variants.bound_pixels(small, 0)


def test_variants_are_perturbed_at_the_pixels_the_model_sees(tmp_path):
    """Item 4: a variant of a large image is made at data.diva.max_pixels (else the processor's), and every
    image part, original or variant, carries that bound for qwen_vl_utils' fetch_image."""
    train = _write_geo3k_parquet(tmp_path / "train.parquet", 4, difficulty=[5], prep_columns=False)
    only_blur = ["+data.diva.variants.perturbations=[blur]", "+data.diva.variants.paraphrase_in_positive_shift=false"]
    config = _config(tmp_path, train, "+data.diva.max_pixels=2000", *only_blur, batch_size=2)
    train_loader, _ = _loader(config)
    batch = next(iter(train_loader))
    expected = variants.bound_pixels(Image.new("RGB", (96, 80)), 2000).size  # the figures are 96 x 80 = 7680 pixels
    for info, messages in zip(batch["extra_info"], batch["raw_prompt"]):
        part = next(p for p in messages[-1]["content"] if p["type"] == "image")
        assert part["max_pixels"] == 2000
        if info["diva_variant"] != "original":  # d = 5 -> D = +1: one blur, which keeps the size
            assert info["diva_ops"] == ["blur"] and part["image"].size == expected
    with pytest.raises(ValueError, match="data.diva.max_pixels must be a positive"):
        _loader(_config(tmp_path, train, "+data.diva.max_pixels=0"))
