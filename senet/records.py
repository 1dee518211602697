"""The shapes of what senet reads back from its own files, and one check that turns a wrong type into that file's
one-line error.

Checkpoint cards (a checkpoint's ``meta``), ``status.json``, ``config.json``, each ``metrics.jsonl`` record and the
gate files are written by senet, but any of them may be edited, damaged or crafted. Every reader checks what it
read here, once, so pages and commands can rely on the types: a number is a finite int or float (or null, as
senet writes a figure it has not measured; NaN where a diverged run measured it), a setting's number is finite,
text is a string, and so on. Keys not named in a shape pass unchecked.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Mapping

__all__ = ["RecordError", "check_record", "CARD", "STATUS", "METRICS", "EPOCH_ROW", "GATE_PROBE", "RECORDED_CONFIG",
           "Kind", "NUMBER", "FINITE", "INTEGER", "TEXT", "FLAG", "OBJECT", "LIST"]


class RecordError(ValueError):
    """A record of the wrong shape; the message names the file, the key, what was expected and what was found."""


Kind = tuple[str, Callable[[Any], bool]]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return _number(v) and math.isfinite(v)


NUMBER: Kind = ("a number", _number)  # a measured figure: NaN is what a diverged run measured (shown as such)
FINITE: Kind = ("a finite number", _finite)  # a setting
INTEGER: Kind = ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
TEXT: Kind = ("text", lambda v: isinstance(v, str))
FLAG: Kind = ("true or false", lambda v: isinstance(v, bool))
OBJECT: Kind = ("a JSON object", lambda v: isinstance(v, dict))
LIST: Kind = ("a list", lambda v: isinstance(v, list))
NUMBERS: Kind = ("a list of numbers", lambda v: isinstance(v, list) and all(x is None or _number(x) for x in v))
INTEGERS: Kind = ("a list of integers", lambda v: isinstance(v, list)
                  and all(isinstance(x, int) and not isinstance(x, bool) for x in v))
TEXTS: Kind = ("a list of text", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))

_FIGURES = {f"{split}_{what}": NUMBER for split in ("train", "val", "test") for what in ("acc", "acc_tta", "loss")}

EPOCH_ROW: dict[str, Kind] = {"epoch": NUMBER, "lr": NUMBER, "elapsed_s": NUMBER, "step": INTEGER, **_FIGURES}
_HISTORY: Kind = ("a list of epoch records (objects of numbers)", lambda v: isinstance(v, list) and all(
    isinstance(row, dict) and all(k not in EPOCH_ROW or row[k] is None or EPOCH_ROW[k][1](row[k]) for k in row)
    for row in v))

CARD: dict[str, Kind] = {
    **_FIGURES, "epochs": INTEGER, "val_size": NUMBER, "split_seed": INTEGER, "params": INTEGER, "se_params": INTEGER,
    "se_formula": NUMBER, "macs": INTEGER, "wall_time_s": NUMBER, "recipe": TEXT, "dataset": TEXT, "data_spec": TEXT,
    "hardware": TEXT, "run_dir": TEXT, "weights_dtype": TEXT, "exported_from": TEXT, "imported_from": TEXT,
    "scored_on": TEXT, "config": OBJECT, "history": _HISTORY, "data_fingerprint": OBJECT}

STATUS: dict[str, Kind] = {
    "state": TEXT, "pid": INTEGER, "host": TEXT, "pid_start": TEXT, "started_at": NUMBER, "updated_at": NUMBER,
    "error": TEXT, "stopped_by": TEXT, "epoch": INTEGER, "epochs": INTEGER, "step": INTEGER, "total_steps": INTEGER,
    "steps_per_epoch": INTEGER, "best_val_acc": NUMBER, "device": TEXT, "world_size": INTEGER,
    "images_per_s": NUMBER, "loss_ema": NUMBER, "elapsed_s": NUMBER, "scored_on": TEXT, **_FIGURES}

METRICS: dict[str, Kind] = {"type": TEXT, "step": INTEGER, "time": NUMBER, "loss": NUMBER, "lr": NUMBER,
                            "lrs": NUMBERS, "images_per_s": NUMBER, "epochs": INTEGER, "epochs_before": INTEGER,
                            "lr_before": NUMBER, **EPOCH_ROW}

GATE_PROBE: dict[str, Kind] = {"labels": INTEGERS, "classes": TEXTS}

# The recorded-config keys that readers below the training layer use (the card, the held-out split of an
# evaluation, the schedule drawn on the card); training's full shape of config.json is
# :func:`senet.training.settings.config_shape`, and a test checks that the two agree.
RECORDED_CONFIG: dict[str, Kind] = {
    "model": TEXT, "recipe": TEXT, "data": TEXT, "data_dir": TEXT, "dataset_name": TEXT, "epochs": INTEGER,
    "batch_size": INTEGER, "lr": FINITE, "momentum": FINITE, "weight_decay": FINITE, "label_smoothing": FINITE,
    "schedule": TEXT, "warmup_epochs": FINITE, "start_lr_frac": FINITE, "end_lr_frac": FINITE, "val_size": FINITE,
    "split_seed": INTEGER, "train_limit": INTEGER, "seed": INTEGER, "reduction": INTEGER, "width": INTEGER}


def check_record(record: Any, shape: Mapping[str, Kind], source: str | os.PathLike, what: str = "") -> dict:
    """``record`` if it is an object whose named keys have their kinds (null allowed); else :class:`RecordError`
    ``SOURCE: bad 'KEY' in WHAT (expected KIND, got VALUE)`` in one line."""
    label = f" in {what}" if what else ""
    if not isinstance(record, dict):
        raise RecordError(f"{source}: expected a JSON object{label}, got {_shown(record)}")
    for key, (expected, fits) in shape.items():
        value = record.get(key)
        if value is not None and not fits(value):
            raise RecordError(f"{source}: bad '{key}'{label} (expected {expected}, got {_shown(value)})")
    return record


def _shown(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
