"""DIVA-GRPO through verl 0.7.1's own code paths: registration, dataloader, variants in the agent loop's
model input, compute_advantage on real reward shapes, several generation calls per step, resume.

Expected advantages and difficulties come from tests/diva_reference.py (plain numpy re-derivations).
"""

import asyncio
import io
import logging
import os
import subprocess
import sys
import uuid

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw

import diva_reference as ref
from verl import DataProto
from verl.experimental.agent_loop import AgentLoopManager
from verl.trainer.ppo.ray_trainer import RayPPOTrainer, compute_advantage
from verl.utils.ray_utils import auto_await
from vade_verl.diva import verl_plugin as verl_diva
from vade_verl.data.rows import GEO3K_INSTRUCTION, make_rows
from vade_verl.diva.variants import RENDERED_QUESTION
from vade_verl.diva.verl_plugin import DRIVER, DivaAgentLoopManager

from verl_harness import compose_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIVA_DATA = ["data.custom_cls.path=pkg://vade_verl.diva.verl_plugin", "data.custom_cls.name=DivaRLHFDataset"]
START_DIFFICULTY = [1, 9, 5, 3]
ROLLOUT_N = 3


def _run_python(code: str, env_extra: dict) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": REPO, **env_extra}
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_registered_by_configuration_alone():
    """verl's get_adv_estimator_fn finds diva_grpo after the import that configuration triggers, not before."""
    by_env = _run_python(
        "import verl\nfrom verl.trainer.ppo.core_algos import get_adv_estimator_fn as g\nprint(g('diva_grpo').__module__)",
        {"VERL_USE_EXTERNAL_MODULES": "vade_verl.diva.verl_plugin"},
    )
    by_classes = _run_python(
        "from omegaconf import OmegaConf\n"
        "from verl.trainer.ppo.core_algos import get_adv_estimator_fn as g\n"
        "try:\n    g('diva_grpo'); print('present-before')\nexcept ValueError:\n    print('absent-before')\n"
        "from verl.utils.dataset.rl_dataset import get_dataset_class\n"
        "cls = get_dataset_class(OmegaConf.create({'custom_cls': {'path': 'pkg://vade_verl.diva.verl_plugin', 'name': 'DivaRLHFDataset'}}))\n"
        "from verl.utils.import_utils import load_class_from_fqn\n"
        "mgr = load_class_from_fqn('vade_verl.diva.verl_plugin.DivaAgentLoopManager', 'AgentLoopManager')\n"
        "print(cls.__name__, mgr.__name__, g('diva_grpo').__module__)",
        {"VERL_USE_EXTERNAL_MODULES": ""},
    )
    out_env, _ = by_env.communicate(timeout=240)
    out_cls, _ = by_classes.communicate(timeout=240)
    assert by_env.returncode == 0, out_env
    assert out_env.strip().splitlines()[-1] == "vade_verl.diva.verl_plugin"
    assert by_classes.returncode == 0, out_cls
    lines = out_cls.strip().splitlines()
    assert "absent-before" in lines and lines[-1] == "DivaRLHFDataset DivaAgentLoopManager vade_verl.diva.verl_plugin"


# ---------------------------------------------------------------------------------------------
# A geo3k-layout image dataset through verl's own dataloader construction
# ---------------------------------------------------------------------------------------------
def _figure(i: int) -> Image.Image:
    img = Image.new("RGB", (96, 80), "white")
    draw = ImageDraw.Draw(img)
    draw.polygon([(8, 72), (88, 72), (8 + 9 * i % 70, 10)], outline="black", width=2)
    return img


def _write_geo3k_parquet(path, n, difficulty=START_DIFFICULTY, prep_columns=True):
    """Rows as vade_verl.data.geo3k writes them (verl's geo3k layout), plus optional DIVA columns."""
    records = [{"problem": f"<image>Problem {i}: find x.", "answer": str(i), "images": [_figure(i)]} for i in range(n)]
    rows = make_rows(records, "train", "hiyouga/geometry3k")
    for i, row in enumerate(rows):
        row["difficulty"] = difficulty[i % len(difficulty)]
        if prep_columns:
            row["solution"] = ["Step 1: look", "Step 2: count", "Step 3: add", "Step 4: answer"]
            row["paraphrase"] = [f"What is x in problem {i}?", f"Give x for problem {i}."]
    pd.DataFrame(rows).to_parquet(path)
    return str(path)


def _loader(config):
    """verl's train/val loaders built by ``RayPPOTrainer._create_dataloader`` (as tests/verl_harness.py
    does, with a placeholder processor: verl's dataset only checks that one exists when images are present)."""
    trainer = RayPPOTrainer.__new__(RayPPOTrainer)
    trainer.config = config
    trainer.tokenizer = None
    trainer.processor = object()
    trainer._create_dataloader(None, None, None, None)
    return trainer.train_dataloader, trainer.val_dataloader


@pytest.fixture
def setup(tmp_path):
    def make(extra=(), prep_columns=True, difficulty=START_DIFFICULTY, n=4, batch_size=2):
        train = _write_geo3k_parquet(tmp_path / f"train_{prep_columns}.parquet", n, difficulty, prep_columns)
        val = _write_geo3k_parquet(tmp_path / "val.parquet", 2)
        config = compose_config(
            train,
            batch_size=batch_size,
            ckpt_dir=str(tmp_path / "ckpt"),
            overrides=[*DIVA_DATA, f"data.val_files={val}", "data.shuffle=True", "+data.seed=11", "+data.diva.seed=5", *extra],
        )
        return config, *_loader(config)

    return make


def _fit_like_batch(loader_iter):
    """What ``RayPPOTrainer.fit`` does with a loader batch up to the rollout call."""
    batch = DataProto.from_single_dict(next(loader_iter))
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
    return batch


def _rollout_manager(monkeypatch, task_score=None, length=5):
    """Stand in for verl's AgentLoopManager.generate_sequences (no Ray): an output row per prompt row,
    with ``rm_scores`` (the agent loop's reward, at the last response token) from ``task_score(row info,
    rollout number)`` when given, as verl 0.7.1's agent loop does with a rule reward."""

    @auto_await
    async def generate(self, prompts):
        if task_score is None:
            return DataProto.from_dict(tensors={"responses": torch.zeros(len(prompts), length)})
        uids = prompts.non_tensor_batch["uid"]
        scores = torch.zeros(len(prompts), length)
        for i, info in enumerate(prompts.non_tensor_batch["extra_info"]):
            scores[i, -1] = task_score(info, int((uids[: i + 1] == uids[i]).sum()) - 1)
        return DataProto.from_dict(tensors={"rm_scores": scores})

    monkeypatch.setattr(AgentLoopManager, "generate_sequences", generate)
    return DivaAgentLoopManager.__new__(DivaAgentLoopManager)


def _trainer_batch(gens, task, kl, seed=0, length=6):
    """The batch ``compute_advantage`` sees: the generation batches concatenated, a reward per rollout
    at its last response token (``token_level_rewards`` = task score - KL penalty), shuffled as
    ``trainer.balance_batch`` may do."""
    data = DataProto.concat(gens)
    n = len(data)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, length + 1, n)
    mask = (torch.arange(length)[None, :] < torch.as_tensor(lengths)[:, None]).float()
    rewards = torch.zeros(n, length, dtype=torch.float64)
    rewards[torch.arange(n), torch.as_tensor(lengths) - 1] = torch.as_tensor(np.asarray(task) - np.asarray(kl))
    out = DataProto.from_dict(
        tensors={"token_level_rewards": rewards.float(), "response_mask": mask},
        non_tensors={k: data.non_tensor_batch[k] for k in ("uid", "extra_info")},
    )
    out.reorder(torch.as_tensor(rng.permutation(n)))
    return out


def _rollout_scores(info, k):
    """A deterministic task score per rollout: problems 0 and 2 mostly right, 1 and 3 mostly wrong."""
    right = (info["diva_problem_id"] + k + (info["diva_variant"] != "original")) % 4 in ((0, 1, 2) if info["diva_problem_id"] % 2 == 0 else (0,))
    return 1.0 if right else 0.0


def _check_step(data, out, dataset, old_d, damping_scores, correct):
    """Advantage and difficulty update against the reference re-derivation; ``damping_scores`` per row
    only need to tell which prompt groups are all below the 0.15 threshold."""
    uids = data.non_tensor_batch["uid"]
    infos = data.non_tensor_batch["extra_info"]
    problem = np.array([i["diva_problem_id"] for i in infos])
    item_d = np.array([i["diva_difficulty"] for i in infos])
    rewards = data.batch["token_level_rewards"].sum(-1).double().numpy()
    expected = ref.authors_advantage(rewards, uids, problem, item_d, damping_scores=damping_scores)
    mask = data.batch["response_mask"]
    torch.testing.assert_close(out.batch["advantages"], torch.as_tensor(expected, dtype=torch.float32)[:, None] * mask, atol=1e-4, rtol=1e-4)
    assert torch.equal(out.batch["returns"], out.batch["advantages"])
    for p in np.unique(problem):
        assert dataset.tracker.difficulty[p] == ref.new_difficulty(old_d[p], correct[problem == p].mean()), p
    assert np.any(dataset.tracker.difficulty[problem] != old_d[problem])  # the check above is not vacuous
    untouched = np.setdiff1d(np.arange(len(dataset)), problem)
    np.testing.assert_array_equal(dataset.tracker.difficulty[untouched], old_d[untouched])


def _run_step(setup, monkeypatch, kl_value, score=_rollout_scores, extra=(), record=True, calls=1):
    config, train_loader, _ = setup(["algorithm.use_kl_in_reward=" + str(kl_value != 0.0), *extra], n=8, difficulty=[5, 4, 6, 5])
    dataset = train_loader.dataset
    manager = _rollout_manager(monkeypatch, score if record else None)
    it = iter(train_loader)
    gens = []
    for _ in range(calls):
        gen = _fit_like_batch(it).repeat(repeat_times=ROLLOUT_N, interleave=True)
        manager.generate_sequences(gen)
        gens.append(gen)
    uids = np.concatenate([g.non_tensor_batch["uid"] for g in gens])
    infos = np.concatenate([g.non_tensor_batch["extra_info"] for g in gens])
    task = np.array([score(info, int((uids[: i + 1] == uids[i]).sum()) - 1) for i, info in enumerate(infos)])
    kl = np.where(task > 0.5, 0.0, kl_value)  # e.g. an all-wrong rollout at -0.002
    data = _trainer_batch(gens, task, kl)
    row_task = {}
    for uid, info, t in zip(uids, infos, task):
        row_task.setdefault(uid, []).append(t)
    old_d = dataset.tracker.difficulty.copy()
    out = compute_advantage(data, adv_estimator="diva_grpo", num_repeat=ROLLOUT_N, config=config.algorithm)
    # per reordered row, a score below 0.15 exactly when its prompt group's task scores all are
    low_scores = np.array([0.0 if max(row_task[u]) < 0.15 else 1.0 for u in data.non_tensor_batch["uid"]])
    return config, dataset, data, out, old_d, low_scores


def test_dataset_expands_train_batches_only(setup):
    config, train_loader, val_loader = setup()
    batch = _fit_like_batch(iter(train_loader))
    infos = list(batch.non_tensor_batch["extra_info"])
    assert len(batch) == 4  # 2 problems + 1 variant each
    assert [i["diva_variant"] for i in infos[:2]] == ["original", "original"]
    assert all(i["diva_variant"] != "original" for i in infos[2:])
    assert [i["diva_problem_id"] for i in infos[2:]] == [i["diva_problem_id"] for i in infos[:2]]
    assert [i["index"] for i in infos[2:]] == [i["index"] for i in infos[:2]]  # the variant keeps the problem's id
    for info in infos[:2]:
        assert info["diva_difficulty"] == START_DIFFICULTY[info["diva_problem_id"]]
    val_batch = next(iter(val_loader))
    assert len(val_batch["extra_info"]) == 2 and all(i["diva_variant"] == "original" for i in val_batch["extra_info"])
    # each variant's prompt still holds one image, as a PIL image in verl's raw_prompt format
    for messages in batch.non_tensor_batch["raw_prompt"][2:]:
        images = [p["image"] for p in messages[-1]["content"] if p["type"] == "image"]
        assert len(images) == 1 and isinstance(images[0], Image.Image)


def test_advantage_and_difficulty_on_a_trainer_shaped_batch(setup, monkeypatch):
    config, dataset, data, out, old_d, low_scores = _run_step(setup, monkeypatch, kl_value=0.0)
    assert DRIVER.train_dataset is dataset
    task = data.batch["token_level_rewards"].sum(-1).numpy()
    _check_step(data, out, dataset, old_d, low_scores, (task > 0.5).astype(float))
    assert DRIVER.items == {} and DRIVER.task_scores == {}  # the step's record is cleared
    assert DRIVER.last_metrics["diva/task_scores_recorded"] == 1.0


def test_kl_in_reward_is_used_by_the_advantage_not_by_the_difficulty(setup, monkeypatch):
    """use_kl_in_reward=True: all-wrong rollouts reach the estimator at -0.002; the difficulty update
    counts correct answers from the recorded task scores, the advantage ranks the penalised rewards."""
    config, dataset, data, out, old_d, low_scores = _run_step(setup, monkeypatch, kl_value=0.002)
    rewards = data.batch["token_level_rewards"].sum(-1).numpy()
    assert rewards.min() == pytest.approx(-0.002)
    _check_step(data, out, dataset, old_d, low_scores, (rewards > 0.5).astype(float))
    assert DRIVER.last_metrics["diva/difficulty_rows_skipped"] == 0


def test_math_dapo_scores_count_plus_one_as_correct(setup, monkeypatch):
    dapo = lambda info, k: 2.0 * _rollout_scores(info, k) - 1.0  # noqa: E731
    config, dataset, data, out, old_d, low_scores = _run_step(setup, monkeypatch, kl_value=0.0, score=dapo)
    rewards = data.batch["token_level_rewards"].sum(-1).numpy()
    assert set(np.unique(rewards)) == {-1.0, 1.0}
    _check_step(data, out, dataset, old_d, low_scores, (rewards > 0).astype(float))


def test_unreadable_scores_stop_the_run_naming_the_option(setup, monkeypatch, caplog):
    """Issue 23 item 3: scores the correctness rule cannot read (no rm_scores with the KL in the reward at
    -0.002; partial credit; a 0-10 scale) would freeze the difficulty table for the whole run while the
    advantage trains: an error at the first step, naming algorithm.diva.correctness."""
    with caplog.at_level(logging.WARNING, logger="vade_verl.diva.verl_plugin"):
        with pytest.raises(ValueError, match=r"difficulty update cannot read .* algorithm.diva.correctness=auto"):
            _run_step(setup, monkeypatch, kl_value=0.002, record=False)
    assert "include the KL penalty" in caplog.text
    for name, score in (("partial credit", lambda info, k: 0.5), ("0-10", lambda info, k: 10.0 * _rollout_scores(info, k))):
        with pytest.raises(ValueError, match=r"algorithm.diva.correctness=auto"):
            _run_step(setup, monkeypatch, kl_value=0.0, score=score)
    # a threshold rule reads the same rewards
    config, dataset, data, out, old_d, low_scores = _run_step(
        setup, monkeypatch, kl_value=0.002, record=False, extra=["+algorithm.diva.correctness=0.5"]
    )
    rewards = data.batch["token_level_rewards"].sum(-1).numpy()
    _check_step(data, out, dataset, old_d, rewards, (rewards > 0.5).astype(float))


def test_two_generation_calls_in_one_step(setup, monkeypatch):
    """A trainer that regenerates to fill its batch calls the rollout manager twice before the advantage."""
    config, dataset, data, out, old_d, low_scores = _run_step(setup, monkeypatch, kl_value=0.0, calls=2)
    problems = {i["diva_problem_id"] for i in data.non_tensor_batch["extra_info"]}
    assert len(data) == 2 * 2 * 2 * ROLLOUT_N and len(problems) == 4  # two loader batches of 2 problems + variants
    task = data.batch["token_level_rewards"].sum(-1).numpy()
    _check_step(data, out, dataset, old_d, low_scores, (task > 0.5).astype(float))


def test_validation_calls_are_not_recorded(setup, monkeypatch):
    config, train_loader, _ = setup()
    manager = _rollout_manager(monkeypatch, _rollout_scores)
    val = _fit_like_batch(iter(train_loader)).repeat(repeat_times=ROLLOUT_N, interleave=True)
    val.meta_info["validate"] = True
    DRIVER.end_step()
    manager.generate_sequences(val)
    assert DRIVER.items == {} and DRIVER.task_scores == {}


def test_unrecorded_uid_is_a_clear_error(setup):
    config, _, _ = setup()
    DRIVER.end_step()
    with pytest.raises(KeyError, match="agent_loop_manager_class"):
        compute_advantage(
            DataProto.from_dict(
                tensors={"token_level_rewards": torch.zeros(2, 3), "response_mask": torch.ones(2, 3)},
                non_tensors={"uid": np.array(["x", "x"], dtype=object)},
            ),
            adv_estimator="diva_grpo",
            config=config.algorithm,
        )


def _batch_signature(batch_dict):
    infos = batch_dict["extra_info"]
    pixels = [
        np.asarray(p["image"]).tobytes() for m in batch_dict["raw_prompt"] for p in m[-1]["content"] if p["type"] == "image"
    ]
    return [(i["diva_problem_id"], i["diva_variant"], i["diva_difficulty"]) for i in infos], pixels


def test_resume_restores_difficulties_and_variants(setup):
    _, loader, _ = setup()
    it = iter(loader)
    next(it)
    loader.dataset.tracker.difficulty[:] = [2, 8, 6, 4]  # as if the estimator had updated them
    state = loader.state_dict()
    expected = _batch_signature(next(it))

    _, resumed, _ = setup()
    assert resumed.dataset is not loader.dataset
    resumed.load_state_dict(state)
    got = _batch_signature(next(iter(resumed)))
    np.testing.assert_array_equal(resumed.dataset.tracker.difficulty, [2, 8, 6, 4])
    assert got[0] == expected[0]
    assert got[1] == expected[1]  # identical variant pixels: same (seed, problem, draw count)


def test_bad_options_are_named(setup):
    with pytest.raises(ValueError, match="unknown key"):
        setup(["+data.diva.num_variant=2"])
    with pytest.raises(ValueError, match="dataloader_num_workers=0"):
        setup(["data.dataloader_num_workers=2"])
    assert verl_diva.ADV_ESTIMATOR_NAME == "diva_grpo"


def test_same_train_and_val_files_expand_only_the_first(tmp_path):
    train = _write_geo3k_parquet(tmp_path / "train.parquet", 4)
    config = compose_config(train, batch_size=2, ckpt_dir=str(tmp_path / "ckpt"), overrides=DIVA_DATA)
    train_loader, val_loader = _loader(config)
    assert train_loader.dataset.is_train and not val_loader.dataset.is_train
    assert DRIVER.train_dataset is train_loader.dataset


# ---------------------------------------------------------------------------------------------
# Variants on geo3k-layout data: real changes, the answer-format instruction kept
# ---------------------------------------------------------------------------------------------
def _user_text(messages) -> str:
    return " ".join(p["text"] for p in messages[-1]["content"] if p["type"] == "text")


def _user_image(messages) -> np.ndarray:
    return np.asarray(next(p["image"] for p in messages[-1]["content"] if p["type"] == "image").convert("RGB"))


def _all_variants(train_loader, batches):
    originals, variants = {}, []
    it = iter(train_loader)
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(train_loader)
            batch = next(it)
        half = len(batch["extra_info"]) // 2
        for info, messages in zip(batch["extra_info"][:half], batch["raw_prompt"][:half]):
            originals[info["diva_problem_id"]] = messages
        variants += list(zip(batch["extra_info"][half:], batch["raw_prompt"][half:]))
    return originals, variants


@pytest.mark.parametrize("prep_columns", [False, True])
def test_geo3k_variants_are_never_unchanged_copies(setup, prep_columns):
    """Every difficulty 1..9, with and without the data-prep columns: no variant equals its original,
    D = 0 included, except an easier draw without reasoning steps (a copy at d, as the authors'); every
    variant keeps verl's geo3k answer-format instruction."""
    _, train_loader, _ = setup(prep_columns=prep_columns, difficulty=list(range(1, 10)), n=9, batch_size=3)
    originals, variants = _all_variants(train_loader, 12)
    shifts = set()
    for info, messages in variants:
        original = originals[info["diva_problem_id"]]
        shifts.add(info["diva_drawn_difficulty"] - START_OF[info["diva_problem_id"]])
        if info["diva_variant"] == "copy":  # only an easier draw without reasoning steps (issue 23 item 1)
            assert not prep_columns and info["diva_drawn_difficulty"] < info["diva_difficulty"], info
            continue
        same_text = _user_text(messages) == _user_text(original)
        image, first = _user_image(messages), _user_image(original)
        same_image = image.shape == first.shape and np.array_equal(image, first)
        assert not (same_text and same_image), info
        assert _user_text(messages).endswith(GEO3K_INSTRUCTION), _user_text(messages)
        if info["diva_variant"] == "render":
            assert _user_text(messages) == f"{RENDERED_QUESTION} {GEO3K_INSTRUCTION}"
            assert image.shape[0] > first.shape[0]
        if info["diva_variant"] == "hint":
            assert "Step 1: look" in _user_text(messages) and info["diva_difficulty"] < START_OF[info["diva_problem_id"]]
        if info["diva_variant"] == "paraphrase":
            i = info["diva_problem_id"]
            assert f"Problem {i}: find x." not in _user_text(messages)
            assert _user_text(messages) in (f"{p} {GEO3K_INSTRUCTION}" for p in (f"What is x in problem {i}?", f"Give x for problem {i}."))
    assert {-5, -3, -2, -1} <= shifts  # the authors' one-variant targets for d = 9, 8, 7, 6
    kinds = {info["diva_variant"] for info, _ in variants}
    assert ("hint" in kinds) == prep_columns and ("render" in kinds)


START_OF = dict(enumerate(range(1, 10)))
def test_variant_messages_replace_the_question_in_place():
    old = [Image.new("RGB", (4, 4)), Image.new("RGB", (5, 5))]
    new = [Image.new("RGB", (2, 2)), Image.new("RGB", (3, 3))]
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "image", "image": old[0]}, {"type": "text", "text": "Compare them. Answer in a box."},
            {"type": "image", "image": old[1]},
        ]},
    ]  # fmt: skip
    para, found = verl_diva._variant_messages(messages, verl_diva.VariantContent(new, replace_text="Which differs?"), "Compare them.")
    assert found and para[0] == {"role": "system", "content": "Be brief."}  # strings stay strings
    assert para[1]["content"] == [
        {"type": "image", "image": new[0]}, {"type": "text", "text": "Which differs? Answer in a box."},
        {"type": "image", "image": new[1]},
    ]  # fmt: skip
    hint, _ = verl_diva._variant_messages(messages, verl_diva.VariantContent(old, append_text="Hint: x"), "Compare them.")
    assert [p.get("text") for p in hint[1]["content"]] == [None, "Compare them. Hint: x Answer in a box.", None]
    assert messages[1]["content"][1] == {"type": "text", "text": "Compare them. Answer in a box."}  # original untouched
    # a question the prompt does not contain: the whole user text is rewritten (and reported)
    whole, found = verl_diva._variant_messages(messages, verl_diva.VariantContent(old, replace_text="New?"), "Elsewhere.")
    assert not found and [p.get("text") for p in whole[1]["content"]] == [None, None, "New?"]
    with pytest.raises(ValueError, match="more image"):
        verl_diva._variant_messages(messages, verl_diva.VariantContent([*new, new[0]]), "Compare them.")
    text_only = [{"role": "user", "content": "How many? Box it."}]
    hinted, found = verl_diva._variant_messages(text_only, verl_diva.VariantContent([], append_text="Hint: 2"), "How many?")
    assert found and hinted == [{"role": "user", "content": "How many? Hint: 2 Box it."}]


# ---------------------------------------------------------------------------------------------
# The variant's image is what the agent loop hands to the model's processor
# ---------------------------------------------------------------------------------------------
class _RecordingProcessor:
    """Stands in for the Qwen2.5-VL processor at the call that makes the model input."""

    class image_processor:  # noqa: N801 - read as processor.image_processor.patch_size
        patch_size = 14

    def __init__(self):
        self.calls = []

    def apply_chat_template(self, messages, tokenize=False, **kwargs):
        return " ".join(p.get("text", "<image>") for m in messages for p in (m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}]))

    def __call__(self, text, images=None, **kwargs):
        self.calls.append({"text": text, "images": images})
        return {"input_ids": torch.ones(1, 5, dtype=torch.long)}


class _RecordingServer:
    def __init__(self):
        self.image_data = None

    async def generate(self, request_id, prompt_ids, sampling_params, image_data=None, video_data=None):
        from verl.workers.rollout.replica import TokenOutput

        self.image_data = image_data
        return TokenOutput(token_ids=[1, 2])


def test_perturbed_image_reaches_the_agent_loops_model_input(setup):
    """verl 0.7.1's SingleTurnAgentLoop.run (verl/experimental/agent_loop/single_turn_agent_loop.py):
    raw_prompt -> dataset_cls.process_vision_info (qwen_vl_utils) -> processor(text, images) and the
    server's image_data. The variant's perturbed image, not the original, arrives there."""
    pytest.importorskip("qwen_vl_utils")  # RLHFDataset.process_vision_info needs it (and torchvision)
    from omegaconf import OmegaConf

    from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop

    _, train_loader, _ = setup(prep_columns=False, difficulty=[1], n=4)  # d = 1: D = +8, image variants only
    batch = DataProto.from_single_dict(next(iter(train_loader)))
    gen = batch.repeat(repeat_times=ROLLOUT_N, interleave=True)  # as fit does before the rollout
    variant_rows = [i for i, info in enumerate(gen.non_tensor_batch["extra_info"]) if info["diva_variant"] != "original"]
    row = variant_rows[0]
    messages = gen.non_tensor_batch["raw_prompt"][row]
    original = gen.non_tensor_batch["raw_prompt"][0]
    assert gen.non_tensor_batch["extra_info"][0]["diva_problem_id"] == gen.non_tensor_batch["extra_info"][row]["diva_problem_id"]

    loop = SingleTurnAgentLoop.__new__(SingleTurnAgentLoop)
    loop.processor, loop.tokenizer, loop.server_manager = _RecordingProcessor(), None, _RecordingServer()
    loop.dataset_cls, loop.data_config, loop.apply_chat_template_kwargs = verl_diva.DivaRLHFDataset, OmegaConf.create({}), {}
    loop.prompt_length, loop.response_length = 64, 8

    async def run(raw_prompt):
        loop.loop = asyncio.get_running_loop()
        return await loop.run({}, raw_prompt=raw_prompt)

    asyncio.run(run(messages))
    (call,) = loop.processor.calls
    (seen,) = call["images"]
    assert loop.server_manager.image_data == call["images"]
    assert _user_text(messages) in call["text"][0] and _user_text(original) not in call["text"][0]

    def as_seen(img):  # qwen_vl_utils resizes to multiples of 28 px
        return np.asarray(img.convert("RGB").resize(seen.size, Image.Resampling.BICUBIC), dtype=np.float64)

    got = np.asarray(seen.convert("RGB"), dtype=np.float64)
    to_variant = np.abs(got - as_seen(_user_image_pil(messages))).mean()
    to_original = np.abs(got - as_seen(_user_image_pil(original))).mean()
    print(f"mean abs difference to the variant {to_variant:.2f}, to the original {to_original:.2f}")
    assert to_variant < 8 and to_original > 3 * to_variant, (to_variant, to_original)


def _user_image_pil(messages) -> Image.Image:
    return next(p["image"] for p in messages[-1]["content"] if p["type"] == "image")
