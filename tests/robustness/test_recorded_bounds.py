"""A small file must not exhaust memory (issue 29, class 2): every recorded option and size is bounded before
anything is built, allocated or run, and so is what a checkpoint's compressed entries inflate to."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch

from faults import ROOT, assert_one_line_error, good_checkpoint, senet
from senet.checkpoint import MAX_INFLATED_BYTES, CheckpointError, load_checkpoint, read_checkpoint


def crafted(tmp_path: Path, **changes) -> Path:
    """A real checkpoint with some recorded fields replaced (the weights stay those of the real model)."""
    path = good_checkpoint(tmp_path / "good.pt")
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if key in payload:
            payload[key] = value
        else:
            payload["model_options"][key] = value
    out = tmp_path / "crafted.pt"
    torch.save(payload, out)
    return out


@pytest.mark.parametrize("change, words", [
    ({"num_classes": 20_000_000}, "num_classes must be at most 100,000"),
    ({"model": "seed_senet", "model_options": {"blocks": 10_000_000, "num_classes": 3}}, "blocks must be at most"),
    ({"model": "seed_senet", "model_options": {"filters": 10_000_000, "num_classes": 3}}, "filters must be at most"),
    ({"width": 10_000}, "width must be at most"),
    ({"input_size": [3, 40_000, 40_000]}, "a height and width from 8 to 1024"),
    ({"input_size": [1, 32, 32]}, "3 channels first"),
])
def test_recorded_sizes_are_refused_before_anything_is_built(tmp_path: Path, change: dict, words: str) -> None:
    path = crafted(tmp_path, **change)
    with pytest.raises(CheckpointError, match=words.replace("(", r"\(")):
        load_checkpoint(path)
    assert_one_line_error(senet("info", "--checkpoint", str(path), cwd=tmp_path, timeout=120), str(path), words)


def test_weights_of_another_shape_are_refused_before_the_model_is_allocated(tmp_path: Path) -> None:
    # num_classes 50,000 is within bounds, but the stored classifier has 3 rows: refused from the shapes alone
    path = crafted(tmp_path, num_classes=50_000, classes=[f"c{i}" for i in range(50_000)])
    with pytest.raises(CheckpointError, match=r"weights do not fit model 'se_resnet20' \(fc.weight is \(3, 64\)"):
        load_checkpoint(path)


def test_a_deflate_bomb_is_refused_from_its_zip_directory(tmp_path: Path) -> None:
    payload = torch.load(good_checkpoint(tmp_path / "good.pt"), weights_only=True)
    payload["state_dict"]["padding"] = torch.zeros(MAX_INFLATED_BYTES // 4 + 2**20)  # inflates past the bound
    raw = io.BytesIO()
    torch.save(payload, raw)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(io.BytesIO(raw.getvalue())) as src, zipfile.ZipFile(bomb, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 2 * 2**20, "the crafted file is small on disk (the real weights, ~1 MB, and the bomb)"
    with pytest.raises(CheckpointError, match=r"bomb.pt: compressed entries would inflate to 6[5-9] MiB"):
        read_checkpoint(bomb)


def test_the_shipped_checkpoints_pass_every_bound() -> None:
    for path in sorted((ROOT / "checkpoints").glob("*.pt")):
        model, meta = load_checkpoint(path)
        assert meta["input_size"] == [3, 32, 32]
