"""Plain-``transformers`` rollout for verl 0.7.1's agent-loop trainer, so the real trainer runs on CPU.

Why this exists: in verl 0.7.1 ``RayPPOTrainer.fit`` always generates through
``AgentLoopManager.generate_sequences`` (``trainer/ppo/ray_trainer.py``), whose rollout servers come from
``RolloutReplicaRegistry`` (vllm, sglang, trtllm only) and whose in-worker weight-sync adapter comes from
``workers/rollout/base.py:_ROLLOUT_REGISTRY`` (the same three). verl's ``HFRollout``
(``workers/rollout/hf_rollout.py``) is no longer reachable: it is in neither registry, does not implement
``BaseRollout``'s abstract ``resume``/``update_weights``/``release`` and takes ``(module, config)`` where
``_build_rollout`` passes ``(config, model_config, device_mesh)``. None of vllm/sglang/trtllm runs without a GPU.

So this module registers a rollout named ``hf`` with both registries and keeps everything else verl's own
(agent loop, chat template, reward loop, FSDP actor, checkpoints). Three small classes:

- ``HFRolloutServer``: a Ray actor holding a ``transformers`` causal LM; ``generate`` is token-in/token-out like
  vLLM's server (``prompt_ids`` + sampling params -> ``TokenOutput`` with per-token log-probs).
- ``HFReplica``: the ``RolloutReplica`` that starts one server per replica (hybrid mode: weights come from the
  FSDP actor before every step).
- ``HFServerAdapter``: the ``BaseRollout`` that lives in the FSDP worker; ``update_weights`` receives the
  actor's full state dict (verl's ``rollout_mode``) and loads it into the server, i.e. the rollout always
  samples from the current policy (verl's ``checkpoint_engine.backend=naive`` path).

Selected with ``actor_rollout_ref.rollout.name=hf`` and ``VERL_USE_EXTERNAL_MODULES=vade_verl.tiny.hf_server``
(``import verl`` imports it in every Ray process, which is where the registrations have to happen).
"""

import logging

import ray
import torch

from verl.workers.rollout import base as rollout_base
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, RolloutReplicaRegistry, TokenOutput

logger = logging.getLogger(__name__)

ROLLOUT_NAME = "hf"


def server_name(replica_rank: int) -> str:
    """Ray actor name of a replica's server (actors of one job share a namespace)."""
    return f"vade_hf_rollout_server_{replica_rank}"


class HFRolloutServer:
    """Token-in/token-out generation with ``transformers.generate`` (no batching, no KV-cache reuse)."""

    def __init__(self, model_path: str, response_length: int, prompt_length: int, seed: int = 0):
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
        self.response_length = response_length
        self.prompt_length = prompt_length
        self.weight_version = 0
        torch.manual_seed(seed)  # this actor's process draws the samples; requests may still interleave

    def load_weights(self, state_dict: dict) -> int:
        """Load the actor's weights (names as in the HF model); return how many tensors were loaded."""
        missing, unexpected = self.model.load_state_dict(state_dict, strict=False)
        # tied embeddings may arrive once; anything else missing means the policy and the sampler differ
        missing = [k for k in missing if not (k == "lm_head.weight" and self.model.config.tie_word_embeddings)]
        if missing or unexpected:
            raise RuntimeError(f"rollout weight sync mismatch: missing={missing} unexpected={unexpected}")
        self.weight_version += 1
        return len(state_dict)

    def get_weight_version(self) -> int:
        return self.weight_version

    async def generate(self, request_id, prompt_ids, sampling_params, image_data=None, video_data=None):
        if image_data or video_data:
            raise NotImplementedError("HFRolloutServer serves text-only models; got image/video data")
        params = dict(sampling_params)
        max_tokens = params.pop("max_tokens", None)
        if max_tokens is None:  # as vLLM's server: the response budget, capped by the context left
            max_tokens = min(self.response_length, self.prompt_length + self.response_length - len(prompt_ids))
        temperature = float(params.pop("temperature", 1.0))
        top_p = float(params.pop("top_p", 1.0))
        top_k = int(params.pop("top_k", -1))  # vLLM convention: -1 disables, HF uses 0
        repetition_penalty = float(params.pop("repetition_penalty", 1.0))
        params.pop("logprobs", None)  # log-probs are always returned
        if params:
            raise ValueError(f"HFRolloutServer does not support sampling params {sorted(params)}")
        do_sample = temperature > 0
        gen_kwargs = dict(do_sample=do_sample, max_new_tokens=max_tokens, num_beams=1)
        if do_sample:
            gen_kwargs.update(temperature=temperature, top_p=top_p, top_k=max(top_k, 0))
        if repetition_penalty != 1.0:
            gen_kwargs["repetition_penalty"] = repetition_penalty
        input_ids = torch.tensor([prompt_ids], dtype=torch.long)
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                eos_token_id=self.model.generation_config.eos_token_id,
                pad_token_id=self.model.generation_config.pad_token_id,
                output_scores=True,
                return_dict_in_generate=True,
                **gen_kwargs,
            )
        tokens = out.sequences[0, input_ids.shape[1] :]
        # log-probs of the sampled tokens under the processed (temperature/top-k/top-p) distribution,
        # as vLLM's default logprobs_mode="processed_logprobs"
        log_probs = [
            torch.log_softmax(score[0].float(), dim=-1)[tok].item() for score, tok in zip(out.scores, tokens.tolist())
        ]
        eos = self.model.generation_config.eos_token_id
        stop = "completed" if tokens.numel() and tokens[-1].item() == eos else None
        return TokenOutput(token_ids=tokens.tolist(), log_probs=log_probs, stop_reason=stop, num_preempted=0)

    # lifecycle hooks called by RolloutReplica / CheckpointEngineManager: nothing to free on CPU
    async def wake_up(self):
        return True

    async def sleep(self):
        return True

    async def abort_all_requests(self):
        return True

    async def resume_generation(self):
        return True

    async def clear_kv_cache(self):
        return True


class HFReplica(RolloutReplica):
    """One ``HFRolloutServer`` per replica; the hybrid worker pushes weights to it before each step."""

    async def launch_servers(self):
        if self.world_size != 1:
            raise ValueError(
                f"rollout '{ROLLOUT_NAME}' runs one process per replica; set "
                f"actor_rollout_ref.rollout.tensor_model_parallel_size=1 (world_size={self.world_size})"
            )
        from verl.utils.fs import copy_to_local

        server_cls = ray.remote(num_cpus=0)(HFRolloutServer)
        handle = server_cls.options(name=server_name(self.replica_rank)).remote(
            model_path=copy_to_local(self.model_config.path, use_shm=self.model_config.get("use_shm", False)),
            response_length=self.config.response_length,
            prompt_length=self.config.prompt_length,
        )
        await handle.get_weight_version.remote()  # wait until the model is loaded
        self.servers = [handle]
        self._server_handle = handle
        self._server_address = server_name(self.replica_rank)


class HFServerAdapter(BaseRollout):
    """In-worker side of the hybrid rollout: forwards the actor's weights to this replica's server."""

    def __init__(self, config, model_config, device_mesh, *args, **kwargs):
        super().__init__(config, model_config, device_mesh)
        world = self.config.tensor_model_parallel_size * self.config.data_parallel_size
        self.replica_rank = torch.distributed.get_rank() // world if torch.distributed.is_initialized() else 0

    async def update_weights(self, weights, **kwargs):
        state_dict = {name: tensor.detach().to("cpu", copy=True) for name, tensor in weights}
        server = ray.get_actor(server_name(self.replica_rank))
        loaded = await server.load_weights.remote(state_dict)
        logger.info("hf rollout: synced %d tensors to %s", loaded, server_name(self.replica_rank))

    async def resume(self, tags):
        return None

    async def release(self):
        return None


# verl 0.7.1 has a public register() for replicas but only a module-level dict for in-worker adapters.
RolloutReplicaRegistry.register(ROLLOUT_NAME, lambda: HFReplica)
rollout_base._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = f"{__name__}.HFServerAdapter"
