"""Starting, stopping and resuming training runs as separate operating-system processes.

The dashboard never trains in its own process: :func:`start_run` creates a
fresh run directory (exclusively, through :func:`senet.training.make_run_dir`, so
two sessions never share one), writes the configuration to ``RUN_DIR/config.json``,
records how it launched the run in ``RUN_DIR/launch.json`` and starts
``python -m senet train --config RUN_DIR/config.json --model ... (every setting) --run-dir RUN_DIR`` in a new
session with its output in ``RUN_DIR/train.log``. Everything else is
read back from the run directory, so a reloaded or restarted dashboard finds
the run again. :func:`stop_run` sends SIGTERM; the trainer finishes its step,
saves ``last.pt`` and exits.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from senet.training import TrainConfig, make_run_dir
from senet.files import process_start
from senet.training.runs import (ACTIVE_STATES, pid_alive, read_json, read_status, run_summary, trainer_alive,
                                 write_json_atomic)
from senet.training.settings import config_flags, config_record

__all__ = ["LaunchError", "train_command", "start_run", "resume_run", "stop_run", "run_state", "active_runs",
           "list_run_rows", "log_tail", "can_resume"]

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_processes: dict[str, subprocess.Popen] = {}  # children of this process, polled so they never linger as zombies


class LaunchError(RuntimeError):
    """A run that cannot be started, stopped or resumed; the message says why in one line."""


def train_command(config_file: str | os.PathLike, run_dir: str | os.PathLike, config: TrainConfig) -> list[str]:
    """The ``python -m senet train`` command line that trains ``config`` (written to ``config_file``) into
    ``run_dir``: the file, and every setting again as an explicit flag (:func:`config_flags`), so that the
    command in ``train.log`` says what trains and no environment variable of the dashboard's (``$SENET_DATA``,
    ``$SENET_DATA_DIR``) can stand in for a setting."""
    return [sys.executable, "-m", "senet", "train", "--config", str(config_file), *config_flags(config),
            "--run-dir", str(run_dir), "--no-progress"]


def _reap() -> None:
    for key, proc in list(_processes.items()):
        if proc.poll() is not None:
            del _processes[key]


def _spawn(cmd: list[str], run_dir: Path, action: str) -> int:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    _reap()
    with open(run_dir / "train.log", "ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=PACKAGE_ROOT, env=env, start_new_session=True)
        except OSError as exc:
            raise LaunchError(f"{run_dir}: could not start the training process ({exc.strerror or exc})") from None
    _processes[str(run_dir)] = proc
    write_json_atomic(run_dir / "launch.json", {"pid": proc.pid, "pid_start": process_start(proc.pid),
                                                "host": socket.gethostname(), "action": action,
                                                "command": cmd, "launched_at": time.time()})
    return proc.pid


def start_run(config: TrainConfig, runs_root: str | os.PathLike) -> Path:
    """Start training ``config`` in a new process; returns the new run directory under ``runs_root``."""
    run_dir = make_run_dir(runs_root, config.model)
    write_json_atomic(run_dir / "config.json", config_record(config))
    _spawn(train_command(run_dir / "config.json", run_dir, config), run_dir, "start")
    return run_dir


def can_resume(run_dir: str | os.PathLike) -> bool:
    """Whether the run has a config to continue from (from ``last.pt``, or from step 0 when it ended before its
    first checkpoint) and is not active."""
    run_dir = Path(run_dir)
    state = run_state(run_dir)["state"]
    return ((run_dir / "config.json").is_file() and state not in ACTIVE_STATES
            and ((run_dir / "last.pt").is_file() or state != "finished"))


def resume_run(run_dir: str | os.PathLike, epochs: int | None = None) -> int:
    """Continue a stopped or failed run from its ``last.pt`` (optionally to more ``epochs``); returns the pid."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise LaunchError(f"{run_dir}: no config.json to resume from")
    state = run_state(run_dir)["state"]
    if state in ACTIVE_STATES:
        raise LaunchError(f"{run_dir}: the run is still {state}")
    cmd = [sys.executable, "-m", "senet", "train", "--resume", str(run_dir), "--no-progress"]
    if epochs is not None:
        cmd += ["--epochs", str(int(epochs))]
    return _spawn(cmd, run_dir, "resume")


def stop_run(run_dir: str | os.PathLike) -> bool:
    """Ask the run's process to stop (SIGTERM; it saves ``last.pt``). False if it was not running."""
    run_dir = Path(run_dir)
    status = read_json(run_dir / "status.json") or {}
    launch = read_json(run_dir / "launch.json") or {}
    active = status.get("state") in ACTIVE_STATES
    pid = status.get("pid") if active else launch.get("pid")
    host = status.get("host") or launch.get("host")
    if host and host != socket.gethostname():
        raise LaunchError(f"{run_dir}: the run is on host {host}; stop it there")
    # the process must still be the one the run recorded (pid and start time, and the run's lock held), never
    # another that was given the same pid since
    if not (trainer_alive(run_dir, status) if active else pid_alive(pid, None, launch.get("pid_start"))):
        return False
    try:
        os.kill(int(pid), signal.SIGTERM)
    except ProcessLookupError:
        return False
    except PermissionError:
        raise LaunchError(f"{run_dir}: not allowed to signal process {pid}") from None
    write_json_atomic(run_dir / "launch.json", dict(launch, stop_requested_at=time.time()))
    return True


def log_tail(run_dir: str | os.PathLike, lines: int = 20, max_bytes: int = 16_384) -> str:
    """The last ``lines`` lines of ``RUN_DIR/train.log`` ('' when there is none, or when it is a link to a file
    outside the run directory: the page shows a run's own log, never another file on the server)."""
    path = Path(run_dir) / "train.log"
    try:
        if path.is_symlink() and not path.resolve().is_relative_to(Path(run_dir).resolve()):
            return ""
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


def _last_error_line(run_dir: Path) -> str | None:
    for line in reversed(log_tail(run_dir, 40).splitlines()):
        line = line.strip()
        if line and not line.startswith("$ ") and ("error" in line.lower() or "Error" in line):
            return line[:300]
    return None


def run_state(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's status (see :func:`senet.runs.read_status`), completed from the launcher's records.

    Before the trainer writes ``status.json`` a launched run is ``starting``;
    if its process is gone by then it is ``failed`` with the log's error
    line. A run stopped on request before it started is ``stopped``.
    """
    run_dir = Path(run_dir)
    _reap()
    launch = read_json(run_dir / "launch.json") or {}
    status = read_status(run_dir)
    if status.get("state") == "unknown" and launch:
        if pid_alive(launch.get("pid"), launch.get("host"), launch.get("pid_start")):
            return {"state": "starting", "pid": launch.get("pid"), "started_at": launch.get("launched_at")}
        if launch.get("stop_requested_at"):
            return {"state": "stopped", "started_at": launch.get("launched_at")}
        return {"state": "failed", "started_at": launch.get("launched_at"),
                "error": _last_error_line(run_dir) or "the training process exited before it started training"}
    newer_launch = launch.get("launched_at", 0) > status.get("updated_at", 0)
    if newer_launch and status.get("state") not in ACTIVE_STATES and pid_alive(launch.get("pid"), launch.get("host"),
                                                                               launch.get("pid_start")):
        status = dict(status, state="starting", error=None)  # a resume that has not written its status yet
    elif status.get("state") == "failed":
        logged = _last_error_line(run_dir)
        if logged and "pid gone" in str(status.get("error")):
            status = dict(status, error=f"{status['error']}; log: {logged}")
    return status


def list_run_rows(runs_root: str | os.PathLike) -> list[dict]:
    """One summary row per run directory under ``runs_root`` (newest first), with launcher-aware state."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    rows = []
    for d in root.iterdir():
        if not d.is_dir() or not any((d / f).is_file() for f in ("status.json", "config.json", "launch.json")):
            continue
        row = run_summary(d)
        state = run_state(d)
        if not row.get("config_error"):  # a wrongly typed config.json keeps the row unknown, with its one line
            row.update(state=state.get("state", "unknown"), error=state.get("error"))
        if not row.get("started_at"):
            row["started_at"] = state.get("started_at") or d.stat().st_mtime
        rows.append(row)
    return sorted(rows, key=lambda r: r.get("started_at") or 0, reverse=True)


def active_runs(runs_root: str | os.PathLike) -> list[dict]:
    """The rows of :func:`list_run_rows` whose process is starting or running."""
    return [r for r in list_run_rows(runs_root) if r["state"] in ACTIVE_STATES]
