"""Issue 23 items 6 and 9: MSSR's reward scale and its warm-start dump checks, through verl's loader and
``compute_advantage`` (the helpers of tests/test_mssr_verl.py)."""

import json
import logging

import numpy as np
import pytest

import vade_verl.mssr.verl_plugin as verl_mssr
from test_mssr_verl import BATCH, FIRST_VISIT, N0, ROWS, dump_validation, fit, make_config, positions_of, rollout_step
from verl_harness import make_train_loader

FIXED = ["+data.mssr.alpha=0", "+data.mssr.rho=0.9"]  # no shaping, no KL: A is the normalised r - v alone


def centred(d):
    return (d - d.mean()) / (d.std(ddof=1) + 1e-6)


def test_minus_one_plus_one_rewards_use_the_baselines_scale(tmp_path):
    """math_dapo's -1/+1: v estimates the correctness rate, so A = c - v. A never-solved prompt (v = 0)
    answered wrong again has c - v = 0 (the raw reward gave -1 - 0 = -1, pulled apart from the others)."""
    gts = [f"answer {i}" for i in range(ROWS)]
    warm = [1.0 if i % 2 else -1.0 for i in range(ROWS)]  # warm start: v = 1 for odd prompts, 0 for even ones
    dump = dump_validation(tmp_path / "warm", gts, warm)
    config = make_config(tmp_path, f"+data.mssr.warm_start_file={dump}", *FIXED, "+data.mssr.correctness=0")
    loader = make_train_loader(config)
    reward = lambda i: 1.0 if i % 4 in (0, 1) else -1.0  # noqa: E731
    batch, entropys = rollout_step(next(iter(loader)), reward, seed=1)
    batch, _ = fit(batch, entropys, config)
    pos = positions_of(batch)
    # hand-worked c - v by position mod 4: 1 - 0, 1 - 1, 0 - 0 (never solved, wrong again: 0), 0 - 1
    d = np.array([1.0, 0.0, 0.0, -1.0])[pos % 4]
    mask = batch.batch["response_mask"].numpy()
    assert batch.batch["advantages"].numpy() == pytest.approx(centred(d)[:, None] * mask, rel=1e-4, abs=1e-5)


def test_geo3k_format_bonus_is_not_an_advantage_of_an_always_wrong_prompt(tmp_path, caplog):
    """geo3k's 0.1 for a well-formatted wrong answer: v = 0 for an always-wrong prompt, so c - v = 0; the
    authors' raw score (advantage_reward=score) gives +0.1 and a warning names the option."""
    config = make_config(tmp_path, *FIRST_VISIT, *FIXED)
    loader = make_train_loader(config)
    dataset = loader.dataset
    dataset.mssr.initialise(np.arange(ROWS), np.array([0.0, 1.0] * (ROWS // 2)))
    scores = [0.1, 0.9, 0.1, 1.0, 0.1, 0.9, 0.0, 1.0]
    batch, entropys = rollout_step(next(iter(loader)), lambda i: scores[i], seed=2)
    pos = positions_of(batch)
    v = np.array([0.0, 1.0] * (ROWS // 2))[pos]
    batch, _ = fit(batch, entropys, config)
    c = (np.array(scores)[pos] > 0.5).astype(float)
    mask = batch.batch["response_mask"].numpy()
    assert np.allclose(c - v, 0.0)  # every prompt answered as its baseline predicts: no signal
    assert batch.batch["advantages"].numpy() == pytest.approx(np.zeros_like(mask), abs=1e-5)

    raw = make_config(tmp_path, *FIRST_VISIT, *FIXED, "+data.mssr.advantage_reward=score")
    loader = make_train_loader(raw)
    loader.dataset.mssr.initialise(np.arange(ROWS), np.array([0.0, 1.0] * (ROWS // 2)))
    batch, entropys = rollout_step(next(iter(loader)), lambda i: scores[i], seed=2)
    caplog.set_level(logging.WARNING, logger=verl_mssr.__name__)
    batch, _ = fit(batch, entropys, raw)
    d = np.array(scores)[pos] - v
    assert batch.batch["advantages"].numpy() == pytest.approx(centred(d)[:, None] * mask, rel=1e-4, abs=1e-5)
    assert "data.mssr.advantage_reward=correctness keeps one scale" in caplog.text


def test_warm_start_dump_errors_name_the_problem(tmp_path):
    gts = [f"answer {i}" for i in range(ROWS)]
    good = dump_validation(tmp_path / "good", gts, [1.0] * ROWS)
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text(open(good).read()[:-20])
    as_string = tmp_path / "string.jsonl"
    lines = [json.loads(line) for line in open(good)]
    lines[2]["score"] = "1.0"
    as_string.write_text("".join(json.dumps(line) + "\n" for line in lines))
    for path, match in [(truncated, r"line 8 is not JSON .*truncated"), (as_string, r"line 3 has score '1.0' \(str\)")]:
        config = make_config(tmp_path, f"+data.mssr.warm_start_file={path}", *FIXED)
        loader = make_train_loader(config)
        batch, entropys = rollout_step(next(iter(loader)), lambda i: 1.0, seed=1)
        with pytest.raises(ValueError, match=match):
            fit(batch, entropys, config)
    with pytest.raises(ValueError, match=r"warm_start_file=.*good is a directory; name the dump file in it"):
        make_train_loader(make_config(tmp_path, f"+data.mssr.warm_start_file={tmp_path / 'good'}"))


def test_uncovered_prompts_and_several_rollouts_are_warned(tmp_path, caplog):
    gts = [f"answer {i}" for i in range(ROWS)]
    dump = dump_validation(tmp_path / "warm", gts, [float("nan"), float("nan")] + [1.0] * (ROWS - 2))
    config = make_config(tmp_path, f"+data.mssr.warm_start_file={dump}", *FIXED)
    loader = make_train_loader(config)
    caplog.set_level(logging.WARNING, logger=verl_mssr.__name__)
    batch, entropys = rollout_step(next(iter(loader)), lambda i: 1.0, seed=1)
    fit(batch, entropys, config)
    assert "2 of 8 prompts have no scored rollout" in caplog.text
    positions = np.array([0, 0, 1, 1])  # rollout.n = 2
    loader.dataset.begin_step(positions)
    assert "MSSR is a single-rollout method" in caplog.text and "4 rows for 2 prompts" in caplog.text
