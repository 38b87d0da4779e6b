#!/usr/bin/env bash
# VADE ablations (VADE paper's ablation table): run_qwen2_5_vl_7b_grpo_vade.sh with one VADE part
# replaced, chosen by the knob VADE_ABLATION:
#   variance  score I = p(1-p) instead of InfoGain p(1-p)^2
#   greedy    the posterior mean instead of a Thompson draw
#   no_decay  l1 = l2 = 1: posteriors never forget
#   VADE_ABLATION=greedy bash recipes/vade/run_qwen2_5_vl_7b_grpo_vade_ablation.sh [hydra overrides]
set -euo pipefail
case "${VADE_ABLATION:-}" in
  variance) ABLATION_ARG=+data.sampler.vade.score=variance ;;
  greedy) ABLATION_ARG=+data.sampler.vade.selection=greedy ;;
  no_decay) ABLATION_ARG=+data.sampler.vade.decay=False ;;
  *) echo "$(basename "$0"): set VADE_ABLATION to variance, greedy or no_decay (got '${VADE_ABLATION:-}')" >&2; exit 2 ;;
esac
export EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_7b_grpo_vade_$VADE_ABLATION}"
unset VADE_ABLATION  # read here; the recipe below refuses knobs it does not read
exec bash "$(dirname "$0")/run_qwen2_5_vl_7b_grpo_vade.sh" "$ABLATION_ARG" "$@"
