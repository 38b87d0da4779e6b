#!/usr/bin/env bash
# DIVA-GRPO (arXiv 2603.01106) on geometry3k with verl 0.7.1's own trainer: per-problem difficulty
# tracking, one difficulty-matched variant per problem in every batch (vade_verl.verl_diva.DivaRLHFDataset),
# the uid -> problem record in the driver (DivaAgentLoopManager) and the local+global difficulty-weighted
# advantage (algorithm.adv_estimator=diva_grpo). See docs/diva.md.
# Paper settings: Qwen2.5-VL-7B-Instruct, lr 1e-6, 5 rollouts per prompt, batch 128, 1 variant, KL off.
# Like the authors' EasyR1 run (rollout_batch_size=128, global_batch_size=128, Variant_Num=1), a step
# holds BATCH problems plus their variants, i.e. BATCH*(1+NUM_VARIANTS) prompts, and the actor takes
# one optimizer step per MINI_BATCH prompts (2 per training step by default).
#
#   recipes/diva/run_diva_geo3k.sh [extra hydra overrides ...]
#
# Data: verl's examples/data_preprocess/geo3k.py writes $DATA_DIR/{train,test}.parquet. Optional columns
# (top level or in extra_info): "difficulty" (start difficulty 1..9), "solution" (reference solution,
# one step per line: hint variants), "paraphrase" (a reworded question: D = 0 variants).
# Env knobs (defaults in brackets):
#   MODEL_PATH [Qwen/Qwen2.5-VL-7B-Instruct]  DATA_DIR [$HOME/data/geo3k]  TRAIN_FILES, VAL_FILES
#   N_GPUS [8]  NNODES [1]  TP [2]  ROLLOUT [vllm]  N [5]  BATCH [128]  MINI_BATCH [128]  MICRO_BATCH [4]
#   LR [1e-6]  EPOCHS [15]  MAX_PROMPT [2048]  MAX_RESPONSE [2048]
#   NUM_VARIANTS [1]  DIVA_K [0.1]  DIVA_DAMPING [False]  DIVA_SEED [0]
#   SAMPLER [default]: "vade" adds VADE's Thompson-sampling sampler (DIVA advantage + VADE sampler).
#   PROJECT [vade_diva]  EXPERIMENT [diva_geo3k]  PYTHON [python3]
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
N="${N:-5}"
BATCH="${BATCH:-128}"
MINI_BATCH="${MINI_BATCH:-128}"
MICRO_BATCH="${MICRO_BATCH:-4}"
LR="${LR:-1e-6}"
EPOCHS="${EPOCHS:-15}"
MAX_PROMPT="${MAX_PROMPT:-2048}"
MAX_RESPONSE="${MAX_RESPONSE:-2048}"
NUM_VARIANTS="${NUM_VARIANTS:-1}"
DIVA_K="${DIVA_K:-0.1}"
DIVA_DAMPING="${DIVA_DAMPING:-False}"
DIVA_SEED="${DIVA_SEED:-0}"
SAMPLER="${SAMPLER:-default}"
PROJECT="${PROJECT:-vade_diva}"
EXPERIMENT="${EXPERIMENT:-diva_geo3k}"
PYTHON="${PYTHON:-python3}"

SAMPLER_ARGS=()
case "$SAMPLER" in
  default) ;;
  vade) SAMPLER_ARGS=(data.sampler.class_path=pkg://vade_verl.sampler data.sampler.class_name=VADESampler) ;;
  *) echo "SAMPLER must be 'default' or 'vade', got '$SAMPLER'" >&2; exit 2 ;;
esac

# No VERL_USE_EXTERNAL_MODULES needed: verl loads data.custom_cls and the agent loop manager class in the
# driver (TaskRunner), and that import registers the diva_grpo estimator where compute_advantage runs.
OVERRIDES=(
  algorithm.adv_estimator=diva_grpo
  algorithm.norm_adv_by_std_in_grpo=True
  algorithm.use_kl_in_reward=False
  +algorithm.diva.k="$DIVA_K"
  +algorithm.diva.low_reward_damping="$DIVA_DAMPING"
  data.train_files="$TRAIN_FILES"
  data.val_files="$VAL_FILES"
  data.train_batch_size="$BATCH"
  data.max_prompt_length="$MAX_PROMPT"
  data.max_response_length="$MAX_RESPONSE"
  data.filter_overlong_prompts=True
  data.truncation=error
  data.image_key=images
  data.dataloader_num_workers=0
  data.custom_cls.path=pkg://vade_verl.verl_diva
  data.custom_cls.name=DivaRLHFDataset
  +data.diva.num_variants="$NUM_VARIANTS"
  +data.diva.seed="$DIVA_SEED"
  "${SAMPLER_ARGS[@]}"
  actor_rollout_ref.model.path="$MODEL_PATH"
  actor_rollout_ref.model.use_remove_padding=True
  actor_rollout_ref.model.enable_gradient_checkpointing=True
  actor_rollout_ref.actor.optim.lr="$LR"
  actor_rollout_ref.actor.ppo_mini_batch_size="$MINI_BATCH"
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$MICRO_BATCH"
  actor_rollout_ref.actor.use_kl_loss=False
  actor_rollout_ref.actor.entropy_coeff=0
  actor_rollout_ref.actor.fsdp_config.param_offload=False
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=False
  actor_rollout_ref.rollout.name="$ROLLOUT"
  actor_rollout_ref.rollout.n="$N"
  actor_rollout_ref.rollout.tensor_model_parallel_size="$TP"
  actor_rollout_ref.rollout.gpu_memory_utilization=0.6
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu="$MICRO_BATCH"
  +actor_rollout_ref.rollout.agent.agent_loop_manager_class=vade_verl.verl_diva.DivaAgentLoopManager
  trainer.critic_warmup=0
  trainer.logger='["console","wandb"]'
  trainer.project_name="$PROJECT"
  trainer.experiment_name="$EXPERIMENT"
  trainer.n_gpus_per_node="$N_GPUS"
  trainer.nnodes="$NNODES"
  trainer.save_freq=20
  trainer.test_freq=5
  trainer.total_epochs="$EPOCHS"
)

if [ "${PRINT_OVERRIDES:-0}" = 1 ]; then
  printf '%s\n' "${OVERRIDES[@]}" "$@"
  exit 0
fi
if [ "${DRY_RUN:-0}" = 1 ]; then  # compose + validate the full config, build the sampler, exit (docs/recipes.md)
  exec "$PYTHON" -m vade_verl.dryrun "${OVERRIDES[@]}" "$@"
fi
exec "$PYTHON" -m verl.trainer.main_ppo "${OVERRIDES[@]}" "$@"
