"""The CPU stability benchmark is wired as documented: paired arms, shaping the only difference."""

import argparse
import importlib.util
import os

import numpy as np
import pytest

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "mssr_stability.py")
spec = importlib.util.spec_from_file_location("mssr_stability", PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def small_args(**kw):
    base = dict(prompts=16, batch=8, vocab=4, length=3, need=2, lr=0.05, steps=12, alpha=0.4, kappa=2.0,
                kl_coef=0.01, entropy="full_vocab", rho_schedule="continuous", init="warm_start")
    return argparse.Namespace(**{**base, **kw})


def test_arms_are_paired_and_differ_only_by_shaping():
    args = small_args()
    plain, again, shaped = bench.run(args, 0.0, seed=3), bench.run(args, 0.0, seed=3), bench.run(args, 0.4, seed=3)
    assert np.array_equal(plain["reward"], again["reward"]) and np.array_equal(plain["entropy"], again["entropy"])
    # same seed: same prompts, weights, warm-start and first rollouts; the shaped update changes what follows
    assert plain["reward"][0] == shaped["reward"][0] and plain["entropy"][0] == shaped["entropy"][0]
    assert not np.array_equal(plain["entropy"], shaped["entropy"])
    assert 0.0 <= shaped["collapsed_wrong"] <= 1.0 and 0.0 <= shaped["greedy_solved"] <= 1.0
    for option in (dict(entropy="sampled"), dict(rho_schedule="authors"), dict(init="first_visit")):
        assert not np.array_equal(bench.run(small_args(**option), 0.4, seed=3)["entropy"], shaped["entropy"]), option


def test_paired_interval_against_scipy():
    diff = np.array([0.1, -0.05, 0.2, 0.0, 0.15])
    lo, hi = bench.paired_interval(diff)
    ref = bench.stats.ttest_1samp(diff, 0.0).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ref.low, ref.high))


def test_main_prints_table_figure_and_paired_differences(capsys):
    summary = bench.main(["--seeds", "2", "--steps", "20", "--prompts", "16", "--batch", "8", "--window", "10"])
    out = capsys.readouterr().out
    assert "batch reward (mean over seeds, smoothed)" in out and "mean token entropy (nats)" in out
    assert "paired difference MSSR - MVSR" in out
    import platform

    import scipy
    import torch

    versions = f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}"
    assert versions in out.splitlines()[0]  # issue 23 item 7: the stack that made the table
    assert {"MVSR (no shaping)", "MSSR (alpha=0.4)", "diff_reward", "diff_entropy"} <= set(summary)
    mean, lo, hi = summary["diff_reward"]
    assert lo <= mean <= hi
    assert mean == pytest.approx(summary["MSSR (alpha=0.4)"]["reward"] - summary["MVSR (no shaping)"]["reward"])
