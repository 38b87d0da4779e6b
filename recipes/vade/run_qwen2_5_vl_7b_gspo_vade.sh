#!/usr/bin/env bash
# GSPO + VADE on Qwen2.5-VL-7B-Instruct, geo3k-style data (VADE paper, "GSPO+VADE").
#   bash recipes/vade/run_qwen2_5_vl_7b_gspo_vade.sh [hydra overrides...]   (DRY_RUN=1: check only)
# Environment parameters: recipes/common.sh.
set -xeuo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-VL-7B-Instruct}
ROLLOUT_TP=${ROLLOUT_TP:-2}

geo3k_args "$MODEL_PATH" "$ROLLOUT_TP"
run_trainer "${ARGS[@]}" "${GSPO_ARGS[@]}" "${VADE_ARGS[@]}" "$@"
