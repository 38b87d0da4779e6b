"""DIVA-GRPO through verl 0.7.1's own code paths: registration, dataloader, compute_advantage, resume."""

import io
import os
import subprocess
import sys
import uuid

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from verl import DataProto
from verl.experimental.agent_loop import AgentLoopManager
from verl.trainer.ppo.ray_trainer import RayPPOTrainer, compute_advantage
from verl.utils.ray_utils import auto_await
from vade_verl import verl_diva
from vade_verl.diva_grpo import DivaAdvantageConfig, compute_diva_advantage, update_difficulty
from vade_verl.verl_diva import DRIVER, DivaAgentLoopManager

from verl_harness import compose_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIVA_DATA = ["data.custom_cls.path=pkg://vade_verl.verl_diva", "data.custom_cls.name=DivaRLHFDataset"]
START_DIFFICULTY = [1, 9, 5, 3]
ROLLOUT_N = 3


def _run_python(code: str, env_extra: dict) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": REPO, **env_extra}
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_registered_by_configuration_alone():
    """verl's get_adv_estimator_fn finds diva_grpo after the import that configuration triggers, not before."""
    by_env = _run_python(
        "import verl\nfrom verl.trainer.ppo.core_algos import get_adv_estimator_fn as g\nprint(g('diva_grpo').__module__)",
        {"VERL_USE_EXTERNAL_MODULES": "vade_verl.verl_diva"},
    )
    by_classes = _run_python(
        "from omegaconf import OmegaConf\n"
        "from verl.trainer.ppo.core_algos import get_adv_estimator_fn as g\n"
        "try:\n    g('diva_grpo'); print('present-before')\nexcept ValueError:\n    print('absent-before')\n"
        "from verl.utils.dataset.rl_dataset import get_dataset_class\n"
        "cls = get_dataset_class(OmegaConf.create({'custom_cls': {'path': 'pkg://vade_verl.verl_diva', 'name': 'DivaRLHFDataset'}}))\n"
        "from verl.utils.import_utils import load_class_from_fqn\n"
        "mgr = load_class_from_fqn('vade_verl.verl_diva.DivaAgentLoopManager', 'AgentLoopManager')\n"
        "print(cls.__name__, mgr.__name__, g('diva_grpo').__module__)",
        {"VERL_USE_EXTERNAL_MODULES": ""},
    )
    out_env, _ = by_env.communicate(timeout=240)
    out_cls, _ = by_classes.communicate(timeout=240)
    assert by_env.returncode == 0, out_env
    assert out_env.strip().splitlines()[-1] == "vade_verl.verl_diva"
    assert by_classes.returncode == 0, out_cls
    lines = out_cls.strip().splitlines()
    assert "absent-before" in lines and lines[-1] == "DivaRLHFDataset DivaAgentLoopManager vade_verl.verl_diva"


# ---------------------------------------------------------------------------------------------
# A tiny image dataset through verl's own dataloader construction
# ---------------------------------------------------------------------------------------------
def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _write_image_parquet(path, n, photo_bytes):
    rows = [
        {
            "data_source": "toy_vision",
            "prompt": [{"role": "user", "content": f"<image>Problem {i}: what is shown?"}],
            "images": [{"bytes": photo_bytes}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": str(i)},
            "extra_info": {"index": 100 + i, "split": "train"},
            "difficulty": START_DIFFICULTY[i % len(START_DIFFICULTY)],
            "solution": "Step 1: look\nStep 2: count\nStep 3: add\nStep 4: answer",
            "paraphrase": f"Problem {i} reworded: what does the picture show?",
        }
        for i in range(n)
    ]
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
    photo = Image.open(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")).resize((48, 56))
    train = _write_image_parquet(tmp_path / "train.parquet", 4, _png(photo))
    val = _write_image_parquet(tmp_path / "val.parquet", 2, _png(photo))

    def make(extra=()):
        config = compose_config(
            train,
            batch_size=2,
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


def _fake_rollout(monkeypatch):
    """Stand in for verl's AgentLoopManager.generate_sequences (no Ray here): echo the prompts."""

    @auto_await
    async def echo(self, prompts):
        return prompts

    monkeypatch.setattr(AgentLoopManager, "generate_sequences", echo)
    return DivaAgentLoopManager.__new__(DivaAgentLoopManager)


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


def test_advantage_on_trainer_shaped_batch(setup, monkeypatch):
    config, train_loader, _ = setup(["+algorithm.diva.k=0.1"])
    dataset = train_loader.dataset
    assert DRIVER.train_dataset is dataset
    batch = _fit_like_batch(iter(train_loader))
    gen_batch = batch.repeat(repeat_times=ROLLOUT_N, interleave=True)
    manager = _fake_rollout(monkeypatch)
    manager.generate_sequences(gen_batch)
    assert set(DRIVER.items) == set(batch.non_tensor_batch["uid"])
    val = batch.repeat(repeat_times=ROLLOUT_N, interleave=True)
    val.non_tensor_batch["uid"] = np.array([f"val-{i}" for i in range(len(val))], dtype=object)
    val.meta_info["validate"] = True
    manager.generate_sequences(val)
    assert not any(u.startswith("val-") for u in DRIVER.items)  # validation rollouts are not recorded

    n, length = len(gen_batch), 6
    rng = np.random.default_rng(0)
    rewards = rng.integers(0, 2, n).astype(np.float32)
    lengths = rng.integers(1, length + 1, n)
    mask = (torch.arange(length)[None, :] < torch.as_tensor(lengths)[:, None]).float()
    token_rewards = torch.zeros(n, length)
    token_rewards[torch.arange(n), torch.as_tensor(lengths) - 1] = torch.as_tensor(rewards)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": token_rewards, "response_mask": mask},
        non_tensors={k: gen_batch.non_tensor_batch[k] for k in ("uid", "extra_info")},
    )
    data.reorder(torch.as_tensor(rng.permutation(n)))  # as trainer.balance_batch may do
    mask = data.batch["response_mask"]
    uids = data.non_tensor_batch["uid"]
    infos = data.non_tensor_batch["extra_info"]
    problem = np.array([i["diva_problem_id"] for i in infos])
    item_d = np.array([i["diva_difficulty"] for i in infos])
    old_d = dataset.tracker.difficulty.copy()

    out = compute_advantage(data, adv_estimator="diva_grpo", num_repeat=ROLLOUT_N, config=config.algorithm)

    adv = out.batch["advantages"]
    assert adv.shape == (n, length) and torch.equal(out.batch["returns"], adv)
    assert torch.all(adv[mask == 0] == 0)
    scores = data.batch["token_level_rewards"].sum(-1)
    expected, _ = compute_diva_advantage(scores, uids, problem, item_d, DivaAdvantageConfig(k=0.1))
    torch.testing.assert_close(adv, expected[:, None].float() * mask)
    # difficulty update: mean reward of the problem and its variant, per problem in the batch
    for p in np.unique(problem):
        mean = scores.numpy()[problem == p].mean()
        assert dataset.tracker.difficulty[p] == update_difficulty(old_d[p], mean)
    untouched = np.setdiff1d(np.arange(len(dataset)), problem)
    np.testing.assert_array_equal(dataset.tracker.difficulty[untouched], old_d[untouched])


def test_unrecorded_uid_is_a_clear_error(setup):
    config, _, _ = setup()
    DRIVER.items = {}
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
    photo = Image.new("RGB", (32, 32), (200, 10, 10))
    train = _write_image_parquet(tmp_path / "train.parquet", 4, _png(photo))
    config = compose_config(train, batch_size=2, ckpt_dir=str(tmp_path / "ckpt"), overrides=DIVA_DATA)
    train_loader, val_loader = _loader(config)
    assert train_loader.dataset.is_train and not val_loader.dataset.is_train
    assert DRIVER.train_dataset is train_loader.dataset


def test_variant_messages_keep_image_slots():
    old = [Image.new("RGB", (4, 4)), Image.new("RGB", (5, 5))]
    new = [Image.new("RGB", (2, 2)), Image.new("RGB", (3, 3))]
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "image", "image": old[0]}, {"type": "text", "text": "Compare"}, {"type": "image", "image": old[1]},
        ]},
    ]  # fmt: skip
    para = verl_diva._variant_messages(messages, verl_diva.VariantContent(new, replace_text="Reworded?"))
    assert para[0] == {"role": "system", "content": "Be brief."}  # strings stay strings
    assert para[1]["content"] == [
        {"type": "image", "image": new[0]}, {"type": "image", "image": new[1]}, {"type": "text", "text": "Reworded?"},
    ]  # fmt: skip
    hint = verl_diva._variant_messages(messages, verl_diva.VariantContent(old, append_text="Hint: x"))
    assert [p.get("text") for p in hint[1]["content"]] == [None, "Compare", None, "\n\nHint: x"]
    assert messages[1]["content"][1] == {"type": "text", "text": "Compare"}  # the original is untouched
    with pytest.raises(ValueError, match="more image"):
        verl_diva._variant_messages(messages, verl_diva.VariantContent([*new, new[0]]))
    text_only = [{"role": "user", "content": "How many?"}]
    hinted = verl_diva._variant_messages(text_only, verl_diva.VariantContent([], append_text="Hint: 2"))
    assert hinted == [{"role": "user", "content": "How many?\n\nHint: 2"}]
