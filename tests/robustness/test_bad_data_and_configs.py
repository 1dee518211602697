"""Unusable data folders and configurations through ``python -m senet train``; odd but usable folders train.

``tests/test_cli.py`` already covers, in-process, most single bad flags (unknown
model/dataset, zero/negative/NaN numbers, reduction too large, batch larger than
the data, one class, an empty class folder, an existing run directory). Here:
the remaining folder shapes, the real interpreter with no ``--run-dir`` in an
empty working directory (so any stray ``runs/`` would show), and a folder with
non-image files and non-ASCII names trained, evaluated and inspected end to end.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faults import assert_one_line_error, cli_batch, colour_images, leftover_temp_files, snapshot, write_png
from senet import load_checkpoint
from senet.training.runs import read_status


def folder_cases(root: Path) -> dict[str, tuple[Path, str]]:
    """{case: (dataset folder, what the one-line error says)} for folders ``train`` cannot use."""
    cases = {}
    cases["missing folder"] = (root / "missing", "no such directory")
    (root / "a-file").write_text("not a folder")
    cases["a file, not a folder"] = (root / "a-file", "not a directory")
    (root / "empty").mkdir()
    cases["empty folder"] = (root / "empty", "no 'train' folder")
    colour_images(root / "loose" / "scratch", per_class=2)
    for p in (root / "loose" / "scratch").rglob("*.png"):  # images directly in train/, no class folders
        (root / "loose" / "train").mkdir(parents=True, exist_ok=True)
        p.rename(root / "loose" / "train" / f"{p.parent.name}-{p.name}")
    cases["images but no class folders"] = (root / "loose", "no class subfolders")
    colour_images(root / "junk-class" / "train", classes=("blue", "green"), per_class=3)
    for name, data in (("readme.txt", b"hello"), ("photo.png", b"\x89PNG\r\n\x1a\nbroken"), ("model.pt", b"PK")):
        junk = root / "junk-class" / "train" / "red" / name
        junk.parent.mkdir(parents=True, exist_ok=True)
        junk.write_bytes(data)
    cases["a class of only non-image files"] = (root / "junk-class", "class folder 'red' has no readable images")
    return cases


def test_unusable_data_folders_are_refused_in_one_line_before_anything_is_written(tmp_path: Path) -> None:
    data_root = tmp_path / "datasets"
    data_root.mkdir()
    cases = folder_cases(data_root)
    work = tmp_path / "work"
    work.mkdir()
    argvs = [["train", "--model", "resnet20", "--data", f"folder:{path}", "--epochs", "1", "--batch-size", "4",
              "--no-progress"] for path, _ in cases.values()]
    before = snapshot(tmp_path)
    results = cli_batch(argvs, cwd=work)
    for (case, (path, reason)), result in zip(cases.items(), results):
        assert_one_line_error(result, str(path), reason, prefix="senet train: error:")
    after = snapshot(tmp_path)
    new = sorted(p for p in set(after) - set(before))
    assert all(p.startswith("work/data") for p in new), f"no run directory, no runs/: {new}"
    assert not (work / "runs").exists()
    assert {k: v for k, v in after.items() if k in before} == before, "the data folders are left untouched"


BAD_CONFIGS = [
    (["--lr", "inf"], "lr must be a positive number"),
    (["--lr=-inf"], "lr must be a positive number"),
    (["--epochs", "1.5"], "invalid int value"),
    (["--batch-size", "two"], "invalid int value"),
    (["--momentum", "1"], "momentum must be below 1"),
    (["--weight-decay", "nan"], "weight_decay must be a non-negative number"),
    (["--width", "0"], "width"),
    (["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"),
    (["--log-every", "0"], "log_every must be a positive integer"),
    (["--model", "se_resnet20", "--reduction=-4"], "reduction must be a positive integer"),
    (["--model", "resnet20", "--reduction", "0"], "reduction must be a positive integer"),  # plain model too
    (["--model", "seed_senet", "--reduction", "200"], "larger than the narrowest SE stage (128 channels)"),
]


def test_bad_configurations_without_run_dir_write_nothing_in_the_working_directory(tmp_path: Path) -> None:
    """With no ``--run-dir`` a run would go to ./runs/<time>-<model>: a refused one must not create it."""
    data = colour_images(tmp_path / "data" / "train", per_class=4).parent
    work = tmp_path / "work"
    work.mkdir()
    base = ["train", "--model", "resnet20", "--data", f"folder:{data}", "--data-dir", str(tmp_path / "cache"),
            "--epochs", "1", "--batch-size", "4", "--val-size", "3", "--no-progress"]
    results = cli_batch([base + extra for extra, _ in BAD_CONFIGS], cwd=work)
    for (extra, reason), result in zip(BAD_CONFIGS, results):
        assert_one_line_error(result, reason, prefix="python -m senet train: error:" if "invalid" in reason
                              else "senet train: error:")
    assert list(work.iterdir()) == [], f"nothing written in the working directory: {list(work.iterdir())}"
    assert not (tmp_path / "cache").exists(), "a refused configuration does not even read the data"


@pytest.mark.slow
def test_folder_with_non_image_files_and_non_ascii_names_trains_evaluates_and_excites(tmp_path: Path) -> None:
    classes = ("café", "猫", "Ünïcödé ü")
    root = tmp_path / "données à moi"
    colour_images(root / "train", classes=classes, per_class=10, name=lambda i: f"image-{i}-é.png")
    junk = {"notes.txt": b"not an image", "Thumbs.db": b"\x00" * 64, "broken-ß.png": b"\x89PNG\r\n\x1a\nxx",
            "sub.jpg": b"\xff\xd8\xff\xe0 truncated"}
    for cls in classes[:2]:
        for name, data in junk.items():
            (root / "train" / cls / name).write_bytes(data)
    (root / "train" / classes[0] / ".hidden.png").write_bytes(b"ignored: hidden")
    run_dir = tmp_path / "läufe" / "run-1"
    image = tmp_path / "bild ü.png"
    write_png(image, np.full((40, 30, 3), 200))
    train, evaluate, info, excite = cli_batch([
        ["train", "--model", "se_resnet20", "--data", f"folder:{root}", "--data-dir", str(tmp_path / "cache"),
         "--epochs", "1", "--batch-size", "8", "--val-size", "6", "--log-every", "1", "--run-dir", str(run_dir),
         "--no-progress"],
        ["evaluate", "--checkpoint", str(run_dir / "best.pt"), "--data", f"folder:{root}", "--data-dir",
         str(tmp_path / "cache"), "--json"],
        ["info", "--checkpoint", str(run_dir / "last.pt"), "--json"],
        ["excite", "--checkpoint", str(run_dir / "best.pt"), str(image)],
    ], cwd=tmp_path)
    assert train["rc"] == 0, f"training should finish:\n{train['stderr'][-3000:]}"
    assert "skipped 8 file(s) that are not readable images" in train["stderr"], \
        f"the skipped non-image files are counted (2 classes x 4):\n{train['stderr']}"
    assert read_status(run_dir)["state"] == "finished"
    model, meta = load_checkpoint(run_dir / "best.pt")
    assert meta["classes"] == sorted(classes), f"non-ASCII class names survive the checkpoint: {meta['classes']}"
    assert evaluate["rc"] == 0, evaluate["stderr"]
    report = json.loads(evaluate["stdout"])
    assert report["classes"] == sorted(classes) and report["n"] == 6, report
    assert info["rc"] == 0 and json.loads(info["stdout"])["classes"] == sorted(classes)
    assert excite["rc"] == 0 and excite["stdout"].startswith(f"{image}: "), excite
    assert excite["stdout"].split(": ")[1].split(" (")[0] in classes
    assert leftover_temp_files(tmp_path) == []
