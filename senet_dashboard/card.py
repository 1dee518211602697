"""What the model card and the Confusion explorer say about a checkpoint's recorded figures (no streamlit).

:func:`epoch_summary` tells the best epoch from the number trained; :func:`loss_gap_note` explains, from
the recorded recipe, why the validation loss sits below the training loss; :func:`recorded_accuracy` is the
accuracy the trainer recorded for a split (only the split the checkpoint scored itself on has one: its validation
split, or the test split for a run trained on every training image; and only on those same images, by their data
fingerprint), and
:func:`has_test_split` says whether a data source has test images to recompute on.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from senet.data import CIFAR_SOURCES, DataError, DataMatch, parse_spec, recorded_fingerprints
from senet.recorded import recorded, scored_split, split_words

__all__ = ["pts", "data_statement", "epoch_summary", "smoothed_loss_floor", "loss_gap_note", "recorded_accuracy",
           "not_compared_note", "recompute_scope", "has_test_split", "jpeg_copy"]


def pts(new: float, old: float) -> str:
    """An accuracy difference in percentage points: ``pts(0.9228, 0.9222) == "+0.06 pts"``."""
    return f"{(new - old) * 100:+.2f} pts"


def epoch_summary(meta: dict, status: dict | None = None) -> dict | None:
    """The best validation epoch apart from the number of epochs trained; None without a history, and None for a
    run scored on the test split (trained on every image: nothing is selected on test, these are its last weights).

    ``meta``: the checkpoint's metadata; ``status``: its run's ``status.json`` when it sits in a run directory.
    Returns ``best`` (epoch), ``best_val_acc``, ``epoch`` (of these weights), ``trained`` (int or None when
    unknown), ``planned`` (the configured number or None), ``value`` (e.g. "79 of 80") and ``help`` (a sentence).
    """
    rows = [r for r in meta.get("history") or [] if r.get("val_acc") is not None]
    if not rows or scored_split(meta) == "test":
        return None
    best = max(rows, key=lambda r: r["val_acc"])  # the first of equal bests, as the trainer keeps it
    best_epoch = int(best.get("epoch", rows.index(best) + 1))
    epoch = int(meta.get("epochs") or rows[-1].get("epoch", len(rows)))
    planned = (meta.get("config") or {}).get("epochs")
    trained = None
    if status and status.get("epoch") is not None and status.get("state") in ("finished", "stopped", "running",
                                                                                "failed"):
        trained = int(status["epoch"])
    elif planned is not None and epoch >= int(planned):
        trained = int(planned)
    out_of = trained if trained is not None else planned if planned is not None else epoch
    sentence = (f"Epoch {best_epoch} had the best val accuracy recorded in training ({best['val_acc']:.2%})")
    if trained is not None:
        sentence += f", of the {trained} epochs trained" + (" so far" if status and status.get("state") == "running"
                                                             else "")
    elif planned is not None:
        sentence += (f", of the {planned} epochs the run was set to train; this file's history ends at epoch "
                     f"{epoch} (a best checkpoint is written at its best epoch), so later epochs are not recorded "
                     "here")
    sentence += f". These weights are from epoch {epoch}."
    return {"best": best_epoch, "best_val_acc": float(best["val_acc"]), "epoch": epoch, "trained": trained,
            "planned": planned, "value": f"{best_epoch} of {out_of}", "help": sentence}


def smoothed_loss_floor(label_smoothing: float, classes: int) -> float:
    """The lowest cross-entropy a model can reach against label-smoothed targets: their entropy (nats)."""
    eps, k = float(label_smoothing), int(classes)
    if eps <= 0 or k < 2:
        return 0.0
    true, other = 1 - eps + eps / k, eps / k
    return -(true * math.log(true) + (k - 1) * other * math.log(other))


def _augmentations(config: dict) -> list[str]:
    parts = []
    if config.get("crop_pad"):
        parts.append(f"random crops padded by {config['crop_pad']} px")
    if config.get("flip", "none") != "none":
        parts.append("horizontal flips")
    if config.get("cutout"):
        parts.append(f"{config['cutout']}×{config['cutout']} cutout")
    return parts


def loss_gap_note(config: dict, history: list[dict], classes: int) -> str | None:
    """One sentence on how the last epoch's held-out loss stands against its training loss, and why.

    "Why the validation loss sits below the training loss" (from the recorded recipe: averaging over a changing
    epoch, label smoothing, augmentation) only when it does; a held-out loss above the training loss is said as
    it is, with the ratio. None when the checkpoint records no recipe or the last epoch has no two losses.
    """
    last = history[-1] if history else {}
    held, train_loss = recorded(last, "loss"), last.get("train_loss")
    if not config or not isinstance(held, (int, float)) or not isinstance(train_loss, (int, float)) \
            or not (math.isfinite(held) and math.isfinite(train_loss)) or train_loss <= 0:
        return None
    held_out = split_words(scored_split(last))
    at = f"{held:.3f} against {train_loss:.3f} at the last epoch" + (f", {last['epoch']}" if last.get("epoch") else "")
    if held >= train_loss:
        return (f"The {held_out} loss sits above the training loss ({at}), {held / train_loss:.1f}× as high: the "
                "model fits the images it trains on better than held-out ones.")
    eps = float(config.get("label_smoothing") or 0)
    augment = _augmentations(config)
    train = ["the training loss is averaged over each epoch while the weights change"]
    if eps > 0:
        train.append(f"includes label smoothing {eps:g} (so it cannot fall below "
                     f"{smoothed_loss_floor(eps, classes):.2f} with {classes} classes)")
    train.append("is computed on augmented images (" + ", ".join(augment) + ")" if augment
                 else "is computed in training mode")
    sentence = ", ".join(train[:-1]) + (", and " if len(train) > 1 else "") + train[-1]
    return (f"Why the {held_out} loss sits below the training loss ({at}): "
            + sentence + f"; the {held_out} loss is computed after the epoch on clean images"
            + (", without smoothing." if eps > 0 else "."))


def recorded_accuracy(meta: dict, split: str, tta: bool, match: DataMatch) -> float | None:
    """The accuracy recorded in training for this split (with or without TTA), when the data shown is the one it
    was recorded on.

    The trainer records only the split it scores itself on (its validation split, ``val_acc``; or, for a run
    trained on every training image, the test split, ``test_acc``), so any other split has none; ``match``
    (:func:`senet.data.match_split`) says whether the data shown holds those same images (by fingerprint, or by
    path for a checkpoint that records none): a subset of them, or other images, have none either.
    """
    if split != scored_split(meta) or not match.same:
        return None
    value = recorded(meta, "acc_tta" if tta else "acc")
    return None if value is None else float(value)


def not_compared_note(match: DataMatch) -> str:
    """Why a recomputed figure is not set beside the recorded one, from how the data relates to the checkpoint's."""
    if match.relation == "subset":
        return (f"these are {match.note}, so they are not compared with the recorded figure, which is on the whole "
                "split")
    if match.different:
        return f"{match.note}, so it is not compared with the recorded figure"
    return match.note


def recompute_scope(meta: dict, spec: str = "") -> tuple[str, str]:
    """The val split of data source ``spec`` a recomputation reads, in words that claim nothing unchecked, and a
    sentence on how it is told whether those are the checkpoint's own held-out images (by data fingerprint, or by
    path for a checkpoint that records none) once they are read; that sentence is empty for a model with no split
    of ours. The bundled sample is never split: it is some images of a val split."""
    if meta.get("external"):
        return "the val split (not held out from this ImageNet model, which was trained elsewhere)", ""
    if meta.get("imported_from"):
        return ("the val split (not held out from an imported model: its source may have trained on every training "
                "image)"), ""
    how = "by their data fingerprint" if recorded_fingerprints(meta) else \
        "by path only: this checkpoint records no data fingerprint"
    if spec.strip() == "sample":
        return ("the bundled sample, some images of a held-out val split",
                f"Whether that split is this checkpoint's own is checked {how}.")
    seed = meta.get("split_seed", (meta.get("config") or {}).get("split_seed"))
    return ("the val split as this checkpoint drew it" + (f" (split_seed {seed})" if seed is not None else ""),
            f"Whether these are its own held-out images is checked {how}.")


def has_test_split(spec: str, data_dir: str | os.PathLike) -> bool:
    """Whether the data source has test images on disk (``folder:`` with a test/ folder; downloaded CIFAR-10/100)."""
    try:
        kind, path = parse_spec(spec)
    except DataError:
        return False
    if kind == "folder":
        return (path / "test").is_dir()
    if kind in CIFAR_SOURCES:
        return (Path(data_dir) / CIFAR_SOURCES[kind].folder / CIFAR_SOURCES[kind].test_file).is_file()
    return False


def has_val_split(spec: str) -> bool:
    """Whether the data source has training images to hold a val split out of (a ``folder:`` of test photos
    alone, for an ImageNet model, has none)."""
    try:
        kind, path = parse_spec(spec)
    except DataError:
        return False
    return (path / "train").is_dir() if kind == "folder" else True


JPEG_SHIFT_NOTE = ("JPEG at quality 75 is a real shift: a ResNet-20 trained on the original CIFAR-10 scores 81% on "
                   "this copy's test split against 91.7% on the original, so these figures must not be assumed for "
                   "torchvision's original CIFAR-10 test split; a JPEG-trained model on the original is unmeasured here")


# The JPEG q75 copy of CIFAR-10, the shipped checkpoints' data, known by its content: the data fingerprints of
# its 45,000 training and 5,000 validation images (val_size 5000, split_seed 0; checkpoints/README.md), else the
# name a run records for it (--dataset-name). Never by the path text of a data source.
JPEG_COPY_FINGERPRINTS = frozenset({"sha256:6b287c7a138d4ed88232929f823490a0",
                                    "sha256:d72c2709db9bf51b492bdeff7ed97b27"})
JPEG_COPY_NAME = "JPEG q75 copy"


def jpeg_copy(meta: dict) -> bool:
    """Whether the checkpoint's recorded data is the JPEG q75 copy of CIFAR-10: a recorded data fingerprint of
    it, or a recorded dataset name that says so (a name, not the data source's path, which may say "jpeg" of
    any folder)."""
    if set((recorded_fingerprints(meta) or {}).values()) & JPEG_COPY_FINGERPRINTS:
        return True
    specs = {meta.get("data_spec"), (meta.get("config") or {}).get("data")}
    name = meta.get("dataset_name") or (meta.get("config") or {}).get("dataset_name") or (
        meta.get("dataset") if meta.get("dataset") not in specs else None)
    return JPEG_COPY_NAME.lower() in str(name or "").lower()


def data_statement(meta: dict) -> str:
    """One line saying on which data the recorded figures were measured, and what they do not tell."""
    dataset = str(meta.get("dataset") or meta.get("data_spec") or (meta.get("config") or {}).get("data") or "")
    if meta.get("external"):
        return "A library's ImageNet model: no figure here was measured by this project unless recomputed below."
    if meta.get("imported_from"):
        return (f"Imported from {meta['imported_from']}: any figure it carries is its source's own, on the source's "
                "data; this project measured nothing on it unless recomputed here.")
    if not dataset:
        return "The data these figures were measured on is not recorded in this checkpoint."
    if scored_split(meta) == "test":
        line = (f"Recorded figures are on the **test split** of **{dataset}**: the model trained on every training "
                "image (no validation holdout), and nothing was selected on the test split (the last epoch is kept)")
    else:
        line = f"Recorded figures are on held-out images of **{dataset}**, the data it was trained on"
    if jpeg_copy(meta):
        return f"{line}. {JPEG_SHIFT_NOTE}."
    return f"{line}; on other data they are unmeasured."
