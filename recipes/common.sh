# Sourced by the recipes for three helpers; it sets nothing that a recipe does not show.
#   knob NAME DEFAULT  NAME from the environment, else DEFAULT; notes that this recipe reads NAME
#   check_knobs        refuses misspelled knobs, the knobs this recipe does not read and old knob names,
#                      saying what to use; leaves alone names no recipe owns (N, TP, PATH, LOCAL_RANK, ...)
#   run_verl MODULE ARGS...
#                      python3 -m MODULE ARGS (the trainer); DRY_RUN=1: check the config on CPU instead
#                      (python3 -m vade_verl.dryrun, no Ray, no model); DRY_RUN=strict: the same, and a model,
#                      data file or checkout that is not on this machine is an error; PRINT_OVERRIDES=1: print
#                      ARGS, one per line (an empty line between the calls of a recipe that runs the trainer twice)
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

# The shared knobs and the Hydra key each sets; knob_key NAME prints it (empty for a name that is not one).
declare -A KNOB_KEYS=(
  [MODEL_PATH]=actor_rollout_ref.model.path
  [TRAIN_FILES]=data.train_files
  [DATA_DIR]=data.train_files
  [VAL_FILES]=data.val_files
  [TRAIN_BATCH]=data.train_batch_size
  [ROLLOUT_N]=actor_rollout_ref.rollout.n
  [MINI_BATCH]=actor_rollout_ref.actor.ppo_mini_batch_size
  [MICRO_BATCH]=actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu
  [LR]=actor_rollout_ref.actor.optim.lr
  [KL_COEF]=actor_rollout_ref.actor.kl_loss_coef
  [GRAD_CLIP]=actor_rollout_ref.actor.grad_clip
  [MAX_PROMPT]=data.max_prompt_length
  [MAX_RESPONSE]=data.max_response_length
  [TOTAL_EPOCHS]=trainer.total_epochs
  [TOTAL_STEPS]=trainer.total_training_steps
  [N_GPUS]=trainer.n_gpus_per_node
  [NNODES]=trainer.nnodes
  [ROLLOUT_TP]=actor_rollout_ref.rollout.tensor_model_parallel_size
  [SAVE_FREQ]=trainer.save_freq
  [TEST_FREQ]=trainer.test_freq
  [CKPT_KEEP]=trainer.max_actor_ckpt_to_keep
  [CKPT_DIR]=trainer.default_local_dir
  [PROJECT]=trainer.project_name
  [EXPERIMENT]=trainer.experiment_name
  [LOGGER]=trainer.logger
  [TRAINER]="(the trainer module)"
)
# knobs read by one variant script (it unsets them before the full recipe) or by every recipe
RUN_KNOBS="PYTHON DRY_RUN PRINT_OVERRIDES VADE_ABLATION DAPO_GEN_BATCH VERL_RECIPE_ROOT"
# spelled-out names that no edit distance reaches: NAME=KNOB
KNOB_ALIASES="LEARNING_RATE=LR"

knob_key() {
  echo "${KNOB_KEYS[$1]:-}"
}

# knob_problem NAME: why this recipe refuses the environment variable NAME (empty: not a recipe knob). Old
# names of one word (N, TP, BATCH, EPOCHS, ROLLOUT, SAMPLER, ABLATION) are not refused: a shell may export
# them for something else.
knob_problem() {
  case "$1" in
    GEN_BATCH) echo "renamed DAPO_GEN_BATCH (read by recipes/baselines/run_qwen2_5_vl_7b_grpo_dapo.sh)" ;;
    NUM_VARIANTS) echo "renamed DIVA_NUM_VARIANTS (read by recipes/diva/run_diva_geo3k.sh)" ;;
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

# knob_near NAME KNOB...: the KNOB that NAME most likely misspells, or nothing. A match is (docs/recipes.md
# section 3): an optimal-string-alignment distance (Damerau-Levenshtein, each substring edited once) of 1 when
# the shorter name has 4-7 characters, of 1-2 when it has 8 or more (names under 4 characters never match: N,
# TP, LR are too short to tell a typo from another name); or NAME = KNOB_WORD... for a KNOB of two or more
# words (TRAIN_BATCH_SIZE, N_GPUS_PER_NODE: the Hydra key's words spelled out), which ranks first. Ties: the
# first in alphabetical order.
knob_near() {
  awk -v name="$1" '
    function osa(a, b,   la, lb, i, j, d, v) {
      la = length(a); lb = length(b)
      for (i = 0; i <= la; i++) d[i, 0] = i
      for (j = 0; j <= lb; j++) d[0, j] = j
      for (i = 1; i <= la; i++)
        for (j = 1; j <= lb; j++) {
          v = d[i - 1, j - 1] + (substr(a, i, 1) != substr(b, j, 1))
          if (d[i - 1, j] + 1 < v) v = d[i - 1, j] + 1
          if (d[i, j - 1] + 1 < v) v = d[i, j - 1] + 1
          if (i > 1 && j > 1 && substr(a, i, 1) == substr(b, j - 1, 1) && substr(a, i - 1, 1) == substr(b, j, 1) && d[i - 2, j - 2] + 1 < v) v = d[i - 2, j - 2] + 1
          d[i, j] = v
        }
      return d[la, lb]
    }
    BEGIN {
      best = ""; best_rank = 99
      for (k = 2; k < ARGC; k++) {
        knob = ARGV[k]
        if (knob == name) continue
        shortest = length(name) < length(knob) ? length(name) : length(knob)
        allowed = shortest >= 8 ? 2 : shortest >= 4 ? 1 : 0
        if (index(knob, "_") && index(name, knob "_") == 1) rank = 0
        else if (length(name) - length(knob) > allowed || length(knob) - length(name) > allowed) continue
        else rank = osa(name, knob)
        if (rank > allowed) continue
        if (rank < best_rank || (rank == best_rank && knob < best)) { best = knob; best_rank = rank }
      }
      print best
    }' "$@"
}

# knob_refusal NAME: why this recipe refuses the environment variable NAME, given its knobs (empty: accepted).
knob_refusal() {
  local name="$1" known alias near
  case " $RECIPE_KNOBS " in *" $name "*) return ;; esac
  known="${!KNOB_KEYS[*]} $RUN_KNOBS"
  case " $known " in *" $name "*) knob_problem "$name"; return ;; esac
  near=""
  for alias in $KNOB_ALIASES; do
    if [ "${alias%%=*}" = "$name" ]; then near="${alias#*=}"; fi
  done
  [ -n "$near" ] || near="$(knob_near "$name" $RECIPE_KNOBS $known)"
  if [ -n "$near" ]; then
    case " $RECIPE_KNOBS " in
      *" $near "*) echo "did you mean $near?" ;;
      *) echo "did you mean $near? ($near: $(knob_problem "$near"))" ;;
    esac
    return
  fi
  knob_problem "$name"
}

check_knobs() {
  local name problem refused=0
  for name in $(compgen -e); do
    problem="$(knob_refusal "$name")"
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
  elif [ "$DRY_RUN" = strict ]; then
    "$PYTHON" -m vade_verl.dryrun --strict --trainer "$module" "$@"
  elif [ "$DRY_RUN" != 0 ]; then
    echo "$(basename "$0"): DRY_RUN=$DRY_RUN: use 0 (train), 1 (check the config) or strict (check it, and the model, data and checkout)" >&2
    exit 2
  else
    "$PYTHON" -m "$module" "$@"
  fi
}
