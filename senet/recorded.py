"""Which split a run's recorded figures are on, and reading them back from a record.

A run with a validation holdout (``val_size`` > 0) scores itself on it after every epoch and records
``val_loss``, ``val_acc`` and ``val_acc_tta``; ``best.pt`` is its best epoch on that split. A run trained on
every training image (``val_size`` 0, "train on everything") has no holdout: it scores itself on the test
split, records ``test_loss``, ``test_acc`` and ``test_acc_tta`` instead, and selects nothing on it (``best.pt``
is its last epoch). A record is a checkpoint's card, an epoch row of the history, or a run's status; cards and
statuses say ``scored_on`` outright, an epoch row says it by its keys.
"""
from __future__ import annotations

from typing import Any, Mapping

__all__ = ["SCORED_SPLITS", "scored_split_for", "scored_split", "recorded", "split_words"]

SCORED_SPLITS = ("val", "test")
_WORDS = {"val": "validation", "test": "test", "train": "training"}


def scored_split_for(val_size: float | int) -> str:
    """The split a run with this ``val_size`` scores itself on: ``test`` when nothing is held out, else ``val``."""
    return "test" if val_size == 0 else "val"


def scored_split(record: Mapping[str, Any] | None) -> str:
    """The split the recorded figures of ``record`` are on (``val`` for records older than this rule)."""
    record = record or {}
    if record.get("scored_on") in SCORED_SPLITS:
        return record["scored_on"]
    return "test" if any(f"test_{what}" in record for what in ("acc", "loss", "acc_tta")) else "val"


def recorded(record: Mapping[str, Any] | None, what: str = "acc") -> Any:
    """The recorded figure ``what`` (``acc``, ``acc_tta``, ``loss``) of ``record`` on its scored split, or None."""
    return (record or {}).get(f"{scored_split(record)}_{what}")


def split_words(split: str) -> str:
    """A split in words for labels: ``validation``, ``test``, ``training``."""
    return _WORDS.get(split, split)
