#!/usr/bin/env bash
# GSPO + VADE on Qwen2.5-VL-7B-Instruct (VADE paper, "GSPO+VADE"): run_qwen2_5_vl_7b_grpo_vade.sh
# with GSPO's sequence-level loss (arXiv 2507.18071; values as in verl's examples/gspo_trainer).
# GRPO's group-relative advantage stays (algorithm.adv_estimator=grpo). Same usage and knobs.
set -euo pipefail
export EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_7b_gspo_vade}"
GSPO=(
  actor_rollout_ref.actor.policy_loss.loss_mode=gspo         # GSPO paper: sequence-level importance ratio
  actor_rollout_ref.actor.clip_ratio_low=0.0003              # GSPO paper
  actor_rollout_ref.actor.clip_ratio_high=0.0004             # GSPO paper
  actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean  # GSPO paper
)
exec bash "$(dirname "$0")/run_qwen2_5_vl_7b_grpo_vade.sh" "${GSPO[@]}" "$@"
