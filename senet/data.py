"""Datasets as in-memory uint8 tensors, stratified splits, and batched augmentation.

A dataset spec is ``cifar10`` (torchvision's download, as the seed did) or
``folder:PATH`` (ImageFolder layout ``PATH/train/<class>/*`` with an optional
``PATH/test/<class>/*``). Each source is decoded once into a uint8 tensor
(N, 3, 32, 32) cached on disk, keyed by the source path and its modification
times. Augmentation (pad + random crop, horizontal flip) and normalisation run
on whole batches of tensors: no per-image PIL work in the training loop.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from .checkpoint import CIFAR_MEAN, CIFAR_STD, atomic_save
from .inference import ImageError, image_to_uint8, normalize, open_image

__all__ = ["DataError", "TensorDataset", "parse_spec", "load_split", "stratified_split", "limit_split", "Augment",
           "epoch_indices", "train_batches", "eval_batches", "DEFAULT_DATA_DIR", "SPLITS"]

log = logging.getLogger(__name__)
DEFAULT_DATA_DIR = os.environ.get("SENET_DATA_DIR", "./data")
SPLITS = ("train", "val", "test")
IMAGE_SIZE = (32, 32)


class DataError(ValueError):
    """A dataset that cannot be used; the message names it and says why, in one line."""


@dataclass
class TensorDataset:
    """Images as a uint8 tensor (N, 3, 32, 32), labels (N,) int64, and class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str = ""
    split: str = ""
    indices: torch.Tensor | None = None  # positions in the source's full train/test set

    def __len__(self) -> int:
        return len(self.labels)


# --------------------------------------------------------------------------- specs and sources
def parse_spec(spec: str) -> tuple[str, Path | None]:
    """``"cifar10"`` -> ("cifar10", None); ``"folder:PATH"`` -> ("folder", PATH)."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"dataset spec {spec!r}: expected 'cifar10' or 'folder:PATH'")
    spec = spec.strip()
    if spec == "cifar10":
        return "cifar10", None
    if spec.startswith("folder:") and len(spec) > len("folder:"):
        return "folder", Path(spec[len("folder:"):]).expanduser()
    raise DataError(f"unknown dataset {spec!r}: expected 'cifar10' or 'folder:PATH'")


def folder_root(path: Path, part: str) -> Path:
    """The class-folder root of ``part`` ('train' or 'test') in a folder dataset."""
    if not path.exists():
        raise DataError(f"folder:{path}: no such directory")
    if not path.is_dir():
        raise DataError(f"folder:{path}: not a directory")
    root = path / part
    if not root.is_dir():
        if part == "test":
            raise DataError(f"folder:{path}: has no test split (no {root}); use --split val")
        raise DataError(f"folder:{path}: no 'train' folder (expected {path}/train/<class>/<image>)")
    return root


def _class_dirs(root: Path) -> list[Path]:
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise DataError(f"{root}: no class subfolders (expected {root}/<class>/<image>)")
    return dirs


def _check_same_classes(path: Path) -> None:
    """A folder's test split must have exactly the train split's classes (labels are folder positions)."""
    train = [d.name for d in _class_dirs(folder_root(path, "train"))]
    test = [d.name for d in _class_dirs(folder_root(path, "test"))]
    if train != test:
        raise DataError(f"folder:{path}: test classes {test} differ from train classes {train}")


def _source_key(kind: str, root: Path) -> str:
    """A cache key from the source's path and the modification times of it and its folders."""
    parts = [kind, str(root.resolve()), str(root.stat().st_mtime_ns)]
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        parts.append(f"{d.name}:{d.stat().st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _decode_folder(root: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    classes, images, labels, skipped = [], [], [], 0
    for label, d in enumerate(_class_dirs(root)):
        classes.append(d.name)
        count = 0
        for f in sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")):
            try:
                images.append(image_to_uint8(open_image(f), IMAGE_SIZE))
            except ImageError:
                skipped += 1
                continue
            labels.append(label)
            count += 1
        if count == 0:
            raise DataError(f"{d}: class folder '{d.name}' has no readable images")
    if skipped:
        log.warning("%s: skipped %d file(s) that are not readable images", root, skipped)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes


def _decode_cifar10(data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    import torchvision

    try:
        ds = torchvision.datasets.CIFAR10(root=str(data_dir), train=train, download=True)
    except Exception as exc:  # noqa: BLE001 -- urllib, socket and checksum errors alike
        raise DataError(
            f"cifar10: could not download CIFAR-10 into {data_dir} ({type(exc).__name__}: {str(exc)[:100]}); "
            "offline? use --data folder:PATH with images in PATH/train/<class>/"
        ) from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(ds.targets, dtype=torch.int64), list(ds.classes)


def load_source(spec: str, part: str = "train", data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
                cache_dir: str | os.PathLike | None = None) -> TensorDataset:
    """All images of ``part`` ('train' or 'test') of a source, through the on-disk uint8 cache."""
    kind, path = parse_spec(spec)
    data_dir = Path(data_dir)
    if kind == "folder":
        root = folder_root(path, part)
        key_root = root
    else:
        key_root = data_dir / "cifar-10-batches-py"
    cache_dir = Path(cache_dir) if cache_dir else data_dir / ".senet-cache"
    cache_file = None
    if key_root.is_dir():
        cache_file = cache_dir / f"{kind}-{part}-{_source_key(kind, key_root)}.pt"
        if cache_file.is_file():
            try:
                c = torch.load(cache_file, weights_only=True)
                return TensorDataset(c["images"], c["labels"], list(c["classes"]), spec, part)
            except Exception:  # noqa: BLE001 -- a broken cache is rebuilt
                log.warning("%s: unreadable cache, decoding again", cache_file)
    if kind == "folder":
        if part == "test":
            _check_same_classes(path)
        images, labels, classes = _decode_folder(root)
    else:
        images, labels, classes = _decode_cifar10(data_dir, train=(part == "train"))
        cache_file = cache_dir / f"{kind}-{part}-{_source_key(kind, key_root)}.pt"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_save({"images": images, "labels": labels, "classes": classes}, cache_file)
    except OSError as exc:
        log.warning("could not write the data cache %s: %s", cache_file, exc)
    return TensorDataset(images, labels, classes, spec, part)


# --------------------------------------------------------------------------- splits
def resolve_val_size(val_size: int | float, n: int) -> int:
    """A validation size given as a count or as a fraction of ``n``."""
    if isinstance(val_size, float) and 0 < val_size < 1:
        return int(round(val_size * n))
    if (isinstance(val_size, (int, float)) and not isinstance(val_size, bool) and math.isfinite(val_size)
            and float(val_size).is_integer() and 1 <= val_size < n):
        return int(val_size)
    raise DataError(f"val_size {val_size!r}: must be a fraction in (0, 1) or a whole count from 1 to {n - 1}")


def stratified_split(labels: torch.Tensor, val_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic class-stratified (train_indices, val_indices), both sorted.

    Each class gives ``val_size * n_class / n`` images (largest remainders get
    the rounding), chosen by a permutation seeded with ``seed``.
    """
    n = len(labels)
    classes = torch.unique(labels)
    counts = torch.stack([(labels == c).sum() for c in classes]).double()
    quota = counts * val_size / n
    take = quota.floor().long()
    rest = val_size - int(take.sum())
    if rest > 0:
        order = torch.argsort(-(quota - take.double()), stable=True)[:rest]
        take[order] += 1
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
               cache_dir: str | os.PathLike | None = None) -> TensorDataset:
    """The ``train``, ``val`` or ``test`` split of a dataset spec, as tensors in memory.

    ``val`` is a deterministic class-stratified holdout of the training images
    (``val_size``: a fraction, default 0.1 = 5,000 of CIFAR-10's 50,000, or a
    count) chosen with ``split_seed``; ``train`` is the rest.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    if split == "test":
        ds = load_source(spec, "test", data_dir, cache_dir)
        ds.indices = torch.arange(len(ds))
        return ds
    full = load_source(spec, "train", data_dir, cache_dir)
    if len(set(full.labels.tolist())) < 2:
        raise DataError(f"{spec}: only one class ({full.classes[0]}); a classifier needs at least two")
    k = resolve_val_size(val_size, len(full))
    train_idx, val_idx = stratified_split(full.labels, k, split_seed)
    idx = train_idx if split == "train" else val_idx
    return TensorDataset(full.images[idx], full.labels[idx], full.classes, spec, split, idx)


def limit_split(data: TensorDataset, limit: int, seed: int = 0) -> TensorDataset:
    """A deterministic, class-stratified subset of ``limit`` images of ``data`` (all of it if smaller).

    Used by ``--train-limit`` for short runs (smoke tests, integration tests);
    the validation split is unaffected.
    """
    if limit >= len(data):
        return data
    _, keep = stratified_split(data.labels, limit, seed)
    indices = data.indices[keep] if data.indices is not None else keep
    return TensorDataset(data.images[keep], data.labels[keep], data.classes, data.source, data.split, indices)


# --------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class Augment:
    """Batched training augmentation: pad ``crop_pad`` pixels and crop back; horizontal flips; cutout.

    ``pad_mode``: 'zeros' (black, like torchvision's RandomCrop) or 'reflect'.
    ``flip``: 'random' (a coin per image per epoch), 'alternating' (a coin per
    image once, then every image flipped on odd epochs: airbench's derandomised
    flip) or 'none'.
    ``cutout``: side of a square, placed wholly inside the image at random, that
    is set to the dataset mean (0 after normalisation); 0 turns it off.
    """

    crop_pad: int = 4
    pad_mode: str = "zeros"
    flip: str = "random"
    cutout: int = 0


def epoch_indices(n: int, epoch: int, seed: int) -> torch.Tensor:
    """The deterministic order of the training set in one epoch."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def _crop(x: torch.Tensor, pad: int, mode: str, shifts: torch.Tensor) -> torch.Tensor:
    """Pad by ``pad`` and crop back to size at per-image offsets ``shifts`` (B, 2) in [0, 2*pad]."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (pad,) * 4, mode="constant" if mode == "zeros" else "reflect")
    rows = torch.empty(x.shape[0], x.shape[1], h, w + 2 * pad, dtype=x.dtype, device=x.device)
    for s in range(2 * pad + 1):
        m = shifts[:, 0] == s
        rows[m] = padded[m, :, s:s + h, :]
    out = torch.empty_like(x)
    for s in range(2 * pad + 1):
        m = shifts[:, 1] == s
        out[m] = rows[m, :, :, s:s + w]
    return out


def cutout_masks(corners: torch.Tensor, size: int, h: int, w: int) -> torch.Tensor:
    """(B, h, w) boolean masks, True inside the ``size`` square whose top-left corner is ``corners`` (B, 2)."""
    rows = torch.arange(h, device=corners.device).view(1, h)
    cols = torch.arange(w, device=corners.device).view(1, w)
    in_rows = (rows >= corners[:, :1]) & (rows < corners[:, :1] + size)
    in_cols = (cols >= corners[:, 1:]) & (cols < corners[:, 1:] + size)
    return in_rows[:, :, None] & in_cols[:, None, :]


def augment_batch(images: torch.Tensor, aug: Augment, flips: torch.Tensor, shifts: torch.Tensor,
                  mean: tuple[float, ...] = CIFAR_MEAN, std: tuple[float, ...] = CIFAR_STD,
                  corners: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 batch -> augmented, normalised float batch (pad in pixel space, then normalise).

    ``corners`` (B, 2) places the cutout squares when ``aug.cutout`` is set.
    """
    x = images.float() / 255.0
    if aug.crop_pad > 0:
        x = _crop(x, aug.crop_pad, aug.pad_mode, shifts.to(x.device))
    if aug.flip != "none":
        x = torch.where(flips.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    x = (x - m) / s
    if aug.cutout > 0:
        if corners is None:
            raise ValueError("augment_batch: cutout is on but no corners were given")
        x = x.masked_fill(cutout_masks(corners.to(x.device), aug.cutout, *x.shape[-2:])[:, None], 0.0)
    return x


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full global batches per epoch (the last partial batch is dropped, unless it is the only one)."""
    return max(1, n // batch_size)


def train_batches(data: TensorDataset, batch_size: int, epoch: int, seed: int, aug: Augment,
                  rank: int = 0, world_size: int = 1, start_step: int = 0,
                  device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(inputs, labels, indices)`` for one epoch, from step ``start_step`` on.

    ``batch_size`` is the global batch; rank ``r`` of ``world_size`` takes
    positions ``r::world_size`` of each global batch, so the ranks see
    disjoint shards that together cover the epoch. Everything random is drawn
    from generators seeded by (seed, epoch), so an epoch is reproducible and a
    resumed run continues exactly where it stopped.
    """
    n = len(data)
    order = epoch_indices(n, epoch, seed)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 500_009)
    shifts = torch.randint(0, 2 * aug.crop_pad + 1, (n, 2), generator=g)
    if aug.flip == "alternating":
        base = torch.rand(n, generator=torch.Generator().manual_seed(seed + 7)) < 0.5
        flips = base ^ bool(epoch % 2)
    else:
        flips = torch.rand(n, generator=g) < 0.5
    corners = None
    if aug.cutout > 0:  # its own generator, so runs without cutout draw exactly what they always drew
        h, w = data.images.shape[-2:]
        gc = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 900_001)
        corners = torch.stack((torch.randint(0, max(1, h - aug.cutout + 1), (n,), generator=gc),  # a square
                               torch.randint(0, max(1, w - aug.cutout + 1), (n,), generator=gc)), 1)  # > image: all
    bs = min(batch_size, n)
    for step in range(start_step, steps_per_epoch(n, bs)):
        idx = order[step * bs:(step + 1) * bs][rank::world_size]
        x = augment_batch(data.images[idx].to(device, non_blocking=True), aug, flips[idx], shifts[idx],
                          corners=None if corners is None else corners[idx])
        yield x, data.labels[idx].to(device, non_blocking=True), idx


def eval_batches(data: TensorDataset, batch_size: int = 1000, mean: tuple[float, ...] = CIFAR_MEAN,
                 std: tuple[float, ...] = CIFAR_STD, rank: int = 0, world_size: int = 1,
                 device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield normalised ``(inputs, labels, indices)`` in order.

    Rank ``r`` of ``world_size`` takes the ``r``-th of ``world_size`` contiguous,
    near-equal slices of the split (sizes differ by at most one image), so
    per-rank sums of correct predictions and counts add up to the whole split.
    """
    n = len(data)
    lo, hi = rank * n // world_size, (rank + 1) * n // world_size
    for start in range(lo, hi, batch_size):
        idx = torch.arange(start, min(start + batch_size, hi))
        yield normalize(data.images[idx].to(device), mean, std), data.labels[idx].to(device), idx
