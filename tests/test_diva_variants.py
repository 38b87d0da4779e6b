"""DIVA-GRPO variants (vade_verl.diva.variants): strengths measured against independent computations.

Expected strengths are the authors' formulas (GitHub Siaaaaaa1/DIVA-GRPO,
DIVA-GRPO/verl/difficulty_variation/difficulty_utils.py) evaluated by hand here, then measured on the
output images (noise std against a censored normal from scipy, blur against scipy's convolution,
salt-and-pepper pixel counts, rotation angles recovered by brute force).
"""

import os
import re

import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage, stats

from vade_verl.diva.advantage import DifficultyConfig
from vade_verl.diva.variants import (
    PERTURBATIONS,
    RENDERED_QUESTION,
    VariantConfig,
    VariantSpec,
    apply_variant,
    as_paraphrases,
    make_variants,
    plan_variant,
    render_question,
    row_question,
    split_solution_steps,
)

CFG = VariantConfig()
PHOTO = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


@pytest.fixture(scope="module")
def photo():
    img = Image.open(PHOTO).convert("RGB")
    assert img.size == (512, 600)
    return img


def _saved(tmp_path, name, img):
    path = tmp_path / f"{name}.png"
    img.save(path)
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


def _diagram(size=(300, 220)):
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.polygon([(20, size[1] - 20), (size[0] - 20, size[1] - 20), (size[0] // 2, 20)], outline="black", width=3)
    return img


# ---------------------------------------------------------------------------------------------
# Perturbation strengths
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("intensity", [0.3, 0.4, 0.5, 0.6])
def test_gaussian_noise_is_a_censored_normal_with_sigma_equal_to_intensity(tmp_path, intensity):
    """On a flat grey image the output is clip(m + N(0, s^2)): clipped shares and the interior std
    match scipy's normal / truncated normal with s = the intensity (the authors' add_gaussian_noise)."""
    grey = Image.new("RGB", (400, 300), (128, 128, 128))
    (out,), note = PERTURBATIONS["gaussian_noise"]([grey], intensity, np.random.default_rng(0))
    assert note is None
    values = _saved(tmp_path, f"gauss_{intensity}", out).ravel() / 255.0
    m, half = 128 / 255, 0.5 / 255
    low, high = (half - m) / intensity, (1 - half - m) / intensity
    assert (values == 0).mean() == pytest.approx(stats.norm.cdf(low), abs=0.005)
    assert (values == 1).mean() == pytest.approx(stats.norm.sf(high), abs=0.005)
    interior = values[(values > 0) & (values < 1)]
    expected_std = stats.truncnorm(low, high, loc=m, scale=intensity).std()
    assert interior.std() == pytest.approx(expected_std, rel=0.01)


@pytest.mark.parametrize("intensity", [0.4, 0.5, 0.6])
def test_salt_pepper_sets_a_fraction_s_of_pixels_on_the_binarised_image(tmp_path, photo, intensity):
    magenta = Image.new("RGB", (200, 150), (200, 60, 140))  # binarises to (255, 0, 255)
    (out,), _ = PERTURBATIONS["salt_pepper"]([magenta], intensity, np.random.default_rng(1))
    arr = _saved(tmp_path, f"sp_{intensity}", out)
    white = np.all(arr == 255, axis=-1)
    black = np.all(arr == 0, axis=-1)
    untouched = np.all(arr == [255, 0, 255], axis=-1)
    assert np.all(white | black | untouched)
    assert (white | black).sum() == int(intensity * 200 * 150)  # every noised pixel differs from magenta
    assert abs(int(white.sum()) - int(black.sum())) <= 1
    # on a photograph: untouched pixels are the per-channel threshold of the original at 0.5
    (noisy,), _ = PERTURBATIONS["salt_pepper"]([photo], intensity, np.random.default_rng(2))
    noisy = np.asarray(noisy)
    binary = np.where(np.asarray(photo) > 127.5, 255, 0)
    assert set(np.unique(noisy)) <= {0, 255}
    differs = np.any(noisy != binary, axis=-1)
    assert differs.mean() < intensity  # salt on white / pepper on black changes nothing
    assert np.all(np.isin(noisy[differs].sum(axis=-1), [0, 765]))


def _recover_angle(rotated: Image.Image, original: Image.Image) -> int:
    """Brute force: the whole-degree counter-clockwise angle whose inverse best matches the original's centre."""
    small = 0.2
    orig = original.resize((int(original.width * small), int(original.height * small)))
    rot = rotated.resize((int(rotated.width * small), int(rotated.height * small)))
    w, h = orig.size
    ref = np.asarray(orig, dtype=np.float64)[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    errors = []
    for angle in range(360):
        back = rot.rotate(-angle, resample=Image.Resampling.BILINEAR)
        left, top = (back.width - w) // 2, (back.height - h) // 2
        crop = np.asarray(back.crop((left, top, left + w, top + h)), dtype=np.float64)[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
        errors.append(np.mean((crop - ref) ** 2))
    return int(np.argmin(errors))


def _stated_angle(note: str) -> int:
    return int(re.search(r"rotated by (\d+) degrees counter-clockwise", note).group(1))


@pytest.mark.parametrize("intensity, step", [(0.2, 45), (0.3, 30), (0.4, 30), (0.5, 1), (0.6, 1)])
def test_rotation_angles_follow_the_authors_steps(intensity, step):
    """gen_rotate: multiples of 45 below s=0.25, of 30 below 0.45, any whole degree above; 1..359."""
    small = Image.new("RGB", (8, 8), "white")
    angles = [_stated_angle(PERTURBATIONS["rotation"]([small], intensity, np.random.default_rng(s))[1]) for s in range(600)]
    expected = set(range(step, 360, step))
    assert set(angles) <= expected
    if step > 1:
        assert set(angles) == expected  # every multiple drawn (600 draws over 7 or 11 values)
    else:
        assert len(set(angles)) > 250 and any(a % 30 for a in angles)


@pytest.mark.parametrize("intensity, seed", [(0.4, 0), (0.5, 3), (0.6, 7)])
def test_rotation_angle_recovered_and_stated(tmp_path, photo, intensity, seed):
    (out,), note = PERTURBATIONS["rotation"]([photo], intensity, np.random.default_rng(seed))
    out.save(tmp_path / f"rotation_{intensity}.png")
    stated = _stated_angle(note)
    recovered = _recover_angle(out, photo)
    assert min(abs(recovered - stated), 360 - abs(recovered - stated)) <= 1, (stated, recovered)
    assert note.endswith("Please mentally rotate it back and solve the problem.")


# kernel sizes and OpenCV sigmas worked by hand: k = int(50 s) made odd; sigma = 0.3 ((k - 1) / 2 - 1) + 0.8
BLUR_BY_HAND = {0.4: (21, 3.5), 0.5: (25, 4.1), 0.6: (31, 5.0)}


@pytest.mark.parametrize("intensity", sorted(BLUR_BY_HAND))
def test_blur_is_opencvs_gaussian_kernel(tmp_path, photo, intensity):
    k, sigma = BLUR_BY_HAND[intensity]
    img = photo.resize((96, 112))
    (out,), _ = PERTURBATIONS["blur"]([img], intensity, np.random.default_rng(0))
    got = _saved(tmp_path, f"blur_{intensity}", out)
    taps = np.exp(-((np.arange(k) - k // 2) ** 2) / (2 * sigma**2))
    taps /= taps.sum()
    expected = np.asarray(img, dtype=np.float64)
    for axis in (0, 1):  # scipy's "mirror" border is OpenCV's default BORDER_REFLECT_101
        expected = ndimage.convolve1d(expected, taps, axis=axis, mode="mirror")
    assert np.abs(got - np.round(expected)).max() <= 1
    # support: a lone white pixel spreads exactly k // 2 pixels each way
    dot = np.zeros((81, 81, 3), dtype=np.uint8)
    dot[40, 40] = 255
    (spread,), _ = PERTURBATIONS["blur"]([Image.fromarray(dot)], intensity, np.random.default_rng(0))
    cols = np.nonzero(np.asarray(spread, dtype=np.float64)[40, :, 0] > 0)[0]
    assert 40 - cols.min() <= k // 2 and cols.max() - 40 <= k // 2
    cv2 = pytest.importorskip("cv2")
    np.testing.assert_allclose(got, cv2.GaussianBlur(np.asarray(img), (k, k), 0), atol=1)


def _detail(img: Image.Image) -> float:
    arr = np.asarray(img.convert("L"), dtype=np.float64)
    return float(np.abs(np.diff(arr, axis=0)).mean() + np.abs(np.diff(arr, axis=1)).mean())


def test_low_resolution_keeps_size_and_loses_detail_with_intensity(photo):
    outs = {s: PERTURBATIONS["low_resolution"]([photo], s, np.random.default_rng(0))[0][0] for s in (0.4, 0.5, 0.6)}
    assert all(o.size == photo.size for o in outs.values())  # scaled back up (the authors' add_low_resolution)
    # intermediate sizes by hand: 512 x 600 times 1 - s
    for s, small in ((0.4, (307, 360)), (0.5, (256, 300)), (0.6, (204, 240))):
        chain = photo.resize(small, Image.Resampling.NEAREST).resize(photo.size, Image.Resampling.BILINEAR)
        assert np.array_equal(np.asarray(outs[s]), np.asarray(chain))
    details = [_detail(outs[s]) for s in (0.4, 0.5, 0.6)]
    assert _detail(photo) > details[0] > details[1] > details[2]


def test_same_parameters_for_every_image_of_a_problem():
    imgs = [Image.new("RGB", (40, 30), "white"), Image.new("RGB", (50, 20), "white")]
    out, note = PERTURBATIONS["rotation"](imgs, 0.4, np.random.default_rng(5))
    angle = _stated_angle(note)
    rad = np.radians(angle)
    for src, dst in zip(imgs, out):  # expand=True: the bounding box of the rotated rectangle
        w, h = src.size
        assert dst.size[0] == pytest.approx(abs(w * np.cos(rad)) + abs(h * np.sin(rad)), abs=2)


# ---------------------------------------------------------------------------------------------
# Rendering the question into the image
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_render_adds_a_text_band_and_keeps_the_figure(tmp_path, seed):
    figure = _diagram()
    text = "In triangle ABC, AB = AC and angle A = 40 degrees. Find x."
    out = render_question(figure, text, np.random.default_rng(seed), CFG)
    out.save(tmp_path / f"render_{seed}.png")
    w, h = figure.size
    arr = np.asarray(out)
    band = out.height - h
    assert out.width == w and band >= int(0.22 * h)
    top = np.array_equal(arr[band:], np.asarray(figure))
    bottom = np.array_equal(arr[:h], np.asarray(figure))
    assert top != bottom  # the figure is intact, either below or above the band
    text_area = arr[:band] if top else arr[h:]
    ink = np.any(text_area < 128, axis=-1)
    assert ink.sum() > 200  # text was drawn
    rows, cols = np.nonzero(ink)
    assert rows.min() >= 6 and band - rows.max() >= 6 and cols.min() >= 12 and w - cols.max() >= 12


def test_render_shrinks_or_grows_for_long_text():
    figure = _diagram((300, 200))
    short = render_question(figure, "Find x.", np.random.default_rng(0), CFG)
    long = render_question(figure, "Find x. " * 60, np.random.default_rng(0), CFG)
    assert short.height == 200 + 44
    assert long.height > 200 + 44  # even 12 px text does not fit the 22 % band: the band grows


# ---------------------------------------------------------------------------------------------
# Shift -> variant plan (the authors' table, written out by hand)
# ---------------------------------------------------------------------------------------------
def _plan(d, target, seed=0, cfg=CFG, **kw):
    args = dict(has_images=True, has_paraphrase=True, num_solution_steps=8)
    args.update(kw)
    return plan_variant(d, target, np.random.default_rng(seed), cfg, **args)


def test_negative_shifts_give_the_authors_hint_counts():
    # gen_think_step: D <= -7 all steps, <= -5 three, <= -3 two, else one
    assert [_plan(9, 9 + s).hint_steps for s in (-1, -2, -3, -4, -5, -6)] == [1, 1, 2, 2, 3, 3]
    assert _plan(9, 2).hint_steps == 8 and _plan(9, 1).hint_steps == 8
    assert _plan(9, 3, num_solution_steps=2).hint_steps == 2  # never more than there are
    assert {(_plan(9, 7).kind, _plan(9, 7).difficulty)} == {("hint", 7)}


def test_positive_shifts_by_hand():
    for shift, intensity in ((1, 0.4), (2, 0.5), (3, 0.6)):
        kinds = {}
        for seed in range(300):
            spec = _plan(4, 4 + shift, seed)
            kinds[spec.ops[0][0] if spec.kind == "perturb" else spec.kind] = spec
            if spec.kind == "perturb":
                assert spec.ops == ((spec.ops[0][0], intensity),) and spec.difficulty == 4 + shift
            else:
                assert spec == VariantSpec(4, 4 + shift, "paraphrase", paraphrased=True)  # gen_var_text keeps d
        assert set(kinds) == {"gaussian_noise", "salt_pepper", "rotation", "blur", "low_resolution", "paraphrase"}
    combos = {4: (2, 0.4), 5: (2, 0.5), 6: (3, 0.4), 7: (3, 0.5), 8: (4, 0.5)}
    for shift, (size, intensity) in combos.items():
        specs = [_plan(1, 1 + shift, seed) for seed in range(120)]
        renders = [s for s in specs if s.kind == "render"]
        assert 20 < len(renders) < 60  # render_prob 1/3 of 120: 40 +- 5 sd
        for spec in specs:
            if spec.kind == "perturb":
                assert len(spec.ops) == size and {i for _, i in spec.ops} == {intensity}
                assert len({n for n, _ in spec.ops}) == size
                assert {n for n, _ in spec.ops} <= {"rotation", "gaussian_noise", "salt_pepper", "blur"}


def test_paraphrase_joins_perturbations_about_half_the_time():
    specs = [_plan(4, 5, seed) for seed in range(2000)]
    perturbed = [s for s in specs if s.kind == "perturb"]
    share = np.mean([s.paraphrased for s in perturbed])
    assert share == pytest.approx(0.5, abs=0.04)  # 1660 draws: sd 0.012
    assert not any(s.paraphrased for s in (_plan(4, 5, seed, has_paraphrase=False) for seed in range(50)))


def test_fallbacks_never_make_a_hard_problem_harder():
    # D = 0 without a paraphrase: the question rendered into the image, at d + 2
    assert _plan(5, 5, has_paraphrase=False) == VariantSpec(7, 5, "render", fallback="no_paraphrase")
    # D < 0 without steps (issue 23 item 1): a copy at d, as the authors' gen_think_step; never a harder render
    for d in range(6, 10):
        assert _plan(d, 5, has_paraphrase=False, num_solution_steps=0) == VariantSpec(d, 5, "copy", fallback="no_solution")
    # a paraphrase, when there is one, comes first (same difficulty)
    assert _plan(8, 5, num_solution_steps=0) == VariantSpec(8, 5, "paraphrase", paraphrased=True, fallback="no_solution")
    # text-only problems: paraphrase, else a copy
    assert _plan(3, 5, has_images=False) == VariantSpec(3, 5, "paraphrase", paraphrased=True, fallback="no_images")
    assert _plan(3, 5, has_images=False, has_paraphrase=False) == VariantSpec(3, 5, "copy", fallback="no_images")
    # copies only when asked for
    copy_cfg = VariantConfig(fallback="copy")
    assert _plan(5, 5, has_paraphrase=False, cfg=copy_cfg) == VariantSpec(5, 5, "copy", fallback="no_paraphrase")


def test_apply_changes_question_text_as_the_authors_do(photo):
    steps = split_solution_steps("Angles sum to 180.\n\n  So 2x = 100.\nx = 50.\n")
    assert steps == ["Angles sum to 180.", "So 2x = 100.", "x = 50."]
    hint = apply_variant(VariantSpec(2, 2, "hint", hint_steps=2), [photo], "Find x.", None, CFG, solution_steps=steps)
    assert hint.question("Find x.") == (
        "Find x. I will now provide some thinking prompts. Please output the complete thought process and "
        "answer from the beginning, without skipping any steps: Angles sum to 180. So 2x = 100."
    )
    para = apply_variant(VariantSpec(5, 5, "paraphrase", paraphrased=True), [photo], "Find x.", None, CFG, "What is x?")
    assert para.question("Find x.") == "What is x?" and para.images == [photo]
    rendered = apply_variant(VariantSpec(7, 7, "render"), [_diagram()], "Find x.", np.random.default_rng(0), CFG)
    assert rendered.question("Find x.") == RENDERED_QUESTION and rendered.images[0].height > 220
    with pytest.raises(ValueError, match="at least one image"):
        apply_variant(VariantSpec(6, 6, "perturb", ops=(("blur", 0.4),)), [], "Q", None, CFG)
    with pytest.raises(ValueError, match="unknown perturbation"):
        VariantConfig(perturbations=("blur", "sharpen"))
    with pytest.raises(ValueError, match="fallback"):
        VariantConfig(fallback="skip")


def test_make_variants_on_a_geo3k_problem_without_columns():
    """No paraphrase, no steps: a variant drawn harder (d <= 5) is a real change; one drawn easier (d >= 6,
    the one-variant targets 5, 5, 5, 4) is a copy at d, never a harder rendered question."""
    figure = _diagram()
    rng = np.random.default_rng(0)
    for d in range(1, 10):
        for _ in range(20):
            (spec, content), = make_variants(d, 1, [figure], "Find x.", rng)
            if d >= 6:
                assert (spec.kind, spec.difficulty, spec.fallback) == ("copy", d, "no_solution"), spec
                assert content.question("Find x.") == "Find x." and content.images == [figure]
                continue
            assert spec.kind in ("perturb", "render"), spec
            changed_text = content.question("Find x.") != "Find x."
            changed_image = content.images[0].size != figure.size or not np.array_equal(
                np.asarray(content.images[0]), np.asarray(figure)
            )
            assert changed_text or changed_image


def test_paraphrase_lists_and_markers():
    assert as_paraphrases(["<image>What is x?", "  ", "Give x.<image>"]) == ["What is x?", "Give x."]
    assert as_paraphrases("<image> Find  the\nvalue of x.") == ["Find the value of x."]
    assert as_paraphrases(None) == []


def test_row_question_reads_the_geo3k_layout():
    row = {
        "prompt": [{"role": "user", "content": "<image>Find x. You FIRST think ..."}],
        "extra_info": {"question": "<image>Find x.", "index": 3},
    }
    assert row_question(row) == "Find x."
    assert row_question({"prompt": row["prompt"], "extra_info": {}}) == "Find x. You FIRST think ..."
    with pytest.raises(ValueError, match="no user message"):
        row_question({"prompt": [], "extra_info": {}})


def test_config_validation():
    with pytest.raises(ValueError, match="hint_steps"):
        VariantConfig(hint_steps=(1, 2))
    with pytest.raises(ValueError, match="unknown key"):
        VariantConfig.from_mapping({"intensity": 0.5})
    assert VariantConfig.from_mapping({"combo_sizes": [1, 1, 2, 2, 3]}).combo_sizes == (1, 1, 2, 2, 3)
    assert DifficultyConfig().single_variant_targets == (9, 8, 7, 6, 6, 5, 5, 5, 4)
