"""What a write may replace: a regular file or nothing, for every writer; and a truly full disk.

Class 1 and the first fault of class 6 of issue 29. The targets are real: a FIFO, a character device
node made with ``mknod`` (root only), a directory, and a 1 MiB tmpfs mounted inside the test's folder
(root only); each test skips with the reason where the machine does not permit it.
"""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import torch

from faults import assert_one_line_error, good_checkpoint, senet, tiny_dataset, train_args
from senet.checkpoint import export_checkpoint
from senet.files import atomic_torch_save, atomic_write, check_replaceable, write_json_atomic

WRITERS = {
    "atomic_write": lambda p: atomic_write(p, lambda f: f.write(b"x")),
    "write_json_atomic": lambda p: write_json_atomic(p, {"a": 1}),
    "atomic_torch_save": lambda p: atomic_torch_save({"w": torch.zeros(3)}, p),
}


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def make_null_device(path: Path) -> Path:
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the same device as /dev/null, in tmp_path
    except PermissionError:
        pytest.skip("creating a device node needs root (CAP_MKNOD)")
    return path


def make_directory(path: Path) -> Path:
    path.mkdir()
    return path


TARGETS = {"FIFO": (make_fifo, stat.S_ISFIFO, "a FIFO"),
           "device": (make_null_device, stat.S_ISCHR, "a character device"),
           "directory": (make_directory, stat.S_ISDIR, "a directory")}


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_no_writer_replaces_what_is_not_a_regular_file(tmp_path: Path, writer: str, target: str) -> None:
    make, is_kind, words = TARGETS[target]
    path = make(tmp_path / "target")
    with pytest.raises(OSError, match=f"refusing to replace .*target: it is {words}, not a regular file"):
        WRITERS[writer](path)
    assert is_kind(os.lstat(path).st_mode), f"{path} should still be {words}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"], "no temporary file left behind"


def test_a_regular_file_a_link_to_one_and_nothing_may_be_written(tmp_path: Path) -> None:
    (tmp_path / "old").write_bytes(b"old")
    (tmp_path / "link").symlink_to(tmp_path / "old")
    for name in ("old", "link", "new"):
        check_replaceable(tmp_path / name)
        atomic_write(tmp_path / name, lambda f: f.write(b"new"))
        assert (tmp_path / name).read_bytes() == b"new"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_export_force_refuses_a_target_that_is_not_a_regular_file(tmp_path: Path, target: str) -> None:
    make, is_kind, words = TARGETS[target]
    source = good_checkpoint(tmp_path / "model.pt")
    out = make(tmp_path / "out")
    result = senet("export", "--checkpoint", str(source), "--out", str(out), "--force", cwd=tmp_path, timeout=120)
    assert_one_line_error(result, "refusing to replace", words)
    assert is_kind(os.lstat(out).st_mode), f"--force must not turn {words} into a regular file"
    with pytest.raises(Exception, match="not a regular file"):
        export_checkpoint(source, out, overwrite=True)


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 1 MiB tmpfs mounted at ``tmp_path/disk``: a real full disk, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_real_full_disk_is_one_clear_error_and_keeps_the_earlier_file(full_disk: Path) -> None:
    path = full_disk / "weights.pt"
    atomic_torch_save({"w": torch.zeros(10)}, path)
    with pytest.raises(OSError) as caught:
        atomic_torch_save({"w": torch.randn(1000, 1000)}, path)  # 4 MB into 1 MiB
    assert str(caught.value).startswith(f"[Errno 28] cannot write {path}"), str(caught.value)
    assert torch.load(path)["w"].shape == (10,), "the earlier file survives whole"
    assert [p.name for p in full_disk.iterdir()] == ["weights.pt"], "no temporary file left on the full disk"


def test_training_onto_a_real_full_disk_fails_in_one_line_and_marks_the_run_failed(tmp_path: Path,
                                                                                    full_disk: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    run_dir = full_disk / "run"
    # se_resnet20's checkpoint (about 1.1 MB with its optimiser state) cannot fit a 1 MiB disk
    result = senet(*train_args(data, tmp_path / "cache", run_dir=run_dir, epochs=1, model="se_resnet20"),
                   cwd=tmp_path, timeout=300)
    assert_one_line_error(result, "No space left on device", rc=1)
    assert "Traceback" not in result.stderr
    status = (run_dir / "status.json").read_text() if (run_dir / "status.json").exists() else ""
    assert '"failed"' in status or '"running"' in status, f"status.json is readable and not 'finished': {status!r}"


def _study(tmp_path: Path, study_dir: Path) -> list[str]:
    data = tiny_dataset(tmp_path / "data")
    return ["study", "--study-dir", str(study_dir), "--variants", "se_resnet20", "--seeds", "1", "--epochs", "1",
            "--batch-size", "8", "--val-size", "6", "--data", f"folder:{data}", "--data-dir", str(tmp_path / "cache"),
            "--no-progress"]


def test_a_study_on_a_real_full_disk_fails_in_one_line(tmp_path: Path, full_disk: Path) -> None:
    result = senet(*_study(tmp_path, full_disk / "study"), cwd=tmp_path, timeout=300)
    assert_one_line_error(result, "No space left on device", rc=1)


def test_a_study_on_a_read_only_file_system_fails_in_one_line(tmp_path: Path) -> None:
    disk = tmp_path / "ro"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(disk)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        result = senet(*_study(tmp_path, disk / "study"), cwd=tmp_path, timeout=300)
        assert_one_line_error(result, "Read-only file system", rc=1)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
