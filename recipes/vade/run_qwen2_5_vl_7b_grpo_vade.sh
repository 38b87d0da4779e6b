#!/usr/bin/env bash
# GRPO + VADE on Qwen2.5-VL-7B-Instruct, geo3k-style data (VADE paper Table 1, "GRPO+VADE").
#   python -m vade_verl.data.geo3k --out ~/data/geo3k
#   bash recipes/vade/run_qwen2_5_vl_7b_grpo_vade.sh [hydra overrides...]
#   DRY_RUN=1 bash recipes/vade/run_qwen2_5_vl_7b_grpo_vade.sh        # check the config on CPU
# Environment parameters: recipes/common.sh.
set -xeuo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-VL-7B-Instruct}
ROLLOUT_TP=${ROLLOUT_TP:-2}

geo3k_args "$MODEL_PATH" "$ROLLOUT_TP"
run_trainer "${ARGS[@]}" "${VADE_ARGS[@]}" "$@"
