"""The learning benchmark (benchmarks/learning_benchmark.py) and its task (vade_verl/tiny/keys.py): its pieces
against hand-worked numbers, and a 2-step smoke run of the whole script through verl's real trainer (marked e2e).

The smoke (``pytest -m e2e tests/test_learning_benchmark.py``, about 3.5 minutes on 2 cores: three verl
launches of about a minute each) builds the key task, warm-starts the tiny Qwen2.5-VL, trains verl's random
sampler on two seeds and VADE on one for 2 steps with validation, checks the summary against what verl wrote,
recomputed here, and reruns the script to check that finished parts are reused. Without vLLM's CPU build it
skips, unless ``VADE_REQUIRE_REAL_STACK=1`` (CI), where it fails.
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


# --- the key task ------------------------------------------------------------------------------------------


def test_keys_are_distinct_patterns_with_balanced_arbitrary_answers():
    from vade_verl.tiny import keys as K

    patterns = K.key_patterns(200, seed=0)
    assert patterns.shape == (200, 4, 4) and patterns.min() == 0 and patterns.max() == 3
    assert len({p.tobytes() for p in patterns}) == 200
    answers = K.key_answers(200, seed=1)
    assert np.bincount(answers, minlength=10).tolist() == [20] * 10
    decoys = K.decoy_answers(answers, seed=2)
    assert np.all(decoys != answers) and decoys.min() >= 0 and decoys.max() <= 9
    with pytest.raises(ValueError, match="num_keys"):
        K.key_patterns(0, seed=0)


def test_a_render_is_its_keys_cell_colours_plus_bounded_noise():
    from vade_verl.tiny import keys as K

    pattern = K.key_patterns(1, seed=3)[0]
    rng = np.random.default_rng(0)
    first, second = (np.asarray(K.render_key(pattern, rng), dtype=int) for _ in range(2))
    assert first.shape == (56, 56, 3) and not np.array_equal(first, second)
    for row in range(4):
        for col in range(4):
            cell = first[14 * row : 14 * row + 14, 14 * col : 14 * col + 14]
            colour = K.PALETTE[pattern[row, col]]
            # clipped noise: every pixel within RENDER_NOISE of its cell's palette colour
            assert np.abs(cell - colour).max() <= K.RENDER_NOISE


def test_held_out_renders_are_never_pool_images_and_an_overlap_is_refused():
    from vade_verl.tiny import keys as K

    patterns, answers = K.key_patterns(6, seed=0), K.key_answers(6, seed=1)
    pool = K.make_key_rows(patterns, answers, range(6), 3, seed=4, split="train")
    held = K.make_key_rows(patterns, answers, range(6), 2, seed=5, split="val")
    K.check_disjoint_images(pool, held)
    assert [r["extra_info"]["index"] for r in pool] == list(range(18))
    assert [r["extra_info"]["key"] for r in held] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert all(r["reward_model"]["ground_truth"] == str(answers[r["extra_info"]["key"]]) for r in pool + held)
    with pytest.raises(ValueError, match="held-out set overlaps"):
        K.check_disjoint_images(pool, held + [pool[7]])
    with pytest.raises(ValueError, match="pool repeats"):
        K.check_disjoint_images(pool + [pool[0]], held)


def test_warm_start_labels_follow_each_keys_class():
    from vade_verl.tiny import keys as K

    classes = K.assign_classes(9, [1 / 3, 1 / 3, 1 / 3], seed=0)
    assert sorted(classes.tolist()) == ["blocked"] * 3 + ["learnable"] * 3 + ["solved"] * 3
    answers, decoys = K.key_answers(9, seed=1), K.decoy_answers(K.key_answers(9, seed=1), seed=2)
    keys = np.repeat(np.arange(9), 4000)
    labels = K.warm_start_labels(answers, decoys, classes, keys, np.random.default_rng(0))
    for key in range(9):
        right = np.mean(labels[keys == key] == answers[key])
        expected = {"solved": 1.0, "blocked": 0.0, "learnable": K.LEARNABLE_CORRECT}[classes[key]]
        assert right == pytest.approx(expected, abs=0.03)  # binomial sd at 4000 draws: 0.007
        assert set(labels[keys == key]) <= {answers[key], decoys[key]}
    for bad in ([0.5, 0.5], [0.5, 0.6, -0.1], [0.2, 0.2, 0.2]):
        with pytest.raises(ValueError, match="shares"):
            K.assign_classes(9, bad, seed=0)


def test_key_rows_are_scored_by_the_tiny_tasks_rule():
    from vade_verl.tiny.task import KEYS_DATA_SOURCE, compute_score

    assert compute_score(KEYS_DATA_SOURCE, "7 <|im_end|>", "7", extra_info={"index": 3}) == {"score": 1.0, "row_index": 3.0}
    assert compute_score(KEYS_DATA_SOURCE, "2", "7", extra_info={"index": 3})["score"] == 0.0


# --- the benchmark's pieces ----------------------------------------------------------------------------------


def test_arm_list_is_checked_before_training():
    assert bench.parse_arms("random:0,1,2 vade:1") == {"random": [0, 1, 2], "vade": [1]}
    for spec, match in (("random:0,1 nope:0", "unknown arm 'nope'"), ("random:0 random:1", "listed twice"),
                        ("random:a", "must be integers"), ("", "names no arm")):
        with pytest.raises(ValueError, match=match):
            bench.parse_arms(spec)
    for arms, match in (({"vade": [0]}, "must include 'random'"), ({"random": [0]}, "at least 2 seeds"),
                        ({"random": [0, 1], "vade": [0, 2]}, r"vade runs seeds \[2\] that random does not")):
        with pytest.raises(ValueError, match=match):
            bench.check_arms(arms)
    with pytest.raises(SystemExit):
        bench.parse_args(["--arms", "random:0 vade:0"])


def test_random_and_vade_run_first_seed_by_seed():
    order = bench.run_order({"random": [0, 1, 2], "vade": [0, 1], "vade-eig": [0], "mopps": [1]})
    assert order == [("random", 0), ("vade", 0), ("random", 1), ("vade", 1), ("random", 2), ("vade-eig", 0), ("mopps", 1)]


def test_a_cached_part_made_with_other_settings_is_refused_naming_them():
    bench.check_cached("x.json", {"steps": 100, "lr": 1e-4}, {"steps": 100, "lr": 1e-4}, "arm")
    with pytest.raises(RuntimeError, match=r"x.json: the cached arm was made with steps=100 \(now 50\)"):
        bench.check_cached("x.json", {"steps": 100, "lr": 1e-4}, {"steps": 50, "lr": 1e-4}, "arm")


def test_an_arm_cached_before_the_optimizer_was_recorded_counts_as_verls_adamw():
    before = {"steps": 80, "lr": 1e-4}  # an arm cached before "optimizer" and "grad_clip" were settings
    bench.check_cached("x.json", before, {"steps": 80, "lr": 1e-4, "optimizer": "AdamW", "grad_clip": 1.0}, "arm")
    with pytest.raises(RuntimeError, match=r"optimizer='AdamW' \(now 'SGD'\), grad_clip=1.0 \(now 100.0\)"):
        bench.check_cached("x.json", before, {"steps": 80, "lr": 1e-4, "optimizer": "SGD", "grad_clip": 100.0}, "arm")


def test_the_optimizer_and_gradient_clip_reach_verls_actor():
    args = bench.parse_args(["--arms", "random:0,1", "--optimizer", "SGD", "--grad-clip", "100", "--lr", "0.03"])
    overrides = bench.trainer_overrides(args, seed=1)
    for expected in ("actor_rollout_ref.actor.optim.optimizer=SGD", "actor_rollout_ref.actor.grad_clip=100.0",
                     "actor_rollout_ref.actor.optim.lr=0.03", "data.seed=1"):
        assert expected in overrides
    with pytest.raises(SystemExit):
        bench.parse_args(["--arms", "random:0,1", "--optimizer", "Adagrad"])


def test_share_of_clipped_steps_by_hand():
    results = {"random": {0: {"grad_norm": [0.5, 2.0, 3.0, 0.9]}, 1: {"grad_norm": [1.5, 0.1, 0.2, 0.3]}},
               "vade": {0: {"val_accuracy": [0.1]}}}  # cached before the gradient norm was recorded: left out
    assert bench.clip_shares(results, grad_clip=1.0) == {"random": [0.5, 0.25]}


def test_pool_shares_by_starting_informativeness():
    # G = 2: P(informative) = 2p(1-p): p = 0.01 -> 0.0198 (unsolvable), 0.97 -> 0.058 (solved), 0.5 -> 0.5
    shares = bench.pool_shares(np.array([0.01, 0.97, 0.5, 0.5]), group_size=2)
    assert shares == {"solved": 0.25, "unsolvable": 0.25, "learnable": 0.5}


def test_rollouts_to_target_area_and_noise_floor_by_hand():
    assert bench.rollouts_to(0.5, [0, 100, 200], [0.2, 0.4, 0.6]) == pytest.approx(150.0)  # halfway 100..200
    assert bench.rollouts_to(0.1, [0, 100], [0.2, 0.4]) == 0.0
    assert bench.rollouts_to(0.9, [0, 100], [0.2, 0.4]) is None
    # trapezoids: (0.2+0.4)/2*100 + (0.4+0.6)/2*100 = 80, over 200 rollouts
    assert bench.area_under([0, 100, 200], [0.2, 0.4, 0.6]) == pytest.approx(0.4)
    assert bench.noise_floor([[0.1, 0.5], [0.3, 0.4], [0.2, 0.45]]) == pytest.approx([0.2, 0.1])


def _arm(learnable, rollouts=(0, 100, 200, 300, 400)):
    return {"val_rollouts": list(rollouts), "val_accuracy": list(learnable), "effective_ratio": [0.5],
            "val_accuracy_by_class": {"learnable": list(learnable), "solved": [1.0] * len(learnable),
                                      "blocked": [0.0] * len(learnable)}}


def test_predeclared_verdict_cases():
    random = {0: _arm([0.2, 0.3, 0.4, 0.5, 0.6]), 1: _arm([0.2, 0.32, 0.42, 0.52, 0.62])}
    clear_win = {0: _arm([0.2, 0.5, 0.6, 0.7, 0.8]), 1: _arm([0.2, 0.48, 0.58, 0.68, 0.78])}
    within = {0: _arm([0.2, 0.31, 0.41, 0.51, 0.61]), 1: _arm([0.2, 0.3, 0.4, 0.5, 0.6])}
    summary = bench.summarise({"random": random, "vade": clear_win, "vade-eig": within})
    verdicts = {r["arm"]: r["verdict"] for r in summary["rows"]}
    # random reaches 0.5 at 300 (seed 0) and 280 (seed 1); the win at 100 and 120: < 0.9x
    assert verdicts["vade"] == "better than random"
    assert verdicts["vade-eig"] == "no better than random"  # within random's band at all of the last 4
    assert summary["random_noise_floor"] == pytest.approx([0.0, 0.02, 0.02, 0.02, 0.02])
    table = bench.format_table(summary)
    assert "| VADE (paper) | 0,1 |" in table and "better than random |" in table
    runs = bench.format_runs({"random": random})
    assert "| verl random, seed 1 | 0.200, 0.320, 0.420, 0.520, 0.620 | 1.000, 1.000" in runs
    one_random = bench.summarise({"random": {0: random[0]}, "vade": {0: clear_win[0]}})
    assert one_random["random_noise_floor"] == [] and one_random["rows"][1]["verdict"] == "n/a: random has one seed"


def test_held_out_accuracy_per_key_class_from_verls_validation_dump(tmp_path):
    write_jsonl(tmp_path / "validation" / "20.jsonl",
                [{"row_index": 0.0, "score": 1.0}, {"row_index": 0.0, "score": 0.0}, {"row_index": 1.0, "score": 1.0},
                 {"row_index": 2.0, "score": 0.0}])
    by_class = bench.accuracy_by_class(str(tmp_path), 20, {0: "learnable", 1: "solved", 2: "learnable"})
    assert by_class == {"learnable": pytest.approx(1 / 3), "solved": 1.0}


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


def test_an_interrupted_arm_resumes_in_its_next_launch(tmp_path):
    assert bench.next_launch(str(tmp_path)) == 1 and not bench.has_checkpoint(str(tmp_path))
    write_jsonl(tmp_path / "metrics_1.jsonl", [{"step": 1, "data": {}}])
    write_jsonl(tmp_path / "metrics_2.jsonl", [{"step": 2, "data": {}}])
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "latest_checkpointed_iteration.txt").write_text("20")
    assert bench.next_launch(str(tmp_path)) == 3 and bench.has_checkpoint(str(tmp_path))


def test_metrics_of_a_relaunch_replace_the_steps_it_redid(tmp_path):
    write_jsonl(tmp_path / "metrics_1.jsonl", [{"step": s, "data": {"x": s, "first": 1}} for s in (0, 1, 2, 3)])
    write_jsonl(tmp_path / "metrics_2.jsonl", [{"step": s, "data": {"x": 10 * s}} for s in (2, 3, 4)])
    merged = bench.read_metrics(str(tmp_path))
    assert sorted(merged) == [0, 1, 2, 3, 4]
    assert [merged[s]["x"] for s in range(5)] == [0, 1, 20, 30, 40]


# --- the counting task (the CI runs' rows) and the warm start ------------------------------------------------


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
    from vade_verl.tiny.warm_start import counting_examples, first_token_solve_probs, row_images, warm_start

    model_dir = build_vl_model(str(tmp_path / "m"), seed=0)
    rows = make_rows(12, seed=3, split="val", with_image=True, max_squares=3)
    two = np.array([r["reward_model"]["ground_truth"] == "2" for r in rows])
    assert two.any() and (~two).any()
    before = first_token_solve_probs(model_dir, rows)
    losses = warm_start(model_dir, counting_examples([0, 0, 1]), steps=12, batch_size=4, lr=3e-3, seed=0)
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

SMOKE = dict(steps=2, batch=4, group=4, keys=10, pool_renders=2, held_out_renders=2, val_n=2)
SMOKE_ARMS = "random:0,1 vade:0"


def smoke_argv(out, steps: int = SMOKE["steps"]) -> list[str]:
    return ["--out", str(out), "--arms", SMOKE_ARMS, "--steps", str(steps), "--batch-size", str(SMOKE["batch"]),
            "--group-size", str(SMOKE["group"]), "--keys", str(SMOKE["keys"]), "--pool-renders", str(SMOKE["pool_renders"]),
            "--held-out-renders", str(SMOKE["held_out_renders"]), "--val-n", str(SMOKE["val_n"]),
            "--warm-start-steps", "2", "--test-freq", "2", "--retries", "0", "--arm-timeout", "600"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    require_vllm_cpu()
    out = tmp_path_factory.mktemp("learning_benchmark")
    assert bench.main(smoke_argv(out)) == 0
    return out


@pytest.mark.e2e
def test_smoke_ran_every_arm_through_verl(smoke):
    import pandas as pd

    summary = json.loads((smoke / "summary.json").read_text())
    assert {arm: sorted(map(int, seeds)) for arm, seeds in summary["arms"].items()} == {"random": [0, 1], "vade": [0]}
    assert (smoke / "learning_benchmark.png").stat().st_size > 10_000
    work = smoke / "work"
    pool, held = (pd.read_parquet(work / "data" / f"{s}.parquet") for s in ("train", "val"))
    assert len(pool) == SMOKE["keys"] * SMOKE["pool_renders"] and len(held) == SMOKE["keys"] * SMOKE["held_out_renders"]
    assert not {r[0]["bytes"] for r in pool["images"]} & {r[0]["bytes"] for r in held["images"]}
    classes = summary["task"]["key_classes"]
    row_class = {int(info["index"]): classes[int(info["key"])] for info in held["extra_info"]}
    for arm, by_seed in summary["arms"].items():
        for seed, data in by_seed.items():
            run = work / f"{arm}-s{seed}"
            log = (run / "train_1.log").read_text()
            # verl's printed config: its own sampler for "random", VADESampler for VADE; the arm's seed
            assert ("'sampler': {'class_name': None, 'class_path': None}" in log) == (arm == "random"), arm
            assert ("'class_name': 'VADESampler'" in log) == (arm == "vade"), arm
            assert f"'seed': {seed}," in log
            assert data["val_steps"] == [0, SMOKE["steps"]]
            for step in range(1, SMOKE["steps"] + 1):
                rollouts = [json.loads(line) for line in (run / "rollouts" / f"{step}.jsonl").read_text().splitlines()]
                by_row = {}
                for r in rollouts:
                    by_row.setdefault(r["row_index"], []).append(r["score"])
                assert len(by_row) == SMOKE["batch"] and all(len(s) == SMOKE["group"] for s in by_row.values())
                mixed = np.mean([len(set(s)) > 1 for s in by_row.values()])
                assert data["effective_ratio"][step - 1] == pytest.approx(mixed)
                if arm == "vade":  # the sampler's own count, from verl's batch (groups by uid)
                    assert data["sampler_effective_ratio"][step - 1] == pytest.approx(mixed)
            for i, step in enumerate(data["val_steps"]):
                answers = [json.loads(line) for line in (run / "validation" / f"{step}.jsonl").read_text().splitlines()]
                assert len(answers) == len(held) * SMOKE["val_n"]
                assert data["val_accuracy"][i] == pytest.approx(np.mean([a["score"] for a in answers]))
                learnable = [a["score"] for a in answers if row_class[int(a["row_index"])] == "learnable"]
                assert data["val_accuracy_by_class"]["learnable"][i] == pytest.approx(np.mean(learnable))
    assert {row["arm"] for row in summary["summary"]["rows"]} == {"random", "vade"}


@pytest.mark.e2e
def test_a_rerun_reuses_finished_parts_and_refuses_other_settings(smoke, capsys):
    assert bench.main(smoke_argv(smoke)) == 0
    said = capsys.readouterr().out
    assert "task: cached" in said and said.count(": cached (") == 4  # the task and three arm runs
    with pytest.raises(RuntimeError, match=r"made with steps=2 \(now 3\)"):
        bench.main(smoke_argv(smoke, steps=3))
