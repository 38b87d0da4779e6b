# Sourced by recipes/{vade,baselines}/run_*.sh: parameters from the environment, the verl overrides
# all recipes share (Qwen2.5-VL on geo3k-style data, after verl's examples/grpo_trainer/
# run_qwen2_5_vl-7b.sh), and the entry point. See docs/recipes.md.
#
# Environment (defaults in brackets):
#   MODEL_PATH   model to train                      [the recipe's Qwen/Qwen2.5-VL-*-Instruct]
#   DATA_DIR     train.parquet + test.parquet from `python -m vade_verl.data.geo3k`  [~/data/geo3k]
#   N_GPUS       GPUs per node [8]     NNODES [1]     ROLLOUT_TP  vLLM tensor parallel size [recipe's]
#   PROJECT / EXPERIMENT / CKPT_DIR / LOGGER        trainer.project_name etc. [vade_verl / recipe name
#                / checkpoints/$PROJECT/$EXPERIMENT / '[console,wandb]']
#   TOTAL_EPOCHS [15]   SAVE_FREQ [20]   TEST_FREQ [5]
#   PYTHON       interpreter [python3]
#   DRY_RUN=1    compose + validate the full config and build the sampler on CPU, then exit
#                (python3 -m vade_verl.dryrun with the same overrides); no Ray, no model
#   VERL_RECIPE_ROOT  (DAPO baseline only) a verl source checkout holding recipe/dapo
# Extra arguments to a recipe are passed to the trainer as Hydra overrides, after the recipe's own.

: "${DATA_DIR:=$HOME/data/geo3k}"
: "${N_GPUS:=8}"
: "${NNODES:=1}"
: "${PROJECT:=vade_verl}"
: "${LOGGER:=[console,wandb]}"
: "${TOTAL_EPOCHS:=15}"
: "${SAVE_FREQ:=20}"
: "${TEST_FREQ:=5}"
: "${PYTHON:=python3}"
: "${DRY_RUN:=0}"

# Hyperparameters. The VADE paper does not state them; GRPO/GSPO + VADE on Qwen2.5-VL-7B is
# trained with verl's geo3k example's settings except where marked "our choice".
TRAIN_BATCH=128      # our choice: DIVA-GRPO's and MSSR's global batch; a pool of 2101 geo3k rows / 128
ROLLOUT_N=8          # our choice: group size G (verl's example uses 5, DAPO's recipe 8)
MINI_BATCH=32        # our choice: 4 actor updates per step, as verl's 512 / 128
LR=1e-6              # all three papers and verl's example
MAX_PROMPT=1024      # verl's example (geo3k prompt + image tokens)
MAX_RESPONSE=2048    # verl's example
KL_COEF=0.01         # verl's example: low-variance KL loss, no KL in the reward

# recipe_name: the calling script's file name without run_ and .sh, the default experiment name.
recipe_name() { basename "${BASH_SOURCE[-1]}" .sh | sed 's/^run_//'; }

# geo3k_args MODEL_PATH ROLLOUT_TP: overrides shared by every recipe, into the array ARGS.
geo3k_args() {
  local model="$1" tp="$2" experiment="${EXPERIMENT:-$(recipe_name)}"
  ARGS=(
    algorithm.adv_estimator=grpo
    algorithm.use_kl_in_reward=False
    data.train_files="$DATA_DIR/train.parquet"
    data.val_files="$DATA_DIR/test.parquet"
    data.train_batch_size=$TRAIN_BATCH
    data.max_prompt_length=$MAX_PROMPT
    data.max_response_length=$MAX_RESPONSE
    data.filter_overlong_prompts=True
    data.truncation=error
    data.image_key=images
    actor_rollout_ref.model.path="$model"
    actor_rollout_ref.model.use_remove_padding=True
    actor_rollout_ref.model.enable_gradient_checkpointing=True
    actor_rollout_ref.actor.optim.lr=$LR
    actor_rollout_ref.actor.ppo_mini_batch_size=$MINI_BATCH
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8
    actor_rollout_ref.actor.use_kl_loss=True
    actor_rollout_ref.actor.kl_loss_coef=$KL_COEF
    actor_rollout_ref.actor.kl_loss_type=low_var_kl
    actor_rollout_ref.actor.entropy_coeff=0
    actor_rollout_ref.actor.fsdp_config.param_offload=False
    actor_rollout_ref.actor.fsdp_config.optimizer_offload=False
    actor_rollout_ref.rollout.name=vllm
    actor_rollout_ref.rollout.n=$ROLLOUT_N
    actor_rollout_ref.rollout.temperature=1.0
    actor_rollout_ref.rollout.tensor_model_parallel_size="$tp"
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6
    actor_rollout_ref.rollout.enable_chunked_prefill=False
    actor_rollout_ref.rollout.enforce_eager=False
    actor_rollout_ref.rollout.free_cache_engine=False
    +actor_rollout_ref.rollout.engine_kwargs.vllm.disable_mm_preprocessor_cache=True
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16
    actor_rollout_ref.ref.fsdp_config.param_offload=True
    trainer.critic_warmup=0
    trainer.logger="$LOGGER"
    trainer.project_name="$PROJECT"
    trainer.experiment_name="$experiment"
    trainer.default_local_dir="${CKPT_DIR:-checkpoints/$PROJECT/$experiment}"
    trainer.n_gpus_per_node=$N_GPUS
    trainer.nnodes=$NNODES
    trainer.save_freq=$SAVE_FREQ
    trainer.test_freq=$TEST_FREQ
    trainer.total_epochs=$TOTAL_EPOCHS
  )
}

# GSPO (arXiv 2507.18071): sequence-level ratio, clip range and aggregation as in its paper and
# verl's examples/gspo_trainer; GRPO's group-relative advantage is kept (adv_estimator=grpo).
GSPO_ARGS=(
  actor_rollout_ref.actor.policy_loss.loss_mode=gspo
  actor_rollout_ref.actor.clip_ratio_low=0.0003
  actor_rollout_ref.actor.clip_ratio_high=0.0004
  actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean
)

# The VADE sampler (vade_verl.sampler); extra +data.sampler.vade.<option>=... come after these.
VADE_ARGS=(
  data.sampler.class_path=pkg://vade_verl.sampler
  data.sampler.class_name=VADESampler
  data.dataloader_num_workers=0
)

# trainer_module: verl's own entry on verl 0.5-0.7, our wrapper of verl's v0 trainer on 0.9.x.
trainer_module() {
  local version
  version="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("verl"))')"
  case "$version" in
    0.5.* | 0.6.* | 0.7.*) echo verl.trainer.main_ppo ;;
    0.9.*) echo vade_verl.verl09.main_ppo ;;
    *) echo "recipes: verl $version is not supported (0.5-0.7 or 0.9.x; see docs/verl09.md)" >&2; return 1 ;;
  esac
}

# run_trainer [--dapo] OVERRIDES...: train, or with DRY_RUN=1 only check the config.
# --dapo runs verl's DAPO recipe trainer (recipe.dapo.main_dapo, from $VERL_RECIPE_ROOT).
run_trainer() {
  local dapo=()
  if [ "${1:-}" = --dapo ]; then dapo=(--dapo); shift; fi
  if [ "$DRY_RUN" = 1 ]; then
    "$PYTHON" -m vade_verl.dryrun "${dapo[@]}" "$@"
  elif [ ${#dapo[@]} -gt 0 ]; then
    : "${VERL_RECIPE_ROOT:?set VERL_RECIPE_ROOT to a verl source checkout holding recipe/dapo (see docs/recipes.md)}"
    (cd "$VERL_RECIPE_ROOT" && "$PYTHON" -m recipe.dapo.main_dapo "$@")
  else
    local module
    module="$(trainer_module)"
    "$PYTHON" -m "$module" "$@"
  fi
}
