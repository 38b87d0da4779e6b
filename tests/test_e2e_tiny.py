"""End to end: verl's own trainer drives the VADE sampler on CPU (recipes/ci/run_tiny_cpu.sh).

The recipe trains a tiny random Qwen2 with GRPO + VADE for STEPS steps through
``python -m verl.trainer.main_ppo`` (Ray, FSDP2 actor, agent-loop rollout), then resumes from its checkpoint
for one more step. Everything the assertions compare against is recomputed here from what verl itself wrote:
the per-rollout scores in verl's rollout dumps (``trainer.rollout_data_dir``), the metrics of verl's file
logger, and the sampler state inside verl's ``data.pt`` checkpoints. The posterior arithmetic below is the
paper's two-scale decay written out independently (VADE Sec. 3.3), not a call into ``vade_verl.vade``.

The run takes about 5 minutes on 2 cores: ``pytest -m e2e tests/test_e2e_tiny.py``. The unmarked tests at
the end check the tiny pieces (task, reward, tokenizer, rollout server) in seconds.
"""

import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from recipe_run import run_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "ci" / "run_tiny_cpu.sh"
STEPS = 3  # first run; the resumed run adds step STEPS + 1
BATCH, N_ROLLOUTS, N_ROWS = 4, 4, 32  # data.train_batch_size, rollout.n, train rows (as in the recipe)
L1, L2 = 0.2, 0.999  # +data.sampler.vade.l1 / l2 in the recipe

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny_cpu")
    start = time.monotonic()
    out = run_recipe(RECIPE, work, STEPS)
    print(f"recipe wall time: {time.monotonic() - start:.0f} s")
    (work / "recipe.out").write_text(out)
    return work


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def step_metrics(work: Path) -> dict[int, dict]:
    """verl's file-logger records of both runs, by step."""
    out = {}
    for name in ("metrics_run1.jsonl", "metrics_run2.jsonl"):
        for rec in read_jsonl(work / name):
            out[rec["step"]] = rec["data"]
    return out


def rollout_evidence(work: Path, step: int) -> dict[int, list[float]]:
    """Row index -> the scores of its rollouts at ``step``, from verl's rollout dump."""
    rows = defaultdict(list)
    for rec in read_jsonl(work / "rollouts" / f"{step}.jsonl"):
        assert rec["step"] == step
        rows[int(rec["row_index"])].append(float(rec["score"]))
    return dict(rows)


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
    """verl saves data.pt before the step's sampler update: global_step_k holds updates 1..k-1.
    global_step_{STEPS+1} was written by the resumed run, so it holds update STEPS only if the resume
    restored the state and re-applied the update the first run made after saving."""
    for ckpt_step in (STEPS, STEPS + 1):
        state = sampler_state(run, ckpt_step)["vade"]
        alpha, beta = posteriors_by_hand(run, range(1, ckpt_step))
        assert state["num_updates"] == ckpt_step - 1
        np.testing.assert_allclose(state["alpha"], alpha, rtol=0, atol=1e-12)
        np.testing.assert_allclose(state["beta"], beta, rtol=0, atol=1e-12)
        assert (alpha + beta > 0).sum() == len(set().union(*(rollout_evidence(run, s) for s in range(1, ckpt_step))))


@pytest.mark.e2e
def test_resumed_step_selected_from_the_restored_posteriors(run):
    """Step STEPS+1's batch (the first after the resume) is the InfoGain top-B of Thompson draws
    p_i ~ Beta(alpha_i+1, beta_i+1) (VADE Sec. 3.2) with the generator state saved in the step-STEPS
    checkpoint and the posteriors after steps 1..STEPS worked out here. The draw itself is
    ``vade_verl.vade.thompson_draw`` (its random stream is the implementation's); score and top-B are
    computed here. With the posteriors after 1..STEPS-1 (no replay of the update verl runs after the
    save) the batch would differ."""
    from vade_verl.vade import thompson_draw

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


def test_rollout_server_log_probs_match_a_forward_pass(tiny_model_dir):
    """The server's per-token log-probs are those of the sampled tokens under the model (temperature 1)."""
    import asyncio

    import torch

    from vade_verl.tiny.hf_server import HFRolloutServer

    server = HFRolloutServer(tiny_model_dir, response_length=6, prompt_length=16)
    torch.manual_seed(0)
    prompt = [1, 4, 11, 7, 8, 9, 10, 2, 1, 5]
    params = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}
    out = asyncio.run(server.generate("r0", prompt, params))
    assert 1 <= len(out.token_ids) <= 6 and len(out.log_probs) == len(out.token_ids)
    ids = torch.tensor([prompt + out.token_ids])
    with torch.no_grad():
        logits = server.model(ids).logits[0, len(prompt) - 1 : -1]
    expected = torch.log_softmax(logits, dim=-1)[torch.arange(len(out.token_ids)), torch.tensor(out.token_ids)]
    np.testing.assert_allclose(out.log_probs, expected.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="presence_penalty"):
        asyncio.run(server.generate("r1", prompt, {**params, "presence_penalty": 0.5}))


def test_rollout_server_weight_sync(tiny_model_dir):
    import torch

    from vade_verl.tiny.hf_server import HFRolloutServer

    server = HFRolloutServer(tiny_model_dir, response_length=4, prompt_length=16)
    new = {k: torch.full_like(v, 0.01) for k, v in server.model.state_dict().items()}
    assert server.load_weights(new) == len(new) and server.get_weight_version() == 1
    assert all(torch.equal(v, new[k]) for k, v in server.model.state_dict().items())
    with pytest.raises(RuntimeError, match="missing"):
        server.load_weights({"model.embed_tokens.weight": new["model.embed_tokens.weight"]})


def test_cpu_shims_only_fill_gaps():
    import torch

    from vade_verl.tiny import cpu_compat

    assert cpu_compat.install() == []  # already installed on import; a second call adds nothing
    assert torch.cpu.memory_allocated() == 0 and torch.cpu.empty_cache() is None
