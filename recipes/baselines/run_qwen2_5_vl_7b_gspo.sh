#!/usr/bin/env bash
# Baseline GSPO on Qwen2.5-VL-7B-Instruct, uniform random batches (VADE paper, "GSPO"):
# recipes/vade/run_qwen2_5_vl_7b_gspo_vade.sh with VADE's selection off (as in run_qwen2_5_vl_7b_grpo.sh).
# Same usage and knobs (KL_COEF refused: no KL loss, as there).
set -euo pipefail
export EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_7b_gspo}"
exec bash "$(dirname "$0")/../vade/run_qwen2_5_vl_7b_gspo_vade.sh" +data.sampler.vade.enable=False "$@"
