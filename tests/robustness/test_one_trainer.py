"""Two processes, one run; a pid that is not ours (issue 29, class 4), and a run killed before its first
checkpoint or restarted by a study (class 6). Real processes, real ``kill -9``."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from faults import assert_one_line_error, kill9, senet, start_senet, tiny_dataset, train_args, wait_for
from senet.files import process_start
from senet.training.run_lock import run_locked
from senet.training.runs import read_json, read_metrics, read_status, write_json_atomic
from senet_dashboard.launcher import can_resume, stop_run

import pytest

pytestmark = pytest.mark.slow


def _steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")[0] if r["type"] == "step"]


def test_a_second_resume_of_a_run_being_trained_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    first = senet(*train_args(data, tmp_path / "cache", run_dir=run_dir, epochs=1), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    marker = tmp_path / "at-step-4"
    holder = start_senet("train", "--resume", str(run_dir), "--epochs", "3", "--no-progress", cwd=tmp_path,
                         fault={"hang_at_step": 4, "marker": str(marker)})
    try:
        wait_for(marker.exists, what="the first resume to reach step 4", proc=holder)
        assert run_locked(run_dir)
        # the status check is bypassed on purpose (as two processes racing past it would): the lock still holds
        status = read_json(run_dir / "status.json")
        write_json_atomic(run_dir / "status.json", dict(status, state="stopped"))
        second = senet("train", "--resume", str(run_dir), "--epochs", "3", "--no-progress", cwd=tmp_path)
        assert_one_line_error(second, "another process is training this run", f"pid {holder.pid}", rc=1)
        assert _steps(run_dir) == [1, 2, 3, 4], "the refused process wrote nothing"
    finally:
        kill9(holder)
    assert not run_locked(run_dir), "the kernel releases the lock of a killed process"
    assert read_status(run_dir)["state"] in ("stopped", "failed")


def test_a_recorded_pid_now_used_by_another_process_reads_as_dead_and_is_never_signalled(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_json_atomic(run_dir / "config.json", {"model": "resnet20"})
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        # the dead trainer's status names the stranger's pid, with the start time of the process it really was
        real_start = process_start(stranger.pid)
        write_json_atomic(run_dir / "status.json", {"state": "running", "pid": stranger.pid, "host": None,
                                                    "pid_start": str(int(real_start) - 1000), "updated_at": time.time()})
        assert read_status(run_dir)["state"] == "failed"
        assert stop_run(run_dir) is False, "Stop must not signal a process the run did not record"
        assert can_resume(run_dir)
        # and a run directory with a lock file that nobody holds is dead whatever its pid says
        (run_dir / ".lock").write_text(json.dumps({"pid": stranger.pid}))
        write_json_atomic(run_dir / "status.json", {"state": "running", "pid": stranger.pid, "host": None})
        assert read_status(run_dir)["state"] == "failed"
        assert stop_run(run_dir) is False
        time.sleep(0.2)
        assert stranger.poll() is None, "the unrelated process is alive: it was never signalled"
    finally:
        stranger.kill()
        stranger.wait()


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    marker = tmp_path / "at-step-2"
    proc = start_senet(*train_args(data, tmp_path / "cache", run_dir=run_dir, epochs=2), cwd=tmp_path,
                       fault={"hang_at_step": 2, "marker": str(marker)})
    try:
        wait_for(marker.exists, what="step 2 of the first epoch", proc=proc)
    finally:
        kill9(proc)
    assert not (run_dir / "last.pt").exists() and read_status(run_dir)["state"] == "failed"
    assert can_resume(run_dir), "the dashboard offers Resume for it"
    result = senet("train", "--resume", str(run_dir), "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "starts again from step 0" in result.stderr
    assert read_status(run_dir)["state"] == "finished"
    assert _steps(run_dir) == list(range(1, 7)), "each step logged once: the dead attempt's steps were cut"


def test_a_killed_study_restarts_its_run_without_logging_a_step_twice(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    study = tmp_path / "study"
    args = ("study", "--study-dir", str(study), "--variants", "resnet20", "--seeds", "1", "--epochs", "1",
            "--batch-size", "8", "--val-size", "6", "--log-every", "1", "--data", f"folder:{data}",
            "--data-dir", str(tmp_path / "cache"), "--no-progress")
    marker = tmp_path / "at-step-2"
    proc = start_senet(*args, cwd=tmp_path, fault={"hang_at_step": 2, "marker": str(marker)})
    try:
        wait_for(marker.exists, what="the study's run to reach step 2", proc=proc)
    finally:
        kill9(proc)
    result = senet(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (study / "runs").iterdir()
    assert _steps(run_dir) == [1, 2, 3], f"one record per step after the restart: {_steps(run_dir)}"


def test_a_train_log_linked_outside_its_run_is_never_shown(tmp_path: Path) -> None:
    from senet_dashboard.launcher import log_tail

    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("API_KEY=do-not-show\n")
    run_dir = tmp_path / "runs" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "train.log").symlink_to(secret)
    assert log_tail(run_dir) == ""
    (run_dir / "real.log").write_text("epoch 1\n")
    (run_dir / "train.log").unlink()
    (run_dir / "train.log").symlink_to(run_dir / "real.log")  # a link within the run is its own log
    assert log_tail(run_dir) == "epoch 1"
