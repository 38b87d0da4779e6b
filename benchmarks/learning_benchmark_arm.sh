#!/usr/bin/env bash
# One arm of benchmarks/learning_benchmark.py: verl's own trainer (python -m verl.trainer.main_ppo, verl
# 0.7.1: Ray, FSDP2 actor, verl's vLLM rollout on vLLM's CPU build) trains the warm-started tiny
# Qwen2.5-VL in WORK/model with GRPO on WORK/data/{train,val}.parquet (the key-lookup task), with the CPU settings of the tiny CI
# runs (recipes/ci/tiny_cpu_common.sh, docs/ci_run.md) and the sampler ARM names:
#
#   random    verl's default: the RandomSampler create_rl_sampler builds for data.shuffle=True, seeded by data.seed
#   vade      VADESampler with the paper's defaults (l1 = 0.2, l2 = 0.999, InfoGain, Thompson), seeded by data.seed
#   vade-eig  the same with +data.sampler.vade.variant=eig (ours, docs/simulate.md)
#   mopps     MoPPSSampler with the authors' geo3k defaults (8 B candidates, decay 0.5, target 0.5), seeded by data.seed
#   greso     GRESOSampler with the authors' defaults (p_easy = p_hard = 0.5, target_zero_variance 0.25), seeded by data.seed
#
#   benchmarks/learning_benchmark_arm.sh WORK ARM RUN [hydra overrides ...]
#
# Writes WORK/RUN/{metrics_<LAUNCH>.jsonl (verl's file logger), train_<LAUNCH>.log, rollouts/<step>.jsonl,
# ckpt/} (RUN: the arm and its seed, e.g. vade-s1). The overrides (batch size, rollout.n, steps, validation, checkpoints, ...) come from the driver and
# follow the shared ones, so they win. LAUNCH=1 (default) starts the arm afresh; a later launch keeps
# WORK/ARM, and verl resumes from its last checkpoint (trainer.resume_mode=auto).
# Env: PYTHON (default python), LAUNCH (default 1), LAUNCH_TIMEOUT_S (default 600).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(realpath -m "$1")"
ARM="$2"
RUN_NAME="$3"
shift 3
PYTHON="${PYTHON:-python}"
cd "$ROOT"

case "$ARM" in
  random) SAMPLER_ARGS=(data.shuffle=True) ;;
  vade) SAMPLER_ARGS=(data.sampler.class_path=pkg://vade_verl.vade.sampler data.sampler.class_name=VADESampler) ;;
  vade-eig) SAMPLER_ARGS=(data.sampler.class_path=pkg://vade_verl.vade.sampler data.sampler.class_name=VADESampler
                          +data.sampler.vade.variant=eig) ;;
  mopps) SAMPLER_ARGS=(data.sampler.class_path=pkg://vade_verl.mopps.sampler data.sampler.class_name=MoPPSSampler) ;;
  greso) SAMPLER_ARGS=(data.sampler.class_path=pkg://vade_verl.greso.sampler data.sampler.class_name=GRESOSampler) ;;
  *) echo "learning_benchmark_arm.sh: unknown arm '$ARM' (random, vade, vade-eig, mopps, greso)" >&2; exit 2 ;;
esac

source "$ROOT/recipes/ci/tiny_cpu_common.sh"
RUN="$WORK/$RUN_NAME"
LAUNCH="${LAUNCH:-1}"
# a fresh start keeps only the driver's settings.json
if [ "$LAUNCH" = 1 ] && [ -d "$RUN" ]; then find "$RUN" -mindepth 1 -maxdepth 1 ! -name settings.json -exec rm -rf {} +; fi
mkdir -p "$RUN"
export VERL_FILE_LOGGER_PATH="$RUN/metrics_$LAUNCH.jsonl"

"${GUARDED[@]}" "$PYTHON" -m verl.trainer.main_ppo \
  "${TINY_CPU_OVERRIDES[@]}" \
  "${TINY_CPU_RAY_MODULES[@]}" \
  algorithm.adv_estimator=grpo \
  "${SAMPLER_ARGS[@]}" \
  trainer.logger='[console,file]' \
  trainer.experiment_name="$RUN_NAME" \
  trainer.default_local_dir="$RUN/ckpt" \
  trainer.rollout_data_dir="$RUN/rollouts" \
  +ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH="$VERL_FILE_LOGGER_PATH" \
  "$@" 2>&1 | tee "$RUN/train_$LAUNCH.log"
