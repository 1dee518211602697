"""The airbench94 network (Keller Jordan, arXiv 2404.00498) with an optional attention layer per conv group.

Widths 64/256/256 (times ``width``), a frozen 2x2 patch-whitening stem, GELU, identity-initialised convs,
BatchNorm without a learned scale, logits scaled by 1/9. With ``attn_layer`` (an SE block) each of its
three conv groups ends in one. It is the project's accuracy-per-compute model on CIFAR-10.
"""
from __future__ import annotations

import torch
from torch import nn

from .se import AttentionFactory

__all__ = ["AirNet", "ConvGroup", "FrozenScaleBatchNorm", "dirac_conv"]


class FrozenScaleBatchNorm(nn.BatchNorm2d):
    """BatchNorm with its scale fixed at 1 (only the shift is learned), as in airbench."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, eps=1e-12)
        self.weight.requires_grad_(False)


def dirac_conv(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Conv2d:
    """A bias-free 'same' conv whose first ``in_channels`` filters start as the identity."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding="same", bias=False)
    nn.init.dirac_(conv.weight.data[: min(in_channels, out_channels)])
    return conv


class ConvGroup(nn.Module):
    """conv-maxpool-BN-GELU-conv-BN-GELU, then the attention layer (if any)."""

    def __init__(self, in_channels: int, out_channels: int, attn_layer: AttentionFactory | None = None) -> None:
        super().__init__()
        self.conv1 = dirac_conv(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = FrozenScaleBatchNorm(out_channels)
        self.conv2 = dirac_conv(out_channels, out_channels)
        self.norm2 = FrozenScaleBatchNorm(out_channels)
        self.activ = nn.GELU()
        self.se = attn_layer(out_channels) if attn_layer is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        x = self.activ(self.norm2(self.conv2(x)))
        return self.se(x) if self.se is not None else x


class AirNet(nn.Module):
    """The airbench94 network with an optional attention layer (one per conv group).

    ``whiten`` is a 2x2 conv whose weights are set once from training patches
    (:meth:`init_from_data`, called by the trainer) and then frozen.
    """

    def __init__(self, attn_layer: AttentionFactory | None = None, width: int = 1, num_classes: int = 10,
                 in_channels: int = 3, stages: str = "123") -> None:
        super().__init__()
        widths = (64 * width, 256 * width, 256 * width)
        whiten_width = 2 * in_channels * 2 * 2
        self.whiten = nn.Conv2d(in_channels, whiten_width, kernel_size=2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        self.activ = nn.GELU()
        self.stage1 = ConvGroup(whiten_width, widths[0], attn_layer if "1" in stages else None)
        self.stage2 = ConvGroup(widths[0], widths[1], attn_layer if "2" in stages else None)
        self.stage3 = ConvGroup(widths[1], widths[2], attn_layer if "3" in stages else None)
        self.pool = nn.MaxPool2d(3)
        self.fc = nn.Linear(widths[2], num_classes, bias=False)
        self.logit_scale = 1 / 9

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening stem from the 2x2 patches of normalised training images."""
        c, (h, w) = images.shape[1], self.whiten.weight.shape[2:]
        patches = images.float().unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c * h * w)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)
        filters = (eigenvectors / torch.sqrt(eigenvalues + eps)[:, None]).reshape(c * h * w, c, h, w)
        self.whiten.weight.copy_(torch.cat((filters, -filters)).to(self.whiten.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.whiten(x))
        x = self.stage3(self.stage2(self.stage1(x)))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x) * self.logit_scale
