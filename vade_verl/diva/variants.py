"""DIVA-GRPO variant generation: difficulty-matched image/text variants of a problem (PIL/numpy only).

DIVA-GRPO (arXiv 2603.01106, Sec. 3.2) turns the drawn shift ``D = target - d``
(:func:`vade_verl.diva.advantage.draw_variant_difficulties`) into a variant. Defaults follow the authors'
code where the paper gives no number: the shift-to-variant table of GitHub Siaaaaaa1/DIVA-GRPO
``DIVA-GRPO/verl/utils/dataset.py`` (``difficulty_varient_function_list``, the table the paper's Sec. 3.2
describes) and the perturbations of ``DIVA-GRPO/verl/difficulty_variation/difficulty_utils.py`` (the
release Siaaaaaa1/DIVA_GRPO_release imports the same functions; its last copy is
``verl/difficulty_variation_old/difficulty_utils.py``). docs/diva.md tabulates paper / authors / ours.

* ``D = 0``: a paraphrase of the question (a paraphrase column; ``python -m vade_verl.diva.prep`` writes one).
* ``D = +1..+3``: one perturbation at intensity 0.4 / 0.5 / 0.6, or (when a paraphrase exists) the
  paraphrase alone, all options equally likely; the paraphrase alone keeps the problem's difficulty
  (the authors' ``gen_var_text`` does not change it).
* ``D = +4..+8``: with probability ``render_prob`` the question rendered into the image (the authors'
  ``gen_only_vision``), else 2, 2, 3, 3, 4 different perturbations at 0.4, 0.5, 0.4, 0.5, 0.5.
* ``D < 0``: a hint: the first 1, 1, 2, 2, 3, 3 reasoning steps for D = -1..-6, all of them for D <= -7
  (the authors' ``gen_think_step``).

A perturbation or rendered variant states its question as a paraphrase with probability
``paraphrase_prob`` (0.5) when one exists. Strength of a perturbation at intensity ``s``:

* ``gaussian_noise``: additive N(0, s^2) on [0, 1] pixel values, clipped (``add_gaussian_noise``).
* ``salt_pepper``: the image binarised per channel at 0.5, then a fraction ``s`` of the pixels set to
  white or black, half each (``add_salt_pepper_noise``).
* ``rotation``: a random multiple of 45 degrees (s < 0.25), of 30 degrees (s < 0.45) or of 1 degree,
  in 1..359, counter-clockwise, canvas expanded and filled with the mean colour of one edge; the
  question gets a sentence stating the angle (``gen_rotate``, ``rotate_image``).
* ``blur``: OpenCV-style Gaussian blur with an odd kernel of ``max(3, int(50 s))`` (+1 if even) pixels and
  sigma ``0.3 ((k - 1) / 2 - 1) + 0.8`` (``add_blur``: ``cv2.GaussianBlur(img, (k, k), 0)``).
* ``low_resolution``: down to a fraction ``1 - s`` of each side (nearest), back up to the original size
  (bilinear) (``add_low_resolution``; the authors' factor is ``s`` itself, see docs/diva.md).

A variant that cannot be made as drawn (no paraphrase for D = 0, no reasoning steps for D < 0, no image
to perturb) falls back to the paraphrase (at the problem's difficulty), else, for D = 0 with
``fallback="render"`` and an image, to the question rendered into the image (at the problem's difficulty +
``render_shift``), else to an unchanged copy. A D < 0 variant never becomes a rendered one: that would
make a problem drawn for an easier variant harder (the authors' ``gen_think_step`` returns the item
unchanged when it has no steps, release ``verl/utils/gen_new_item.py:271-273``); ``VariantSpec.fallback`` names the reason and ``difficulty`` is always that
of what was built. All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vade_verl.diva.advantage import DifficultyConfig, draw_variant_difficulties

RENDERED_QUESTION = "As shown in the image."
"""The question text of a rendered variant (the authors': "As shown in the <image>.")."""
FALLBACKS = ("render", "copy")


@dataclass(frozen=True)
class VariantConfig:
    """How a drawn shift becomes a variant (the authors' values by default; see the module doc)."""

    intensities: tuple[float, ...] = (0.4, 0.5, 0.6)
    """Intensity of the single perturbation for D = +1, +2, +3."""
    perturbations: tuple[str, ...] = ("gaussian_noise", "salt_pepper", "rotation", "blur", "low_resolution")
    """Single perturbations to choose from at D = +1..+3."""
    paraphrase_in_positive_shift: bool = True
    """At D = +1..+3 the paraphrase alone is one more option (kept at the problem's difficulty)."""
    combo_sizes: tuple[int, ...] = (2, 2, 3, 3, 4)
    """Number of combined perturbations for D = +4, +5, +6, +7, +8."""
    combo_intensities: tuple[float, ...] = (0.4, 0.5, 0.4, 0.5, 0.5)
    combo_perturbations: tuple[str, ...] = ("rotation", "gaussian_noise", "salt_pepper", "blur")
    render_prob: float = 1.0 / 3.0
    """At D = +4..+8: probability of rendering the question into the image instead of a combination."""
    paraphrase_prob: float = 0.5
    """Probability that a perturbed or rendered variant uses a paraphrase (when one exists)."""
    hint_steps: tuple[int, ...] = (1, 1, 2, 2, 3, 3)
    """Reasoning steps given as hint for D = -1, -2, ..., -6."""
    all_hints_at: int = -7
    """Shifts at or below this give every step."""
    fallback: str = "render"
    """What replaces a D = 0 variant without a paraphrase: "render" or "copy" (a D < 0 one without steps: a copy)."""
    render_shift: int = 2
    """Difficulty shift recorded for a rendered fallback (the authors' ``gen_only_vision(..., 2)``)."""
    render_band: float = 0.22
    """Height of the text band added to the image, as a fraction of its height (``text_height_ratio``)."""
    render_font: str | None = None
    """TrueType font file for rendering; None: Pillow's bundled scalable font (same on every machine)."""

    def __post_init__(self):
        for name in (*self.perturbations, *self.combo_perturbations):
            if name not in PERTURBATIONS:
                raise ValueError(f"VariantConfig: unknown perturbation {name!r}; known: {sorted(PERTURBATIONS)}")
        if len(self.intensities) != 3:
            raise ValueError(f"VariantConfig: intensities needs 3 entries (D=+1..+3), got {self.intensities}")
        if len(self.combo_sizes) != 5 or len(self.combo_intensities) != 5:
            raise ValueError("VariantConfig: combo_sizes and combo_intensities need 5 entries (D=+4..+8)")
        if min(self.combo_sizes) < 1 or max(self.combo_sizes) > len(self.combo_perturbations):
            raise ValueError(
                f"VariantConfig: combo_sizes {self.combo_sizes} must be in 1..{len(self.combo_perturbations)} "
                "(the number of combo_perturbations)"
            )
        for s in (*self.intensities, *self.combo_intensities):
            if not 0.0 < s < 1.0:
                raise ValueError(f"VariantConfig: intensities must lie in (0, 1), got {s}")
        for name in ("render_prob", "paraphrase_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"VariantConfig: {name} must lie in [0, 1], got {getattr(self, name)}")
        if len(self.hint_steps) != -self.all_hints_at - 1 or min(self.hint_steps) < 1:
            raise ValueError(
                f"VariantConfig: hint_steps needs one positive count per shift -1..{self.all_hints_at + 1}, got {self.hint_steps}"
            )
        if self.fallback not in FALLBACKS:
            raise ValueError(f"VariantConfig: fallback must be one of {FALLBACKS}, got {self.fallback!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> VariantConfig:
        known = {f.name for f in fields(cls)}
        values = dict(values or {})
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"VariantConfig: unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# ---------------------------------------------------------------------------------------------
# Strengths: intensity s -> perturbation parameters (the authors' difficulty_utils.py formulas).
# ---------------------------------------------------------------------------------------------
def blur_kernel_size(intensity: float) -> int:
    """``max(3, int(50 s))``, made odd by adding 1: 21 / 25 / 31 pixels at s = 0.4 / 0.5 / 0.6."""
    k = max(3, int(intensity * 50))
    return k + 1 if k % 2 == 0 else k


def opencv_gaussian_sigma(kernel_size: int) -> float:
    """The sigma ``cv2.GaussianBlur`` uses for sigma=0: ``0.3 ((k - 1) / 2 - 1) + 0.8``."""
    return 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8


def rotation_step(intensity: float) -> int:
    """Angle granularity: 45 degrees below s = 0.25, 30 below 0.45, else 1 (``gen_rotate``)."""
    return 45 if intensity < 0.25 else 30 if intensity < 0.45 else 1


def low_resolution_size(size: tuple[int, int], intensity: float) -> tuple[int, int]:
    """(w, h) of the intermediate image: each side times ``1 - s``, at least 1 pixel."""
    return tuple(max(1, int(side * (1.0 - intensity))) for side in size)


# ---------------------------------------------------------------------------------------------
# Perturbations: fn(images, intensity, rng) -> (images, sentence for the question or None).
# One call perturbs every image of the problem with the same parameters.
# ---------------------------------------------------------------------------------------------
Perturbation = Callable[[list[Image.Image], float, np.random.Generator], tuple[list, str | None]]
PERTURBATIONS: dict[str, Perturbation] = {}


def register_perturbation(name: str):
    def decorator(fn: Perturbation) -> Perturbation:
        if name in PERTURBATIONS:
            raise ValueError(f"perturbation {name!r} is already registered")
        PERTURBATIONS[name] = fn
        return fn

    return decorator


def _unit_rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def _from_unit(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8), mode="RGB")


@register_perturbation("gaussian_noise")
def gaussian_noise(images, intensity, rng):
    return [_from_unit(arr + rng.normal(0.0, intensity, arr.shape)) for arr in map(_unit_rgb, images)], None


@register_perturbation("salt_pepper")
def salt_pepper(images, intensity, rng):
    out = []
    for img in images:
        arr = np.where(np.asarray(img.convert("RGB")) > 127.5, 255, 0).astype(np.uint8)
        h, w = arr.shape[:2]
        n = int(intensity * h * w)
        flat = rng.choice(h * w, size=n, replace=False)
        salt = n // 2 + (int(rng.integers(2)) if n % 2 else 0)
        arr.reshape(h * w, 3)[flat[:salt]] = 255
        arr.reshape(h * w, 3)[flat[salt:]] = 0
        out.append(Image.fromarray(arr, mode="RGB"))
    return out, None


def rotation_sentence(angle_deg: int) -> str:
    """The sentence added to a question whose image was rotated by ``angle_deg`` counter-clockwise."""
    return (
        f"This image has been rotated by {angle_deg} degrees counter-clockwise. "
        "Please mentally rotate it back and solve the problem."
    )


def edge_color(image: Image.Image, angle_deg: int) -> tuple[int, ...]:
    """Mean colour of the edge that the authors' ``rotate_image`` fills with, chosen by the angle."""
    arr = np.asarray(image.convert("RGB"))
    a = angle_deg % 360
    edge = arr[0] if 45 <= a < 135 else arr[:, -1] if 135 <= a < 225 else arr[-1] if 225 <= a < 315 else arr[:, 0]
    return tuple(int(c) for c in edge.mean(axis=0))


@register_perturbation("rotation")
def rotation(images, intensity, rng):
    step = rotation_step(intensity)
    angle = step * int(rng.integers(1, 359 // step + 1))
    out = [
        img.convert("RGB").rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=edge_color(img, angle))
        for img in images
    ]
    return out, rotation_sentence(angle)


def _gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2.0
    kernel = np.exp(-(x**2) / (2.0 * sigma**2))
    return kernel / kernel.sum()


def _convolve_reflect101(arr: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """1-D convolution along ``axis`` with OpenCV's default border (BORDER_REFLECT_101: ``dcb|abcd|cba``)."""
    half = len(kernel) // 2
    pad = [(0, 0)] * arr.ndim
    pad[axis] = (half, half)
    padded = np.pad(arr, pad, mode="reflect")
    out = np.zeros_like(arr)
    n = arr.shape[axis]
    for i, weight in enumerate(kernel):
        out += weight * np.take(padded, np.arange(i, i + n), axis=axis)
    return out


@register_perturbation("blur")
def blur(images, intensity, rng):
    k = blur_kernel_size(intensity)
    kernel = _gaussian_kernel_1d(k, opencv_gaussian_sigma(k))
    out = []
    for img in images:
        arr = np.asarray(img.convert("RGB"), dtype=np.float64)
        arr = _convolve_reflect101(_convolve_reflect101(arr, kernel, 0), kernel, 1)
        out.append(Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), mode="RGB"))
    return out, None


@register_perturbation("low_resolution")
def low_resolution(images, intensity, rng):
    out = []
    for img in images:
        img = img.convert("RGB")
        small = img.resize(low_resolution_size(img.size, intensity), Image.Resampling.NEAREST)
        out.append(small.resize(img.size, Image.Resampling.BILINEAR))
    return out, None


def bound_pixels(image: Image.Image, max_pixels: int) -> Image.Image:
    """``image`` scaled down, aspect kept, to at most ``max_pixels`` pixels (bicubic); unchanged if within.

    Side factor ``sqrt(max_pixels / (w h))``, floored, as the authors' ``process_image`` (release
    ``verl/utils/dataset.py:110-113``) and qwen_vl_utils' ``smart_resize`` bound what the model sees: a
    variant perturbed at this size costs what the model can see of it, not what the file holds.
    """
    if max_pixels < 1:
        raise ValueError(f"bound_pixels: max_pixels must be >= 1, got {max_pixels}")
    w, h = image.size
    if w * h <= max_pixels:
        return image
    scale = (max_pixels / (w * h)) ** 0.5
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


# ---------------------------------------------------------------------------------------------
# Rendering the question into the image (the authors' add_text_to_image_with_space).
# ---------------------------------------------------------------------------------------------
RENDER_PADDING = 12
RENDER_MARGIN = 12
RENDER_FONT_SIZES = (12, 100)
RENDER_LINE_SPACING = 0.2


def _font(path: str | None, size: int):
    return ImageFont.load_default(size) if path is None else ImageFont.truetype(path, size)


def _text_width(draw: ImageDraw.ImageDraw, text: str, font) -> float:
    return draw.textlength(text, font=font)


def wrap_text(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> list[str]:
    """Greedy word wrap to ``width`` pixels; a word wider than a line is broken between characters."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if _text_width(draw, candidate, font) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for ch in word:
                if line and _text_width(draw, line + ch, font) > width:
                    lines.append(line)
                    line = ""
                line += ch
        if line:
            lines.append(line)
    return lines


def _layout(draw, text, font, width):
    lines = wrap_text(draw, text, font, width)
    ascent, descent = font.getmetrics()
    line_height = ascent + descent
    spacing = max(1, int(line_height * RENDER_LINE_SPACING))
    return lines, line_height, spacing, line_height * len(lines) + spacing * max(0, len(lines) - 1)


def render_question(image: Image.Image, text: str, rng: np.random.Generator, cfg: VariantConfig) -> Image.Image:
    """``image`` with a white band above or below (drawn) holding ``text`` in black.

    The band is ``render_band`` of the image height; the font is the largest size in 12..100 whose
    wrapped text fits it (``RENDER_PADDING`` px around); if even size 12 does not fit, the band grows.
    """
    image = image.convert("RGB")
    w, h = image.size
    band = max(1, int(h * cfg.render_band))
    top = bool(rng.integers(2))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max(1, w - 2 * (RENDER_PADDING + RENDER_MARGIN))
    lo, hi = RENDER_FONT_SIZES
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        font = _font(cfg.render_font, mid)
        layout = _layout(probe, text, font, width)
        if layout[3] <= band - 2 * RENDER_PADDING:
            best, lo = (font, layout), mid + 1
        else:
            hi = mid - 1
    if best is None:
        font = _font(cfg.render_font, RENDER_FONT_SIZES[0])
        best = (font, _layout(probe, text, font, width))
        band = max(band, best[1][3] + 2 * RENDER_PADDING)
    font, (lines, line_height, spacing, text_height) = best
    canvas = Image.new("RGB", (w, h + band), (255, 255, 255))
    canvas.paste(image, (0, band) if top else (0, 0))
    draw = ImageDraw.Draw(canvas)
    y = (0 if top else h) + max(RENDER_PADDING, (band - text_height) // 2)
    for line in lines:
        x = max(RENDER_PADDING, int((w - _text_width(draw, line, font)) // 2))
        draw.text((x, y), line, font=font, fill=(0, 0, 0))
        y += line_height + spacing
    return canvas


# ---------------------------------------------------------------------------------------------
# Planning and applying a variant.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VariantSpec:
    """What a variant is. ``difficulty`` is what it carries into the advantage and difficulty update."""

    difficulty: int
    drawn_difficulty: int
    kind: str
    """"copy", "paraphrase", "perturb", "render" or "hint"."""
    ops: tuple[tuple[str, float], ...] = ()
    hint_steps: int = 0
    paraphrased: bool = False
    """The variant states the question as a paraphrase (always for kind "paraphrase")."""
    fallback: str | None = None
    """Why the variant differs from the draw: "no_paraphrase", "no_solution" or "no_images" (None if as drawn)."""


def split_solution_steps(solution: str | Sequence[str] | None) -> list[str]:
    """Reasoning steps: a list as given, or one step per non-empty line of a string."""
    if solution is None:
        return []
    if isinstance(solution, str):
        return [line.strip() for line in solution.splitlines() if line.strip()]
    return [str(s).strip() for s in solution if str(s).strip()]


def hint_count(shift: int, num_steps: int, cfg: VariantConfig) -> int:
    """Steps given for a negative ``shift``: ``hint_steps[-shift - 1]``, all at or below ``all_hints_at``."""
    wanted = num_steps if shift <= cfg.all_hints_at else cfg.hint_steps[-shift - 1]
    return min(wanted, num_steps)


def plan_variant(
    d: int,
    target: int,
    rng: np.random.Generator,
    cfg: VariantConfig,
    has_images: bool,
    has_paraphrase: bool,
    num_solution_steps: int,
    difficulty_cfg: DifficultyConfig = DifficultyConfig(),
) -> VariantSpec:
    """Map the drawn ``target`` for a problem of difficulty ``d`` to a :class:`VariantSpec`."""
    shift = target - d

    def with_paraphrase() -> bool:
        return has_paraphrase and bool(rng.random() < cfg.paraphrase_prob)

    def fallback(reason: str) -> VariantSpec:
        if has_paraphrase:
            return VariantSpec(d, target, "paraphrase", paraphrased=True, fallback=reason)
        if cfg.fallback == "render" and has_images and reason != "no_solution":
            rendered = int(np.clip(d + cfg.render_shift, difficulty_cfg.d_min, difficulty_cfg.d_max))
            return VariantSpec(rendered, target, "render", fallback=reason)
        return VariantSpec(d, target, "copy", fallback=reason)

    if shift == 0:
        return VariantSpec(d, target, "paraphrase", paraphrased=True) if has_paraphrase else fallback("no_paraphrase")
    if shift < 0:
        if num_solution_steps == 0:
            return fallback("no_solution")
        return VariantSpec(target, target, "hint", hint_steps=hint_count(shift, num_solution_steps, cfg))
    if not has_images:
        return fallback("no_images")
    if shift <= 3:
        options = list(cfg.perturbations) + (["paraphrase"] if cfg.paraphrase_in_positive_shift and has_paraphrase else [])
        choice = options[int(rng.integers(len(options)))]
        if choice == "paraphrase":
            return VariantSpec(d, target, "paraphrase", paraphrased=True)
        return VariantSpec(target, target, "perturb", ops=((choice, cfg.intensities[shift - 1]),), paraphrased=with_paraphrase())
    if rng.random() < cfg.render_prob:
        return VariantSpec(target, target, "render", paraphrased=with_paraphrase())
    slot = min(shift, 8) - 4
    picked = sorted(rng.choice(len(cfg.combo_perturbations), size=cfg.combo_sizes[slot], replace=False))
    ops = tuple((cfg.combo_perturbations[i], cfg.combo_intensities[slot]) for i in picked)
    return VariantSpec(target, target, "perturb", ops=ops, paraphrased=with_paraphrase())


def hint_text(steps: Sequence[str]) -> str:
    """The authors' ``gen_think_step`` wording, followed by the steps."""
    return (
        "I will now provide some thinking prompts. Please output the complete thought process and answer "
        "from the beginning, without skipping any steps: " + " ".join(steps)
    )


@dataclass(frozen=True)
class VariantContent:
    """A built variant: its images, and how its question differs from the original's."""

    images: list
    replace_text: str | None = None
    """The new question (a paraphrase, or the rendered variant's pointer sentence), or None to keep it."""
    append_text: str | None = None
    """Text added after the question (rotation sentences, hints), or None."""

    def question(self, original: str) -> str:
        text = original if self.replace_text is None else self.replace_text
        return text if self.append_text is None else f"{text} {self.append_text}"


def apply_variant(
    spec: VariantSpec,
    images: Sequence[Image.Image],
    question: str,
    rng: np.random.Generator,
    cfg: VariantConfig,
    paraphrase: str | None = None,
    solution_steps: Sequence[str] = (),
) -> VariantContent:
    """Build the variant's images and question change from the spec (``question``: the original's text)."""
    images = list(images)
    if spec.paraphrased and not paraphrase:
        raise ValueError(f"apply_variant: a {spec.kind} variant with a paraphrase needs the paraphrase text")
    stated = paraphrase if spec.paraphrased else None
    if spec.kind == "copy":
        return VariantContent(images)
    if spec.kind == "paraphrase":
        return VariantContent(images, replace_text=stated)
    if spec.kind == "hint":
        if len(solution_steps) < spec.hint_steps:
            raise ValueError(f"apply_variant: {spec.hint_steps} hint steps asked, {len(solution_steps)} available")
        return VariantContent(images, append_text=hint_text(solution_steps[: spec.hint_steps]))
    if not images:
        raise ValueError(f"apply_variant: a {spec.kind} variant needs at least one image")
    if spec.kind == "render":
        rendered = render_question(images[0], stated or question, rng, cfg)
        return VariantContent([rendered, *images[1:]], replace_text=RENDERED_QUESTION)
    if spec.kind == "perturb":
        notes = []
        for name, intensity in spec.ops:
            images, note = PERTURBATIONS[name](images, intensity, rng)
            if note:
                notes.append(note)
        return VariantContent(images, replace_text=stated, append_text=" ".join(notes) if notes else None)
    raise ValueError(f"apply_variant: unknown variant kind {spec.kind!r}")


def as_paraphrases(value: str | Sequence[str] | None) -> list[str]:
    """Paraphrase column value -> list of non-empty paraphrases, ``<image>`` markers removed
    (the images stay where the original prompt puts them)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    cleaned = (re.sub(r"\s+", " ", str(p).replace("<image>", " ")).strip() for p in items)
    return [p for p in cleaned if p]


def make_variants(
    d: int,
    count: int,
    images: Sequence[Image.Image],
    question: str,
    rng: np.random.Generator,
    cfg: VariantConfig = VariantConfig(),
    difficulty_cfg: DifficultyConfig = DifficultyConfig(),
    paraphrases: str | Sequence[str] | None = None,
    solution: str | Sequence[str] | None = None,
) -> list[tuple[VariantSpec, VariantContent]]:
    """Draw ``count`` target difficulties for a problem of difficulty ``d`` and build the variants.

    ``paraphrases``: one paraphrase or several (one is drawn per variant that uses it);
    ``solution``: the reasoning steps for hints (list, or one step per line).
    """
    choices = as_paraphrases(paraphrases)
    steps = split_solution_steps(solution)
    variants = []
    for target in draw_variant_difficulties(d, count, rng, difficulty_cfg):
        spec = plan_variant(d, target, rng, cfg, bool(images), bool(choices), len(steps), difficulty_cfg)
        paraphrase = choices[int(rng.integers(len(choices)))] if spec.paraphrased else None
        variants.append((spec, apply_variant(spec, images, question, rng, cfg, paraphrase, steps)))
    return variants


# ---------------------------------------------------------------------------------------------
# The question of a dataset row (verl's parquet layout), shared by training and data preparation.
# ---------------------------------------------------------------------------------------------
def row_field(row: Mapping[str, Any], key: str) -> Any:
    """``row[key]`` at the top level, else ``row["extra_info"][key]``, else None."""
    if row.get(key) is not None:
        return row[key]
    return (row.get("extra_info") or {}).get(key)


def strip_image_markers(text: str) -> str:
    return str(text).replace("<image>", "").strip()


def row_question(row: Mapping[str, Any], question_key: str = "question", prompt_key: str = "prompt") -> str:
    """The problem statement a variant rewrites: the ``question_key`` field (verl's geo3k layout keeps
    the bare problem in ``extra_info.question``, the prompt adds the answer-format instruction), else
    the whole text of the prompt's last user message; ``<image>`` markers removed."""
    question = row_field(row, question_key)
    if isinstance(question, str) and strip_image_markers(question):
        return strip_image_markers(question)
    messages = row.get(prompt_key)
    for message in reversed(list(messages if messages is not None else [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return strip_image_markers(content)
            return strip_image_markers(" ".join(p.get("text", "") for p in content if p.get("type") == "text"))
    raise ValueError(f"the row has no '{question_key}' field and no user message in '{prompt_key}'")
