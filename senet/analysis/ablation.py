"""What each SE block's gate is worth over a whole split.

Two interventions per block, each measured as accuracy over the same images:

- **SE off** (gate = 1): the block passes its input unscaled, as the plain twin would
  at that point;
- **gate fixed to its mean** (the block's mean gate over the same images): a static
  channel scale that keeps what SE learned on average but drops its dependence on the
  image.

The gap between the two tells apart the two things an SE block can do: a fixed
re-weighting (which a convolution could have absorbed) and an input-dependent one,
which is the point of squeeze-and-excitation. The same two are also applied to
every block at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..checkpoint import Checkpoint
from ..data import TensorDataset
from ..models import se_blocks
from ..progress import Progress, within
from .profiles import sample_per_class
from .explanation import HOOK_LOCK
from .runner import run_over_split

__all__ = ["GateAblation", "gate_ablation", "MODES"]

MODES = {"off": "SE off (gate = 1)", "mean": "gate fixed to its mean"}


@dataclass
class GateAblation:
    """Accuracy as trained and under each intervention; ``rows`` are ``{"blocks", "mode", "accuracy"}``."""

    n: int
    baseline: float
    rows: list[dict] = field(default_factory=list)

    def accuracy(self, blocks: str, mode: str) -> float:
        """The accuracy of one row (``blocks`` a block name or ``"all"``; ``mode`` ``"off"`` or ``"mean"``)."""
        for row in self.rows:
            if row["blocks"] == blocks and row["mode"] == mode:
                return row["accuracy"]
        raise KeyError(f"no ablation row for blocks={blocks!r}, mode={mode!r}")

    def table(self) -> list[dict]:
        """One row per block (then ``all``): accuracy and change in points under each mode."""
        out = []
        for blocks in dict.fromkeys(r["blocks"] for r in self.rows):
            row: dict = {"blocks": blocks}
            for mode in MODES:
                acc = self.accuracy(blocks, mode)
                row[f"{mode}_acc"] = acc
                row[f"{mode}_change_pts"] = 100 * (acc - self.baseline)
            out.append(row)
        return out


@torch.no_grad()
def gate_ablation(checkpoint: Checkpoint, data: TensorDataset, per_class: int | None = None, batch_size: int = 250,
                  progress: Progress | None = None) -> GateAblation:
    """Accuracy of the checkpoint's model on ``data`` as trained, and with each block's gate (then all of them)
    switched off or fixed to its mean over the same images.

    ``per_class`` limits the images to that many of each class (a seeded, stratified sample); ``progress``
    is called after each batch of each pass with (images run, images x passes); see :mod:`senet.progress`.
    Raises ``ValueError`` for a model without SE blocks.
    """
    model = checkpoint.model
    blocks = list(se_blocks(model))
    if not blocks:
        raise ValueError("the model has no SE blocks: there is no gate to ablate")
    positions = (sample_per_class(data.labels, per_class, len(data.classes)) if per_class
                 else torch.arange(len(data.labels)))
    passes, n_images = 1 + 2 * (len(blocks) + 1), len(positions)
    done = 0

    def run(overrides: dict | None = None, capture: bool = False):
        nonlocal done
        with HOOK_LOCK:
            out = run_over_split(model, data, checkpoint.mean, checkpoint.std, batch_size=batch_size,
                                 positions=positions, overrides=overrides, capture=capture,
                                 progress=within(progress, done * n_images, passes * n_images))
        done += 1
        return out

    as_trained = run(capture=True)  # the accuracy as trained, and the gates whose mean the second mode uses
    n = max(len(positions), 1)
    means = {name: (g.double().sum(0) / n).float() for name, g in as_trained.gates.items()}
    result = GateAblation(len(positions), as_trained.correct / n)
    for group in [[b] for b in blocks] + [blocks]:
        name = group[0] if len(group) == 1 else "all"
        result.rows.append({"blocks": name, "mode": "off", "accuracy": run({b: 1.0 for b in group}).correct / n})
        result.rows.append({"blocks": name, "mode": "mean",
                            "accuracy": run({b: means[b] for b in group}).correct / n})
    return result
