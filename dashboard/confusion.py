"""Views of an :class:`senet.evaluate.Evaluation` for a confusion-matrix explorer.

The matrix follows scikit-learn: rows are true classes, columns predicted
classes. :func:`cell_members` lists the images of one cell, most confident
first; :func:`predictions_csv` writes one row per image.
"""
from __future__ import annotations

import io

import numpy as np

from senet.analysis import Evaluation

__all__ = ["row_normalised", "cell_members", "predictions_table", "predictions_csv", "summary"]


def row_normalised(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its total (the recall view); rows without images stay 0."""
    totals = confusion.sum(axis=1, keepdims=True)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=float), where=totals > 0)


def cell_members(ev: Evaluation, true_class: int, predicted_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions in the split of the images with this (true, predicted) pair, and their confidence in
    the predicted class, sorted most confident first."""
    k = len(ev.classes)
    if not (0 <= true_class < k and 0 <= predicted_class < k):
        raise ValueError(f"cell ({true_class}, {predicted_class}) is outside the {k}x{k} matrix")
    mask = (ev.labels == true_class) & (ev.preds == predicted_class)
    positions = np.nonzero(mask)[0]
    conf = ev.probs[positions, predicted_class]
    order = np.argsort(-conf, kind="stable")
    return ev.indices[positions[order]], conf[order]


def predictions_table(ev: Evaluation):
    """A pandas DataFrame with one row per image: index, true, predicted, confidence, correct, p_<class>."""
    import pandas as pd

    preds = ev.preds
    table = pd.DataFrame({
        "index": ev.indices.astype(int),
        "true": [ev.classes[i] for i in ev.labels],
        "predicted": [ev.classes[i] for i in preds],
        "confidence": ev.probs.max(axis=1).round(6),
        "correct": preds == ev.labels,
    })
    for i, c in enumerate(ev.classes):
        table[f"p_{c}"] = ev.probs[:, i].round(6)
    return table


def predictions_csv(ev: Evaluation) -> bytes:
    """:func:`predictions_table` as UTF-8 CSV bytes."""
    buf = io.StringIO()
    predictions_table(ev).to_csv(buf, index=False)
    return buf.getvalue().encode()


def summary(ev: Evaluation) -> dict:
    """Accuracy, macro precision/recall/F1, the per-class rows and the most confused off-diagonal pairs."""
    report = ev.report()
    cm = ev.confusion
    off = [(int(cm[t, p]), t, p) for t in range(len(cm)) for p in range(len(cm)) if t != p and cm[t, p]]
    off.sort(reverse=True)
    return {"accuracy": ev.accuracy, "n": ev.n, "macro": report["macro"], "per_class": report["per_class"],
            "top_confusions": [(ev.classes[t], ev.classes[p], n) for n, t, p in off[:5]]}
