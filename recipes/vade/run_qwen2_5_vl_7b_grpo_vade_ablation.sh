#!/usr/bin/env bash
# VADE ablations on Qwen2.5-VL-7B-Instruct with GRPO (VADE paper's ablation table):
#   ABLATION=variance  score I = p(1-p) instead of InfoGain p(1-p)^2
#   ABLATION=greedy    posterior mean instead of a Thompson draw
#   ABLATION=no_decay  l1 = l2 = 1 (posteriors never forget)
#   ABLATION=greedy bash recipes/vade/run_qwen2_5_vl_7b_grpo_vade_ablation.sh [overrides...]  (DRY_RUN=1: check only)
# Environment parameters: recipes/common.sh.
set -xeuo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-VL-7B-Instruct}
ROLLOUT_TP=${ROLLOUT_TP:-2}
case "${ABLATION:-}" in
  variance) ABLATION_ARGS=(+data.sampler.vade.score=variance) ;;
  greedy) ABLATION_ARGS=(+data.sampler.vade.selection=greedy) ;;
  no_decay) ABLATION_ARGS=(+data.sampler.vade.decay=False) ;;
  *) echo "set ABLATION to variance, greedy or no_decay (got '${ABLATION:-}')" >&2; exit 2 ;;
esac

EXPERIMENT=${EXPERIMENT:-qwen2_5_vl_7b_grpo_vade_$ABLATION}
geo3k_args "$MODEL_PATH" "$ROLLOUT_TP"
run_trainer "${ARGS[@]}" "${VADE_ARGS[@]}" "${ABLATION_ARGS[@]}" "$@"
