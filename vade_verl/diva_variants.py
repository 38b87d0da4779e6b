"""DIVA-GRPO variant generation: difficulty-matched image/text variants of a problem (PIL/numpy only).

DIVA-GRPO (arXiv 2603.01106, Sec. 3.2) turns the drawn shift ``D = target - d``
(:func:`vade_verl.diva_grpo.draw_variant_difficulty`) into a variant:

* ``D = 0``: a paraphrase of the question (taken from a paraphrase column: the library calls no model).
* ``D = +1..+3``: one image perturbation at intensity 0.4 / 0.5 / 0.6 (``VariantConfig.intensities``).
* ``D = +4..+8``: 2 to 4 different perturbations combined (``combo_sizes``, ``combo_intensity``).
* ``D < 0``: a hint made of the first ``min(-D, 3)`` steps of a reference solution, all of them
  when ``D <= -7``.

The perturbations and how an intensity ``s`` maps to pixels (the paper gives only ``s``; the scales
are our documented, configurable choices):

* ``gaussian_noise``: additive N(0, (s * gaussian_sigma_scale)^2) on [0, 1] pixel values, clipped.
* ``salt_pepper``: a fraction ``s * salt_pepper_scale`` of pixel positions set to black or white (half each).
* ``rotation``: by ``s * rotation_scale_deg`` degrees, direction drawn, canvas expanded with white;
  the question gets the sentence that states the angle and asks to rotate back mentally.
* ``blur``: Gaussian blur with radius (sigma) ``s * blur_scale_px`` pixels.
* ``downscale``: each side times ``1 - s`` (not below ``downscale_min_side``), kept small (fewer
  visual tokens, as a low-resolution image would be).

A variant that cannot be made as drawn (no image to perturb, no solution for hints, no paraphrase)
falls back to the paraphrase or, failing that, to an identical copy; it then records the problem's
own difficulty and the reason in ``VariantSpec.fallback``, so nothing is silently mislabelled.
All randomness comes from the ``numpy.random.Generator`` passed in: same seed, same variant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from vade_verl.diva_grpo import DifficultyConfig, draw_variant_difficulty


@dataclass(frozen=True)
class VariantConfig:
    """How a drawn shift becomes a variant (paper values where the paper gives them)."""

    intensities: tuple[float, ...] = (0.4, 0.5, 0.6)
    """Intensity of the single perturbation for D = +1, +2, +3."""
    combo_sizes: tuple[int, ...] = (2, 2, 3, 3, 4)
    """Number of combined perturbations for D = +4, +5, +6, +7, +8 (the paper: "2 to 4")."""
    combo_intensity: float = 0.5
    perturbations: tuple[str, ...] = ("gaussian_noise", "salt_pepper", "rotation", "blur", "downscale")
    gaussian_sigma_scale: float = 0.25
    salt_pepper_scale: float = 0.25
    rotation_scale_deg: float = 180.0
    blur_scale_px: float = 5.0
    downscale_min_side: int = 28
    max_hint_steps: int = 3
    all_hints_at: int = -7
    """Shifts at or below this give every solution step as hint."""
    paraphrase_in_positive_shift: bool = False
    """Let a paraphrase stand in for one perturbation at D = +1..+3 (the paper allows either)."""

    def __post_init__(self):
        unknown = [p for p in self.perturbations if p not in PERTURBATIONS]
        if unknown:
            raise ValueError(f"VariantConfig: unknown perturbation(s) {unknown}; known: {sorted(PERTURBATIONS)}")
        if len(self.intensities) != 3:
            raise ValueError(f"VariantConfig: intensities needs 3 entries (D=+1..+3), got {self.intensities}")
        if not self.combo_sizes or max(self.combo_sizes) > len(self.perturbations) or min(self.combo_sizes) < 1:
            raise ValueError(
                f"VariantConfig: combo_sizes {self.combo_sizes} must be in 1..{len(self.perturbations)} "
                "(the number of enabled perturbations)"
            )
        for s in (*self.intensities, self.combo_intensity):
            if not 0.0 < s < 1.0:
                raise ValueError(f"VariantConfig: intensities must lie in (0, 1), got {s}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> VariantConfig:
        known = {f.name for f in fields(cls)}
        values = dict(values or {})
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"VariantConfig: unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# ---------------------------------------------------------------------------------------------
# Perturbations: fn(images, intensity, rng, cfg) -> (images, sentence for the question or None).
# One call perturbs every image of the problem with the same parameters.
# ---------------------------------------------------------------------------------------------
Perturbation = Callable[[list[Image.Image], float, np.random.Generator, "VariantConfig"], tuple[list, str | None]]
PERTURBATIONS: dict[str, Perturbation] = {}


def register_perturbation(name: str):
    def decorator(fn: Perturbation) -> Perturbation:
        if name in PERTURBATIONS:
            raise ValueError(f"perturbation {name!r} is already registered")
        PERTURBATIONS[name] = fn
        return fn

    return decorator


def _rgb_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def _to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8), mode="RGB")


@register_perturbation("gaussian_noise")
def gaussian_noise(images, intensity, rng, cfg):
    sigma = intensity * cfg.gaussian_sigma_scale
    out = []
    for img in images:
        arr = _rgb_array(img)
        out.append(_to_image(arr + rng.normal(0.0, sigma, arr.shape)))
    return out, None


@register_perturbation("salt_pepper")
def salt_pepper(images, intensity, rng, cfg):
    fraction = intensity * cfg.salt_pepper_scale
    out = []
    for img in images:
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
        h, w = arr.shape[:2]
        n = int(round(fraction * h * w))
        flat = rng.choice(h * w, size=n, replace=False)
        rows, cols = np.divmod(flat, w)
        arr[rows[: n // 2], cols[: n // 2]] = 255
        arr[rows[n // 2 :], cols[n // 2 :]] = 0
        out.append(Image.fromarray(arr, mode="RGB"))
    return out, None


def rotation_sentence(angle_deg: float) -> str:
    """The sentence added to a question whose image was rotated by ``angle_deg`` (PIL: > 0 is counter-clockwise)."""
    direction = "counter-clockwise" if angle_deg > 0 else "clockwise"
    return (
        f"Note: the image has been rotated {abs(angle_deg):g} degrees {direction}; "
        "mentally rotate it back before solving the problem."
    )


@register_perturbation("rotation")
def rotation(images, intensity, rng, cfg):
    angle = float(rng.choice([-1.0, 1.0]) * intensity * cfg.rotation_scale_deg)
    out = [
        img.convert("RGB").rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255))
        for img in images
    ]
    return out, rotation_sentence(angle)


@register_perturbation("blur")
def blur(images, intensity, rng, cfg):
    radius = intensity * cfg.blur_scale_px
    return [img.convert("RGB").filter(ImageFilter.GaussianBlur(radius)) for img in images], None


def downscaled_size(size: tuple[int, int], intensity: float, min_side: int) -> tuple[int, int]:
    """(w, h) -> each side times (1 - intensity), not below ``min_side`` nor above the original."""
    return tuple(min(side, max(min_side, int(round(side * (1.0 - intensity))))) for side in size)


@register_perturbation("downscale")
def downscale(images, intensity, rng, cfg):
    return [
        img.convert("RGB").resize(downscaled_size(img.size, intensity, cfg.downscale_min_side), Image.Resampling.LANCZOS)
        for img in images
    ], None


# ---------------------------------------------------------------------------------------------
# Planning and applying a variant.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VariantSpec:
    """What a variant is. ``difficulty`` is what it carries into the advantage and difficulty update."""

    difficulty: int
    drawn_difficulty: int
    kind: str
    """"identity", "paraphrase", "perturb" or "hint"."""
    ops: tuple[tuple[str, float], ...] = ()
    hint_steps: int = 0
    fallback: str | None = None
    """Why the variant differs from the draw: "no_images", "no_solution" or "no_paraphrase" (None if as drawn)."""


def split_solution_steps(solution: str | Sequence[str] | None) -> list[str]:
    """Reference-solution steps: a list as given, or one step per non-empty line of a string."""
    if solution is None:
        return []
    if isinstance(solution, str):
        return [line.strip() for line in solution.splitlines() if line.strip()]
    return [str(s).strip() for s in solution if str(s).strip()]


def plan_variant(
    d: int,
    target: int,
    rng: np.random.Generator,
    cfg: VariantConfig,
    has_images: bool,
    has_paraphrase: bool,
    num_solution_steps: int,
) -> VariantSpec:
    """Map the drawn ``target`` for a problem of difficulty ``d`` to a :class:`VariantSpec`."""
    shift = target - d

    def neutral(reason: str | None) -> VariantSpec:
        if has_paraphrase:
            return VariantSpec(d, target, "paraphrase", fallback=reason)
        return VariantSpec(d, target, "identity", fallback=reason or "no_paraphrase")

    if shift == 0:
        return neutral(None)
    if shift < 0:
        if num_solution_steps == 0:
            return neutral("no_solution")
        wanted = num_solution_steps if shift <= cfg.all_hints_at else min(-shift, cfg.max_hint_steps)
        return VariantSpec(target, target, "hint", hint_steps=min(wanted, num_solution_steps))
    if shift <= 3:
        options = list(cfg.perturbations) if has_images else []
        if cfg.paraphrase_in_positive_shift and has_paraphrase:
            options.append("paraphrase")
        if not options:
            return neutral("no_images")
        choice = options[int(rng.integers(len(options)))]
        if choice == "paraphrase":
            return VariantSpec(target, target, "paraphrase")
        return VariantSpec(target, target, "perturb", ops=((choice, cfg.intensities[shift - 1]),))
    if not has_images:
        return neutral("no_images")
    size = cfg.combo_sizes[min(shift - 4, len(cfg.combo_sizes) - 1)]
    names = [cfg.perturbations[i] for i in sorted(rng.choice(len(cfg.perturbations), size=size, replace=False))]
    return VariantSpec(target, target, "perturb", ops=tuple((n, cfg.combo_intensity) for n in names))


def hint_text(steps: Sequence[str]) -> str:
    return "Hint: a solution starts with these steps:\n" + "\n".join(steps)


@dataclass(frozen=True)
class VariantContent:
    """A built variant: its images, and how its question differs from the original's."""

    images: list
    replace_text: str | None = None
    """The new question (a paraphrase), or None to keep the original's."""
    append_text: str | None = None
    """Text added after the question (rotation sentences, hints), or None."""

    def question(self, original: str) -> str:
        text = original if self.replace_text is None else self.replace_text
        return text if self.append_text is None else f"{text}\n\n{self.append_text}"


def apply_variant(
    spec: VariantSpec,
    images: Sequence[Image.Image],
    rng: np.random.Generator,
    cfg: VariantConfig,
    paraphrase: str | None = None,
    solution_steps: Sequence[str] = (),
) -> VariantContent:
    """Build the variant's images and question change from the spec."""
    images = list(images)
    if spec.kind == "identity":
        return VariantContent(images)
    if spec.kind == "paraphrase":
        if not paraphrase:
            raise ValueError("apply_variant: a paraphrase variant needs the paraphrase text")
        return VariantContent(images, replace_text=paraphrase)
    if spec.kind == "hint":
        if len(solution_steps) < spec.hint_steps:
            raise ValueError(f"apply_variant: {spec.hint_steps} hint steps asked, {len(solution_steps)} available")
        return VariantContent(images, append_text=hint_text(solution_steps[: spec.hint_steps]))
    if spec.kind == "perturb":
        if not images:
            raise ValueError("apply_variant: a perturbation variant needs at least one image")
        notes = []
        for name, intensity in spec.ops:
            images, note = PERTURBATIONS[name](images, intensity, rng, cfg)
            if note:
                notes.append(note)
        return VariantContent(images, append_text="\n".join(notes) if notes else None)
    raise ValueError(f"apply_variant: unknown variant kind {spec.kind!r}")


def make_variant(
    d: int,
    images: Sequence[Image.Image],
    rng: np.random.Generator,
    cfg: VariantConfig = VariantConfig(),
    difficulty_cfg: DifficultyConfig = DifficultyConfig(),
    paraphrase: str | None = None,
    solution: str | Sequence[str] | None = None,
) -> tuple[VariantSpec, VariantContent]:
    """Draw a target difficulty for a problem of difficulty ``d`` and build the matching variant."""
    target = draw_variant_difficulty(d, rng, difficulty_cfg)
    steps = split_solution_steps(solution)
    spec = plan_variant(d, target, rng, cfg, bool(images), bool(paraphrase), len(steps))
    return spec, apply_variant(spec, images, rng, cfg, paraphrase, steps)
