"""Start-time checks of a run's training data against its model: images, image tokens, prompt lengths.

Each check stops a mistake that verl 0.7.1 only meets minutes later, inside the trainer, or never
(line numbers: verl 0.7.1 as released):

- rows with images but no multimodal processor (a text-only model, or a model folder without
  ``preprocessor_config.json``): verl's length filter tokenizes the prompt with the ``<image>`` placeholder
  as text, and the first batch then fails in ``RLHFDataset._build_messages`` ("processor is needed to
  process image and video", ``utils/dataset/rl_dataset.py:313``);
- ``<image>`` placeholders in the prompts but no ``data.image_key`` column: the placeholder is trained as
  plain text and the image silently never reaches the model (``rl_dataset.py:311-312`` skips messages
  when the row has no images);
- a row whose placeholder count differs from its image count (``rl_dataset.py:324/344`` assert, in the
  first batch that holds the row);
- an image entry verl cannot open (``verl/utils/dataset/vision_utils.py:22`` ``process_image``), or a
  processor that takes no images: verl's length filter catches the exception, prints it and drops the row
  as if it were too long (``rl_dataset.py:234-237``);
- prompts longer than ``data.max_prompt_length`` once the images are tokens. verl's own filter
  undercounts them: ``doc2len`` builds the messages first (``rl_dataset.py:196``), which pops the image
  column from the row (``:306``), so the test for images two lines later (``:205``) never holds and each
  image is measured as the one ``<|image_pad|>`` token of the chat template instead of its grid of tokens
  (a 112x112 image: 1 instead of 16). Such a prompt passes the filter and reaches the agent loop, which pads
  prompts to that length but never truncates them (``experimental/agent_loop/agent_loop.py:595``). Here the
  images are measured, and an overlong row is an error, whether or not ``data.filter_overlong_prompts`` is on.

- a Qwen2-VL / Qwen2.5-VL checkpoint that verl takes for its text model (``text_config.model_type`` in a
  re-saved ``config.json``, read first by transformers 4.x): with ``use_fused_kernels=True`` the actor then
  computes its log-probs without the images (:func:`check_model_type`).

:func:`check_rows` is the pure part (no verl import) and raises :class:`DataCheckError` naming the config key
and the row; :func:`check_verl_dataset` runs it on a verl dataset (cheap: no image is decoded), for any
plug-in that receives the dataset at start; :func:`check_data` is the adapter the dry run calls
(``vade_verl.dryrun``): it loads the tokenizer and processor as verl's ``main_ppo`` does, reads the rows with
the configured dataset class and measures every prompt with the model's processor, images included.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

IMAGE_PLACEHOLDER = "<image>"

logger = logging.getLogger(__name__)


class DataCheckError(ValueError):
    """The data cannot train this model: the message names the config key and the row."""


@dataclass
class DataReport:
    rows_checked: int
    rows_total: int
    rows_with_images: int
    prompt_lengths: list[int] = field(default_factory=list)
    max_prompt_length: int = 0

    def lines(self) -> list[str]:
        lengths = self.prompt_lengths
        out = [f"data: {self.rows_checked} of {self.rows_total} rows checked, {self.rows_with_images} with images"]
        if lengths:
            out.append(
                f"data: prompt tokens (images included) min {min(lengths)} mean {sum(lengths) / len(lengths):.1f} "
                f"max {max(lengths)}; data.max_prompt_length={self.max_prompt_length}"
            )
        return out


def _prompt_text(prompt: Any) -> str:
    """All text of a row's prompt (a string, or chat messages whose content is a string)."""
    if isinstance(prompt, str):
        return prompt
    return "".join(m.get("content", "") for m in prompt or () if isinstance(m, Mapping) and isinstance(m.get("content"), str))


def check_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    image_key: str,
    prompt_key: str,
    takes_images: bool,
    model_path: str,
    columns: Sequence[str],
) -> int:
    """Placeholder/image consistency of ``rows`` for a model that does (or does not) take images.

    Returns the number of rows with images; raises :class:`DataCheckError` on the first problem."""
    has_column = image_key in columns
    with_images = 0
    for i, row in enumerate(rows):
        placeholders = _prompt_text(row.get(prompt_key)).count(IMAGE_PLACEHOLDER)
        images = list(row.get(image_key) or []) if has_column else []
        if placeholders and not has_column:
            raise DataCheckError(
                f"data.image_key={image_key!r}: the prompts hold {IMAGE_PLACEHOLDER} placeholders (row {i}) but the "
                f"data has no {image_key!r} column (columns: {sorted(columns)}); verl would train on the placeholder "
                "as text, without the image"
            )
        if images and not takes_images:
            raise DataCheckError(
                f"data.image_key={image_key!r}: row {i} carries {len(images)} image(s), but the model at "
                f"actor_rollout_ref.model.path={model_path} has no multimodal processor (a text-only model?); "
                "use a vision-language model, or drop the image column"
            )
        if placeholders != len(images):
            raise DataCheckError(
                f"data.image_key={image_key!r}: row {i} has {len(images)} image(s) but its prompt "
                f"(data.prompt_key={prompt_key!r}) holds {placeholders} {IMAGE_PLACEHOLDER} placeholder(s)"
            )
        with_images += bool(images)
    return with_images


def measure_prompts(
    rows: Sequence[Mapping[str, Any]], prompt_length: Callable[[dict], int], image_key: str
) -> list[int]:
    """Each row's prompt length in tokens; a row that cannot be processed raises naming the row."""
    lengths = []
    for i, row in enumerate(rows):
        try:
            lengths.append(prompt_length(copy.deepcopy(dict(row))))
        except Exception as error:  # verl's filter would drop the row silently: report it instead
            raise DataCheckError(
                f"data.image_key={image_key!r}: row {i} cannot be turned into model input "
                f"({type(error).__name__}: {error})"
            ) from error
    return lengths


def check_lengths(lengths: Sequence[int], max_prompt_length: int) -> None:
    """Every measured prompt (images as their tokens) must fit ``data.max_prompt_length``: verl's length
    filter measures an image as one token, so it would keep these rows (see the module docstring)."""
    overlong = [i for i, n in enumerate(lengths) if n > max_prompt_length]
    if overlong:
        raise DataCheckError(
            f"data.max_prompt_length={max_prompt_length}: {len(overlong)} of {len(lengths)} checked rows are longer "
            f"once images are tokens (row {overlong[0]}: {lengths[overlong[0]]} tokens); verl 0.7.1's overlong "
            "filter counts each image as one token and would keep them, and its agent loop never truncates a "
            "prompt: raise data.max_prompt_length or shrink the images (the processor's max_pixels)"
        )


def verl_prompt_length(dataset, processor, tokenizer) -> Callable[[dict], int]:
    """A row's prompt length as verl's overlong filter means to compute it (``rl_dataset.py:196-232`` /
    ``:246-256``), but with the row's images given to the processor."""
    if processor is None:

        def length(row: dict) -> int:
            ids = tokenizer.apply_chat_template(row[dataset.prompt_key], add_generation_prompt=True, tokenize=True)
            return len(ids)

        return length

    from verl.utils.dataset.vision_utils import process_image

    def length(row: dict) -> int:
        images = copy.deepcopy(row.get(dataset.image_key)) or None  # _build_messages pops and edits them
        messages = dataset._build_messages(row)
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if images:
            images = [process_image(image, image_patch_size=dataset.image_patch_size) for image in images]
        return len(processor(text=[text], images=images)["input_ids"][0])

    return length


def load_tokenizer_and_processor(model_path: str, trust_remote_code: bool = False):
    """As verl 0.7.1's ``main_ppo.TaskRunner.run`` (``trainer/main_ppo.py:311-317``)."""
    from verl.utils import hf_processor, hf_tokenizer

    tokenizer = hf_tokenizer(model_path, trust_remote_code=trust_remote_code)
    processor = hf_processor(model_path, trust_remote_code=trust_remote_code, use_fast=True)
    return tokenizer, processor


def check_verl_dataset(dataset, model_path: str = "", max_rows: int = 1024) -> int:
    """:func:`check_rows` on the first ``max_rows`` rows of a verl ``RLHFDataset`` (or subclass) as built by
    ``main_ppo``, with its own processor: no image is decoded, so it is cheap enough for a plug-in's
    constructor that receives the dataset before any rollout (e.g. a sampler's). Returns rows with images."""
    processor = getattr(dataset, "processor", None)
    frame = dataset.dataframe
    return check_rows(
        [frame[i] for i in range(min(max_rows, len(frame)))],
        image_key=dataset.image_key,
        prompt_key=dataset.prompt_key,
        takes_images=processor is not None and getattr(processor, "image_processor", None) is not None,
        model_path=model_path or getattr(getattr(dataset, "tokenizer", None), "name_or_path", "?"),
        columns=frame.column_names,
    )


def check_model_type(model_path: str, use_fused_kernels: bool) -> None:
    """The model type verl sees must be the checkpoint's own.

    verl 0.7.1 picks its model patches by ``model.config.model_type`` (``models/transformers/monkey_patch.py:255``
    and ``:352``). transformers 4.x's Qwen2-VL / Qwen2.5-VL configs answer an attribute from their nested
    ``text_config`` first (4.57.1 ``configuration_qwen2_5_vl.py:351-357``), and ``save_pretrained`` writes
    ``text_config.model_type = "qwen2_5_vl_text"``: a re-saved checkpoint (an SFT or merged model, verl's own
    HF export) then reads as the text model. verl skips its vision-language patches, and with
    ``use_fused_kernels=True`` installs the text-only fused forward, whose ``**loss_kwargs`` swallow
    ``pixel_values`` (``models/transformers/dense_common.py:86-90``): the actor's log-probs are computed
    without the images, silently (measured on the tiny Qwen2.5-VL: 2e-2 off, equal to no image at all). That
    case is an error; without fused kernels a warning, since verl's other VL patches are skipped too.
    """
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path)
    declared = type(config).model_type
    if config.model_type == declared:
        return
    what = (
        f"actor_rollout_ref.model.path={model_path}: verl reads model_type {config.model_type!r} for this "
        f"{declared!r} checkpoint (its config.json has text_config.model_type, which transformers 4.x answers "
        "first) and skips its vision-language patches"
    )
    fix = f'delete "model_type" from "text_config" in {os.path.join(model_path, "config.json")}'
    if use_fused_kernels:
        raise DataCheckError(
            f"{what}; with actor_rollout_ref.model.use_fused_kernels=True the actor would ignore the images. {fix}, "
            "or set actor_rollout_ref.model.use_fused_kernels=False"
        )
    logger.warning("%s. %s", what, fix)


def _model_settings(dataset) -> tuple[str, bool] | None:
    """(local model path, use_fused_kernels) of the run whose ``data`` node the dataset holds, if readable."""
    from omegaconf import DictConfig, OmegaConf

    config = getattr(dataset, "config", None)
    if not isinstance(config, DictConfig):
        return None
    root = config._get_root()
    path = OmegaConf.select(root, "actor_rollout_ref.model.path", default=None)
    if not path or not os.path.isdir(os.path.expanduser(str(path))):
        return None  # a hub id or a remote path: verl copies it later; the dry run checks the local folder
    return os.path.expanduser(str(path)), bool(OmegaConf.select(root, "actor_rollout_ref.model.use_fused_kernels", default=False))


def check_plugin_dataset(dataset) -> None:
    """:func:`check_verl_dataset` and :func:`check_model_type` for a plug-in's constructor, which verl hands the
    training dataset before any rollout (``VADESampler``, ``DivaRLHFDataset``, ``MSSRDataset``). Left alone:
    datasets that are not verl's (e.g. the simulator's stand-ins, which have no ``image_key``) and datasets built
    without the model's tokenizer (the dry run's stand-in when the model is not on the machine, and config-level
    tests), where a missing processor says nothing about the model; verl's ``main_ppo`` always loads both."""
    if not all(hasattr(dataset, name) for name in ("dataframe", "image_key", "prompt_key")):
        return
    if getattr(dataset, "tokenizer", None) is None:
        return
    check_verl_dataset(dataset)
    settings = _model_settings(dataset)
    if settings is not None:
        check_model_type(*settings)


def check_data(config, max_rows: int = 256) -> list[str]:
    """The dry run's data step: returns report lines, raises :class:`DataCheckError`.

    Reads the first ``max_rows`` rows of ``data.train_files`` with the configured dataset class (verl's
    ``create_rl_dataset``, length filter off) and the model's own tokenizer and processor. Skipped, with a
    line saying so, when the model folder or a train file is not on this machine."""
    model_path = os.path.expanduser(str(config.actor_rollout_ref.model.path))
    files = config.data.train_files
    files = [files] if isinstance(files, str) else list(files)
    missing = [f for f in files if not os.path.exists(os.path.expanduser(f))]
    if not os.path.isdir(model_path) or missing:
        what = f"model folder {model_path}" if not os.path.isdir(model_path) else ", ".join(missing)
        return [f"data: not checked against the model ({what} not on this machine)"]

    try:
        from verl.trainer.main_ppo import create_rl_dataset  # verl 0.5-0.7
    except ImportError:
        from verl.trainer.ppo.utils import create_rl_dataset  # verl 0.9

    check_model_type(model_path, bool(config.actor_rollout_ref.model.get("use_fused_kernels", False)))
    tokenizer, processor = load_tokenizer_and_processor(model_path, config.data.get("trust_remote_code", False))
    data_config = copy.deepcopy(config.data)
    data_config.filter_overlong_prompts = False
    dataset = create_rl_dataset(files, data_config, tokenizer, processor, is_train=True)
    frame = dataset.dataframe
    rows = [frame[i] for i in range(min(max_rows, len(frame)))]
    with_images = check_verl_dataset(dataset, model_path, max_rows)
    lengths = measure_prompts(rows, verl_prompt_length(dataset, processor, tokenizer), dataset.image_key)
    max_len = int(config.data.max_prompt_length)
    check_lengths(lengths, max_len)
    return DataReport(len(rows), len(frame), with_images, lengths, max_len).lines()
