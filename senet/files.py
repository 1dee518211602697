"""Writing files so that a crash never leaves a half-written one, and reading JSON leniently.

Every file the package writes (checkpoints, ``status.json``, ``config.json``, data and prediction caches) goes
through :func:`atomic_write`: a temporary file in the same directory, flushed and fsynced, then ``os.replace``
over the target. If anything fails, the old file is untouched and the temporary one is removed; the temporary
file of a writer killed mid-write (``kill -9``) is removed by the next successful write of the same path.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import socket
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["atomic_write", "atomic_torch_save", "check_replaceable", "write_json_atomic", "read_json", "remove_stale_temporaries",
           "pid_alive", "process_start", "process_identity", "writer_tag"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def writer_tag() -> str:
    """``PID-HOST`` in a temporary file's name: who wrote it, so that leftovers can be recognised."""
    return f"{os.getpid()}-{_host_tag()}"


def check_replaceable(path: str | os.PathLike) -> None:
    """Refuse (``OSError``) to write ``path`` unless it is a regular file or does not exist yet.

    The one rule for every writer: a device node, a FIFO, a socket or a directory at ``path`` is never
    replaced (``--force`` included); a symbolic link counts as what it points to.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return  # nothing there (or a dangling link): writing creates the file
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path} ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise OSError(f"refusing to replace {path}: it is {_kind(mode)}, not a regular file")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _os_error_behind(exc: BaseException) -> OSError | None:
    """The ``OSError`` that caused ``exc`` (torch's zip writer turns a full disk into a ``RuntimeError``)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it to ``path``.

    ``path`` must be a regular file or absent (:func:`check_replaceable`). Any failure of the disk (full,
    read-only, gone) raises ``OSError("cannot write PATH (reason)")`` and leaves the old file untouched.
    """
    path = Path(path)
    check_replaceable(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{writer_tag()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the file the caller asked for, not the temporary one
        raise OSError(exc.errno, f"cannot write {path} ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        check_replaceable(path)  # again: something may have appeared there while we wrote
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        cause = _os_error_behind(exc) if isinstance(exc, Exception) else None
        if cause is not None and cause is not exc:
            raise OSError(cause.errno, f"cannot write {path} ({cause.strerror})") from None
        if isinstance(exc, OSError) and exc.errno and str(path) not in str(exc):
            raise OSError(exc.errno, f"cannot write {path} ({exc.strerror})") from None
        raise
    try:  # make the rename itself durable; not possible on every platform
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    remove_stale_temporaries(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` through :func:`atomic_write`."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as indented JSON at ``path``, through :func:`atomic_write`."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=1).encode()))


def read_json(path: str | os.PathLike) -> dict | None:
    """A JSON object from ``path``, or None if it is missing or unreadable."""
    try:
        with open(path) as f:
            obj = json.load(f)
        return obj if isinstance(obj, dict) else None
    except (OSError, ValueError):
        return None


def process_start(pid: int | None = None) -> str | None:
    """When process ``pid`` (default: this one) started, as the kernel counts it (``/proc/PID/stat`` field 22,
    clock ticks since boot): with the pid it names one process, since a reused pid has another start time.
    None where ``/proc`` cannot tell."""
    try:
        with open(f"/proc/{os.getpid() if pid is None else pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_identity() -> dict[str, Any]:
    """What a status or claim file records of the process writing it: pid, host and start time."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "pid_start": process_start()}


def pid_alive(pid: Any, host: str | None = None, start: Any = None) -> bool:
    """Whether process ``pid`` exists (and is not a zombie) on this host; with ``start`` (a recorded
    :func:`process_start`), only if it is still that process and not another that was given the same pid."""
    if host and host != socket.gethostname():
        return True  # cannot tell for another machine; trust its status
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if isinstance(start, str) and process_start(pid) not in (start, None):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of earlier writes of ``path`` whose writer died (``kill -9`` mid-write).

    Only files written on this host by a process that no longer exists are
    removed; a write in progress elsewhere is left alone. Returns what was removed.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*-{_host_tag()}.*.tmp"):
        pid_text = tmp.name[len(path.name) + 2:].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or pid_alive(int(pid_text)):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed
