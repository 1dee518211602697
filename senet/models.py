"""The model family: CIFAR ResNets with optional SE, the seed's network, and AirNet.

* ``resnet{20,32,56,110}`` / ``se_resnet{...}``: He et al.'s CIFAR ResNets of
  depth 6n+2, three stages of widths 16/32/64 (times ``width``), option-A
  shortcuts (identity; stride-2 subsampling and zero-padded channels when the
  shape changes: no parameters, so resnet20 has 0.27M). The SE block sits
  after the block's last BN, before the residual add, as in the paper.
* ``seed_senet``: the seed blog post's ``Network(in_channel=3, filters=128,
  blocks=10, num_classes=10)``, with its per-pixel SE variant (see
  :class:`senet.se.SeedSEBlock`); ``squeeze=True`` gives the intended block.
* ``airnet`` / ``se_airnet``: the airbench94 network (Keller Jordan, arXiv
  2404.00498; widths 64/256/256, a frozen 2x2 patch-whitening stem, GELU,
  identity-initialised convs, BN without a learned scale, logits scaled by
  1/9), with an SE block at the end of each of its three conv groups. It is
  the project's accuracy-per-compute model on CIFAR-10.

Every SE-capable network takes ``se: bool`` and ``reduction``; "with SE" is a
flag on one block class, not a second copy of the network.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .se import SEBlock, SeedSEBlock, _positive_int, check_reduction

__all__ = ["CifarResNet", "SeedNetwork", "AirNet", "create_model", "list_models", "MODEL_REGISTRY"]


def check_reduction_fits(reduction: object, channels: int) -> None:
    """Refuse a reduction that is not a positive integer or exceeds the narrowest stage."""
    check_reduction(reduction)
    if reduction > channels:
        raise ValueError(f"reduction {reduction} is larger than the narrowest SE stage ({channels} channels)")


MAX_WIDTH = 64


def check_common(se: bool, reduction: object, width: object, num_classes: object, in_channels: object,
                 narrowest: int) -> None:
    """Validate the options every model takes; each fault is one ValueError naming the value."""
    check_reduction(reduction)
    _positive_int("width", width)
    if width > MAX_WIDTH:  # 64x already means hundreds of GB of weights; refuse before allocating any
        raise ValueError(f"width must be at most {MAX_WIDTH}, got {width!r}")
    _positive_int("num_classes", num_classes)
    _positive_int("in_channels", in_channels)
    if se:
        check_reduction_fits(reduction, narrowest * width)


# --------------------------------------------------------------------------- ResNet
class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, optional SE, option-A shortcut add, ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, se: bool = False, reduction: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SEBlock(planes, reduction) if se else None
        self.stride = stride
        self.pad_channels = planes - in_planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad_channels:
            half = self.pad_channels // 2
            x = F.pad(x, (0, 0, 0, 0, half, self.pad_channels - half))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs: depth = 6n + 2, stages of n blocks at widths 16/32/64 x width."""

    def __init__(self, depth: int = 20, se: bool = False, reduction: int = 16, width: int = 1,
                 num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"depth must be 6n+2 with n >= 1, got {depth!r}")
        check_common(se, reduction, width, num_classes, in_channels, narrowest=16)
        n = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, in_planes = [], widths[0]
        for i, planes in enumerate(widths):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride, se, reduction))
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


# --------------------------------------------------------------------------- the seed
class SeedResBlock(nn.Module):
    """The seed's residual block: conv-BN-ReLU-conv-BN, its SE variant, identity add, ReLU."""

    def __init__(self, filters: int, reduction: int = 16, squeeze: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(filters, filters, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(filters)
        self.se = SeedSEBlock(filters, reduction, squeeze=squeeze)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return F.relu(out + x)


class SeedNetwork(nn.Module):
    """The seed blog post's ``Network(in_channel=3, filters=128, blocks=10, num_classes=10)``.

    A 3x3 conv stem, ``blocks - 1`` residual blocks of ``filters`` channels at
    full resolution, a 1x1 conv to 128, global average pooling, a linear layer,
    and ``log_softmax`` output.

    The seed's bug, reproduced on purpose: its SE block computes the pooled
    tensor and then applies its 1x1 convs to the unpooled input, so the gate
    is computed per pixel and never sees global context -- the paper's
    "NoSqueeze" ablation (Table 16) plus a learned bias, not an SE block (see
    :class:`senet.se.SeedSEBlock`). ``squeeze=True`` applies the convs to the
    pooled tensor, as the seed intended.
    """

    def __init__(self, in_channels: int = 3, filters: int = 128, blocks: int = 10, num_classes: int = 10,
                 reduction: int = 16, squeeze: bool = False) -> None:
        super().__init__()
        _positive_int("filters", filters)
        _positive_int("blocks", blocks)
        check_common(True, reduction, 1, num_classes, in_channels, narrowest=filters)
        self.conv = nn.Conv2d(in_channels, filters, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(filters)
        self.res_blocks = nn.Sequential(*[SeedResBlock(filters, reduction, squeeze) for _ in range(blocks - 1)])
        self.out_conv = nn.Conv2d(filters, 128, 1, bias=False)
        self.out_bn = nn.BatchNorm2d(128)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        x = self.res_blocks(x)
        x = F.relu(self.out_bn(self.out_conv(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.log_softmax(self.fc(x), dim=1)


# --------------------------------------------------------------------------- AirNet
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
    """conv-maxpool-BN-GELU-conv-BN-GELU, then an optional SE block."""

    def __init__(self, in_channels: int, out_channels: int, se: bool, reduction: int) -> None:
        super().__init__()
        self.conv1 = dirac_conv(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = FrozenScaleBatchNorm(out_channels)
        self.conv2 = dirac_conv(out_channels, out_channels)
        self.norm2 = FrozenScaleBatchNorm(out_channels)
        self.activ = nn.GELU()
        self.se = SEBlock(out_channels, reduction) if se else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        x = self.activ(self.norm2(self.conv2(x)))
        return self.se(x) if self.se is not None else x


class AirNet(nn.Module):
    """The airbench94 network with optional SE blocks (one per conv group).

    ``whiten`` is a 2x2 conv whose weights are set once from training patches
    (:meth:`init_from_data`, called by the trainer) and then frozen.
    """

    def __init__(self, se: bool = False, reduction: int = 16, width: int = 1, num_classes: int = 10,
                 in_channels: int = 3) -> None:
        super().__init__()
        check_common(se, reduction, width, num_classes, in_channels, narrowest=64)
        widths = (64 * width, 256 * width, 256 * width)
        whiten_width = 2 * in_channels * 2 * 2
        self.whiten = nn.Conv2d(in_channels, whiten_width, kernel_size=2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        self.activ = nn.GELU()
        self.stage1 = ConvGroup(whiten_width, widths[0], se, reduction)
        self.stage2 = ConvGroup(widths[0], widths[1], se, reduction)
        self.stage3 = ConvGroup(widths[1], widths[2], se, reduction)
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


# --------------------------------------------------------------------------- registry
def _resnet(depth: int, se: bool) -> Callable[..., nn.Module]:
    def make(**options) -> nn.Module:
        return CifarResNet(depth=depth, se=options.pop("se", se), **options)
    return make


def _airnet(se: bool) -> Callable[..., nn.Module]:
    def make(**options) -> nn.Module:
        return AirNet(se=options.pop("se", se), **options)
    return make


MODEL_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    **{f"resnet{d}": _resnet(d, False) for d in (20, 32, 56, 110)},
    **{f"se_resnet{d}": _resnet(d, True) for d in (20, 32, 56, 110)},
    "airnet": _airnet(False),
    "se_airnet": _airnet(True),
    "seed_senet": lambda **options: SeedNetwork(**options),
}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return list(MODEL_REGISTRY)


def create_model(name: str, **options) -> nn.Module:
    """Build a model by name, e.g. ``create_model("se_resnet20", reduction=8)``.

    Unknown names and options raise ``ValueError`` with a one-line reason.
    """
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    try:
        return MODEL_REGISTRY[name](**options)
    except TypeError as exc:  # an unexpected keyword
        raise ValueError(f"bad options for model {name!r}: {exc}") from None
