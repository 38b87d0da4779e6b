"""Time one ``select`` + ``update`` of a selector at growing dataset sizes: VADE
(``vade_verl.vade.algorithm.VADEState``), MoPPS (``vade_verl.mopps.algorithm.MoPPSSelector``), GRESO
(``vade_verl.greso.algorithm.GRESOSelector``), each as its verl sampler runs it.

Usage (one core, as the README reports it)::

    taskset -c 0 python benchmarks/bench_select_update.py            # VADE, N = 1e4 .. 1e7, B = 512, G = 8
    taskset -c 0 python benchmarks/bench_select_update.py --sizes 1e6 --repeats 50
    taskset -c 0 python benchmarks/bench_select_update.py --selectors vade,mopps,greso --sizes 1e6

Two posterior states per size:

* ``fresh``: no sample updated yet (alpha = beta = 0), the state of most of a large dataset for a
  long time: with B = 512 a 10^7-sample set takes 19,532 steps to see every sample once.
* ``half``: half the samples seen; of those a quarter so far always wrong (alpha = 0), a quarter
  always right (beta = 0), half with both counts uniform in [0, 10] (l1 = 0.2 with G = 8 keeps
  each count below G / (1 - l1) = 10). Roughly a long run on a set like the simulator's mm-math.
* ``warm``: every sample has both counts uniform in [0, 10]: the worst case, every draw is a
  general Beta draw (numpy's gamma-ratio sampler).

MoPPS gets the same counts (its posteriors are VADE's in count notation; MoPPS draws only for its
8 B candidates); GRESO gets, per seen sample, an all-wrong streak where ``alpha = 0``, an all-correct
streak where ``beta = 0`` (lengths 1-3) and none otherwise, with ``p_easy = p_hard = 0.5``.

``wall ms`` is the median (and minimum) wall time of ``select(B)`` followed by ``update`` with B*G
binary rewards, over ``--repeats`` steps after one warm-up step; ``CPU ms`` is the median CPU
time of this thread over the same steps (on a shared machine, wall time also counts the time
other processes held the core). Memory: ``state B/sample`` is the
bytes held by the state's arrays (VADE: alpha, beta, seen; MoPPS: alpha, beta and the candidate
permutation; GRESO: two streak counts and the candidate permutation); ``peak B/sample`` is the peak of Python-traced
allocations (``tracemalloc``, which sees numpy's buffers) during one step, on top of the state,
divided by N; ``total`` is their sum. The pure math only: the verl adapter's own per-update metrics
(``vade_verl.vade.sampler.VADESampler.update``) are timed by ``--adapter``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc

import numpy as np

from vade_verl.greso.algorithm import GRESOParams, GRESOSelector
from vade_verl.mopps.algorithm import MoPPSSelector
from vade_verl.vade.algorithm import VADEState


STATES = ("fresh", "half", "warm")
SELECTORS = ("vade", "mopps", "greso")


def make_state(n: int, kind: str, seed: int = 0) -> VADEState:
    """A posterior state of ``kind`` (see the module docstring)."""
    if kind not in STATES:
        raise ValueError(f"unknown state {kind!r}; choose from {STATES}")
    state = VADEState(n, l1=0.2, l2=0.999, score="infogain", selection="thompson", seed=seed)
    rng = np.random.default_rng(seed + 1)
    seen_share = {"fresh": 0.0, "half": 0.5, "warm": 1.0}[kind]
    seen = rng.random(n) < seen_share
    state.alpha[seen] = 10.0 * rng.random(int(seen.sum()))
    state.beta[seen] = 10.0 * rng.random(int(seen.sum()))
    if kind == "half":  # of the seen: a quarter always wrong so far, a quarter always right
        kind_of_seen = rng.integers(0, 4, n)
        state.alpha[seen & (kind_of_seen == 0)] = 0.0
        state.beta[seen & (kind_of_seen == 1)] = 0.0
    state.seen[:] = seen
    return state


def make_selector(name: str, n: int, kind: str, seed: int = 0):
    """The selector ``name`` over ``n`` samples in the posterior state ``kind`` (module docstring)."""
    vade = make_state(n, kind, seed)
    if name == "vade":
        return vade
    if name == "mopps":
        selector = MoPPSSelector(n, candidates=8, decay=0.5, target=0.5, seed=seed)
        selector.posteriors.alpha, selector.posteriors.beta = vade.alpha, vade.beta
        return selector
    if name == "greso":
        selector = GRESOSelector(n, GRESOParams(), hard_share="no_correct", seed=seed)
        lengths = np.random.default_rng(seed + 2).integers(1, 4, n)
        selector.streaks.hard_streak[:] = np.where(vade.seen & (vade.alpha == 0), lengths, 0)
        selector.streaks.easy_streak[:] = np.where(vade.seen & (vade.beta == 0), lengths, 0)
        return selector
    raise ValueError(f"unknown selector {name!r}; choose from {SELECTORS}")


def held_bytes(state) -> int:
    """Bytes of the arrays in the selector's state (what a checkpoint holds)."""
    return sum(value.nbytes for value in state.state_dict().values() if isinstance(value, np.ndarray))


def one_step(state, b: int, g: int, rng: np.random.Generator) -> None:
    chosen = state.select(b)
    positions, rewards = np.repeat(chosen, g), (rng.random(b * g) < 0.5).astype(np.float64)
    if isinstance(state, GRESOSelector):
        state.update(positions, rewards, rewards)
    else:
        state.update(positions, rewards)


def time_steps(state, b: int, g: int, repeats: int):
    """Wall and CPU (this thread) milliseconds per step."""
    rng = np.random.default_rng(1)
    one_step(state, b, g, rng)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        one_step(state, b, g, rng)
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    return 1e3 * np.array(wall), 1e3 * np.array(cpu)


def peak_step_bytes(state, b: int, g: int) -> int:
    rng = np.random.default_rng(2)
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    one_step(state, b, g, rng)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - base


def adapter_update_ms(n: int, b: int, g: int, repeats: int) -> float:
    """Median ms of ``VADESampler`` select + ``update(batch=DataProto)`` (imports verl)."""
    from omegaconf import OmegaConf

    from vade_verl.sim.simulate import SimDataset, loader_batches
    from vade_verl.vade.sampler import VADESampler
    from vade_verl.verl_adapters.batch import build_rollout_batch

    import torch

    sampler = VADESampler(SimDataset(n), OmegaConf.create({"train_batch_size": b, "seed": 1}))
    batches = loader_batches(sampler, b)
    rng = np.random.default_rng(3)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        positions = next(batches)
        select_s = time.perf_counter() - start
        batch_dict = {"input_ids": torch.zeros(b, 1), "extra_info": np.array([{"index": int(i)} for i in positions], dtype=object)}
        batch = build_rollout_batch(batch_dict, g, (rng.random(b * g) < 0.5).astype(np.float64))
        start = time.perf_counter()
        sampler.update(batch=batch)
        times.append(select_s + time.perf_counter() - start)
    return float(np.median(1e3 * np.array(times[1:])))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e4,1e5,1e6,1e7", help="comma list of N")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--states", default=",".join(STATES))
    parser.add_argument("--selectors", default="vade", help=f"comma list of {SELECTORS}")
    parser.add_argument("--adapter", action="store_true", help="also time VADESampler (verl DataProto path)")
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    b, g = args.batch_size, args.group_size
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"numpy {np.__version__}, {platform.processor() or platform.machine()}, CPUs allowed {affinity}, "
          f"load average {os.getloadavg()[0]:.1f}; B={b}, G={g}, {args.repeats} timed steps")
    print(f"{'selector':>8} {'N':>10} {'state':>6} {'wall ms median':>15} {'min':>8} {'CPU ms median':>14} {'state B/sample':>15} {'peak B/sample':>14} {'total':>7}")
    for name in args.selectors.split(","):
        for n in sizes:
            for kind in args.states.split(","):
                state = make_selector(name, n, kind)
                wall, cpu = time_steps(state, b, g, args.repeats)
                held = held_bytes(state)  # after the steps: MoPPS and GRESO hold their candidate permutation by then
                peak = peak_step_bytes(state, b, g)
                print(
                    f"{name:>8} {n:>10,} {kind:>6} {np.median(wall):>15.2f} {wall.min():>8.2f} {np.median(cpu):>14.2f} "
                    f"{held / n:>15.1f} {peak / n:>14.1f} {(held + peak) / n:>7.1f}",
                    flush=True,
                )
                del state
    if args.adapter:
        for n in sizes:
            print(f"VADESampler select + update(DataProto) at N={n:,}: {adapter_update_ms(n, b, g, args.repeats):.2f} ms (median)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
