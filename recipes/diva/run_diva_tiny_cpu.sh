#!/usr/bin/env bash
# DIVA-GRPO end-to-end on CPU: verl's own trainer (python -m verl.trainer.main_ppo: Ray, FSDP actor, agent-loop
# rollout with DivaAgentLoopManager) trains the tiny random Qwen2 of vade_verl.tiny (the settings of
# recipes/ci/run_tiny_cpu.sh) with DIVA-GRPO for 3 steps, resumes for a 4th, and checks from the
# checkpoints and rollout dumps that every step held 4 problems + 4 variants and that the difficulty
# state was updated each step and restored on resume.
#
#   recipes/diva/run_diva_tiny_cpu.sh [WORK_DIR]        (default: ci_tmp/diva_tiny_cpu)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(realpath -m "${1:-$ROOT/ci_tmp/diva_tiny_cpu}")"
PYTHON="${PYTHON:-python}"
cd "$ROOT"
rm -rf "$WORK" && mkdir -p "$WORK"
"$PYTHON" -m vade_verl.tiny.build --out "$WORK" --train-rows 32 --val-rows 4 --seed 0
"$PYTHON" - "$WORK/data/train.parquet" <<'PY'
import sys, pandas as pd
df = pd.read_parquet(sys.argv[1])
df["solution"] = ["Step 1: read the question\nStep 2: count\nStep 3: the answer is " + str(rm["ground_truth"]) for rm in df["reward_model"]]
df["paraphrase"] = ["Reworded: " + p[-1]["content"] for p in df["prompt"]]
df.to_parquet(sys.argv[1], index=False)
PY
# the one-line verl fix this run needs on CPU (idempotent, checks verl==0.7.1; see patches/README.md)
PYTHON="$PYTHON" "$ROOT/patches/apply.sh"
source "$ROOT/recipes/ci/tiny_cpu_common.sh"
run_trainer() {
  local total="$1"; shift
  "$PYTHON" -m verl.trainer.main_ppo \
    "${TINY_CPU_OVERRIDES[@]}" \
    algorithm.adv_estimator=diva_grpo \
    +algorithm.diva.k=0.1 \
    data.max_prompt_length=64 \
    data.custom_cls.path=pkg://vade_verl.verl_diva \
    data.custom_cls.name=DivaRLHFDataset \
    +data.diva.num_variants=1 \
    +data.diva.seed=3 \
    +actor_rollout_ref.rollout.agent.agent_loop_manager_class=vade_verl.verl_diva.DivaAgentLoopManager \
    trainer.logger='[console]' \
    trainer.experiment_name=diva_tiny_cpu \
    trainer.save_freq=3 \
    trainer.total_training_steps="$total" \
    "$@"
}
run_trainer 3 > "$WORK/run1.log" 2>&1 || { tail -n 60 "$WORK/run1.log"; exit 1; }
run_trainer 4 > "$WORK/run2.log" 2>&1 || { tail -n 60 "$WORK/run2.log"; exit 1; }

"$PYTHON" - "$WORK" <<'PY'
import json, os, sys
import torch
work = sys.argv[1]
def state(step):
    return torch.load(os.path.join(work, "ckpt", f"global_step_{step}", "data.pt"), weights_only=False)["dataset_state"]
for step in (1, 2, 3, 4):
    with open(os.path.join(work, "rollouts", f"{step}.jsonl")) as f:
        rows = sum(1 for _ in f)
    assert rows == 4 * 2 * 4, f"step {step}: {rows} rollouts, expected 4 problems x (1 + 1 variant) x n=4"
s3, s4 = state(3), state(4)
assert s3["tracker"]["num_updates"] == 3 and sum(s3["draws"]) == 12, s3
assert s4["tracker"]["num_updates"] == 4 and sum(s4["draws"]) == 16, s4  # resumed, not restarted
changed = sum(a != 5 for a in s3["tracker"]["difficulty"])
print(f"DIVA tiny CPU run OK: 32 rollouts/step, difficulty updates 3 -> 4 across resume, "
      f"{changed} problems moved off d=5, variants {s4['variant_counts']}")
PY
