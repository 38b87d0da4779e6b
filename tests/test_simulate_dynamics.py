"""The simulator's learning dynamics by hand, the true-p references against brute force, the calibration."""

import itertools
import json

import numpy as np
import pytest

from vade_verl.sim import calibrate
from vade_verl.sim.baseline_samplers import true_p_batch
from vade_verl.sim.population import Dynamics, Population, logit, rank_families, sigmoid
from vade_verl.sim.simulate import SimConfig, simulate, summarise

# -- one training step, worked by hand -------------------------------------------------------------
# z = [0.3, 1, -2, inf, 0.5], z0 = [0, 1, -2, inf, 0.5]; batch [0, 2, 4] of B = 3, informative
# [yes, no, yes] (k = 2); learn 0.6, transfer 0.1, forget 0.1; families [0, 0, 1, 1, 0].
Z0 = np.array([0.0, 1.0, -2.0, np.inf, 0.5])
HAND = {
    # a = 0.6, d = 0.1 * 2 / 3: 0.3 + 0.6 + d = 0.9667 -> 0.9 * 0.9667 = 0.87; 1 + d -> 1.06;
    # -2 + d -> -1.94; 0.5 + 0.6 + d = 1.1667 -> 1.1667 - 0.1 * 0.6667 = 1.1.
    "per-group": [0.87, 1.06, -1.94, np.inf, 1.1],
    # a = 0.6 / 2 = 0.3, d = 0.1: 0.7 -> 0.63; 1.1 -> 1.09; -1.9 -> -1.91; 0.9 -> 0.86.
    "per-step": [0.63, 1.09, -1.91, np.inf, 0.86],
    # per-step plus rho a = 0.5 * 0.3 = 0.15 per other informative item of the family: items 0
    # and 4 have one (each other), item 1 two, item 2 none: 0.85 -> 0.765; 1.4 -> 1.36; -1.91; 1.05 -> 0.995.
    "family": [0.765, 1.36, -1.91, np.inf, 0.995],
}


@pytest.mark.parametrize("kind", sorted(HAND))
def test_one_training_step_by_hand(kind):
    dynamics = Dynamics(kind, learn=0.6, transfer=0.1, forget=0.1, family=0.5 if kind == "family" else 0.0)
    pop = Population(Z0, dynamics, families=np.array([0, 0, 1, 1, 0]))
    pop.z[0] = 0.3
    pop.train(np.array([0, 2, 4]), np.array([True, False, True]), batch_size=3)
    np.testing.assert_allclose(pop.z, HAND[kind])


@pytest.mark.parametrize("kind", ["per-group", "per-step", "family"])
def test_integer_parameters_step_like_floats(kind):
    pop = Population(np.zeros(3), Dynamics(kind, learn=1, transfer=0, forget=0, family=1 if kind == "family" else 0), np.zeros(3, dtype=int))
    pop.train(np.array([0, 1]), np.array([True, False]), batch_size=2)
    assert pop.z.tolist() == [1.0, 1.0 if kind == "family" else 0.0, 1.0 if kind == "family" else 0.0]


@pytest.mark.parametrize("kind", ["per-group", "per-step", "family"])
def test_a_step_without_informative_groups_only_forgets(kind):
    dynamics = Dynamics(kind, learn=0.6, transfer=0.1, forget=0.5, family=0.5 if kind == "family" else 0.0)
    pop = Population(np.array([0.0, 2.0]), dynamics, families=np.array([0, 0]))
    pop.z[:] = [1.0, 2.0]
    pop.train(np.array([0, 1]), np.array([False, False]), batch_size=2)
    np.testing.assert_allclose(pop.z, [0.5, 2.0])


def test_dynamics_options_are_checked():
    with pytest.raises(ValueError, match="unknown dynamics"):
        Dynamics("adam")
    with pytest.raises(ValueError, match="family=0.5 needs kind 'family'"):
        Dynamics("per-step", family=0.5)
    with pytest.raises(ValueError, match="learn=nan"):
        Dynamics("per-step", learn=float("nan"))
    with pytest.raises(ValueError, match="families must be"):
        Population(np.zeros(3), Dynamics(), families=np.array([0, 1]))
    with pytest.raises(ValueError, match="unknown --dynamics"):
        SimConfig(dynamics="adam")


def test_rank_families_are_contiguous_difficulty_ranges():
    z0 = np.array([5.0, -1.0, 0.0, 3.0, -4.0, 1.0])
    families = rank_families(z0, 3, np.random.default_rng(0))
    # ranks by z0: -4 (4), -1 (1), 0 (2), 1 (5), 3 (3), 5 (0) -> families 0, 0, 1, 1, 2, 2
    assert families.tolist() == [2, 0, 1, 2, 0, 1]


# -- the true-p references against brute force ---------------------------------------------------
P = np.array([0.05, 0.3, 0.5, 0.7, 0.9, 0.2, 0.45])
B, G = 2, 3


def _informative_by_enumeration(p, group_size):
    """P(a group of Bernoulli(p) rewards is not constant), summed over all 2^G outcomes."""
    total = 0.0
    for outcome in itertools.product([0, 1], repeat=group_size):
        if 0 < sum(outcome) < group_size:
            total += np.prod([p if r else 1 - p for r in outcome])
    return total


BRUTE_SCORES = {
    "informative": lambda p: _informative_by_enumeration(p, G),
    "variance": lambda p: p - p * p,
    "infogain": lambda p: p * (1 - p) * (1 - p),
}


@pytest.mark.parametrize("score", sorted(BRUTE_SCORES))
def test_true_p_references_pick_the_best_batch_by_brute_force(score):
    best = max(itertools.combinations(range(P.size), B), key=lambda s: sum(BRUTE_SCORES[score](P[i]) for i in s))
    assert sorted(true_p_batch(score, P, B, G).tolist()) == sorted(best)


def test_variance_and_informative_references_rank_alike():
    p = np.random.default_rng(0).random(1000)
    assert true_p_batch("variance", p, 100, 8).tolist() == true_p_batch("informative", p, 100, 8).tolist()
    assert true_p_batch("infogain", p, 100, 8).tolist() != true_p_batch("variance", p, 100, 8).tolist()


def _expected_progress(z0, dynamics, families, batch):
    """Exact expected mean p after one step on ``batch``: every informative pattern, weighted."""
    q = [_informative_by_enumeration(sigmoid(z0[i]), G) for i in batch]
    value = 0.0
    for pattern in itertools.product([False, True], repeat=len(batch)):
        weight = np.prod([qi if hit else 1 - qi for qi, hit in zip(q, pattern)])
        pop = Population(z0, dynamics, families)
        pop.train(np.array(batch), np.array(pattern), batch_size=len(batch))
        value += weight * pop.probs().mean()
    return value


LOOKAHEAD_CASES = {
    "per-group, no drift (exact)": Dynamics("per-group", learn=3.0),  # P(informative) would pick 2 and 6
    "per-group with drift": Dynamics("per-group", learn=1.5, transfer=0.3),
    "per-step": Dynamics("per-step", learn=2.0, transfer=0.1),
    "family": Dynamics("family", learn=2.0, family=0.5),
}


@pytest.mark.parametrize("case", sorted(LOOKAHEAD_CASES))
def test_lookahead_against_brute_force(case):
    dynamics = LOOKAHEAD_CASES[case]
    z0 = logit(P)
    families = np.array([0, 0, 1, 1, 2, 2, 0])
    pop = Population(z0, dynamics, families)
    chosen = tuple(pop.lookahead_scores(G, B).argsort()[::-1][:B].tolist())
    values = {s: _expected_progress(z0, dynamics, families, s) for s in itertools.combinations(range(P.size), B)}
    best = max(values.values())
    if case.endswith("(exact)"):
        assert values[tuple(sorted(chosen))] == pytest.approx(best, rel=1e-12)
    else:  # first order in the drift and family terms, mean-field in k: close to the best batch
        gain_best = best - P.mean()
        assert values[tuple(sorted(chosen))] - P.mean() >= 0.95 * gain_best


# -- the summary names the best reference ----------------------------------------------------------
def _records(name, progress):
    return [
        {"sampler": name, "step": i + 1, "effective_ratio": 0.5, "overhead_rollouts": 0, "cumulative_rollouts": 10 * (i + 1),
         "mean_solve_prob": value, "sampler_ms": 0.0}
        for i, value in enumerate(progress)
    ]


def test_summary_divides_by_the_best_reference_that_ran():
    results = {
        "random": _records("random", [0.1, 0.2, 0.3, 0.4]),  # target 0.4 at 40 rollouts
        "true-informative": _records("true-informative", [0.2, 0.3, 0.4, 0.5]),  # 30
        "true-infogain": _records("true-infogain", [0.2, 0.4, 0.5, 0.6]),  # 20: the best
        "vade": _records("vade", [0.1, 0.1, 0.2, 0.3]),  # never
    }
    rows = {row["sampler"]: row for row in summarise(results, batch_size=4)}
    assert [name for name, row in rows.items() if row["best_reference"]] == ["true-infogain"]
    assert rows["random"]["rollouts_to_target_vs_best_reference"] == 2.0
    assert rows["true-informative"]["rollouts_to_target_vs_best_reference"] == 1.5
    assert rows["vade"]["rollouts_to_target_vs_best_reference"] is None


# -- calibration -----------------------------------------------------------------------------------
FIXTURE = "benchmarks/calibration/learning_benchmark_seed0.json"


def test_the_shipped_fixture_loads():
    run = calibrate.load_real_run(FIXTURE)
    assert (run.batch_size, run.group_size, run.solve_probs.size) == (16, 8, 512)
    assert run.eval_steps.tolist() == list(range(0, 161, 20))
    assert run.solve_probs.mean() == pytest.approx(0.535, abs=0.002)  # docs/learning_benchmark.md
    assert run.accuracy_se == pytest.approx(np.sqrt(0.62 * 0.38 / 1024), abs=2e-4)
    assert sorted(run.accuracy) == ["random", "vade", "vade-eig"]


def _write(tmp_path, data):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return str(path)


def _tiny_run(accuracy, rollouts=(0, 32, 64)):
    return {
        "config": {"batch_size": 4, "group_size": 4},
        "accuracy_se": 0.1,
        "pool": {"pool_solve_probs": [0.2, 0.5, 0.7, 0.9, 0.4, 0.6]},
        "arms": {"random": {"val_rollouts": list(rollouts), "val_accuracy": accuracy}},
    }


def test_bad_run_files_are_named(tmp_path):
    run = _tiny_run([0.5, 0.6, 0.7])
    del run["pool"]
    with pytest.raises(ValueError, match="missing key 'pool.pool_solve_probs'"):
        calibrate.load_real_run(_write(tmp_path, run))
    run = _tiny_run([0.5, 0.6, 0.7], rollouts=(0, 30, 64))
    with pytest.raises(ValueError, match="whole steps of B x G = 16"):
        calibrate.load_real_run(_write(tmp_path, run))
    run = _tiny_run([0.5, 0.6, 0.7])
    run["arms"] = {"vade": run["arms"]["random"]}
    with pytest.raises(ValueError, match="arms.random is missing"):
        calibrate.load_real_run(_write(tmp_path, run))
    run = _tiny_run([0.5, 0.6, 0.7])
    del run["accuracy_se"]
    with pytest.raises(ValueError, match="accuracy_se"):
        calibrate.load_real_run(_write(tmp_path, run))
    assert calibrate.main([str(tmp_path / "missing.json")]) == 2


def test_chi2_compares_gains_since_the_start_in_standard_errors(tmp_path):
    run = calibrate.load_real_run(_write(tmp_path, _tiny_run([0.5, 0.6, 0.7])))
    # simulated gains 0.05, 0.2 against measured 0.1, 0.2: (0.05 / 0.1)^2 = 0.25
    assert calibrate.chi2(run, np.array([0.4, 0.45, 0.6])) == pytest.approx(0.25)


def test_the_fit_recovers_the_dynamics_that_made_the_curve(tmp_path, monkeypatch):
    probs = np.random.default_rng(1).beta(2, 2, size=64)
    truth = dict(dynamics="per-step", learn=1.0, transfer=0.01, forget=0.0, family=0.0)
    seeds = [0, 1]
    curves = []
    for seed in seeds:  # the random arm of a run that follows these dynamics, straight from simulate()
        config = SimConfig(num_samples=64, batch_size=8, group_size=4, steps=30, seed=seed, samplers=("random",), **truth)
        records = simulate(config, z0=logit(probs))["random"]
        curves.append([probs.mean()] + [records[s - 1]["mean_solve_prob"] for s in (10, 20, 30)])
    measured = np.mean(curves, axis=0)
    data = {
        "config": {"batch_size": 8, "group_size": 4},
        "accuracy_se": 0.01,
        "pool": {"pool_solve_probs": probs.tolist()},
        "arms": {"random": {"val_rollouts": [0, 320, 640, 960], "val_accuracy": (measured + 0.05).tolist()}},
    }
    run = calibrate.load_real_run(_write(tmp_path, data))
    monkeypatch.setitem(calibrate.GRIDS, "per-step", {"learn": np.array([0.3, 1.0, 3.0]), "transfer": np.array([0.0, 0.01])})
    scored = calibrate.fit(run, "per-step", seeds)
    best_chi2, best = scored[0]
    assert (best["learn"], best["transfer"]) == (1.0, 0.01)
    assert best_chi2 == pytest.approx(0.0, abs=1e-18)  # the level offset of 0.05 is not fitted
    assert scored[1][0] > 1.0


def test_the_command_fits_every_kind_and_reports_the_prediction_next_to_the_measurement(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(2)
    data = {
        "config": {"batch_size": 4, "group_size": 4, "val_rows": 100, "val_n": 4},
        "pool": {"pool_solve_probs": rng.beta(2, 2, size=32).tolist(), "pool_counts": (np.arange(32) % 4).tolist()},
        "arms": {
            "random": {"val_rollouts": [0, 160, 320], "val_accuracy": [0.5, 0.55, 0.6]},
            "vade": {"val_rollouts": [0, 160, 320], "val_accuracy": [0.5, 0.56, 0.58]},
        },
    }
    for kind in calibrate.GRIDS:
        monkeypatch.setitem(calibrate.GRIDS, kind, {"learn": np.array([0.5, 2.0]), "transfer": np.array([0.0])})
    monkeypatch.setitem(calibrate.GRIDS, "family", {"learn": np.array([0.5]), "family": np.array([0.5]), "transfer": np.array([0.0])})
    out = tmp_path / "reports.json"
    assert calibrate.main([_write(tmp_path, data), "--arms", "vade", "--seeds", "2", "--json", str(out)]) == 0
    reports = json.loads(out.read_text())
    assert sorted(r["dynamics"]["dynamics"] for r in reports) == ["family", "per-group", "per-step"]
    for report in reports:
        low, high = report["plausible_final_range"]["vade"]
        assert low <= report["prediction"]["vade"]["final"] <= high
    text = capsys.readouterr().out
    # measured VADE - random: final 0.58 - 0.6 = -0.020, mean after the start 0.57 - 0.575 = -0.005
    assert "measured" in text and "-0.020" in text and "-0.005" in text and "best fit:" in text


def test_the_new_benchmark_layout_with_seeds_and_keys(tmp_path):
    """task.pool_keys as families, arms.<arm>.<seed> runs averaged, the seeds' spread as the error."""
    run = {
        "config": {"batch_size": 2, "group_size": 2},
        "task": {"pool_solve_probs": [0.1, 0.5, 0.9, 0.3], "pool_keys": [7, 3, 7, 3]},
        "arms": {
            "random": {"0": {"val_rollouts": [0, 4, 8], "val_accuracy": [0.5, 0.6, 0.7]},
                       "1": {"val_rollouts": [0, 4, 8], "val_accuracy": [0.5, 0.7, 0.9]}},
            "vade": {"0": {"val_rollouts": [0, 4, 8], "val_accuracy": [0.5, 0.5, 0.5]}},
        },
    }
    loaded = calibrate.load_real_run(_write(tmp_path, run))
    assert loaded.families.tolist() == [1, 0, 1, 0]
    np.testing.assert_allclose(loaded.accuracy["random"], [0.5, 0.65, 0.8])
    # per-evaluation variances (ddof 1) of [0.6, 0.7] and [0.7, 0.9]: 0.005 and 0.02; mean 0.0125, / 2 seeds
    assert loaded.accuracy_se == pytest.approx(np.sqrt(0.0125 / 2))
    run["arms"]["random"]["1"]["val_rollouts"] = [0, 4, 12]
    with pytest.raises(ValueError, match="different rollouts"):
        calibrate.load_real_run(_write(tmp_path, run))


def _class_run():
    """Two key classes (keys 0 and 2 "easy", key 1 "hard"), two random seeds with per-class accuracy."""
    def seed_run(all_acc, easy, hard):
        return {"val_rollouts": [0, 4, 8], "val_accuracy": all_acc, "val_accuracy_by_class": {"easy": easy, "hard": hard}}

    return {
        "config": {"batch_size": 2, "group_size": 2},
        "task": {"pool_solve_probs": [0.9, 0.2, 0.8, 0.1], "pool_keys": [0, 1, 2, 1], "key_classes": ["easy", "hard", "easy"]},
        "arms": {
            "random": {"0": seed_run([0.5, 0.6, 0.7], [0.9, 0.9, 0.8], [0.1, 0.3, 0.6]),
                       "1": seed_run([0.5, 0.7, 0.9], [0.9, 0.8, 0.9], [0.1, 0.5, 0.8])},
            "vade": {"0": seed_run([0.5, 0.5, 0.5], [0.9, 0.7, 0.6], [0.1, 0.3, 0.4])},
        },
    }


def test_key_classes_give_each_pool_row_a_class_and_each_class_its_seed_spread(tmp_path):
    loaded = calibrate.load_real_run(_write(tmp_path, _class_run()))
    assert loaded.row_classes.tolist() == ["easy", "hard", "easy", "hard"]
    assert loaded.classes == ["easy", "hard"]
    np.testing.assert_allclose(loaded.class_accuracy["random"]["hard"], [0.1, 0.4, 0.7])
    np.testing.assert_allclose(loaded.class_accuracy["vade"]["easy"], [0.9, 0.7, 0.6])
    # easy: variances (ddof 1) of [0.9, 0.8] and [0.8, 0.9] are 0.005 each, / 2 seeds; hard: of [0.3, 0.5]
    # and [0.6, 0.8], 0.02 each
    assert loaded.class_se["easy"] == pytest.approx(np.sqrt(0.005 / 2))
    assert loaded.class_se["hard"] == pytest.approx(np.sqrt(0.02 / 2))
    assert calibrate.measured_class_differences(loaded, "vade") == pytest.approx({"easy": 0.6 - 0.85, "hard": 0.4 - 0.7})
    # chi2 per class by hand: simulated easy gains 0, 0 against measured -0.05, -0.05 -> 2 x 0.0025 / 0.0025 = 2;
    # hard gains 0.3, 0.6 against 0.3, 0.6 -> 0
    simulated = {"easy": np.array([0.85, 0.85, 0.85]), "hard": np.array([0.15, 0.45, 0.75])}
    assert calibrate.chi2_by_class(loaded, simulated) == pytest.approx(2.0)


def test_bad_key_classes_are_named(tmp_path):
    run = _class_run()
    run["task"]["key_classes"] = ["easy", "hard"]  # key 2 has no class
    with pytest.raises(ValueError, match="key_classes has no class"):
        calibrate.load_real_run(_write(tmp_path, run))
    run = _class_run()
    run["arms"]["random"]["1"]["val_accuracy_by_class"]["hard"] = [0.1, 0.3]
    with pytest.raises(ValueError, match=r"arms.random: val_accuracy_by_class.hard needs 3"):
        calibrate.load_real_run(_write(tmp_path, run))
    run = _class_run()
    run["arms"]["random"]["1"]["val_accuracy_by_class"] = run["arms"]["random"]["0"]["val_accuracy_by_class"]
    with pytest.raises(ValueError, match=r"agree exactly on class\(es\) \['easy', 'hard'\]"):
        calibrate.load_real_run(_write(tmp_path, run))
    run = _class_run()
    del run["arms"]["random"]["1"]  # one seed: no spread, so no per-class error
    run["accuracy_se"] = 0.05
    assert calibrate.load_real_run(_write(tmp_path, run)).class_se is None
    assert calibrate.main([_write(tmp_path, run), "--by-class"]) == 2
    assert calibrate.main([_write(tmp_path, _tiny_run([0.5, 0.6, 0.7])), "--by-class"]) == 2


def test_the_observed_class_means_average_to_the_pool_mean(tmp_path):
    """``simulated_class_curves``: the row-weighted mean of the class curves is the pool's curve, and
    observing does not change the run (its all-key curve is ``simulated_curves``')."""
    rng = np.random.default_rng(3)
    run = _class_run()
    run["task"] = {"pool_solve_probs": rng.uniform(0.05, 0.95, 12).tolist(), "pool_keys": (np.arange(12) % 3).tolist(),
                   "key_classes": ["easy", "hard", "easy"]}
    loaded = calibrate.load_real_run(_write(tmp_path, run))
    point = dict(dynamics="per-step", learn=1.0, transfer=0.01, forget=0.0, family=0.0)
    curves = calibrate.simulated_class_curves(loaded, point, "random", [0, 1], ["easy", "hard"])
    np.testing.assert_allclose((8 * curves["easy"] + 4 * curves["hard"]) / 12, curves["all"])
    np.testing.assert_array_equal(curves["all"], calibrate.simulated_curves(loaded, point, "random", [0, 1]))
    assert not np.allclose(curves["easy"], curves["hard"])


def test_the_by_class_fit_recovers_the_dynamics_that_made_the_class_curves(tmp_path, monkeypatch):
    probs = np.r_[np.full(24, 0.95), np.random.default_rng(4).uniform(0.1, 0.6, 40)]
    classes = np.array(["solved"] * 24 + ["learnable"] * 40)
    truth = dict(dynamics="per-step", learn=1.0, transfer=0.01, forget=0.003, family=0.0)
    measured = {"solved": [], "learnable": []}
    for seed in (0, 1):
        config = SimConfig(num_samples=64, batch_size=8, group_size=4, steps=30, seed=seed, samplers=("random",), **truth)
        records = simulate(config, z0=logit(probs), observe=lambda pop: {c: pop.probs()[classes == c].mean() for c in measured})["random"]
        for c in measured:
            measured[c].append([probs[classes == c].mean()] + [records[s - 1][c] for s in (10, 20, 30)])
    noise = {"solved": [0.0, 0.002, -0.002, 0.002], "learnable": [0.0, -0.004, 0.004, -0.004]}  # seed spread, mean 0
    runs = {str(seed): {"val_rollouts": [0, 320, 640, 960], "val_accuracy": [0.5] * 4,
                        "val_accuracy_by_class": {c: (np.mean(measured[c], axis=0) + sign * np.array(noise[c])).tolist() for c in measured}}
            for seed, sign in (("0", 1), ("1", -1))}
    data = {"config": {"batch_size": 8, "group_size": 4}, "accuracy_se": 0.01,
            "task": {"pool_solve_probs": probs.tolist(), "pool_keys": list(range(64)), "key_classes": classes.tolist()},
            "arms": {"random": runs}}
    run = calibrate.load_real_run(_write(tmp_path, data))
    monkeypatch.setitem(calibrate.GRIDS, "per-step", {"learn": np.array([0.3, 1.0, 3.0]), "transfer": np.array([0.0, 0.01])})
    monkeypatch.setattr(calibrate, "FORGET_GRID", np.array([0.0, 0.003, 0.03]))
    scored = calibrate.fit(run, "per-step", [0, 1], by_class=True, fit_forget=True)
    assert len(scored) == 3 * 2 * 3
    best_chi2, best = scored[0]
    assert (best["learn"], best["transfer"], best["forget"]) == (1.0, 0.01, 0.003)
    assert best_chi2 == pytest.approx(0.0, abs=1e-18)
    assert scored[1][0] > 1.0


def test_the_command_reports_the_prediction_per_class(tmp_path, monkeypatch, capsys):
    for kind in calibrate.GRIDS:
        monkeypatch.setitem(calibrate.GRIDS, kind, {"learn": np.array([0.5, 2.0]), "transfer": np.array([0.0])})
    monkeypatch.setitem(calibrate.GRIDS, "family", {"learn": np.array([0.5]), "family": np.array([0.5]), "transfer": np.array([0.0])})
    out = tmp_path / "reports.json"
    assert calibrate.main([_write(tmp_path, _class_run()), "--dynamics", "per-step", "--arms", "vade", "--seeds", "2",
                           "--by-class", "--json", str(out)]) == 0
    report = json.loads(out.read_text())[0]
    assert sorted(report["prediction"]["vade"]["by_class"]) == ["easy", "hard"]
    assert report["evaluations"] == 4  # 2 evaluations after the start x 2 classes
    text = capsys.readouterr().out
    # measured vade - random at the end: easy 0.6 - 0.85 = -0.250, hard 0.4 - 0.7 = -0.300
    assert "per key class" in text and "| -0.250" in text and "| -0.300" in text
