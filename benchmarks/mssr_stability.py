"""CPU stability check: single-rollout training with and without MSSR's entropy shaping on a tiny policy.

    python benchmarks/mssr_stability.py [--seeds 32] [--steps 300] [--kl-coef 0.01] [--png out.png]

A tiny autoregressive torch policy (shared prompt/token embeddings and an MLP, so prompts interfere as in
an LLM) answers P prompts with L tokens from a vocabulary of V; the verifiable reward is 1 when at least
``--need`` of the L tokens match the prompt's hidden target.  Both arms use one rollout per prompt, the
tracked per-prompt Beta baseline as the package runs it (warm start: one rollout of every prompt by the
initial policy before training; this step's KL to the frozen initial policy, as the verl adapter's
``old_log_probs`` vs ``ref_log_prob``, enters the window before the step's rho), batch-normalised ``r - v``
and a low-variance KL loss; they differ only in the shaping ``A' = A + min(alpha * H, |A| / kappa)``
(MVSR: alpha = 0; MSSR: alpha = 0.4, kappa = 2, H the full-vocabulary entropy of the rollout policy, or
``--entropy sampled``).  Everything is the package's own math (``vade_verl.mssr.advantage``); the same seed gives
both arms the same prompts, initial weights and warm-start rollouts, so the arms are compared seed by seed.

Printed: per-window means over seeds of the batch reward and the mean token entropy, an ASCII figure of
both curves, and per arm the mean and standard deviation over seeds of the last fifth's reward and
entropy and of the share of prompts whose greedy answer is locked in (probability > 0.99) and wrong, i.e.
collapsed onto a failure it can no longer explore away from; then the paired difference MSSR - MVSR with
a 95% t interval over seeds.
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import numpy as np
import scipy
import torch
from scipy import stats

from vade_verl.mssr.advantage import (
    ENTROPY_SOURCES,
    RHO_SCHEDULES,
    MSSRBaselineConfig,
    MSSRBaselineState,
    baseline_advantages,
    full_vocab_entropy,
    sampled_token_entropy,
    sequence_mean_kl,
    shape_advantages,
)


class TinyPolicy(torch.nn.Module):
    """logits_t = MLP(prompt_emb + prev_token_emb + position_emb)."""

    def __init__(self, prompts: int, vocab: int, length: int, dim: int = 16, hidden: int = 32):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.prompt = torch.nn.Embedding(prompts, dim)
        self.token = torch.nn.Embedding(vocab + 1, dim)  # index `vocab` is the start token
        self.position = torch.nn.Embedding(length, dim)
        self.head = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, vocab))

    def log_probs(self, prompts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Per-position log-softmax over the vocabulary for given tokens (teacher forcing): (B, L, V)."""
        prev = torch.cat([torch.full_like(tokens[:, :1], self.vocab), tokens[:, :-1]], dim=1)
        h = self.prompt(prompts)[:, None, :] + self.token(prev) + self.position.weight[None]
        return torch.log_softmax(self.head(h), dim=-1)

    @torch.no_grad()
    def generate(self, prompts: torch.Tensor, greedy: bool = False) -> torch.Tensor:
        tokens = torch.zeros(prompts.shape[0], self.length, dtype=torch.long)
        for t in range(self.length):
            logp = self.log_probs(prompts, tokens)[:, t]
            tokens[:, t] = logp.argmax(-1) if greedy else torch.multinomial(logp.exp(), 1).squeeze(1)
        return tokens


def reward_of(tokens: torch.Tensor, target: torch.Tensor, need: int) -> torch.Tensor:
    return ((tokens == target).sum(1) >= need).float()


def run(args, alpha: float, seed: int) -> dict:
    """One training run; returns per-step reward/entropy and the end-of-run collapse share."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    policy = TinyPolicy(args.prompts, args.vocab, args.length)
    reference = copy.deepcopy(policy).requires_grad_(False)
    optim = torch.optim.Adam(policy.parameters(), lr=args.lr)
    target = torch.as_tensor(rng.integers(0, args.vocab, size=(args.prompts, args.length)))
    state = MSSRBaselineState(args.prompts, MSSRBaselineConfig(rho_schedule=args.rho_schedule))
    if args.init == "warm_start":  # the initial policy answers every prompt once before training
        everyone = torch.arange(args.prompts)
        state.initialise(everyone.numpy(), reward_of(policy.generate(everyone), target, args.need).numpy())
    reward_curve, entropy_curve = [], []
    for _ in range(args.steps):
        prompts = torch.as_tensor(rng.choice(args.prompts, args.batch, replace=False))
        tokens = policy.generate(prompts)  # n = 1: one rollout per prompt
        rewards = reward_of(tokens, target[prompts], args.need)
        logp_all = policy.log_probs(prompts, tokens)
        log_prob = logp_all.gather(-1, tokens[..., None]).squeeze(-1)
        ref_log_prob = reference.log_probs(prompts, tokens).gather(-1, tokens[..., None]).squeeze(-1)
        mask = torch.ones_like(log_prob)
        baselines = torch.as_tensor(state.values(prompts.numpy()), dtype=torch.float32)
        adv, _ = baseline_advantages(rewards, baselines, mask)
        full_entropy = full_vocab_entropy(logp_all)
        if alpha > 0:
            entropy = full_entropy if args.entropy == "full_vocab" else sampled_token_entropy(log_prob)
            adv = shape_advantages(adv, entropy, alpha=alpha, kappa=args.kappa)
        diff = ref_log_prob - log_prob  # low-variance (k3) KL estimator, as verl's low_var_kl
        kl = torch.exp(diff) - diff - 1
        loss = -(adv * log_prob).mean() + args.kl_coef * kl.mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        state.observe_kl(sequence_mean_kl(kl.detach(), mask))
        state.update(prompts.numpy(), rewards.numpy(), state.current_rho())
        reward_curve.append(rewards.mean().item())
        entropy_curve.append(full_entropy.mean().item())
    everyone = torch.arange(args.prompts)
    with torch.no_grad():
        greedy = policy.generate(everyone, greedy=True)
        greedy_prob = policy.log_probs(everyone, greedy).max(-1).values.sum(-1).exp()
    wrong = (greedy == target).sum(1) < args.need
    return {
        "reward": np.array(reward_curve),
        "entropy": np.array(entropy_curve),
        "collapsed_wrong": float(((greedy_prob > 0.99) & wrong).float().mean()),
        "greedy_solved": float((~wrong).float().mean()),
    }


def ascii_figure(curves: dict, width: int = 60, height: int = 12, title: str = "") -> str:
    """Plot each named curve (same length) with its own marker on a shared y axis."""
    values = np.concatenate(list(curves.values()))
    lo, hi = float(values.min()), float(values.max())
    hi = hi if hi > lo else lo + 1.0
    grid = [[" "] * width for _ in range(height)]
    for marker, curve in zip("o+x*", curves.values()):
        cols = np.linspace(0, len(curve) - 1, width).astype(int)
        for c, i in enumerate(cols):
            row = int(round((hi - curve[i]) / (hi - lo) * (height - 1)))
            grid[row][c] = marker if grid[row][c] in (" ", marker) else "#"
    lines = [title] if title else []
    for r, row in enumerate(grid):
        label = hi - (hi - lo) * r / (height - 1)
        lines.append(f"{label:7.3f} |" + "".join(row))
    lines.append(" " * 8 + "+" + "-" * width + "  (training steps ->)")
    lines.append(" " * 9 + "   ".join(f"{m} {name}" for m, name in zip("o+x*", curves)) + "   # overlap")
    return "\n".join(lines)


def smooth(curve: np.ndarray, k: int = 15) -> np.ndarray:
    return np.convolve(curve, np.ones(k) / k, mode="valid")


METRICS = {"reward": "reward, last fifth", "entropy": "entropy (nats), last fifth",
           "collapsed_wrong": "prompts locked on a wrong answer"}


def per_seed(runs: list, tail: int) -> dict:
    """Each run's summary numbers: last-``tail``-step means of the curves, end-of-run shares."""
    return {
        "reward": np.array([r["reward"][-tail:].mean() for r in runs]),
        "entropy": np.array([r["entropy"][-tail:].mean() for r in runs]),
        "collapsed_wrong": np.array([r["collapsed_wrong"] for r in runs]),
    }


def paired_interval(diff: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of per-seed differences."""
    if diff.size < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, diff.size - 1) * diff.std(ddof=1) / np.sqrt(diff.size)
    return float(diff.mean() - half), float(diff.mean() + half)


def library_versions() -> str:
    """The stack the numbers come from (the table in docs/mssr.md names it)."""
    return (f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
            f"scipy {scipy.__version__}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=8)
    parser.add_argument("--length", type=int, default=4)
    parser.add_argument("--need", type=int, default=3, help="matching tokens needed for reward 1")
    parser.add_argument("--alpha", type=float, default=0.4)
    parser.add_argument("--kappa", type=float, default=2.0)
    parser.add_argument("--entropy", choices=ENTROPY_SOURCES, default="full_vocab")
    parser.add_argument("--rho-schedule", choices=RHO_SCHEDULES, default="continuous")
    parser.add_argument("--init", choices=("warm_start", "first_visit"), default="warm_start")
    parser.add_argument("--kl-coef", type=float, default=0.01, help="KL loss coefficient (the paper's 0.01)")
    parser.add_argument("--window", type=int, default=30, help="steps per row of the printed table")
    parser.add_argument("--png", default=None, help="also save the curves with matplotlib")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    print(library_versions())
    start = time.time()
    arms = {"MVSR (no shaping)": 0.0, f"MSSR (alpha={args.alpha})": args.alpha}
    results = {name: [run(args, alpha, seed) for seed in range(args.seeds)] for name, alpha in arms.items()}
    mean = {name: {k: np.mean([r[k] for r in runs], axis=0) for k in runs[0]} for name, runs in results.items()}

    print(f"single-rollout tiny policy: {args.seeds} seeds x {args.steps} steps, lr {args.lr}, KL loss {args.kl_coef}, "
          f"{args.prompts} prompts, batch {args.batch}, reward = >= {args.need}/{args.length} tokens right, "
          f"H = {args.entropy}, rho {args.rho_schedule}, init {args.init}")
    names = list(arms)
    print(f"{'steps':>9} | " + " | ".join(f"{n[:4]} reward  {n[:4]} entropy" for n in names))
    for s in range(0, args.steps, args.window):
        window = slice(s, s + args.window)
        cells = [f"{mean[n]['reward'][window].mean():11.3f}  {mean[n]['entropy'][window].mean():12.3f}" for n in names]
        print(f"{s:4d}-{min(s + args.window, args.steps) - 1:<4d} | " + " | ".join(cells))
    print()
    print(ascii_figure({n: smooth(mean[n]["reward"]) for n in names}, title="batch reward (mean over seeds, smoothed)"))
    print()
    print(ascii_figure({n: smooth(mean[n]["entropy"]) for n in names}, title="mean token entropy (nats)"))
    print()
    tail = max(1, args.steps // 5)
    seeds = {n: per_seed(results[n], tail) for n in names}
    summary = {}
    print(f"per arm, mean +- standard deviation over {args.seeds} seeds (last {tail} steps for the curves):")
    for n in names:
        summary[n] = {k: float(v.mean()) for k, v in seeds[n].items()}
        summary[n]["collapsed_runs"] = int((seeds[n]["collapsed_wrong"] > 0.5).sum())
        cells = ", ".join(f"{label} {seeds[n][k].mean():.3f} +- {seeds[n][k].std(ddof=1) if args.seeds > 1 else 0:.3f}"
                          for k, label in METRICS.items())
        print(f"  {n:22s} {cells}; collapsed runs (> half locked wrong) {summary[n]['collapsed_runs']}/{args.seeds}")
    plain, shaped = names
    print(f"paired difference {shaped[:4]} - {plain[:4]} (same seed), mean [95% t interval], seeds where {shaped[:4]} is higher:")
    for k, label in METRICS.items():
        diff = seeds[shaped][k] - seeds[plain][k]
        lo, hi = paired_interval(diff)
        summary[f"diff_{k}"] = (float(diff.mean()), lo, hi)
        print(f"  {label:34s} {diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]  higher in {int((diff > 0).sum())}/{diff.size}")
    print(f"({time.time() - start:.0f} s on CPU)")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for n in names:
            axes[0].plot(smooth(mean[n]["reward"]), label=n)
            axes[1].plot(smooth(mean[n]["entropy"]), label=n)
        axes[0].set_title("batch reward")
        axes[1].set_title("token entropy")
        axes[0].legend()
        fig.savefig(args.png, dpi=120, bbox_inches="tight")
        print(f"figure saved to {args.png}")
    return summary


if __name__ == "__main__":
    main()
