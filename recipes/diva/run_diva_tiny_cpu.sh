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
export VERL_USE_EXTERNAL_MODULES=vade_verl.tiny.cpu_compat,vade_verl.tiny.hf_server
export PYTHONPATH="$ROOT" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false RAY_DEDUP_LOGS=0 HYDRA_FULL_ERROR=1
unset RAY_ADDRESS
run_trainer() {
  local total="$1"; shift
  "$PYTHON" -m verl.trainer.main_ppo \
    algorithm.adv_estimator=diva_grpo \
    +algorithm.diva.k=0.1 \
    algorithm.use_kl_in_reward=False \
    data.train_files="$WORK/data/train.parquet" \
    data.val_files="$WORK/data/val.parquet" \
    data.train_batch_size=4 \
    data.max_prompt_length=64 \
    data.max_response_length=4 \
    data.dataloader_num_workers=0 \
    data.seed=0 \
    data.custom_cls.path=pkg://vade_verl.verl_diva \
    data.custom_cls.name=DivaRLHFDataset \
    +data.diva.num_variants=1 \
    +data.diva.seed=3 \
    +actor_rollout_ref.rollout.agent.agent_loop_manager_class=vade_verl.verl_diva.DivaAgentLoopManager \
    actor_rollout_ref.model.path="$WORK/model" \
    actor_rollout_ref.model.use_remove_padding=False \
    +actor_rollout_ref.model.override_config.attn_implementation=sdpa \
    actor_rollout_ref.actor.strategy=fsdp2 \
    actor_rollout_ref.actor.optim.lr=1e-3 \
    actor_rollout_ref.actor.ppo_mini_batch_size=4 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8 \
    actor_rollout_ref.actor.use_kl_loss=False \
    actor_rollout_ref.actor.use_torch_compile=False \
    actor_rollout_ref.actor.fsdp_config.param_offload=False \
    actor_rollout_ref.actor.fsdp_config.optimizer_offload=False \
    actor_rollout_ref.actor.checkpoint.save_contents='[model,optimizer,extra]' \
    actor_rollout_ref.rollout.name=hf \
    actor_rollout_ref.rollout.n=4 \
    actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16 \
    actor_rollout_ref.rollout.agent.num_workers=1 \
    actor_rollout_ref.rollout.temperature=1.0 \
    reward.num_workers=1 \
    reward.custom_reward_function.path="$ROOT/vade_verl/tiny/task.py" \
    reward.custom_reward_function.name=compute_score \
    trainer.device=cuda \
    trainer.n_gpus_per_node=1 \
    trainer.nnodes=1 \
    trainer.logger='[console]' \
    trainer.project_name=vade_ci \
    trainer.experiment_name=diva_tiny_cpu \
    trainer.default_local_dir="$WORK/ckpt" \
    trainer.rollout_data_dir="$WORK/rollouts" \
    trainer.val_before_train=False \
    trainer.test_freq=-1 \
    trainer.save_freq=3 \
    trainer.resume_mode=auto \
    trainer.total_epochs=100 \
    trainer.total_training_steps="$total" \
    ray_kwargs.ray_init.num_cpus=8 \
    +ray_kwargs.ray_init.num_gpus=1 \
    +ray_kwargs.ray_init.include_dashboard=False \
    "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=\"$VERL_USE_EXTERNAL_MODULES\"" \
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
