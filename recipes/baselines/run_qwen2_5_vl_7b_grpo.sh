#!/usr/bin/env bash
# Baseline: plain GRPO on Qwen2.5-VL-7B-Instruct with verl's random sampler (VADE paper, "GRPO").
# Same settings as recipes/vade/run_qwen2_5_vl_7b_grpo_vade.sh without the VADE sampler.
# To log the same vade/* metrics (effective-gradient ratio) on random batches, add the overrides
#   data.sampler.class_path=pkg://vade_verl.sampler data.sampler.class_name=VADESampler
#   data.dataloader_num_workers=0 +data.sampler.vade.enable=False
#   bash recipes/baselines/run_qwen2_5_vl_7b_grpo.sh [hydra overrides...]   (DRY_RUN=1: check only)
# Environment parameters: recipes/common.sh.
set -xeuo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-VL-7B-Instruct}
ROLLOUT_TP=${ROLLOUT_TP:-2}

geo3k_args "$MODEL_PATH" "$ROLLOUT_TP"
run_trainer "${ARGS[@]}" data.shuffle=True data.seed=1 "$@"
