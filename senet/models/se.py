"""Squeeze-and-Excitation blocks.

Hu, Shen, Sun, "Squeeze-and-Excitation Networks" (arXiv 1709.01507):

    z = mean over H, W of u              squeeze: one number per channel
    s = sigmoid(W2 relu(W1 z))           excitation, W1: C/r x C, W2: C x C/r
    out = s * u                          scale, channel by channel

The sigmoid is its own submodule, ``block.gate``: a forward hook on it reads
the gate ``s`` (and a hook that returns a tensor replaces it), which is how
:mod:`senet.models.gates` captures and intervenes without touching the model.

Networks do not name an SE class: their blocks take an *attention layer
factory* ``attn_layer(channels) -> nn.Module`` (timm's ``attn_layer`` idea),
so the paper's block, the seed's block and future variants are factories
(:func:`paper_se`, :func:`seed_se`) and "no SE" is ``attn_layer=None``.

``SeedSEBlock`` reproduces the SE block of the seed blog post, which computes
the pooled tensor and then discards it (``w = F.adaptive_avg_pool2d(x, 1);
w = self.fc(x)``), so its gate is computed per pixel: the paper's "NoSqueeze"
ablation (Table 16) plus a learned additive bias.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SEBlock", "SeedSEBlock", "check_reduction", "positive_int", "paper_se", "seed_se", "AttentionFactory",
           "ATTENTION_LAYERS", "SQUEEZES", "EXCITATIONS", "GATE_RANGES"]

AttentionFactory = Callable[[int], nn.Module]
SQUEEZES = ("avg", "max", "none")
EXCITATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
GATE_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, float("inf"))}


def check_reduction(reduction: object) -> int:
    """Return ``reduction`` if it is a positive integer, else raise ValueError."""
    return positive_int("reduction", reduction)


def positive_int(what: str, value: object, maximum: int | None = None) -> int:
    """``value`` if it is an int from 1 to ``maximum``; otherwise a one-line ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r:.40}")
    if maximum is not None and value > maximum:  # refuse before anything of that size is allocated
        raise ValueError(f"{what} must be at most {maximum:,}, got {value:,}")
    return value


class SEBlock(nn.Module):
    """The paper's SE block: global average pool, FC-ReLU-FC (no bias), sigmoid, scale.

    Args:
        channels: number of channels C of the input.
        reduction: ratio r; the hidden width is ``max(1, C // r)``.
        hidden: explicit hidden width, overriding ``reduction``.
        squeeze: ``avg`` (the paper's), ``max`` (its Table 11 ablation), or ``none``: no pooling, the FCs run on
            every pixel, a per-pixel gate (the paper's NoSqueeze, Table 16).
        excitation: the gate's nonlinearity: ``sigmoid`` (the paper's; gates in 0..1), ``tanh`` (-1..1) or ``relu``
            (0 and up), its Table 12.
    """

    def __init__(self, channels: int, reduction: int = 16, hidden: int | None = None, squeeze: str = "avg",
                 excitation: str = "sigmoid") -> None:
        super().__init__()
        self.channels = positive_int("channels", channels)
        self.reduction = check_reduction(reduction)
        self.hidden = positive_int("hidden", hidden) if hidden is not None else max(1, channels // reduction)
        if squeeze not in SQUEEZES:
            raise ValueError(f"squeeze must be one of {', '.join(SQUEEZES)}, got {squeeze!r}")
        if excitation not in EXCITATIONS:
            raise ValueError(f"excitation must be one of {', '.join(EXCITATIONS)}, got {excitation!r}")
        self.squeeze, self.excitation = squeeze, excitation
        self.fc1 = nn.Linear(channels, self.hidden, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(self.hidden, channels, bias=False)
        self.gate = EXCITATIONS[excitation]()

    @property
    def gate_range(self) -> tuple[float, float]:
        """The values the gate can take: (0, 1) for a sigmoid, (-1, 1) for tanh, (0, inf) for ReLU."""
        return GATE_RANGES[self.excitation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.squeeze == "none":  # the FCs as 1x1 convolutions on every pixel
            s = self.gate(self.fc2(self.relu(self.fc1(x.permute(0, 2, 3, 1)))).permute(0, 3, 1, 2))
            return x * s  # the gate is (B, C, H, W), as hooks and overrides expect
        z = x.mean(dim=(2, 3)) if self.squeeze == "avg" else x.amax(dim=(2, 3))
        s = self.gate(self.fc2(self.relu(self.fc1(z))))
        return x * s[:, :, None, None]


class SeedSEBlock(nn.Module):
    """The seed blog post's SE variant: 1x1 convs C -> C/r -> 2C, output ``x * sigmoid(w) + b``.

    With ``squeeze=False`` (the seed as published) the convs run on every pixel
    of ``x``: the pooled tensor is thrown away, so the gate ``w`` has shape
    (B, C, H, W) and depends on spatial layout. ``squeeze=True`` applies them to
    the pooled tensor, as the seed intended.
    """

    def __init__(self, channels: int, reduction: int = 16, squeeze: bool = False) -> None:
        super().__init__()
        self.channels = positive_int("channels", channels)
        self.reduction = check_reduction(reduction)
        self.hidden = max(1, channels // reduction)
        self.squeeze = bool(squeeze)
        self.fc = nn.Sequential(
            nn.Conv2d(channels, self.hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(self.hidden, 2 * channels, kernel_size=1),
        )
        self.gate = nn.Sigmoid()

    gate_range = (0.0, 1.0)  # a sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.adaptive_avg_pool2d(x, 1) if self.squeeze else x
        w, b = self.fc(w).split(self.channels, dim=1)
        return x * self.gate(w) + b


ATTENTION_LAYERS = (SEBlock, SeedSEBlock)  # the modules whose ``gate`` the explorer reads


def paper_se(reduction: int = 16, squeeze: str = "avg", excitation: str = "sigmoid") -> AttentionFactory:
    """A factory of the paper's SE block at reduction ``reduction`` (and one of its ablations)."""
    check_reduction(reduction)
    if squeeze not in SQUEEZES:
        raise ValueError(f"se_squeeze must be one of {', '.join(SQUEEZES)}, got {squeeze!r}")
    if excitation not in EXCITATIONS:
        raise ValueError(f"se_excitation must be one of {', '.join(EXCITATIONS)}, got {excitation!r}")
    return partial(SEBlock, reduction=reduction, squeeze=squeeze, excitation=excitation)


def seed_se(reduction: int = 16, squeeze: bool = False) -> AttentionFactory:
    """A factory of the seed blog post's SE block (``squeeze=False``: as published, per pixel)."""
    return partial(SeedSEBlock, reduction=check_reduction(reduction), squeeze=squeeze)
