"""GRESO, the math only (Zheng et al., arXiv 2506.02177; numpy, no verl import; the verl adapter is ``vade_verl.greso.sampler``).

From the authors' code (github.com/Infini-AI-Lab/GRESO, ``verl/trainer/ttis/presampling_selector.py``
and ``verl/trainer/ppo/ray_trainer.py``): before rollout, a prompt whose last ``k`` groups were all
correct is skipped with probability ``1 - max(p_easy^k, 0.01)``, one whose last ``k`` groups were all
wrong with ``1 - max(p_hard^k, 0.01)`` (``easy_probabilistic_skip``, ``hard_probabilistic_skip``).
After each training step (from the second epoch on) ``p_easy`` and ``p_hard`` move by 0.01 within
[0.05, 0.95] toward target shares of all-correct and hard groups among the step's rolled-out prompts
(``target_zero_variance / 3`` and ``2 target_zero_variance / 3``, ``ray_trainer.py:298-299, 1203-1219``).
The authors' trainer also filters the rolled-out groups like DAPO and refills with shrinking sampling
batches; the simulator models that loop (``vade_verl.sim.peer_samplers.greso_fill``), the verl sampler
cannot (docs/greso.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vade_verl.vade.algorithm import PermutationStream

# The reward the GRESO authors' scorer gives a formatted but wrong answer (their "hard" groups, metric_utils.py:205).
FORMATTED_WRONG_SCORE = 0.1
HARD_SHARES = ("no_correct", "all_0.1")


@dataclasses.dataclass(frozen=True)
class GRESOParams:
    """GRESO's knobs; defaults from the authors' ``train-scripts/math_qwen_1_5b_dm_greso.sh``
    (``p_easy = p_hard = 0.5``, ``target_zero_variance = 0.25``) and ``ray_trainer.py`` (step 0.01,
    bounds [0.05, 0.95], keep probability at least 0.01)."""

    p_easy: float = 0.5
    p_hard: float = 0.5
    target_zero_variance: float = 0.25
    step: float = 0.01
    p_min: float = 0.05
    p_max: float = 0.95
    min_keep: float = 0.01


class GRESOState:
    """Per prompt, the number of most recent consecutive all-correct (easy) or all-wrong (hard)
    groups, and the adaptive exploration probabilities ``p_easy`` and ``p_hard``."""

    def __init__(self, num_samples: int, config: GRESOParams = GRESOParams()):
        for name in ("p_easy", "p_hard", "target_zero_variance"):
            if not 0.0 <= getattr(config, name) <= 1.0:
                raise ValueError(f"GRESO {name}={getattr(config, name)} must be in [0, 1]")
        self.config = config
        self.easy_streak = np.zeros(num_samples, dtype=np.int64)
        self.hard_streak = np.zeros(num_samples, dtype=np.int64)
        self.p_easy, self.p_hard = config.p_easy, config.p_hard

    def keep_probability(self, positions: np.ndarray) -> np.ndarray:
        """``max(p^k, min_keep)`` with ``k`` the easy (else hard) streak; 1 for a prompt without one."""
        easy, hard = self.easy_streak[positions], self.hard_streak[positions]
        floor = self.config.min_keep
        return np.where(
            easy > 0,
            np.maximum(self.p_easy**easy, floor),
            np.where(hard > 0, np.maximum(self.p_hard**hard, floor), 1.0),
        )

    def extend_streaks(self, positions: np.ndarray, all_correct: np.ndarray, all_wrong: np.ndarray) -> None:
        """One new group per (distinct) position: extend its easy or hard streak, reset the other."""
        self.easy_streak[positions] = np.where(all_correct, self.easy_streak[positions] + 1, 0)
        self.hard_streak[positions] = np.where(all_wrong, self.hard_streak[positions] + 1, 0)

    def record(self, positions: np.ndarray, rewards: np.ndarray, group_size: int) -> None:
        """Extend the streaks with one group per position (binary rewards, grouped per prompt)."""
        grouped = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
        self.extend_streaks(positions, grouped.min(axis=1) >= 1.0, grouped.max(axis=1) <= 0.0)

    def adapt(self, easy_share: float, hard_share: float) -> None:
        """Move ``p_easy``/``p_hard`` one step down when their share reached its target, else up."""
        c = self.config

        def moved(p: float, share: float, target: float) -> float:
            return max(p - c.step, c.p_min) if share >= target else min(p + c.step, c.p_max)

        self.p_easy = moved(self.p_easy, easy_share, c.target_zero_variance / 3.0)
        self.p_hard = moved(self.p_hard, hard_share, 2.0 * c.target_zero_variance / 3.0)


def group_outcomes(positions: np.ndarray, correctness: np.ndarray, scores: np.ndarray, hard_share: str) -> dict:
    """Per distinct position with at least one valid rollout: all correct? none correct? hard for the share?

    ``correctness`` in [0, 1] per rollout (NaN skipped); a group is all correct when every valid rollout
    is 1, none correct when every one is 0 (the authors' skip rule: mean reward >= 0.98, <= 0.11 with
    their 1 / 0.1 / 0 rewards and 8 rollouts). ``hard_share`` picks what counts as hard for the
    adaptation: "no_correct" (the same groups) or "all_0.1" (every valid rollout's verl ``score`` is
    0.1, the authors' ``format_example_ratio``, ``metric_utils.py:205``).
    """
    if hard_share not in HARD_SHARES:
        raise ValueError(f"unknown GRESO hard share {hard_share!r}; expected one of {HARD_SHARES}")
    positions = np.asarray(positions, dtype=np.int64)
    valid = ~np.isnan(correctness)
    samples, inverse = np.unique(positions, return_inverse=True)
    trials = np.bincount(inverse, weights=valid.astype(np.float64), minlength=samples.size)
    successes = np.bincount(inverse, weights=np.where(valid, correctness, 0.0), minlength=samples.size)
    failures = np.bincount(inverse, weights=np.where(valid, 1.0 - correctness, 0.0), minlength=samples.size)
    has = trials > 0
    all_correct = successes >= trials
    no_correct = failures >= trials
    if hard_share == "all_0.1":
        formatted_wrong = valid & np.isclose(scores, FORMATTED_WRONG_SCORE, rtol=0.0, atol=1e-6)
        hard = np.bincount(inverse, weights=formatted_wrong.astype(np.float64), minlength=samples.size) >= trials
    else:
        hard = no_correct
    return {"positions": samples[has], "all_correct": all_correct[has], "no_correct": no_correct[has], "hard": hard[has]}


class GRESOSelector:
    """GRESO's pre-rollout skip over a whole dataset, as the verl sampler runs it.

    ``select(B)`` walks a seeded permutation of the dataset epoch after epoch (the authors' shuffled
    loader) and keeps each candidate with ``GRESOState.keep_probability`` until ``B`` are kept; a
    candidate already kept in this batch (the walk crossed an epoch boundary) is passed over and
    counted in ``last_selection["repeats"]``. ``update`` extends the streaks with the batch's groups
    and, when the batch was drawn after the first epoch, adapts ``p_easy``/``p_hard`` to the batch's
    shares (the authors adapt ``if epoch > 0``, ``ray_trainer.py:1207``).
    """

    def __init__(self, num_samples: int, params: GRESOParams, *, hard_share: str, seed: int):
        if hard_share not in HARD_SHARES:
            raise ValueError(f"unknown GRESO hard share {hard_share!r}; expected one of {HARD_SHARES}")
        self.num_samples = int(num_samples)
        self.streaks = GRESOState(self.num_samples, params)
        self.hard_share = hard_share
        self.rng = np.random.default_rng(seed)
        self.candidates = PermutationStream(self.num_samples)
        self.num_selections = 0
        self.num_updates = 0
        self.last_selected = np.zeros(0, dtype=np.int64)
        self.selection_epoch = 0
        self.last_selection = {"examined": 0, "skipped_easy": 0, "skipped_hard": 0, "repeats": 0}

    def select(self, b: int) -> np.ndarray:
        """``b`` distinct positions that passed the skip test, in the order they were drawn."""
        if not 0 < b <= self.num_samples:
            raise ValueError(f"batch size {b} must be in 1..{self.num_samples} (the number of samples)")
        kept: list = []
        counts = dict.fromkeys(self.last_selection, 0)
        while len(kept) < b:
            drawn = self.candidates.take(b - len(kept), self.rng)
            fresh = np.zeros(drawn.size, dtype=bool)
            fresh[np.unique(drawn, return_index=True)[1]] = True
            fresh &= ~np.isin(drawn, kept)
            counts["repeats"] += int((~fresh).sum())
            chunk = drawn[fresh]
            keep = self.rng.random(chunk.size) < self.streaks.keep_probability(chunk)
            easy = self.streaks.easy_streak[chunk] > 0
            counts["examined"] += int(chunk.size)
            counts["skipped_easy"] += int((~keep & easy).sum())
            counts["skipped_hard"] += int((~keep & ~easy).sum())
            kept.extend(chunk[keep].tolist())
        chosen = np.asarray(kept, dtype=np.int64)
        self.num_selections += 1
        self.last_selected = chosen
        self.selection_epoch = self.candidates.epochs
        self.last_selection = counts
        return chosen

    def update(self, positions: np.ndarray, correctness: np.ndarray, scores: np.ndarray) -> dict:
        """Feed back one step's rollouts (one entry per rollout); returns the record ``apply`` replays."""
        outcome = group_outcomes(positions, correctness, scores, self.hard_share)
        groups = outcome["positions"].size
        record = {
            **outcome,
            "easy_share": float(outcome["all_correct"].mean()) if groups else np.nan,
            "hard_share": float(outcome["hard"].mean()) if groups else np.nan,
            "adapt": bool(self.selection_epoch > 1 and groups),
        }
        self.apply(record)
        return record

    def apply(self, record: dict) -> None:
        """Extend the streaks by the record's groups and adapt the probabilities where it says so."""
        self.streaks.extend_streaks(np.asarray(record["positions"], dtype=np.int64), record["all_correct"], record["no_correct"])
        if bool(record["adapt"]):
            self.streaks.adapt(float(record["easy_share"]), float(record["hard_share"]))
        self.num_updates += 1

    def empty_record(self) -> dict:
        none = np.zeros(0, dtype=bool)
        return {"positions": np.zeros(0, dtype=np.int64), "all_correct": none, "no_correct": none, "hard": none,
                "easy_share": np.nan, "hard_share": np.nan, "adapt": False}

    def state_dict(self) -> dict:
        return {
            "easy_streak": self.streaks.easy_streak.copy(),
            "hard_streak": self.streaks.hard_streak.copy(),
            "p_easy": self.streaks.p_easy,
            "p_hard": self.streaks.p_hard,
            "rng": self.rng.bit_generator.state,
            "num_selections": self.num_selections,
            "num_updates": self.num_updates,
            "last_selected": self.last_selected.copy(),
            "selection_epoch": self.selection_epoch,
            "last_selection": dict(self.last_selection),
            **self.candidates.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if np.shape(state["easy_streak"]) != (self.num_samples,):
            raise ValueError(
                f"GRESO state is for {np.shape(state['easy_streak'])[0]} samples but the dataset has {self.num_samples}: "
                "resume with the same training files and filtering"
            )
        self.streaks.easy_streak = np.array(state["easy_streak"], dtype=np.int64)
        self.streaks.hard_streak = np.array(state["hard_streak"], dtype=np.int64)
        self.streaks.p_easy, self.streaks.p_hard = float(state["p_easy"]), float(state["p_hard"])
        self.rng.bit_generator.state = state["rng"]
        self.num_selections = int(state["num_selections"])
        self.num_updates = int(state["num_updates"])
        self.last_selected = np.array(state["last_selected"], dtype=np.int64)
        self.selection_epoch = int(state["selection_epoch"])
        self.last_selection = dict(state["last_selection"])
        self.candidates.load_state_dict(state)
