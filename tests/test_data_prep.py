"""``python -m vade_verl.data.geo3k`` on a tiny geo3k-layout dataset built here (nothing downloaded)."""

import io

import datasets
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vade_verl.data import geo3k
from vade_verl.data.rows import GEO3K_INSTRUCTION, make_rows

PROBLEMS = ["<image>Find x.", "Find the area of the triangle.", "<image>Find y.", "<image>Find m \\angle 2."]
ANSWERS = ["3", "12", "7.5", "40"]


def picture(k: int) -> Image.Image:
    """A distinct 8x6 RGB image per k."""
    pixels = np.full((6, 8, 3), 40 * k, dtype=np.uint8)
    pixels[k % 6, :, 0] = 255
    return Image.fromarray(pixels)


def records(order=None):
    order = range(len(PROBLEMS)) if order is None else order
    return [{"images": [picture(k)], "problem": PROBLEMS[k], "answer": ANSWERS[k]} for k in order]


@pytest.fixture(scope="module")
def saved_source(tmp_path_factory):
    """A ``save_to_disk`` DatasetDict with an Image feature, as the hub's geo3k has."""
    features = datasets.Features(
        {"images": datasets.Sequence(datasets.Image()), "problem": datasets.Value("string"), "answer": datasets.Value("string")}
    )
    splits = {
        "train": datasets.Dataset.from_list(records(), features=features),
        "test": datasets.Dataset.from_list(records([2, 0]), features=features),
    }
    path = str(tmp_path_factory.mktemp("src") / "geo3k")
    datasets.DatasetDict(splits).save_to_disk(path)
    return path


def test_cli_writes_verl_rows_with_position_ids(saved_source, tmp_path):
    assert geo3k.main(["--source", saved_source, "--out", str(tmp_path)]) == 0
    train = pd.read_parquet(tmp_path / "train.parquet")
    test = pd.read_parquet(tmp_path / "test.parquet")
    assert len(train) == 4 and len(test) == 2
    assert [info["index"] for info in train["extra_info"]] == [0, 1, 2, 3]
    assert [info["index"] for info in test["extra_info"]] == [0, 1]
    row = train.iloc[1]
    assert row["data_source"] == "hiyouga/geometry3k" and row["ability"] == "math"
    # one placeholder per image: added in front when the problem had none
    assert row["prompt"][0]["content"] == "<image>Find the area of the triangle. " + GEO3K_INSTRUCTION
    assert train.iloc[0]["prompt"][0]["content"].count("<image>") == 1
    assert row["reward_model"]["ground_truth"] == "12"
    assert row["extra_info"]["question"] == PROBLEMS[1] and row["extra_info"]["split"] == "train"
    # the image bytes decode to the pixels we made
    decoded = Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB")
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(picture(1)))


def test_content_ids_survive_reordering_and_subsetting(saved_source, tmp_path):
    geo3k.main(["--source", saved_source, "--out", str(tmp_path), "--id", "content"])
    train = pd.read_parquet(tmp_path / "train.parquet")
    test = pd.read_parquet(tmp_path / "test.parquet")  # rows 2 and 0 of train, in that order
    by_problem = {info["question"]: info["index"] for info in train["extra_info"]}
    assert len(set(by_problem.values())) == 4
    assert all(0 <= rid < 2**63 for rid in by_problem.values())
    assert {info["question"]: info["index"] for info in test["extra_info"]} == {p: by_problem[p] for p in (PROBLEMS[2], PROBLEMS[0])}
    # the same record given as encoded bytes instead of a PIL image gets the same id
    buffer = io.BytesIO()
    picture(3).save(buffer, format="PNG")
    as_bytes = [{"images": [{"bytes": buffer.getvalue(), "path": None}], "problem": PROBLEMS[3], "answer": ANSWERS[3]}]
    assert make_rows(as_bytes, "train", "x", id_scheme="content")[0]["extra_info"]["index"] == by_problem[PROBLEMS[3]]
    # and a change of one pixel gives another id
    changed = picture(3)
    changed.putpixel((0, 0), (1, 2, 3))
    other = [{"images": [changed], "problem": PROBLEMS[3], "answer": ANSWERS[3]}]
    assert make_rows(other, "train", "x", id_scheme="content")[0]["extra_info"]["index"] != by_problem[PROBLEMS[3]]


def test_duplicate_records_fail_under_content_ids():
    with pytest.raises(ValueError, match="records 0 and 2"):
        make_rows(records([1, 0, 1]), "train", "x", id_scheme="content")
    assert [r["extra_info"]["index"] for r in make_rows(records([1, 0, 1]), "train", "x")] == [0, 1, 2]


def test_bad_records_are_errors_naming_the_row():
    bad = records()
    bad[2]["problem"] = "<image><image>Two placeholders, one image."
    with pytest.raises(ValueError, match="train record 2: the problem has 2 '<image>' placeholders but 1 images"):
        make_rows(bad, "train", "x")
    with pytest.raises(ValueError, match="train record 0 has no answer"):
        make_rows([{"images": [], "problem": "p"}], "train", "x")
    with pytest.raises(ValueError, match="id scheme 'hash' unknown"):
        make_rows(records(), "train", "x", id_scheme="hash")


def test_verl_builds_the_vade_sampler_on_the_prepared_file(saved_source, tmp_path):
    """The written parquet goes through verl's own dataset + sampler path (verl_harness)."""
    from vade_verl.vade.sampler import VADESampler
    from verl_harness import VADE_SAMPLER, compose_config, make_train_loader

    geo3k.main(["--source", saved_source, "--out", str(tmp_path), "--id", "content", "--splits", "train"])
    train_file = str(tmp_path / "train.parquet")
    loader = make_train_loader(compose_config(train_file, 2, str(tmp_path / "ckpt"), VADE_SAMPLER))
    assert isinstance(loader.sampler, VADESampler)
    expected = [info["index"] for info in pd.read_parquet(train_file)["extra_info"]]
    assert loader.sampler.row_ids.tolist() == expected
