"""Images of any mode and size to model input; broken and oversized images refused in one line."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from senet import ImageError, create_model, load_checkpoint, open_image, predict, preprocess
from senet.data import CIFAR_MEAN, CIFAR_STD

META = {"input_size": [3, 32, 32], "mean": list(CIFAR_MEAN), "std": list(CIFAR_STD)}


def expected_uniform(rgb: tuple[int, int, int]) -> torch.Tensor:
    """The normalised input for an image whose every pixel is ``rgb``."""
    values = [(v / 255 - m) / s for v, m, s in zip(rgb, CIFAR_MEAN, CIFAR_STD)]
    return torch.tensor(values).view(1, 3, 1, 1).expand(1, 3, 32, 32)


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR is patched (with a correct CRC) to claim ``width`` x ``height``."""
    data = bytearray(encode(Image.new("RGB", (1, 1))))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def noise(size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


def uniform_image(mode: str) -> tuple[Image.Image, tuple[int, int, int]]:
    """An image of ``mode`` (not 32x32) filled with one colour, and that colour in RGB."""
    size = (40, 24)
    if mode == "L":
        return Image.new("L", size, 200), (200, 200, 200)
    if mode == "LA":
        return Image.new("LA", size, (200, 255)), (200, 200, 200)
    if mode == "RGBA":
        return Image.new("RGBA", size, (10, 20, 30, 255)), (10, 20, 30)
    if mode == "CMYK":
        return Image.new("CMYK", size, (0, 0, 0, 0)), (255, 255, 255)  # no ink: white
    if mode == "I;16":
        return Image.new("I;16", size, 65535), (255, 255, 255)
    if mode == "1":
        return Image.new("1", size, 1), (255, 255, 255)
    if mode == "P":
        image = Image.new("P", size, 1)
        image.putpalette([0, 0, 0, 250, 100, 50] + [0] * 762)
        return image, (250, 100, 50)
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1"])
def test_preprocess_handles_each_mode(mode):
    image, rgb = uniform_image(mode)
    x = preprocess(image, META)
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32
    torch.testing.assert_close(x, expected_uniform(rgb), atol=2e-2, rtol=0,
                               msg=f"a uniform {mode} image should become uniform RGB {rgb}, normalised")


def test_preprocess_paletted_image_with_transparency_composites_over_black():
    image = Image.new("P", (20, 20), 1)
    image.putpalette([0, 0, 0, 250, 100, 50] + [0] * 762)
    image.paste(0, (0, 0, 10, 20))  # left half: palette index 0
    image.info["transparency"] = 0
    image = Image.open(io.BytesIO(encode(image)))  # through a real PNG tRNS chunk
    assert image.mode == "P" and "transparency" in image.info
    pixels = preprocess(image, {**META, "mean": [0, 0, 0], "std": [1, 1, 1]})[0]
    torch.testing.assert_close(pixels[:, :, :8], torch.zeros(3, 32, 8), atol=1e-6, rtol=0,
                               msg="transparent pixels should be black")
    torch.testing.assert_close(pixels[:, 16, 24:], torch.tensor([250, 100, 50]).view(3, 1).expand(3, 8) / 255)


def test_preprocess_fully_transparent_rgba_is_black():
    x = preprocess(Image.new("RGBA", (32, 32), (255, 255, 255, 0)), META)
    torch.testing.assert_close(x, expected_uniform((0, 0, 0)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [(1, 1), (32, 32), (31, 33), (300, 200)])
def test_preprocess_resizes_any_size_to_input_size(size):
    x = preprocess(Image.new("RGB", size, (90, 120, 150)), META)
    assert x.shape == (1, 3, 32, 32)
    torch.testing.assert_close(x, expected_uniform((90, 120, 150)), atol=1e-2, rtol=0)


def test_preprocess_uses_checkpoint_normalisation_and_size():
    meta = {"input_size": [3, 16, 24], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    x = preprocess(Image.new("RGB", (50, 50), (255, 0, 255)), meta)
    assert x.shape == (1, 3, 16, 24)
    assert torch.allclose(x[0, 0], torch.full((16, 24), 2.0)) and torch.allclose(x[0, 1], torch.full((16, 24), -2.0))


def test_oversized_image_refused_before_decoding():
    # 8000 x 6000 = 48 MP: over our 40 MP limit, under PIL's own bomb threshold, so only our check can catch it.
    # The file holds a single pixel of data: decoding it in full would fail differently.
    data = png_claiming_size(8000, 6000)
    with pytest.raises(ImageError, match="too large") as info:
        open_image(data, name="huge.png")
    assert "huge.png" in str(info.value) and "\n" not in str(info.value)
    lazy = Image.open(io.BytesIO(data))  # header read only
    with pytest.raises(ImageError, match="too large"):
        preprocess(lazy, META)


def test_decompression_bomb_header_refused():
    with pytest.raises(ImageError, match="too large"):
        open_image(png_claiming_size(20000, 20000), name="bomb.png")


@pytest.mark.parametrize("data", [b"this is not an image at all", b"", b"\x89PNG\r\n\x1a\n garbage"])
def test_open_image_refuses_non_image_bytes(data):
    with pytest.raises(ImageError) as info:
        open_image(data, name="upload.bin")
    message = str(info.value)
    assert message.startswith("upload.bin:") and "\n" not in message, message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_open_image_refuses_truncated_file(tmp_path, fmt):
    data = encode(noise((64, 64)), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as info:
        open_image(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    assert "truncated" in message or "broken" in message, message


def test_open_image_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "absent.png")


def test_open_image_gives_first_frame_of_animated_gif():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = open_image(buf.getvalue())
    assert getattr(image, "n_frames", 1) == 3
    r, g, b = image.convert("RGB").getpixel((8, 8))
    assert r > 200 and g < 50 and b < 50, f"expected the red first frame, got {(r, g, b)}"


def test_open_image_applies_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image = open_image(encode(noise((40, 20)), "JPEG", exif=exif.tobytes()))
    assert image.size == (20, 40), "a phone photo should come out the way it is displayed"


def test_open_image_decodes_a_real_file(tmp_path):
    path = tmp_path / "ok.png"
    noise((33, 17)).save(path)
    image = open_image(path)
    assert image.size == (33, 17)
    assert preprocess(image, META).shape == (1, 3, 32, 32)


def test_predict_returns_probabilities_and_keeps_training_mode():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=4).train()
    probs = predict(model, torch.randn(3, 3, 32, 32))
    assert probs.shape == (3, 4) and (probs >= 0).all()
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(3))
    assert model.training, "predict must restore training mode"


def test_predict_turns_seed_log_softmax_into_probabilities():
    torch.manual_seed(0)
    model = create_model("seed_senet", filters=16, blocks=2).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x).exp()
    torch.testing.assert_close(predict(model, x), expected)


def test_predict_tta_averages_with_mirror_image():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=4).eval()
    x = torch.randn(2, 3, 32, 32)
    expected = (predict(model, x) + predict(model, x.flip(-1))) / 2
    torch.testing.assert_close(predict(model, x, tta=True), expected)


def test_checkpoint_image_to_prediction(tiny_checkpoint):
    model, meta = load_checkpoint(tiny_checkpoint)
    probs = predict(model, preprocess(Image.new("RGB", (64, 64), (200, 10, 10)), meta))
    assert probs.shape == (1, len(meta["classes"]))
