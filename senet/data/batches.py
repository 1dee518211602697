"""Batches as tensors: batched training augmentation (pad + crop, flips, cutout) and evaluation batches.

Augmentation and normalisation run on whole batches of tensors: no per-image PIL work in the training loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from .images import CIFAR_MEAN, CIFAR_STD, normalize
from .sources import TensorDataset

__all__ = ["Augment", "epoch_indices", "augment_batch", "cutout_masks", "steps_per_epoch", "train_batches",
           "eval_batches"]


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
