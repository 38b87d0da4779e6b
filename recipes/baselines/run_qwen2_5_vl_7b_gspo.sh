#!/usr/bin/env bash
# Baseline: plain GSPO on Qwen2.5-VL-7B-Instruct with verl's random sampler (VADE paper, "GSPO").
#   bash recipes/baselines/run_qwen2_5_vl_7b_gspo.sh [hydra overrides...]   (DRY_RUN=1: check only)
# Environment parameters: recipes/common.sh.
set -xeuo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-VL-7B-Instruct}
ROLLOUT_TP=${ROLLOUT_TP:-2}

geo3k_args "$MODEL_PATH" "$ROLLOUT_TP"
run_trainer "${ARGS[@]}" "${GSPO_ARGS[@]}" data.shuffle=True data.seed=1 "$@"
