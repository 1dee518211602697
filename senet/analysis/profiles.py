"""What the SE gates do for whole classes: :func:`class_profiles`, the mean gate per channel for each class over N
images of a split -- the SENet paper's Fig. 6 for any checkpoint -- and the all-class mean;
:meth:`ClassProfiles.separation` measures how class-specific each block is. One image: :mod:`.explanation`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..data import TensorDataset
from ..progress import Progress
from .explanation import HOOK_LOCK
from .runner import run_over_split

__all__ = ["ClassProfiles", "ExtremeGroup", "class_profiles", "channel_order", "largest_departures", "fair_order",
           "sample_per_class"]

CONSTANT_GATE_SPREAD = 0.003  # below this std across images a block's gate is, in effect, a fixed channel scale
CLASS_SPLIT_GAP = 0.4  # a channel splits the classes in two when its class mean gates jump by this much


@dataclass(frozen=True)
class ExtremeGroup:
    """The sampled images at or beyond the ``k``-th most extreme gate of a channel (:meth:`ClassProfiles.
    extreme_group`): ``n`` of them (more than ``k`` when images tie at the cut), their gates from ``value`` (the
    k-th) to ``far`` (the most extreme), ``at_value`` of them exactly at ``value``, and ``counts`` per class."""

    n: int
    k: int
    highest: bool
    value: float
    far: float
    at_value: int
    counts: np.ndarray


@dataclass
class ClassProfiles:
    """Mean gates per class: ``profiles[block]`` is (K, C), ``overall[block]`` (C,) the all-image mean.

    ``spread[block]`` is the std of the gate across the sampled images, averaged
    over channels: how much the block's re-weighting depends on the image.
    ``positions`` are the sampled images' indices in the split, ``labels`` their
    classes and ``gates[block]`` their gates (N, C), kept to find the images that
    open a channel.
    """

    classes: list[str]
    counts: np.ndarray
    profiles: dict[str, np.ndarray]
    overall: dict[str, np.ndarray]
    spread: dict[str, float]
    positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (N,) sampled images
    gates: dict[str, np.ndarray] = field(default_factory=dict)  # per block (N, C) float16: each image's gate
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (N,) the sampled images' classes

    def _gates_of(self, block: str) -> np.ndarray:
        if block not in self.gates:
            raise KeyError(f"no SE block named {block!r}; blocks: {', '.join(self.gates) or 'none'}")
        return self.gates[block]

    def _column(self, block: str, channel: int) -> np.ndarray:
        g = self._gates_of(block)
        if not 0 <= channel < g.shape[1]:
            raise IndexError(f"{block} has channels 0-{g.shape[1] - 1}, not {channel}")
        return g[:, channel].astype(np.float32)

    def _sample_labels(self) -> np.ndarray | None:
        return self.labels if len(self.labels) == len(self.positions) and len(self.labels) else None

    def _ranked_column(self, block: str, channel: int, decimals: int | None) -> np.ndarray:
        column = self._column(block, channel)
        return column if decimals is None else np.round(column.astype(np.float64), decimals)

    def channel_extremes(self, block: str, channel: int, k: int = 12,
                         decimals: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Split positions and gates of the sampled images that open ``channel`` of ``block`` most and least:
        (high_positions, high_gates, low_positions, low_gates), ``k`` of each, and the gates exact: of the
        ``k`` highest gates, highest first, then of the ``k`` lowest, lowest first. Images with the same gate
        (a saturated 1.0 or 0.0; with ``decimals``, the same gate rounded to that many decimals, as a page shows
        it) are interleaved over their classes in proportion (:func:`fair_order`), not taken in split order.

        Raises ``KeyError`` for an unknown block and ``IndexError`` for a channel out of range.
        """
        column = self._column(block, channel)
        ranked = self._ranked_column(block, channel, decimals)
        labels = self._sample_labels()
        high = fair_order(ranked, labels, descending=True)[:k]
        low = fair_order(ranked, labels, descending=False)[:k]
        return self.positions[high], column[high], self.positions[low], column[low]

    def extreme_group(self, block: str, channel: int, k: int = 12, highest: bool = True,
                      decimals: int | None = None) -> ExtremeGroup:
        """The sampled images whose gate of ``channel`` reaches the ``k``-th highest (``highest``) or lowest:
        all of a tie at the cut included, so there can be more than ``k``; with ``decimals``, gates are
        compared rounded to that many decimals (a tie is then a tie as a page shows it)."""
        ranked = self._ranked_column(block, channel, decimals)
        labels = self._sample_labels()
        if labels is None or not len(ranked):
            return ExtremeGroup(0, k, highest, float("nan"), float("nan"), 0, np.zeros(len(self.classes), dtype=int))
        ordered = np.sort(ranked)[::-1] if highest else np.sort(ranked)
        value = float(ordered[min(k, len(ranked)) - 1])
        inside = ranked >= value if highest else ranked <= value
        return ExtremeGroup(int(inside.sum()), min(k, len(ranked)), highest, value, float(ordered[0]),
                            int((ranked == value).sum()), np.bincount(labels[inside], minlength=len(self.classes)))

    def extreme_class_counts(self, block: str, channel: int, k: int = 12,
                             highest: bool = True) -> tuple[int, float, np.ndarray]:
        """How the classes share the top (``highest``) or bottom ``k`` of ``channel``: (n, value, counts), where
        ``value`` is the k-th most extreme gate and ``counts`` (K,) counts per class the ``n`` sampled images at
        or beyond it (all of a tie included, so n can exceed k). :meth:`extreme_group` says more."""
        group = self.extreme_group(block, channel, k=k, highest=highest)
        return group.n, group.value, group.counts

    def most_different_class(self, block: str, cls: int, exclude: tuple[int, ...] = ()) -> int | None:
        """The sampled class whose mean gate profile at ``block`` lies farthest (Euclidean, over channels) from
        class ``cls``'s, other than ``cls`` and ``exclude``: a contrast to draw beside it. None if there is none."""
        if block not in self.profiles:
            raise KeyError(f"no SE block named {block!r}; blocks: {', '.join(self.profiles) or 'none'}")
        p = self.profiles[block].astype(np.float32)
        distance = np.linalg.norm(p - p[cls], axis=1)
        candidates = [k for k in range(len(p)) if k != cls and k not in exclude and self.counts[k] > 0]
        return max(candidates, key=lambda k: (distance[k], -k)) if candidates else None

    def most_specific_channel(self, block: str) -> int:
        """The channel of ``block`` whose mean gate differs most between the sampled classes (std across them)."""
        if block not in self.profiles:
            raise KeyError(f"no SE block named {block!r}; blocks: {', '.join(self.profiles) or 'none'}")
        present = self.counts > 0
        p = self.profiles[block][present] if present.sum() > 1 else self.profiles[block]
        return int(p.astype(np.float32).std(axis=0).argmax())

    def gate_difference(self, block: str, image_gate: np.ndarray, cls: int) -> np.ndarray:
        """``image_gate`` minus class ``cls``'s mean gate at ``block``, per channel (C,): a gate difference in
        [-1, 1] (gates lie in [0, 1]); positive where this image opens the channel more than the class does."""
        if block not in self.profiles:
            raise KeyError(f"no SE block named {block!r}; blocks: {', '.join(self.profiles) or 'none'}")
        mean = self.profiles[block][cls].astype(np.float32)
        image_gate = np.asarray(image_gate, dtype=np.float32).ravel()
        if image_gate.shape != mean.shape:
            raise ValueError(f"{block} has {mean.size} channels; the image gate has {image_gate.size}")
        return image_gate - mean

    def departures(self, image_gates: dict[str, np.ndarray], references: list[int], k: int = 5) -> list[dict]:
        """Per block, the ``k`` channels where ``image_gates`` depart most from the mean gate of the first class
        in ``references`` (largest |difference| first). Rows: block, channel, gate (this image's), means and
        differences (image - mean), one per reference class, in gate units."""
        rows = []
        for block, gate in image_gates.items():
            if block not in self.profiles:
                continue
            diffs = [self.gate_difference(block, gate, c) for c in references]
            gate = np.asarray(gate, dtype=np.float32).ravel()
            for c in largest_departures(diffs[0], k) if diffs else []:
                rows.append({"block": block, "channel": int(c), "gate": float(gate[c]),
                             "means": [float(self.profiles[block][r][c]) for r in references],
                             "differences": [float(d[c]) for d in diffs]})
        return rows

    def constant_blocks(self, tolerance: float = CONSTANT_GATE_SPREAD) -> list[str]:
        """Blocks whose gate hardly changes between images: a fixed channel scale the next layer absorbs,
        so the block no longer does any squeeze-and-excitation (e.g. weights shrunk by weight decay)."""
        return [b for b, v in self.spread.items() if v < tolerance]

    def unusual_channels(self, block: str, image_gate: np.ndarray, k: int = 5) -> list[dict]:
        """The ``k`` channels of ``block`` where ``image_gate`` departs most from the sampled images' mean, in
        standard deviations across those images (z); largest |z| first. Rows: channel, gate, mean, z."""
        g = self._gates_of(block).astype(np.float32)
        image_gate = np.asarray(image_gate, dtype=np.float32).ravel()
        if image_gate.shape != (g.shape[1],):
            raise ValueError(f"{block} has {g.shape[1]} channels; the image gate has {image_gate.size}")
        mean, std = g.mean(axis=0), np.maximum(g.std(axis=0), 1e-3)  # floor: a constant channel is not news
        z = (image_gate - mean) / std
        top = np.argsort(-np.abs(z), kind="stable")[:k]
        return [{"channel": int(c), "gate": float(image_gate[c]), "mean": float(mean[c]), "z": float(z[c])}
                for c in top]

    def class_splits(self, block: str, gap: float = CLASS_SPLIT_GAP) -> list[dict]:
        """The channels of ``block`` that split the classes cleanly in two, grouped by the classes they open.

        Sort a channel's class mean gates: if the largest jump between neighbours is at least ``gap``, the
        classes above it open the channel and those below close it. Groups, most channels first, as rows:
        ``open`` and ``closed`` (class names), ``channels`` (largest jump first) and ``jump`` (their mean).
        """
        if block not in self.profiles:
            raise KeyError(f"no SE block named {block!r}; blocks: {', '.join(self.profiles) or 'none'}")
        present = np.flatnonzero(self.counts > 0)
        if len(present) < 2:
            return []
        profiles = self.profiles[block][present].astype(np.float32)  # (K, C)
        ordered = np.sort(profiles, axis=0)
        jumps = np.diff(ordered, axis=0)
        where, size = jumps.argmax(axis=0), jumps.max(axis=0)
        groups: dict[tuple[int, ...], list[int]] = {}
        for c in np.flatnonzero(size >= gap):
            opened = np.flatnonzero(profiles[:, c] > ordered[where[c], c])
            groups.setdefault(tuple(int(present[i]) for i in opened), []).append(int(c))
        rows = []
        for opened, channels in groups.items():
            channels.sort(key=lambda c: -size[c])
            rows.append({"open": [self.classes[i] for i in opened],
                         "closed": [self.classes[i] for i in present if i not in opened],
                         "channels": channels, "jump": float(size[channels].mean())})
        return sorted(rows, key=lambda r: (-len(r["channels"]), -r["jump"]))

    def separation(self) -> dict[str, float]:
        """Per block: the mean over channels of the standard deviation across class profiles.

        Near 0 means every class gets the same gate (the paper's early blocks);
        larger values mean class-specific re-weighting (its late blocks).
        """
        present = self.counts > 0
        return {b: float(p[present].std(axis=0).mean()) if present.sum() > 1 else 0.0
                for b, p in self.profiles.items()}


def fair_order(values: np.ndarray, labels: np.ndarray | None = None, descending: bool = True) -> np.ndarray:
    """Indices of ``values`` from the highest (``descending``) or the lowest, where a tie (images of equal
    value) is interleaved over the classes in proportion to their share of it: a class's i-th tied image (index
    order) of its n goes at (i + 0.5) / n, so any first j of a tie hold each class about j x its share (on a
    draw, the class with more tied images first, then the lower class index). Without labels, ties keep index
    order. Saturated gates tie in their hundreds, and index order would fill the top with whichever class comes
    first in the split."""
    values = np.asarray(values, dtype=np.float64).ravel()
    key = -values if descending else values
    index = np.arange(len(values))
    if labels is None or len(labels) != len(values) or not len(values):
        return np.argsort(key, kind="stable")
    labels = np.asarray(labels).ravel()
    by = np.lexsort((index, labels, key))  # by value, then class, then index
    k_by, l_by = key[by], labels[by]
    new_run = np.r_[True, (k_by[1:] != k_by[:-1]) | (l_by[1:] != l_by[:-1])]  # a run: one value, one class
    run = np.cumsum(new_run) - 1
    rank, size = np.empty(len(values), dtype=np.int64), np.empty(len(values), dtype=np.int64)
    rank[by] = index - np.flatnonzero(new_run)[run]
    size[by] = np.bincount(run)[run]
    return np.lexsort((index, labels, -size, (rank + 0.5) / size, key))


def largest_departures(difference: np.ndarray, k: int = 5) -> np.ndarray:
    """The indices of the ``k`` largest |difference|, largest first (ties in index order)."""
    difference = np.asarray(difference, dtype=np.float64).ravel()
    return np.argsort(-np.abs(difference), kind="stable")[:k]


def channel_order(reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per block, the channel indices sorted by the ``reference`` gate, highest first (ties keep index order).

    With hundreds of channels a chart in index order is a wall of bars; sorted by the all-class mean, the mean
    becomes one falling curve and what a class or an image does differently stands out against it.
    """
    return {b: np.argsort(-np.asarray(g, dtype=float).ravel(), kind="stable") for b, g in reference.items()}


def sample_per_class(labels: torch.Tensor, per_class: int, num_classes: int, seed: int = 0) -> torch.Tensor:
    """Up to ``per_class`` positions of each class, chosen by a seeded permutation; sorted."""
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for k in range(num_classes):
        idx = torch.nonzero(labels == k).flatten()
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.sort(torch.cat(chosen)).values if chosen else torch.empty(0, dtype=torch.long)


@torch.no_grad()
def class_profiles(checkpoint: Checkpoint, data: TensorDataset, per_class: int = 50, seed: int = 0,
                   batch_size: int = 250, progress: Progress | None = None) -> ClassProfiles:
    """Mean gate per channel for every class over up to ``per_class`` images of ``data``; ``progress(done, total)``
    after each batch (see :mod:`senet.progress`)."""
    k = len(data.classes)
    idx = sample_per_class(data.labels, per_class, k, seed)
    with HOOK_LOCK:
        out = run_over_split(checkpoint.model, data, checkpoint.mean, checkpoint.std, batch_size=batch_size,
                             positions=idx, capture=True, progress=progress)
    counts = torch.bincount(data.labels[idx], minlength=k).float()
    onehot = torch.nn.functional.one_hot(data.labels[idx], k).float()  # (N, K)
    n = int(counts.sum())
    profiles, overall, spread = {}, {}, {}
    for name, g in out.gates.items():
        profiles[name] = ((onehot.T @ g.float()) / counts.clamp(min=1)[:, None]).numpy()  # (K, C)
        g64 = g.double()
        mean_gate = g64.sum(0) / max(n, 1)
        overall[name] = mean_gate.float().numpy()
        variance = ((g64 ** 2).sum(0) / max(n, 1) - mean_gate ** 2).clamp(min=0) * n / max(n - 1, 1)
        spread[name] = float(variance.sqrt().mean())
    return ClassProfiles(list(data.classes), counts.numpy().astype(int), profiles, overall, spread,
                         positions=idx.numpy(), gates={name: g.numpy().astype(np.float16)
                                                       for name, g in out.gates.items()},
                         labels=data.labels[idx].numpy())
