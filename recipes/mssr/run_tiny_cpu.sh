#!/usr/bin/env bash
# End-to-end smoke run of MSSR in verl 0.7.1's own trainer on CPU: recipes/mssr/run_mssr_geo3k.sh with
# the tiny random Qwen2 and counting task of vade_verl/tiny (the CPU setup of recipes/ci/run_tiny_cpu.sh:
# hf rollout, FSDP2 on gloo). Trains STEPS steps with n=1, the Beta baseline and the mssr loss, then
# restarts and resumes from the checkpoint for one step; validation runs before training (MSSRDataset rows
# in verl's _validate). No reference policy here: verl 0.7.1 builds the
# FSDP2 reference with CPUOffloadPolicy(pin_memory=True), which needs an accelerator, so this CPU run turns
# the KL loss off and fixes rho (+data.mssr.rho=0.9); the KL-adaptive rho is covered by the unit tests.
#
#   recipes/mssr/run_tiny_cpu.sh [WORK_DIR]        (default: ci_tmp/mssr_tiny_cpu; STEPS default 2)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(realpath -m "${1:-$ROOT/ci_tmp/mssr_tiny_cpu}")"
STEPS="${STEPS:-2}"
export PYTHON="${PYTHON:-python}"
cd "$ROOT"

PYTHON="$PYTHON" "$ROOT/patches/apply.sh"   # verl 0.7.1's FSDP-on-CPU fix (see patches/README.md)
rm -rf "$WORK" && mkdir -p "$WORK"
"$PYTHON" -m vade_verl.tiny.build --out "$WORK" --train-rows 16 --val-rows 4 --seed 0

export VERL_USE_EXTERNAL_MODULES=vade_verl.tiny.cpu_compat,vade_verl.tiny.hf_server,vade_verl.verl_mssr
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
export TOKENIZERS_PARALLELISM=false RAY_DEDUP_LOGS=0 HYDRA_FULL_ERROR=1 VERL_LOGGING_LEVEL=INFO
unset RAY_ADDRESS
export MODEL_PATH="$WORK/model" TRAIN_FILES="$WORK/data/train.parquet" VAL_FILES="$WORK/data/val.parquet"
export N_GPUS=1 TP=1 ROLLOUT=hf BATCH=4 MINI_BATCH=4 MICRO_BATCH=4 LR=1e-3 MAX_PROMPT=32 MAX_RESPONSE=4
export PROJECT=vade_ci EXPERIMENT=mssr_tiny_cpu

run() {  # $1 = total_training_steps
  "$ROOT/recipes/mssr/run_mssr_geo3k.sh" \
    data.filter_overlong_prompts=False \
    data.seed=0 \
    actor_rollout_ref.model.use_remove_padding=False \
    actor_rollout_ref.model.enable_gradient_checkpointing=False \
    +actor_rollout_ref.model.override_config.attn_implementation=sdpa \
    actor_rollout_ref.actor.strategy=fsdp2 \
    actor_rollout_ref.actor.use_torch_compile=False \
    actor_rollout_ref.actor.use_kl_loss=False \
    +data.mssr.rho=0.9 \
    +data.mssr.init=first_visit \
    actor_rollout_ref.actor.checkpoint.save_contents='[model,optimizer,extra]' \
    actor_rollout_ref.rollout.agent.num_workers=1 \
    reward.num_workers=1 \
    reward.custom_reward_function.path="$ROOT/vade_verl/tiny/task.py" \
    reward.custom_reward_function.name=compute_score \
    trainer.device=cuda \
    trainer.logger='[console,file]' \
    trainer.default_local_dir="$WORK/ckpt" \
    trainer.val_before_train=True \
    trainer.test_freq=-1 \
    trainer.save_freq="$STEPS" \
    trainer.resume_mode=auto \
    trainer.total_epochs=100 \
    trainer.total_training_steps="$1" \
    ray_kwargs.ray_init.num_cpus=8 \
    +ray_kwargs.ray_init.num_gpus=1 \
    +ray_kwargs.ray_init.include_dashboard=False \
    "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH='$VERL_FILE_LOGGER_PATH'" \
    "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_LOGGING_LEVEL=INFO"
}

export VERL_FILE_LOGGER_PATH="$WORK/metrics_run1.jsonl"
run "$STEPS" 2>&1 | tee "$WORK/run1.log"
export VERL_FILE_LOGGER_PATH="$WORK/metrics_run2.jsonl"
run "$((STEPS + 1))" 2>&1 | tee "$WORK/run2.log"
