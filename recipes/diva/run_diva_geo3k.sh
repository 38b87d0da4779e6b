#!/usr/bin/env bash
# DIVA-GRPO (arXiv 2603.01106) on Qwen2.5-VL-7B-Instruct, 8 GPUs, geometry3k: a difficulty per problem, one
# difficulty-matched variant of each problem per batch, the local + global advantage (docs/diva.md).
#   python -m vade_verl.data.geo3k --out ~/data/geo3k                 # data: train/test parquet
#   python -m vade_verl.diva.prep --input ~/data/geo3k/train.parquet --output ~/data/geo3k/train_diva.parquet \
#       --model Qwen/Qwen2.5-VL-7B-Instruct   # once: paraphrases and hint steps (without: hard problems get copies)
#   DRY_RUN=1 bash recipes/diva/run_diva_geo3k.sh                     # check the config on CPU
#   bash recipes/diva/run_diva_geo3k.sh [hydra overrides]             # train; DIVA_SAMPLER=vade: VADE picks problems
# Reproduced: the authors' settings (Siaaaaaa1/DIVA_GRPO_release examples/config.yaml, verl/workers/actor/config.py
# and examples/main_exp/ZSCORENORM_WAN_RRBLOCAL_RRBGLOBAL_5000_k=0.1.sh). Not reproduced: their training set,
# epochs, hosted paraphrases, dynamic batching, scores. Knobs: the `knob` lines, PYTHON, DRY_RUN,
# PRINT_OVERRIDES; a misspelled knob and other recipes' knobs are refused. Labels: verl (examples/grpo_trainer/run_qwen2_5_vl-7b.sh), paper, authors, ours.
set -euo pipefail
source "$(dirname "$0")/../common.sh"

knob MODEL_PATH Qwen/Qwen2.5-VL-7B-Instruct  # paper
knob DATA_DIR "$HOME/data/geo3k"
knob TRAIN_FILES "$DATA_DIR/train_diva.parquet"  # geo3k + diva_prep's columns; else train.parquet, with a WARNING
knob VAL_FILES "$DATA_DIR/test.parquet"      # or the VADE paper's eval sets (docs/recipes.md)
knob TRAIN_BATCH 128     # authors: rollout_batch_size, prompts per step (problems + their variants)
knob DIVA_NUM_VARIANTS 1 # authors: Variant_Num
knob ROLLOUT_N 5         # paper
knob MINI_BATCH 128      # authors: global_batch_size, one actor update per step
knob MICRO_BATCH 4       # ours: MSSR's authors' at the same lengths (DIVA's: 1, dynamic batching)
knob LR 1e-6             # paper
knob MAX_PROMPT 2048     # authors
knob MAX_RESPONSE 4096   # authors
knob TOTAL_EPOCHS 15     # verl, as the VADE recipe (authors: 5 epochs of their own set)
knob N_GPUS 8            # authors
knob NNODES 1            # authors
knob ROLLOUT_TP 2        # verl (authors too): vLLM tensor parallel size
knob SAVE_FREQ 20        # verl, as the VADE recipe
knob TEST_FREQ 5         # verl, as the VADE recipe (authors: 10)
knob CKPT_KEEP 2         # ours: ~100 GB per 7B checkpoint (model + Adam states); verl keeps all
knob PROJECT vade_verl
knob EXPERIMENT diva_geo3k
knob CKPT_DIR "checkpoints/$PROJECT/$EXPERIMENT"  # verl's default
knob LOGGER '["console","wandb"]'                 # verl
knob TRAINER verl.trainer.main_ppo  # verl 0.7.1 (DIVA-GRPO is tested there; docs/diva.md)
knob DIVA_K 0.1          # paper: weight exp(k * dd * sign(A))
knob DIVA_SEED 0         # ours: variant draws
knob DIVA_SAMPLER random # ours: verl's random sampler; vade = VADE chooses the problems
check_knobs
if [ ! -f "$TRAIN_FILES" ] && [ "$TRAIN_FILES" = "$DATA_DIR/train_diva.parquet" ]; then
  echo "WARNING: $TRAIN_FILES missing; training on $DATA_DIR/train.parquet: no hints, hard problems get copies" >&2
  TRAIN_FILES="$DATA_DIR/train.parquet"
fi
PROBLEMS=$((TRAIN_BATCH / (1 + DIVA_NUM_VARIANTS)))  # the loader's problems; + their variants = TRAIN_BATCH
[ $((PROBLEMS * (1 + DIVA_NUM_VARIANTS))) = "$TRAIN_BATCH" ] || { echo "TRAIN_BATCH must be a multiple of 1 + DIVA_NUM_VARIANTS" >&2; exit 2; }
case "$DIVA_SAMPLER" in random) SAMPLER=(null null) ;; vade) SAMPLER=(pkg://vade_verl.vade.sampler VADESampler) ;; *) echo "set DIVA_SAMPLER to random or vade (got $DIVA_SAMPLER)" >&2; exit 2 ;; esac

OVERRIDES=(
  algorithm.adv_estimator=diva_grpo                             # paper (registered by vade_verl.diva.verl_plugin)
  algorithm.norm_adv_by_std_in_grpo=True                        # paper: z-scores
  algorithm.use_kl_in_reward=False                              # authors: KL off
  +algorithm.diva.k="$DIVA_K"                                   # (order=authors, damping on: defaults)
  data.train_files="$TRAIN_FILES"
  data.val_files="$VAL_FILES"
  data.train_batch_size="$TRAIN_BATCH"
  +data.gen_batch_size="$PROBLEMS"                              # authors: the loader's batch, in problems
  data.max_prompt_length="$MAX_PROMPT"
  data.max_response_length="$MAX_RESPONSE"
  data.filter_overlong_prompts=True                             # verl (authors too)
  data.truncation=error                                         # verl
  data.image_key=images                                         # verl
  data.custom_cls.path=pkg://vade_verl.diva.verl_plugin                # paper: variants join the batch, drawn
  data.custom_cls.name=DivaRLHFDataset                          # by the dataset (docs/diva.md)
  data.dataloader_num_workers=0                                 # DIVA: variants from the live difficulties
  +data.diva.num_variants="$DIVA_NUM_VARIANTS"
  +data.diva.seed="$DIVA_SEED"
  +data.diva.max_pixels=1048576                                 # authors: data.max_pixels, originals and variants
  data.sampler.class_path="${SAMPLER[0]}"                       # DIVA_SAMPLER
  data.sampler.class_name="${SAMPLER[1]}"
  actor_rollout_ref.model.path="$MODEL_PATH"
  actor_rollout_ref.model.use_remove_padding=True               # verl (authors: padding_free)
  actor_rollout_ref.model.use_fused_kernels=True                # verl: no full [tokens x vocab] logits
  actor_rollout_ref.model.enable_gradient_checkpointing=True    # verl (authors too)
  actor_rollout_ref.actor.optim.lr="$LR"
  actor_rollout_ref.actor.ppo_mini_batch_size="$MINI_BATCH"
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$MICRO_BATCH"
  actor_rollout_ref.actor.clip_ratio_low=0.2                    # authors (release verl/workers/actor/config.py)
  actor_rollout_ref.actor.clip_ratio_high=0.3                   # authors: their default, not overridden
  actor_rollout_ref.actor.use_kl_loss=False                     # authors: KL off (no reference model)
  actor_rollout_ref.actor.entropy_coeff=0                       # verl
  actor_rollout_ref.actor.fsdp_config.param_offload=False       # verl (authors offload; not measured here)
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=False   # verl
  actor_rollout_ref.rollout.name=vllm                           # verl (authors too)
  actor_rollout_ref.rollout.n="$ROLLOUT_N"
  actor_rollout_ref.rollout.temperature=1.0                     # authors
  actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP"
  actor_rollout_ref.rollout.gpu_memory_utilization=0.6          # verl (authors too)
  actor_rollout_ref.rollout.free_cache_engine=True              # verl: vLLM frees its memory for the actor pass
  actor_rollout_ref.rollout.enable_chunked_prefill=False        # verl (authors too)
  actor_rollout_ref.rollout.enforce_eager=False                 # verl (authors too): CUDA graphs
  +actor_rollout_ref.rollout.engine_kwargs.vllm.disable_mm_preprocessor_cache=True  # verl
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16  # ours: MSSR's authors' at the same lengths
  +actor_rollout_ref.rollout.agent.agent_loop_manager_class=vade_verl.diva.verl_plugin.DivaAgentLoopManager  # DIVA: uid -> problem
  actor_rollout_ref.rollout.val_kwargs.do_sample=True           # authors: validation sampled at
  actor_rollout_ref.rollout.val_kwargs.temperature=0.6          # T = 0.6, top-p 0.95, once
  actor_rollout_ref.rollout.val_kwargs.top_p=0.95
  actor_rollout_ref.rollout.val_kwargs.n=1
  reward.custom_reward_function.path=pkg://vade_verl.data.eval_sets  # ours: geo3k's grader, also for the
  reward.custom_reward_function.name=compute_score                   # eval sets; else verl's default
  trainer.critic_warmup=0                                       # verl
  trainer.logger="$LOGGER"
  trainer.project_name="$PROJECT"
  trainer.experiment_name="$EXPERIMENT"
  trainer.default_local_dir="$CKPT_DIR"
  trainer.n_gpus_per_node="$N_GPUS"
  trainer.nnodes="$NNODES"
  trainer.save_freq="$SAVE_FREQ"
  trainer.test_freq="$TEST_FREQ"
  trainer.max_actor_ckpt_to_keep="$CKPT_KEEP"
  trainer.max_critic_ckpt_to_keep="$CKPT_KEEP"
  trainer.total_epochs="$TOTAL_EPOCHS"
)
run_verl "$TRAINER" "${OVERRIDES[@]}" "$@"
