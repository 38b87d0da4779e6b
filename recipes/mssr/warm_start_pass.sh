# Sourced by recipes/mssr/run_mssr_geo3k.sh (after its knobs and common.sh): the warm-start pass.
#   run_warm_start_pass TRAINING_OVERRIDES... RECIPE_ARGS...
# The training run validating the initial policy once over the training rows in their order, sampled as in
# training; verl dumps every scored rollout to $MSSR_WARM_DIR/<global step 0>.jsonl (ray_trainer.py:
# _dump_generations, verl 0.7.1). The pass's overrides go last, so no recipe argument turns it into training.
run_warm_start_pass() {
  local pass=(
    trainer.val_only=True                                         # authors: _initialize_mvsr_from_dataset,
    trainer.val_before_train=True                                 # here verl's own validation
    trainer.resume_mode=disable                                   # global step 0: 0.jsonl
    data.val_files="$TRAIN_FILES"                                 # the training rows,
    data.validation_shuffle=False                                 # in dataset order,
    data.val_max_samples=-1                                       # every one
    actor_rollout_ref.rollout.val_kwargs.do_sample=True           # authors: sampled as in training
    actor_rollout_ref.rollout.val_kwargs.temperature=1.0
    actor_rollout_ref.rollout.val_kwargs.top_p=1.0
    actor_rollout_ref.rollout.val_kwargs.top_k=-1
    actor_rollout_ref.rollout.val_kwargs.n=1                      # authors: mvsr_n_init
    trainer.validation_data_dir="$MSSR_WARM_DIR"
    trainer.experiment_name="${EXPERIMENT}_warm_start"            # ours: its own logger run
  )
  run_verl "$TRAINER" "$@" "${pass[@]}"
}

# After a pass that trained nothing: stop before training when verl wrote no dump (a pass that exits 0
# without validating, a wrong trainer.validation_data_dir), instead of at the first step's advantage.
require_warm_start_dump() {
  if [ ! -f "$MSSR_WARM_DIR/0.jsonl" ]; then
    echo "$(basename "$0"): the warm-start pass wrote no $MSSR_WARM_DIR/0.jsonl (verl's validation dump of global" \
      "step 0, trainer.validation_data_dir=$MSSR_WARM_DIR), which +data.mssr.warm_start_file reads at the first" \
      "step; check the pass's log, or set MSSR_INIT=first_visit" >&2
    exit 2
  fi
}
