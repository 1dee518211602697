"""The seed blog post's network: ``Network(in_channel=3, filters=128, blocks=10, num_classes=10)``.

A 3x3 conv stem, ``blocks - 1`` residual blocks of ``filters`` channels at full resolution (the ResNet
family's :class:`~senet.models.resnet.BasicBlock` with the seed's SE block injected), a 1x1 conv to 128,
global average pooling, a linear layer, and ``log_softmax`` output.

The seed's bug, reproduced on purpose: its SE block computes the pooled tensor and then applies its 1x1
convs to the unpooled input, so the gate is computed per pixel and never sees global context -- the
paper's "NoSqueeze" ablation (Table 16) plus a learned bias, not an SE block (see
:class:`senet.models.se.SeedSEBlock`). ``squeeze=True`` applies the convs to the pooled tensor, as the
seed intended.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import BasicBlock, check_common
from .se import positive_int, seed_se

__all__ = ["SeedNetwork"]

MAX_FILTERS = 4096  # bounds on a (recorded) seed network, checked before any layer is built
MAX_BLOCKS = 1000


class SeedNetwork(nn.Module):
    """The seed blog post's network, with its per-pixel SE variant in every residual block."""

    block_aliases = {"res_blocks": "stage1"}  # how the explorer names its SE blocks: stage1.block1, ...

    def __init__(self, in_channels: int = 3, filters: int = 128, blocks: int = 10, num_classes: int = 10,
                 reduction: int = 16, squeeze: bool = False) -> None:
        super().__init__()
        positive_int("filters", filters, MAX_FILTERS)
        positive_int("blocks", blocks, MAX_BLOCKS)
        check_common(True, reduction, 1, num_classes, in_channels, narrowest=filters)
        attn = seed_se(reduction, squeeze)
        self.conv = nn.Conv2d(in_channels, filters, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(filters)
        self.res_blocks = nn.Sequential(*[BasicBlock(filters, filters, 1, attn) for _ in range(blocks - 1)])
        self.out_conv = nn.Conv2d(filters, 128, 1, bias=False)
        self.out_bn = nn.BatchNorm2d(128)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        x = self.res_blocks(x)
        x = F.relu(self.out_bn(self.out_conv(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.log_softmax(self.fc(x), dim=1)
