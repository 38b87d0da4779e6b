"""DIVA-GRPO variants (vade_verl.diva_variants) on a real photograph, saved and measured."""

import os
import re

import matplotlib
import numpy as np
import pytest
from PIL import Image

from vade_verl.diva_variants import (
    PERTURBATIONS,
    VariantConfig,
    VariantSpec,
    apply_variant,
    make_variant,
    plan_variant,
    split_solution_steps,
)

CFG = VariantConfig()
PHOTO = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


@pytest.fixture(scope="module")
def photo():
    img = Image.open(PHOTO).convert("RGB")
    assert img.size == (512, 600)
    return img


def _save(tmp_path, name, img):
    path = tmp_path / f"{name}.png"
    img.save(path)
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


@pytest.mark.parametrize("intensity", CFG.intensities)
def test_gaussian_noise_level(tmp_path, photo, intensity):
    (out,), note = PERTURBATIONS["gaussian_noise"]([photo], intensity, np.random.default_rng(0), CFG)
    assert note is None
    noisy = _save(tmp_path, f"gauss_{intensity}", out)
    orig = np.asarray(photo, dtype=np.float64) / 255.0
    sigma = intensity * CFG.gaussian_sigma_scale
    far_from_clip = (orig > 2.5 * sigma) & (orig < 1 - 2.5 * sigma)
    diff = (noisy - orig)[far_from_clip]
    assert diff.size > 50000
    assert diff.std() == pytest.approx(sigma, rel=0.03)
    assert abs(diff.mean()) < 0.01


@pytest.mark.parametrize("intensity", CFG.intensities)
def test_salt_pepper_fraction(tmp_path, photo, intensity):
    (out,), _ = PERTURBATIONS["salt_pepper"]([photo], intensity, np.random.default_rng(1), CFG)
    noisy = _save(tmp_path, f"saltpepper_{intensity}", out)
    orig = np.asarray(photo, dtype=np.float64) / 255.0
    changed = np.any(noisy != orig, axis=-1)
    white = np.all(noisy == 1.0, axis=-1) & changed
    black = np.all(noisy == 0.0, axis=-1) & changed
    assert np.array_equal(changed, white | black)  # only pure black/white pixels were written
    target = intensity * CFG.salt_pepper_scale
    assert changed.mean() == pytest.approx(target, abs=0.003)
    assert white.sum() == pytest.approx(black.sum(), rel=0.05)


def _recover_angle(rotated: Image.Image, original: Image.Image) -> int:
    """Brute force: the whole-degree angle whose inverse rotation best matches the original's centre."""
    small = 0.25
    orig = original.resize((int(original.width * small), int(original.height * small)))
    rot = rotated.resize((int(rotated.width * small), int(rotated.height * small)))
    w, h = orig.size
    ref = np.asarray(orig, dtype=np.float64)[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    best, best_err = None, np.inf
    for angle in range(-180, 181):
        back = rot.rotate(-angle, resample=Image.Resampling.BILINEAR)
        left, top = (back.width - w) // 2, (back.height - h) // 2
        crop = np.asarray(back.crop((left, top, left + w, top + h)), dtype=np.float64)[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
        err = np.mean((crop - ref) ** 2)
        if err < best_err:
            best, best_err = angle, err
    return best


@pytest.mark.parametrize("intensity, seed", [(0.4, 0), (0.5, 1), (0.6, 6)])  # seeds 1 and 6 draw clockwise
def test_rotation_angle_recovered_and_stated(tmp_path, photo, intensity, seed):
    (out,), note = PERTURBATIONS["rotation"]([photo], intensity, np.random.default_rng(seed), CFG)
    out.save(tmp_path / f"rotation_{intensity}.png")
    recovered = _recover_angle(out, photo)
    match = re.search(r"rotated (\d+(?:\.\d+)?) degrees (counter-clockwise|clockwise)", note)
    stated = float(match.group(1)) * (1 if match.group(2) == "counter-clockwise" else -1)
    assert abs(stated) == pytest.approx(intensity * CFG.rotation_scale_deg)
    assert recovered == pytest.approx(stated, abs=1)


@pytest.mark.parametrize("intensity", CFG.intensities)
def test_blur_sigma(tmp_path, intensity):
    square = np.zeros((101, 101, 3), dtype=np.uint8)
    square[45:56, 45:56] = 255  # 11 px wide: variance (11^2 - 1) / 12 = 10 along each axis
    (out,), _ = PERTURBATIONS["blur"]([Image.fromarray(square)], intensity, np.random.default_rng(0), CFG)
    blurred = _save(tmp_path, f"blur_{intensity}", out)[..., 0]
    weights = blurred / blurred.sum()
    x = np.arange(101) - 50
    var_x = (weights.sum(axis=0) * x**2).sum()
    assert np.sqrt(var_x - 10.0) == pytest.approx(intensity * CFG.blur_scale_px, rel=0.05)


@pytest.mark.parametrize("intensity, size", [(0.4, (307, 360)), (0.5, (256, 300)), (0.6, (205, 240))])
def test_downscale_size(tmp_path, photo, intensity, size):
    (out,), _ = PERTURBATIONS["downscale"]([photo], intensity, np.random.default_rng(0), CFG)
    out.save(tmp_path / f"downscale_{intensity}.png")
    assert Image.open(tmp_path / f"downscale_{intensity}.png").size == size
    (tiny,), _ = PERTURBATIONS["downscale"]([photo.resize((40, 30))], 0.6, np.random.default_rng(0), CFG)
    assert tiny.size == (28, 28)  # clamped at downscale_min_side, never enlarged beyond the original
    (tiny,), _ = PERTURBATIONS["downscale"]([photo.resize((20, 30))], 0.6, np.random.default_rng(0), CFG)
    assert tiny.size == (20, 28)


def test_same_seed_same_variant(photo):
    small = photo.resize((64, 75))
    runs = [make_variant(1, [small], np.random.default_rng(42)) for _ in range(2)]
    assert runs[0][0] == runs[1][0]
    assert runs[0][0].kind == "perturb" and len(runs[0][0].ops) >= 2
    assert np.array_equal(np.asarray(runs[0][1].images[0]), np.asarray(runs[1][1].images[0]))
    other = make_variant(1, [small], np.random.default_rng(43))
    assert other[0] != runs[0][0] or not np.array_equal(np.asarray(other[1].images[0]), np.asarray(runs[0][1].images[0]))


def _plan(d, target, **kw):
    args = dict(has_images=True, has_paraphrase=True, num_solution_steps=8)
    args.update(kw)
    return plan_variant(d, target, np.random.default_rng(0), CFG, **args)


def test_plan_by_shift():
    assert _plan(5, 5) == VariantSpec(5, 5, "paraphrase")
    assert _plan(5, 5, has_paraphrase=False) == VariantSpec(5, 5, "identity", fallback="no_paraphrase")
    for shift, intensity in zip((1, 2, 3), CFG.intensities):
        spec = _plan(4, 4 + shift)
        assert spec.kind == "perturb" and spec.difficulty == 4 + shift
        assert len(spec.ops) == 1 and spec.ops[0][1] == intensity
    for shift, size in zip(range(4, 9), CFG.combo_sizes):
        spec = _plan(1, 1 + shift)
        assert len(spec.ops) == size and len({n for n, _ in spec.ops}) == size
    assert [_plan(9, 9 + s).hint_steps for s in (-1, -2, -3, -6)] == [1, 2, 3, 3]
    assert _plan(9, 2).hint_steps == 8  # D = -7: every step
    assert _plan(9, 8, num_solution_steps=0) == VariantSpec(9, 8, "paraphrase", fallback="no_solution")
    assert _plan(3, 5, has_images=False, has_paraphrase=False) == VariantSpec(3, 5, "identity", fallback="no_images")


def test_apply_text_changes(photo):
    steps = split_solution_steps("Step 1: a = 2\n\n  Step 2: b = 3\nStep 3: a+b = 5\n")
    assert steps == ["Step 1: a = 2", "Step 2: b = 3", "Step 3: a+b = 5"]
    hint = apply_variant(VariantSpec(2, 2, "hint", hint_steps=2), [photo], None, CFG, solution_steps=steps)
    assert hint.question("Q?") == "Q?\n\nHint: a solution starts with these steps:\nStep 1: a = 2\nStep 2: b = 3"
    para = apply_variant(VariantSpec(5, 5, "paraphrase"), [photo], None, CFG, paraphrase="Reworded?")
    assert para.question("Q?") == "Reworded?" and para.images == [photo]
    with pytest.raises(ValueError, match="at least one image"):
        apply_variant(VariantSpec(6, 6, "perturb", ops=(("blur", 0.4),)), [], None, CFG)
    with pytest.raises(ValueError, match="unknown perturbation"):
        VariantConfig(perturbations=("blur", "sharpen"))
