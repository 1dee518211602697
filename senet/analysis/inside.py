"""Inside one SE block: its equations with one image's actual values, and the feature maps behind the gates.

:func:`block_steps` follows one image through one block in the order of the paper's equations (Sec. 3):

    z = F_sq(u)                       squeeze: one number per channel (mean, or max, over H x W)
    h = ReLU(W1 z)                    the bottleneck: C/r numbers
    a = W2 h                          FC2's output, one number per channel
    s = sigma(a)                      the gate (the excitation's nonlinearity)
    x~ = s * u                        the scaled output, channel by channel

Every step is recomputed by hand from the block's weights and checked against the block's own output
(:attr:`BlockSteps.check_error`). For a per-pixel block (the paper's block with ``squeeze="none"``, the seed's
``SeedSEBlock``) the same equations hold at every pixel; the per-channel vectors here are their spatial means,
and the seed's block also adds a learned bias ``b``: ``x~ = sigma(w) * u + b``.

:func:`channel_responses` records, over a sample of images, how strongly each channel's feature map (the
block's input ``u_c``) responds: its spatial maximum, to find the images a channel detects.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import Checkpoint
from ..data import TensorDataset
from ..progress import Progress
from ..models import SEBlock, SeedSEBlock, se_blocks
from ..models.gates import block_gate_range, gate_module
from .explanation import HOOK_LOCK, single_thread
from .runner import predict, run_over_split

__all__ = ["BlockSteps", "block_steps", "ranked_channels", "channel_responses"]


@dataclass
class BlockSteps:
    """One image through one SE block. Vectors are (C,) except ``hidden`` (C/r,); maps are (C, H, W).

    ``per_pixel``: the gate is computed at every pixel and the vectors are spatial means (``gate_map`` holds
    the per-pixel gate). ``bias`` is the seed block's additive term (else ``None``). ``squeeze`` names the
    pooling (``avg``, ``max``; ``none`` for per-pixel). ``check_error`` is the largest absolute difference
    between the hand-computed output and the block's own output.
    """

    block: str
    squeeze: str
    excitation: str
    gate_range: tuple[float, float]
    per_pixel: bool
    u: np.ndarray
    z: np.ndarray
    hidden: np.ndarray
    pre_gate: np.ndarray
    gate: np.ndarray
    out: np.ndarray
    gate_map: np.ndarray | None
    bias: np.ndarray | None
    check_error: float
    w2: np.ndarray | None = None  # (C, C/r): FC2's weights, a = W2 h (the seed's: the gate half of its conv)
    recomputed: bool = True  # False: another library's block, its steps read from its own submodules (hooks)

    @property
    def channels(self) -> int:
        return len(self.gate)

    @property
    def reduction_text(self) -> str:
        return f"C = {self.channels} -> C/r = {len(self.hidden)} -> C = {self.channels}"


def _capture_block_io(model: nn.Module, block: nn.Module, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The input and output of ``block`` for one forward pass of ``image`` (1, 3, H, W)."""
    seen: dict[str, torch.Tensor] = {}
    owner = threading.get_ident()  # a model shared by the dashboard's sessions: only this thread's pass

    def hook(_module, inputs, output):
        if threading.get_ident() == owner:
            seen["u"], seen["out"] = inputs[0].detach().float(), output.detach().float()

    handle = block.register_forward_hook(hook)
    try:
        predict(model, image)
    finally:
        handle.remove()
    return seen["u"][0], seen["out"][0]


def _paper_steps(block: SEBlock, u: torch.Tensor) -> dict[str, torch.Tensor]:
    w1, w2 = block.fc1.weight.float(), block.fc2.weight.float()
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[block.excitation]
    if block.squeeze == "none":  # the FCs at every pixel: (C, H, W) -> per-pixel hidden and gate
        hidden = torch.relu(torch.einsum("hc,cyx->hyx", w1, u))
        pre = torch.einsum("ch,hyx->cyx", w2, hidden)
        gate = act(pre)
        return dict(z=u.mean(dim=(1, 2)), hidden=hidden.mean(dim=(1, 2)), pre_gate=pre.mean(dim=(1, 2)),
                    gate=gate.mean(dim=(1, 2)), gate_map=gate, out=u * gate, w2=w2)
    z = u.mean(dim=(1, 2)) if block.squeeze == "avg" else u.amax(dim=(1, 2))
    hidden = torch.relu(w1 @ z)
    pre = w2 @ hidden
    gate = act(pre)
    return dict(z=z, hidden=hidden, pre_gate=pre, gate=gate, out=u * gate[:, None, None], w2=w2)


def _seed_steps(block: SeedSEBlock, u: torch.Tensor) -> dict[str, torch.Tensor]:
    conv1, conv2 = block.fc[0], block.fc[2]
    source = F.adaptive_avg_pool2d(u[None], 1)[0] if block.squeeze else u  # (C, 1, 1) or (C, H, W)
    hidden = torch.relu(torch.einsum("hc,cyx->hyx", conv1.weight.float()[:, :, 0, 0], source)
                        + conv1.bias.float()[:, None, None])
    both = torch.einsum("oh,hyx->oyx", conv2.weight.float()[:, :, 0, 0], hidden) + conv2.bias.float()[:, None, None]
    pre, bias = both[:block.channels], both[block.channels:]
    gate = torch.sigmoid(pre)
    means = dict(z=u.mean(dim=(1, 2)), hidden=hidden.mean(dim=(1, 2)), pre_gate=pre.mean(dim=(1, 2)),
                 gate=gate.mean(dim=(1, 2)), bias=bias.mean(dim=(1, 2)), out=u * gate + bias,
                 w2=conv2.weight.float()[:block.channels, :, 0, 0])
    if not block.squeeze:
        means["gate_map"] = gate
    return means


def _external_steps(model: nn.Module, block: nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Another library's channels-first SE module (torchvision's, timm's): its steps as its own submodules
    compute them, read by hooks: the bottleneck is the input of its last projection, FC2's output that
    projection's output, the gate its gate module's output."""
    last = [m for m in block.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
    if not isinstance(last, nn.Conv2d):
        raise TypeError(f"cannot take a channels-last {type(block).__name__} apart step by step")
    seen: dict[str, torch.Tensor] = {}
    owner = threading.get_ident()

    def keep(name: str, index: int | None = None):
        def hook(_module, inputs, output=None):
            if threading.get_ident() == owner:
                seen[name] = (inputs[index] if index is not None else output).detach().float()
        return hook

    handles = [block.register_forward_hook(keep("u", 0)), block.register_forward_hook(keep("out")),
               last.register_forward_pre_hook(keep("hidden", 0)), last.register_forward_hook(keep("pre_gate")),
               gate_module(block).register_forward_hook(keep("gate"))]
    try:
        predict(model, image)
    finally:
        for h in handles:
            h.remove()
    u = seen["u"][0]
    gate = seen["gate"][0].flatten()
    return dict(u=u, z=u.mean(dim=(1, 2)), hidden=seen["hidden"][0].flatten(), pre_gate=seen["pre_gate"][0].flatten(),
                gate=gate, out=u * gate[:, None, None], block_out=seen["out"][0])


@torch.no_grad()
def block_steps(model: nn.Module, image: torch.Tensor, block: str) -> BlockSteps:
    """Every step of SE block ``block`` for one normalised image (1, 3, H, W); see the module docstring.

    Raises ``KeyError`` naming the known blocks for an unknown ``block``, and ``TypeError`` for an attention
    layer this function does not know how to take apart.
    """
    blocks = se_blocks(model)
    if block not in blocks:
        raise KeyError(f"no SE block named {block!r}; blocks: {', '.join(blocks) or 'none'}")
    module = blocks[block]
    recomputed = isinstance(module, (SEBlock, SeedSEBlock))
    with HOOK_LOCK, single_thread():
        if recomputed:
            u, out = _capture_block_io(model, module, image)
        else:
            steps = _external_steps(model, module, image)
            u, out = steps.pop("u"), steps.pop("block_out")
    if isinstance(module, SEBlock):
        steps = _paper_steps(module, u)
        squeeze, excitation, per_pixel = module.squeeze, module.excitation, module.squeeze == "none"
    elif isinstance(module, SeedSEBlock):
        steps = _seed_steps(module, u)
        squeeze, excitation, per_pixel = ("avg" if module.squeeze else "none"), "sigmoid", not module.squeeze
    else:
        squeeze, excitation, per_pixel = "avg", type(gate_module(module)).__name__, False
    as_np = {k: v.detach().cpu().numpy() for k, v in steps.items()}
    return BlockSteps(block=block, squeeze=squeeze, excitation=excitation, gate_range=block_gate_range(module),
                      per_pixel=per_pixel, u=u.cpu().numpy(), z=as_np["z"], hidden=as_np["hidden"],
                      pre_gate=as_np["pre_gate"], gate=as_np["gate"], out=as_np["out"],
                      gate_map=as_np.get("gate_map"), bias=as_np.get("bias"), w2=as_np.get("w2"),
                      check_error=float((steps["out"] - out).abs().max()), recomputed=recomputed)


def ranked_channels(gate: np.ndarray, k: int = 3, strength: np.ndarray | None = None) -> tuple[list[int], list[int]]:
    """The ``k`` most excited channels (highest gate first) and the ``k`` least (lowest first).

    Gates equal to three decimals (many saturate at 1.000 or 0.000) are ordered by ``strength`` (e.g. the
    squeeze ``z``), largest first, so the channels shown are the ones with the most signal; then by index.
    """
    gate = np.round(np.asarray(gate, dtype=np.float64), 3)
    tie = -np.abs(np.asarray(strength, dtype=np.float64)) if strength is not None else np.zeros_like(gate)
    index = np.arange(len(gate))
    most = np.lexsort((index, tie, -gate))
    least = np.lexsort((index, tie, gate))
    k = min(k, len(gate) // 2) if len(gate) > 1 else len(gate)
    return [int(c) for c in most[:k]], [int(c) for c in least[:k]]


@torch.no_grad()
def channel_responses(checkpoint: Checkpoint, data: TensorDataset, positions: np.ndarray | torch.Tensor,
                      batch_size: int = 250, progress: Progress | None = None) -> dict[str, np.ndarray]:
    """For the images at ``positions`` of ``data``: per SE block, each channel's strongest response, the
    spatial maximum of its feature map ``u_c`` (the block's input), as ``{block: (N, C) float16}``;
    ``progress(done, total)`` after each batch (see :mod:`senet.progress`)."""
    blocks = se_blocks(checkpoint.model)
    found: dict[str, list[torch.Tensor]] = {name: [] for name in blocks}
    owner = threading.get_ident()  # a model shared by the dashboard's sessions: only this thread's passes

    def recorder(name: str):
        def hook(_module, inputs):
            if threading.get_ident() == owner:
                found[name].append(inputs[0].detach().float().amax(dim=(2, 3)).cpu())
        return hook

    handles = [m.register_forward_pre_hook(recorder(name)) for name, m in blocks.items()]
    try:
        with HOOK_LOCK:
            run_over_split(checkpoint.model, data, checkpoint.mean, checkpoint.std, batch_size=batch_size,
                           positions=torch.as_tensor(np.asarray(positions), dtype=torch.long), progress=progress)
    finally:
        for h in handles:
            h.remove()
    return {name: torch.cat(v).numpy().astype(np.float16) for name, v in found.items() if v}
