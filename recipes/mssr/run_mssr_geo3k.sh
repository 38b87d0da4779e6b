#!/usr/bin/env bash
# MSSR (arXiv 2512.18215) on geometry3k with verl 0.7.1's own trainer: one rollout per prompt, a tracked
# per-prompt Beta baseline (vade_verl.verl_mssr.MSSRDataset) and entropy-shaped advantages (loss_mode=mssr).
# Paper settings: n=1, temperature 1.0, low-variance KL loss coef 0.01, lr 1e-6, grad clip 0.5, batch 128.
#
#   recipes/mssr/run_mssr_geo3k.sh [extra hydra overrides ...]
#
# Data: verl's examples/data_preprocess/geo3k.py writes $DATA_DIR/{train,test}.parquet (rows carry
# extra_info.index). Env knobs (defaults in brackets):
#   MODEL_PATH [Qwen/Qwen2.5-VL-7B-Instruct]  DATA_DIR [$HOME/data/geo3k]  TRAIN_FILES, VAL_FILES
#   N_GPUS [8]  NNODES [1]  TP [2]  ROLLOUT [vllm]  BATCH [128]  MINI_BATCH [128]  MICRO_BATCH [4]
#   LR [1e-6]  KL_COEF [0.01]  GRAD_CLIP [0.5]  EPOCHS [15]  MAX_PROMPT [1024]  MAX_RESPONSE [2048]
#   MSSR_ALPHA [0.4]  MSSR_KAPPA [2]  MSSR_ENTROPY [sampled]           (worker side, entropy shaping)
#   MSSR_RHO_MIN [0.875]  MSSR_RHO_MAX [0.96]  MSSR_TARGET_KL [0.01]  MSSR_KL_WINDOW [20]  (baseline)
#   PROJECT [vade_mssr]  EXPERIMENT [mssr_geo3k]  PYTHON [python3]
#   PRINT_OVERRIDES=1: print the Hydra overrides, one per line, and exit (used by the tests).
#   DRY_RUN=1: compose and validate the full config, build the sampler on CPU, exit (no Ray, no model).
set -euo pipefail

MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-VL-7B-Instruct}"
DATA_DIR="${DATA_DIR:-$HOME/data/geo3k}"
TRAIN_FILES="${TRAIN_FILES:-$DATA_DIR/train.parquet}"
VAL_FILES="${VAL_FILES:-$DATA_DIR/test.parquet}"
N_GPUS="${N_GPUS:-8}"
NNODES="${NNODES:-1}"
TP="${TP:-2}"
ROLLOUT="${ROLLOUT:-vllm}"
BATCH="${BATCH:-128}"
MINI_BATCH="${MINI_BATCH:-128}"
MICRO_BATCH="${MICRO_BATCH:-4}"
LR="${LR:-1e-6}"
KL_COEF="${KL_COEF:-0.01}"
GRAD_CLIP="${GRAD_CLIP:-0.5}"
EPOCHS="${EPOCHS:-15}"
MAX_PROMPT="${MAX_PROMPT:-1024}"
MAX_RESPONSE="${MAX_RESPONSE:-2048}"
MSSR_ALPHA="${MSSR_ALPHA:-0.4}"
MSSR_KAPPA="${MSSR_KAPPA:-2}"
MSSR_ENTROPY="${MSSR_ENTROPY:-sampled}"
MSSR_RHO_MIN="${MSSR_RHO_MIN:-0.875}"
MSSR_RHO_MAX="${MSSR_RHO_MAX:-0.96}"
MSSR_TARGET_KL="${MSSR_TARGET_KL:-0.01}"
MSSR_KL_WINDOW="${MSSR_KL_WINDOW:-20}"
PROJECT="${PROJECT:-vade_mssr}"
EXPERIMENT="${EXPERIMENT:-mssr_geo3k}"
PYTHON="${PYTHON:-python3}"

# `import verl` imports the registrations in every process (TaskRunner and the actor workers); the
# shaping settings reach the workers' policy loss the same way, through Ray's runtime_env (whose env_vars
# must be strings: hence the quotes).
export VERL_USE_EXTERNAL_MODULES="${VERL_USE_EXTERNAL_MODULES:-vade_verl.verl_mssr}"
export VADE_MSSR_ALPHA="$MSSR_ALPHA" VADE_MSSR_KAPPA="$MSSR_KAPPA" VADE_MSSR_ENTROPY="$MSSR_ENTROPY"

OVERRIDES=(
  algorithm.adv_estimator=mssr
  algorithm.norm_adv_by_std_in_grpo=True
  algorithm.use_kl_in_reward=False
  data.train_files="$TRAIN_FILES"
  data.val_files="$VAL_FILES"
  data.train_batch_size="$BATCH"
  data.max_prompt_length="$MAX_PROMPT"
  data.max_response_length="$MAX_RESPONSE"
  data.filter_overlong_prompts=True
  data.truncation=error
  data.image_key=images
  data.dataloader_num_workers=0
  data.custom_cls.path=pkg://vade_verl.verl_mssr
  data.custom_cls.name=MSSRDataset
  +data.mssr.rho_min="$MSSR_RHO_MIN"
  +data.mssr.rho_max="$MSSR_RHO_MAX"
  +data.mssr.target_kl="$MSSR_TARGET_KL"
  +data.mssr.kl_window="$MSSR_KL_WINDOW"
  actor_rollout_ref.model.path="$MODEL_PATH"
  actor_rollout_ref.model.use_remove_padding=True
  actor_rollout_ref.model.enable_gradient_checkpointing=True
  actor_rollout_ref.actor.optim.lr="$LR"
  actor_rollout_ref.actor.grad_clip="$GRAD_CLIP"
  actor_rollout_ref.actor.ppo_mini_batch_size="$MINI_BATCH"
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$MICRO_BATCH"
  actor_rollout_ref.actor.policy_loss.loss_mode=mssr
  actor_rollout_ref.actor.use_kl_loss=True
  actor_rollout_ref.actor.kl_loss_coef="$KL_COEF"
  actor_rollout_ref.actor.kl_loss_type=low_var_kl
  actor_rollout_ref.actor.entropy_coeff=0
  actor_rollout_ref.actor.fsdp_config.param_offload=False
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=False
  actor_rollout_ref.rollout.name="$ROLLOUT"
  actor_rollout_ref.rollout.n=1
  actor_rollout_ref.rollout.temperature=1.0
  actor_rollout_ref.rollout.tensor_model_parallel_size="$TP"
  actor_rollout_ref.rollout.gpu_memory_utilization=0.6
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu="$MICRO_BATCH"
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu="$MICRO_BATCH"
  actor_rollout_ref.ref.fsdp_config.param_offload=True
  trainer.critic_warmup=0
  trainer.logger='["console","wandb"]'
  trainer.project_name="$PROJECT"
  trainer.experiment_name="$EXPERIMENT"
  trainer.n_gpus_per_node="$N_GPUS"
  trainer.nnodes="$NNODES"
  trainer.save_freq=20
  trainer.test_freq=5
  trainer.total_epochs="$EPOCHS"
  "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES='$VERL_USE_EXTERNAL_MODULES'"
  "+ray_kwargs.ray_init.runtime_env.env_vars.VADE_MSSR_ALPHA='$MSSR_ALPHA'"
  "+ray_kwargs.ray_init.runtime_env.env_vars.VADE_MSSR_KAPPA='$MSSR_KAPPA'"
  "+ray_kwargs.ray_init.runtime_env.env_vars.VADE_MSSR_ENTROPY='$MSSR_ENTROPY'"
)

if [ "${PRINT_OVERRIDES:-0}" = 1 ]; then
  printf '%s\n' "${OVERRIDES[@]}" "$@"
  exit 0
fi
if [ "${DRY_RUN:-0}" = 1 ]; then  # compose + validate the full config, build the sampler, exit (docs/recipes.md)
  exec "$PYTHON" -m vade_verl.dryrun "${OVERRIDES[@]}" "$@"
fi
exec "$PYTHON" -m verl.trainer.main_ppo "${OVERRIDES[@]}" "$@"
