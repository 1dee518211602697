"""One way to run a model over images: batched, without gradient, optionally with flip test-time augmentation
(TTA), with gate overrides, capturing gates, and reporting progress.

Training validation, ``senet evaluate``, the gate ablation and the class profiles all call
:func:`run_over_split`, so a figure recorded during training and one recomputed later are the same
computation.

**Flip TTA has one meaning here:** the class probabilities of an image are the mean of the softmax
probabilities of the image and of its mirror image; the prediction is their argmax, and the TTA loss is
the negative log of the mean probability of the true class.
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

__all__ = ["SplitOutputs", "run_over_split", "predict", "to_probabilities", "view_probabilities"]


def to_probabilities(output: torch.Tensor) -> torch.Tensor:
    """Logits or log-probabilities (the seed's network outputs ``log_softmax``) -> probabilities."""
    return torch.softmax(output.float(), dim=1)


def view_probabilities(model: nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Class probabilities (B, K) of a normalised batch; with ``tta`` the mean over the image and its mirror."""
    probs = to_probabilities(model(x))
    if tta:
        probs = (probs + to_probabilities(model(x.flip(-1)))) / 2
    return probs


@torch.no_grad()
def predict(model: nn.Module, batch: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Class probabilities (B, K) on the CPU for a normalised batch, in eval mode (the mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        probs = view_probabilities(model, batch.to(device), tta)
    finally:
        model.train(was_training)
    return probs.cpu()


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
                   std: tuple[float, ...] | list[float], *, tta: bool = False, batch_size: int = 250,
                   positions: torch.Tensor | None = None, overrides: dict | None = None,
                   capture: bool = False, rank: int = 0, world_size: int = 1,
                   amp_dtype: torch.dtype | None = None,
                   progress: Callable[[int, int], None] | None = None) -> SplitOutputs:
    """Run ``model`` (in eval mode, restored afterwards) over ``data`` and return its outputs.

    ``positions`` picks images of the split (default: all, in order); under ``torchrun`` rank ``r`` of
    ``world_size`` takes the ``r``-th of ``world_size`` contiguous, near-equal slices of them, so per-rank
    sums add up to the whole. ``overrides`` replaces gates (see :func:`senet.gate_overrides`); ``capture``
    records each SE block's gate per image (of the unmirrored view). ``progress(done, total)`` is called
    after each batch. ``amp_dtype`` runs the forward passes under autocast (CUDA training).
    """
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
                    if tta:
                        out = (out + to_probabilities(model(x.flip(-1)))) / 2
                probs.append(out.float().cpu())
                if progress:
                    progress(start + len(idx), len(chosen))
    finally:
        model.train(was_training)
    k = len(data.classes)
    return SplitOutputs(torch.cat(probs) if probs else torch.zeros(0, k), data.labels[chosen], chosen,
                        {name: torch.cat(v) for name, v in gates.items()})
