"""Side-by-side figures for checkpoints: accuracy, parameters, multiply-adds and CPU latency."""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..models import model_info, se_blocks
from ..models.gates import block_channels, block_reduction
from ..progress import Progress
from ..recorded import recorded, scored_split

__all__ = ["PairedComparison", "LatencyComparison", "cpu_latency", "interleaved_latency", "model_row",
           "paired_comparison", "se_stage_terms"]


@torch.no_grad()
def cpu_latency(model: nn.Module, input_size: tuple[int, int, int] | list[int] = (3, 32, 32), batch: int = 1,
                repeats: int = 30, warmup: int = 5) -> float:
    """Median wall time in milliseconds per image of a CPU forward pass at batch size ``batch``."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    was_training = model.training
    model.eval()
    try:
        x = torch.randn(batch, *input_size)
        device = next(model.parameters()).device
        if device.type != "cpu":
            raise ValueError(f"cpu_latency needs a model on the CPU, got one on {device}")
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    finally:
        model.train(was_training)
    return statistics.median(times) * 1000 / batch


@dataclass(frozen=True)
class LatencyComparison:
    """CPU latencies of two models measured in alternation: per-round medians (ms per image) of each.

    The comparison is the median of the per-round ratios A/B (each round times both under one load), with a
    distribution-free interval for it. Each model's own median over the rounds is a different statistic: when
    the machine's load changes between rounds, the two medians can come from different rounds and their ratio
    need not match the per-round one (:attr:`load_varied` says when to warn).
    """

    rounds_a: tuple[float, ...]
    rounds_b: tuple[float, ...]

    WIDE: ClassVar[float] = 1.5  # a model's slowest round over its fastest above this: the load changed

    @property
    def median_a(self) -> float:
        return statistics.median(self.rounds_a)

    @property
    def median_b(self) -> float:
        return statistics.median(self.rounds_b)

    @property
    def ratios(self) -> list[float]:
        """A's time over B's, round by round (each round measures both under the same load)."""
        return [a / b for a, b in zip(self.rounds_a, self.rounds_b)]

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios A/B: the comparison."""
        return statistics.median(self.ratios)

    @property
    def ratio_range(self) -> tuple[float, float]:
        """The smallest and largest round's ratio: the spread the machine's noise gave."""
        return min(self.ratios), max(self.ratios)

    @property
    def ratio_interval(self) -> tuple[float, float, float]:
        """``(low, high, confidence)``: a distribution-free confidence interval for the median per-round ratio,
        from order statistics (the k-th smallest and k-th largest ratio, k as large as keeps the confidence at
        95% or more; with 7 rounds the smallest and largest, 98.4%; with fewer than 6 rounds less than 95%)."""
        ratios, n = sorted(self.ratios), len(self.ratios)

        def confidence(k: int) -> float:  # P(X_(k) <= median <= X_(n+1-k)) = 1 - 2 P(Binomial(n, 1/2) < k)
            return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n

        k = 1
        while k + 1 <= (n + 1) // 2 and confidence(k + 1) >= 0.95:
            k += 1
        return ratios[k - 1], ratios[n - k], confidence(k)

    @property
    def within_noise(self) -> bool:
        """Whether the ratio's interval holds 1: the rounds do not say which model is faster."""
        low, high, _ = self.ratio_interval
        return low <= 1 <= high

    @property
    def medians_ratio(self) -> float:
        """A's median over B's median: not the comparison (see the class), shown only to explain a mismatch."""
        return self.median_a / self.median_b

    @property
    def load_varied(self) -> bool:
        """Whether the rounds vary widely (a model's slowest round more than :attr:`WIDE` times its fastest):
        then each model's median says little, and only the per-round ratio compares the two."""
        return any(max(r) > self.WIDE * min(r) for r in (self.rounds_a, self.rounds_b))


@torch.no_grad()
def interleaved_latency(model_a: nn.Module, model_b: nn.Module,
                        input_size: tuple[int, int, int] | list[int] = (3, 32, 32), rounds: int = 7,
                        repeats: int = 10, progress: Progress | None = None) -> LatencyComparison:
    """Batch-1 CPU latency of two models, alternating A and B in ``rounds`` rounds of ``repeats`` passes each, so
    that a change of load on the machine hits both alike; ``progress(timings done, 2 x rounds)`` after each
    model's timing (see :mod:`senet.progress`)."""
    if rounds < 2:
        raise ValueError(f"rounds must be at least 2 to show a spread, got {rounds}")
    a, b = [], []
    for _ in range(rounds):
        for model, times in ((model_a, a), (model_b, b)):
            times.append(cpu_latency(model, input_size, repeats=repeats, warmup=2))
            if progress:
                progress(len(a) + len(b), 2 * rounds)
    return LatencyComparison(tuple(a), tuple(b))


def se_stage_terms(model: nn.Module) -> list[tuple[int, int, int]]:
    """``(N_s, C_s, r)`` per group of SE blocks of equal width: the terms of the SENet paper's count
    (2/r) * sum_s N_s * C_s^2, in the order the widths first occur."""
    counts: dict[tuple[int, int], int] = {}
    for block in se_blocks(model).values():
        key = (block_channels(block), block_reduction(block))
        counts[key] = counts.get(key, 0) + 1
    return [(n, c, r) for (c, r), n in counts.items()]


def model_row(model: nn.Module, meta: dict, info: dict | None = None) -> dict:
    """One comparison row from a loaded checkpoint: name, SE, r, accuracy, params, SE params, MACs, epochs."""
    info = info or model_info(model, tuple(meta.get("input_size", (3, 32, 32))))
    return {
        "model": meta.get("model"),
        "SE": bool(se_blocks(model)),
        "r": info.get("reduction"),
        "scored_on": scored_split(meta),  # the split of acc / acc_tta: val, or test (trained on every image)
        "acc": recorded(meta, "acc"),
        "acc_tta": recorded(meta, "acc_tta"),
        "params": info["params"],
        "se_params": info["se_params"],
        "macs": info["macs"],
        "epochs": meta.get("epochs"),
        "dataset": meta.get("dataset"),
    }


@dataclass(frozen=True)
class PairedComparison:
    """Two models judged on the same images: who got which right, and whether the difference is noise."""

    n: int
    both_right: int
    only_a: int            # images model A classifies correctly and model B does not
    only_b: int
    both_wrong: int

    @property
    def accuracy_a(self) -> float:
        return (self.both_right + self.only_a) / self.n

    @property
    def accuracy_b(self) -> float:
        return (self.both_right + self.only_b) / self.n

    @property
    def difference(self) -> float:
        """Accuracy of A minus accuracy of B."""
        return (self.only_a - self.only_b) / self.n

    @property
    def difference_ci95(self) -> tuple[float, float]:
        """95% confidence interval of :attr:`difference` for paired proportions (normal approximation)."""
        n, d = self.n, self.difference
        var = ((self.only_a + self.only_b) / n - d * d) / n
        half = 1.96 * math.sqrt(max(var, 0.0))
        return d - half, d + half

    @property
    def p_value(self) -> float:
        """Exact two-sided McNemar test: the chance of a split of the disagreements at least this uneven
        if both models were equally good."""
        m, k = self.only_a + self.only_b, min(self.only_a, self.only_b)
        if m == 0:
            return 1.0
        tail = sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m
        return min(1.0, 2 * tail)


def paired_comparison(labels: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray) -> PairedComparison:
    """Compare two models' predictions on the same images (same order) against the true ``labels``."""
    labels, preds_a, preds_b = (np.asarray(x) for x in (labels, preds_a, preds_b))
    if not (labels.shape == preds_a.shape == preds_b.shape) or labels.ndim != 1:
        raise ValueError(f"labels and predictions must be 1-D and of one length, got shapes {labels.shape}, "
                         f"{preds_a.shape} and {preds_b.shape}")
    if len(labels) == 0:
        raise ValueError("no images to compare")
    a, b = preds_a == labels, preds_b == labels
    return PairedComparison(n=len(labels), both_right=int((a & b).sum()), only_a=int((a & ~b).sum()),
                            only_b=int((~a & b).sum()), both_wrong=int((~a & ~b).sum()))
