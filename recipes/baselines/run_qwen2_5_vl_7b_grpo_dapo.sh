#!/usr/bin/env bash
# Baseline: GRPO + DAPO dynamic sampling on Qwen2.5-VL-7B-Instruct (VADE paper, "GRPO+DAPO").
# verl's core trainer does not implement algorithm.filter_groups (0.7.1 and 0.9.1 only have its
# config dataclass): this runs verl's DAPO recipe trainer, `python3 -m recipe.dapo.main_dapo`, from
# a verl source checkout (VERL_RECIPE_ROOT, holding recipe/dapo; use the recipe version that matches
# your installed verl). It draws gen_batch_size prompts, drops the groups whose rollouts all got the
# same reward, and draws again until train_batch_size informative groups are collected.
# Only dynamic sampling is taken from DAPO: everything else is as in the GRPO baseline.
#   VERL_RECIPE_ROOT=~/src/verl bash recipes/baselines/run_qwen2_5_vl_7b_grpo_dapo.sh [overrides...]
#   DRY_RUN=1 bash recipes/baselines/run_qwen2_5_vl_7b_grpo_dapo.sh     # check only, no checkout needed
# Environment parameters: recipes/common.sh.
set -xeuo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-VL-7B-Instruct}
ROLLOUT_TP=${ROLLOUT_TP:-2}
GEN_BATCH=$((TRAIN_BATCH * 3))  # verl's DAPO recipes oversample 3x

geo3k_args "$MODEL_PATH" "$ROLLOUT_TP"
# metric=seq_reward (our choice): geo3k's reward function returns no 'acc' entry for metric=acc, so
# groups are compared on the total reward 0.9 * correct + 0.1 * format.
# max_num_gen_batches=10 (our choice): at most 10 oversampled draws per step (0 = no limit).
run_trainer --dapo "${ARGS[@]}" data.shuffle=True data.seed=1 \
  data.gen_batch_size=$GEN_BATCH \
  algorithm.filter_groups.enable=True \
  algorithm.filter_groups.metric=seq_reward \
  algorithm.filter_groups.max_num_gen_batches=10 \
  "$@"
