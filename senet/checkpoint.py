"""Safe, atomic checkpoints that carry everything needed to rebuild and use a model.

A checkpoint is a ``torch.save`` of a plain dict (tensors, numbers, strings,
lists, dicts only), loaded back with ``weights_only=True`` so that it can
never run pickled code. Writes go to a temporary file in the same directory
followed by ``os.replace``, so a crash never leaves a half-written file.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .models import create_model

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "read_checkpoint", "export_checkpoint", "atomic_save",
           "remove_stale_temporaries", "FORMAT", "VERSION", "CIFAR_MEAN", "CIFAR_STD", "CIFAR10_CLASSES"]

FORMAT = "senet-checkpoint"
VERSION = 1
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message names the file and the reason."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace``.

    If anything fails (or the process is interrupted before the replace), the
    previous file at ``path`` is untouched and the temporary file is removed;
    the temporary file of a process killed mid-write (``kill -9``) is removed
    by the next successful write of ``path``.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_writer_tag()}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the file the caller asked for, not the temporary one
        raise OSError(exc.errno, f"cannot write {path} ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
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


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _writer_tag() -> str:
    """``PID-HOST`` in a temporary file's name: who wrote it, so that leftovers can be recognised."""
    return f"{os.getpid()}-{_host_tag()}"


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of earlier writes of ``path`` whose writer died (``kill -9`` mid-write).

    Only files written on this host by a process that no longer exists are
    removed; a write in progress elsewhere is left alone. Returns what was removed.
    """
    from .runs import pid_alive

    path = Path(path)
    removed = []
    host = _host_tag()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*-{host}.*.tmp"):
        pid_text = tmp.name[len(path.name) + 2:].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or pid_alive(int(pid_text)):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _plain(value: Any) -> Any:
    """Convert tuples and paths to lists and strings so ``weights_only`` loading accepts them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, model_name: str,
                    model_options: dict | None = None, classes: tuple[str, ...] | list[str] = CIFAR10_CLASSES,
                    mean: tuple[float, ...] = CIFAR_MEAN, std: tuple[float, ...] = CIFAR_STD,
                    input_size: tuple[int, int, int] = (3, 32, 32), extra_state: dict | None = None,
                    **meta: Any) -> None:
    """Write ``model`` and its metadata to ``path`` atomically.

    ``meta`` holds anything JSON-like (history, metrics, recipe, ...);
    ``extra_state`` holds training state with tensors (optimiser, scheduler),
    kept apart from ``meta`` so readers of the model card need not load it.
    """
    model = getattr(model, "module", model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_name,
        "model_options": _plain(model_options or {}),
        "classes": list(classes),
        "mean": list(mean),
        "std": list(std),
        "input_size": list(input_size),
        "meta": _plain(meta),
        "state_dict": state,
        "extra_state": extra_state or {},
    }
    atomic_save(payload, path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate the raw checkpoint dict, raising :class:`CheckpointError` on any fault."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- torch raises many types for bad files
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_load_failure(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a senet checkpoint (no '{FORMAT}' format tag)")
    version = payload.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version > VERSION or version < 1:
        raise CheckpointError(f"{path}: unsupported checkpoint version {version!r} (this senet reads up to {VERSION})")
    for key in ("model", "model_options", "state_dict", "classes", "mean", "std", "input_size"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint is missing '{key}'")
    _check_fields(path, payload)
    return payload


def _load_failure(exc: Exception) -> str:
    """A short, one-line reason from the many-line errors ``torch.load`` raises."""
    text = str(exc)
    match = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if match:
        return f"it contains a pickled {match.group(1)} object; refused, loading it could run code"
    if "Weights only load failed" in text:
        match = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        detail = match.group(1).strip() if match else "corrupt data"
        return f"not a valid torch file: {detail}"[:200]
    first = " ".join(text.split()).split(". ")[0]
    return (first or type(exc).__name__)[:200]


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_fields(path: Path, payload: dict) -> None:
    """Refuse metadata of the wrong type or shape, so that users of ``meta`` can rely on it."""
    def bad(key: str, expected: str) -> CheckpointError:
        return CheckpointError(f"{path}: bad '{key}' in checkpoint (expected {expected}, got {payload[key]!r:.80})")

    if not isinstance(payload["model"], str):
        raise bad("model", "a model name")
    if not isinstance(payload["model_options"], dict):
        raise bad("model_options", "a dict")
    if not isinstance(payload["state_dict"], dict):
        raise bad("state_dict", "a dict of tensors")
    classes = payload["classes"]
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise bad("classes", "a non-empty list of class names")
    size = payload["input_size"]
    if not isinstance(size, list) or len(size) != 3 or not all(
            isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in size):
        raise bad("input_size", "[channels, height, width]")
    for key in ("mean", "std"):
        v = payload[key]
        if not isinstance(v, list) or len(v) != size[0] or not all(_is_number(x) for x in v):
            raise bad(key, f"{size[0]} numbers, one per input channel")
    if not all(x > 0 for x in payload["std"]):
        raise bad("std", "positive numbers")
    if "meta" in payload and not isinstance(payload["meta"], dict):
        raise bad("meta", "a dict")


def _num_outputs(model: nn.Module) -> int | None:
    """The number of classes a model predicts: the width of its last linear layer."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint; returns ``(model in eval mode, meta)``.

    ``meta`` is the checkpoint's metadata plus ``model``, ``model_options``,
    ``classes``, ``mean``, ``std``, ``input_size`` and ``path``.
    Any fault raises :class:`CheckpointError` with one line naming the file.
    """
    payload = read_checkpoint(path)
    model = _model_from(payload, path)
    model.to(map_location).eval()
    meta = dict(payload.get("meta") or {})
    meta.update({k: payload[k] for k in ("model", "model_options", "classes", "mean", "std", "input_size")})
    meta["path"] = str(path)
    return model, meta


def _model_from(payload: dict, path: str | os.PathLike) -> nn.Module:
    """The model a validated checkpoint payload describes, with its weights; CheckpointError if they do not fit."""
    try:
        model = create_model(payload["model"], **payload["model_options"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:240]
        raise CheckpointError(f"{path}: weights do not fit model {payload['model']!r} ({detail})") from None
    outputs, n_classes = _num_outputs(model), len(payload["classes"])
    if outputs is not None and outputs != n_classes:
        raise CheckpointError(f"{path}: the model predicts {outputs} classes but the checkpoint names {n_classes}")
    return model


def export_checkpoint(source: str | os.PathLike, destination: str | os.PathLike, *, half: bool = False,
                      overwrite: bool = False,
                      measure: Callable[[Path, dict], dict] | None = None) -> dict:
    """Write a slim copy of ``source`` for shipping: no training state, optionally float16 weights.

    ``half`` stores floating-point tensors as float16 (half the size); :func:`load_checkpoint`
    casts them back into the float32 model. Refuses to overwrite ``source`` itself, an existing
    ``destination`` unless ``overwrite``, and a tensor that float16 cannot hold. ``measure(path,
    meta)`` is called on the finished copy (in a temporary file) and returns metadata to add; if
    it raises, ``destination`` is left as it was. Returns a summary: the sizes in bytes, the stored
    dtype, the largest absolute rounding error of any weight and the metadata ``measure`` added.
    """
    source, destination = Path(source), Path(destination)
    payload = read_checkpoint(source)
    _model_from(payload, source)  # the weights must fit their model before anything is written
    if destination.exists() and destination.resolve() == source.resolve():
        raise CheckpointError(f"{destination}: is the source checkpoint itself; export to another path")
    if destination.exists() and not overwrite:
        raise CheckpointError(f"{destination}: already exists (replace it with --force, or overwrite=True)")
    state, max_error = {}, 0.0
    for key, tensor in payload["state_dict"].items():
        if half and tensor.is_floating_point():
            stored = tensor.to(torch.float16)
            if not torch.isfinite(stored).all() and torch.isfinite(tensor).all():
                raise CheckpointError(f"{source}: weight {key!r} overflows float16 (largest |value| "
                                      f"{float(tensor.abs().max()):.3g}); export without half")
            max_error = max(max_error, float((stored.float() - tensor.float()).abs().max()) if tensor.numel() else 0.0)
            tensor = stored
        state[key] = tensor
    meta = dict(payload.get("meta") or {})
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in state.values() if t.is_floating_point()})
    meta["weights_dtype"] = "/".join(dtypes) or "none"
    earlier = meta.get("exported_from")  # an export of an export keeps the first source
    meta["exported_from"] = f"{earlier} (then {source})" if earlier else str(source)
    slim = {**payload, "state_dict": state, "extra_state": {}, "meta": _plain(meta)}
    destination.parent.mkdir(parents=True, exist_ok=True)
    added = {}
    if measure is not None:
        draft = destination.with_name(f".{destination.name}.{_writer_tag()}.measure.tmp")
        try:
            atomic_save(slim, draft)
            added = dict(measure(draft, dict(meta)) or {})
        finally:
            draft.unlink(missing_ok=True)
        slim["meta"] = _plain({**meta, **added})
    atomic_save(slim, destination)
    return {"source_bytes": source.stat().st_size, "bytes": destination.stat().st_size,
            "weights_dtype": meta["weights_dtype"], "max_abs_error": max_error, "added": added}
