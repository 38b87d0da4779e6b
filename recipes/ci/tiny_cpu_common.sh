# Sourced by the tiny CPU runs of verl's real trainer (recipes/ci/run_tiny_cpu.sh for VADE,
# recipes/diva/run_diva_tiny_cpu.sh for DIVA-GRPO): the environment and the overrides they share.
# Needs ROOT (the repository) and WORK (the run's folder, holding model/ and data/ from
# `python -m vade_verl.tiny.build`). Why each CPU setting is there: docs/ci_run.md.

# every Ray process imports the hf rollout on `import verl` (it registers rollout name "hf")
export VERL_USE_EXTERNAL_MODULES=vade_verl.tiny.cpu_compat,vade_verl.tiny.hf_server
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
export TOKENIZERS_PARALLELISM=false RAY_DEDUP_LOGS=0 HYDRA_FULL_ERROR=1
unset RAY_ADDRESS

TINY_CPU_OVERRIDES=(
  algorithm.use_kl_in_reward=False
  data.train_files="$WORK/data/train.parquet"
  data.val_files="$WORK/data/val.parquet"
  data.train_batch_size=4
  data.max_response_length=4
  data.dataloader_num_workers=0
  data.seed=0
  actor_rollout_ref.model.path="$WORK/model"
  actor_rollout_ref.model.use_remove_padding=False
  +actor_rollout_ref.model.override_config.attn_implementation=sdpa
  actor_rollout_ref.actor.strategy=fsdp2
  actor_rollout_ref.actor.optim.lr=1e-3
  actor_rollout_ref.actor.ppo_mini_batch_size=4
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8
  actor_rollout_ref.actor.use_kl_loss=False
  actor_rollout_ref.actor.use_torch_compile=False
  actor_rollout_ref.actor.fsdp_config.param_offload=False
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=False
  actor_rollout_ref.actor.checkpoint.save_contents='[model,optimizer,extra]'
  actor_rollout_ref.rollout.name=hf
  actor_rollout_ref.rollout.n=4
  actor_rollout_ref.rollout.tensor_model_parallel_size=1
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16
  actor_rollout_ref.rollout.agent.num_workers=1
  actor_rollout_ref.rollout.temperature=1.0
  reward.num_workers=1
  reward.custom_reward_function.path="$ROOT/vade_verl/tiny/task.py"
  reward.custom_reward_function.name=compute_score
  trainer.device=cuda
  trainer.n_gpus_per_node=1
  trainer.nnodes=1
  trainer.project_name=vade_ci
  trainer.default_local_dir="$WORK/ckpt"
  trainer.rollout_data_dir="$WORK/rollouts"
  trainer.val_before_train=False
  trainer.test_freq=-1
  trainer.resume_mode=auto
  trainer.total_epochs=100
  ray_kwargs.ray_init.num_cpus=8
  +ray_kwargs.ray_init.num_gpus=1
  +ray_kwargs.ray_init.include_dashboard=False
  "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=\"$VERL_USE_EXTERNAL_MODULES\""
)
