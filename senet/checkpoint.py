"""Safe, atomic checkpoints that carry everything needed to rebuild and use a model.

A checkpoint is a ``torch.save`` of a plain dict (tensors, numbers, strings,
lists, dicts only), loaded back with ``weights_only=True`` so that it can
never run pickled code. Writes go through :func:`senet.files.atomic_write`, so
a crash never leaves a half-written file. :func:`open_checkpoint` returns a
typed :class:`Checkpoint` (model, classes, normalisation, input size, card),
which the analyses take; :func:`load_checkpoint` returns ``(model, meta)``.
"""
from __future__ import annotations

import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .data.images import CIFAR10_CLASSES, CIFAR_MEAN, CIFAR_STD
from .records import CARD, RECORDED_CONFIG, RecordError, check_record
from .files import atomic_torch_save, check_replaceable, writer_tag
from .models import create_model
from .models.external import ExternalModelError, is_external, load_external

__all__ = ["Checkpoint", "CheckpointError", "open_checkpoint", "save_checkpoint", "load_checkpoint",
           "load_external_model", "read_checkpoint", "export_checkpoint", "FORMAT", "VERSION"]

FORMAT = "senet-checkpoint"
VERSION = 1
MAX_INPUT_SIDE = 1024  # a recorded input height or width above this is refused (a forward pass is run at it)
MIN_INPUT_SIDE = 8
MAX_INFLATED_BYTES = 64 * 2**20  # torch.save stores tensors uncompressed; a compressed entry may inflate to this


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message names the file and the reason."""


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
    atomic_torch_save(payload, path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate the raw checkpoint dict, raising :class:`CheckpointError` on any fault."""
    if "\x00" in os.fspath(path):
        raise CheckpointError(f"{os.fspath(path)[:120]!r}: contains a NUL byte, which no path can hold")
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    _check_inflated_size(path)
    kind = _file_kind(path)
    if kind:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({kind})")
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


def _check_inflated_size(path: Path) -> None:
    """Refuse a zip checkpoint whose compressed entries would inflate beyond :data:`MAX_INFLATED_BYTES` (a
    deflate bomb: a few MB on disk, GBs in memory). ``torch.save`` never compresses, so real files pass."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            inflated = sum(i.file_size for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not a zip (the legacy format, or junk that torch.load refuses in its own words)
    if inflated > MAX_INFLATED_BYTES:
        raise CheckpointError(f"{path}: compressed entries would inflate to {inflated / 2**20:,.0f} MiB (at most "
                              f"{MAX_INFLATED_BYTES // 2**20} MiB; torch.save does not compress): refused")


def _file_kind(path: Path) -> str | None:
    """What a file is when it is plainly not a PyTorch file (text, a zip archive without PyTorch's records, an
    image...), judged by its first bytes; None for a file that may be one (a zip archive with a ``data.pkl``, or
    a pickle), left to ``torch.load``."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or type(exc).__name__}"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return "a damaged or truncated zip archive"
        if any(n.endswith("data.pkl") for n in names):
            return None
        return "a NumPy .npz archive" if names and all(n.endswith(".npy") for n in names) else "a zip archive"
    if head[:1] == b"\x80":  # a pickle (PyTorch's legacy format)
        return None
    for signature, what in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                            (b"\x1f\x8b", "a gzip file"), (b"\x93NUMPY", "a NumPy .npy file")):
        if head.startswith(signature):
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.strip() and all(c.isprintable() or c.isspace() for c in text):
        first = " ".join(text.split())[:30]
        return f"a text file beginning {first!r}"
    return "a file of another kind"


def _load_failure(exc: Exception) -> str:
    """A short, one-line reason from the many-line errors ``torch.load`` raises for a file that looked like a
    PyTorch file (:func:`_file_kind` names the others): code refused, else damaged, with torch's words when
    they say more than an internal check ("index out of range", "EOFError", "enforce fail ...")."""
    text = str(exc)
    match = re.search(r"unsupported(?: global:)? GLOBAL (\S+)", text, re.IGNORECASE)
    if match:
        return f"it contains a pickled {match.group(1)} object; refused, loading it could run code"
    match = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    first = " ".join((match.group(1) if match else text).split()).split(". ")[0]
    internal = len(first) < 25 or any(w in first for w in ("enforce fail", "hasRecord", "Unsupported operand"))
    return "a damaged or truncated PyTorch file" + ("" if internal else f": {first[:160]}")


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
    if not all(c.isprintable() and 0 < len(c) <= 200 for c in classes):  # no ANSI escapes, newlines, NULs
        raise bad("classes", "printable names of 1 to 200 characters, without control characters")
    size = payload["input_size"]
    if not isinstance(size, list) or len(size) != 3 or not all(
            isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in size):
        raise bad("input_size", "[channels, height, width]")
    channels = payload["model_options"].get("in_channels", 3)
    if size[0] != channels:
        raise bad("input_size", f"{channels} channels first, as the model takes")
    if not all(MIN_INPUT_SIDE <= x <= MAX_INPUT_SIDE for x in size[1:]):
        raise bad("input_size", f"a height and width from {MIN_INPUT_SIDE} to {MAX_INPUT_SIDE}")
    for key in ("mean", "std"):
        v = payload[key]
        if not isinstance(v, list) or len(v) != size[0] or not all(_is_number(x) and math.isfinite(x) for x in v):
            raise bad(key, f"{size[0]} finite numbers, one per input channel")
    if not all(x > 0 for x in payload["std"]):
        raise bad("std", "positive numbers")
    if "meta" in payload and not isinstance(payload["meta"], dict):
        raise bad("meta", "a dict")
    meta = payload.get("meta") or {}
    try:
        check_record(meta, CARD, path, "the checkpoint's card")
        if isinstance(meta.get("config"), dict):
            check_record(meta["config"], RECORDED_CONFIG, path, "the checkpoint's recorded config")
    except RecordError as exc:
        raise CheckpointError(str(exc)) from None


def _num_outputs(model: nn.Module) -> int | None:
    """The number of classes a model predicts: the width of its last linear layer."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode) and what the analyses need to feed it.

    ``card`` is the recorded metadata (recipe, history, accuracies, ...); :func:`load_checkpoint`'s ``meta`` is
    that dict plus the fields above.
    """

    model: nn.Module
    name: str
    options: dict
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int] = (3, 32, 32)
    card: dict = field(default_factory=dict)
    path: str = ""

    @classmethod
    def of(cls, model: nn.Module, name: str = "", classes: list[str] | tuple[str, ...] = CIFAR10_CLASSES,
           mean: tuple[float, ...] = CIFAR_MEAN, std: tuple[float, ...] = CIFAR_STD, **card: Any) -> "Checkpoint":
        """A checkpoint for a model in memory (tests, benchmarks, a model being trained)."""
        return cls(model, name, {}, list(classes), tuple(mean), tuple(std), card=card)

    @classmethod
    def from_meta(cls, model: nn.Module, meta: dict) -> "Checkpoint":
        """The typed form of ``load_checkpoint``'s ``(model, meta)``."""
        own = ("model", "model_options", "classes", "mean", "std", "input_size", "path")
        return cls(model, meta.get("model", ""), dict(meta.get("model_options") or {}), list(meta["classes"]),
                   tuple(meta.get("mean", CIFAR_MEAN)), tuple(meta.get("std", CIFAR_STD)),
                   tuple(meta.get("input_size", (3, 32, 32))), {k: v for k, v in meta.items() if k not in own},
                   str(meta.get("path", "")))


def open_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """:func:`load_checkpoint`, typed."""
    model, meta = load_checkpoint(path, map_location)
    return Checkpoint.from_meta(model, meta)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint; returns ``(model in eval mode, meta)``.

    ``meta`` is the checkpoint's metadata plus ``model``, ``model_options``,
    ``classes``, ``mean``, ``std``, ``input_size`` and ``path``.
    Any fault raises :class:`CheckpointError` with one line naming the file.
    ``path`` may also name another library's ImageNet model (``torchvision:mobilenet_v3_large``,
    ``timm:seresnet50``, ``...@random``; see :mod:`senet.models.external`), with its pretrained weights.
    """
    if is_external(path):
        return load_external_model(str(path), map_location)
    payload = read_checkpoint(path)
    model = _model_from(payload, path)
    model.to(map_location).eval()
    meta = dict(payload.get("meta") or {})
    meta.update({k: payload[k] for k in ("model", "model_options", "classes", "mean", "std", "input_size")})
    meta["path"] = str(path)
    return model, meta


def load_external_model(name: str, map_location: str | torch.device = "cpu",
                        fetch_weights: bool = True) -> tuple[nn.Module, dict]:
    """``load_checkpoint`` for a prefixed model name: the model and a meta dict of the same shape (``external``
    True, ``weights_note``, ``preprocessing``: the weights' resize and crop). CheckpointError in one line."""
    try:
        loaded = load_external(name, fetch_weights=fetch_weights)
    except ExternalModelError as exc:
        raise CheckpointError(str(exc)) from None
    loaded.model.to(map_location).eval()
    meta = {**loaded.card, "model": loaded.name, "model_options": {}, "classes": loaded.classes,
            "mean": list(loaded.mean), "std": list(loaded.std), "input_size": list(loaded.input_size), "path": name}
    return loaded.model, meta


def _model_from(payload: dict, path: str | os.PathLike) -> nn.Module:
    """The model a validated checkpoint payload describes, with its weights; CheckpointError if they do not fit."""
    try:
        with torch.device("meta"):  # shapes first, nothing allocated: a crafted size is refused before it costs
            skeleton = create_model(payload["model"], **payload["model_options"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    _check_shapes(skeleton, payload, path)
    _check_finite(payload["state_dict"], path)
    model = create_model(payload["model"], **payload["model_options"])
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


def _check_finite(state: dict, path: str | os.PathLike) -> None:
    """CheckpointError naming the first weight that holds NaN or an infinity (a diverged or damaged model)."""
    for key, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: weight {key!r} holds NaN or infinite values (a diverged or damaged "
                                  "model); refused")


def _check_shapes(skeleton: nn.Module, payload: dict, path: str | os.PathLike) -> None:
    """CheckpointError unless the stored weights have exactly the shapes of the recorded model's."""
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    stored = payload["state_dict"]
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    wrong = [k for k in expected if k in stored and tuple(getattr(stored[k], "shape", ())) != expected[k]]
    if missing or unexpected or wrong:
        parts = ([f"missing {', '.join(missing[:3])}"] if missing else []) + (
            [f"unexpected {', '.join(unexpected[:3])}"] if unexpected else []) + (
            [f"{wrong[0]} is {tuple(getattr(stored[wrong[0]], 'shape', ()))}, the model's is {expected[wrong[0]]}"]
            if wrong else [])
        raise CheckpointError(f"{path}: weights do not fit model {payload['model']!r} ({'; '.join(parts)})")


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
    try:
        check_replaceable(destination)
    except OSError as exc:
        raise CheckpointError(str(exc)) from None
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
        draft = destination.with_name(f".{destination.name}.{writer_tag()}.measure.tmp")
        try:
            atomic_torch_save(slim, draft)
            added = dict(measure(draft, dict(meta)) or {})
        finally:
            draft.unlink(missing_ok=True)
        slim["meta"] = _plain({**meta, **added})
    atomic_torch_save(slim, destination)
    return {"source_bytes": source.stat().st_size, "bytes": destination.stat().st_size,
            "weights_dtype": meta["weights_dtype"], "max_abs_error": max_error, "added": added}
