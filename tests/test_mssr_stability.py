"""The CPU stability benchmark is wired as documented: paired arms, shaping the only difference."""

import importlib.util
import os

import numpy as np

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "mssr_stability.py")
spec = importlib.util.spec_from_file_location("mssr_stability", PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def small_args(**kw):
    import argparse

    base = dict(prompts=16, batch=8, vocab=4, length=3, need=2, lr=0.05, steps=12, alpha=0.4, kappa=2.0, kl_coef=0.01)
    return argparse.Namespace(**{**base, **kw})


def test_arms_are_paired_and_differ_only_by_shaping():
    args = small_args()
    plain, again, shaped = bench.run(args, 0.0, seed=3), bench.run(args, 0.0, seed=3), bench.run(args, 0.4, seed=3)
    assert np.array_equal(plain["reward"], again["reward"]) and np.array_equal(plain["entropy"], again["entropy"])
    # same seed: same prompts, weights and first rollouts; the shaped update changes what follows
    assert plain["reward"][0] == shaped["reward"][0] and plain["entropy"][0] == shaped["entropy"][0]
    assert not np.array_equal(plain["entropy"], shaped["entropy"])
    assert 0.0 <= shaped["collapsed_wrong"] <= 1.0 and 0.0 <= shaped["greedy_solved"] <= 1.0


def test_main_prints_table_and_figure(capsys):
    summary = bench.main(["--seeds", "2", "--steps", "20", "--prompts", "16", "--batch", "8", "--window", "10"])
    out = capsys.readouterr().out
    assert "batch reward (mean over seeds, smoothed)" in out and "mean token entropy (nats)" in out
    assert set(summary) == {"MVSR (no shaping)", "MSSR (alpha=0.4)"}
