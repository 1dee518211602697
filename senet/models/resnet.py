"""He et al.'s CIFAR ResNets (depth 6n+2, widths 16/32/64, option-A shortcuts), with an optional attention layer.

The attention layer (an SE block, see :mod:`senet.models.se`) sits after the block's last BN, before the
residual add, as in the SENet paper; ``attn_layer=None`` is the plain ResNet. The shortcuts are
parameter-free by default (He et al.'s option A: identity; stride-2 subsampling and zero-padded channels when
the shape changes), so resnet20 has 0.27M parameters. ``shortcut="B"`` (their option B) projects with a
1x1 convolution and BN where the shape changes instead, as some other CIFAR codebases do.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .se import AttentionFactory, check_reduction, positive_int

__all__ = ["BasicBlock", "CifarResNet", "check_common", "check_stages", "check_shortcut", "MAX_WIDTH", "MAX_CLASSES", "POSITIONS",
           "SHORTCUTS"]

MAX_WIDTH = 64
MAX_CLASSES = 100_000  # ImageNet-21k has 21,843; a recorded num_classes is refused above this before allocating
MAX_IN_CHANNELS = 16


def check_common(attn: bool, reduction: object, width: object, num_classes: object, in_channels: object,
                 narrowest: int) -> None:
    """Validate the options every model takes; each fault is one ValueError naming the value."""
    check_reduction(reduction)
    positive_int("width", width)
    if width > MAX_WIDTH:  # 64x already means hundreds of GB of weights; refuse before allocating any
        raise ValueError(f"width must be at most {MAX_WIDTH}, got {width!r}")
    positive_int("num_classes", num_classes, MAX_CLASSES)
    positive_int("in_channels", in_channels, MAX_IN_CHANNELS)
    if attn and reduction > narrowest * width:
        raise ValueError(f"reduction {reduction} is larger than the narrowest SE stage ({narrowest * width} channels)")


POSITIONS = ("standard", "pre", "post", "identity")


def check_stages(stages: object) -> str:
    """``stages`` must be a non-empty string of distinct stage numbers among 1, 2, 3 (e.g. "123", "23")."""
    if not isinstance(stages, str) or not stages or set(stages) - set("123") or len(set(stages)) != len(stages):
        raise ValueError(f"se_stages must name stages among 1, 2, 3 once each (e.g. 123 or 3), got {stages!r}")
    return stages


SHORTCUTS = ("A", "B")


def check_shortcut(shortcut: object) -> str:
    """``A`` (parameter-free: subsample and zero-pad) or ``B`` (1x1 conv + BN where the shape changes)."""
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be A (parameter-free) or B (1x1 conv + BN projection), got {shortcut!r}")
    return shortcut


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, the attention layer (if any), shortcut add, ReLU.

    ``position`` places the attention layer as in the SENet paper's Fig. 5 / Table 14: ``standard`` (on the
    residual branch, after its last BN, before the add), ``pre`` (at the start of the residual branch, on the
    block's input), ``post`` (after the add and its ReLU) or ``identity`` (on the shortcut branch).
    ``shortcut`` is ``A`` (parameter-free) or ``B``: where the shape changes, ``downsample`` (1x1 conv with the
    block's stride, then BN) projects the input.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, attn_layer: AttentionFactory | None = None,
                 position: str = "standard", shortcut: str = "A") -> None:
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"se_position must be one of {', '.join(POSITIONS)}, got {position!r}")
        self.position = position
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = attn_layer(in_planes if position == "pre" else planes) if attn_layer is not None else None
        self.stride = stride
        self.pad_channels = planes - in_planes
        self.downsample = None
        if check_shortcut(shortcut) == "B" and (stride != 1 or in_planes != planes):
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            return self.downsample(x)
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad_channels:
            half = self.pad_channels // 2
            x = F.pad(x, (0, 0, 0, 0, half, self.pad_channels - half))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        where = self.position if self.se is not None else None
        out = F.relu(self.bn1(self.conv1(self.se(x) if where == "pre" else x)))
        out = self.bn2(self.conv2(out))
        if where == "standard":
            out = self.se(out)
        shortcut = self.shortcut(x)
        out = F.relu(out + (self.se(shortcut) if where == "identity" else shortcut))
        return self.se(out) if where == "post" else out


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs: depth = 6n + 2, stages of n blocks at widths 16/32/64 x width.

    ``se_stages`` names the stages whose blocks carry the attention layer ("123": all; "3": the last only), the SENet
    paper's Table 13; ``position`` places it and ``shortcut`` chooses the shortcuts (see :class:`BasicBlock`).
    """

    def __init__(self, depth: int = 20, attn_layer: AttentionFactory | None = None, width: int = 1,
                 num_classes: int = 10, in_channels: int = 3, position: str = "standard",
                 se_stages: str = "123", shortcut: str = "A") -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"depth must be 6n+2 with n >= 1, got {depth!r}")
        check_shortcut(shortcut)
        n = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, in_planes = [], widths[0]
        for i, planes in enumerate(widths):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                attn = attn_layer if str(i + 1) in se_stages else None
                blocks.append(BasicBlock(in_planes, planes, stride, attn, position, shortcut))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m is not self.fc:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
