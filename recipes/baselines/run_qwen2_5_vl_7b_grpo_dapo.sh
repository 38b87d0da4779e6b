#!/usr/bin/env bash
# Baseline GRPO + DAPO dynamic sampling on Qwen2.5-VL-7B-Instruct (VADE paper, "GRPO+DAPO"):
# recipes/vade/run_qwen2_5_vl_7b_grpo_vade.sh with verl's random sampler, run by the DAPO recipe's
# trainer (verl-recipe's dapo/main_dapo.py; verl's wheel has no trainer that filters groups). Each
# step draws DAPO_GEN_BATCH prompts, drops the groups whose rewards are all equal and draws again
# until TRAIN_BATCH groups are kept. Taken from DAPO: dynamic sampling; its token-level loss is verl's
# default (loss_agg_mode=token-mean), so every GRPO recipe here has it too; not taken: clip-higher and
# the overlong penalty. The loader's batch is DAPO_GEN_BATCH, so an epoch has 3x fewer steps than
# GRPO's for about as many rollouts (docs/recipes.md).
#   git clone https://github.com/verl-project/verl-recipe ~/src/verl-recipe
#   git -C ~/src/verl-recipe checkout 8f9e7ac93acac57f6ef7e8dffa3de788d148a09a  # works with verl 0.7.1
#   VERL_RECIPE_ROOT=~/src/verl-recipe bash recipes/baselines/run_qwen2_5_vl_7b_grpo_dapo.sh [overrides]
#   DRY_RUN=1 bash recipes/baselines/run_qwen2_5_vl_7b_grpo_dapo.sh  # check; with VERL_RECIPE_ROOT set: imports
#                     # dapo.main_dapo and its trainer, checks the commit, composes the DAPO recipe's config
#   VERL_RECIPE_ROOT=~/src/verl-recipe DRY_RUN=strict bash recipes/baselines/run_qwen2_5_vl_7b_grpo_dapo.sh
# Knobs: the VADE recipe's (TRAINER excepted), DAPO_GEN_BATCH [3 x TRAIN_BATCH] and VERL_RECIPE_ROOT
# (a verl-recipe checkout, or a verl checkout's recipe/ folder: not a verl checkout's root, whose
# verl/ would shadow the installed verl). Labels as there; dapo = verl-recipe's DAPO scripts.
set -euo pipefail
DAPO_GEN_BATCH="${DAPO_GEN_BATCH:-$((3 * ${TRAIN_BATCH:-128}))}"  # dapo: 3x oversampling
VERL_RECIPE_ROOT="${VERL_RECIPE_ROOT:-}"
if [ -n "${TRAINER:-}" ]; then
  echo "$(basename "$0"): knob TRAINER: not read by this recipe (its trainer is dapo.main_dapo)" >&2
  exit 2
fi
if [ -n "$VERL_RECIPE_ROOT" ] && [ ! -f "$VERL_RECIPE_ROOT/dapo/main_dapo.py" ]; then
  echo "$(basename "$0"): VERL_RECIPE_ROOT=$VERL_RECIPE_ROOT has no dapo/main_dapo.py: give a verl-recipe checkout" >&2
  exit 2
fi
if [ -z "$VERL_RECIPE_ROOT" ] && [ "${DRY_RUN:-0}" != 1 ] && [ "${PRINT_OVERRIDES:-0}" != 1 ]; then
  echo "$(basename "$0"): set VERL_RECIPE_ROOT to a verl-recipe checkout at 8f9e7ac (see this file's header)" >&2
  exit 2
fi
# The checkout itself goes on PYTHONPATH (the module is dapo.main_dapo), so no verl/ source folder does.
[ -z "$VERL_RECIPE_ROOT" ] || export PYTHONPATH="$VERL_RECIPE_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TRAINER=dapo.main_dapo EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_7b_grpo_dapo}"

DAPO=(
  'hydra.searchpath=[pkg://verl.trainer.config]'    # the installed verl's ppo_trainer (the DAPO config
                                                    # names ./verl/trainer/config, a verl checkout's)
  data.sampler.class_path=null                      # verl's random sampler: these replace the VADE recipe's
  data.sampler.class_name=null                      # sampler lines (of two values for a key, the last wins)
  data.dataloader_num_workers=8                     # verl's default, replacing VADE's 0 (no update between steps)
  data.gen_batch_size="$DAPO_GEN_BATCH"
  algorithm.filter_groups.enable=True               # dapo: dynamic sampling
  algorithm.filter_groups.metric=seq_reward         # ours: a group is kept when its rewards differ
  algorithm.filter_groups.max_num_gen_batches=10    # ours: fail after 10 draws without a full batch
)
unset DAPO_GEN_BATCH  # read here; the recipe below refuses knobs it does not read
exec bash "$(dirname "$0")/../vade/run_qwen2_5_vl_7b_grpo_vade.sh" "${DAPO[@]}" "$@"
