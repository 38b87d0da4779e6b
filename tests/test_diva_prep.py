"""Offline DIVA columns (vade_verl.diva.prep): reply parsing, the columns training reads, and the
command line end to end with a tiny random local model (built here; its replies are noise, so that run
checks the plumbing: every row kept, typed empty columns, images untouched)."""

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vade_verl.diva import prep as diva_prep
from vade_verl.data.rows import GEO3K_INSTRUCTION, make_rows
from vade_verl.diva.advantage import DifficultyConfig
from vade_verl.diva.variants import VariantConfig, make_variants, row_question
from vade_verl.tiny.model import build_model

STEPS_REPLY = (
    "<step1>The figure shows a right triangle with legs 3 and 4.</step1>\n"
    "<step2>By Pythagoras the hypotenuse is sqrt(9 + 16).</step2>\n"
    "<step3>So x = 5.</step3>\n\\boxed{5}"
)


def test_parse_tagged_and_boxed():
    assert diva_prep.parse_tagged("<variant1> A? </variant1><variant2>B\n?</variant2><variant4>D</variant4>", "variant") == [
        "A?",
        "B ?",
    ]  # stops at the first missing number
    assert diva_prep.parse_tagged("<step1>one <step2>two", "step") == ["one", "two"]  # unclosed tags
    assert diva_prep.parse_tagged("no tags", "step") == []
    assert diva_prep.boxed_answer(STEPS_REPLY) == "5"
    assert diva_prep.boxed_answer(r"x \boxed{\frac{1}{2}} then \boxed{2\sqrt{3}}") == r"2\sqrt{3}"
    assert diva_prep.boxed_answer(r"\boxed{unclosed") is None and diva_prep.boxed_answer("none") is None
    assert diva_prep.strip_steps(["So x = 5. \\boxed{5}", "\\boxed{5}"]) == ["So x = 5."]
    # nested braces and an unclosed box leak nothing of the answer (issue 23 item 5)
    nested = ["So x = \\boxed{\\frac{1}{2}}.", "Then \\boxed{\\sqrt{\\frac{a}{b}} cut"]
    assert diva_prep.strip_steps(nested) == ["So x = .", "Then"]


def test_same_answer_uses_the_geo3k_grader():
    pytest.importorskip("mathruler")
    assert diva_prep.same_answer("0.5", "\\frac{1}{2}") and diva_prep.same_answer("5", " 5")
    assert not diva_prep.same_answer("6", "5") and not diva_prep.same_answer(None, "5")


def _figure():
    img = Image.new("RGB", (64, 48), "white")
    img.putpixel((10, 10), (0, 0, 0))
    return img


def _write_rows(path, answers):
    records = [{"problem": f"<image>Find x in figure {i}.", "answer": a, "images": [_figure()]} for i, a in enumerate(answers)]
    pd.DataFrame(make_rows(records, "train", "hiyouga/geometry3k")).to_parquet(path)
    return str(path)


class CannedModel:
    """A model double: answers the two prompts by their wording, records what it was sent."""

    prompter = None

    def __init__(self, answers):
        self.answers, self.requests = answers, []

    def __call__(self, requests):
        self.requests += list(requests)
        replies = []
        for text, images in requests:
            question = text.split("Problem: ", 1)[1]
            if "Rewrite the math problem" in text:
                replies.append(f"<variant1>Compute x ({question})</variant1><variant2>What is x? {question}</variant2>")
            else:
                replies.append(STEPS_REPLY.replace("\\boxed{5}", f"\\boxed{{{self.answers.pop(0)}}}"))
        return replies


def _args(src, out, **kw):
    argv = ["--input", src, "--output", out, "--model", "unused", "--paraphrases", "2"]
    for key, value in kw.items():
        argv += [f"--{key.replace('_', '-')}", str(value)] if value is not True else [f"--{key.replace('_', '-')}"]
    return diva_prep.parse_args(argv)


def test_columns_from_a_model_and_read_back_by_training(tmp_path):
    src = _write_rows(tmp_path / "train.parquet", ["5", "7", "5"])
    model = CannedModel(["5", "6", "5"])  # row 1's steps end at 6, not the ground truth 7
    stats = diva_prep.prepare_file(_args(src, str(tmp_path / "out.parquet")), generate=model)
    assert (stats.rows, stats.paraphrases, stats.verified, stats.unverified, stats.no_steps) == (3, 6, 2, 1, 0)
    # the model saw the bare question (no <image>, no format instruction) and, for the steps, the image
    assert [t.split("Problem: ")[1] for t, _ in model.requests[:3]] == [f"Find x in figure {i}." for i in range(3)]
    assert all(len(imgs) == 0 for _, imgs in model.requests[:3]) and all(len(imgs) == 1 for _, imgs in model.requests[3:])
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out["paraphrase"][0]) == ["Compute x (Find x in figure 0.)", "What is x? Find x in figure 0."]
    assert [len(s) for s in out["solution"]] == [3, 0, 3]  # unverified steps dropped
    assert list(out["solution"][0]) == [
        "The figure shows a right triangle with legs 3 and 4.", "By Pythagoras the hypotenuse is sqrt(9 + 16).", "So x = 5.",
    ]  # fmt: skip
    src_frame = pd.read_parquet(src)
    assert out["images"][2][0]["bytes"] == src_frame["images"][2][0]["bytes"]
    # training reads them: the one-variant target of d = 6 is 5 (D = -1: one step), a fixed draw at d gives D = 0
    row = out.iloc[0].to_dict()
    rng = np.random.default_rng(0)
    (spec, content), = make_variants(6, 1, [_figure()], row_question(row), rng, paraphrases=row["paraphrase"], solution=row["solution"])
    assert (spec.kind, spec.hint_steps) == ("hint", 1)
    assert content.question("Find x in figure 0.").endswith("without skipping any steps: The figure shows a right triangle with legs 3 and 4.")
    same = DifficultyConfig(mu=(5.0,) * 9, sigma=0.0, single_variant_targets=None)
    (spec, content), = make_variants(5, 1, [_figure()], row_question(row), rng, VariantConfig(), same, paraphrases=row["paraphrase"])
    assert spec.kind == "paraphrase" and content.question("Find x in figure 0.") in list(row["paraphrase"])
    kept = diva_prep.prepare_file(_args(src, str(tmp_path / "keep.parquet"), keep_unverified=True), generate=CannedModel(["5", "6", "5"]))
    assert kept.unverified == 1 and [len(s) for s in pd.read_parquet(tmp_path / "keep.parquet")["solution"]] == [3, 3, 3]


def test_command_line_with_a_tiny_local_model(tmp_path):
    model_dir = build_model(str(tmp_path / "tiny_model"))
    src = _write_rows(tmp_path / "train.parquet", ["1", "2", "3"])
    out = tmp_path / "prepared.parquet"
    code = diva_prep.main(["--input", src, "--output", str(out), "--model", model_dir, "--max-new-tokens", "6", "--batch-size", "2", "--limit", "2"])
    assert code == 0
    table = pq.read_table(out)
    assert table.num_rows == 2
    for column in ("paraphrase", "solution"):  # typed lists even when the noise parses to nothing
        assert pa.types.is_list(table.schema.field(column).type) and pa.types.is_string(table.schema.field(column).type.value_type)
    frame = table.to_pandas()
    source = pd.read_parquet(src).iloc[:2]
    for column in source.columns:
        assert frame[column].astype(str).tolist() == source[column].astype(str).tolist(), column
    assert frame["prompt"][0][0]["content"].endswith(GEO3K_INSTRUCTION)
    assert Image.open(io.BytesIO(frame["images"][0][0]["bytes"])).size == (64, 48)


def test_the_vision_path_sends_each_rows_image_to_a_vision_language_model(tmp_path):
    """Issue 23 item 5: with a vision-language model (the tiny Qwen2.5-VL) the steps request carries the
    row's image: the processor's pixels reach generate, one image grid per row, and the prompt holds as many
    <|image_pad|> tokens as the grid has merged patches (t h w / 4, Qwen2.5-VL's 2 x 2 merge)."""
    from vade_verl.tiny.model import build_vl_model

    model_dir = build_vl_model(str(tmp_path / "tiny_vl"))
    generator = diva_prep.TransformersGenerator(model_dir, max_new_tokens=3, temperature=0.0, batch_size=2, seed=0)
    assert generator.prompter.sees_images
    sent = []
    generate = generator.model.generate
    generator.model.generate = lambda **kw: sent.append(kw) or generate(**kw)
    rows = pd.read_parquet(_write_rows(tmp_path / "train.parquet", ["1", "2"])).to_dict("records")
    requests = [("Describe the figure.", diva_prep.row_images(row)) for row in rows]
    assert len(generator(requests)) == 2
    (inputs,) = sent
    grid = inputs["image_grid_thw"]
    assert grid.shape == (2, 3) and inputs["pixel_values"].shape[0] == int(grid.prod(-1).sum())
    pad = generator.prompter.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    per_row = (inputs["input_ids"] == pad).sum(-1).tolist()
    assert per_row == [int(g.prod()) // 4 for g in grid]
