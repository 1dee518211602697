"""What a readable checkpoint may hold (issue 29, class 8): code it tries to run is named as such; NaN weights,
non-finite normalisation and control characters in class names are refused in one line; ``info --json`` is JSON."""
from __future__ import annotations

import json
import math
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from faults import assert_one_line_error, good_checkpoint, senet
from senet.checkpoint import CheckpointError, load_checkpoint


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_a_pickled_os_system_call_is_named_as_refused_code(tmp_path: Path) -> None:
    good = good_checkpoint(tmp_path / "good.pt")
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, pickle.dumps(_RunsCode(), protocol=2) if name.endswith("data.pkl") else src.read(name))
    with pytest.raises(CheckpointError, match=r"evil.pt: .*pickled posix.system object; refused, loading it could run"):
        load_checkpoint(evil)
    result = senet("info", "--checkpoint", str(evil), cwd=tmp_path, timeout=120)
    assert_one_line_error(result, "refused, loading it could run code")
    assert "should-never-run" not in result.stdout + result.stderr


def _changed(tmp_path: Path, change) -> Path:
    payload = torch.load(good_checkpoint(tmp_path / "good.pt"), weights_only=True)
    change(payload)
    path = tmp_path / "changed.pt"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("change, words", [
    (lambda p: p["state_dict"]["fc.weight"].fill_(float("nan")), "weight 'fc.weight' holds NaN or infinite values"),
    (lambda p: p["state_dict"]["conv1.weight"].view(-1)[0].fill_(float("inf")), "weight 'conv1.weight' holds NaN"),
    (lambda p: p.update(std=[0.2, float("inf"), 0.2]), "bad 'std'"),
    (lambda p: p.update(mean=[float("nan"), 0.5, 0.5]), "bad 'mean'"),
    (lambda p: p.update(classes=["blue", "gr\x1b[31meen", "red"]), "bad 'classes'"),
    (lambda p: p.update(classes=["blue", "green\nred", "red"]), "bad 'classes'"),
])
def test_unusable_content_is_refused_in_one_line(tmp_path: Path, change, words: str) -> None:
    path = _changed(tmp_path, change)
    with pytest.raises(CheckpointError, match=words):
        load_checkpoint(path)
    line = assert_one_line_error(senet("info", "--checkpoint", str(path), cwd=tmp_path, timeout=120), words)
    assert "\x1b" not in line


def test_info_json_prints_valid_json_when_a_recorded_figure_is_not_finite(tmp_path: Path) -> None:
    path = _changed(tmp_path, lambda p: p["meta"].update(
        history=[{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": float("nan")}], val_loss=float("inf")))
    result = senet("info", "--checkpoint", str(path), "--json", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    card = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert [row["val_acc"] for row in card["history"]] == [0.5, None] and card["val_loss"] is None
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in card.values())
