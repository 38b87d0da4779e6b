#!/usr/bin/env bash
# MSSR (arXiv 2512.18215) on Qwen2.5-VL-7B-Instruct, 8 GPUs, geometry3k: one rollout per prompt, per-prompt Beta
# baselines warm-started by a pass of the initial policy (recipes/mssr/warm_start_pass.sh; skipped when
# $MSSR_WARM_DIR/0.jsonl exists or with MSSR_INIT=first_visit), entropy-shaped advantages (docs/mssr.md).
#   python -m vade_verl.data.geo3k --out ~/data/geo3k               # data: train/test parquet
#   DRY_RUN=1 bash recipes/mssr/run_mssr_geo3k.sh                   # check both runs' configs on CPU
#   bash recipes/mssr/run_mssr_geo3k.sh [hydra overrides]           # pass + train; overrides go last
# Reproduced: the authors' settings (ruiiu/MSSR examples/7b_mssr.sh, config_mssr.yaml) but two: the rho schedule
# (MSSR_RHO_SCHEDULE=continuous; theirs, `authors`, forgets fastest at zero drift, against their own comment)
# and H_t (MSSR_ENTROPY=full_vocab, the paper's; theirs is the sampled token's -p log p, `sampled`); set both
# knobs for their code exactly. Not reproduced: their data (Vision-R1-rl), reward (1 for a right \boxed{}), pixel
# bounds, actor offload, scores. Knobs: the `knob` lines, PYTHON, DRY_RUN, PRINT_OVERRIDES; a misspelled knob and
# other recipes' knobs are refused.
# Labels: verl (examples/grpo_trainer/run_qwen2_5_vl-7b.sh), paper, authors, ours.
set -euo pipefail
source "$(dirname "$0")/../common.sh"

knob MODEL_PATH Qwen/Qwen2.5-VL-7B-Instruct  # authors
knob DATA_DIR "$HOME/data/geo3k"
knob TRAIN_FILES "$DATA_DIR/train.parquet"
knob VAL_FILES "$DATA_DIR/test.parquet"      # or the VADE paper's eval sets (docs/recipes.md)
knob TRAIN_BATCH 2048    # authors: rollout_batch_size (geo3k: drop_last leaves 1 step per epoch)
knob MINI_BATCH 128      # authors: global_batch_size, 16 actor updates per step
knob MICRO_BATCH 4       # authors: micro_batch_size_per_device_for_update
knob LR 1e-6             # paper
knob KL_COEF 0.01        # paper
knob GRAD_CLIP 0.5       # paper
knob MAX_PROMPT 2048     # authors
knob MAX_RESPONSE 4096   # authors
knob TOTAL_STEPS 150     # authors: max_steps
knob TOTAL_EPOCHS "$TOTAL_STEPS"  # ours: an epoch has at least one step, so TOTAL_STEPS ends the run
knob N_GPUS 8            # authors
knob NNODES 1            # authors
knob ROLLOUT_TP 1        # authors: vLLM tensor parallel size
knob SAVE_FREQ 5         # authors
knob TEST_FREQ 5         # authors
knob CKPT_KEEP 2         # ours: ~100 GB per 7B checkpoint (model + Adam states); authors keep 3, verl all
knob PROJECT vade_verl
knob EXPERIMENT mssr_geo3k
knob CKPT_DIR "checkpoints/$PROJECT/$EXPERIMENT"  # verl's default
knob LOGGER '["console","wandb"]'                 # verl (authors too)
knob TRAINER verl.trainer.main_ppo  # verl 0.7.1 (MSSR is tested there; docs/mssr.md)
knob MSSR_ALPHA 0.4             # paper: shaping weight (0: no shaping, the paper's MVSR)
knob MSSR_KAPPA 2               # paper: bonus cap |A| / kappa
knob MSSR_ENTROPY full_vocab    # paper (not authors): full-vocabulary entropy; sampled = the authors' -p log p
knob MSSR_RHO_SCHEDULE continuous  # ours (not authors, docs/mssr.md); authors = their rule exactly
knob MSSR_KL_WINDOW 10          # authors: the window their tracker uses
knob MSSR_CORRECTNESS auto      # authors: a reward counts as correct when > 0.5
knob MSSR_INIT warm_start       # authors: mvsr_run_initialization; first_visit skips the pass
knob MSSR_WARM_DIR "$CKPT_DIR/mssr_warm_start"  # ours: the pass's dump; delete it after changing the model
check_knobs

OVERRIDES=(
  algorithm.adv_estimator=mssr                                  # paper (registered by vade_verl.mssr.verl_plugin)
  algorithm.norm_adv_by_std_in_grpo=True                        # paper: batch-normalised r - v
  algorithm.use_kl_in_reward=False                              # paper: KL as a loss term only
  data.train_files="$TRAIN_FILES"
  data.val_files="$VAL_FILES"
  data.train_batch_size="$TRAIN_BATCH"
  data.max_prompt_length="$MAX_PROMPT"
  data.max_response_length="$MAX_RESPONSE"
  data.filter_overlong_prompts=True                             # verl (authors too)
  data.truncation=error                                         # verl
  data.image_key=images                                         # verl
  data.custom_cls.path=pkg://vade_verl.mssr.verl_plugin                # paper: per-prompt Beta baselines, kept
  data.custom_cls.name=MSSRDataset                              # by the dataset (docs/mssr.md)
  data.dataloader_num_workers=0                                 # MSSR: rows built where the baselines live
  +data.mssr.alpha="$MSSR_ALPHA"
  +data.mssr.kappa="$MSSR_KAPPA"
  +data.mssr.entropy="$MSSR_ENTROPY"
  +data.mssr.rho_schedule="$MSSR_RHO_SCHEDULE"
  +data.mssr.kl_window="$MSSR_KL_WINDOW"
  +data.mssr.correctness="$MSSR_CORRECTNESS"
  +data.mssr.init="$MSSR_INIT"
  +data.mssr.warm_start_file="$MSSR_WARM_DIR/0.jsonl"           # read by init=warm_start at the first step
  actor_rollout_ref.model.path="$MODEL_PATH"
  actor_rollout_ref.model.use_remove_padding=True               # verl (authors: padding_free)
  actor_rollout_ref.model.use_fused_kernels=True                # verl: no full [tokens x vocab] logits
  actor_rollout_ref.model.enable_gradient_checkpointing=True    # verl (authors too)
  actor_rollout_ref.actor.optim.lr="$LR"
  actor_rollout_ref.actor.grad_clip="$GRAD_CLIP"
  actor_rollout_ref.actor.ppo_mini_batch_size="$MINI_BATCH"
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$MICRO_BATCH"
  actor_rollout_ref.actor.ppo_epochs=1                          # authors
  actor_rollout_ref.actor.clip_ratio_low=0.2                    # authors
  actor_rollout_ref.actor.clip_ratio_high=0.3                   # authors
  actor_rollout_ref.actor.clip_ratio_c=3.0                      # authors: dual clip
  actor_rollout_ref.actor.loss_agg_mode=token-mean              # authors
  actor_rollout_ref.actor.use_kl_loss=True                      # paper
  actor_rollout_ref.actor.kl_loss_coef="$KL_COEF"
  actor_rollout_ref.actor.kl_loss_type=low_var_kl               # paper
  actor_rollout_ref.actor.entropy_coeff=0                       # authors: no entropy loss
  actor_rollout_ref.actor.fsdp_config.param_offload=False       # verl (authors offload; not measured here)
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=False   # verl
  actor_rollout_ref.rollout.name=vllm                           # verl (authors too)
  actor_rollout_ref.rollout.n=1                                 # paper: a single rollout per prompt
  actor_rollout_ref.rollout.temperature=1.0                     # paper
  actor_rollout_ref.rollout.top_p=1.0                           # authors
  actor_rollout_ref.rollout.top_k=-1                            # authors
  actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP"
  actor_rollout_ref.rollout.gpu_memory_utilization=0.6          # verl (authors too)
  actor_rollout_ref.rollout.free_cache_engine=True              # verl: vLLM frees its memory for the actor/ref passes
  actor_rollout_ref.rollout.enable_chunked_prefill=False        # verl (authors too)
  actor_rollout_ref.rollout.enforce_eager=False                 # verl (authors too): CUDA graphs
  +actor_rollout_ref.rollout.engine_kwargs.vllm.disable_mm_preprocessor_cache=True  # verl
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16  # authors: micro batch for experience
  actor_rollout_ref.rollout.val_kwargs.do_sample=True           # authors: validation sampled at T = 0.6
  actor_rollout_ref.rollout.val_kwargs.temperature=0.6          # authors
  actor_rollout_ref.rollout.val_kwargs.n=1                      # authors
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16    # authors: as above
  actor_rollout_ref.ref.fsdp_config.param_offload=True          # verl (authors too)
  reward.custom_reward_function.path=pkg://vade_verl.data.eval_sets  # ours: geo3k's grader, also for the
  reward.custom_reward_function.name=compute_score                   # eval sets; else verl's default
  trainer.critic_warmup=0                                       # verl
  trainer.logger="$LOGGER"
  trainer.project_name="$PROJECT"
  trainer.experiment_name="$EXPERIMENT"
  trainer.default_local_dir="$CKPT_DIR"
  trainer.n_gpus_per_node="$N_GPUS"
  trainer.nnodes="$NNODES"
  trainer.val_before_train=True                                 # authors
  trainer.save_freq="$SAVE_FREQ"
  trainer.test_freq="$TEST_FREQ"
  trainer.max_actor_ckpt_to_keep="$CKPT_KEEP"
  trainer.max_critic_ckpt_to_keep="$CKPT_KEEP"
  trainer.total_epochs="$TOTAL_EPOCHS"
  trainer.total_training_steps="$TOTAL_STEPS"
)
source "$(dirname "$0")/warm_start_pass.sh"  # defines run_warm_start_pass
if [ "$MSSR_INIT" = warm_start ] && [ ! -f "$MSSR_WARM_DIR/0.jsonl" ]; then
  run_warm_start_pass "${OVERRIDES[@]}" "$@"
  if [ "$DRY_RUN" = 0 ] && [ "$PRINT_OVERRIDES" != 1 ]; then require_warm_start_dump; fi
fi
run_verl "$TRAINER" "${OVERRIDES[@]}" "$@"
