"""Gates forming while a model learns: a fixed probe set's SE gates after every epoch, in the run directory.

    RUN_DIR/gates/probe.json        the probe images: positions in the validation split, labels, class names
    RUN_DIR/gates/epoch-0001.pt     after epoch 1: {block name: (N, C) float16 gates of the probe images}

The probe is class-stratified (``probe_per_class`` images of each class, chosen with a fixed seed), so every
epoch's file holds the same images in the same order. :func:`read_gate_history` reads it all back.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..analysis.profiles import sample_per_class
from ..analysis.runner import run_over_split
from ..data import CIFAR_MEAN, CIFAR_STD, TensorDataset
from ..files import atomic_torch_save, read_json, write_json_atomic
from ..records import GATE_PROBE, check_record

__all__ = ["GateHistory", "choose_probe", "record_gates", "read_gate_history"]

PROBE_SEED = 0


def choose_probe(val_set: TensorDataset, per_class: int) -> torch.Tensor:
    """The probe images' positions in the validation split: ``per_class`` of each class, fixed by a seed."""
    return sample_per_class(val_set.labels, per_class, len(val_set.classes), PROBE_SEED)


def record_gates(run_dir: Path, model: nn.Module, val_set: TensorDataset, probe: torch.Tensor, epoch: int) -> None:
    """Write ``gates/epoch-NNNN.pt`` (and, once, ``gates/probe.json``) for the model after ``epoch``."""
    folder = run_dir / "gates"
    folder.mkdir(exist_ok=True)
    if not (folder / "probe.json").is_file():
        write_json_atomic(folder / "probe.json", {"positions": probe.tolist(), "labels": val_set.labels[probe].tolist(),
                                                  "classes": list(val_set.classes), "seed": PROBE_SEED})
    out = run_over_split(model, val_set, CIFAR_MEAN, CIFAR_STD, positions=probe, capture=True)
    atomic_torch_save({name: g.to(torch.float16) for name, g in out.gates.items()}, folder / f"epoch-{epoch:04d}.pt")


@dataclass
class GateHistory:
    """The probe's gates per epoch: ``gates[epoch][block]`` is (N, C) float32; ``labels`` (N,), ``classes``."""

    epochs: list[int]
    gates: dict[int, dict[str, np.ndarray]]
    labels: np.ndarray
    classes: list[str]

    @property
    def blocks(self) -> list[str]:
        return list(self.gates[self.epochs[-1]]) if self.epochs else []

    def class_means(self, epoch: int, block: str) -> np.ndarray:
        """(K, C): the mean gate of each class's probe images after ``epoch``."""
        g = self.gates[epoch][block]
        return np.stack([g[self.labels == k].mean(axis=0) for k in range(len(self.classes))])

    def specificity(self, epoch: int) -> dict[str, float]:
        """Per block: the std across class means, averaged over channels (as ClassProfiles.separation)."""
        return {b: float(self.class_means(epoch, b).std(axis=0).mean()) for b in self.gates[epoch]}


def read_gate_history(run_dir: str | os.PathLike) -> GateHistory | None:
    """The run's gate history, or None if it recorded none (runs and checkpoints from before it existed)."""
    folder = Path(run_dir) / "gates"
    probe = read_json(folder / "probe.json")
    if probe is None:
        return None
    check_record(probe, GATE_PROBE, folder / "probe.json")  # RecordError in one line
    gates = {}
    for path in sorted(folder.glob("epoch-*.pt")):
        match = re.fullmatch(r"epoch-(\d+)\.pt", path.name)
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 -- a file being replaced or damaged: skip that epoch
            continue
        if match and isinstance(saved, dict) and all(isinstance(v, torch.Tensor) and v.ndim == 2 and
                                                     len(v) == len(probe["labels"]) for v in saved.values()):
            gates[int(match.group(1))] = {k: v.float().numpy() for k, v in saved.items()}  # others: damaged, skipped
    return GateHistory(sorted(gates), gates, np.asarray(probe["labels"]), list(probe["classes"]))
