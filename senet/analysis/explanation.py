"""What the SE gates do for one image, and what happens when they are changed.

* :func:`explain`: class probabilities and every SE block's gate for one image.
* :func:`intervene` / :func:`block_ablation`: predictions with SE switched off (gate = 1) or the gate replaced by
  a class profile in chosen blocks.
* :func:`gate_description`: a label for gates that are not the paper's per-channel sigmoid gate.

Hooks on a shared model are not safe to mix between threads (a dashboard serves several sessions at once), so
every hook-based call here, and in the analyses over a split, holds one process-wide lock (:data:`HOOK_LOCK`).
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..models import SeedSEBlock, capture_gates, gate_overrides, se_blocks
from ..models.gates import block_gate_range, gate_module
from .runner import predict

__all__ = ["Explanation", "explain", "intervene", "block_ablation", "gate_description", "single_thread",
           "HOOK_LOCK"]

HOOK_LOCK = threading.RLock()


@contextlib.contextmanager
def single_thread():
    """Run one image on one thread: its work is too small to share, and on a busy machine (a training
    run beside the dashboard) more threads made a forward pass ~10x slower here, not faster."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


@dataclass
class Explanation:
    """One image through the model: probabilities (K,) and each SE block's gate (C,), input to output."""

    probs: np.ndarray
    gates: dict[str, np.ndarray]
    classes: list[str]

    @property
    def predicted(self) -> int:
        return int(self.probs.argmax())

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs)[:k]
        return [(self.classes[i], float(self.probs[i])) for i in order]


def gate_description(model: nn.Module) -> str | None:
    """A label for gates that are not the paper's per-channel sigmoid gate in 0..1 (the seed's per-pixel gate,
    the NoSqueeze ablation, a tanh or ReLU excitation), else None."""
    blocks = list(se_blocks(model).values())
    notes = []
    if any(isinstance(b, SeedSEBlock) and not b.squeeze for b in blocks):
        notes.append("this model's SE gate is computed per pixel (the seed's block discards the squeeze); "
                     "each bar is the gate's spatial mean over H x W")
    elif any(getattr(b, "squeeze", None) == "none" for b in blocks):
        notes.append("this model's SE gate is computed per pixel (no squeeze: the paper's NoSqueeze ablation); "
                     "each bar is the gate's spatial mean over H x W")
    ranges = {block_gate_range(b) for b in blocks}
    if ranges - {(0.0, 1.0)}:
        words = {(-1.0, 1.0): "tanh: gates from -1 to 1 (a negative gate flips a channel's sign)",
                 (0.0, float("inf")): "ReLU: gates from 0 up, without a ceiling (a gate above 1 amplifies)"}
        kinds = "; ".join(words.get(r, str(r)) for r in sorted(ranges - {(0.0, 1.0)}))
        notes.append(f"this model's excitation is {kinds}, not the sigmoid's 0 to 1; 1 still means the channel "
                     "passes unchanged")
    return "; ".join(notes) or None


@torch.no_grad()
def explain(model: nn.Module, image: torch.Tensor, classes: list[str]) -> Explanation:
    """Probabilities and gates for one normalised image (1, 3, H, W), from one forward pass."""
    with HOOK_LOCK, single_thread(), capture_gates(model) as gates:
        probs = predict(model, image)[0]
    return Explanation(probs.numpy(), {k: v[0].numpy() for k, v in gates.items()}, list(classes))


@torch.no_grad()
def intervene(model: nn.Module, image: torch.Tensor, overrides: dict[str, float | np.ndarray | torch.Tensor]) -> np.ndarray:
    """Class probabilities (K,) for one image with the named blocks' gates replaced.

    A value of 1.0 switches SE off in that block; a (C,) array (a class
    profile) replaces the gate.
    """
    values = {b: (torch.as_tensor(v, dtype=torch.float32) if not isinstance(v, float) else v)
              for b, v in overrides.items()}
    with HOOK_LOCK, single_thread(), gate_overrides(model, values):
        return predict(model, image)[0].numpy()


@torch.no_grad()
def block_ablation(model: nn.Module, image: torch.Tensor, target: int) -> dict[str, float]:
    """For each SE block alone switched off (gate = 1): the probability of class ``target``.

    One forward pass of a batch with a copy of the image per block; copy j has block j's gate set to 1
    (the model is in eval mode, so the copies do not interact).
    """
    blocks = se_blocks(model)
    names = list(blocks)
    if not names:
        return {}
    batch = image.expand(len(names), *image.shape[1:]).contiguous()

    owner = threading.get_ident()  # the model may be shared with other threads (dashboard sessions)

    def switch_off(j: int):
        def hook(_module, _inputs, output):
            if threading.get_ident() != owner:
                return None
            output = output.clone()
            output[j] = 1.0
            return output
        return hook

    handles = []
    with HOOK_LOCK, single_thread():
        try:
            for j, name in enumerate(names):
                handles.append(gate_module(blocks[name]).register_forward_hook(switch_off(j)))
            probs = predict(model, batch)
        finally:
            for h in handles:
                h.remove()
    return {name: float(probs[j, target]) for j, name in enumerate(names)}
