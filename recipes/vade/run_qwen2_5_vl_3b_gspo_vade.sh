#!/usr/bin/env bash
# GSPO + VADE on Qwen2.5-VL-3B-Instruct: run_qwen2_5_vl_7b_gspo_vade.sh with the 3B model, whose
# vLLM engine fits one GPU (ours: ROLLOUT_TP=1). Same usage and knobs (KL_COEF refused: no KL loss).
set -euo pipefail
export MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-VL-3B-Instruct}"
export ROLLOUT_TP="${ROLLOUT_TP:-1}"
export EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_3b_gspo_vade}"
exec bash "$(dirname "$0")/run_qwen2_5_vl_7b_gspo_vade.sh" "$@"
