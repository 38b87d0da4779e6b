"""The learning benchmark (benchmarks/learning_benchmark.py): its pieces in seconds, and a 2-step smoke run
of the whole script through verl's real trainer (marked e2e).

The smoke (``pytest -m e2e tests/test_learning_benchmark.py``, about 3.5 minutes on 2 cores: three verl
launches of about a minute each) builds and warm-starts the tiny Qwen2.5-VL, trains each arm (verl's random
sampler, VADE, VADE-EIG) for 2 steps with validation, and checks the summary against what verl wrote,
recomputed here. Without vLLM's CPU build it skips, unless ``VADE_REQUIRE_REAL_STACK=1`` (CI), where it fails.
"""

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

from recipe_run import require_vllm_cpu

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("learning_benchmark", ROOT / "benchmarks" / "learning_benchmark.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def write_jsonl(path: Path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


# --- the pieces ------------------------------------------------------------------------------------------


def test_effective_ratio_counts_groups_with_unequal_scores(tmp_path):
    # step 1: row 3 mixed, row 5 all correct, row 9 all wrong -> 1/3; step 2: rows 1 and 2 mixed -> 1
    step1 = [(3, 1.0), (3, 0.0), (5, 1.0), (5, 1.0), (9, 0.0), (9, 0.0)]
    step2 = [(1, 0.0), (2, 1.0), (1, 1.0), (2, 0.0)]
    for step, rollouts in ((1, step1), (2, step2)):
        write_jsonl(tmp_path / "rollouts" / f"{step}.jsonl",
                    [{"row_index": float(i), "score": s, "step": step} for i, s in rollouts])
    assert bench.effective_ratios(str(tmp_path), 2) == pytest.approx([1 / 3, 1.0])
    write_jsonl(tmp_path / "rollouts" / "3.jsonl", [{"row_index": 1.0, "score": 1.0, "step": 2}])
    with pytest.raises(ValueError, match="a record of step 2 in the dump of step 3"):
        bench.effective_ratios(str(tmp_path), 3)


def test_metrics_of_a_relaunch_replace_the_steps_it_redid(tmp_path):
    write_jsonl(tmp_path / "metrics_1.jsonl", [{"step": s, "data": {"x": s, "first": 1}} for s in (0, 1, 2, 3)])
    write_jsonl(tmp_path / "metrics_2.jsonl", [{"step": s, "data": {"x": 10 * s}} for s in (2, 3, 4)])
    merged = bench.read_metrics(str(tmp_path))
    assert sorted(merged) == [0, 1, 2, 3, 4]
    assert [merged[s]["x"] for s in range(5)] == [0, 1, 20, 30, 40]


def test_summary_reports_rollouts_to_reach_randoms_final_accuracy():
    arms = {
        "random": {"effective_ratio": [0.5, 0.5], "val_rollouts": [0, 100, 200], "val_accuracy": [0.5, 0.55, 0.6]},
        "vade": {"effective_ratio": [1.0, 0.5], "val_rollouts": [0, 100, 200], "val_accuracy": [0.5, 0.62, 0.58]},
        "vade-eig": {"effective_ratio": [1.0, 1.0], "val_rollouts": [0, 100, 200], "val_accuracy": [0.5, 0.52, 0.59]},
    }
    rows = {r["arm"]: r for r in bench.summarise(arms, batch_size=4)}
    assert rows["random"]["rollouts_to_random_final"] == 200
    assert rows["vade"]["rollouts_to_random_final"] == 100
    assert rows["vade-eig"]["rollouts_to_random_final"] is None
    assert rows["vade"]["informative_groups"] == 6  # (1.0 + 0.5) x 4 groups
    assert rows["vade"]["val_accuracy_best"] == 0.62


def test_rows_with_up_to_nine_squares_show_their_count():
    from PIL import Image

    from vade_verl.tiny.task import count_dark_squares, make_rows

    rows = make_rows(60, seed=5, split="train", with_image=True, max_squares=9)
    counts = [count_dark_squares(Image.open(io.BytesIO(r["images"][0]["bytes"]))) for r in rows]
    assert counts == [int(r["reward_model"]["ground_truth"]) for r in rows]
    assert max(counts) == 9 and min(counts) == 0
    # the CI runs' rows (0-4 squares) are unchanged by the new argument
    assert make_rows(8, seed=0, split="train", with_image=True) == make_rows(8, 0, "train", True, max_squares=4)
    with pytest.raises(ValueError, match="max_squares"):
        make_rows(1, seed=0, split="train", with_image=True, max_squares=10)


def test_count_weights_are_checked_and_followed():
    from vade_verl.tiny.warm_start import draw_counts

    counts = draw_counts(20_000, np.random.default_rng(0), [3, 1, 0])
    assert np.bincount(counts, minlength=3)[2] == 0
    assert np.mean(counts == 0) == pytest.approx(0.75, abs=0.01)
    for bad in ([], [1] * 11, [1, -1], [0, 0], [1, float("nan")]):
        with pytest.raises(ValueError, match="count_weights"):
            draw_counts(4, np.random.default_rng(0), bad)


def test_warm_start_teaches_the_counts_it_is_shown(tmp_path):
    """Shown only images with 2 squares, the model learns to answer 2: its first-token solve probability on
    2-square rows rises from about chance to near 1 and falls on other rows. The probability is checked
    against a softmax of the model's own next-token logits computed here."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vade_verl.tiny.model import build_vl_model
    from vade_verl.tiny.task import make_rows
    from vade_verl.tiny.warm_start import first_token_solve_probs, row_images, warm_start

    model_dir = build_vl_model(str(tmp_path / "m"), seed=0)
    rows = make_rows(12, seed=3, split="val", with_image=True, max_squares=3)
    two = np.array([r["reward_model"]["ground_truth"] == "2" for r in rows])
    assert two.any() and (~two).any()
    before = first_token_solve_probs(model_dir, rows)
    losses = warm_start(model_dir, [0, 0, 1], steps=12, batch_size=4, lr=3e-3, seed=0)
    after = first_token_solve_probs(model_dir, rows)
    assert before.max() < 0.2 and losses[-1] < losses[0]
    assert after[two].min() > 0.9 and after[~two].max() < 0.05

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "how many squares ?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=row_images(rows[:1]), return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(model(**inputs).logits[0, -1], dim=-1)
    answer_id = processor.tokenizer.convert_tokens_to_ids(rows[0]["reward_model"]["ground_truth"])
    assert after[0] == pytest.approx(float(probs[answer_id]), abs=1e-5)


# --- the smoke run through verl --------------------------------------------------------------------------

SMOKE = dict(steps=2, batch=4, group=4, train_rows=32, val_rows=8, val_n=2)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    require_vllm_cpu()
    out = tmp_path_factory.mktemp("learning_benchmark")
    argv = ["--out", str(out), "--steps", str(SMOKE["steps"]), "--batch-size", str(SMOKE["batch"]),
            "--group-size", str(SMOKE["group"]), "--train-rows", str(SMOKE["train_rows"]),
            "--val-rows", str(SMOKE["val_rows"]), "--val-n", str(SMOKE["val_n"]), "--warm-start-steps", "2",
            "--test-freq", "2", "--retries", "0", "--arm-timeout", "600"]
    assert bench.main(argv) == 0
    return out


@pytest.mark.e2e
def test_smoke_ran_every_arm_through_verl(smoke):
    summary = json.loads((smoke / "summary.json").read_text())
    assert list(summary["arms"]) == ["random", "vade", "vade-eig"]
    assert (smoke / "learning_benchmark.png").stat().st_size > 10_000
    work = smoke / "work"
    for arm, data in summary["arms"].items():
        run = work / arm
        log = (run / "train_1.log").read_text()
        # verl's printed config: its own sampler for "random", VADESampler (with the variant) for the others
        assert ("'sampler': {'class_name': None, 'class_path': None}" in log) == (arm == "random"), arm
        assert ("'class_name': 'VADESampler'" in log) == (arm != "random"), arm
        assert ("'vade': {'variant': 'eig'}" in log) == (arm == "vade-eig"), arm
        assert data["val_steps"] == [0, SMOKE["steps"]]
        for step in range(1, SMOKE["steps"] + 1):
            rollouts = [json.loads(line) for line in (run / "rollouts" / f"{step}.jsonl").read_text().splitlines()]
            by_row = {}
            for r in rollouts:
                by_row.setdefault(r["row_index"], []).append(r["score"])
            assert len(by_row) == SMOKE["batch"] and all(len(s) == SMOKE["group"] for s in by_row.values())
            mixed = np.mean([len(set(s)) > 1 for s in by_row.values()])
            assert data["effective_ratio"][step - 1] == pytest.approx(mixed)
            if arm != "random":  # the sampler's own count, from verl's batch (groups by uid)
                assert data["sampler_effective_ratio"][step - 1] == pytest.approx(mixed)
        for step, accuracy in zip(data["val_steps"], data["val_accuracy"]):
            answers = [json.loads(line) for line in (run / "validation" / f"{step}.jsonl").read_text().splitlines()]
            assert len(answers) == SMOKE["val_rows"] * SMOKE["val_n"]
            assert accuracy == pytest.approx(np.mean([a["score"] for a in answers]))
        if arm != "random":
            assert len(list((run / "ckpt" / "vade_sampler").glob("update_*.npz"))) == SMOKE["steps"]
    assert {row["arm"] for row in summary["table"]} == set(summary["arms"])
