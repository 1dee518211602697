"""Judging another library's ImageNet model (``torchvision:...``, ``timm:...``) on labelled photos of some of
its classes: ``folder:PATH`` data whose class folders are named after the model's classes (``PATH/train/goldfish/``,
``PATH/train/tabby/``; case, ``_`` and ``-`` do not matter).

The model is judged among the folder's classes: its 1,000 logits restricted to those ``k`` (:class:`ClassSubset`),
so accuracy, the confusion matrix and the per-class report are over the ``k`` classes, a ``k``-way choice. Each
image is decoded from its file at the model's input size with its weights' resize, crop and interpolation, not
at CIFAR's 32x32. The gates are those of the whole model (the subset only selects logits).

A class folder is named after a class readably (``goldfish``, ``golden_retriever``) or by its WordNet id
(``n01443537``, as ImageNet's own folders are) when the model predicts ImageNet-1k's classes. A split holds at most
:data:`MAX_PHOTOS` photos: decoded at 224x224 they take 147 KiB each in memory (2,000: 287 MiB).
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..checkpoint import Checkpoint
from ..data import DataError, ImageError, TensorDataset, input_pixels, load_split, open_image, parse_spec
from ..data.sources import folder_root

__all__ = ["ClassSubset", "class_indices", "restrict_to", "external_split", "imagenet_wnids", "model_wnids",
           "MAX_PHOTOS", "photo_bytes", "subset_names", "folder_classes"]

MAX_PHOTOS = 2000  # photos of one split decoded at the model's input and held in memory
WNIDS_FILE = Path(__file__).resolve().parents[1] / "data" / "imagenet-1k-wnids.txt"  # ImageNet-1k's order


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """ImageNet-1k's 1,000 WordNet ids in its class order (``n01440764`` tench, ``n01443537`` goldfish, ...):
    the order of every ImageNet-1k head of torchvision and timm."""
    return tuple(WNIDS_FILE.read_text().split())


def model_wnids(classes: list[str], card: dict) -> tuple[str, ...] | None:
    """The WordNet id of each of a model's ``classes`` when it predicts ImageNet-1k's 1,000 classes (its
    ``card``, a checkpoint's metadata, says which weights' classes), else None."""
    dataset = str(card.get("weights_dataset") or "").lower().replace("_", "-")
    if len(classes) == 1000 and dataset in ("imagenet-1k", "imagenet"):
        return imagenet_wnids()
    return None


def photo_bytes(n: int, input_size: tuple[int, int, int]) -> int:
    """The memory ``n`` photos take decoded at ``input_size`` (uint8)."""
    c, h, w = input_size
    return n * c * h * w


class ClassSubset(nn.Module):
    """``model`` with its logits restricted to ``indices`` (in that order). The wrapped model is ``.module``, so
    :func:`senet.se_blocks` names its SE blocks as before."""

    def __init__(self, model: nn.Module, indices: list[int]) -> None:
        super().__init__()
        self.module = model
        self.register_buffer("indices", torch.as_tensor(indices, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x).index_select(1, self.indices)


_WNID = re.compile(r"n\d{8}")  # a WordNet noun id, as ImageNet names its class folders


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


def class_indices(model_classes: list[str], folder_classes: list[str], label: str = "the model",
                  wnids: tuple[str, ...] | None = None) -> list[int]:
    """The position of each folder class among the model's classes, matched by name, or by WordNet id when
    ``wnids`` gives each class's; DataError (one line) naming the folders that match none."""
    index: dict[str, int] = {}
    for i, c in enumerate(model_classes):
        index.setdefault(_key(c), i)
    for i, wnid in enumerate(wnids or ()):
        index.setdefault(wnid, i)
    unknown = [c for c in folder_classes if _key(c) not in index]
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        examples = ', '.join(repr(c) for c in (model_classes[281:284] or model_classes[:3]))
        ids = f" or WordNet ids ({wnids[1]!r}, ...)" if wnids else ""
        raise DataError(f"class folder(s) {shown}: not among the {len(model_classes):,} class names{ids} of {label} "
                        f"(e.g. {examples}); name each class folder after one")
    return [index[_key(c)] for c in folder_classes]


def restrict_to(checkpoint: Checkpoint, folder_classes: list[str]) -> Checkpoint:
    """The checkpoint judged among ``folder_classes`` only: a :class:`ClassSubset` of its model, those classes
    (as :func:`subset_names` names them)."""
    indices = class_indices(list(checkpoint.classes), list(folder_classes), checkpoint.name,
                            model_wnids(checkpoint.classes, checkpoint.card))
    names = subset_names(checkpoint, folder_classes, indices)
    card = {**checkpoint.card, "class_subset": {"classes": names, "folders": list(folder_classes),
                                                "indices": indices, "of": len(checkpoint.classes)}}
    return Checkpoint(ClassSubset(checkpoint.model, indices).eval(), checkpoint.name, dict(checkpoint.options),
                      names, checkpoint.mean, checkpoint.std, checkpoint.input_size, card, checkpoint.path)


def subset_names(checkpoint: Checkpoint, folder_classes: list[str], indices: list[int]) -> list[str]:
    """The folder's classes as pages and reports name them: a folder named by WordNet id as the model names the
    class (``n01443537`` -> ``goldfish``; the card's ``class_subset`` keeps the folders' names); a folder named
    readably as it is."""
    return [checkpoint.classes[i] if _WNID.fullmatch(c) else c for c, i in zip(folder_classes, indices)]


def folder_classes(spec: str, split: str) -> list[str]:
    """The class folders of ``spec``'s part holding ``split`` (``PATH/test`` for test, else ``PATH/train``), by
    name, without reading an image; DataError (one line) for a missing folder or part."""
    kind, root = parse_spec(spec)
    if kind != "folder":
        raise DataError(f"{spec}: not a folder of photos (folder:PATH)")
    part = folder_root(root, "test" if split == "test" else "train")
    names = sorted(d.name for d in part.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise DataError(f"{part}: no class subfolders (expected {part}/<class>/<image>)")
    return names


def external_split(checkpoint: Checkpoint, spec: str, split: str, data_dir: str | os.PathLike,
                   val_size: float = 0.1, split_seed: int = 0, data: TensorDataset | None = None,
                   progress: Callable[[int, int], None] | None = None) -> tuple[Checkpoint, TensorDataset]:
    """The checkpoint restricted to the folder's classes, and the split's images decoded at its input size
    (``progress(done, total)`` after each photo).

    ``split``: ``train``/``val`` (a class-stratified holdout of ``PATH/train``; the model was trained on none of
    them) or ``test`` (``PATH/test``). DataError for data other than ``folder:``, for unknown class names and for
    a split of more than :data:`MAX_PHOTOS` photos.
    """
    kind, root = parse_spec(spec)
    if kind != "folder":
        raise DataError(f"{spec}: {checkpoint.name} predicts {len(checkpoint.classes):,} ImageNet classes; judge it "
                        "on folder:PATH data whose class folders are named after some of them "
                        "(PATH/train/goldfish/, PATH/train/tabby/, ...)")
    small = load_split(spec, split, data_dir, val_size, split_seed)
    restricted = restrict_to(checkpoint, list(small.classes))
    if data is not None:
        return restricted, data
    names = small.names or []
    if len(names) > MAX_PHOTOS:
        _, h, w = checkpoint.input_size
        raise DataError(f"{spec}: its {split} split holds {len(names):,} photos; at most {MAX_PHOTOS:,} are decoded "
                        f"at {w}x{h} and held in memory ({photo_bytes(MAX_PHOTOS, checkpoint.input_size) / 2**20:,.0f}"
                        " MiB); use a folder with fewer photos per class")
    pixels = []
    for done, name in enumerate(names, 1):
        try:
            pixels.append(input_pixels(open_image(root / name), checkpoint))
        except ImageError as exc:
            raise DataError(str(exc)) from None
        if progress:
            progress(done, len(names))
    _, h, w = checkpoint.input_size
    images = torch.stack(pixels) if pixels else torch.zeros((0, 3, h, w), dtype=torch.uint8)
    return restricted, TensorDataset(images, small.labels, list(restricted.classes), spec, split, small.indices,
                                     small.names)
