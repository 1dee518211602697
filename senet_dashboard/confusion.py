"""Views of an :class:`senet.evaluate.Evaluation` for a confusion-matrix explorer.

The matrix follows scikit-learn: rows are true classes, columns predicted
classes. :func:`cell_members` lists the images of one cell, most confident
first; :func:`predictions_csv` writes one row per image, naming its source (its file for ``folder:`` data,
its position in the source's train or test set for every source).
"""
from __future__ import annotations

import io

import numpy as np

from senet.analysis import Evaluation
from senet.data import DataError, TensorDataset, parse_spec

__all__ = ["row_normalised", "cell_members", "cell_sentence", "predictions_table", "predictions_csv", "summary",
           "per_class_rows", "CSV_COLUMNS"]

# What the CSV's first columns mean (the page shows this next to the download button).
CSV_COLUMNS = ("index: the image's position in this split (the # on this page); source_part and source_index: "
               "the part of the data source (train or test) it comes from and its position there; file: its "
               "image file (folder: data)")


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


def cell_sentence(count: int, true_name: str, predicted_name: str, row_total: int) -> str:
    """What one cell holds, in words (Markdown): "**12** dog images were predicted **truck** (2.4% of dog; confused)",
    "**1** dog image was …", "No dog image was predicted **truck** (of 500).", "There is no dog image in this split."."""
    if row_total == 0:
        return f"There is no {true_name} image in this split."
    kind = "correct" if true_name == predicted_name else "confused"
    if count == 0:
        return (f"No {true_name} image was predicted **{predicted_name}** (of {row_total:,} {true_name} "
                f"image{'s' if row_total != 1 else ''}).")
    images, verb = ("image", "was") if count == 1 else ("images", "were")
    return (f"**{count:,}** {true_name} {images} {verb} predicted **{predicted_name}** "
            f"({count / row_total:.1%} of {true_name}; {kind}).")


def _source_columns(positions: np.ndarray, data: TensorDataset) -> dict:
    """``source_part``, ``source_index`` and (folder data) ``file`` of the images at these split positions."""
    if len(data) != len(positions) or (len(positions) and positions.max() >= len(data)):
        raise ValueError(f"the evaluation has {len(positions)} images but the split has {len(data)}")
    part = "test" if data.split == "test" else "train"
    indices = data.indices.numpy()[positions] if data.indices is not None else positions
    columns = {"source_part": [part] * len(positions), "source_index": indices.astype(int)}
    if data.names is not None:
        try:
            kind, folder = parse_spec(data.source)
        except DataError:
            kind, folder = "", None
        root = folder if kind == "folder" else None
        columns["file"] = [str(root / data.names[i]) if root else data.names[i] for i in positions.tolist()]
    return columns


def predictions_table(ev: Evaluation, data: TensorDataset | None = None):
    """A pandas DataFrame with one row per image: index (position in the split), true, predicted, confidence,
    correct, then with ``data`` (the split evaluated) source_part, source_index and file, then p_<class>."""
    import pandas as pd

    preds = ev.preds
    table = pd.DataFrame({
        "index": ev.indices.astype(int),
        "true": [ev.classes[i] for i in ev.labels],
        "predicted": [ev.classes[i] for i in preds],
        "confidence": ev.probs.max(axis=1).round(6),
        "correct": preds == ev.labels,
    })
    if data is not None:
        for name, values in _source_columns(ev.indices.astype(int), data).items():
            table[name] = values
    for i, c in enumerate(ev.classes):
        table[f"p_{c}"] = ev.probs[:, i].round(6)
    return table


def predictions_csv(ev: Evaluation, data: TensorDataset | None = None) -> bytes:
    """:func:`predictions_table` as UTF-8 CSV bytes."""
    buf = io.StringIO()
    predictions_table(ev, data).to_csv(buf, index=False)
    return buf.getvalue().encode()


def summary(ev: Evaluation) -> dict:
    """Accuracy, macro precision/recall/F1, the per-class rows and the most confused off-diagonal pairs."""
    report = ev.report()
    cm = ev.confusion
    off = [(int(cm[t, p]), t, p) for t in range(len(cm)) for p in range(len(cm)) if t != p and cm[t, p]]
    off.sort(reverse=True)
    return {"accuracy": ev.accuracy, "n": ev.n, "macro": report["macro"], "per_class": report["per_class"],
            "top_confusions": [(ev.classes[t], ev.classes[p], n) for n, t, p in off[:5]]}


def per_class_rows(per_class: list[dict]) -> list[dict]:
    """The per-class report with precision, recall and F1 in percent (the page's one format for rates)."""
    return [{"class": r["class"], "precision": 100 * r["precision"], "recall": 100 * r["recall"],
             "f1": 100 * r["f1"], "support": r["support"]} for r in per_class]
