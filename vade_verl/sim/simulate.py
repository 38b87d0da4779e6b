"""``vade-verl simulate``: selection dynamics of VADE and the samplers users pick instead, on CPU.

A population of N samples with latent solve probabilities (``vade_verl.sim.population``) is trained
for a number of steps by each sampler in turn, all from the same seed and the same initial
population. Per step a sampler picks B prompts, each gets G Bernoulli rollouts, the rewards go back
to the sampler, and the population takes a training step on the informative groups under the
chosen learning dynamics (``--dynamics``; default: the kind calibrated to verl's trainer).

VADE is fed exactly as in verl 0.7.1: ``VADESampler(data_source, data_config)`` is iterated for
indices and its ``update(batch=...)`` gets a ``DataProto`` built as ``RayPPOTrainer.fit`` builds it
(``vade_verl.verl_adapters.batch.build_rollout_batch``). verl's default sampler is rebuilt as
``create_rl_sampler`` builds it for ``data.shuffle=True`` (torchdata's ``RandomSampler`` with a
``torch.Generator`` seeded by ``data.seed``), batched with ``drop_last`` as the train loader does.

Outputs in ``--output`` (default ``outputs/simulate``): ``steps.csv`` (one row per sampler and step),
``summary.json`` (config and per-sampler summary), ``simulate.png`` (effective-gradient ratio per
step, as the paper's Fig. 1/3b; mean solve probability against cumulative rollouts and cumulative
rollouts per step, as Fig. 4; rollouts to random's final progress relative to the best reference
that knows the true p), and a summary table on stdout.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import logging
import os
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional

import numpy as np

from vade_verl.sim.baseline_samplers import (
    GenerationLimitReached,
    dapo_fill,
    dapo_kept_groups,
    outcome_variance_score,
    pass_rate_band,
    pass_rate_filter,
    true_p_batch,
    variance_aware_batch,
)
from vade_verl.vade.algorithm import top_b
from vade_verl.vade.config import VADEConfig
from vade_verl.greso.algorithm import GRESOParams, GRESOState
from vade_verl.mopps.algorithm import MoPPSState
from vade_verl.sim.peer_samplers import greso_fill
from vade_verl.sim.population import (
    CALIBRATED,
    DEFAULT_DYNAMICS,
    Dynamics,
    Population,
    informative_groups,
    initial_logits,
    rank_families,
)

logger = logging.getLogger(__name__)

CSV_FIELDS = (
    "sampler",
    "step",
    "effective_ratio",
    "groups_generated",
    "informative_generated",
    "rollouts",
    "overhead_rollouts",
    "cumulative_rollouts",
    "mean_solve_prob",
    "sampler_ms",
)


@dataclasses.dataclass
class SimConfig:
    num_samples: int = 4096
    batch_size: int = 128
    group_size: int = 8
    steps: int = 200
    seed: int = 0
    difficulty: str = "mm-math"
    dynamics: str = DEFAULT_DYNAMICS
    learn: Optional[float] = None  # None: the calibrated value of ``dynamics`` (population.CALIBRATED)
    transfer: Optional[float] = None
    forget: Optional[float] = None
    family: Optional[float] = None
    families: int = 10
    l1: float = 0.2
    l2: float = 0.999
    samplers: tuple = ()
    dapo_gen_batch_size: Optional[int] = None
    dapo_max_gen_batches: int = 10
    dapo_band_min: float = 0.2
    dapo_band_max: float = 0.8
    mopps_candidates: int = 8
    mopps_decay: float = 0.5
    mopps_target: float = 0.5
    greso_sampling_batch_size: Optional[int] = None
    greso_target_zero_variance: float = GRESOParams.target_zero_variance
    greso_max_gen_batches: int = 100
    filter_rollouts: Optional[int] = None
    filter_min_rate: float = 0.0
    filter_max_rate: float = 1.0
    mmr1_refresh_every: int = 25
    mmr1_rollouts: Optional[int] = None
    mmr1_mix: float = 0.5

    def __post_init__(self):
        self.samplers = tuple(self.samplers) or tuple(SAMPLERS)
        unknown = [s for s in self.samplers if s not in SAMPLERS]
        if unknown:
            raise ValueError(f"unknown sampler(s) {unknown}; choose from {list(SAMPLERS)}")
        for name in ("num_samples", "batch_size", "group_size", "steps", "mmr1_refresh_every", "mopps_candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.batch_size > self.num_samples:
            raise ValueError(f"--batch-size {self.batch_size} exceeds --num-samples {self.num_samples}")
        if self.greso_max_gen_batches < 1:
            raise ValueError(f"--greso-max-gen-batches must be >= 1, got {self.greso_max_gen_batches}")
        if self.dapo_max_gen_batches < 1:
            raise ValueError(
                "--dapo-max-gen-batches must be >= 1: verl's 0 (no limit) loops forever once the population "
                "has no informative prompts left"
            )
        if not 0.0 <= self.mmr1_mix <= 1.0:
            raise ValueError(f"--mmr1-mix {self.mmr1_mix} must be in [0, 1]")
        if not 0.0 <= self.filter_min_rate < self.filter_max_rate <= 1.0:
            raise ValueError("--filter-min-rate and --filter-max-rate must satisfy 0 <= min < max <= 1")
        if not 0.0 <= self.dapo_band_min <= self.dapo_band_max <= 1.0:
            raise ValueError("--dapo-band-min and --dapo-band-max must satisfy 0 <= min <= max <= 1")
        for name in ("mopps_decay", "mopps_target", "greso_target_zero_variance"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)} must be in [0, 1]")
        VADEConfig.from_mapping({"l1": self.l1, "l2": self.l2})  # errors name data.sampler.vade.l1 / l2
        if self.families < 1:
            raise ValueError(f"--families must be >= 1, got {self.families}")
        calibrated = CALIBRATED.get(self.dynamics)
        if calibrated is None:
            raise ValueError(f"unknown --dynamics {self.dynamics!r}; choose from {list(CALIBRATED)}")
        for name in ("learn", "transfer", "forget", "family"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(calibrated, name))
        self.population_dynamics()  # errors name the parameter
        self.dapo_gen_batch_size = self.dapo_gen_batch_size or 3 * self.batch_size
        self.filter_rollouts = self.filter_rollouts or self.group_size
        self.mmr1_rollouts = self.mmr1_rollouts or self.group_size
        self.greso_sampling_batch_size = self.greso_sampling_batch_size or 3 * self.batch_size // 2

    def population_dynamics(self) -> Dynamics:
        return Dynamics(self.dynamics, self.learn, self.transfer, self.forget, self.family)


@dataclasses.dataclass
class StepOutcome:
    """What a sampler did in one step; ``positions``/``rewards`` are the trained groups."""

    positions: np.ndarray
    rewards: np.ndarray
    rollouts: int
    overhead_rollouts: int
    groups_generated: int
    informative_generated: int
    sampler_seconds: float


class Environment:
    """One sampler's copy of the population and its rollout generator (same seed for every sampler)."""

    def __init__(self, config: SimConfig, z0: np.ndarray, families: Optional[np.ndarray] = None):
        self.config = config
        self.population = Population(z0, config.population_dynamics(), families)
        self.rng = np.random.default_rng([config.seed, 1])

    def rollout(self, positions: np.ndarray, group_size: Optional[int] = None) -> np.ndarray:
        return self.population.rollout(positions, group_size or self.config.group_size, self.rng)


# -- verl's samplers, built as verl builds them ---------------------------------------------------
def verl_random_sampler(num_samples: int, seed: int):
    """verl 0.7.1 ``create_rl_sampler`` with ``data.shuffle=True``: torchdata RandomSampler, seeded."""
    import torch
    from torchdata.stateful_dataloader.sampler import RandomSampler

    generator = torch.Generator()
    generator.manual_seed(seed)
    return RandomSampler(data_source=range(num_samples), generator=generator)


def loader_batches(sampler, batch_size: int) -> Iterator[np.ndarray]:
    """Batches of ``batch_size`` indices over endless epochs, ``drop_last`` as verl's train loader."""
    while True:
        epoch = iter(sampler)
        while True:
            chunk = list(itertools.islice(epoch, batch_size))
            if len(chunk) < batch_size:
                break
            yield np.asarray(chunk, dtype=np.int64)


class SimDataset:
    """What ``VADESampler`` reads from verl's ``RLHFDataset``: a frame with ``extra_info.index``."""

    def __init__(self, num_samples: int):
        import pandas as pd

        self.dataframe = pd.DataFrame({"extra_info": [{"index": i} for i in range(num_samples)]})

    def __len__(self) -> int:
        return len(self.dataframe)


# -- sampler runners: registry name -> factory(config, env) -> step() ------------------------------
SAMPLERS: Dict[str, Callable] = {}
LABELS: Dict[str, str] = {}
COLORS = {
    "random": "tab:blue",
    "true-informative": "gold",
    "true-variance": "goldenrod",
    "true-infogain": "darkkhaki",
    "true-lookahead": "peru",
    "vade": "tab:red",
    "vade-eig": "darkred",
    "vade-variance": "salmon",
    "vade-greedy": "orange",
    "vade-nodecay": "rosybrown",
    "dapo": "black",
    "dapo-band": "dimgray",
    "mopps": "tab:cyan",
    "greso": "tab:olive",
    "static-filter": "tab:green",
    "mmr1": "tab:purple",
}


def register_sampler(name: str, label: str):
    def decorator(factory):
        SAMPLERS[name] = factory
        LABELS[name] = label
        return factory

    return decorator


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _plain_step(select: Callable[[], np.ndarray], env: Environment, overhead: int = 0) -> StepOutcome:
    positions, seconds = _timed(select)
    rewards = env.rollout(positions)
    informative = int(informative_groups(rewards, env.config.group_size).sum())
    return StepOutcome(positions, rewards, rewards.size, overhead, positions.size, informative, seconds)


@register_sampler("random", "verl random (GRPO)")
def random_runner(config: SimConfig, env: Environment):
    batches = loader_batches(verl_random_sampler(config.num_samples, config.seed), config.batch_size)
    return lambda: _plain_step(lambda: next(batches), env)


def _true_p_runner(config: SimConfig, env: Environment, score: str):
    select = lambda: true_p_batch(score, env.population.probs(), config.batch_size, config.group_size)
    return lambda: _plain_step(select, env)


@register_sampler("true-informative", "true p: P(informative)")
def true_informative_runner(config, env):
    return _true_p_runner(config, env, "informative")


@register_sampler("true-variance", "true p: p(1-p)")
def true_variance_runner(config, env):
    return _true_p_runner(config, env, "variance")


@register_sampler("true-infogain", "true p: InfoGain")
def true_infogain_runner(config, env):
    return _true_p_runner(config, env, "infogain")


@register_sampler("true-lookahead", "true p: 1-step lookahead")
def true_lookahead_runner(config: SimConfig, env: Environment):
    select = lambda: top_b(env.population.lookahead_scores(config.group_size, config.batch_size), config.batch_size)
    return lambda: _plain_step(select, env)


# The references: they read the simulated policy's true p, which no real sampler can.
REFERENCES = ("true-informative", "true-variance", "true-infogain", "true-lookahead")


def _vade_runner(config: SimConfig, env: Environment, **vade_options):
    import torch
    from omegaconf import OmegaConf

    from vade_verl.vade.sampler import VADESampler
    from vade_verl.verl_adapters.batch import build_rollout_batch

    data_config = OmegaConf.create(
        {
            "train_batch_size": config.batch_size,
            "seed": config.seed,
            "sampler": {"vade": {"l1": config.l1, "l2": config.l2, **vade_options}},
        }
    )
    sampler = VADESampler(data_source=SimDataset(config.num_samples), data_config=data_config)
    batches = loader_batches(sampler, config.batch_size)
    infos = sampler.row_ids  # extra_info.index of position i is i
    placeholder = torch.zeros(config.batch_size, 1, dtype=torch.long)

    def step() -> StepOutcome:
        outcome = _plain_step(lambda: next(batches), env)
        batch_dict = {
            "input_ids": placeholder,
            "extra_info": np.array([{"index": int(i)} for i in infos[outcome.positions]], dtype=object),
        }
        batch = build_rollout_batch(batch_dict, config.group_size, outcome.rewards)
        _, seconds = _timed(sampler.update, batch=batch)
        outcome.sampler_seconds += seconds
        step.last_metrics = sampler.last_metrics
        return outcome

    return step


@register_sampler("vade", "VADE")
def vade_runner(config, env):
    return _vade_runner(config, env)


@register_sampler("vade-eig", "VADE-EIG (ours)")
def vade_eig_runner(config, env):
    return _vade_runner(config, env, variant="eig")


@register_sampler("vade-variance", "VADE, score p(1-p)")
def vade_variance_runner(config, env):
    return _vade_runner(config, env, score="variance")


@register_sampler("vade-greedy", "VADE, greedy")
def vade_greedy_runner(config, env):
    return _vade_runner(config, env, selection="greedy")


@register_sampler("vade-nodecay", "VADE, no decay")
def vade_nodecay_runner(config, env):
    return _vade_runner(config, env, decay=False)


def _timed_fill(env: Environment, fill: Callable):
    """Run ``fill(rollout)`` with the environment's rollout; its result and the seconds it spent
    outside the simulated generation (loading and filtering)."""
    rollout_seconds = 0.0

    def rollout(positions):
        nonlocal rollout_seconds
        rewards, seconds = _timed(env.rollout, positions)
        rollout_seconds += seconds
        return rewards

    result, seconds = _timed(fill, rollout)
    return result, seconds - rollout_seconds


def _dapo_runner(config: SimConfig, env: Environment, keep_rule):
    batches = loader_batches(verl_random_sampler(config.num_samples, config.seed), config.dapo_gen_batch_size)

    def step() -> StepOutcome:
        result, seconds = _timed_fill(
            env,
            lambda rollout: dapo_fill(
                batches, rollout, config.group_size, config.batch_size, config.dapo_max_gen_batches, keep_rule
            ),
        )
        return StepOutcome(result.positions, result.rewards, result.rollouts, 0, result.groups_generated, result.groups_kept, seconds)

    return step


@register_sampler("dapo", "DAPO dynamic sampling")
def dapo_runner(config: SimConfig, env: Environment):
    return _dapo_runner(config, env, dapo_kept_groups)


@register_sampler("dapo-band", "DAPO, pass-rate band")
def dapo_band_runner(config: SimConfig, env: Environment):
    return _dapo_runner(config, env, pass_rate_band(config.dapo_band_min, config.dapo_band_max))


@register_sampler("mopps", "MoPPS")
def mopps_runner(config: SimConfig, env: Environment):
    pool = min(config.mopps_candidates * config.batch_size, config.num_samples)
    candidates = loader_batches(verl_random_sampler(config.num_samples, config.seed), pool)
    state = MoPPSState(config.num_samples, decay=config.mopps_decay, target=config.mopps_target, seed=config.seed)

    def step() -> StepOutcome:
        outcome = _plain_step(lambda: state.select(next(candidates), config.batch_size), env)
        successes = outcome.rewards.reshape(-1, config.group_size).sum(axis=1)
        _, seconds = _timed(state.update, outcome.positions, successes, np.full(successes.size, float(config.group_size)))
        outcome.sampler_seconds += seconds
        return outcome

    return step


def _endless_epochs(sampler, epochs: List[int]) -> Iterator[int]:
    """The sampler's indices epoch after epoch; ``epochs[0]`` counts the completed epochs."""
    while True:
        yield from iter(sampler)
        epochs[0] += 1


@register_sampler("greso", "GRESO")
def greso_runner(config: SimConfig, env: Environment):
    epochs = [0]
    candidates = _endless_epochs(verl_random_sampler(config.num_samples, config.seed), epochs)
    state = GRESOState(config.num_samples, GRESOParams(target_zero_variance=config.greso_target_zero_variance))
    rng = np.random.default_rng([config.seed, 3])
    min_sampling_batch_size = max(1, config.batch_size // 4)

    def step() -> StepOutcome:
        result, seconds = _timed_fill(
            env,
            lambda rollout: greso_fill(
                candidates,
                state,
                rollout,
                config.group_size,
                config.batch_size,
                config.greso_sampling_batch_size,
                min_sampling_batch_size,
                config.greso_max_gen_batches,
                rng,
            ),
        )
        if epochs[0] > 0:  # the authors adapt p_easy / p_hard from the second epoch on
            state.adapt(result.all_correct / result.groups_generated, result.all_wrong / result.groups_generated)
        return StepOutcome(result.positions, result.rewards, result.rollouts, 0, result.groups_generated, result.groups_kept, seconds)

    return step


@register_sampler("static-filter", "offline pass-rate filter")
def static_filter_runner(config: SimConfig, env: Environment):
    every = np.arange(config.num_samples)
    offline = env.rollout(every, config.filter_rollouts).reshape(-1, config.filter_rollouts).sum(axis=1)
    kept = pass_rate_filter(offline, config.filter_rollouts, config.filter_min_rate, config.filter_max_rate)
    logger.info("offline filter kept %d of %d samples", kept.size, config.num_samples)
    if kept.size < config.batch_size:
        raise ValueError(
            f"the offline pass-rate filter kept {kept.size} samples, fewer than --batch-size {config.batch_size}"
        )
    batches = loader_batches(verl_random_sampler(kept.size, config.seed), config.batch_size)
    pending = [config.num_samples * config.filter_rollouts]  # the offline pass, paid at step 0

    def step() -> StepOutcome:
        return _plain_step(lambda: kept[next(batches)], env, overhead=pending.pop() if pending else 0)

    return step


@register_sampler("mmr1", "MMR1 variance-aware")
def mmr1_runner(config: SimConfig, env: Environment):
    rng = np.random.default_rng([config.seed, 2])
    every = np.arange(config.num_samples)
    state = {"step": 0, "vps": None}

    def step() -> StepOutcome:
        overhead = 0
        if state["step"] % config.mmr1_refresh_every == 0:
            successes = env.rollout(every, config.mmr1_rollouts).reshape(-1, config.mmr1_rollouts).sum(axis=1)
            state["vps"] = outcome_variance_score(successes, config.mmr1_rollouts)
            overhead = successes.size * config.mmr1_rollouts
        state["step"] += 1

        def select():
            positions, shortfall = variance_aware_batch(state["vps"], config.batch_size, config.mmr1_mix, rng)
            if shortfall:
                logger.info("MMR1: %d weighted slots filled uniformly (too few samples with VPS > 0)", shortfall)
            return positions

        return _plain_step(select, env, overhead=overhead)

    return step


# -- the run ----------------------------------------------------------------------------------------
def run_sampler(
    name: str,
    config: SimConfig,
    z0: np.ndarray,
    progress=None,
    families: Optional[np.ndarray] = None,
    observe: Optional[Callable[[Population], dict]] = None,
) -> List[dict]:
    """Train a fresh copy of the population with sampler ``name``; one record per completed step,
    with ``observe(population)``'s entries added after each step when given."""
    env = Environment(config, z0, families)
    step = SAMPLERS[name](config, env)
    records, cumulative = [], 0
    for number in range(1, config.steps + 1):
        try:
            outcome = step()
        except GenerationLimitReached as error:
            cumulative += error.rollouts
            logger.warning("%s stopped at step %d: %s (%d rollouts spent on it)", name, number, error, error.rollouts)
            break
        informative = informative_groups(outcome.rewards, config.group_size)
        env.population.train(outcome.positions, informative, config.batch_size)
        cumulative += outcome.rollouts + outcome.overhead_rollouts
        records.append(
            {
                "sampler": name,
                "step": number,
                "effective_ratio": float(informative.mean()),
                "groups_generated": outcome.groups_generated,
                "informative_generated": outcome.informative_generated,
                "rollouts": outcome.rollouts,
                "overhead_rollouts": outcome.overhead_rollouts,
                "cumulative_rollouts": cumulative,
                "mean_solve_prob": float(env.population.probs().mean()),
                "sampler_ms": 1e3 * outcome.sampler_seconds,
                **(observe(env.population) if observe is not None else {}),
            }
        )
        if progress is not None:
            progress.update(1)
    if progress is not None:
        progress.update(config.steps - len(records))
    return records


def simulate(
    config: SimConfig,
    show_progress: bool = False,
    z0: Optional[np.ndarray] = None,
    families: Optional[np.ndarray] = None,
    observe: Optional[Callable[[Population], dict]] = None,
) -> Dict[str, List[dict]]:
    """Run every sampler of ``config`` on the same initial population; records per sampler.

    ``z0`` overrides the initial logits drawn from ``config.difficulty`` (length ``num_samples``);
    ``families`` the family id per sample, which the ``family`` dynamics otherwise takes from
    ``rank_families(z0, config.families)``; ``observe(population)`` adds entries to every record
    (the calibration's per-class means).
    """
    if z0 is None:
        z0 = initial_logits(config.difficulty, config.num_samples, np.random.default_rng([config.seed, 0]))
    elif np.shape(z0) != (config.num_samples,):
        raise ValueError(f"z0 has shape {np.shape(z0)}, expected ({config.num_samples},)")
    if families is None and config.dynamics == "family":
        families = rank_families(z0, config.families, np.random.default_rng([config.seed, 4]))
    progress = None
    if show_progress:
        from tqdm import tqdm

        progress = tqdm(total=config.steps * len(config.samplers), desc="simulate", unit="step", file=sys.stderr)
    # No verl trainer step runs here by design (VADE's metrics are read from last_metrics), so
    # verl_metrics' warning that there is none would only be noise, once per VADE sampler.
    def no_trainer_step(record: logging.LogRecord) -> bool:
        return False

    metrics_logger = logging.getLogger("vade_verl.verl_adapters.metrics")
    metrics_logger.addFilter(no_trainer_step)
    try:
        results = {}
        for name in config.samplers:
            if progress is not None:
                progress.set_description(f"simulate {name}")
            results[name] = run_sampler(name, config, z0, progress, families, observe)
    finally:
        metrics_logger.removeFilter(no_trainer_step)
        if progress is not None:
            progress.close()
    return results


def summarise(results: Dict[str, List[dict]], batch_size: int) -> List[dict]:
    """Per sampler: mean and late effective ratio, rollouts (also per informative group trained),
    final progress, rollouts to a target, and those relative to the best reference.

    The target is the final mean solve probability of the first sampler (verl random by default):
    ``rollouts_to_target`` is the cumulative rollouts at the first step that reaches it. The best
    reference is the one of ``REFERENCES`` that ran and reached the target with the fewest rollouts
    (``best_reference`` is True on its row); ``rollouts_to_target_vs_best_reference`` divides by its
    rollouts (None when no reference or not this sampler reached the target).
    """
    first = next(iter(results.values()))
    target = first[-1]["mean_solve_prob"] if first else float("nan")
    reached = {
        name: next((r["cumulative_rollouts"] for r in records if r["mean_solve_prob"] >= target), None)
        for name, records in results.items()
    }
    references = [name for name in REFERENCES if reached.get(name) is not None]
    best = min(references, key=lambda name: reached[name]) if references else None
    rows = []
    for name, records in results.items():
        if not records:
            rows.append({"sampler": name, "steps": 0})
            continue
        ratio = np.array([r["effective_ratio"] for r in records])
        late = ratio[-max(1, len(ratio) // 10) :]
        rows.append(
            {
                "sampler": name,
                "steps": len(records),
                "effective_ratio_mean": float(ratio.mean()),
                "effective_ratio_last10pct": float(late.mean()),
                "total_rollouts": records[-1]["cumulative_rollouts"],
                "overhead_rollouts": int(sum(r["overhead_rollouts"] for r in records)),
                "rollouts_per_informative_group": records[-1]["cumulative_rollouts"]
                / max(1.0, sum(r["effective_ratio"] for r in records) * batch_size),
                "final_mean_solve_prob": records[-1]["mean_solve_prob"],
                "rollouts_to_target": reached[name],
                "rollouts_to_target_vs_best_reference": reached[name] / reached[best] if reached[name] and best else None,
                "best_reference": name == best,
                "sampler_ms_per_step": float(np.mean([r["sampler_ms"] for r in records])),
            }
        )
    return rows


def format_table(rows: List[dict], target_name: str) -> str:
    header = (
        f"{'sampler':<26}{'steps':>6}{'eff.ratio':>10}{'last10%':>9}{'rollouts':>11}{'of which':>10}"
        f"{'per inf.':>9}{'final p':>9}{'rollouts to':>13}{'vs best':>9}{'sampler':>9}"
    )
    sub = (
        f"{'':<26}{'':>6}{'mean':>10}{'':>9}{'total':>11}{'overhead':>10}{'group':>9}{'':>9}"
        f"{target_name + ' p':>13}{'ref.':>9}{'ms/step':>9}"
    )
    lines = [header, sub, "-" * len(header)]
    for row in rows:
        if not row["steps"]:
            lines.append(f"{LABELS[row['sampler']]:<26}{0:>6}  (no step completed)")
            continue
        reach, relative = row["rollouts_to_target"], row["rollouts_to_target_vs_best_reference"]
        label = LABELS[row["sampler"]] + (" *" if row["best_reference"] else "")
        lines.append(
            f"{label:<26}{row['steps']:>6}{row['effective_ratio_mean']:>10.3f}"
            f"{row['effective_ratio_last10pct']:>9.3f}{row['total_rollouts']:>11,}{row['overhead_rollouts']:>10,}"
            f"{row['rollouts_per_informative_group']:>9.1f}{row['final_mean_solve_prob']:>9.3f}{(f'{reach:,}' if reach is not None else 'never'):>13}"
            f"{(f'{relative:.2f}x' if relative is not None else '-'):>9}{row['sampler_ms_per_step']:>9.2f}"
        )
    lines.append("* the best reference of this run (knows the true p); 'vs best ref.' divides by its rollouts")
    return "\n".join(lines)


def write_outputs(results: Dict[str, List[dict]], summary: List[dict], config: SimConfig, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "steps.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for records in results.values():
            writer.writerows(records)
    with open(os.path.join(folder, "summary.json"), "w") as handle:
        json.dump({"config": dataclasses.asdict(config), "summary": summary}, handle, indent=2)


def plot(results: Dict[str, List[dict]], summary: List[dict], config: SimConfig, path: str) -> None:
    """Four panels: effective ratio per step (Fig. 1/3b), progress vs rollouts (Fig. 4a), rollouts per
    step (Fig. 4b), and rollouts to the target relative to the best reference (when one reached it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    axes = axes.ravel()
    for name, records in results.items():
        if not records:
            continue
        style = {"color": COLORS.get(name), "lw": 2.2 if name in ("vade", "vade-eig", "random") else 1.1}
        steps = [r["step"] for r in records]
        ratio = np.array([r["effective_ratio"] for r in records])
        window = max(1, len(ratio) // 30)
        smooth = np.convolve(ratio, np.ones(window) / window, mode="valid")
        cumulative = np.array([r["cumulative_rollouts"] for r in records]) / 1e6
        axes[0].plot(steps[window - 1 :], smooth, label=LABELS[name], **style)
        axes[1].plot(cumulative, [r["mean_solve_prob"] for r in records], label=LABELS[name], **style)
        axes[2].plot(steps, cumulative, label=LABELS[name], **style)
    axes[0].set(xlabel="training step", ylabel="effective-gradient ratio", title="(a) informative groups per batch", ylim=(0, 1.02))
    axes[1].set(xscale="log", xlabel="cumulative rollouts (millions, log scale)", ylabel="mean solve probability", title="(b) progress vs rollouts generated")
    axes[2].set(xlabel="training step", ylabel="cumulative rollouts (millions)", title="(c) rollout bill")
    for ax in axes[:3]:
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=8, loc="upper left")
    relative = [(LABELS[row["sampler"]], row.get("rollouts_to_target_vs_best_reference"), COLORS.get(row["sampler"])) for row in summary]
    relative = [(label, value, color) for label, value, color in relative if value is not None]
    if relative:
        labels, values, colors = zip(*relative)
        axes[3].barh(range(len(values)), values, color=colors)
        axes[3].set_yticks(range(len(values)), labels, fontsize=8)
        axes[3].invert_yaxis()
        axes[3].axvline(1.0, color="k", lw=0.8)
        for y, value in enumerate(values):
            axes[3].text(value, y, f" {value:.2f}x", va="center", fontsize=8)
        never = [LABELS[row["sampler"]] for row in summary if row.get("steps") and row.get("rollouts_to_target") is None]
        note = f"never reached: {', '.join(never)}" if never else ""
        best = next(LABELS[row["sampler"]] for row in summary if row.get("best_reference"))
        axes[3].set(
            xlabel=f"rollouts to reach {LABELS[summary[0]['sampler']]}'s final progress, / best reference's ({best})\n{note}",
            title="(d) rollouts to the target relative to the best true-p reference",
        )
        axes[3].grid(alpha=0.3, axis="x")
    else:
        axes[3].set_axis_off()
    fig.suptitle(
        f"vade-verl simulate: N={config.num_samples}, B={config.batch_size}, G={config.group_size}, "
        f"difficulty={config.difficulty}, seed={config.seed}; dynamics {config.dynamics} (learn={config.learn:g}, "
        f"transfer={config.transfer:g}, forget={config.forget:g}, family={config.family:g})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    defaults = SimConfig(samplers=("random",))
    p = argparse.ArgumentParser(prog="vade-verl simulate", description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--num-samples", type=int, default=defaults.num_samples, help="population size N")
    add("--batch-size", type=int, default=defaults.batch_size, help="prompts per step B (data.train_batch_size)")
    add("--group-size", type=int, default=defaults.group_size, help="rollouts per prompt G (rollout.n)")
    add("--steps", type=int, default=defaults.steps)
    add("--seed", type=int, default=defaults.seed)
    add("--difficulty", default=defaults.difficulty, help="initial difficulty: mm-math, uniform or beta:A,B")
    add("--dynamics", default=defaults.dynamics, choices=list(CALIBRATED),
        help=f"learning dynamics, each with parameters fitted to verl's trainer (docs/simulate.md, Calibration); default {DEFAULT_DYNAMICS}")
    add("--learn", type=float, default=None, help="own logit step: per informative group (per-group) or per step, shared (per-step, family); default: calibrated")
    add("--transfer", type=float, default=None, help="shared logit drift: per step at effective ratio 1 (per-group) or per step (per-step, family); default: calibrated")
    add("--forget", type=float, default=None, help="per-step relaxation of logits toward their start; default: calibrated")
    add("--family", type=float, default=None, help="family dynamics: share of an item's step that every other item of its family takes; default: calibrated")
    add("--families", type=int, default=defaults.families, help="family dynamics: number of families (contiguous ranges of starting difficulty)")
    add("--l1", type=float, default=defaults.l1, help="VADE fast decay (data.sampler.vade.l1)")
    add("--l2", type=float, default=defaults.l2, help="VADE slow decay (data.sampler.vade.l2)")
    add("--samplers", default=",".join(SAMPLERS), help=f"comma list from {','.join(SAMPLERS)}")
    add("--dapo-gen-batch-size", type=int, default=None, help="DAPO data.gen_batch_size (default: 3 x --batch-size, as verl's DAPO recipe scripts)")
    add("--dapo-max-gen-batches", type=int, default=defaults.dapo_max_gen_batches, help="algorithm.filter_groups.max_num_gen_batches")
    add("--dapo-band-min", type=float, default=defaults.dapo_band_min, help="dapo-band: lowest pass rate kept")
    add("--dapo-band-max", type=float, default=defaults.dapo_band_max, help="dapo-band: highest pass rate kept")
    add("--mopps-candidates", type=int, default=defaults.mopps_candidates, help="MoPPS candidate pool per step, in batches (tasksampler.ts_ratio)")
    add("--mopps-decay", type=float, default=defaults.mopps_decay, help="MoPPS posterior decay (tasksampler.bandit_decay_ratio)")
    add("--mopps-target", type=float, default=defaults.mopps_target, help="MoPPS target success rate (tasksampler.bandit_target_mean)")
    add("--greso-sampling-batch-size", type=int, default=None, help="GRESO prompts per sampling batch (default 1.5 x --batch-size, as the authors' 384 for 256)")
    add("--greso-max-gen-batches", type=int, default=defaults.greso_max_gen_batches, help="GRESO: sampling batches per step before the simulator stops it (the authors' trainer has no limit)")
    add("--greso-target-zero-variance", type=float, default=defaults.greso_target_zero_variance, help="GRESO target share of zero-variance groups")
    add("--filter-rollouts", type=int, default=None, help="offline rollouts per sample of the static filter (default G)")
    add("--filter-min-rate", type=float, default=defaults.filter_min_rate)
    add("--filter-max-rate", type=float, default=defaults.filter_max_rate)
    add("--mmr1-refresh-every", type=int, default=defaults.mmr1_refresh_every, help="MMR1 T_update (steps)")
    add("--mmr1-rollouts", type=int, default=None, help="rollouts per sample for MMR1's OVS refresh (default G)")
    add("--mmr1-mix", type=float, default=defaults.mmr1_mix, help="MMR1 share of the batch drawn by VPS")
    add("--output", default=os.path.join("outputs", "simulate"), help="output folder")
    add("--no-plot", action="store_true", help="skip the PNG")
    add("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k not in ("output", "no_plot", "no_progress")}
    options["samplers"] = tuple(s for s in options["samplers"].split(",") if s)
    try:
        config = SimConfig(**options)
    except ValueError as error:
        print(f"vade-verl simulate: {error}", file=sys.stderr)
        return 2
    results = simulate(config, show_progress=not args.no_progress)
    summary = summarise(results, config.batch_size)
    write_outputs(results, summary, config, args.output)
    written = ["steps.csv", "summary.json"]
    if not args.no_plot:
        plot(results, summary, config, os.path.join(args.output, "simulate.png"))
        written.append("simulate.png")
    print(format_table(summary, config.samplers[0]))
    print(f"\nwrote {', '.join(os.path.join(args.output, w) for w in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
