"""Reading and overriding the SE gates of a model through forward hooks.

An SE block is found by its module type: the project's own (any of
:data:`senet.models.se.ATTENTION_LAYERS`), torchvision's ``SqueezeExcitation``
and timm's SE modules (:data:`EXTERNAL_SE`). Each computes its gate in an
activation submodule (:func:`gate_module`: ``gate``, torchvision's
``scale_activation``, timm's SENet ``sigmoid``). A forward hook on it reads the
gate without changing the output; a hook that returns a tensor replaces the
gate, which is how :func:`gate_overrides` switches SE off or substitutes a
profile. The project's blocks are named readably (``stage2.block2``); the SE blocks of another library's
ResNet (timm's ``seresnet50``, ``legacy_seresnet50``, ...) as the SENet paper names them, ``SE_stage_block``
(:func:`paper_names`: ``layer1.2`` is SE_2_3); other libraries' blocks by their module path
(``features.4.block.2``).
"""
from __future__ import annotations

import contextlib
import re
import sys
import threading
from typing import Iterator

import torch
from torch import nn

from .se import ATTENTION_LAYERS

__all__ = ["se_blocks", "excitations", "gate_overrides", "capture_gates", "block_name", "paper_names",
           "module_paths", "gate_module",
           "block_channels", "block_reduction", "block_gate_range", "EXTERNAL_SE"]

# Other libraries' SE modules: (module, class, the attribute holding the gate's activation, channels last).
# Looked up in ``sys.modules`` only, so neither library is imported here: a model built by one has imported it.
EXTERNAL_SE = (
    ("torchvision.ops.misc", "SqueezeExcitation", "scale_activation", False),
    ("timm.layers.squeeze_excite", "SEModule", "gate", False),            # also timm's SqueezeExcite alias
    ("timm.layers.squeeze_excite", "EffectiveSEModule", "gate", False),
    ("timm.layers.squeeze_excite", "SqueezeExciteCl", "gate", True),
    ("timm.models._efficientnet_blocks", "SqueezeExcite", "gate", False),  # EfficientNet, MobileNetV3
    ("timm.models.senet", "SEModule", "sigmoid", False),                   # the legacy_se* models
    ("timm.models.hgnet", "EseModule", "sigmoid", False),
)


def _external_kind(module: nn.Module) -> tuple[str, bool] | None:
    """(gate attribute, channels last) when ``module`` is one of :data:`EXTERNAL_SE`, else None."""
    for mod_name, cls_name, attr, last in EXTERNAL_SE:
        cls = getattr(sys.modules.get(mod_name), cls_name, None)
        if cls is not None and isinstance(module, cls):
            return attr, last
    return None


def _is_se(module: nn.Module) -> bool:
    return isinstance(module, ATTENTION_LAYERS) or _external_kind(module) is not None


def gate_module(block: nn.Module) -> nn.Module:
    """The submodule whose output is the block's gate (where the hooks go)."""
    kind = None if isinstance(block, ATTENTION_LAYERS) else _external_kind(block)
    return getattr(block, kind[0] if kind else "gate")


def _projections(block: nn.Module) -> list[nn.Module]:
    return [m for m in block.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def block_channels(block: nn.Module) -> int:
    """The number of channels C the block gates."""
    if isinstance(block, ATTENTION_LAYERS):
        return block.channels
    last = _projections(block)[-1]
    return last.out_channels if isinstance(last, nn.Conv2d) else last.out_features


def block_reduction(block: nn.Module) -> float:
    """The reduction ratio r = C / hidden width (the project's blocks: their ``reduction``; 1 without a
    bottleneck, as in effective SE)."""
    if isinstance(block, ATTENTION_LAYERS):
        return block.reduction
    first = _projections(block)[0]
    hidden = first.out_channels if isinstance(first, nn.Conv2d) else first.out_features
    r = block_channels(block) / max(hidden, 1)
    return int(r) if float(r).is_integer() else round(r, 2)


def block_gate_range(block: nn.Module) -> tuple[float, float]:
    """The values the gate can take: (0, 1) for sigmoid-like gates (sigmoid, hard sigmoid)."""
    if isinstance(block, ATTENTION_LAYERS):
        return tuple(block.gate_range)
    gate = gate_module(block)
    name = type(gate).__name__.lower()
    if "sigmoid" in name:
        return (0.0, 1.0)
    if isinstance(gate, nn.Tanh):
        return (-1.0, 1.0)
    if isinstance(gate, (nn.ReLU, nn.ReLU6)):
        return (0.0, float("inf"))
    return (float("-inf"), float("inf"))


def _channels_last(block: nn.Module) -> bool:
    kind = None if isinstance(block, ATTENTION_LAYERS) else _external_kind(block)
    return bool(kind and kind[1])


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


_RESNET_SE_PATH = re.compile(r"layer([1-9])\.(\d+)\.(?:se|se_module)")  # an SE module inside a ResNet's residual block


def paper_names(paths: list[str]) -> dict[str, str] | None:
    """The SENet paper's names for the SE modules of a ResNet laid out as torchvision's (``layer1`` to
    ``layer4``, one SE module per residual block): ``SE_stage_block``, with the paper's stages conv2 to conv5, so
    ``layer1.2.se`` is SE_2_3 and ``layer4.2.se_module`` SE_5_3 (its Table 1 and Fig. 6 for SE-ResNet-50). None
    when any path has another shape (the names would not be the paper's)."""
    found = [_RESNET_SE_PATH.fullmatch(p) for p in paths]
    if not paths or not all(found):
        return None
    return {p: f"SE_{int(m.group(1)) + 1}_{int(m.group(2)) + 1}" for p, m in zip(paths, found)}


def _named_se_modules(model: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    """{name: (module path, module)} of the model's SE blocks, from input to output."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel (and a ClassSubset)
    aliases = getattr(model, "block_aliases", None)
    found = [(path, m) for path, m in model.named_modules() if _is_se(m)]
    external = [path for path, m in found if not isinstance(m, ATTENTION_LAYERS)]
    paper = paper_names(external) or {}
    return {(block_name(path, aliases) if isinstance(m, ATTENTION_LAYERS) else paper.get(path, path)): (path, m)
            for path, m in found}


def se_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The model's SE blocks, from input to output, keyed by readable name (the project's blocks), by the
    paper's name (another library's ResNet, :func:`paper_names`) or by module path (other SE modules)."""
    return {name: m for name, (_, m) in _named_se_modules(model).items()}


def module_paths(model: nn.Module) -> dict[str, str]:
    """Each SE block's name (as :func:`se_blocks` keys it) -> its module path in the model (``SE_2_3`` ->
    ``layer1.2.se_module``), for pages that show both."""
    return {name: path for name, (path, _) in _named_se_modules(model).items()}


@contextlib.contextmanager
def capture_gates(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Within the context, every forward pass of ``model`` records each SE block's gate in the yielded dict
    (``{name: (B, C) float32 on the CPU}``, the last pass's; a per-pixel gate is averaged over H and W).
    The hooks only read; they are removed on exit, even on error. Only the calling thread's passes are recorded
    (the dashboard's sessions share one model, each in its own thread)."""
    captured: dict[str, torch.Tensor] = {}
    handles = []
    owner = threading.get_ident()  # a model shared by the dashboard's sessions (threads): only this one's passes

    def recorder(name: str, spatial: tuple[int, int]):
        def hook(_module, _inputs, output):
            if threading.get_ident() != owner:
                return
            gate = output.float()
            captured[name] = (gate.mean(dim=spatial) if gate.dim() == 4 else gate).detach().cpu()
        return hook

    try:
        for name, block in se_blocks(model).items():
            spatial = (1, 2) if _channels_last(block) else (2, 3)
            handles.append(gate_module(block).register_forward_hook(recorder(name, spatial)))
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
    a (C,) tensor raise ``ValueError``. The hooks are removed on exit. Only the calling thread's forward passes
    are changed: another thread's pass through the same (shared) model is not.
    """
    blocks = se_blocks(model)
    unknown = sorted(set(overrides) - set(blocks))
    if unknown:
        raise ValueError(f"unknown SE block(s) {unknown}; known: {list(blocks)}")
    for name, value in overrides.items():
        shape, channels = tuple(torch.as_tensor(value).shape), block_channels(blocks[name])
        if shape not in ((), (channels,)):
            raise ValueError(f"gate override for {name!r} must be a number or a ({channels},) tensor, "
                             f"got shape {shape}")
    handles = []
    owner = threading.get_ident()  # a model shared by the dashboard's sessions (threads): only this one's passes

    def replacer(value: torch.Tensor | float, last: bool):
        def hook(_module, _inputs, output):
            if threading.get_ident() != owner:
                return None
            v = torch.as_tensor(value, dtype=output.dtype, device=output.device)
            if v.dim() == 1:  # (C,) profile
                v = v.view(*([1] * (output.dim() - 1)), -1) if last else v.view(1, -1, *([1] * (output.dim() - 2)))
            return torch.ones_like(output) * v
        return hook

    try:
        for name, value in overrides.items():
            block = blocks[name]
            handles.append(gate_module(block).register_forward_hook(replacer(value, _channels_last(block))))
        yield
    finally:
        for h in handles:
            h.remove()
