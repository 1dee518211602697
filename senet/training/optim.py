"""The optimiser and its learning-rate schedule: Nesterov SGD over parameter groups, warm-up then decay."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..models import se_blocks
from .settings import TrainConfig

__all__ = ["lr_factor", "param_groups", "make_optimizer", "set_lr"]


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str, start_frac: float) -> float:
    """The learning-rate multiplier at ``step`` (0-based) of ``total_steps``.

    ``constant``: 1. ``cosine``: linear warm-up from ``start_frac`` then cosine
    to 0. ``onecycle``: linear warm-up from ``start_frac`` to 1, then linear
    decay to 0 (airbench's triangle).
    """
    if schedule == "constant":
        return 1.0
    if step < warmup_steps:
        return start_frac + (1.0 - start_frac) * step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


def param_groups(model: nn.Module, c: TrainConfig) -> list[dict]:
    """BatchNorm biases get ``bias_lr_scale`` x lr with the same absolute decay; with ``se_weight_decay``
    set, the SE blocks' parameters get that weight decay; the rest the plain lr and decay."""
    se_params = {id(p) for block in se_blocks(model).values() for p in block.parameters()}
    norm_biases, se, others = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_norm_bias = isinstance(module, nn.modules.batchnorm._BatchNorm) and name == "bias"
            if is_norm_bias and c.bias_lr_scale != 1:
                norm_biases.append(p)
            elif id(p) in se_params and c.se_weight_decay is not None:
                se.append(p)
            else:
                others.append(p)
    groups = [dict(params=others, lr=c.lr, weight_decay=c.weight_decay, base_lr=c.lr)]
    if se:
        groups.append(dict(params=se, lr=c.lr, weight_decay=c.se_weight_decay, base_lr=c.lr))
    if norm_biases:
        lr = c.lr * c.bias_lr_scale
        groups.append(dict(params=norm_biases, lr=lr, weight_decay=c.weight_decay / c.bias_lr_scale, base_lr=lr))
    return groups


def make_optimizer(model: nn.Module, c: TrainConfig) -> torch.optim.SGD:
    """SGD with (Nesterov) momentum and weight decay, over :func:`param_groups`."""
    return torch.optim.SGD(param_groups(model, c), lr=c.lr, momentum=c.momentum,
                           nesterov=c.nesterov and c.momentum > 0)


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Set every group's learning rate to its base rate times ``factor``."""
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * factor
