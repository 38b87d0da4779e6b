"""The data check of the dry run (vade_verl.verl_adapters.data_check): the real Qwen2.5-VL processor of the tiny model reads
tiny image rows as verl does; bad input fails at start naming the key and the row.

The dry runs compose verl's real config in this process (about 20 s for the module, most of it verl's and
Hydra's first import). Expected prompt lengths are counted by hand from the chat template.
"""

import shutil

import pandas as pd
import pytest

from vade_verl.verl_adapters.data_check import DataCheckError, check_lengths, check_rows
from vade_verl.tiny.build import build_all
from vade_verl.tiny.model import build_model

# <|im_start|> user <|vision_start|> 4 x <|image_pad|> <|vision_end|> how many squares ? <|im_end|> <|im_start|> assistant
IMAGE_PROMPT_TOKENS = 11 + 4
N_ROWS = 8


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_data")
    build_all(str(out), train_rows=N_ROWS, val_rows=2, seed=0)
    build_model(str(out / "text_model"))
    return out


def overrides(tiny, *extra, model="model", train="data/train.parquet", val="data/val.parquet"):
    return [
        "algorithm.adv_estimator=grpo",
        f"data.train_files={tiny / train}",
        f"data.val_files={tiny / val}",
        "data.train_batch_size=4",
        "data.max_prompt_length=32",
        "data.max_response_length=4",
        "data.dataloader_num_workers=0",
        f"actor_rollout_ref.model.path={tiny / model}",
        "actor_rollout_ref.rollout.name=vllm",
        "actor_rollout_ref.rollout.n=4",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
        "trainer.n_gpus_per_node=1",
        *extra,
    ]


def dry_run(args, **kwargs):
    from vade_verl import dryrun

    return dryrun.dry_run(args, **kwargs)[1]


def rewrite(tiny, name, change):
    """A copy of the train parquet with ``change(frame)`` applied; returns its path relative to ``tiny``."""
    frame = pd.read_parquet(tiny / "data" / "train.parquet")
    change(frame)
    frame.to_parquet(tiny / "data" / name, index=False)
    return f"data/{name}"


def test_dry_run_measures_image_prompts_with_the_real_processor(tiny):
    report = dry_run(overrides(tiny))
    assert f"data.train_files: {N_ROWS} of {N_ROWS} rows checked, {N_ROWS} with images" in report
    assert (f"data.train_files: prompt tokens (images included) min {IMAGE_PROMPT_TOKENS} mean {IMAGE_PROMPT_TOKENS:.1f} "
            f"max {IMAGE_PROMPT_TOKENS}; data.max_prompt_length=32") in report
    assert "data.val_files: 2 of 2 rows checked, 2 with images" in report


def test_validation_files_are_checked_like_training_files(tiny):
    """Over-long image prompts in data.val_files: verl's filter keeps them in validation as in training (it counts
    an image as one token), so the dry run refuses them, naming the key and the row."""
    half = rewrite(tiny, "half_val.parquet", lambda f: f.__setitem__(
        "images", [[{"bytes": big_png()}] if i % 2 else list(im) for i, im in enumerate(f["images"])]))
    dry_run(overrides(tiny, "data.max_prompt_length=20"))  # training and validation rows: 15 tokens, they fit
    with pytest.raises(DataCheckError, match=r"data\.val_files=.*half_val\.parquet.*data\.max_prompt_length=20: 4 of 8 "
                                             r"checked rows are longer .*row 1: 27 tokens"):
        dry_run(overrides(tiny, "data.max_prompt_length=20", val=half))


def test_a_sample_is_spread_over_the_file_and_stated():
    from vade_verl.verl_adapters.data_check import sample_rows

    assert sample_rows(8, None) == list(range(8)) and sample_rows(8, 256) == list(range(8))
    rows = sample_rows(1000, 5)
    assert rows == [0, 250, 500, 749, 999]  # round(i * 999 / 4): first and last row included
    assert len(sample_rows(5000, 256)) == 256 and sample_rows(5000, 256)[-1] == 4999


def hub_cache(tiny, root, repo_id="tiny-org/tiny-vl"):
    """A Hugging Face hub cache (huggingface_hub's layout) holding the tiny model as repo_id's snapshot."""
    folder = root / ("models--" + repo_id.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    shutil.copytree(tiny / "model", folder / "snapshots" / ("0" * 40))
    return repo_id


def test_a_hub_id_is_checked_from_the_cache_or_says_it_was_not(tiny, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from vade_verl.dryrun import DryRunError

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    args = [a for a in overrides(tiny) if not a.startswith("actor_rollout_ref.model.path=")]
    report = dry_run([*args, "actor_rollout_ref.model.path=tiny-org/tiny-vl"])
    assert any(line.startswith("data: not checked against the model (tiny-org/tiny-vl: a Hub id not in the Hugging Face "
                               "cache here") for line in report), report
    with pytest.raises(DryRunError, match=r"DRY_RUN=strict: .*actor_rollout_ref\.model\.path=tiny-org/tiny-vl"):
        dry_run([*args, "actor_rollout_ref.model.path=tiny-org/tiny-vl"], strict=True)
    hub_cache(tiny, tmp_path / "hub")
    report = dry_run([*args, "actor_rollout_ref.model.path=tiny-org/tiny-vl"], strict=True)
    assert any(line.startswith("data: model tiny-org/tiny-vl from the Hugging Face cache") for line in report), report
    assert f"data.train_files: {N_ROWS} of {N_ROWS} rows checked, {N_ROWS} with images" in report


@pytest.mark.parametrize(
    "change, missing",
    [
        ({"model": "nowhere"}, r"actor_rollout_ref\.model\.path=.*nowhere"),
        ({"train": "data/nowhere.parquet"}, r"data\.train_files: .*nowhere\.parquet"),
        ({"val": "data/nowhere_val.parquet"}, r"data\.val_files: .*nowhere_val\.parquet"),
    ],
)
def test_strict_treats_a_missing_model_or_data_file_as_an_error(tiny, change, missing):
    from vade_verl.dryrun import DryRunError

    report = dry_run(overrides(tiny, **change))  # DRY_RUN=1: noted, not an error (a laptop has neither)
    assert any("not checked" in line or "note:" in line for line in report)
    with pytest.raises(DryRunError, match=rf"DRY_RUN=strict: .*{missing}.* not on this machine"):
        dry_run(overrides(tiny, **change), strict=True)


def test_overlong_image_prompts_are_refused_where_verls_filter_keeps_them(tiny):
    """A 112x112 image is 16 tokens: 11 + 16 = 27 > 20. verl 0.7.1's own filter measures the image as one
    token (12 <= 20) and keeps every row: checked here with verl's RLHFDataset itself."""
    from omegaconf import OmegaConf
    from verl.utils import hf_processor, hf_tokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    half = rewrite(tiny, "half.parquet", lambda f: f.__setitem__(
        "images", [[{"bytes": big_png()}] if i % 2 else list(im) for i, im in enumerate(f["images"])]))
    with pytest.raises(DataCheckError, match=r"data\.max_prompt_length=20: 4 of 8 checked rows are longer .*row 1: 27 tokens"):
        dry_run(overrides(tiny, "data.max_prompt_length=20", train=half))
    config = OmegaConf.create({"max_prompt_length": 20, "filter_overlong_prompts": True, "filter_overlong_prompts_workers": 1})
    model = str(tiny / "model")
    kept = RLHFDataset([str(tiny / half)], hf_tokenizer(model), config, hf_processor(model, use_fast=True))
    assert len(kept) == N_ROWS  # verl's filter dropped none of them


def big_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (112, 112), "white").save(buf, format="PNG")
    return buf.getvalue()


# --- bad input: a clear error at start naming the key, before any rollout ------------------------------------


def test_text_only_model_given_image_rows(tiny):
    with pytest.raises(DataCheckError, match=r"data\.image_key='images': row 0 carries 1 image\(s\), but the model at "
                                             r"actor_rollout_ref\.model\.path=.*text_model has no multimodal processor"):
        dry_run(overrides(tiny, model="text_model"))


def test_model_folder_without_its_processor(tiny):
    no_proc = tiny / "model_without_processor"
    shutil.copytree(tiny / "model", no_proc)
    for name in ("preprocessor_config.json", "video_preprocessor_config.json"):
        (no_proc / name).unlink()
    with pytest.raises(DataCheckError, match=r"data\.image_key='images'.*has no multimodal processor"):
        dry_run(overrides(tiny, model="model_without_processor"))


def test_image_column_the_model_cannot_take(tiny):
    bad = rewrite(tiny, "bad_images.parquet", lambda f: f.__setitem__("images", [[{"bytes": b"not a picture"}]] * len(f)))
    with pytest.raises(DataCheckError, match=r"data\.image_key='images': row 0 cannot be turned into model input"):
        dry_run(overrides(tiny, train=bad))


def test_image_key_naming_no_column(tiny):
    with pytest.raises(DataCheckError, match=r"data\.image_key='pictures': the prompts hold <image> placeholders"):
        dry_run(overrides(tiny, "data.image_key=pictures"))


# --- the pure rules, on hand-made rows -------------------------------------------------------------------


def rows(*pairs):
    return [{"prompt": [{"role": "user", "content": text}], "images": images} for text, images in pairs]


def test_check_rows_counts_image_rows_and_refuses_mismatches():
    kw = dict(image_key="images", prompt_key="prompt", model_path="m", columns=["prompt", "images"])
    assert check_rows(rows(("<image>a", [1]), ("b", []), ("<image><image>c", [1, 2])), takes_images=True, **kw) == 2
    with pytest.raises(DataCheckError, match=r"row 1 has 1 image\(s\) but its prompt .* holds 2 <image>"):
        check_rows(rows(("<image>a", [1]), ("<image><image>b", [1])), takes_images=True, **kw)
    with pytest.raises(DataCheckError, match=r"row 0 has 1 image\(s\) but its prompt .* holds 0"):
        check_rows(rows(("a", [1])), takes_images=True, **kw)
    assert check_rows(rows(("a", []), ("b", None)), takes_images=False, **kw) == 0  # text rows, text model: fine


def test_check_lengths():
    check_lengths([10, 32], 32)
    with pytest.raises(DataCheckError, match="1 of 3 checked rows are longer .*row 1: 40 tokens"):
        check_lengths([10, 40, 3], 32)


def test_check_on_the_dataset_main_ppo_builds(tiny):
    """The cheap form a plug-in can call on the dataset it receives at start (no image decoded): verl's own
    RLHFDataset, built as main_ppo builds it, for the VL model and for a text-only one."""
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from vade_verl.verl_adapters.data_check import check_verl_dataset, load_tokenizer_and_processor

    config = OmegaConf.create({"max_prompt_length": 32, "filter_overlong_prompts": False})
    files = [str(tiny / "data" / "train.parquet")]
    tokenizer, processor = load_tokenizer_and_processor(str(tiny / "model"))
    assert check_verl_dataset(RLHFDataset(files, tokenizer, config, processor)) == N_ROWS
    tokenizer, processor = load_tokenizer_and_processor(str(tiny / "text_model"))
    assert processor is None
    with pytest.raises(DataCheckError, match=r"data\.image_key='images': row 0 carries 1 image\(s\).*text_model"):
        check_verl_dataset(RLHFDataset(files, tokenizer, config, processor))


@pytest.mark.parametrize("plugin", ["vade", "diva", "mssr"])
def test_each_plugin_refuses_image_rows_for_a_text_model_at_start(tiny, plugin):
    """The plug-ins that verl hands the training dataset before any rollout run the cheap check there: the
    sampler's constructor (VADE) and the custom dataset classes (DIVA-GRPO, MSSR), built as main_ppo builds them."""
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from vade_verl.verl_adapters.data_check import load_tokenizer_and_processor

    files = [str(tiny / "data" / "train.parquet")]
    config = OmegaConf.create({"max_prompt_length": 32, "filter_overlong_prompts": False, "train_batch_size": 4})
    tokenizer, processor = load_tokenizer_and_processor(str(tiny / "text_model"))
    expected = r"data\.image_key='images': row 0 carries 1 image\(s\).*text_model has no multimodal processor"
    with pytest.raises(DataCheckError, match=expected):
        if plugin == "vade":
            from vade_verl.vade.sampler import VADESampler

            VADESampler(RLHFDataset(files, tokenizer, config, processor), config)
        elif plugin == "diva":
            from vade_verl.diva.verl_plugin import DivaRLHFDataset

            DivaRLHFDataset(files, tokenizer, config, processor)
        else:
            from vade_verl.mssr.verl_plugin import MSSRDataset

            MSSRDataset(files, tokenizer, config, processor)


def test_a_vl_checkpoint_verl_would_take_for_its_text_model(tiny, caplog):
    """A config.json as save_pretrained writes it (text_config.model_type = qwen2_5_vl_text): transformers 4.x
    answers the nested model_type, verl patches the model as a text model and, with fused kernels, drops the
    images. The tiny model's builder removes that key; putting it back must be refused."""
    import json

    from transformers import AutoConfig

    from vade_verl.verl_adapters.data_check import check_model_type

    resaved = tiny / "resaved"
    shutil.copytree(tiny / "model", resaved)
    config = json.loads((resaved / "config.json").read_text())
    config["text_config"]["model_type"] = "qwen2_5_vl_text"
    (resaved / "config.json").write_text(json.dumps(config))
    loaded = AutoConfig.from_pretrained(resaved)
    if loaded.model_type == type(loaded).model_type:
        pytest.skip("this transformers reads the declared model type (5.x): nothing for verl to miss")
    check_model_type(str(tiny / "model"), use_fused_kernels=True)  # the builder's config: fine
    with pytest.raises(DataCheckError, match=r"use_fused_kernels=True the actor would ignore the images.*delete"):
        check_model_type(str(resaved), use_fused_kernels=True)
    with pytest.raises(DataCheckError, match="reads model_type 'qwen2_5_vl_text'"):
        dry_run(overrides(tiny, "actor_rollout_ref.model.use_fused_kernels=True", model="resaved"))
    with caplog.at_level("WARNING"):
        check_model_type(str(resaved), use_fused_kernels=False)
    assert "skips its vision-language patches" in caplog.text
