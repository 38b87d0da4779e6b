# Sourced by the recipes for three helpers; it sets nothing that a recipe does not show.
#   knob NAME DEFAULT  NAME from the environment, else DEFAULT; notes that this recipe reads NAME
#   check_knobs        refuses the knobs this recipe does not read and old knob names, saying what to use
#   run_verl MODULE ARGS...
#                      python3 -m MODULE ARGS (the trainer); DRY_RUN=1: check the config on CPU instead
#                      (python3 -m vade_verl.dryrun, no Ray, no model); PRINT_OVERRIDES=1: print ARGS, one
#                      per line (an empty line between the calls of a recipe that runs the trainer twice)
# Every recipe also reads PYTHON [python3], DRY_RUN [0] and PRINT_OVERRIDES [0]. The knob table (names,
# Hydra keys, defaults) is docs/recipes.md; tests/test_recipes.py checks it against the recipes.

RECIPE_KNOBS=""

knob() {
  RECIPE_KNOBS="$RECIPE_KNOBS $1"
  if [ -z "${!1:-}" ]; then printf -v "$1" '%s' "$2"; fi
}

knob PYTHON python3
knob DRY_RUN 0
knob PRINT_OVERRIDES 0

# knob_key NAME: the Hydra key a shared knob sets (empty for a name that is not a shared knob).
knob_key() {
  case "$1" in
    MODEL_PATH) echo actor_rollout_ref.model.path ;;
    TRAIN_FILES | DATA_DIR) echo data.train_files ;;
    VAL_FILES) echo data.val_files ;;
    TRAIN_BATCH) echo data.train_batch_size ;;
    ROLLOUT_N) echo actor_rollout_ref.rollout.n ;;
    MINI_BATCH) echo actor_rollout_ref.actor.ppo_mini_batch_size ;;
    MICRO_BATCH) echo actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu ;;
    LR) echo actor_rollout_ref.actor.optim.lr ;;
    KL_COEF) echo actor_rollout_ref.actor.kl_loss_coef ;;
    GRAD_CLIP) echo actor_rollout_ref.actor.grad_clip ;;
    MAX_PROMPT) echo data.max_prompt_length ;;
    MAX_RESPONSE) echo data.max_response_length ;;
    TOTAL_EPOCHS) echo trainer.total_epochs ;;
    TOTAL_STEPS) echo trainer.total_training_steps ;;
    N_GPUS) echo trainer.n_gpus_per_node ;;
    NNODES) echo trainer.nnodes ;;
    ROLLOUT_TP) echo actor_rollout_ref.rollout.tensor_model_parallel_size ;;
    SAVE_FREQ) echo trainer.save_freq ;;
    TEST_FREQ) echo trainer.test_freq ;;
    CKPT_KEEP) echo trainer.max_actor_ckpt_to_keep ;;
    CKPT_DIR) echo trainer.default_local_dir ;;
    PROJECT) echo trainer.project_name ;;
    EXPERIMENT) echo trainer.experiment_name ;;
    LOGGER) echo trainer.logger ;;
    TRAINER) echo "(the trainer module)" ;;
  esac
}

# knob_problem NAME: why this recipe refuses the environment variable NAME (empty: not a recipe knob).
knob_problem() {
  case "$1" in
    TP) echo "renamed ROLLOUT_TP" ;;
    EPOCHS) echo "renamed TOTAL_EPOCHS" ;;
    BATCH) echo "renamed TRAIN_BATCH" ;;
    N) echo "renamed ROLLOUT_N" ;;
    ABLATION) echo "renamed VADE_ABLATION (read by recipes/vade/run_qwen2_5_vl_7b_grpo_vade_ablation.sh)" ;;
    GEN_BATCH) echo "renamed DAPO_GEN_BATCH (read by recipes/baselines/run_qwen2_5_vl_7b_grpo_dapo.sh)" ;;
    ROLLOUT) echo "removed: pass actor_rollout_ref.rollout.name=... as an argument" ;;
    NUM_VARIANTS) echo "renamed DIVA_NUM_VARIANTS (read by recipes/diva/run_diva_geo3k.sh)" ;;
    SAMPLER) echo "renamed DIVA_SAMPLER (read by recipes/diva/run_diva_geo3k.sh)" ;;
    DIVA_DAMPING) echo "removed: the authors' low-reward damping is on by default; pass +algorithm.diva.low_reward_damping=False as an argument" ;;
    MSSR_RHO_MIN | MSSR_RHO_MAX | MSSR_TARGET_KL) local key="${1#MSSR_}"; echo "removed: pass +data.mssr.${key,,}=... as an argument" ;;
    VADE_MSSR_*) echo "removed: MSSR's options are +data.mssr.* keys (recipes/mssr/run_mssr_geo3k.sh: MSSR_ALPHA, MSSR_KAPPA, MSSR_ENTROPY)" ;;
    VADE_THRESHOLD) echo "removed: VADE reads a rollout as correct by data.sampler.vade.correctness (default auto: geo3k's 0.9/1 correct, 0/0.1 wrong); pass +data.sampler.vade.correctness=... as an argument" ;;
    VADE_ABLATION) echo "read only by recipes/vade/run_qwen2_5_vl_7b_grpo_vade_ablation.sh" ;;
    VADE_REQUIRE_REAL_STACK) ;;  # the tests' switch (tests/recipe_run.py), not a recipe knob
    VADE_* | DIVA_* | MSSR_* | DAPO_*) echo "not a knob of this recipe (docs/recipes.md lists them)" ;;
    *) if [ -n "$(knob_key "$1")" ]; then echo "not read by this recipe: pass $(knob_key "$1")=... as an argument"; fi ;;
  esac
}

check_knobs() {
  local name problem refused=0
  for name in $(compgen -e); do
    case " $RECIPE_KNOBS " in *" $name "*) continue ;; esac
    problem="$(knob_problem "$name")"
    if [ -n "$problem" ]; then
      echo "$(basename "$0"): knob $name: $problem" >&2
      refused=1
    fi
  done
  if [ "$refused" = 1 ]; then exit 2; fi
}

RUN_VERL_CALLS=0

run_verl() {
  local module="$1"
  shift
  RUN_VERL_CALLS=$((RUN_VERL_CALLS + 1))
  if [ "$PRINT_OVERRIDES" = 1 ]; then
    if [ "$RUN_VERL_CALLS" -gt 1 ]; then echo; fi
    printf '%s\n' "$@"
  elif [ "$DRY_RUN" = 1 ]; then
    "$PYTHON" -m vade_verl.dryrun --trainer "$module" "$@"
  else
    "$PYTHON" -m "$module" "$@"
  fi
}
