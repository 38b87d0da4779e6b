#!/usr/bin/env bash
# Baseline GRPO on Qwen2.5-VL-7B-Instruct, uniform random batches (VADE paper, "GRPO"):
# recipes/vade/run_qwen2_5_vl_7b_grpo_vade.sh with VADE's selection off. The sampler then draws a
# random permutation per epoch, as verl's RandomSampler does, and still logs vade/effective_ratio
# (share of groups whose rewards differ) for comparison. Same usage and knobs. (verl's own
# RandomSampler: the VADE recipe with data.sampler.class_path=null data.sampler.class_name=null.)
set -euo pipefail
export EXPERIMENT="${EXPERIMENT:-qwen2_5_vl_7b_grpo}"
exec bash "$(dirname "$0")/../vade/run_qwen2_5_vl_7b_grpo_vade.sh" +data.sampler.vade.enable=False "$@"
