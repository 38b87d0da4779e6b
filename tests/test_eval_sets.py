"""``python -m vade_verl.data.eval_sets`` on tiny local datasets shaped like each set's public Hub
layout (features as on the dataset cards; nothing downloaded), and the grader the recipes use."""

import io

import datasets
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vade_verl.data import eval_sets
from vade_verl.data.rows import GEO3K_INSTRUCTION

S, SEQ, IMG = datasets.Value("string"), datasets.Sequence(datasets.Value("string")), datasets.Image()


def picture(k: int) -> Image.Image:
    pixels = np.full((5, 7, 3), 30 * k, dtype=np.uint8)
    pixels[0, k % 7] = (255, 0, 0)
    return Image.fromarray(pixels)


# name -> (split, features, records); each layout as on its Hub card (AI4Math/MathVista,
# AI4Math/MathVerse config testmini, MathLLMs/MathVision, derek-thomas/ScienceQA, HuggingFaceM4/ChartQA)
LAYOUTS = {
    "mathvista": (
        "testmini",
        {"pid": S, "question": S, "image": S, "decoded_image": IMG, "choices": SEQ, "unit": S,
         "precision": datasets.Value("float64"), "answer": S, "question_type": S, "answer_type": S,
         "metadata": {"category": S, "source": S}, "query": S},
        [
            {"pid": "1", "question": "Find the angle.", "image": "images/1.jpg", "decoded_image": picture(1),
             "choices": ["30°", "145°", "60°"], "unit": None, "precision": None, "answer": "145°",
             "question_type": "multi_choice", "answer_type": "text", "metadata": {"category": "geo", "source": "x"}, "query": "q"},
            {"pid": "2", "question": "What is the total volume?", "image": "images/2.jpg", "decoded_image": picture(2),
             "choices": None, "unit": "g", "precision": None, "answer": "1000", "question_type": "free_form",
             "answer_type": "integer", "metadata": {"category": "vqa", "source": "y"}, "query": "q"},
        ],
    ),
    "mathverse": (
        "testmini",
        {"sample_index": S, "problem_index": S, "problem_version": S, "question": S, "image": IMG, "answer": S,
         "question_type": S, "metadata": {"split": S, "source": S, "subject": S, "subfield": S},
         "query_wo": S, "query_cot": S, "question_for_eval": S},
        [
            {"sample_index": "1", "problem_index": "1", "problem_version": "Text Dominant",
             "question": "AB = 4. Find BC.\nChoices:\nA:2\nB:4", "image": picture(3), "answer": "B",
             "question_type": "multi-choice", "metadata": {"split": "testmini", "source": "s", "subject": "g", "subfield": "l"},
             "query_wo": "w", "query_cot": "c", "question_for_eval": "e"},
        ],
    ),
    "mathvision": (
        "test",
        {"id": S, "question": S, "options": SEQ, "image": S, "decoded_image": IMG, "answer": S, "solution": S,
         "level": datasets.Value("int64"), "subject": S},
        [
            {"id": "1", "question": "<image1> Which shape comes next?", "options": ["A", "B", "C", "D", "E"],
             "image": "images/1.jpg", "decoded_image": picture(4), "answer": "D", "solution": None, "level": 2, "subject": "logic"},
            {"id": "2", "question": "How many cubes?", "options": ["3", "4", "5", "6", "7"], "image": "images/2.jpg",
             "decoded_image": picture(5), "answer": "C", "solution": None, "level": 1, "subject": "counting"},
            {"id": "3", "question": "Find x.", "options": [], "image": "images/3.jpg", "decoded_image": picture(6),
             "answer": "12", "solution": None, "level": 3, "subject": "algebra"},
        ],
    ),
    "scienceqa": (
        "test",
        {"image": IMG, "question": S, "choices": SEQ, "answer": datasets.Value("int8"), "hint": S, "task": S,
         "grade": S, "subject": S, "topic": S, "category": S, "skill": S, "lecture": S, "solution": S},
        [
            {"image": picture(7), "question": "Which is a mammal?", "choices": ["frog", "eagle", "whale"], "answer": 2,
             "hint": "Look at the picture.", "task": "closed choice", "grade": "grade3", "subject": "natural science",
             "topic": "biology", "category": "c", "skill": "s", "lecture": "l", "solution": "s"},
            {"image": None, "question": "Which word is a noun?", "choices": ["run", "dog"], "answer": 1, "hint": "",
             "task": "closed choice", "grade": "grade2", "subject": "language science", "topic": "grammar",
             "category": "c", "skill": "s", "lecture": "l", "solution": "s"},
            {"image": picture(8), "question": "Which is heavier?", "choices": ["left", "right"], "answer": 0, "hint": "",
             "task": "closed choice", "grade": "grade4", "subject": "natural science", "topic": "physics",
             "category": "c", "skill": "s", "lecture": "l", "solution": "s"},
        ],
    ),
    "chartqa": (
        "test",
        {"image": IMG, "query": S, "label": SEQ, "human_or_machine": datasets.ClassLabel(names=["human", "machine"])},
        [{"image": picture(9), "query": "What is the highest value?", "label": ["42"], "human_or_machine": 0}],
    ),
}

# (set, row of the written file) -> (prompt before the instruction, ground truth, image), worked by hand
EXPECTED = {
    ("mathvista", 0): ("<image>Find the angle.\nChoices:\n(A) 30°\n(B) 145°\n(C) 60°\n" + eval_sets.CHOOSE_LETTER, "B", 1),
    ("mathvista", 1): ("<image>What is the total volume?", "1000", 2),
    ("mathverse", 0): ("<image>AB = 4. Find BC.\nChoices:\nA:2\nB:4", "B", 3),
    ("mathvision", 0): ("<image><image1> Which shape comes next?\n" + eval_sets.CHOOSE_LETTER, "D", 4),
    ("mathvision", 1): ("<image>How many cubes?\nChoices:\n(A) 3\n(B) 4\n(C) 5\n(D) 6\n(E) 7\n" + eval_sets.CHOOSE_LETTER, "C", 5),
    ("mathvision", 2): ("<image>Find x.", "12", 6),
    ("scienceqa", 0): ("<image>Context: Look at the picture.\nWhich is a mammal?\nChoices:\n(A) frog\n(B) eagle\n(C) whale\n"
                       + eval_sets.CHOOSE_LETTER, "C", 7),
    ("scienceqa", 1): ("<image>Which is heavier?\nChoices:\n(A) left\n(B) right\n" + eval_sets.CHOOSE_LETTER, "A", 8),
    ("chartqa", 0): ("<image>What is the highest value?", "42", 9),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Every set saved with save_to_disk in its Hub layout, converted by the CLI; returns (out dir, stdout lines)."""
    root = tmp_path_factory.mktemp("eval_sources")
    sources = []
    for name, (split, features, records) in LAYOUTS.items():
        path = str(root / name)
        datasets.DatasetDict({split: datasets.Dataset.from_list(records, features=datasets.Features(features))}).save_to_disk(path)
        sources.append(f"{name}={path}")
    out = tmp_path_factory.mktemp("eval_out")
    return out, eval_sets.main(["--out", str(out), "--source", *sources])


def test_every_set_has_a_layout_here():
    assert set(LAYOUTS) == set(eval_sets.EVAL_SETS)


def test_rows_hold_the_prompt_answer_and_image(prepared):
    out, rc = prepared
    assert rc == 0
    for (name, i), (prompt, truth, image) in EXPECTED.items():
        frame = pd.read_parquet(out / f"{name}.parquet")
        row = frame.iloc[i]
        assert row["data_source"] == eval_sets.EVAL_SETS[name].hub
        assert row["prompt"][0]["content"] == f"{prompt} {GEO3K_INSTRUCTION}"
        assert row["reward_model"]["ground_truth"] == truth
        assert row["extra_info"]["index"] == i
        decoded = np.asarray(Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB"))
        np.testing.assert_array_equal(decoded, np.asarray(picture(image)))
    counts = {name: len(pd.read_parquet(out / f"{name}.parquet")) for name in LAYOUTS}
    assert counts == {"mathvista": 2, "mathverse": 1, "mathvision": 3, "scienceqa": 2, "chartqa": 1}


def test_skipped_rows_are_counted_and_reported(tmp_path, capsys):
    split, features, records = LAYOUTS["scienceqa"]
    source = str(tmp_path / "scienceqa")
    datasets.DatasetDict({split: datasets.Dataset.from_list(records, features=datasets.Features(features))}).save_to_disk(source)
    assert eval_sets.main(["--out", str(tmp_path / "out"), "--sets", "scienceqa", "--source", f"scienceqa={source}"]) == 0
    out = capsys.readouterr().out
    assert "scienceqa: 2 rows" in out and "(skipped: {'no image': 1})" in out


def test_a_multiple_choice_answer_outside_its_choices_is_an_error():
    record = dict(LAYOUTS["mathvista"][2][0], answer="90°")
    with pytest.raises(ValueError, match=r"MathVista pid 1: answer '90°' is not one of its choices"):
        eval_sets.mathvista(record)


def test_bad_name_value_pairs_are_refused():
    with pytest.raises(SystemExit, match="--source 'mathvist=/x'"):
        eval_sets.name_values(["mathvist=/x"], "--source")


@pytest.mark.parametrize(
    "response, truth, score",
    [
        ("<think>The whale is a mammal.</think> \\boxed{C}", "C", 1.0),  # right letter, right format
        ("<think>Frogs.</think> \\boxed{A}", "C", 0.1),  # wrong letter: format only
        ("\\boxed{C}", "C", 0.9),  # right answer, no <think>
        ("<think>42</think> \\boxed{42.0}", "42", 1.0),  # mathruler: 42.0 equals 42
    ],
)
def test_the_eval_sets_are_graded_by_geo3k_rule(response, truth, score):
    assert eval_sets.compute_score("derek-thomas/ScienceQA", response, truth) == pytest.approx(score)


def test_other_data_sources_go_to_verls_default_scorer():
    assert eval_sets.compute_score("hiyouga/geometry3k", "<think>x</think> \\boxed{3}", "3") == pytest.approx(1.0)
    with pytest.raises(NotImplementedError, match="no_such_source"):
        eval_sets.compute_score("no_such_source", "x", "y")


def test_verl_reads_the_written_file(prepared):
    """verl's own dataset class (no tokenizer, as the dry run) reads every prepared file."""
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    out, _ = prepared
    config = OmegaConf.create({"filter_overlong_prompts": False, "image_key": "images", "max_prompt_length": 1024})
    for name in LAYOUTS:
        dataset = RLHFDataset(data_files=[str(out / f"{name}.parquet")], tokenizer=None, processor=None, config=config)
        assert len(dataset) == len(pd.read_parquet(out / f"{name}.parquet"))
