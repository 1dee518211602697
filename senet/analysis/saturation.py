"""Spread and saturation of the gates (the SENet paper's Fig. 7 and its remark on the last stage).

* :func:`class_quantiles`: for one block and one class, each channel's gate distribution over the class's
  sampled images: the median and the quartiles, not only the mean; :func:`class_mean_std` the paper's mean and
  standard deviation.
* :func:`saturation`: per block, the share of gates (over images and channels) near the bottom and the top of
  the gate's range, its spread across images, and flags for blocks whose gates are nearly constant, mostly
  saturated, or close to identity (nearly every gate near 1: the paper found its last SE block so, and
  removable at little cost).
* :func:`removal_verdicts`: whether switching a flagged block's SE off is cheap, from the measured gate
  ablation (:func:`senet.analysis.ablation.gate_ablation`): the flags alone say nothing about accuracy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ablation import GateAblation
from .profiles import CONSTANT_GATE_SPREAD, ClassProfiles

__all__ = ["NEAR", "SATURATED_SHARE", "IDENTITY_SHARE", "CHEAP_REMOVAL_PTS", "BlockSaturation", "class_quantiles",
           "class_mean_std",
           "saturation", "removal_verdicts"]

NEAR = 0.05  # a gate within this distance of an end of its range counts as saturated there
SATURATED_SHARE = 0.5  # a block is "mostly saturated" when at least this share of its gates is at an end
IDENTITY_SHARE = 0.9  # "close to identity" when at least this share of its gates is near 1
CHEAP_REMOVAL_PTS = 0.5  # switching SE off in a block is "cheap" when it costs at most this many points


def _class_gates(profiles: ClassProfiles, block: str, cls: int) -> np.ndarray:
    """(n, C) float64: the gates of ``block`` of the sampled images of class ``cls``; KeyError for an unknown block,
    ValueError for a class without sampled images."""
    gates = profiles._gates_of(block)
    members = np.asarray(profiles.labels) == cls
    if not members.any():
        name = profiles.classes[cls] if 0 <= cls < len(profiles.classes) else cls
        raise ValueError(f"no sampled images of class {name!r}")
    return gates[members].astype(np.float64)


def class_quantiles(profiles: ClassProfiles, block: str, cls: int) -> np.ndarray:
    """(3, C): the 25th, 50th and 75th percentile of each channel's gate over the sampled images of class ``cls``.

    Raises ``KeyError`` for an unknown block and ``ValueError`` for a class without sampled images."""
    return np.percentile(_class_gates(profiles, block, cls), [25, 50, 75], axis=0)


def class_mean_std(profiles: ClassProfiles, block: str, cls: int) -> np.ndarray:
    """(2, C): each channel's mean gate over the sampled images of class ``cls`` and its standard deviation
    across them (n - 1 in the denominator; 0 for one image): the paper's Fig. 7.

    Raises ``KeyError`` for an unknown block and ``ValueError`` for a class without sampled images."""
    g = _class_gates(profiles, block, cls)
    return np.stack([g.mean(0), g.std(0, ddof=1) if len(g) > 1 else np.zeros(g.shape[1])])


@dataclass
class BlockSaturation:
    """One block's gates over the sampled images: shares near the range's ends, spread, and flags."""

    block: str
    low_share: float
    high_share: float | None  # None for a gate without a ceiling (ReLU)
    spread: float
    gate_range: tuple[float, float]

    @property
    def constant(self) -> bool:
        return self.spread < CONSTANT_GATE_SPREAD

    @property
    def saturated(self) -> bool:
        return self.low_share + (self.high_share or 0.0) >= SATURATED_SHARE

    @property
    def near_identity(self) -> bool:
        """Nearly every gate near 1: the block passes its input almost unchanged (for a sigmoid, 1 is its top)."""
        return self.high_share is not None and self.gate_range[1] == 1.0 and self.high_share >= IDENTITY_SHARE

    def flags(self) -> list[str]:
        out = []
        if self.near_identity:
            out.append("close to identity")
        elif self.saturated:
            out.append("mostly saturated")
        if self.constant:
            out.append("nearly constant")
        return out


def saturation(profiles: ClassProfiles, gate_ranges: dict[str, tuple[float, float]],
               near: float = NEAR) -> list[BlockSaturation]:
    """Per block (input to output): the share of the sampled images' gates within ``near`` of the bottom and
    of the top of the block's gate range (``gate_ranges[block]``, e.g. (0, 1) for a sigmoid)."""
    rows = []
    for block, g in profiles.gates.items():
        g = g.astype(np.float32)
        low, high = gate_ranges.get(block, (0.0, 1.0))
        low_share = float((g <= low + near).mean()) if g.size else 0.0
        high_share = None if math.isinf(high) else (float((g >= high - near).mean()) if g.size else 0.0)
        rows.append(BlockSaturation(block, low_share, high_share, profiles.spread.get(block, 0.0), (low, high)))
    return rows


def removal_verdicts(rows: list[BlockSaturation], ablation: GateAblation) -> dict[str, str]:
    """For each block: a sentence saying what switching its SE off (gate = 1) costs, measured by ``ablation``,
    and whether that matches its flags (a close-to-identity block should be cheap to remove)."""
    out = {}
    for row in rows:
        try:
            change = 100 * (ablation.accuracy(row.block, "off") - ablation.baseline)
        except KeyError:
            continue
        cheap = change >= -CHEAP_REMOVAL_PTS
        cost = f"switching its SE off changes accuracy by {change:+.2f} pts on {ablation.n} images"
        if row.near_identity:
            out[row.block] = cost + (": removable at little cost, as the paper found for its last block" if cheap
                                     else ": close to identity, yet not removable at little cost")
        else:
            out[row.block] = cost + (" (cheap)" if cheap else "")
    return out
