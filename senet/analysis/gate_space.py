"""Images as points in gate space: a 2-D map of their gate vectors, and how much class information the gates
carry on their own.

* :func:`gate_map`: each sampled image's gate vector of one block (or of all blocks concatenated) projected
  to 2-D by PCA (numpy's SVD of the centred vectors; no other dependency), with the variance each axis keeps.
* :func:`probe_accuracy`: per block, the accuracy of a linear probe (a ridge-regression classifier on the
  standardised gates, scikit-learn's ``RidgeClassifier``: one linear solve, so it stays fast on a busy CPU)
  that predicts the image's class from the gates alone, estimated by stratified k-fold cross-validation over
  the sampled images, against the chance level. It turns "late blocks
  are class-specific" into one number per block.

Both read the per-image gates that :func:`senet.analysis.profiles.class_profiles` keeps.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .profiles import ClassProfiles

__all__ = ["ALL_BLOCKS", "GateMap", "ProbeScore", "gate_vectors", "gate_map", "probe_accuracy"]

ALL_BLOCKS = "all blocks"  # the name of the concatenation of every block's gates


def gate_vectors(profiles: ClassProfiles, block: str) -> np.ndarray:
    """The sampled images' gates (N, C) of ``block``, or of every block side by side for :data:`ALL_BLOCKS`."""
    if block == ALL_BLOCKS:
        if not profiles.gates:
            raise KeyError("no SE blocks: there are no gates to map")
        return np.concatenate([g.astype(np.float32) for g in profiles.gates.values()], axis=1)
    if block not in profiles.gates:
        raise KeyError(f"no SE block named {block!r}; blocks: {', '.join(profiles.gates) or 'none'}")
    return profiles.gates[block].astype(np.float32)


@dataclass
class GateMap:
    """``coords`` (N, 2): the images' positions on the first two principal axes; ``explained`` (2,): the share of
    the gate vectors' variance each axis keeps; ``labels`` and ``positions`` as in the class profiles."""

    block: str
    coords: np.ndarray
    explained: np.ndarray
    labels: np.ndarray
    positions: np.ndarray


def gate_map(profiles: ClassProfiles, block: str) -> GateMap:
    """PCA of the sampled images' gate vectors of ``block`` (or :data:`ALL_BLOCKS`) to 2-D."""
    x = gate_vectors(profiles, block).astype(np.float64)
    x = x - x.mean(axis=0)
    coords = np.zeros((len(x), 2))
    explained = np.zeros(2)
    total = float((x ** 2).sum())
    if len(x) > 1 and total > 0:
        u, s, _ = np.linalg.svd(x, full_matrices=False)
        k = min(2, len(s))
        coords[:, :k] = u[:, :k] * s[:k]
        explained[:k] = s[:k] ** 2 / total
    return GateMap(block, coords.astype(np.float32), explained, profiles.labels, profiles.positions)


@dataclass
class ProbeScore:
    """A probe's cross-validated accuracy (mean over folds, and the folds' std) against the chance level
    (the largest class's share of the images)."""

    block: str
    accuracy: float
    fold_std: float
    folds: int
    chance: float
    images: int
    features: int


def _probe(x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> list[float]:
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    model = make_pipeline(StandardScaler(), RidgeClassifier(alpha=1.0))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # one BLAS thread: small solves gain nothing from more, and on a machine busy with training, many threads
    # spinning against each other made this 100x slower
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(cross_val_score(model, x, y, cv=split))


def probe_accuracy(profiles: ClassProfiles, blocks: list[str] | None = None, folds: int = 5,
                   seed: int = 0) -> list[ProbeScore]:
    """A linear probe's class accuracy from the gates of each block (default: every block, then
    :data:`ALL_BLOCKS`). ``folds`` is capped by the smallest class's count; fewer than 2 images in a class
    raises ``ValueError`` (there is nothing to cross-validate)."""
    y = np.asarray(profiles.labels)
    counts = np.bincount(y) if len(y) else np.zeros(0, dtype=int)
    present = counts[counts > 0]
    if len(present) < 2 or present.min() < 2:
        raise ValueError("a probe needs at least 2 classes with at least 2 sampled images each")
    folds = int(min(folds, present.min()))
    chance = float(present.max() / len(y))
    names = blocks if blocks is not None else [*profiles.gates, ALL_BLOCKS]
    scores = []
    for name in names:
        x = gate_vectors(profiles, name)
        accs = _probe(x, y, folds, seed)
        scores.append(ProbeScore(name, float(np.mean(accs)), float(np.std(accs)), folds, chance, len(y),
                                 x.shape[1]))
    return scores
