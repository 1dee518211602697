"""Data known by its content: the fingerprint of a split's images and labels, and whether data is a checkpoint's.

A fingerprint is ``sha256:`` and 32 hex digits of SHA-256 over the split's shape, its class names, its decoded
uint8 images (N, 3, H, W) and its int64 labels, in the split's order. Two copies of the same images at different
paths give the same fingerprint; a changed pixel, label, class name or order gives another. Hashing CIFAR-10's
45,000 training images takes about 0.2 s, so nothing is cached.

A run records the fingerprints of the splits it uses in every checkpoint (``data_fingerprint``, one per split:
``train`` is the images actually trained on, after a train limit; the scored split is ``val``, or ``test`` for a
run trained on every training image). Whether a data source's split is a checkpoint's own
(:func:`match_split`) and whether two checkpoints were trained on the same data (:func:`match_cards`) is decided
by these, never by the path's text. A checkpoint that records none (older files) falls back to its data source's
path, and the verdict's note says so; an imported or ImageNet model has no split of ours at all.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from .sources import DataError, TensorDataset, parse_spec

__all__ = ["FINGERPRINT_KEY", "fingerprint", "split_fingerprints", "recorded_fingerprints", "DataMatch", "match_split",
           "match_cards", "same_path", "short"]

FINGERPRINT_KEY = "data_fingerprint"  # in a checkpoint's meta: {"train": ..., "val": ...} (or "test")
PREFIX = "sha256:"
_VERSION = b"senet data fingerprint 1\n"
NO_RECORD = "identified by path; this checkpoint records no data fingerprint"


def fingerprint(data: TensorDataset, like: str | None = None) -> str:
    """The fingerprint of ``data``'s images, labels and class names, in its order.

    ``like``: a recorded fingerprint to compare with; one from before this scheme (16 bare hex digits, written by
    runs of 2026-12) is matched by recomputing that older hash, so that those records stay usable.
    """
    images = data.images.contiguous().numpy()
    labels = data.labels.to(torch.int64).numpy()
    if like is not None and not like.startswith(PREFIX):  # the first scheme: classes, images, labels; 16 digits
        digest = hashlib.sha256("|".join(data.classes).encode())
        digest.update(memoryview(images).cast("B"))
        digest.update(labels.tobytes())
        return digest.hexdigest()[:16]
    header = {"shape": list(images.shape), "dtype": str(images.dtype), "classes": list(data.classes)}
    digest = hashlib.sha256(_VERSION + json.dumps(header, sort_keys=True).encode() + b"\n")
    digest.update(memoryview(images).cast("B") if images.size else b"")
    digest.update(labels.astype("<i8").tobytes())
    return PREFIX + digest.hexdigest()[:32]


def split_fingerprints(**splits: TensorDataset) -> dict[str, str]:
    """``{"train": ..., "val": ...}``: what a run records (``split_fingerprints(train=t, val=v)``)."""
    return {name: fingerprint(data) for name, data in splits.items()}


def recorded_fingerprints(card: Mapping | None) -> dict[str, str] | None:
    """The fingerprints a checkpoint records (its ``meta``/``card``), or None when it records none."""
    record = (card or {}).get(FINGERPRINT_KEY)
    if not isinstance(record, Mapping):
        return None
    record = {str(k): v for k, v in record.items() if isinstance(v, str) and v}
    return record or None


def short(value: str) -> str:
    """A fingerprint for people: its first 12 hex digits (``sha256:3f9a…``)."""
    return value.removeprefix(PREFIX)[:12]


@dataclass(frozen=True)
class DataMatch:
    """How some data relates to a checkpoint's own (or two checkpoints' data to each other).

    ``relation``: ``same`` (the same images), ``subset`` (some of them: the bundled sample of the shipped
    checkpoints' val split), ``different``, or ``unknown``; ``by``: ``fingerprint`` or ``path`` (a checkpoint that
    records no fingerprint), empty when unknown; ``note``: one line for a page, saying what and how it was decided.
    """

    relation: str
    by: str
    note: str

    @property
    def same(self) -> bool:
        return self.relation == "same"

    @property
    def different(self) -> bool:
        return self.relation == "different"

    @property
    def by_path(self) -> bool:
        return self.by == "path"


def same_path(a: str, b: str) -> bool:
    """Whether two data specs name one source by their text: the same kind, and for ``folder:`` the same resolved
    directory. Only the fallback for checkpoints that record no fingerprint."""
    try:
        (k1, p1), (k2, p2) = parse_spec(a), parse_spec(b)
    except DataError:
        return False
    if k1 != k2:
        return False
    return p1 is None or Path(p1).expanduser().resolve() == Path(p2).expanduser().resolve()


def _recorded_spec(card: Mapping) -> str | None:
    return card.get("data_spec") or (card.get("config") or {}).get("data")


def _foreign(card: Mapping) -> str | None:
    """Why a checkpoint has no split of our data sources at all (an ImageNet or an imported model), else None."""
    if card.get("external"):
        return "an ImageNet model trained elsewhere: no split of this data source is its own"
    if card.get("imported_from"):
        return "an imported model: the data it was trained on is its source's, unknown here"
    return None


def _split_words(split: str) -> str:
    return {"val": "held-out val split", "test": "test split", "train": "training images"}.get(split, f"{split} split")


def match_split(card: Mapping, split: str, data: TensorDataset, spec: str) -> DataMatch:
    """Whether ``data`` (the ``split`` of data source ``spec``) holds the checkpoint's own ``split`` images.

    By the fingerprint the checkpoint recorded for that split; else by ``spec`` against the data source it records
    (the note says so). The bundled sample is a ``subset`` of the val split it was drawn from.
    """
    foreign = _foreign(card)
    if foreign:
        return DataMatch("unknown", "", foreign)
    words = _split_words(split)
    recorded = (recorded_fingerprints(card) or {}).get(split)
    if recorded is not None:
        if fingerprint(data, like=recorded) == recorded:
            return DataMatch("same", "fingerprint", f"the checkpoint's own {words}: the same {len(data):,} images "
                                                    f"(data fingerprint {short(recorded)})")
        if data.subset_of is not None and data.subset_of == recorded:
            return DataMatch("subset", "fingerprint", f"{len(data):,} images, a subset of this checkpoint's own "
                                                      f"{words} (data fingerprint {short(recorded)})")
        return DataMatch("different", "fingerprint", f"{spec} is not the data this checkpoint was trained on: its "
                                                     f"{split} images differ from the ones it recorded (data "
                                                     f"fingerprint {short(recorded)})")
    trained_on = _recorded_spec(card)
    why = NO_RECORD if not recorded_fingerprints(card) else \
        f"identified by path; this checkpoint records no fingerprint of its {split} split"
    if not trained_on:
        return DataMatch("unknown", "", "this checkpoint records neither a data fingerprint nor its data source")
    if same_path(trained_on, spec):
        return DataMatch("same", "path", f"the checkpoint's own {words} ({why})")
    return DataMatch("different", "path", f"{spec} is not the data source this checkpoint was trained on "
                                          f"({trained_on}; {why})")


def match_cards(a: Mapping, b: Mapping) -> DataMatch:
    """Whether two checkpoints were trained and scored on the same images: by their recorded fingerprints, else by
    the data sources they record (the note says so)."""
    fa, fb = recorded_fingerprints(a), recorded_fingerprints(b)
    comparable = bool(fa and fb) and len({v.startswith(PREFIX) for v in (*fa.values(), *fb.values())}) == 1
    if comparable:
        if fa == fb:
            return DataMatch("same", "fingerprint", "trained and scored on the same images (data fingerprints "
                                                    + ", ".join(f"{k} {short(v)}" for k, v in sorted(fa.items())) + ")")
        differ = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
        return DataMatch("different", "fingerprint", "they were trained or scored on different images (their data "
                                                     f"fingerprints differ: {', '.join(differ)})")
    spec_a, spec_b = _recorded_spec(a), _recorded_spec(b)
    if not spec_a or not spec_b:
        return DataMatch("unknown", "", "a checkpoint records neither a data fingerprint nor its data source")
    note = ("identified by path; " + ("neither records a data fingerprint" if not fa and not fb
                                      else "one of them records no data fingerprint" if not (fa and fb)
                                      else "their data fingerprints were recorded by different versions of senet"))
    if same_path(spec_a, spec_b):
        return DataMatch("same", "path", f"the same data source {spec_a} ({note})")
    return DataMatch("different", "path", f"data {spec_a!r} vs {spec_b!r} ({note})")
