"""The optimiser and its learning-rate schedule: Nesterov SGD over parameter groups, warm-up then decay."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..models import se_blocks
from .settings import TrainConfig

__all__ = ["lr_factor", "schedule_factor", "planned_lrs", "param_groups", "make_optimizer", "set_lr", "Lookahead",
           "STEP_DROPS"]


STEP_DROPS = ((0.5, 0.1), (0.75, 0.01))  # the ``step`` schedule: lr / 10 at 50% and again at 75% of training


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str, start_frac: float,
              end_frac: float = 0.0) -> float:
    """The learning-rate multiplier at ``step`` (0-based) of ``total_steps``.

    ``constant``: 1. ``step``: 1, then 0.1 from 50% and 0.01 from 75% of the steps (He et al.'s CIFAR
    recipe). ``cosine``: linear warm-up from ``start_frac`` then a cosine to ``end_frac``. ``onecycle``:
    linear warm-up from ``start_frac`` to 1, then linear decay to ``end_frac`` (airbench's triangle: 0.2 -> 1
    at 23% of the steps -> 0.07).
    """
    if schedule == "constant":
        return 1.0
    if step < warmup_steps:
        return start_frac + (1.0 - start_frac) * step / max(1, warmup_steps)
    if schedule == "step":
        return next((f for at, f in reversed(STEP_DROPS) if step >= at * total_steps), 1.0)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return end_frac + (1.0 - end_frac) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - (1.0 - end_frac) * progress


def schedule_factor(config: TrainConfig | Mapping[str, Any], step: int, steps_per_epoch: int,
                    epochs: int | None = None) -> float:
    """The multiplier of ``config``'s schedule at ``step`` (0-based) of a run of ``epochs`` (default: the
    config's) with ``steps_per_epoch`` steps each; ``config`` is a :class:`TrainConfig` or its recorded dict."""
    get = config.get if isinstance(config, Mapping) else lambda key, default=None: getattr(config, key, default)
    epochs = get("epochs") if epochs is None else epochs
    warmup = int(round(get("warmup_epochs", 0.0) * steps_per_epoch))
    return lr_factor(step, steps_per_epoch * epochs, warmup, get("schedule"), get("start_lr_frac", 1.0),
                     get("end_lr_frac", 0.0))


def planned_lrs(config: TrainConfig | Mapping[str, Any], steps_per_epoch: int,
                plan: list[dict] | None = None) -> list[float]:
    """The learning rate of every step (0-based) a run of ``config`` trains, as the loop sets it (the first
    parameter group's: ``lr`` times :func:`schedule_factor`).

    ``plan`` is the run's ``epochs_plan`` (:func:`senet.training.loop.plan_epochs`): from each entry's step on the
    schedule is stretched over that entry's epochs, as after a resume with another ``--epochs``; without one the
    config's epochs hold throughout.
    """
    get = config.get if isinstance(config, Mapping) else lambda key, default=None: getattr(config, key, default)
    plan = plan or [{"step": 0, "epochs": get("epochs")}]
    lrs: list[float] = []
    for i, part in enumerate(plan):
        end = plan[i + 1]["step"] if i + 1 < len(plan) else steps_per_epoch * part["epochs"]
        lrs += [get("lr") * schedule_factor(config, s, steps_per_epoch, part["epochs"])
                for s in range(part["step"], end)]
    return lrs


class Lookahead:
    """airbench's Lookahead: every ``every`` steps a slow copy of the weights (and BatchNorm statistics) moves
    toward the current ones by ``1 - decay`` and the model is reset to it; ``decay = 0.95**5 * (step/total)**3``
    grows over training, and the last step ends on the slow copy."""

    def __init__(self, model: nn.Module, every: int = 5) -> None:
        self.every = every
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def load(self, slow: dict[str, torch.Tensor]) -> None:
        """Take the slow weights saved in ``last.pt``."""
        for name, value in slow.items():
            self.slow[name].copy_(value)

    @staticmethod
    def decay(step: int, total_steps: int) -> float:
        return 0.95 ** 5 * (step / total_steps) ** 3

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int, total_steps: int) -> None:
        """Call after optimiser step number ``step`` (1-based)."""
        if step >= total_steps:
            self.update(model, 1.0)
        elif step % self.every == 0:
            self.update(model, self.decay(step, total_steps))

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        state = model.state_dict()
        for name, slow in self.slow.items():
            slow.lerp_(state[name], 1 - decay)
            state[name].copy_(slow)


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
