"""Model accounting: parameters, SE parameters against the SENet paper's count of them, multiply-adds."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .gates import block_channels, block_reduction, se_blocks

__all__ = ["model_info"]


def model_info(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> dict:
    """Parameter and compute figures for one image of ``input_size``.

    Returns ``params`` (all parameters), ``se_params`` (inside SE blocks),
    ``se_formula`` (the SENet paper's count, Sec. 4: (2/r) * sum over SE blocks of C^2, i.e.
    (2/r) * sum_s N_s * C_s^2), ``se_blocks``, ``reduction`` and ``macs``
    (multiply-accumulates per image, counted by torch's FlopCounterMode).
    """
    blocks = se_blocks(model)
    params = sum(p.numel() for p in model.parameters())
    se_params = sum(p.numel() for b in blocks.values() for p in b.parameters())
    se_formula = sum(2 * block_channels(b) ** 2 / block_reduction(b) for b in blocks.values())
    reductions = sorted({block_reduction(b) for b in blocks.values()})
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
    return {
        "params": params,
        "se_params": se_params,
        "se_formula": se_formula,
        "se_blocks": len(blocks),
        "reduction": reductions[0] if len(reductions) == 1 else reductions or None,
        "macs": counter.get_total_flops() // 2,
    }
