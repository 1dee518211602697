"""Reading and overriding the SE gates of a model through forward hooks.

Every SE block (any of :data:`senet.models.se.ATTENTION_LAYERS`)
computes its gate in a ``gate`` submodule. A forward hook on it reads the gate
without changing the output; a hook that returns a tensor replaces the gate,
which is how :func:`gate_overrides` switches SE off or substitutes a profile.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from .se import ATTENTION_LAYERS

__all__ = ["se_blocks", "excitations", "gate_overrides", "capture_gates", "block_name"]


def block_name(module_path: str, aliases: dict[str, str] | None = None) -> str:
    """A readable name for an SE block's module path: ``stage2.1.se`` -> ``stage2.block2``.

    ``aliases`` renames path parts (a network's ``block_aliases``, e.g. the seed's ``res_blocks`` -> ``stage1``).
    """
    parts = [p for p in module_path.split(".") if p != "se"]
    out = []
    for p in parts:
        if p.isdigit():
            out.append(f"block{int(p) + 1}")
        else:
            out.append((aliases or {}).get(p, p))
    return ".".join(out) if out else "se"


def se_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The model's SE blocks, from input to output, keyed by readable name."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    aliases = getattr(model, "block_aliases", None)
    return {block_name(path, aliases): m for path, m in model.named_modules() if isinstance(m, ATTENTION_LAYERS)}


@contextlib.contextmanager
def capture_gates(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Within the context, every forward pass of ``model`` records each SE block's gate in the yielded dict
    (``{name: (B, C) float32 on the CPU}``, the last pass's; a per-pixel gate is averaged over H and W).
    The hooks only read; they are removed on exit, even on error."""
    captured: dict[str, torch.Tensor] = {}
    handles = []

    def recorder(name: str):
        def hook(_module, _inputs, output):
            gate = output.float()
            captured[name] = (gate.mean(dim=(2, 3)) if gate.dim() == 4 else gate).detach().cpu()
        return hook

    try:
        for name, block in se_blocks(model).items():
            handles.append(block.gate.register_forward_hook(recorder(name)))
        yield captured
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def excitations(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The gate of every SE block for a batch: ``{name: (B, C) tensor in [0, 1]}``.

    Blocks are ordered from input to output. The forward pass runs without
    gradient and in eval mode (the model's mode is restored afterwards, so a
    training model's BatchNorm statistics are not touched); the hooks only read,
    so the model's output is unchanged, and they are removed afterwards, even on
    error. For the seed's per-pixel gate (``SeedSEBlock(squeeze=False)``, shape
    B x C x H x W) the spatial mean over H and W is returned. A model without SE
    blocks gives an empty dict. Tensors come back as float32 on the CPU.
    """
    was_training = model.training
    blocks = se_blocks(model)
    try:
        with capture_gates(model) as captured:
            if blocks:
                model.eval()
                model(images)
    finally:
        model.train(was_training)
    return {name: captured[name] for name in blocks if name in captured}


@contextlib.contextmanager
def gate_overrides(model: nn.Module, overrides: dict[str, torch.Tensor | float]) -> Iterator[None]:
    """Within the context, replace the gate of the named SE blocks.

    A value of ``1.0`` switches SE off in that block (the input passes
    unscaled); a (C,) tensor, e.g. a class-mean profile, replaces the gate for
    every image. Unknown block names and values that are neither a number nor
    a (C,) tensor raise ``ValueError``. The hooks are removed on exit.
    """
    blocks = se_blocks(model)
    unknown = sorted(set(overrides) - set(blocks))
    if unknown:
        raise ValueError(f"unknown SE block(s) {unknown}; known: {list(blocks)}")
    for name, value in overrides.items():
        shape = tuple(torch.as_tensor(value).shape)
        if shape not in ((), (blocks[name].channels,)):
            raise ValueError(f"gate override for {name!r} must be a number or a ({blocks[name].channels},) tensor, "
                             f"got shape {shape}")
    handles = []

    def replacer(value: torch.Tensor | float):
        def hook(_module, _inputs, output):
            v = torch.as_tensor(value, dtype=output.dtype, device=output.device)
            if v.dim() == 1:  # (C,) profile
                v = v.view(1, -1, *([1] * (output.dim() - 2)))
            return torch.ones_like(output) * v
        return hook

    try:
        for name, value in overrides.items():
            handles.append(blocks[name].gate.register_forward_hook(replacer(value)))
        yield
    finally:
        for h in handles:
            h.remove()
