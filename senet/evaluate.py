"""Evaluation of a model on a whole split: predictions, confusion matrix, per-class metrics.

The confusion matrix follows scikit-learn: rows are the true classes, columns
the predicted ones. :func:`evaluate_checkpoint` caches predictions on disk,
keyed by the checkpoint's content and modification time, the data source and
the split, so a second look costs a file read.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from .checkpoint import load_checkpoint
from .data import DEFAULT_DATA_DIR, DataError, TensorDataset, eval_batches, load_split
from .inference import to_probabilities

__all__ = ["Evaluation", "evaluate", "evaluate_checkpoint", "class_report"]


@dataclass
class Evaluation:
    """Per-image predictions for a split, and the summary figures derived from them."""

    probs: np.ndarray            # (N, K) class probabilities
    labels: np.ndarray           # (N,) true class
    indices: np.ndarray          # (N,) position of each image in its split
    classes: list[str]
    tta: bool = False
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


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: TensorDataset, meta: dict, tta: bool = False, batch_size: int = 250,
             progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Probabilities for every image of ``data`` (optionally with flip TTA), in batches."""
    model.eval().to(memory_format=torch.channels_last)
    device = next(model.parameters()).device
    probs = []
    done = 0
    for x, _, _ in eval_batches(data, batch_size, meta["mean"], meta["std"], device=device):
        x = x.contiguous(memory_format=torch.channels_last)
        p = to_probabilities(model(x))
        if tta:
            p = (p + to_probabilities(model(x.flip(-1)))) / 2
        probs.append(p.cpu())
        done += len(x)
        if progress:
            progress(done, len(data))
    out = torch.cat(probs).numpy() if probs else np.zeros((0, len(data.classes)), dtype=np.float32)
    return Evaluation(out, data.labels.numpy(), np.arange(len(data)), list(data.classes), tta, data.split)


def checkpoint_split_options(meta: dict) -> tuple[float, int]:
    """The validation size and split seed a checkpoint was trained with (defaults for others)."""
    config = meta.get("config") or {}
    return config.get("val_size", 0.1), int(meta.get("split_seed", config.get("split_seed", 0)))


def _cache_key(path: Path, spec: str, split: str, tta: bool, data: TensorDataset) -> str:
    st = path.stat()
    digest = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{spec}|{split}|{tta}|{len(data)}".encode())
    digest.update(data.labels.numpy().tobytes())
    return digest.hexdigest()[:20]


def checkpoint_and_split(checkpoint: str | os.PathLike, spec: str, split: str = "val",
                         data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
                         model_and_meta: tuple[torch.nn.Module, dict] | None = None,
                         data: TensorDataset | None = None) -> tuple[torch.nn.Module, dict, TensorDataset]:
    """A checkpoint and the split of ``spec`` it is judged on: for ``val``, the checkpoint's own held-out
    images (its recorded ``val_size`` and ``split_seed``). Either may be passed in, already loaded.

    Raises :class:`senet.CheckpointError` or :class:`DataError` (also when the classes differ), one line each.
    """
    path = Path(checkpoint)
    model, meta = model_and_meta or load_checkpoint(path)
    val_size, split_seed = checkpoint_split_options(meta)
    data = data if data is not None else load_split(spec, split, data_dir, val_size, split_seed)
    trained_on = list(meta.get("classes") or [])
    if trained_on and trained_on != list(data.classes):
        raise DataError(f"{spec}: its classes {list(data.classes)} differ from the {len(trained_on)} classes "
                        f"{path.name} was trained on {trained_on}")
    return model, meta, data


def evaluate_checkpoint(checkpoint: str | os.PathLike, spec: str, split: str = "val",
                        data_dir: str | os.PathLike = DEFAULT_DATA_DIR, tta: bool = False,
                        cache_dir: str | os.PathLike | None = None,
                        progress: Callable[[int, int], None] | None = None,
                        model_and_meta: tuple[torch.nn.Module, dict] | None = None,
                        data: TensorDataset | None = None) -> Evaluation:
    """Evaluate a checkpoint file on a split of ``spec``; results are cached under ``cache_dir``.

    The validation split is the one the checkpoint was trained with (its
    recorded ``val_size`` and ``split_seed``). ``data``: that split, already loaded by the caller.
    """
    path = Path(checkpoint)
    model, meta, data = checkpoint_and_split(path, spec, split, data_dir, model_and_meta, data)
    cache_dir = Path(cache_dir) if cache_dir else Path(data_dir) / ".senet-cache" / "predictions"
    cache_file = cache_dir / f"{_cache_key(path, spec, split, tta, data)}.npz"
    if cache_file.is_file():
        try:
            with np.load(cache_file) as z:
                return Evaluation(z["probs"], z["labels"], z["indices"], list(data.classes), tta, split)
        except (OSError, ValueError, KeyError):
            pass
    result = evaluate(model, data, meta, tta=tta, progress=progress)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, probs=result.probs, labels=result.labels, indices=result.indices)
        os.replace(tmp, cache_file)
    except OSError:
        pass
    return result
