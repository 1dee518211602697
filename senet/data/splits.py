"""Splits of a source: the validation holdout (a fraction or a count), stratified and deterministic."""
from __future__ import annotations

import math
import os

import torch

from .sources import DEFAULT_DATA_DIR, SAMPLE_ONLY_VAL, DataError, TensorDataset, load_source, parse_spec

__all__ = ["SPLITS", "parse_val_size", "val_size_value", "resolve_val_size", "stratified_split", "load_split",
           "limit_split"]

SPLITS = ("train", "val", "test")


VAL_SIZE_RULE = "0 (no holdout: train on every training image), a fraction in (0, 1) or a whole count of images"


def val_size_value(value: object) -> int | float:
    """The one rule for a validation size: 0 (no holdout), a fraction in (0, 1), or a whole count of images.

    Returns the fraction as a float or the count as an int; raises ValueError naming ``val_size`` otherwise.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        if 0 < value < 1:
            return float(value)
        if value >= 0 and float(value).is_integer():
            return int(value)
    raise ValueError(f"val_size must be {VAL_SIZE_RULE}, got {value!r}")


def parse_val_size(text: str) -> int | float:
    """``--val-size`` text (``0.1`` or ``5000``) -> :func:`val_size_value`."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"val_size must be {VAL_SIZE_RULE}, got {text!r}") from None
    return val_size_value(number)


def resolve_val_size(val_size: int | float, n: int) -> int:
    """The number of validation images of ``n``, from a fraction or a count (:func:`val_size_value`)."""
    try:
        value = val_size_value(val_size)
    except ValueError:
        value = None
    if isinstance(value, float):
        return int(round(value * n))
    if isinstance(value, int) and value < n:
        return value
    raise DataError(f"val_size {val_size!r}: must be 0, a fraction in (0, 1) or a whole count from 1 to {n - 1}")


def stratified_split(labels: torch.Tensor, val_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic class-stratified (train_indices, val_indices), both sorted.

    Each class gives ``val_size * n_class / n`` images (largest remainders get
    the rounding), chosen by a permutation seeded with ``seed``. No class gives all its images: one that would
    (a class of one or two images) keeps one for training, and the next largest remainders give the rest.
    """
    n = len(labels)
    classes = torch.unique(labels)
    counts = torch.stack([(labels == c).sum() for c in classes]).double()
    quota = counts * val_size / n
    take = torch.minimum(quota.floor().long(), counts.long() - 1)
    order = torch.argsort(-(quota - take.double()), stable=True).tolist()  # largest remainders first
    while int(take.sum()) < val_size and bool((take < counts.long() - 1).any()):
        for k in order:
            if int(take.sum()) >= val_size:
                break
            if take[k] < counts[k] - 1:
                take[k] += 1
    g = torch.Generator().manual_seed(seed)
    val = []
    for c, k in zip(classes, take):
        idx = torch.nonzero(labels == c).flatten()
        val.append(idx[torch.randperm(len(idx), generator=g)[: int(k)]])
    val_idx = torch.sort(torch.cat(val)).values if val else torch.empty(0, dtype=torch.long)
    mask = torch.ones(n, dtype=torch.bool)
    mask[val_idx] = False
    return torch.nonzero(mask).flatten(), val_idx


def load_split(spec: str, split: str, data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
               val_size: int | float = 0.1, split_seed: int = 0,
               cache_dir: str | os.PathLike | None = None, download: bool = True) -> TensorDataset:
    """The ``train``, ``val`` or ``test`` split of a dataset spec, as tensors in memory.

    ``val`` is a deterministic class-stratified holdout of the training images
    (``val_size``: a fraction, default 0.1 = 5,000 of CIFAR-10's 50,000, or a
    count; 0 holds out nothing) chosen with ``split_seed``; ``train`` is the rest. The ``sample`` spec has only ``val``: its images
    already are the shipped checkpoints' held-out ones, so it is never split again (``val_size`` is ignored).
    ``download=False`` never downloads (see :func:`load_source`).
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    if parse_spec(spec)[0] == "sample":
        if split != "val":
            raise DataError(SAMPLE_ONLY_VAL)
        return load_source(spec, "val", data_dir, cache_dir, download)
    if split == "test":
        ds = load_source(spec, "test", data_dir, cache_dir, download)
        ds.indices = torch.arange(len(ds))
        return ds
    full = load_source(spec, "train", data_dir, cache_dir, download)
    if len(set(full.labels.tolist())) < 2:
        raise DataError(f"{spec}: only one class ({full.classes[0]}); a classifier needs at least two")
    k = resolve_val_size(val_size, len(full))
    if k == 0 and split == "val":
        raise DataError(f"{spec}: val_size 0 holds out no validation images (every training image is trained on); "
                        "use the test split", use_split="test")
    train_idx, val_idx = stratified_split(full.labels, k, split_seed)
    idx = train_idx if split == "train" else val_idx
    return TensorDataset(full.images[idx], full.labels[idx], full.classes, full.source, split, idx, _names_at(full.names, idx))


def limit_split(data: TensorDataset, limit: int, seed: int = 0) -> TensorDataset:
    """A deterministic, class-stratified subset of ``limit`` images of ``data`` (all of it if smaller).

    Used by ``--train-limit`` for short runs (smoke tests, integration tests);
    the validation split is unaffected.
    """
    if limit >= len(data):
        return data
    _, keep = stratified_split(data.labels, limit, seed)
    indices = data.indices[keep] if data.indices is not None else keep
    return TensorDataset(data.images[keep], data.labels[keep], data.classes, data.source, data.split, indices,
                         _names_at(data.names, keep))


def _names_at(names: list[str] | None, idx: torch.Tensor) -> list[str] | None:
    """The file names of the images at positions ``idx`` (None when the source records none)."""
    return None if names is None else [names[i] for i in idx.tolist()]
