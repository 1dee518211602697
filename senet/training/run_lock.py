"""One process per run directory: an advisory lock on ``RUN_DIR/.lock``, held while a process trains the run.

``senet train`` (new, ``--config`` or ``--resume``) and ``senet study`` take it before they read or write anything
of the run, so two processes can never interleave one run's ``metrics.jsonl``, ``last.pt`` and ``status.json``.
The kernel releases the lock when its process dies (``kill -9`` included), so a lock is never stale, and
:func:`run_locked` tells a live trainer from a dead one without trusting a recorded pid.
"""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..files import process_identity

__all__ = ["RunBusy", "LOCK_NAME", "run_lock", "run_locked"]

LOCK_NAME = ".lock"


class RunBusy(RuntimeError):
    """Another live process holds the run's lock; the message names the run and that process."""


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        who = json.loads(os.read(fd, 4096) or b"{}")
        return f"pid {int(who['pid'])} on {str(who.get('host', '?'))[:60]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the ``with`` body; :class:`RunBusy` at once if a live process holds it."""
    path = Path(run_dir) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(f"{run_dir}: another process is training this run ({_holder(fd)}); wait for it to "
                          "finish or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(process_identity()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def run_locked(run_dir: str | os.PathLike) -> bool:
    """Whether a live process holds ``run_dir``'s lock (False when there is no lock file)."""
    try:
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
