"""CIFAR-10-C corruptions (senet.data.corruptions) against hand computations of their published definitions,
damage growing with severity, the robustness analysis (senet.analysis.robustness) and ``senet robustness``."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from senet.data.corruptions import CORRUPTIONS, SEVERITIES, check_corruption, check_severity, corrupt

# The published parameters (make_cifar_c.py of github.com/hendrycks/robustness), written out again here.
PUBLISHED = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
}
REQUIRED = {"gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "contrast", "brightness",
            "jpeg_compression", "pixelate"}


def grey(value: int = 128, size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def test_the_corruptions_and_their_published_parameters():
    assert REQUIRED <= set(CORRUPTIONS)
    for name, params in PUBLISHED.items():
        assert CORRUPTIONS[name].params == params, name


@pytest.mark.parametrize("severity", SEVERITIES)
def test_brightness_adds_to_the_hsv_value_keeping_hue_and_saturation(severity):
    c = PUBLISHED["brightness"][severity - 1]
    image = np.array([[[100, 50, 0], [0, 0, 0], [250, 10, 10]]], np.uint8)
    out = corrupt(image, "brightness", severity)
    # V = 100/255 -> V + c; hue and saturation kept, so every channel scales by (V + c) / V
    r = 100 + 255 * c
    expected = [[math.floor(r), math.floor(50 * r / 100), 0],
                [math.floor(255 * c)] * 3,  # black: value c, saturation 0 -> grey
                [255, math.floor(10 * 255 / 250), math.floor(10 * 255 / 250)]]  # V + c clipped at 1
    assert out.tolist() == [expected]


@pytest.mark.parametrize("severity", SEVERITIES)
def test_contrast_pulls_each_channel_towards_its_mean(severity):
    c = PUBLISHED["contrast"][severity - 1]
    image = np.array([[[0, 200, 60], [100, 100, 100]], [[40, 0, 20], [20, 100, 220]]], np.uint8)
    out = corrupt(image, "contrast", severity)
    means = image.reshape(-1, 3).mean(0)  # 40, 100, 100
    expected = np.floor((image - means) * c + means + 1e-9)
    assert np.array_equal(out, expected.astype(np.uint8))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_noise_has_the_published_sigma(severity):
    c = PUBLISHED["gaussian_noise"][severity - 1]
    out = corrupt(grey(), "gaussian_noise", severity, seed=3).astype(float)
    diff = out - 128
    assert abs(diff.std() / (255 * c) - 1) < 0.05
    assert abs(diff.mean() + 0.5) < 0.5  # unbiased but for the truncation to uint8 (-0.5 on average)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_shot_noise_is_poisson_with_the_published_count(severity):
    c = PUBLISHED["shot_noise"][severity - 1]
    x = 128 / 255
    out = corrupt(grey(), "shot_noise", severity, seed=3).astype(float) / 255
    assert abs(out.mean() - x) < 0.01
    assert abs(out.std() / math.sqrt(x / c) - 1) < 0.06  # Poisson(cx)/c has variance x/c


@pytest.mark.parametrize("severity", SEVERITIES)
def test_impulse_noise_salts_and_peppers_the_published_fraction(severity):
    c = PUBLISHED["impulse_noise"][severity - 1]
    out = corrupt(grey(), "impulse_noise", severity, seed=3)
    n = out.size
    salt, pepper, kept = (out == 255).sum(), (out == 0).sum(), (out == 128).sum()
    assert salt + pepper + kept == n
    sd = math.sqrt(n * c * (1 - c))
    assert abs(salt + pepper - n * c) < 4 * sd
    assert abs(salt - pepper) < 4 * math.sqrt(n * c)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_speckle_noise_scales_with_the_pixel(severity):
    c = PUBLISHED["speckle_noise"][severity - 1]
    diff = corrupt(grey(), "speckle_noise", severity, seed=3).astype(float) - 128
    assert abs(diff.std() / (128 * c) - 1) < 0.05


def _taps(sigma: float, radius: int) -> np.ndarray:
    t = np.array([math.exp(-(i * i) / (2 * sigma * sigma)) for i in range(-radius, radius + 1)])
    return t / t.sum()


def _point(size: int = 15) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    image[size // 2, size // 2] = 255
    return image


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_blur_spreads_a_point_by_the_published_sigma(severity):
    sigma = PUBLISHED["gaussian_blur"][severity - 1]
    taps = _taps(sigma, int(4 * sigma + 0.5))  # scipy's kernel: 4 sigma each side
    out = corrupt(_point(), "gaussian_blur", severity)[..., 0]
    k = len(taps) // 2
    expected = np.zeros((15, 15))
    expected[7 - k:8 + k, 7 - k:8 + k] = 255 * np.outer(taps, taps)
    assert np.abs(out - np.floor(expected + 1e-9)).max() <= 1


def _disk(radius: float, alias: float) -> dict[tuple[int, int], float]:
    """The defocus kernel by hand: the disk's pixels, each 1/count, each spread by a 3x3 Gaussian."""
    pixels = [(y, x) for y in range(-2, 3) for x in range(-2, 3) if x * x + y * y <= radius * radius]
    taps = _taps(alias, 1)
    kernel: dict[tuple[int, int], float] = {}
    for y, x in pixels:
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                key = (y + dy, x + dx)
                kernel[key] = kernel.get(key, 0.0) + taps[dy + 1] * taps[dx + 1] / len(pixels)
    return kernel


@pytest.mark.parametrize("severity", SEVERITIES)
def test_defocus_blur_spreads_a_point_into_the_anti_aliased_disk(severity):
    radius, alias = PUBLISHED["defocus_blur"][severity - 1]
    out = corrupt(_point(), "defocus_blur", severity)[..., 1].astype(int)
    expected = np.zeros((15, 15))
    for (y, x), w in _disk(radius, alias).items():
        expected[7 + y, 7 + x] = 255 * w
    assert np.abs(out - np.floor(expected + 1e-9)).max() <= 1


def _natural(n: int = 12) -> np.ndarray:
    from senet.data import load_sample

    return load_sample().images[:n].permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("severity", SEVERITIES)
def test_jpeg_compression_at_the_published_quality(severity):
    images = _natural(3)
    out = corrupt(images, "jpeg_compression", severity)
    for image, got in zip(images, out):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=PUBLISHED["jpeg_compression"][severity - 1])
        assert np.array_equal(got, np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixelate_is_box_resampling_down_and_up(severity):
    c = PUBLISHED["pixelate"][severity - 1]
    side = int(32 * c)
    assert side == (30, 28, 27, 24, 20)[severity - 1]
    image = _natural(1)[0]
    down = Image.fromarray(image).resize((side, side), Image.BOX)
    assert np.array_equal(corrupt(image, "pixelate", severity), np.asarray(down.resize((32, 32), Image.BOX)))


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_damage_grows_with_severity_on_natural_images(name):
    images = _natural()
    damage = [np.abs(corrupt(images, name, s, seed=1).astype(float) - images).mean() for s in SEVERITIES]
    assert all(a < b for a, b in zip(damage, damage[1:])), damage
    assert damage[0] > 0


@pytest.mark.parametrize("name", ["gaussian_blur", "defocus_blur", "contrast", "pixelate"])
def test_a_constant_image_keeps_its_value_under_blur_contrast_and_pixelate(name):
    assert np.array_equal(corrupt(grey(90, 16), name, 5), grey(90, 16))


def test_random_draws_depend_on_seed_and_position_not_on_the_batch():
    images = _natural(4)
    batch = corrupt(images, "gaussian_noise", 3, seed=7)
    assert np.array_equal(corrupt(images[2], "gaussian_noise", 3, seed=7, positions=[2]), batch[2])
    assert np.array_equal(corrupt(images, "gaussian_noise", 3, seed=7), batch)
    assert not np.array_equal(corrupt(images, "gaussian_noise", 3, seed=8), batch)
    assert not np.array_equal(batch[0], corrupt(images[0], "gaussian_noise", 3, seed=7, positions=[1]))


def test_bad_names_and_severities_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown corruption 'fog'; known: gaussian_noise, shot_noise"):
        check_corruption("fog")
    for bad in (0, 6, 2.5, "3", True):
        with pytest.raises(ValueError, match="must be a whole number from 1 to 5"):
            check_severity(bad)
    with pytest.raises(ValueError, match="uint8 RGB"):
        corrupt(np.zeros((4, 4), np.uint8), "contrast", 1)


# --------------------------------------------------------------------------- senet.analysis.robustness
from senet.analysis.robustness import (CLEAN, BlockShift, ModelUnderCorruption, Robustness,  # noqa: E402
                                       image_shift, robustness)


def test_a_blocks_shift_by_hand():
    shift = BlockShift("stage1", np.array([0.2, 0.8, 0.5]), np.array([0.4, 0.4, 0.5]))
    assert shift.mean_abs_change == pytest.approx((0.2 + 0.4 + 0.0) / 3)
    cos = (0.08 + 0.32 + 0.25) / (math.sqrt(0.04 + 0.64 + 0.25) * math.sqrt(0.16 + 0.16 + 0.25))
    assert shift.cosine_distance == pytest.approx(1 - cos)
    assert [m["channel"] for m in shift.moved(2)] == [1, 0]
    assert shift.moved(1)[0]["change"] == pytest.approx(-0.4)
    assert BlockShift("b", np.array([0.3, 0.6]), np.array([0.6, 1.2])).cosine_distance == pytest.approx(0, abs=1e-12)


def _hand_made() -> Robustness:
    """Ten images, one corruption at severities 1 and 2; who is right is written out."""
    t, f = True, False
    a = {CLEAN: np.array([t] * 9 + [f]),
         ("contrast", 1): np.array([t, t, t, t, t, t, t, t, f, f]),
         ("contrast", 2): np.array([t, t, t, t, t, f, f, f, f, f])}
    b = {CLEAN: np.array([t] * 10),
         ("contrast", 1): np.array([t, f, f, f, f, f, f, f, t, f]),
         ("contrast", 2): np.array([t, t, f, f, f, f, f, f, f, t])}
    return Robustness("val", 10, ["contrast"], [1, 2], 0,
                      {"checkpoint": ModelUnderCorruption("a.pt", a), "twin": ModelUnderCorruption("b.pt", b)},
                      reference_role="twin")


def test_the_paired_test_against_a_hand_count():
    r = _hand_made()
    p = r.paired("contrast", 1)  # checkpoint alone right on images 1..7, twin alone on image 8
    assert (p.both_right, p.only_a, p.only_b, p.both_wrong) == (1, 7, 1, 1)
    assert p.difference == pytest.approx(0.6)
    assert p.p_value == pytest.approx(2 * (1 + 8) / 2 ** 8)  # exact McNemar: 1 of 8 discordant pairs
    clean = r.paired(*CLEAN)
    assert (clean.only_a, clean.only_b) == (0, 1) and clean.p_value == 1.0
    over = r.paired_over_severities("contrast")
    # each image's share of severities right, checkpoint minus twin
    d = np.array([0, .5, 1, 1, 1, .5, .5, .5, -.5, -.5])
    assert over["difference"] == pytest.approx(d.mean())
    half = 1.96 * d.std(ddof=1) / math.sqrt(10)
    assert over["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert (over["images_checkpoint_better"], over["images_twin_better"]) == (7, 2)
    assert over["p_value"] == pytest.approx(2 * (1 + 9 + 36) / 2 ** 9)  # sign test: 2 of 9 images


def test_corruption_error_against_the_reference_by_hand():
    r = _hand_made()
    # errors: checkpoint 0.2 + 0.5, twin 0.8 + 0.7
    assert r.corruption_error("checkpoint", "contrast") == pytest.approx(0.7 / 1.5)
    assert r.mean_corruption_error("checkpoint") == pytest.approx(0.7 / 1.5)
    assert r.corruption_error("twin", "contrast") == pytest.approx(1.0)
    r.reference_role = None
    assert r.corruption_error("checkpoint", "contrast") is None and r.mean_corruption_error("checkpoint") is None
    out = _hand_made().to_json()
    assert out["models"]["checkpoint"]["accuracy"]["contrast"] == {"1": 0.8, "2": 0.5}
    assert out["paired"]["by_severity"]["contrast"]["1"]["only_checkpoint"] == 7


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.robustness.faults import good_checkpoint, tiny_dataset

    root = tmp_path_factory.mktemp("robustness")
    data = tiny_dataset(root / "data", per_class=10)
    se = good_checkpoint(root / "se.pt")
    plain = good_checkpoint(root / "plain.pt", name="resnet20")
    return {"root": root, "spec": f"folder:{data}", "se": se, "plain": plain, "cache": root / "cache"}


def test_one_images_gates_before_and_after(tiny):
    from senet import open_checkpoint
    from senet.analysis.evaluate import checkpoint_and_split
    from senet.analysis.explanation import explain
    from senet.data import normalize

    ckpt, data = checkpoint_and_split(tiny["se"], tiny["spec"], "val", tiny["root"])
    shift = image_shift(ckpt, data.images[1], "gaussian_noise", 4, seed=2, position=1)
    bad = corrupt(data.images[1].permute(1, 2, 0).numpy(), "gaussian_noise", 4, seed=2, positions=[1])
    assert np.array_equal(shift.corrupted_image, bad.transpose(2, 0, 1))
    import torch
    again = explain(ckpt.model, normalize(torch.from_numpy(bad).permute(2, 0, 1)[None], ckpt.mean, ckpt.std),
                    ckpt.classes)
    assert np.allclose(shift.corrupted.probs, again.probs, atol=1e-6)
    assert [b.block for b in shift.blocks] == list(again.gates)
    for block in shift.blocks:
        assert np.allclose(block.after, again.gates[block.block], atol=1e-6)
        assert block.mean_abs_change == pytest.approx(np.abs(block.after - block.before).mean())
    assert shift.to_json()["corrupted"]["class"] in ckpt.classes
    assert open_checkpoint(tiny["se"]).classes == ckpt.classes


def test_split_accuracy_is_the_models_on_the_corrupted_images_and_is_cached(tiny, monkeypatch):
    from senet.analysis import robustness as module
    from senet.analysis.evaluate import checkpoint_and_split
    from senet.analysis.runner import predict
    from senet.data import normalize

    result = robustness(tiny["se"], tiny["spec"], "val", tiny["root"], twin=tiny["plain"],
                        corruptions=["contrast", "shot_noise"], severities=[2, 5], seed=3, cache_dir=tiny["cache"])
    ckpt, data = checkpoint_and_split(tiny["se"], tiny["spec"], "val", tiny["root"])
    assert result.n == len(data) > 0
    bad = corrupt(data.images.permute(0, 2, 3, 1).numpy(), "shot_noise", 5, seed=3)
    import torch
    x = normalize(torch.from_numpy(bad).permute(0, 3, 1, 2), ckpt.mean, ckpt.std)
    by_hand = (predict(ckpt.model, x).argmax(1) == data.labels).float().mean().item()
    assert result.models["checkpoint"].accuracy("shot_noise", 5) == pytest.approx(by_hand)
    assert result.reference_role == "twin"

    def no_run(*_a, **_k):
        raise AssertionError("ran a model although every prediction is cached")
    monkeypatch.setattr(module, "run_over_split", no_run)
    seen = []
    again = robustness(tiny["se"], tiny["spec"], "val", tiny["root"], twin=tiny["plain"],
                       corruptions=["contrast", "shot_noise"], severities=[2, 5], seed=3, cache_dir=tiny["cache"],
                       progress=lambda d, t: seen.append((d, t)))
    assert again.to_json() == result.to_json()
    assert seen[-1][0] == seen[-1][1] == len(data) * 2 * (1 + 4)


def test_bad_requests_fail_before_any_work(tiny):
    with pytest.raises(ValueError, match="unknown corruption 'snow'"):
        robustness(tiny["root"] / "missing.pt", tiny["spec"], corruptions=["snow"], cache_dir=tiny["root"] / "c2")
    with pytest.raises(ValueError, match="severity 0"):
        robustness(tiny["root"] / "missing.pt", tiny["spec"], severities=[0], cache_dir=tiny["root"] / "c2")
    assert not (tiny["root"] / "c2").exists()


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from senet.cli import main

    code = main(["robustness", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_errors_are_one_line(tiny, capsys):
    missing = str(tiny["root"] / "missing.pt")
    for args, words in [(["--corruptions", "fog"], "--corruptions: unknown corruption 'fog'; known: gaussian_noise"),
                        (["--severities", "1", "6"], "--severities: severity 6: must be a whole number from 1 to 5"),
                        (["--per-class", "0"], "--per-class 0: must be 1 or more"),
                        (["--seed", "-1"], "--seed -1: must be 0 or more")]:
        code, out, err = _cli(capsys, "--checkpoint", missing, "--data", tiny["spec"], *args)
        assert code == 2 and out == ""
        assert err.strip().startswith(f"senet robustness: error: {words}") and err.count("\n") == 1
    code, _, err = _cli(capsys, "--checkpoint", missing, "--data", tiny["spec"], "--data-dir", str(tiny["root"]))
    assert code == 2 and "missing.pt" in err and err.count("\n") == 1


def test_cli_json_run_on_a_tiny_folder(tiny, capsys):
    args = ["--checkpoint", str(tiny["se"]), "--twin", str(tiny["plain"]), "--data", tiny["spec"], "--data-dir",
            str(tiny["root"]), "--corruptions", "pixelate", "brightness", "--severities", "1", "5",
            "--cache-dir", str(tiny["root"] / "cli-cache")]
    code, out, err = _cli(capsys, *args, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["corruptions"] == ["pixelate", "brightness"] and got["severities"] == [1, 5]
    expected = robustness(tiny["se"], tiny["spec"], "val", tiny["root"], twin=tiny["plain"],
                          corruptions=["pixelate", "brightness"], severities=[1, 5],
                          cache_dir=tiny["root"] / "cli-cache").to_json()
    assert got["models"] == expected["models"] and got["paired"] == expected["paired"]
    assert set(got["paired"]["by_corruption"]["pixelate"]) >= {"difference", "ci95", "p_value"}
    code, out, _ = _cli(capsys, *args)
    assert code == 0 and "pixelate" in out and "checkpoint minus twin" in out
