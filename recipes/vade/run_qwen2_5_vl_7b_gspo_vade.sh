#!/usr/bin/env bash
# GSPO + VADE on Qwen2.5-VL-7B-Instruct (VADE paper, "GSPO+VADE"): run_qwen2_5_vl_7b_grpo_vade.sh
# with GSPO's sequence-level loss (arXiv 2507.18071; values as in verl's examples/gspo_trainer).
# GRPO's group-relative advantage stays (algorithm.adv_estimator=grpo). Same usage and knobs, but no
# KL loss (as every script of verl's examples/gspo_trainer), so KL_COEF is refused.
set -euo pipefail
if [ -n "${KL_COEF:-}" ]; then
  echo "$(basename "$0"): knob KL_COEF: the GSPO recipes have no KL loss (verl's examples/gspo_trainer); pass actor_rollout_ref.actor.use_kl_loss=True actor_rollout_ref.actor.kl_loss_coef=... as arguments" >&2
  exit 2
fi
export EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_7b_gspo_vade}"
GSPO=(
  actor_rollout_ref.actor.policy_loss.loss_mode=gspo         # GSPO paper: sequence-level importance ratio
  actor_rollout_ref.actor.clip_ratio_low=0.0003              # GSPO paper
  actor_rollout_ref.actor.clip_ratio_high=0.0004             # GSPO paper
  actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean  # GSPO paper
  actor_rollout_ref.actor.use_kl_loss=False                  # verl's examples/gspo_trainer (KL off in all)
)
exec bash "$(dirname "$0")/run_qwen2_5_vl_7b_grpo_vade.sh" "${GSPO[@]}" "$@"
