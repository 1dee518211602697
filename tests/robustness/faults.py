"""Helpers of the robustness suite: tiny data, CLI runners, fault-injected training processes, file snapshots.

Everything here drives the real code paths: ``python -m senet`` in a subprocess,
the ``senet`` API, and the dashboard through ``streamlit.testing.v1.AppTest``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
INJECT = HERE / "inject"
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CLASSES = ("blue", "green", "red")  # sorted, as a folder dataset lists its class folders


# --------------------------------------------------------------------------- data
def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.astype(np.uint8)).save(path, format="PNG")


def colour_images(root: Path, classes: tuple[str, ...] = CLASSES, per_class: int = 12, seed: int = 0,
                  size: int = 32, name: Callable[[int], str] = lambda i: f"{i:03d}.png") -> Path:
    """``root/<class>/*.png``: classes differ by dominant colour (learnable, 32x32 by default)."""
    rng = np.random.default_rng(seed)
    for k, cls in enumerate(classes):
        for i in range(per_class):
            img = rng.integers(0, 80, size=(size, size, 3))
            img[..., k % 3] = rng.integers(150, 256, size=(size, size))
            write_png(root / cls / name(i), img)
    return root


def tiny_dataset(root: Path, classes: tuple[str, ...] = CLASSES, per_class: int = 12, **kwargs) -> Path:
    """A folder dataset ``root/train/<class>/*.png`` (36 images by default)."""
    colour_images(root / "train", classes, per_class, **kwargs)
    return root


def train_args(data: Path, cache: Path, *, run_dir: Path | None = None, epochs: int = 3, model: str = "resnet20",
               extra: tuple[str, ...] = ()) -> list[str]:
    """``train`` arguments for a tiny run: 30 training images in batches of 8 = 3 steps per epoch."""
    args = ["train", "--model", model, "--data", f"folder:{data}", "--data-dir", str(cache), "--epochs", str(epochs),
            "--batch-size", "8", "--lr", "0.05", "--val-size", "6", "--log-every", "1", "--no-progress"]
    if run_dir is not None:
        args += ["--run-dir", str(run_dir)]
    return args + list(extra)


def good_checkpoint(path: Path, name: str = "se_resnet20", classes: tuple[str, ...] = CLASSES, **options) -> Path:
    """An untrained checkpoint whose classes are :func:`colour_images`' (in folder order)."""
    import torch

    from senet import create_model, save_checkpoint

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, create_model(name, num_classes=len(classes), **options), model_name=name,
                    model_options={"num_classes": len(classes), **options}, classes=classes, val_acc=0.5)
    return path


# --------------------------------------------------------------------------- processes
def env(fault: dict | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: senet importable, one thread, and an optional injected fault."""
    paths = [str(INJECT)] if fault else []
    paths += [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    e = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), **SINGLE_THREAD, **extra)
    e.pop("SENET_FAULT", None)
    if fault:
        e["SENET_FAULT"] = json.dumps(fault)
    return e


def senet(*args: str, cwd: Path, fault: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m senet ARGS`` to completion."""
    return subprocess.run([sys.executable, "-m", "senet", *args], cwd=cwd, env=env(fault), capture_output=True,
                          text=True, timeout=timeout)


def start_senet(*args: str, cwd: Path, fault: dict | None = None) -> subprocess.Popen:
    """Start ``python -m senet ARGS`` in the background (its output goes to files beside ``cwd``)."""
    log = cwd / f"senet-{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "senet", *args], cwd=cwd, env=env(fault), stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    proc.log_path = log  # type: ignore[attr-defined]
    return proc


def output_of(proc: subprocess.Popen) -> str:
    """What a process started by :func:`start_senet` has printed so far."""
    return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]


def wait_for(condition: Callable[[], object], timeout: float = 300, what: str = "condition",
             proc: subprocess.Popen | None = None, interval: float = 0.1) -> object:
    """Poll ``condition`` until it is truthy; fail with ``what`` (and the process output) on timeout or exit."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            value = condition()
            if value:
                return value
            raise AssertionError(f"process exited ({proc.returncode}) before {what}:\n{output_of(proc)[-3000:]}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f":\n{output_of(proc)[-3000:]}" if proc is not None else ""))


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL, then reap (so the pid is gone, as after a real crash)."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


CLI_BATCH = """
import contextlib, io, json, sys, traceback
from senet.cli import main
results = []
for argv in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            rc = "crash"
    results.append({"argv": argv, "rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()})
sys.__stdout__.write(json.dumps(results))
"""


def cli_batch(argvs: list[list[str]], cwd: Path, timeout: float = 600) -> list[dict]:
    """Run many ``python -m senet`` command lines in ONE fresh interpreter (to pay torch's import once).

    Each goes through ``senet.cli.main`` exactly as ``python -m senet`` does; the result holds
    ``rc`` (the exit code, or "crash" for an uncaught exception), ``stdout`` and ``stderr``.
    """
    proc = subprocess.run([sys.executable, "-c", CLI_BATCH], input=json.dumps(argvs), cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"the CLI batch driver failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


INFO_LINES = ("run directory: ", "note: ")  # what ``train`` tells the user before it starts (not an error)


def assert_one_line_error(result: dict | subprocess.CompletedProcess, *must_contain: str, rc: int = 2,
                          prefix: str = "senet ") -> str:
    """Exit code ``rc``, and stderr is exactly one line (beside ``train``'s "run directory: ..." notice)
    that starts with ``prefix``, says "error" and contains each of ``must_contain``."""
    get = (lambda k: result[k]) if isinstance(result, dict) else (lambda k: getattr(result, k))
    code = get("rc") if isinstance(result, dict) else result.returncode
    err = get("stderr")
    where = f"{get('argv') if isinstance(result, dict) else result.args}"
    assert code == rc, f"{where}: expected exit code {rc}, got {code}; stderr:\n{err[-2000:]}"
    lines = [line for line in err.strip("\n").splitlines() if not line.startswith(INFO_LINES)]
    assert len(lines) == 1, f"{where}: expected a one-line error, got {len(lines)} lines:\n{err[-2000:]}"
    line = lines[0]
    assert line.startswith(prefix) and "error" in line, f"{where}: expected '{prefix}...: error: ...', got {line!r}"
    assert "Traceback" not in err, f"{where}: a traceback reached the user: {err[-2000:]}"
    for text in must_contain:
        assert text in line, f"{where}: expected {text!r} in the error line {line!r}"
    return line


# --------------------------------------------------------------------------- files on disk
def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file and folder under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def leftover_temp_files(root: Path) -> list[str]:
    """Temporary files of an atomic write (``.NAME.XXXX.tmp``) under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".tmp"))
