"""Independent re-derivations of DIVA-GRPO's numbers for the tests (plain numpy, loops, no project code).

``authors_advantage`` follows the authors' release step by step (GitHub Siaaaaaa1/DIVA_GRPO_release,
verl/trainer/ray_trainer.py ``_compute_difficult_adaption_advantage_difficulty`` with
``weight_mode=ZSCORENORM_WAN_RRBLOCAL_RRBGLOBAL``, verl/utils/diva_utils.py), on one reward per
response instead of their token tensors; ``paper_advantage`` is Sec. 3.3 of arXiv 2603.01106.
"""

import numpy as np

EPS = 1e-6


def grpo(rewards, groups):
    """verl's compute_grpo_outcome_advantage: (r - mean) / (unbiased std + eps) per group."""
    r = np.asarray(rewards, dtype=np.float64)
    groups = np.asarray(groups, dtype=object)
    out = np.empty_like(r)
    for g in set(groups.tolist()):
        m = groups == g
        out[m] = (r[m] - r[m].mean()) / (r[m].std(ddof=1) + EPS)
    return out


def zscore(x):
    """diva_utils.normalize_advantages: (x - mean) / std (unbiased)."""
    return (x - x.mean()) / x.std(ddof=1)


def difficulty_gaps(groups, difficulty):
    groups = np.asarray(groups, dtype=object)
    d = np.asarray(difficulty, dtype=np.float64)
    means = {g: d[groups == g].mean() for g in set(groups.tolist())}  # equal rollouts per prompt: = mean over prompts
    return d - np.array([means[g] for g in groups])


def all_below(rewards, groups, threshold):
    r = np.asarray(rewards, dtype=np.float64)
    groups = np.asarray(groups, dtype=object)
    low = {g: bool(np.all(r[groups == g] < threshold)) for g in set(groups.tolist())}
    return np.array([low[g] for g in groups])


def authors_advantage(rewards, local, problem, difficulty, k=0.1, threshold=0.15, scale=0.1, damping_scores=None):
    scores = rewards if damping_scores is None else damping_scores
    dd = difficulty_gaps(problem, difficulty)
    a_local = zscore(grpo(rewards, local))
    a_global = zscore(grpo(rewards, problem))
    a_global = a_global * np.where(a_global != 0, np.exp(k * dd * np.sign(a_global)), 1.0)  # WAN
    a_local = np.where(all_below(scores, local, threshold), a_local * scale, a_local)  # RRBLOCAL
    a_global = np.where(all_below(scores, problem, threshold), a_global * scale, a_global)  # RRBGLOBAL
    return a_local + a_global


def paper_advantage(rewards, local, problem, difficulty, k=0.1):
    dd = difficulty_gaps(problem, difficulty)
    a_global = grpo(rewards, problem)
    return zscore(grpo(rewards, local)) + zscore(a_global * np.exp(k * dd * np.sign(a_global)))


def band_delta(s):
    """The paper's right-closed bands, written out."""
    return 2 if s <= 0.05 else 1 if s <= 0.3 else 0 if s <= 0.5 else -1 if s <= 0.7 else -2


def new_difficulty(d, s):
    return int(min(9, max(1, d + band_delta(s))))
