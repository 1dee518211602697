"""``senet train`` with a callback that saves, per rank, the training indices each batch held (for tests).

    torchrun ... tests/helpers/traced_train.py TRACE_DIR train --model ... --run-dir ...

writes ``TRACE_DIR/rank<r>.pt``: ``{epoch: tensor of indices}``, when training ends (or fails).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from senet.cli import main


class IndexTrace:
    """A training callback that keeps the indices of every batch, by epoch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[int, list[torch.Tensor]] = {}

    def on_batch(self, epoch: int, indices: torch.Tensor) -> None:
        self.seen.setdefault(epoch, []).append(indices.cpu())

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({e: torch.cat(v) for e, v in self.seen.items()}, self.path)


if __name__ == "__main__":
    trace = IndexTrace(Path(sys.argv[1]) / f"rank{os.environ.get('RANK', '0')}.pt")
    try:
        code = main(sys.argv[2:], train_callbacks=(trace,))
    finally:
        trace.save()
    sys.exit(code)
