"""What can be checked of a training configuration before any process starts, without decoding an image.

The data source's images are counted (files in a folder source's class folders; CIFAR's published sizes), the
validation holdout and ``train_limit`` are applied to the count, and the batch must fit in what is left; a run
that holds nothing out must have a test split to score itself on. ``senet train`` runs :func:`preflight` before
it loads the data, the dashboard's Train form before it launches a process: both say the same one line.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..data import CIFAR_SOURCES, DataError, folder_root, parse_spec
from ..data.splits import resolve_val_size
from .settings import (SAMPLE_NOT_FOR_TRAINING, ConfigError, TrainConfig, check_batch_size, field_problems,
                       fields_by_name, make_config)

__all__ = ["CIFAR_IMAGES", "source_images", "train_images", "preflight", "no_test_split", "check_settings"]

CIFAR_IMAGES = {"train": 50_000, "test": 10_000}  # CIFAR-10 and CIFAR-100 alike


def no_test_split(spec: str) -> str:
    """The message for a run that holds nothing out (``val_size`` 0) on a source without a test split."""
    return (f"val_size 0 trains on every training image and scores the run on the test split, but {spec} has no "
            "test split")


def _folder_count(path: Path, part: str) -> int:
    """Files in the class folders of ``path/part`` (hidden ones skipped, as the decoder skips them); raises
    :class:`DataError` with the decoder's own message for a missing folder, no classes, one class or an empty one."""
    root = folder_root(path, part)
    classes = sorted((e for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")), key=lambda e: e.name)
    if not classes:
        raise DataError(f"{root}: no class subfolders (expected {root}/<class>/<image>)")
    total = 0
    for entry in classes:
        n = sum(1 for f in os.scandir(entry.path) if f.is_file() and not f.name.startswith("."))
        if n == 0:
            raise DataError(f"{entry.path}: class folder '{entry.name}' has no readable images")
        total += n
    if part == "train" and len(classes) < 2:
        raise DataError(f"folder:{path}: only one class ({classes[0].name}); a classifier needs at least two")
    return total


def source_images(spec: str, part: str = "train") -> int:
    """How many images ``part`` ('train' or 'test') of a data source holds, counted without decoding any
    (a folder's unreadable files count here and are skipped later, so this is an upper bound for folders)."""
    kind, path = parse_spec(spec)
    if kind in CIFAR_SOURCES:
        return CIFAR_IMAGES[part]
    if kind == "sample":
        raise DataError(SAMPLE_NOT_FOR_TRAINING)
    return _folder_count(path, part)


def train_images(config: TrainConfig) -> int:
    """The images a run of ``config`` trains on: the source's training images less the validation holdout, at
    most ``train_limit``."""
    n = source_images(config.data, "train")
    held_out = resolve_val_size(config.val_size, n)
    left = n - held_out
    return min(left, config.train_limit) if config.train_limit else left


def preflight(config: TrainConfig) -> int:
    """Raise :class:`DataError` or :class:`~senet.training.settings.ConfigError` for what would stop the run
    before its first step; returns the number of training images (see :func:`train_images`)."""
    n = train_images(config)
    if config.val_size == 0:
        kind, path = parse_spec(config.data)
        if kind == "folder" and not (path / "test").is_dir():
            raise DataError(no_test_split(config.data))
    check_batch_size(config.batch_size, n)
    return n


def _field_of(message: str, names: set[str], fallback: str) -> str:
    """The setting a one-line message is about: its first word when that names a setting (``batch_size 64 is
    larger ...``, ``reduction 17 ...``), else ``fallback``."""
    first = message.split(" ", 1)[0].strip(":'\"")
    return first if first in names else fallback


def check_settings(values: dict[str, Any]) -> tuple[TrainConfig | None, dict[str, str]]:
    """Everything that can be checked of a new run's settings before a process starts, in ``senet train``'s
    words: each field on its own (:func:`~senet.training.settings.field_problems`), then the whole configuration
    (:func:`~senet.training.settings.make_config`: the model's options, e.g. r against the narrowest SE stage),
    then the data (:func:`preflight`: the source, the holdout, the batch against the training images).

    Returns the configuration (None when a check failed) and the problems by setting name (a data problem under
    ``data``); the dashboard's Train form shows them under its fields and starts nothing while there is one.
    """
    values = dict(values)
    names = set(fields_by_name())
    problems = field_problems(values)
    if problems:
        return None, problems
    model, recipe = values.pop("model", "se_airnet"), values.pop("recipe", "fast")
    try:
        config = make_config(model, recipe, **values)
        preflight(config)
    except ConfigError as exc:
        return None, {_field_of(str(exc), names, "model"): str(exc)}
    except DataError as exc:
        return None, {_field_of(str(exc), names, "data"): str(exc)}
    return config, {}
