"""Safe, atomic checkpoints that carry everything needed to rebuild and use a model.

A checkpoint is a ``torch.save`` of a plain dict (tensors, numbers, strings,
lists, dicts only), loaded back with ``weights_only=True`` so that it can
never run pickled code. Writes go to a temporary file in the same directory
followed by ``os.replace``, so a crash never leaves a half-written file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models import create_model

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "read_checkpoint", "FORMAT", "VERSION",
           "CIFAR_MEAN", "CIFAR_STD", "CIFAR10_CLASSES"]

FORMAT = "senet-checkpoint"
VERSION = 1
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message names the file and the reason."""


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- torch raises many types for bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = "it contains pickled objects that are not allowed (refused to run code on load)"
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({reason[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a senet checkpoint (no '{FORMAT}' format tag)")
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise CheckpointError(f"{path}: unsupported checkpoint version {version!r} (this senet reads up to {VERSION})")
    for key in ("model", "model_options", "state_dict", "classes", "mean", "std", "input_size"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint is missing '{key}'")
    return payload


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint; returns ``(model in eval mode, meta)``.

    ``meta`` is the checkpoint's metadata plus ``model``, ``model_options``,
    ``classes``, ``mean``, ``std``, ``input_size`` and ``path``.
    Any fault raises :class:`CheckpointError` with one line naming the file.
    """
    payload = read_checkpoint(path)
    try:
        model = create_model(payload["model"], **payload["model_options"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:240]
        raise CheckpointError(f"{path}: weights do not fit model {payload['model']!r} ({detail})") from None
    model.to(map_location).eval()
    meta = dict(payload.get("meta") or {})
    meta.update({k: payload[k] for k in ("model", "model_options", "classes", "mean", "std", "input_size")})
    meta["path"] = str(path)
    return model, meta
