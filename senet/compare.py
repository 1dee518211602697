"""Side-by-side figures for checkpoints: accuracy, parameters, multiply-adds and CPU latency."""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from .accounting import model_info
from .excitation import se_blocks

__all__ = ["cpu_latency", "model_row", "se_stage_terms"]


@torch.no_grad()
def cpu_latency(model: nn.Module, input_size: tuple[int, int, int] | list[int] = (3, 32, 32), batch: int = 1,
                repeats: int = 30, warmup: int = 5) -> float:
    """Median wall time in milliseconds per image of a CPU forward pass at batch size ``batch``."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    was_training = model.training
    model.eval()
    try:
        x = torch.randn(batch, *input_size)
        device = next(model.parameters()).device
        if device.type != "cpu":
            raise ValueError(f"cpu_latency needs a model on the CPU, got one on {device}")
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    finally:
        model.train(was_training)
    return statistics.median(times) * 1000 / batch


def se_stage_terms(model: nn.Module) -> list[tuple[int, int, int]]:
    """``(N_s, C_s, r)`` per group of SE blocks of equal width: the terms of the seed's formula
    (2/r) * sum_s N_s * C_s^2, in the order the widths first occur."""
    counts: dict[tuple[int, int], int] = {}
    for block in se_blocks(model).values():
        key = (block.channels, block.reduction)
        counts[key] = counts.get(key, 0) + 1
    return [(n, c, r) for (c, r), n in counts.items()]


def model_row(model: nn.Module, meta: dict, info: dict | None = None) -> dict:
    """One comparison row from a loaded checkpoint: name, SE, r, accuracy, params, SE params, MACs, epochs."""
    info = info or model_info(model, tuple(meta.get("input_size", (3, 32, 32))))
    return {
        "model": meta.get("model"),
        "SE": bool(se_blocks(model)),
        "r": info.get("reduction"),
        "val_acc": meta.get("val_acc"),
        "val_acc_tta": meta.get("val_acc_tta"),
        "params": info["params"],
        "se_params": info["se_params"],
        "macs": info["macs"],
        "epochs": meta.get("epochs"),
        "dataset": meta.get("dataset"),
    }
