#!/usr/bin/env bash
# DIVA-GRPO end-to-end on CPU: verl's own trainer (python -m verl.trainer.main_ppo: Ray, FSDP actor, verl's vLLM
# rollout on vLLM's CPU build through DivaAgentLoopManager) trains the tiny random Qwen2.5-VL of vade_verl.tiny
# on image rows (the settings of recipes/ci/tiny_cpu_common.sh) with DIVA-GRPO for STEPS steps, then resumes for
# one more. Variants are drawn for each problem's difficulty: image perturbations (noise, salt-and-pepper,
# rotation, blur, downscaling), paraphrases and solution hints, so perturbed images go through the processor
# into vLLM and the actor. tests/test_diva_e2e_tiny.py checks the run (docs/ci_run.md).
#
#   recipes/diva/run_diva_tiny_cpu.sh [WORK_DIR]        (default: ci_tmp/diva_tiny_cpu; STEPS default 3)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(realpath -m "${1:-$ROOT/ci_tmp/diva_tiny_cpu}")"
STEPS="${STEPS:-3}"
PYTHON="${PYTHON:-python}"
cd "$ROOT"

source "$ROOT/recipes/ci/tiny_cpu_common.sh"
rm -rf "$WORK" && mkdir -p "$WORK"
"$PYTHON" -m vade_verl.tiny.build --out "$WORK" --train-rows 32 --val-rows 4 --seed 0
# the columns DIVA's hint and paraphrase variants read
"$PYTHON" - "$WORK/data/train.parquet" <<'PY'
import sys, pandas as pd
df = pd.read_parquet(sys.argv[1])
df["solution"] = ["how many squares ?\nthe answer is " + str(rm["ground_truth"]) for rm in df["reward_model"]]
df["paraphrase"] = ["<image>the answer is how many squares ?"] * len(df)
df.to_parquet(sys.argv[1], index=False)
PY

run_trainer() {  # $1 = total_training_steps
  "${GUARDED[@]}" "$PYTHON" -m verl.trainer.main_ppo \
    "${TINY_CPU_OVERRIDES[@]}" \
    "${TINY_CPU_RAY_MODULES[@]}" \
    algorithm.adv_estimator=diva_grpo \
    +algorithm.diva.k=0.1 \
    data.max_prompt_length=64 \
    data.custom_cls.path=pkg://vade_verl.diva.verl_plugin \
    data.custom_cls.name=DivaRLHFDataset \
    +data.diva.num_variants=1 \
    +data.diva.seed=3 \
    +actor_rollout_ref.rollout.agent.agent_loop_manager_class=vade_verl.diva.verl_plugin.DivaAgentLoopManager \
    trainer.logger='[console,file]' \
    trainer.experiment_name=diva_tiny_cpu \
    trainer.save_freq="$STEPS" \
    trainer.total_training_steps="$1" \
    +ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH="$VERL_FILE_LOGGER_PATH"
}

export VERL_FILE_LOGGER_PATH="$WORK/metrics_run1.jsonl"
run_trainer "$STEPS" 2>&1 | tee "$WORK/run1.log"
export VERL_FILE_LOGGER_PATH="$WORK/metrics_run2.jsonl"
run_trainer "$((STEPS + 1))" 2>&1 | tee "$WORK/run2.log"
