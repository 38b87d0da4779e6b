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
(``vade_verl.dryrun``): it loads the tokenizer and processor as verl's ``main_ppo`` does (from a local folder,
or from the Hugging Face cache for a Hub id: :func:`local_model_dir`), reads the rows of ``data.train_files``
and of ``data.val_files`` with the configured dataset class, and measures the prompts with the model's
processor, images included. verl builds both datasets with the same class and filter (``main_ppo.py:320-340``,
0.7.1), so validation rows are checked as training rows are.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

IMAGE_PLACEHOLDER = "<image>"

logger = logging.getLogger(__name__)


class DataCheckError(ValueError):
    """The data cannot train this model: the message names the config key and the row."""


@dataclass
class DataReport:
    files_key: str  # data.train_files or data.val_files
    rows_checked: int
    rows_total: int
    rows_with_images: int
    prompt_lengths: list[int] = field(default_factory=list)
    max_prompt_length: int = 0

    def lines(self) -> list[str]:
        lengths, key = self.prompt_lengths, self.files_key
        sample = "" if self.rows_checked == self.rows_total else " (evenly spaced; DRY_RUN=strict checks every row)"
        out = [f"{key}: {self.rows_checked} of {self.rows_total} rows checked{sample}, {self.rows_with_images} with images"]
        if lengths:
            out.append(
                f"{key}: prompt tokens (images included) min {min(lengths)} mean {sum(lengths) / len(lengths):.1f} "
                f"max {max(lengths)}; data.max_prompt_length={self.max_prompt_length}"
            )
        return out


def sample_rows(total: int, max_rows: int | None) -> list[int]:
    """The rows a check reads: all ``total`` when ``max_rows`` is None or not smaller, else ``max_rows`` rows evenly
    spaced over the whole data, row ``round(i (total - 1) / (max_rows - 1))`` for i = 0..max_rows-1 (the first and
    the last included), so that every file of a concatenated list and both ends of a sorted one are read."""
    if max_rows is None or total <= max_rows:
        return list(range(total))
    if max_rows == 1:
        return [0]
    return [round(i * (total - 1) / (max_rows - 1)) for i in range(max_rows)]


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
    indices: Sequence[int] | None = None,
) -> int:
    """Placeholder/image consistency of ``rows`` for a model that does (or does not) take images; errors name a
    row by ``indices[k]`` (its row in the data) when given, else by its position in ``rows``.

    Returns the number of rows with images; raises :class:`DataCheckError` on the first problem."""
    has_column = image_key in columns
    with_images = 0
    for k, row in enumerate(rows):
        i = indices[k] if indices is not None else k
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
    rows: Sequence[Mapping[str, Any]],
    prompt_length: Callable[[dict], int],
    image_key: str,
    indices: Sequence[int] | None = None,
) -> list[int]:
    """Each row's prompt length in tokens; a row that cannot be processed raises naming the row (as
    :func:`check_rows` names it)."""
    lengths = []
    for k, row in enumerate(rows):
        i = indices[k] if indices is not None else k
        try:
            lengths.append(prompt_length(copy.deepcopy(dict(row))))
        except Exception as error:  # verl's filter would drop the row silently: report it instead
            raise DataCheckError(
                f"data.image_key={image_key!r}: row {i} cannot be turned into model input "
                f"({type(error).__name__}: {error})"
            ) from error
    return lengths


def check_lengths(lengths: Sequence[int], max_prompt_length: int, indices: Sequence[int] | None = None) -> None:
    """Every measured prompt (images as their tokens) must fit ``data.max_prompt_length``: verl's length
    filter measures an image as one token, so it would keep these rows (see the module docstring)."""
    overlong = [k for k, n in enumerate(lengths) if n > max_prompt_length]
    if overlong:
        first = indices[overlong[0]] if indices is not None else overlong[0]
        raise DataCheckError(
            f"data.max_prompt_length={max_prompt_length}: {len(overlong)} of {len(lengths)} checked rows are longer "
            f"once images are tokens (row {first}: {lengths[overlong[0]]} tokens); verl 0.7.1's overlong "
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


def check_verl_dataset(dataset, model_path: str = "", max_rows: int = 1024, indices: Sequence[int] | None = None) -> int:
    """:func:`check_rows` on the rows ``indices`` (default: the first ``max_rows``) of a verl ``RLHFDataset`` (or
    subclass) as built by ``main_ppo``, with its own processor: no image is decoded, so it is cheap enough for a
    plug-in's constructor that receives the dataset before any rollout (e.g. a sampler's). Returns rows with images."""
    processor = getattr(dataset, "processor", None)
    frame = dataset.dataframe
    indices = list(range(min(max_rows, len(frame)))) if indices is None else list(indices)
    return check_rows(
        [frame[i] for i in indices],
        image_key=dataset.image_key,
        prompt_key=dataset.prompt_key,
        takes_images=processor is not None and getattr(processor, "image_processor", None) is not None,
        model_path=model_path or getattr(getattr(dataset, "tokenizer", None), "name_or_path", "?"),
        columns=frame.column_names,
        indices=indices,
    )


def local_model_dir(model_path: str) -> tuple[str | None, str]:
    """(the folder to read ``model_path``'s config, tokenizer and processor from, or None; what was found or why
    not). A local folder is used as is. Another name is a Hugging Face Hub id, which verl downloads at start
    (``hf_tokenizer``/``hf_processor`` on the id, ``trainer/main_ppo.py:311-317``, 0.7.1): its snapshot in the
    local Hugging Face cache is used when it holds ``config.json`` and ``tokenizer_config.json``, and
    ``preprocessor_config.json`` for a model whose config has a ``vision_config``. Nothing is downloaded."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    path = os.path.expanduser(model_path)
    if os.path.isdir(path):
        return path, f"model folder {path}"
    if path.startswith(("/", ".")) or os.path.exists(path):
        return None, "not on this machine"
    try:
        snapshot = snapshot_download(model_path, local_files_only=True)
    except (HFValidationError, LocalEntryNotFoundError):
        return None, (
            f"a Hub id not in the Hugging Face cache here, so not on this machine; the dry run downloads nothing: "
            f"`huggingface-cli download {model_path}` fetches it"
        )
    needed = ["config.json", "tokenizer_config.json"]
    config_file = os.path.join(snapshot, "config.json")
    if os.path.isfile(config_file):
        with open(config_file, encoding="utf-8") as f:
            if "vision_config" in json.load(f):
                needed.append("preprocessor_config.json")
    missing = [name for name in needed if not os.path.isfile(os.path.join(snapshot, name))]
    if missing:
        return None, f"its snapshot in the Hugging Face cache ({snapshot}) lacks {', '.join(missing)}: not on this machine in full"
    return snapshot, f"model {model_path} from the Hugging Face cache ({snapshot})"


def files_of(files) -> list[str]:
    """A ``data.*_files`` value (one path or a list) as a list."""
    return [files] if isinstance(files, str) else list(files)


def missing_files(files) -> list[str]:
    return [f for f in files_of(files) if not os.path.exists(os.path.expanduser(f))]


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
    from omegaconf import DictConfig

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


def check_split(files_key: str, config, tokenizer, processor, model_path: str, max_rows: int | None) -> list[str]:
    """One file list (``data.train_files`` or ``data.val_files``) read as verl reads it (the configured dataset
    class, ``is_train`` as ``main_ppo`` passes it, length filter off), its rows ``sample_rows(len, max_rows)``
    checked by :func:`check_rows` and measured against ``data.max_prompt_length``. Errors name ``files_key``."""
    try:
        from verl.trainer.main_ppo import create_rl_dataset  # verl 0.5-0.7
    except ImportError:
        from verl.trainer.ppo.utils import create_rl_dataset  # verl 0.9

    files = files_of(OmegaConf.select(config, files_key))
    data_config = copy.deepcopy(config.data)
    data_config.filter_overlong_prompts = False
    dataset = create_rl_dataset(files, data_config, tokenizer, processor, is_train=files_key == "data.train_files")
    frame = dataset.dataframe
    indices = sample_rows(len(frame), max_rows)
    rows = [frame[i] for i in indices]
    max_len = int(config.data.max_prompt_length)
    try:
        with_images = check_verl_dataset(dataset, model_path, indices=indices)
        lengths = measure_prompts(rows, verl_prompt_length(dataset, processor, tokenizer), dataset.image_key, indices)
        check_lengths(lengths, max_len, indices)
    except DataCheckError as error:
        raise DataCheckError(f"{files_key}={','.join(files)}: {error}") from error
    return DataReport(files_key, len(rows), len(frame), with_images, lengths, max_len).lines()


def check_data(config, max_rows: int | None = 256) -> list[str]:
    """The dry run's data step: returns report lines, raises :class:`DataCheckError`.

    Reads ``data.train_files`` and ``data.val_files`` (:func:`check_split`; ``max_rows`` rows of each, evenly
    spaced, or every row for None) with the model's own tokenizer and processor (:func:`local_model_dir`). A
    model or a file list that is not on this machine is skipped with a line saying so (the dry run's
    ``--strict`` refuses it before this step)."""
    model_path = str(config.actor_rollout_ref.model.path)
    model_dir, found = local_model_dir(model_path)
    missing = {key: missing_files(OmegaConf.select(config, key)) for key in ("data.train_files", "data.val_files")}
    absent = [f"{key}: not checked ({', '.join(files)} not on this machine)" for key, files in missing.items() if files]
    if model_dir is None:
        return [f"data: not checked against the model ({model_path}: {found})", *absent]
    check_model_type(model_dir, bool(config.actor_rollout_ref.model.get("use_fused_kernels", False)))
    tokenizer, processor = load_tokenizer_and_processor(model_dir, config.data.get("trust_remote_code", False))
    lines = [f"data: {found}", *absent]
    for files_key, files in missing.items():
        if not files:
            lines.extend(check_split(files_key, config, tokenizer, processor, model_dir, max_rows))
    return lines
