"""Judging another library's ImageNet model (``torchvision:...``, ``timm:...``) on labelled photos of some of
its classes: ``folder:PATH`` data whose class folders are named after the model's classes (``PATH/train/goldfish/``,
``PATH/train/tabby/``; case, ``_`` and ``-`` do not matter).

The model is judged among the folder's classes: its 1,000 logits restricted to those ``k`` (:class:`ClassSubset`),
so accuracy, the confusion matrix and the per-class report are over the ``k`` classes, a ``k``-way choice. Each
image is decoded from its file at the model's input size with its weights' resize, crop and interpolation, not
at CIFAR's 32x32. The gates are those of the whole model (the subset only selects logits).
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ..checkpoint import Checkpoint
from ..data import DataError, ImageError, TensorDataset, input_pixels, load_split, open_image, parse_spec

__all__ = ["ClassSubset", "class_indices", "restrict_to", "external_split"]


class ClassSubset(nn.Module):
    """``model`` with its logits restricted to ``indices`` (in that order). The wrapped model is ``.module``, so
    :func:`senet.se_blocks` names its SE blocks as before."""

    def __init__(self, model: nn.Module, indices: list[int]) -> None:
        super().__init__()
        self.module = model
        self.register_buffer("indices", torch.as_tensor(indices, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x).index_select(1, self.indices)


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


def class_indices(model_classes: list[str], folder_classes: list[str], label: str = "the model") -> list[int]:
    """The position of each folder class among the model's classes, matched by name; DataError (one line)
    naming the folders that match none."""
    index: dict[str, int] = {}
    for i, c in enumerate(model_classes):
        index.setdefault(_key(c), i)
    unknown = [c for c in folder_classes if _key(c) not in index]
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise DataError(f"class folder(s) {shown}: not among the {len(model_classes):,} class names of {label} "
                        f"(e.g. {', '.join(repr(c) for c in (model_classes[281:284] or model_classes[:3]))}); name each class folder after one")
    return [index[_key(c)] for c in folder_classes]


def restrict_to(checkpoint: Checkpoint, folder_classes: list[str]) -> Checkpoint:
    """The checkpoint judged among ``folder_classes`` only: a :class:`ClassSubset` of its model, those classes."""
    indices = class_indices(list(checkpoint.classes), list(folder_classes), checkpoint.name)
    card = {**checkpoint.card, "class_subset": {"classes": list(folder_classes), "indices": indices,
                                                "of": len(checkpoint.classes)}}
    return Checkpoint(ClassSubset(checkpoint.model, indices).eval(), checkpoint.name, dict(checkpoint.options),
                      list(folder_classes), checkpoint.mean, checkpoint.std, checkpoint.input_size, card, checkpoint.path)


def external_split(checkpoint: Checkpoint, spec: str, split: str, data_dir: str | os.PathLike,
                   val_size: float = 0.1, split_seed: int = 0,
                   data: TensorDataset | None = None) -> tuple[Checkpoint, TensorDataset]:
    """The checkpoint restricted to the folder's classes, and the split's images decoded at its input size.

    ``split``: ``train``/``val`` (a class-stratified holdout of ``PATH/train``; the model was trained on none of
    them) or ``test`` (``PATH/test``). DataError for data other than ``folder:`` and for unknown class names.
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
    pixels = []
    for name in small.names or []:
        try:
            pixels.append(input_pixels(open_image(root / name), checkpoint))
        except ImageError as exc:
            raise DataError(str(exc)) from None
    _, h, w = checkpoint.input_size
    images = torch.stack(pixels) if pixels else torch.zeros((0, 3, h, w), dtype=torch.uint8)
    return restricted, TensorDataset(images, small.labels, list(small.classes), spec, split, small.indices,
                                     small.names)
