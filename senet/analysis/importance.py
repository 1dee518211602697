"""Does a high gate mark an important channel? Each SE channel's gate against its measured importance.

A channel's **importance** for an image is the drop in the true class's log-probability (nats) when that channel's
gate is set to 0, the other gates unchanged: positive when the channel supports the true class, negative when
removing it helps. It is measured two ways:

* **exact**, by ablation (:func:`exact_importance`): one forward pass per channel, affordable for one image and
  one block;
* **first-order** (:func:`first_order_importance`): from one backward pass for every block at once, the gradient of
  log p(true) with respect to a multiplier ``m`` on each channel's gate, at ``m = 1``: the change when ``m`` goes
  from 1 to 0 is about ``-d log p / d m``, so the estimated drop is ``d log p / d m = sum(d log p / d gate * gate)``
  (the gate's spatial positions summed for a per-pixel gate).

:func:`gate_importance` runs the estimate over a deterministic per-class sample of a split, measures its agreement
with exact ablation on a few of the images, and per block reports the Spearman rank correlation between gate and
importance (per image, averaged, with a bootstrap interval over images) and the channels where the two disagree most.

Read the two correlations differently. Against the signed importance, a positive correlation says that a high gate
marks a channel that helps the true class. Against its magnitude, a positive one is partly built in: a channel whose
gate is near 0 is already nearly removed, so removing it changes little, whatever the channel computes.
"""
from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ..checkpoint import Checkpoint
from ..data import TensorDataset, normalize
from ..models import se_blocks
from ..models.gates import _channels_last, block_channels, gate_module
from ..progress import Progress
from .explanation import HOOK_LOCK
from .profiles import sample_per_class
from .runner import batch_for

__all__ = ["ImageImportance", "Agreement", "Disagreement", "BlockImportance", "GateImportance", "exact_importance",
           "first_order_importance", "image_importance", "gate_importance", "spearman", "rank_average",
           "bootstrap_interval", "MAX_PER_CLASS", "CHECK_IMAGES"]

MAX_PER_CLASS = 1000  # the most images of each class a sample takes (CIFAR-10's val split holds ~500 a class)
CHECK_IMAGES = 4      # images on which exact ablation checks the first-order estimate, by default


# --------------------------------------------------------------------------- statistics
def rank_average(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x`` (1-D), ties given the mean of the ranks they span (as ``scipy.stats.rankdata``)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = (start + end + 1) / 2  # mean of ranks start+1 .. end
            start = end
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of two 1-D arrays (Pearson's correlation of their average ranks); NaN when
    either is constant or they hold fewer than two values."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"spearman: arrays of different lengths {len(x)} and {len(y)}")
    if len(x) < 2:
        return float("nan")
    rx, ry = rank_average(x), rank_average(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def bootstrap_interval(values: np.ndarray, n_resamples: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaNs dropped), resampling them with replacement
    with a fixed seed; (NaN, NaN) without values."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_resamples, len(v)))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


# --------------------------------------------------------------------------- gate multipliers
@contextlib.contextmanager
def _gate_multipliers(model: nn.Module, masks: dict[str, torch.Tensor],
                      seen: dict[str, torch.Tensor] | None = None) -> Iterator[None]:
    """Within the context, each named block's gate is multiplied by its (B, C) mask (one row per image of the batch);
    ``seen`` receives each block's gate as computed, (B, C), spatially averaged for a per-pixel gate. Only the
    calling thread's passes are changed (a dashboard's sessions share one model)."""
    blocks = se_blocks(model)
    owner = threading.get_ident()
    handles = []

    def hook_for(name: str, last: bool):
        def hook(_module, _inputs, output):
            if threading.get_ident() != owner:
                return None
            if seen is not None:
                g = output.detach().float()
                seen[name] = (g.mean(dim=(1, 2) if last else (2, 3)) if g.dim() == 4 else g).cpu()
            m = masks[name].to(output.device, output.dtype)
            extra = [1] * (output.dim() - 2)
            return output * (m.view(m.shape[0], *extra, m.shape[1]) if last else m.view(*m.shape, *extra))
        return hook

    try:
        for name in masks:
            hook = hook_for(name, _channels_last(blocks[name]))
            handles.append(gate_module(blocks[name]).register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _log_prob(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per row, from logits or log-probabilities."""
    output = output if output.dtype == torch.float64 else output.float()
    return torch.log_softmax(output, dim=1)[torch.arange(len(targets)), targets.to(output.device)]


def _check_block(model: nn.Module, block: str) -> None:
    known = list(se_blocks(model))
    if not known:
        raise ValueError("the model has no SE blocks: there is no gate to weigh")
    if block not in known:
        raise ValueError(f"unknown SE block {block!r}; known: {', '.join(known)}")


# --------------------------------------------------------------------------- one image, one batch
@torch.no_grad()
def exact_importance(model: nn.Module, image: torch.Tensor, target: int, block: str,
                     channels: list[int] | np.ndarray | None = None, batch_size: int = 256) -> tuple[float, np.ndarray]:
    """log p(target) as trained and, for each channel c of ``block`` (or of ``channels``, in their order), the drop
    in it when c's gate is set to 0, the others unchanged: one forward pass per channel, in batches of copies of
    the normalised ``image`` (1, 3, H, W). Returns ``(log_prob, drops)``."""
    _check_block(model, block)
    width = block_channels(se_blocks(model)[block])
    chosen = torch.arange(width) if channels is None else torch.as_tensor(np.asarray(channels), dtype=torch.long)
    if len(chosen) and not (0 <= int(chosen.min()) and int(chosen.max()) < width):
        raise ValueError(f"channels of {block!r} must be 0 to {width - 1}")
    image = image.to(next(model.parameters()).device)
    batch_size = batch_for(batch_size, image.shape[-2:])
    target_t = torch.tensor([target])
    with HOOK_LOCK, _eval_mode(model):
        base = float(_log_prob(model(image), target_t)[0])
        drops = np.empty(len(chosen))
        for start in range(0, len(chosen), batch_size):
            rows = chosen[start:start + batch_size]
            mask = torch.ones(len(rows), width)
            mask[torch.arange(len(rows)), rows] = 0.0
            batch = image.expand(len(rows), *image.shape[1:]).contiguous(memory_format=torch.channels_last)
            with _gate_multipliers(model, {block: mask}):
                out = _log_prob(model(batch), target_t.expand(len(rows)))
            drops[start:start + len(rows)] = base - out.double().cpu().numpy()
    return base, drops


def first_order_importance(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                           blocks: list[str] | None = None
                           ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """For a normalised batch (B, 3, H, W) and its true classes (B,): log p(true) (B,), each block's gates (B, C)
    and the first-order estimate of each channel's importance (B, C), from one forward and one backward pass.
    ``blocks``: which SE blocks (default all). Images do not interact (eval mode), so each row's gradient is
    that image's own."""
    names = list(se_blocks(model)) if blocks is None else list(blocks)
    for name in names:
        _check_block(model, name)
    device = next(model.parameters()).device
    x = images.to(device).contiguous(memory_format=torch.channels_last)
    with HOOK_LOCK, _eval_mode(model), torch.enable_grad():
        blocks = se_blocks(model)
        masks = {n: torch.ones(len(x), block_channels(blocks[n]), device=device, requires_grad=True) for n in names}
        seen: dict[str, torch.Tensor] = {}
        with _gate_multipliers(model, masks, seen):
            log_p = _log_prob(model(x), targets.to(device))
        grads = torch.autograd.grad(log_p.sum(), [masks[n] for n in names])
    return (log_p.detach().double().cpu().numpy(), {n: seen[n].numpy() for n in names},
            {n: g.detach().double().cpu().numpy() for n, g in zip(names, grads)})


@dataclass
class ImageImportance:
    """One image and one block: each channel's gate, its exact importance (drop in log p(true), nats, when its gate
    is set to 0) and the first-order estimate of it."""

    block: str
    target: int
    log_prob: float
    gates: np.ndarray
    exact: np.ndarray
    estimate: np.ndarray

    @property
    def spearman(self) -> float:
        """Rank correlation between gate and exact importance over the block's channels."""
        return spearman(self.gates, self.exact)

    def to_dict(self) -> dict:
        return {"block": self.block, "target": self.target, "log_prob": self.log_prob,
                "gates": self.gates.tolist(), "exact": self.exact.tolist(), "estimate": self.estimate.tolist(),
                "spearman": _finite(self.spearman)}


def image_importance(model: nn.Module, image: torch.Tensor, target: int, block: str) -> ImageImportance:
    """Gate, exact importance and first-order estimate of every channel of ``block`` for one normalised image."""
    log_p, drops = exact_importance(model, image, target, block)
    _, gates, est = first_order_importance(model, image, torch.tensor([target]), [block])
    return ImageImportance(block, int(target), log_p, gates[block][0].astype(float), drops, est[block][0])


# --------------------------------------------------------------------------- over a split
@dataclass
class Agreement:
    """How well the first-order estimate matches exact ablation on ``n_images`` images and ``channels`` of one
    block's channels: Spearman per image (mean), the share of channels whose sign agrees (among those whose exact
    drop is above 1e-6 nats), the mean absolute error and the mean absolute exact drop, both in nats."""

    block: str
    n_images: int
    channels: int
    spearman: float
    sign_agreement: float
    mean_abs_error: float
    mean_abs_exact: float


@dataclass
class Disagreement:
    """A channel whose gate and importance disagree: its mean gate and mean importance over the sample; its score,
    the difference of the two means' percentile ranks among the block's channels (-1..1; for "high gate, no
    importance" the gate's minus that of the importance's magnitude, for "low gate, high importance" the
    importance's minus the gate's); and the split positions of the images where the same difference, taken within
    the image, is largest."""

    channel: int
    mean_gate: float
    mean_importance: float
    score: float
    images: list[int]


@dataclass
class BlockImportance:
    """One block over the sample: each channel's mean gate and mean (first-order) importance; the Spearman
    correlation of gate and importance per image (its mean, with a bootstrap 95% interval over images, and how many
    images had one: a constant gate or importance has none); the same against the importance's magnitude (a channel
    that matters either way: ``spearman_abs``, ``interval_abs``); Spearman of the channels' means; and the channels
    that disagree most, each way."""

    block: str
    channels: int
    mean_gate: np.ndarray
    mean_importance: np.ndarray
    spearman: float
    interval: tuple[float, float]
    n_defined: int
    spearman_of_means: float
    spearman_abs: float = float("nan")
    interval_abs: tuple[float, float] = (float("nan"), float("nan"))
    high_gate_low_importance: list[Disagreement] = field(default_factory=list)
    low_gate_high_importance: list[Disagreement] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"block": self.block, "channels": self.channels, "spearman": _finite(self.spearman),
                "interval": [_finite(v) for v in self.interval], "n_defined": self.n_defined,
                "spearman_of_means": _finite(self.spearman_of_means), "spearman_abs": _finite(self.spearman_abs),
                "interval_abs": [_finite(v) for v in self.interval_abs],
                "mean_gate": self.mean_gate.tolist(), "mean_importance": self.mean_importance.tolist(),
                "high_gate_low_importance": [asdict(d) for d in self.high_gate_low_importance],
                "low_gate_high_importance": [asdict(d) for d in self.low_gate_high_importance]}


@dataclass
class GateImportance:
    """Gate against importance over a sample of a split: ``positions`` are the images' positions in the split,
    ``per_class`` the sample's size per class; ``check_positions`` the images exact ablation was run on."""

    split: str
    per_class: int
    positions: list[int]
    check_positions: list[int]
    blocks: list[BlockImportance]
    agreement: list[Agreement]
    seed: int = 0

    @property
    def n(self) -> int:
        return len(self.positions)

    def block(self, name: str) -> BlockImportance:
        for b in self.blocks:
            if b.block == name:
                return b
        raise KeyError(f"no block {name!r} in this result; blocks: {[b.block for b in self.blocks]}")

    def to_dict(self) -> dict:
        return {"split": self.split, "per_class": self.per_class, "n": self.n, "seed": self.seed,
                "importance": "drop in the true class's log-probability (nats) when the channel's gate is set to 0; "
                              "first-order estimate from one backward pass",
                "positions": self.positions, "check_positions": self.check_positions,
                "blocks": [b.to_dict() for b in self.blocks],
                "agreement": [{k: _finite(v) for k, v in asdict(a).items()} for a in self.agreement]}


def _finite(value):
    """A float for JSON: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _nanmean(values: np.ndarray) -> float:
    """The mean of the values that are not NaN; NaN when none is."""
    v = values[~np.isnan(values)]
    return float(v.mean()) if len(v) else float("nan")


def _percentiles(x: np.ndarray) -> np.ndarray:
    """Within-row percentile ranks 0..1 (average ranks for ties) of a (N, C) array."""
    c = x.shape[1]
    return np.stack([(rank_average(row) - 1) / max(c - 1, 1) for row in x]) if len(x) else x


def _disagreements(score: np.ndarray, per_image: np.ndarray, gates: np.ndarray, imp: np.ndarray,
                   positions: np.ndarray, top: int, images: int) -> list[Disagreement]:
    """The ``top`` channels of highest ``score`` (C,), each with the ``images`` images of highest ``per_image``
    score (N, C) for it."""
    out = []
    for c in np.argsort(-score, kind="stable")[:top]:
        worst = np.argsort(-per_image[:, c], kind="stable")[:images]
        out.append(Disagreement(int(c), float(gates[:, c].mean()), float(imp[:, c].mean()), float(score[c]),
                                [int(positions[i]) for i in worst]))
    return out


def _block_summary(name: str, gates: np.ndarray, imp: np.ndarray, positions: np.ndarray, top: int,
                   n_resamples: int, seed: int) -> BlockImportance:
    rhos = np.array([spearman(g, i) for g, i in zip(gates, imp)])
    rhos_abs = np.array([spearman(g, np.abs(i)) for g, i in zip(gates, imp)])
    mean_gate, mean_imp = gates.mean(axis=0), imp.mean(axis=0)
    cg, cabs, cimp = (_percentiles(v[None])[0] for v in (mean_gate, np.abs(mean_imp), mean_imp))
    pg, pabs, pimp = _percentiles(gates), _percentiles(np.abs(imp)), _percentiles(imp)
    return BlockImportance(
        name, gates.shape[1], mean_gate, mean_imp, _nanmean(rhos), bootstrap_interval(rhos, n_resamples, seed=seed),
        int((~np.isnan(rhos)).sum()), spearman(mean_gate, mean_imp), _nanmean(rhos_abs),
        bootstrap_interval(rhos_abs, n_resamples, seed=seed),
        _disagreements(cg - cabs, pg - pabs, gates, imp, positions, top, 3),    # high gate, ~no importance
        _disagreements(cimp - cg, pimp - pg, gates, imp, positions, top, 3))    # low gate, high importance


def _agreement(name: str, exact: list[np.ndarray], est: list[np.ndarray]) -> Agreement:
    e, f = np.stack(exact), np.stack(est)
    rhos = np.array([spearman(a, b) for a, b in zip(e, f)])
    rhos = rhos[~np.isnan(rhos)]
    clear = np.abs(e) > 1e-6
    signs = float((np.sign(e[clear]) == np.sign(f[clear])).mean()) if clear.any() else float("nan")
    return Agreement(name, len(e), e.shape[1], float(rhos.mean()) if len(rhos) else float("nan"), signs,
                     float(np.abs(e - f).mean()), float(np.abs(e).mean()))


def _check_channels(width: int, most: int) -> np.ndarray:
    """Up to ``most`` channels of a block of ``width``, evenly spread (all of them when it has no more)."""
    return np.unique(np.linspace(0, width - 1, min(width, most)).round().astype(int))


def gate_importance(checkpoint: Checkpoint, data: TensorDataset, per_class: int = 10, block: str | None = None,
                    check_images: int = CHECK_IMAGES, check_channels: int = 64, batch_size: int = 50, top: int = 3,
                    n_resamples: int = 2000, seed: int = 0, progress: Progress | None = None) -> GateImportance:
    """Gate against importance, per SE block (or the one ``block``), over up to ``per_class`` images of each class
    of ``data`` (a seeded, stratified sample, as the ablation's). Importance is the first-order estimate; exact
    ablation of up to ``check_channels`` channels per block (evenly spread) on ``check_images`` of the images (evenly
    spread over the sample) measures its agreement.

    ``progress(done, total)`` is called after each batch, counting forward passes of one image (a backward pass
    counts two); a callback that raises stops the work between batches (see :mod:`senet.progress`). Raises
    ``ValueError`` for a model without SE blocks, an unknown block or ``per_class`` outside 1..:data:`MAX_PER_CLASS`.
    """
    model = checkpoint.model
    known = se_blocks(model)
    if not known:
        raise ValueError("the model has no SE blocks: there is no gate to weigh")
    if block is not None and block not in known:
        raise ValueError(f"unknown SE block {block!r}; known: {', '.join(known)}")
    if not 1 <= per_class <= MAX_PER_CLASS:
        raise ValueError(f"per_class {per_class}: must be 1 to {MAX_PER_CLASS}")
    names = [block] if block else list(known)
    positions = sample_per_class(data.labels, per_class, len(data.classes), seed)
    n = len(positions)
    checks = np.unique(np.linspace(0, n - 1, min(check_images, n)).round().astype(int)) if n else np.zeros(0, int)
    channels = {b: _check_channels(block_channels(known[b]), check_channels) for b in names}
    total, done = 3 * n + len(checks) * sum(len(c) for c in channels.values()), 0
    gates: dict[str, list[np.ndarray]] = {b: [] for b in names}
    imps: dict[str, list[np.ndarray]] = {b: [] for b in names}
    batch_size = batch_for(batch_size, data.images.shape[-2:])
    for start in range(0, n, batch_size):
        idx = positions[start:start + batch_size]
        _, g, est = first_order_importance(model, normalize(data.images[idx], checkpoint.mean, checkpoint.std),
                                           data.labels[idx], names)
        for b in names:
            gates[b].append(g[b])
            imps[b].append(est[b])
        done += 3 * len(idx)
        if progress:
            progress(done, total)
    gate_arr = {b: np.concatenate(v) for b, v in gates.items() if v}
    imp_arr = {b: np.concatenate(v) for b, v in imps.items() if v}
    exact: dict[str, list[np.ndarray]] = {b: [] for b in names}
    for i in checks:
        pos = positions[i:i + 1]
        x = normalize(data.images[pos], checkpoint.mean, checkpoint.std)
        for b in names:
            exact[b].append(exact_importance(model, x, int(data.labels[pos][0]), b, channels[b])[1])
            done += len(channels[b])
            if progress:
                progress(done, total)
    pos_np = positions.numpy()
    blocks = [_block_summary(b, gate_arr[b], imp_arr[b], pos_np, top, n_resamples, seed) for b in names] if n else []
    agreement = [_agreement(b, exact[b], [imp_arr[b][i, channels[b]] for i in checks]) for b in names] \
        if len(checks) else []
    return GateImportance(data.split, per_class, pos_np.tolist(), [int(pos_np[i]) for i in checks], blocks,
                          agreement, seed)
