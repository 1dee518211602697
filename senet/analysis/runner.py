"""One way to run a model over images: batched, without gradient, optionally with flip test-time augmentation
(TTA), with gate overrides, capturing gates, and reporting progress.

Training validation, ``senet evaluate``, the gate ablation and the class profiles all call
:func:`run_over_split`, so a figure recorded during training and one recomputed later are the same
computation.

**Test-time augmentation (TTA) has one meaning here:** the class probabilities of an image are a mean of
the softmax probabilities of several views of it; the prediction is their argmax, and the TTA loss is the
negative log of the mean probability of the true class. Level 1 (flip TTA, ``tta=True``): the image and its
mirror image, equally weighted. Level 2 (airbench's): half of that, plus a quarter for each of two one-pixel
translations (up-left and down-right, reflect-padded), each itself averaged with its mirror.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..data import TensorDataset, normalize
from ..models import capture_gates, gate_overrides

__all__ = ["SplitOutputs", "run_over_split", "predict", "to_probabilities", "view_probabilities", "PIXELS_PER_BATCH",
           "batch_for"]

PIXELS_PER_BATCH = 250 * 32 * 32  # a batch of images larger than CIFAR's holds at most this many pixels per channel


def to_probabilities(output: torch.Tensor) -> torch.Tensor:
    """Logits or log-probabilities (the seed's network outputs ``log_softmax``) -> probabilities."""
    return torch.softmax(output.float(), dim=1)


def _flip_pair(model: nn.Module, x: torch.Tensor, first: torch.Tensor | None = None) -> torch.Tensor:
    p = to_probabilities(model(x)) if first is None else first
    return (p + to_probabilities(model(x.flip(-1)))) / 2


def view_probabilities(model: nn.Module, x: torch.Tensor, tta: int | bool = 0,
                       first: torch.Tensor | None = None) -> torch.Tensor:
    """Class probabilities (B, K) of a normalised batch at TTA level ``tta`` (0, 1 or 2; True is 1).
    ``first``: the probabilities of the plain view, when the caller has them already."""
    level = int(tta)
    if level not in (0, 1, 2):
        raise ValueError(f"tta level must be 0, 1 or 2, got {tta!r}")
    if level == 0:
        return to_probabilities(model(x)) if first is None else first
    pair = _flip_pair(model, x, first)
    if level == 1:
        return pair
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[..., :h, :w], padded[..., 2:h + 2, 2:w + 2]]
    return 0.5 * pair + 0.25 * sum(_flip_pair(model, v.contiguous(memory_format=torch.channels_last))
                                   for v in shifted)


@torch.no_grad()
def predict(model: nn.Module, batch: torch.Tensor, tta: int | bool = 0) -> torch.Tensor:
    """Class probabilities (B, K) on the CPU for a normalised batch, in eval mode (the mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        probs = view_probabilities(model, batch.to(device), tta)
    finally:
        model.train(was_training)
    return probs.cpu()


def batch_for(batch_size: int, size: tuple[int, int] | torch.Size) -> int:
    """``batch_size`` for images of ``size`` (H, W): as it is up to 32x32; for photos capped by
    :data:`PIXELS_PER_BATCH` (at least 16 images), since a batch of CIFAR's size would take gigabytes."""
    pixels = int(size[0]) * int(size[1])
    return batch_size if pixels <= 32 * 32 else min(batch_size, max(16, PIXELS_PER_BATCH // pixels))


@dataclass
class SplitOutputs:
    """What :func:`run_over_split` returns for the images it ran: probabilities (N, K) float32, labels (N,),
    the images' positions in the split (N,), and each block's gates (N, C) when captured."""

    probs: torch.Tensor
    labels: torch.Tensor
    positions: torch.Tensor
    gates: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def preds(self) -> torch.Tensor:
        return self.probs.argmax(1)

    @property
    def correct(self) -> int:
        return int((self.preds == self.labels).sum())

    def loss_sum(self) -> float:
        """Summed negative log-probability of the true classes (cross-entropy; with TTA, of the mean probability)."""
        p = self.probs[torch.arange(len(self.labels)), self.labels].double()
        return float(-torch.log(p.clamp_min(1e-45)).sum())

    def numpy_probs(self) -> np.ndarray:
        return self.probs.numpy()


@torch.no_grad()
def run_over_split(model: nn.Module, data: TensorDataset, mean: tuple[float, ...] | list[float],
                   std: tuple[float, ...] | list[float], *, tta: int | bool = 0, batch_size: int = 250,
                   positions: torch.Tensor | None = None, overrides: dict | None = None,
                   capture: bool = False, rank: int = 0, world_size: int = 1,
                   amp_dtype: torch.dtype | None = None,
                   progress: Callable[[int, int], None] | None = None) -> SplitOutputs:
    """Run ``model`` (in eval mode, restored afterwards) over ``data`` and return its outputs.

    ``positions`` picks images of the split (default: all, in order); under ``torchrun`` rank ``r`` of
    ``world_size`` takes the ``r``-th of ``world_size`` contiguous, near-equal slices of them, so per-rank
    sums add up to the whole. ``overrides`` replaces gates (see :func:`senet.gate_overrides`); ``capture``
    records each SE block's gate per image (of the plain view). ``batch_size`` is capped
    for photos (:func:`batch_for`): 224x224 photos go 16 at a time. ``tta``: the level, see the module's docstring.
    ``progress(done, total)`` is called
    after each batch. ``amp_dtype`` runs the forward passes under autocast (CUDA training).
    """
    batch_size = batch_for(batch_size, data.images.shape[-2:])
    chosen = torch.arange(len(data)) if positions is None else torch.as_tensor(positions, dtype=torch.long)
    n = len(chosen)
    chosen = chosen[rank * n // world_size:(rank + 1) * n // world_size]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    probs, gates = [], {}
    overriding = gate_overrides(model, overrides) if overrides else contextlib.nullcontext()
    capturing = capture_gates(model) if capture else contextlib.nullcontext({})
    try:
        with overriding, capturing as captured:
            for start in range(0, len(chosen), batch_size):
                idx = chosen[start:start + batch_size]
                x = normalize(data.images[idx].to(device), mean, std).contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    out = to_probabilities(model(x))
                    for name, g in captured.items():
                        gates.setdefault(name, []).append(g)
                    out = view_probabilities(model, x, tta, first=out)
                probs.append(out.float().cpu())
                if progress:
                    progress(start + len(idx), len(chosen))
    finally:
        model.train(was_training)
    k = len(data.classes)
    return SplitOutputs(torch.cat(probs) if probs else torch.zeros(0, k), data.labels[chosen], chosen,
                        {name: torch.cat(v) for name, v in gates.items()})
