"""Evaluation of a model on a whole split: predictions, confusion matrix, per-class metrics.

The confusion matrix follows scikit-learn: rows are the true classes, columns
the predicted ones. :func:`evaluate_checkpoint` caches predictions on disk,
keyed by the checkpoint file and its modification time and by the images' content
(their fingerprint, whatever path they are read from), so a second look costs a file read.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from ..checkpoint import Checkpoint, open_checkpoint
from ..data import DEFAULT_DATA_DIR, DataError, TensorDataset, fingerprint, load_split
from ..files import atomic_write
from ..models.external import is_external, source_version
from .imagenet import external_split
from .runner import run_over_split

__all__ = ["Evaluation", "evaluate", "evaluate_checkpoint", "stream_evaluation", "checkpoint_and_split",
           "checkpoint_split_options", "class_report", "has_cached_evaluation"]


@dataclass
class Evaluation:
    """Per-image predictions for a split, and the summary figures derived from them."""

    probs: np.ndarray            # (N, K) class probabilities
    labels: np.ndarray           # (N,) true class
    indices: np.ndarray          # (N,) position of each image in its split
    classes: list[str]
    tta: int | bool = False  # the TTA level (see senet.analysis.runner); True is 1
    split: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def preds(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(1)

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def accuracy(self) -> float:
        return float((self.preds == self.labels).mean()) if self.n else 0.0

    @property
    def confusion(self) -> np.ndarray:
        """(K, K) counts: rows true class, columns predicted class."""
        return confusion_matrix(self.labels, self.preds, labels=list(range(len(self.classes))))

    def report(self) -> dict:
        return class_report(self.labels, self.preds, self.classes)

    def to_json(self) -> dict:
        return {"accuracy": self.accuracy, "n": self.n, "classes": self.classes, "tta": self.tta,
                "split": self.split, "confusion_matrix": self.confusion.tolist(), **self.report(), **self.extra}


def class_report(labels: np.ndarray, preds: np.ndarray, classes: list[str]) -> dict:
    """Per-class precision / recall / F1 / support, and macro and micro averages."""
    k = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(labels, preds, labels=k, zero_division=0)
    macro = precision_recall_fscore_support(labels, preds, labels=k, average="macro", zero_division=0)
    micro = precision_recall_fscore_support(labels, preds, labels=k, average="micro", zero_division=0)
    return {
        "per_class": [{"class": c, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                       "support": int(s[i])} for i, c in enumerate(classes)],
        "macro": {"precision": float(macro[0]), "recall": float(macro[1]), "f1": float(macro[2])},
        "micro": {"precision": float(micro[0]), "recall": float(micro[1]), "f1": float(micro[2])},
    }


def evaluate(checkpoint: Checkpoint, data: TensorDataset, tta: int | bool = False, batch_size: int = 250,
             progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Probabilities for every image of ``data`` (optionally with flip TTA; see :mod:`senet.analysis.runner`)."""
    out = run_over_split(checkpoint.model, data, checkpoint.mean, checkpoint.std, tta=tta, batch_size=batch_size,
                         progress=progress)
    return Evaluation(out.numpy_probs(), data.labels.numpy(), np.arange(len(data)), list(data.classes), tta,
                      data.split)


def checkpoint_split_options(card: dict) -> tuple[float, int]:
    """The validation size and split seed a checkpoint was trained with (defaults for others); ``card``: its
    recorded metadata (``Checkpoint.card`` or ``load_checkpoint``'s meta)."""
    config = card.get("config") or {}
    return config.get("val_size", 0.1), int(card.get("split_seed", config.get("split_seed", 0)))


def _cache_key(path: Path, tta: int | bool, data: TensorDataset) -> str:
    """The predictions' cache name: the checkpoint file (its path, size and modification time; another library's
    model by name and version), the TTA level, and the images by their content (:func:`fingerprint`), so the same
    images under another path or spelling of the data source hit the same cache."""
    if is_external(path):  # another library's model, by name: its weights change with the library's version
        stamp = f"{path}|{source_version(str(path))}"
    else:
        st = path.stat()
        stamp = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    level = "True" if int(tta) == 1 else str(int(tta))  # True and 1 are one level
    return hashlib.sha256(f"{stamp}|{level}|{fingerprint(data)}".encode()).hexdigest()[:20]


def checkpoint_and_split(checkpoint: str | os.PathLike, spec: str, split: str = "val",
                         data_dir: str | os.PathLike = DEFAULT_DATA_DIR, loaded: Checkpoint | None = None,
                         data: TensorDataset | None = None) -> tuple[Checkpoint, TensorDataset]:
    """A checkpoint and the split of ``spec`` it is judged on: for ``val``, the checkpoint's own held-out
    images (its recorded ``val_size`` and ``split_seed``). Either may be passed in, already loaded.

    Raises :class:`senet.CheckpointError` or :class:`DataError` (also when the classes differ), one line each.
    """
    path = Path(checkpoint)
    ckpt = loaded or open_checkpoint(path)
    val_size, split_seed = checkpoint_split_options(ckpt.card)
    if ckpt.card.get("external") and not ckpt.card.get("class_subset"):  # an ImageNet model: among folder classes
        return external_split(ckpt, spec, split, data_dir, val_size, split_seed, data)
    data = data if data is not None else load_split(spec, split, data_dir, val_size, split_seed)
    trained_on = list(ckpt.classes or [])
    if trained_on and trained_on != list(data.classes):
        raise DataError(f"{spec}: its classes {list(data.classes)} differ from the {len(trained_on)} classes "
                        f"{path.name} was trained on {trained_on}")
    return ckpt, data


def evaluate_checkpoint(checkpoint: str | os.PathLike, spec: str, split: str = "val",
                        data_dir: str | os.PathLike = DEFAULT_DATA_DIR, tta: int | bool = False,
                        cache_dir: str | os.PathLike | None = None,
                        progress: Callable[[int, int], None] | None = None,
                        loaded: Checkpoint | None = None, data: TensorDataset | None = None) -> Evaluation:
    """Evaluate a checkpoint file on a split of ``spec``; results are cached under ``cache_dir``.

    The validation split is the one the checkpoint was trained with (its
    recorded ``val_size`` and ``split_seed``). ``loaded`` and ``data``: the checkpoint and that split, already
    loaded by the caller.
    """
    result = None
    for result in stream_evaluation(checkpoint, spec, split, data_dir, tta, cache_dir, progress, loaded, data):
        pass
    return result


def stream_evaluation(checkpoint: str | os.PathLike, spec: str, split: str = "val",
                      data_dir: str | os.PathLike = DEFAULT_DATA_DIR, tta: int | bool = False,
                      cache_dir: str | os.PathLike | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      loaded: Checkpoint | None = None, data: TensorDataset | None = None,
                      chunk: int = 1000) -> Iterator[Evaluation]:
    """:func:`evaluate_checkpoint` as it goes: an :class:`Evaluation` of the images done so far after every
    ``chunk`` images, the last one whole. Each finished chunk is cached on disk at once, so an evaluation that is
    interrupted (a dashboard rerun) continues where it stopped; the whole split's cache replaces the chunks."""
    path = Path(checkpoint)
    ckpt, data = checkpoint_and_split(path, spec, split, data_dir, loaded, data)
    cache_dir = _cache_dir(data_dir, cache_dir)
    key = _cache_key(path, tta, data)
    cache_file = cache_dir / f"{key}.npz"
    whole = _read_probs(cache_file)
    if whole is not None:
        yield Evaluation(whole, data.labels.numpy(), np.arange(len(data)), list(data.classes), tta, split)
        return
    parts, n = [], len(data)
    for start in range(0, n, chunk):
        part_file = cache_dir / f"{key}.part{start:08d}-{min(start + chunk, n):08d}.npz"  # its images, any chunk size
        probs = _read_probs(part_file)
        if probs is None:
            out = run_over_split(ckpt.model, data, ckpt.mean, ckpt.std, tta=tta,
                                 positions=torch.arange(start, min(start + chunk, n)),
                                 progress=(lambda d, _, s=start: progress(s + d, n)) if progress else None)
            probs = out.numpy_probs()
            _write_probs(part_file, probs)
        elif progress:
            progress(start + len(probs), n)
        parts.append(probs)
        done = np.concatenate(parts)
        yield Evaluation(done, data.labels.numpy()[:len(done)], np.arange(len(done)), list(data.classes), tta, split)
    _write_probs(cache_file, np.concatenate(parts) if parts else np.zeros((0, len(data.classes)), np.float32))
    for part in cache_dir.glob(f"{key}.part*.npz"):
        part.unlink(missing_ok=True)


def _cache_dir(data_dir: str | os.PathLike, cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir) if cache_dir else Path(data_dir) / ".senet-cache" / "predictions"


def has_cached_evaluation(checkpoint: str | os.PathLike, spec: str, split: str, data: TensorDataset,
                          data_dir: str | os.PathLike = DEFAULT_DATA_DIR, tta: int | bool = False,
                          cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether :func:`evaluate_checkpoint` (e.g. an earlier ``senet evaluate``) left this whole split's
    predictions in the cache, so that evaluating it again only reads a file; loads no model."""
    try:
        key = _cache_key(Path(checkpoint), tta, data)
    except OSError:
        return False
    return (_cache_dir(data_dir, cache_dir) / f"{key}.npz").is_file()


def _read_probs(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            return z["probs"]
    except (OSError, ValueError, KeyError):
        return None


def _write_probs(path: Path, probs: np.ndarray) -> None:
    """Cache predictions (atomically; a disk that refuses only costs the cache)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, probs=probs)
        atomic_write(path, lambda f: f.write(buffer.getvalue()))
    except OSError:
        pass
