"""Training processes that die, are stopped, or find the disk full: what survives on disk, and resume.

The faults are injected into the real ``python -m senet train`` process (see
``inject/sitecustomize.py``) at exact points: after a given step, or in the
middle of writing a checkpoint, so each test is deterministic.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from faults import (assert_one_line_error, kill9, leftover_temp_files, senet, start_senet, tiny_dataset,
                    train_args, wait_for)
from senet import load_checkpoint
from senet_dashboard.catalog import discover_checkpoints
from senet.checkpoint import read_checkpoint
from senet.training.runs import read_json, read_metrics, read_status

pytestmark = pytest.mark.slow


def train_state(path: Path) -> dict:
    return read_checkpoint(path)["extra_state"]["train_state"]


def assert_whole_checkpoint(path: Path, epoch: int, global_step: int) -> None:
    """``path`` loads through the safe loader, predicts, and holds the state of the end of ``epoch``."""
    model, meta = load_checkpoint(path)
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 3) and torch.isfinite(out).all(), f"{path} should predict 3 finite class scores"
    state = train_state(path)
    assert (state["epoch"], state["global_step"]) == (epoch, global_step), \
        f"{path} should hold epoch {epoch} / step {global_step}, holds {state['epoch']} / {state['global_step']}"


def assert_resumes_and_finishes(run_dir: Path, cwd: Path, resumed_at_step: int, epochs: int = 3) -> None:
    """``train --resume`` continues from the checkpoint at ``resumed_at_step`` and finishes the run;
    afterwards every step and epoch is logged exactly once and no temporary file is left."""
    result = senet("train", "--resume", str(run_dir), "--no-progress", cwd=cwd)
    assert result.returncode == 0, f"resume should finish, got {result.returncode}:\n{result.stderr[-3000:]}"
    status = read_json(run_dir / "status.json")
    assert status["state"] == "finished" and status["epoch"] == epochs, status
    records, _ = read_metrics(run_dir / "metrics.jsonl")
    resumes = [r for r in records if r["type"] == "resume"]
    assert [r["step"] for r in resumes] == [resumed_at_step], f"one resume at step {resumed_at_step}: {resumes}"
    steps = [r["step"] for r in records if r["type"] == "step"]
    assert steps == list(range(1, 3 * epochs + 1)), f"each step logged once across the crash: {steps}"
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == list(range(1, epochs + 1))
    assert_whole_checkpoint(run_dir / "last.pt", epochs, 3 * epochs)
    assert leftover_temp_files(run_dir) == [], f"temporary files left behind: {leftover_temp_files(run_dir)}"


def test_kill_9_mid_epoch_keeps_the_last_checkpoint_reads_failed_and_resumes(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    marker = tmp_path / "at-step-5"
    proc = start_senet(*train_args(data, tmp_path / "cache", run_dir=run_dir), cwd=tmp_path,
                       fault={"hang_at_step": 5, "marker": str(marker)})  # step 2 of 3 in epoch 2
    try:
        wait_for(marker.exists, what="the run to reach step 5", proc=proc)
        assert read_status(run_dir)["state"] == "running"
    finally:
        kill9(proc)

    assert_whole_checkpoint(run_dir / "last.pt", epoch=1, global_step=3)
    assert read_json(run_dir / "status.json")["state"] == "running", "the killed process could not update its status"
    status = read_status(run_dir)
    assert status["state"] == "failed" and "died" in status["error"], f"a dead pid must read as failed: {status}"
    steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")[0] if r["type"] == "step"]
    assert steps == [1, 2, 3, 4, 5], f"metrics up to the kill stay readable: {steps}"
    assert leftover_temp_files(run_dir) == []
    assert_resumes_and_finishes(run_dir, tmp_path, resumed_at_step=3)


def test_kill_9_while_writing_a_checkpoint_keeps_the_previous_one_whole(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    marker = tmp_path / "in-save"
    proc = start_senet(*train_args(data, tmp_path / "cache", run_dir=run_dir), cwd=tmp_path,
                       fault={"hang_in_save": "last.pt", "nth": 2, "marker": str(marker)})  # epoch 2's last.pt
    try:
        wait_for(marker.exists, what="the second write of last.pt to begin", proc=proc)
        half_written = leftover_temp_files(run_dir)
        assert len(half_written) == 1 and half_written[0].startswith(".last.pt."), \
            f"the test should catch the write in its temporary file: {half_written}"
    finally:
        kill9(proc)

    assert_whole_checkpoint(run_dir / "last.pt", epoch=1, global_step=3)
    assert read_status(run_dir)["state"] == "failed"
    offered = [e.path.name for e in discover_checkpoints(tmp_path / "none", tmp_path)]
    assert offered == ["best.pt"], f"the half-written temporary file must never be offered as a checkpoint: {offered}"
    assert_resumes_and_finishes(run_dir, tmp_path, resumed_at_step=3)


def test_disk_refusing_a_checkpoint_write_fails_the_run_clearly_and_keeps_the_previous_checkpoint(
        tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    result = senet(*train_args(data, tmp_path / "cache", run_dir=run_dir), cwd=tmp_path,
                   fault={"fail_save": "last.pt", "nth": 2})  # epoch 2's last.pt: "No space left on device"
    line = assert_one_line_error(result, "No space left on device", rc=1, prefix="senet train: error:")
    status = read_status(run_dir)
    assert status["state"] == "failed" and "No space left on device" in status["error"], status
    assert "\n" not in status["error"]
    assert_whole_checkpoint(run_dir / "last.pt", epoch=1, global_step=3)
    assert leftover_temp_files(run_dir) == [], f"the failed write must clean up: {leftover_temp_files(run_dir)} ({line})"
    assert_resumes_and_finishes(run_dir, tmp_path, resumed_at_step=3)
