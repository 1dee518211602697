"""Strange and broken images through ``python -m senet excite`` and the dashboard's upload.

``tests/test_inference.py`` checks ``open_image``/``preprocess`` on each mode;
here the same files go through the user's entry points: a usable image gives a
prediction, an unusable one gives one line naming it, and the next image (or
the next upload) still works.
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faults import ROOT, good_checkpoint, senet


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A decompression bomb in 70 bytes: a 1x1 PNG whose header (with a valid CRC) claims ``width`` x ``height``."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (20, 20), c) for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


def palette_with_transparency() -> bytes:
    image = Image.new("P", (24, 24), 1)
    image.putpalette([0, 0, 0, 250, 120, 40] + [0] * 762)
    image.paste(0, (0, 0, 12, 24))
    return encode(image, "PNG", transparency=0)


def gray16() -> bytes:
    arr = (np.linspace(0, 65535, 48 * 40).reshape(40, 48)).astype(np.uint16)
    return encode(Image.fromarray(arr), "PNG")  # uint16 -> mode I;16


# name: (bytes, None if usable else what the one-line error must say)
IMAGES: dict[str, tuple[bytes, str | None]] = {
    "not-an-image.png": (b"I am a text file, not a picture\n" * 20, "not an image file"),
    "empty.png": (b"", "not an image file"),
    "truncated.png": (encode(noise(64, 64), "PNG")[:1500], "truncated"),
    "truncated.jpg": (encode(noise(64, 64), "JPEG")[:1200], "truncated"),
    "bomb-20000x20000.png": (png_claiming(20000, 20000), "too large"),
    "one-pixel.png": (encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"), None),
    "gray-16bit.png": (gray16(), None),
    "cmyk.jpg": (encode(Image.new("CMYK", (40, 30), (0, 200, 200, 0)), "JPEG"), None),
    "palette-transparent.png": (palette_with_transparency(), None),
    "animated.gif": (animated_gif(), None),
    "wide-panorama.jpg": (encode(noise(2000, 50), "JPEG"), None),
}


def test_image_cases_are_what_they_claim() -> None:
    """Guard the fixtures: the odd images really have the odd modes, and the bomb really claims 400 MP."""
    opened = {name: Image.open(io.BytesIO(data)) for name, (data, reason) in IMAGES.items() if reason is None}
    assert opened["gray-16bit.png"].mode.startswith("I")
    assert opened["cmyk.jpg"].mode == "CMYK"
    assert opened["palette-transparent.png"].mode == "P" and "transparency" in opened["palette-transparent.png"].info
    assert opened["animated.gif"].n_frames == 3
    assert opened["one-pixel.png"].size == (1, 1)
    bomb = IMAGES["bomb-20000x20000.png"][0]
    assert struct.unpack(">II", bomb[16:24]) == (20000, 20000) and len(bomb) < 100
    with pytest.raises(Image.DecompressionBombError):  # PIL itself balks at the header alone
        Image.open(io.BytesIO(bomb))


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for name, (data, _) in IMAGES.items():
        (folder / name).write_bytes(data)
    good_checkpoint(folder / "model.pt")
    return folder


@pytest.mark.slow
def test_excite_answers_every_usable_image_and_one_line_per_unusable_one(image_files: Path) -> None:
    names = list(IMAGES) + ["missing.png"]
    result = senet("excite", "--checkpoint", str(image_files / "model.pt"), *[str(image_files / n) for n in names],
                   cwd=image_files, timeout=180)
    assert result.returncode == 1, f"some images are unusable: exit 1, got {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    errors = result.stderr.strip().splitlines()
    expected_bad = {n: r for n, (_, r) in IMAGES.items() if r is not None}
    expected_bad["missing.png"] = "no such file"
    assert len(errors) == len(expected_bad), f"one error line per unusable image:\n{result.stderr}"
    for name, reason in expected_bad.items():
        line = next((e for e in errors if str(image_files / name) in e), None)
        assert line and line.startswith("senet excite: error:") and reason in line, f"{name}: expected {reason!r}: {line}"
    answered = [line.split(": ")[0] for line in result.stdout.splitlines() if not line.startswith(" ")]
    usable = [str(image_files / n) for n, (_, r) in IMAGES.items() if r is None]
    assert answered == usable, f"every usable image is answered, in order:\n{result.stdout}"


# --------------------------------------------------------------------------- the dashboard's upload
@pytest.fixture(scope="module")
def excitation_page(image_files: Path, tmp_path_factory: pytest.TempPathFactory):
    from streamlit.testing.v1 import AppTest

    tmp = tmp_path_factory.mktemp("dash")
    mp = pytest.MonkeyPatch()
    mp.setenv("SENET_CHECKPOINTS", str(image_files))
    mp.setenv("SENET_RUNS", str(tmp / "runs"))
    mp.setenv("SENET_DATA_DIR", str(tmp / "data-dir"))
    mp.setenv("SENET_DATA", f"folder:{tmp / 'no-data'}")  # offline, no data: upload is what still works
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("senet_dashboard/views/excitation.py").run()
    at.segmented_control(key="exc_mode").set_value("Upload").run()
    assert not at.exception, at.exception
    assert at.file_uploader(key="exc_upload"), "the excitation page offers an upload"
    yield at
    mp.undo()


@pytest.mark.parametrize("name", list(IMAGES))
def test_dashboard_upload_gives_a_result_or_one_error_and_the_page_keeps_working(excitation_page, name: str) -> None:
    """Each image uploaded on the excitation page under its own name (the uploader takes png, jpg, jpeg, gif,
    bmp and webp names)."""
    at = excitation_page
    data, reason = IMAGES[name]
    mime = {"jpg": "image/jpeg", "gif": "image/gif"}.get(name.rsplit(".", 1)[-1], "image/png")
    at.file_uploader(key="exc_upload").set_value((name, data, mime))
    at.run()
    assert not at.exception, f"{name}: the page crashed: {at.exception}"
    errors = [e.value for e in at.error]
    predicted = [m.value for m in at.markdown if m.value.startswith("Predicted **")]
    if reason is None:
        assert errors == [], f"{name} is usable, expected no error: {errors}"
        assert len(predicted) == 1, f"{name}: expected a prediction"
        assert at.get("plotly_chart"), f"{name}: expected the gate charts"
    else:
        assert len(errors) == 1 and name in errors[0] and reason in errors[0] and "\n" not in errors[0], \
            f"{name}: expected one error line naming it with {reason!r}, got {errors}"
        assert predicted == [], f"{name}: no prediction for an unusable image"
    # the page keeps working: a good upload right after is answered
    at.file_uploader(key="exc_upload").set_value(("ok.png", IMAGES["one-pixel.png"][0], "image/png"))
    at.run()
    assert not at.exception and [e.value for e in at.error] == [], f"after {name}, a good image must work again"
