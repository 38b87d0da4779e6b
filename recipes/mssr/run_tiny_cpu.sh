#!/usr/bin/env bash
# End-to-end smoke run of MSSR in verl 0.7.1's own trainer on CPU: recipes/mssr/run_mssr_geo3k.sh with the
# tiny random Qwen2.5-VL and image counting task of vade_verl/tiny, rolled out by verl's vLLM server on
# vLLM's CPU build (the CPU setup of recipes/ci/tiny_cpu_common.sh). Trains STEPS steps with n=1, the Beta
# baseline and the mssr loss, then restarts and resumes from the checkpoint for one step; validation runs
# before training (MSSRDataset rows in verl's _validate), and the prompt-length filter runs with the real
# processor. No reference policy here: verl 0.7.1 builds the FSDP2 reference with
# CPUOffloadPolicy(pin_memory=True), which needs an accelerator, so this CPU run turns the KL loss off and
# fixes rho (+data.mssr.rho=0.9); the KL-adaptive rho is covered by the unit tests.
#
#   recipes/mssr/run_tiny_cpu.sh [WORK_DIR]        (default: ci_tmp/mssr_tiny_cpu; STEPS default 2)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(realpath -m "${1:-$ROOT/ci_tmp/mssr_tiny_cpu}")"
STEPS="${STEPS:-2}"
export PYTHON="${PYTHON:-python}"
cd "$ROOT"

EXTRA_EXTERNAL_MODULES=vade_verl.mssr.verl_plugin
source "$ROOT/recipes/ci/tiny_cpu_common.sh"
export VERL_LOGGING_LEVEL=INFO
rm -rf "$WORK" && mkdir -p "$WORK"
"$PYTHON" -m vade_verl.tiny.build --out "$WORK" --train-rows 16 --val-rows 4 --seed 0

export MODEL_PATH="$WORK/model" TRAIN_FILES="$WORK/data/train.parquet" VAL_FILES="$WORK/data/val.parquet"
export N_GPUS=1 ROLLOUT_TP=1 TRAIN_BATCH=4 MSSR_INIT=first_visit MINI_BATCH=4 MICRO_BATCH=4 LR=1e-3 MAX_PROMPT=32 MAX_RESPONSE=4
export PROJECT=vade_ci EXPERIMENT=mssr_tiny_cpu

run() {  # $1 = total_training_steps; the MSSR recipe's overrides first, then the tiny CPU ones
  "${GUARDED[@]}" "$ROOT/recipes/mssr/run_mssr_geo3k.sh" \
    "${TINY_CPU_OVERRIDES[@]}" \
    data.filter_overlong_prompts=True \
    actor_rollout_ref.model.enable_gradient_checkpointing=False \
    actor_rollout_ref.rollout.n=1 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4 \
    +data.mssr.rho=0.9 \
    trainer.logger='[console,file]' \
    trainer.val_before_train=True \
    trainer.save_freq="$STEPS" \
    trainer.total_training_steps="$1" \
    "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH='$VERL_FILE_LOGGER_PATH'" \
    "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_LOGGING_LEVEL=INFO"
}

export VERL_FILE_LOGGER_PATH="$WORK/metrics_run1.jsonl"
run "$STEPS" 2>&1 | tee "$WORK/run1.log"
export VERL_FILE_LOGGER_PATH="$WORK/metrics_run2.jsonl"
run "$((STEPS + 1))" 2>&1 | tee "$WORK/run2.log"
