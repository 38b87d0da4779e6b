#!/usr/bin/env bash
# CI regression run: verl's own trainer (python -m verl.trainer.main_ppo: Ray, FSDP2 actor, agent-loop
# rollout, reward loop) trains a tiny random Qwen2 with GRPO + the VADE sampler on CPU for STEPS steps,
# then a second launch resumes from global_step_STEPS and trains one more step. About 4-5 minutes on
# 2 cores. See docs/ci_run.md for what each setting is for and tests/test_e2e_tiny.py for the checks.
#
#   recipes/ci/run_tiny_cpu.sh [WORK_DIR]        (default: ci_tmp/tiny_cpu)
#
# Env knobs: STEPS (default 3), SAMPLER=vade|default (default vade), PYTHON (default python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(realpath -m "${1:-$ROOT/ci_tmp/tiny_cpu}")"
STEPS="${STEPS:-3}"
SAMPLER="${SAMPLER:-vade}"
PYTHON="${PYTHON:-python}"
cd "$ROOT"

case "$WORK" in
  / | "$ROOT" | "$HOME") echo "run_tiny_cpu.sh: refusing to use $WORK as the work dir (it is wiped)" >&2; exit 2 ;;
esac

# the one-line verl fix this run needs on CPU (idempotent, checks verl==0.7.1; see patches/README.md)
PYTHON="$PYTHON" "$ROOT/patches/apply.sh"

rm -rf "$WORK" && mkdir -p "$WORK"
"$PYTHON" -m vade_verl.tiny.build --out "$WORK" --train-rows 32 --val-rows 4 --seed 0

# every Ray process imports the hf rollout on `import verl` (it registers rollout name "hf")
export VERL_USE_EXTERNAL_MODULES=vade_verl.tiny.cpu_compat,vade_verl.tiny.hf_server
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
export TOKENIZERS_PARALLELISM=false RAY_DEDUP_LOGS=0 HYDRA_FULL_ERROR=1
unset RAY_ADDRESS

SAMPLER_ARGS=()
if [ "$SAMPLER" = vade ]; then
  SAMPLER_ARGS=(
    data.sampler.class_path=pkg://vade_verl.sampler
    data.sampler.class_name=VADESampler
    +data.sampler.vade.l1=0.2
    +data.sampler.vade.l2=0.999
    +data.sampler.vade.seed=0
  )
fi

run_trainer() {  # $1 = total_training_steps; the rest are extra overrides
  local total="$1"; shift
  "$PYTHON" -m verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo \
    algorithm.use_kl_in_reward=False \
    data.train_files="$WORK/data/train.parquet" \
    data.val_files="$WORK/data/val.parquet" \
    data.train_batch_size=4 \
    data.max_prompt_length=32 \
    data.max_response_length=4 \
    data.dataloader_num_workers=0 \
    data.seed=0 \
    "${SAMPLER_ARGS[@]}" \
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
    trainer.logger='[console,file]' \
    trainer.project_name=vade_ci \
    trainer.experiment_name=tiny_cpu \
    trainer.default_local_dir="$WORK/ckpt" \
    trainer.rollout_data_dir="$WORK/rollouts" \
    trainer.val_before_train=False \
    trainer.test_freq=-1 \
    trainer.save_freq="$STEPS" \
    trainer.resume_mode=auto \
    trainer.total_epochs=100 \
    trainer.total_training_steps="$total" \
    ray_kwargs.ray_init.num_cpus=8 \
    +ray_kwargs.ray_init.num_gpus=1 \
    +ray_kwargs.ray_init.include_dashboard=False \
    "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=\"$VERL_USE_EXTERNAL_MODULES\"" \
    +ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH="$VERL_FILE_LOGGER_PATH" \
    "$@"
}

export VERL_FILE_LOGGER_PATH="$WORK/metrics_run1.jsonl"
run_trainer "$STEPS" 2>&1 | tee "$WORK/run1.log"
export VERL_FILE_LOGGER_PATH="$WORK/metrics_run2.jsonl"
run_trainer "$((STEPS + 1))" 2>&1 | tee "$WORK/run2.log"
