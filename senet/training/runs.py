"""The run directory: the contract between a training process and its readers.

    RUN_DIR/config.json     everything needed to reproduce the run
    RUN_DIR/status.json     state, pid, times, epoch and step, error (atomic writes)
    RUN_DIR/metrics.jsonl   one JSON object per line, appended and flushed as it happens
    RUN_DIR/last.pt         every epoch (and on stop), through senet.save_checkpoint
    RUN_DIR/best.pt         the best validation accuracy so far
    RUN_DIR/.lock           held by the one process that trains the run (see :mod:`senet.training.run_lock`)
    RUN_DIR/gates/          a probe set's SE gates after every epoch (see :mod:`senet.training.gate_history`)

Readers ignore an incomplete last line of ``metrics.jsonl`` and report a run
whose process has died as ``failed`` rather than running forever.
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

from ..files import atomic_write, pid_alive, read_json, write_json_atomic
from ..records import METRICS, STATUS, RecordError, check_record
from .settings import config_shape
from .run_lock import LOCK_NAME, run_locked

__all__ = ["write_json_atomic", "read_json", "MetricsWriter", "read_metrics", "truncate_metrics", "read_status",
           "write_status", "list_runs", "pid_alive", "trainer_alive", "read_config", "run_summary", "make_run_dir", "ACTIVE_STATES"]

ACTIVE_STATES = ("starting", "running")


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl`` and flushes each line."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = open(self.path, "a", buffering=1)

    def write(self, record: dict) -> None:
        """Append ``record`` as one line; non-finite numbers (NaN, inf) are written as null."""
        self._file.write(json.dumps(_finite(record), allow_nan=False, default=float) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinite floats replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def read_metrics(path: str | os.PathLike, offset: int = 0) -> tuple[list[dict], int]:
    """Records of ``metrics.jsonl`` from byte ``offset``; returns (records, new offset).

    An incomplete last line (no newline yet) or a corrupt line is skipped; the
    returned offset stops before an incomplete line so a later call reads it whole.
    If the file is now shorter than ``offset`` (a resumed run rewrote it without
    the records past its checkpoint), reading continues from its last complete line.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if offset > size:
                f.seek(0)
                offset = f.read().rfind(b"\n") + 1
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        try:  # a record of the wrong shape is skipped like a corrupt line
            records.append(check_record(obj, METRICS, path))
        except RecordError:
            continue
    return records, offset + end


def truncate_metrics(path: str | os.PathLike, max_step: int) -> None:
    """Keep only records with ``step <= max_step`` (used on resume, so curves never double back)."""
    records, _ = read_metrics(path)
    kept = [r for r in records if r.get("step", 0) <= max_step]
    atomic_write(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in kept).encode()))


def write_status(run_dir: str | os.PathLike, *, drop: tuple[str, ...] = (), **fields: Any) -> dict:
    """Merge ``fields`` into ``status.json`` (atomically), remove the keys in ``drop`` (a stop reason that no
    longer holds) and stamp ``updated_at``."""
    path = Path(run_dir) / "status.json"
    status = read_json(path) or {}
    for key in drop:
        status.pop(key, None)
    status.update(fields)
    status["updated_at"] = time.time()
    write_json_atomic(path, status)
    return status


def read_status(run_dir: str | os.PathLike) -> dict:
    """``status.json``, with a run whose process has died reported as ``failed``; an unreadable or wrongly typed
    one is state ``unknown`` with the one-line reason as its error."""
    path = Path(run_dir) / "status.json"
    status = read_json(path)
    if status is None:
        return {"state": "unknown", "error": "no readable status.json"}
    try:
        check_record(status, STATUS, path)
    except RecordError as exc:
        return {"state": "unknown", "error": str(exc)}
    if status.get("state") in ACTIVE_STATES and not trainer_alive(run_dir, status):
        status = dict(status, state="failed", error=status.get("error") or "the training process died (pid gone)")
    return status


def trainer_alive(run_dir: str | os.PathLike, status: dict) -> bool:
    """Whether the process ``status`` names still trains ``run_dir``: the run's lock is held (see
    :mod:`senet.training.run_lock`; the kernel drops it when the process dies), or, for a run written before
    locks, its pid still runs and, where recorded, started when it did (a reused pid is another process)."""
    host = status.get("host")
    if host and host != socket.gethostname():
        return True  # another machine's run: trust its status
    if (Path(run_dir) / LOCK_NAME).exists():
        return run_locked(run_dir)
    return pid_alive(status.get("pid"), host, status.get("pid_start"))


def read_config(run_dir: str | os.PathLike) -> dict:
    """``config.json`` of a run ({} when there is none or it is unreadable); :class:`RecordError` in one line
    when a setting has the wrong type."""
    path = Path(run_dir) / "config.json"
    return check_record(read_json(path) or {}, config_shape(), path)


def run_summary(run_dir: str | os.PathLike) -> dict:
    """One row for a table of runs: name, state, model, epochs (completed, and in all), best val accuracy (or,
    for a run trained on every image, its last test accuracy),
    wall-clock duration and training time (``elapsed_s``, the training loop's time)."""
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    config_error = None
    try:
        config = read_config(run_dir)
    except RecordError as exc:
        config, config_error = {}, str(exc)
        status = dict(status, state="unknown", error=config_error)
    started = status.get("started_at")
    ended = status.get("updated_at")
    return {
        "run": run_dir.name,
        "path": str(run_dir),
        "state": status.get("state", "unknown"),
        "model": config.get("model"),
        "recipe": config.get("recipe"),
        "epoch": status.get("epoch"),
        "epochs": status.get("epochs") or config.get("epochs"),  # the trainer's total (a resume may change it)
        "best_val_acc": status.get("best_val_acc"),
        "test_acc": status.get("test_acc"),  # a run trained on every image: its last epoch on the test split
        "duration_s": (ended - started) if started and ended else None,
        "elapsed_s": status.get("elapsed_s"),
        "started_at": started,
        "error": status.get("error"),
        "config_error": config_error,
    }


def list_runs(root: str | os.PathLike) -> list[dict]:
    """Summaries of the run directories under ``root``, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    rows = [run_summary(d) for d in root.iterdir() if (d / "status.json").is_file() or (d / "config.json").is_file()]
    return sorted(rows, key=lambda r: r.get("started_at") or 0, reverse=True)


def make_run_dir(root: str | os.PathLike, model: str) -> Path:
    """A new, exclusively created run directory ``root/<time>-<model>[-n]``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = root / (f"{stamp}-{model}" + (f"-{n}" if n else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise OSError(f"could not create a new run directory under {root}")
