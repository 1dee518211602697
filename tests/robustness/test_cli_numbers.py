"""Command-line numbers and file kinds refused before any work (issue 29, class 7), and uploads decoded only
as photo formats, decided by content (class 3)."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faults import ROOT, assert_one_line_error, senet, tiny_dataset, write_png
from senet.data import ImageError, open_image

SHIPPED = ROOT / "checkpoints" / "se_airnet.pt"


def test_excite_top_below_one_is_refused(tmp_path: Path) -> None:
    write_png(tmp_path / "x.png", np.zeros((32, 32, 3)))
    for top in ("-1", "0"):
        result = senet("excite", "--checkpoint", str(SHIPPED), "--top", top, str(tmp_path / "x.png"), cwd=tmp_path,
                       timeout=120)
        assert_one_line_error(result, f"--top {top}", "1 or more")


def test_excite_on_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "image.png"
    os.mkfifo(fifo)
    result = senet("excite", "--checkpoint", str(SHIPPED), str(fifo), cwd=tmp_path, timeout=120)
    assert_one_line_error(result, str(fifo), "not a regular file", rc=1)


def test_study_seed_count_is_bounded_before_anything_is_allocated(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    result = senet("study", "--study-dir", str(tmp_path / "study"), "--variants", "airnet", "--seeds", "1000000000",
                   "--epochs", "1", "--data", f"folder:{data}", cwd=tmp_path, timeout=60)
    assert_one_line_error(result, "--seeds 1000000000", "1 to 1,000")
    assert not (tmp_path / "study").exists()


def test_study_batch_larger_than_its_images_is_refused_before_any_run_exists(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    result = senet("study", "--study-dir", str(tmp_path / "study"), "--variants", "airnet", "--seeds", "1",
                   "--epochs", "1", "--batch-size", "500", "--data", f"folder:{data}",
                   "--data-dir", str(tmp_path / "cache"), cwd=tmp_path, timeout=120)
    assert_one_line_error(result, "batch_size 500", "training images")
    assert not (tmp_path / "study").exists(), "no study directory, hence no failed run, is left behind"


def _bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["TIFF", "EPS", "PPM", "TGA"])
def test_an_upload_in_another_format_under_a_png_name_is_refused_by_content(fmt: str) -> None:
    try:
        content = _bytes(fmt)
    except (OSError, KeyError) as exc:  # EPS writing needs no Ghostscript, but be safe
        pytest.skip(f"Pillow cannot write {fmt} here: {exc}")
    with pytest.raises(ImageError, match="photo.png: not an image file in a format accepted here"):
        open_image(content, "photo.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_photo_formats_are_decoded_whatever_the_name(fmt: str) -> None:
    assert open_image(_bytes(fmt), "photo.tiff").size == (8, 8)


def test_a_learning_rate_that_would_overflow_is_refused_before_training(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    result = senet("train", "--model", "airnet", "--data", f"folder:{data}", "--epochs", "1", "--lr", "1e308",
                   "--run-dir", str(tmp_path / "run"), cwd=tmp_path, timeout=120)
    assert_one_line_error(result, "lr must be at most 100")
    assert not (tmp_path / "run").exists()


def test_a_runs_root_where_no_directory_can_be_made_is_one_line(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    result = senet("train", "--model", "airnet", "--data", f"folder:{data}", "--epochs", "1", "--batch-size", "8",
                   "--val-size", "6", "--data-dir", str(tmp_path / "cache"), "--runs-root", str(not_a_folder),
                   cwd=tmp_path, timeout=120)
    assert_one_line_error(result, f"--runs-root {not_a_folder}: cannot create a run directory there")
