"""Gates under corruption: how one image's prediction and SE gates move when it is corrupted, and accuracy over
a split under the CIFAR-10-C corruptions (:mod:`senet.data.corruptions`).

* :func:`image_shift`: one image, one corruption and severity: the prediction and every block's gates before and
  after, each block's shift and the channels that move most. A block's shift is stated two ways: the **mean
  absolute gate change** (mean over channels of ``|after - before|``, in gate units) and the **cosine distance**
  ``1 - cos(before, after)`` between the two gate vectors (0: same direction; it ignores a common scale).
* :func:`robustness`: accuracy of a checkpoint (and of a twin and a reference, when given) on a split under each
  corruption and severity, on the same images, cached on disk per model, corruption and severity. From it:
  the **corruption error** ``CE_c = sum_s E_s / sum_s E_s^ref`` (E the top-1 error at severity s, ref the
  reference model's, as in Hendrycks & Dietterich 2019), its mean over corruptions (mCE), and for a twin pair
  the paired difference with an exact McNemar test per corruption and severity, and per corruption over its
  severities (each image's difference in the share of severities it gets right, with a 95% interval over images
  and the exact sign test on the images where the two models differ: McNemar's test when there is one severity).
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..checkpoint import Checkpoint, open_checkpoint
from ..data import DEFAULT_DATA_DIR, DataError, TensorDataset, fingerprint, normalize
from ..data.corruptions import CORRUPTIONS, SEVERITIES, check_corruption, check_severity, corrupt_tensor
from ..progress import Progress, within
from .compare import PairedComparison
from .evaluate import _cache_key, _read_probs, _write_probs, checkpoint_and_split
from .explanation import Explanation, explain
from .profiles import sample_per_class
from .runner import run_over_split

__all__ = ["BlockShift", "ImageShift", "image_shift", "ModelUnderCorruption", "Robustness", "robustness",
           "check_request", "CLEAN"]

CLEAN = ("clean", 0)
_VERSION = "1"  # of the corruption definitions: a change of definition must not read old caches


# --------------------------------------------------------------------------- one image
@dataclass
class BlockShift:
    """One SE block's gate (C,) for the clean and the corrupted image."""

    block: str
    before: np.ndarray
    after: np.ndarray

    @property
    def mean_abs_change(self) -> float:
        """Mean over channels of ``|after - before|`` (gate units)."""
        return float(np.abs(self.after - self.before).mean())

    @property
    def cosine_distance(self) -> float:
        """``1 - cos`` of the angle between the two gate vectors (0 when one is a positive multiple of the other)."""
        a, b = self.before.astype(np.float64), self.after.astype(np.float64)
        norm = np.linalg.norm(a) * np.linalg.norm(b)
        return float(1.0 - a @ b / norm) if norm > 0 else float(not np.array_equal(a, b))

    def moved(self, k: int = 5) -> list[dict]:
        """The ``k`` channels whose gate changed most (by ``|after - before|``; ties by channel)."""
        change = self.after.astype(np.float64) - self.before
        order = sorted(range(len(change)), key=lambda c: (-abs(change[c]), c))[:k]
        return [{"channel": c, "before": float(self.before[c]), "after": float(self.after[c]),
                 "change": float(change[c])} for c in order]

    def to_json(self, k: int = 5) -> dict:
        return {"block": self.block, "mean_abs_change": self.mean_abs_change,
                "cosine_distance": self.cosine_distance, "moved": self.moved(k)}


@dataclass
class ImageShift:
    """One image before and after a corruption: both images (uint8 (3, H, W)), both explanations, each block's
    shift."""

    corruption: str
    severity: int
    seed: int
    clean_image: np.ndarray
    corrupted_image: np.ndarray
    clean: Explanation
    corrupted: Explanation
    blocks: list[BlockShift] = field(default_factory=list)

    def to_json(self, k: int = 5) -> dict:
        def pred(e: Explanation) -> dict:
            return {"class": e.classes[e.predicted], "probability": float(e.probs[e.predicted]),
                    "top": [[c, p] for c, p in e.top(3)]}
        return {"corruption": self.corruption, "severity": self.severity, "seed": self.seed,
                "clean": pred(self.clean), "corrupted": pred(self.corrupted),
                "blocks": [b.to_json(k) for b in self.blocks]}


def image_shift(checkpoint: Checkpoint, image: torch.Tensor | np.ndarray, corruption: str, severity: int,
                seed: int = 0, position: int = 0) -> ImageShift:
    """Prediction and gates of one uint8 image (3, H, W) clean and under ``corruption`` at ``severity``;
    ``seed`` and ``position`` (the image's position in its split) fix the corruption's random draws, so the image
    is corrupted as it is in :func:`robustness` with the same seed."""
    check_corruption(corruption)
    severity = check_severity(severity)
    clean = torch.as_tensor(image)
    if clean.dtype != torch.uint8 or clean.ndim != 3 or clean.shape[0] != 3:
        raise ValueError(f"image must be uint8 (3, H, W), got {clean.dtype} {tuple(clean.shape)}")
    bad = corrupt_tensor(clean[None], corruption, severity, seed, [position])[0]
    explained = [explain(checkpoint.model, normalize(x[None], checkpoint.mean, checkpoint.std), checkpoint.classes)
                 for x in (clean, bad)]
    blocks = [BlockShift(name, _per_channel(gate), _per_channel(explained[1].gates[name]))
              for name, gate in explained[0].gates.items()]
    return ImageShift(corruption, severity, seed, clean.numpy(), bad.numpy(), explained[0], explained[1], blocks)


def _per_channel(gate: np.ndarray) -> np.ndarray:
    """A block's gate per channel (C,): a per-pixel gate (C, H, W) by its spatial mean."""
    return gate.reshape(gate.shape[0], -1).mean(1) if gate.ndim > 1 else gate


# --------------------------------------------------------------------------- over a split
@dataclass
class ModelUnderCorruption:
    """Which images one model gets right, clean and under each corruption and severity."""

    checkpoint: str
    correct: dict[tuple[str, int], np.ndarray]  # (corruption, severity) -> (N,) bool; CLEAN for the clean images

    def accuracy(self, corruption: str, severity: int) -> float:
        return float(self.correct[(corruption, severity)].mean())

    @property
    def clean_accuracy(self) -> float:
        return self.accuracy(*CLEAN)

    def error_sum(self, corruption: str, severities: Sequence[int]) -> float:
        """Sum over ``severities`` of the top-1 error under ``corruption``."""
        return sum(1.0 - self.accuracy(corruption, s) for s in severities)


@dataclass
class Robustness:
    """Accuracy under corruption of a checkpoint, and of its twin and a reference where given, on the same
    images of one split. ``models``: role (``"checkpoint"``, ``"twin"``, ``"reference"``) -> results."""

    split: str
    n: int
    corruptions: list[str]
    severities: list[int]
    seed: int
    models: dict[str, ModelUnderCorruption]
    reference_role: str | None = None  # the role whose errors normalise the corruption error (None: no CE)

    def corruption_error(self, role: str, corruption: str) -> float | None:
        """CE_c: the model's errors under ``corruption`` summed over the severities, over the reference's; None
        without a reference, or when the reference makes no error."""
        if self.reference_role is None:
            return None
        ref = self.models[self.reference_role].error_sum(corruption, self.severities)
        return self.models[role].error_sum(corruption, self.severities) / ref if ref > 0 else None

    def mean_corruption_error(self, role: str) -> float | None:
        """mCE: the mean of CE_c over the corruptions (None if any CE_c is undefined)."""
        ces = [self.corruption_error(role, c) for c in self.corruptions]
        return None if not ces or any(ce is None for ce in ces) else float(np.mean(ces))

    def paired(self, corruption: str, severity: int) -> PairedComparison:
        """Checkpoint against twin on the same images at one corruption and severity (CLEAN for clean)."""
        a = self.models["checkpoint"].correct[(corruption, severity)]
        b = self.models["twin"].correct[(corruption, severity)]
        return PairedComparison(n=len(a), both_right=int((a & b).sum()), only_a=int((a & ~b).sum()),
                                only_b=int((~a & b).sum()), both_wrong=int((~a & ~b).sum()))

    def paired_over_severities(self, corruption: str) -> dict:
        """Checkpoint minus twin under ``corruption``, all its severities: the mean accuracy difference, its 95%
        interval over images (each image's difference in the share of severities it gets right; normal
        approximation) and the exact two-sided sign test on the images where that share differs."""
        a = np.stack([self.models["checkpoint"].correct[(corruption, s)] for s in self.severities]).mean(0)
        b = np.stack([self.models["twin"].correct[(corruption, s)] for s in self.severities]).mean(0)
        d = a - b
        half = 1.96 * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
        better, worse = int((d > 0).sum()), int((d < 0).sum())
        # McNemar's exact test is the sign test on the discordant units; here the units are images
        sign = PairedComparison(len(d), 0, better, worse, len(d) - better - worse)
        return {"corruption": corruption, "difference": float(d.mean()), "ci95": [float(d.mean() - half),
                float(d.mean() + half)], "images_checkpoint_better": better, "images_twin_better": worse,
                "p_value": sign.p_value}

    def to_json(self) -> dict:
        out: dict = {"split": self.split, "n": self.n, "seed": self.seed, "corruptions": self.corruptions,
                     "severities": self.severities, "reference": self.reference_role, "models": {}}
        for role, m in self.models.items():
            out["models"][role] = {
                "checkpoint": m.checkpoint, "clean_accuracy": m.clean_accuracy,
                "accuracy": {c: {str(s): m.accuracy(c, s) for s in self.severities} for c in self.corruptions},
                "corruption_error": {c: self.corruption_error(role, c) for c in self.corruptions},
                "mean_corruption_error": self.mean_corruption_error(role)}
        if "twin" in self.models:
            def pair(p: PairedComparison) -> dict:
                return {"difference": p.difference, "ci95": list(p.difference_ci95), "only_checkpoint": p.only_a,
                        "only_twin": p.only_b, "p_value": p.p_value}
            out["paired"] = {
                "clean": pair(self.paired(*CLEAN)),
                "by_severity": {c: {str(s): pair(self.paired(c, s)) for s in self.severities}
                                for c in self.corruptions},
                "by_corruption": {c: self.paired_over_severities(c) for c in self.corruptions}}
        return out


def check_request(corruptions: Sequence[str] | None, severities: Sequence[int] | None) -> tuple[list[str], list[int]]:
    """The corruptions and severities asked for (default: all), checked; ``ValueError`` (one line) otherwise."""
    names = list(dict.fromkeys(corruptions)) if corruptions else list(CORRUPTIONS)
    for name in names:
        check_corruption(name)
    levels = sorted({check_severity(s) for s in severities}) if severities else list(SEVERITIES)
    return names, levels


def _key(base: str, positions: torch.Tensor, corruption: str, severity: int, seed: int) -> str:
    chosen = hashlib.sha256(positions.numpy().astype(np.int64).tobytes()).hexdigest()[:12]
    return hashlib.sha256(f"{base}|{chosen}|{corruption}|{severity}|{seed}|v{_VERSION}".encode()).hexdigest()[:24]


def robustness(checkpoint: str | os.PathLike, spec: str, split: str = "val",
               data_dir: str | os.PathLike = DEFAULT_DATA_DIR, *, twin: str | os.PathLike | None = None,
               reference: str | os.PathLike | None = None, corruptions: Sequence[str] | None = None,
               severities: Sequence[int] | None = None, per_class: int | None = None, seed: int = 0,
               cache_dir: str | os.PathLike | None = None, batch_size: int = 250,
               progress: Progress | None = None) -> Robustness:
    """Accuracy of ``checkpoint`` (and ``twin``, ``reference``) on ``split`` of ``spec`` clean and under each
    corruption and severity (default: all), on the same images: the checkpoint's split (for ``val``, its own
    held-out images), all of it or ``per_class`` images of each class (seeded).

    The reference normalises the corruption error; without one, the twin does (so the checkpoint's CE is its
    errors relative to its twin's). Predictions are cached under ``cache_dir`` (default
    ``DATA_DIR/.senet-cache/robustness``) by checkpoint file, the images' fingerprint, the images chosen,
    corruption, severity and seed. ``progress(done, total)`` counts images run, over all models and conditions.
    Raises ``ValueError`` for an unknown corruption or severity (before any work), :class:`DataError` or
    :class:`senet.CheckpointError` for data or checkpoints that cannot be used (a twin whose split holds other
    images, other classes).
    """
    names, levels = check_request(corruptions, severities)
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class {per_class}: must be 1 or more")
    if seed < 0:
        raise ValueError(f"seed {seed}: must be 0 or more")
    paths = {"checkpoint": Path(checkpoint)}
    if twin is not None:
        paths["twin"] = Path(twin)
    if reference is not None:
        paths["reference"] = Path(reference)
    loaded: dict[str, Checkpoint] = {}
    data: TensorDataset | None = None
    for role, path in paths.items():
        ckpt, own = checkpoint_and_split(path, spec, split, data_dir, open_checkpoint(path))
        if data is not None and fingerprint(own) != fingerprint(data):
            raise DataError(f"{path}: its {split} split holds other images than {paths['checkpoint']}'s (trained "
                            f"with another validation size or split seed): compare them on the test split")
        data = own if data is None else data
        loaded[role] = ckpt
    assert data is not None
    positions = (sample_per_class(data.labels, per_class, len(data.classes)) if per_class
                 else torch.arange(len(data)))
    labels = data.labels[positions]
    cache = Path(cache_dir) if cache_dir else Path(data_dir) / ".senet-cache" / "robustness"
    bases = {role: _cache_key(paths[role], 0, data) for role in paths}
    conditions = [CLEAN] + [(c, s) for c in names for s in levels]
    n, total = len(positions), len(positions) * len(paths) * len(conditions)
    correct: dict[str, dict] = {role: {} for role in paths}
    done = 0
    for corruption, severity in conditions:
        files = {role: cache / f"{_key(bases[role], positions, corruption, severity, seed)}.npz" for role in paths}
        probs = {role: _read_probs(f) for role, f in files.items()}
        images = None
        for role in paths:
            if probs[role] is None or len(probs[role]) != n:
                if images is None:
                    images = _condition_images(data, positions, corruption, severity, seed)
                ckpt = loaded[role]
                out = run_over_split(ckpt.model, images, ckpt.mean, ckpt.std, batch_size=batch_size,
                                     progress=within(progress, done, total))
                probs[role] = out.numpy_probs()
                _write_probs(files[role], probs[role])
            elif progress:
                progress(done + n, total)  # read from the cache
            done += n
            correct[role][(corruption, severity)] = probs[role].argmax(1) == labels.numpy()
    models = {role: ModelUnderCorruption(str(paths[role]), correct[role]) for role in paths}
    ref = "reference" if reference is not None else ("twin" if twin is not None else None)
    return Robustness(split, n, names, levels, seed, models, ref)


def _condition_images(data: TensorDataset, positions: torch.Tensor, corruption: str, severity: int, seed: int,
                      chunk: int = 500) -> TensorDataset:
    """The chosen images, clean or corrupted (in chunks, to bound memory), as a dataset of their own."""
    clean = data.images[positions]
    if (corruption, severity) == CLEAN:
        images = clean
    else:
        images = torch.cat([corrupt_tensor(clean[i:i + chunk], corruption, severity, seed,
                                           positions[i:i + chunk].tolist()) for i in range(0, len(clean), chunk)])
    return TensorDataset(images, data.labels[positions], list(data.classes), data.source, data.split)
