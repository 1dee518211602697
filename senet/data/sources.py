"""Data sources: dataset specs, decoding once into in-memory uint8 tensors, and the on-disk cache.

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
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..files import atomic_torch_save
from .images import IMAGE_SIZE, ImageError, image_to_uint8, open_image

__all__ = ["DataError", "TensorDataset", "parse_spec", "load_source", "folder_root", "DEFAULT_DATA_DIR"]

log = logging.getLogger(__name__)
DEFAULT_DATA_DIR = os.environ.get("SENET_DATA_DIR", "./data")


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
        atomic_torch_save({"images": images, "labels": labels, "classes": classes}, cache_file)
    except OSError as exc:
        log.warning("could not write the data cache %s: %s", cache_file, exc)
    return TensorDataset(images, labels, classes, spec, part)
