"""Every training setting, declared once: its help, type and bounds, and the recipes that give its defaults.

Each :class:`TrainConfig` field is declared with :func:`setting`. From that one declaration come

* the validation (:func:`validate_config`: type, bounds, choices, and the field's own ``check``),
* the ``senet train`` flags (:func:`add_config_arguments`, one ``--flag`` per field), and
* the dashboard's Train form (:func:`form_fields`: one widget per field that has a ``label``).

Hyperparameters without a default (``epochs``, ``lr``, ...) take their values from a recipe
(:data:`RECIPES`, with per-family changes in :data:`FAMILY_RECIPES`); :func:`make_config` applies the
recipe and then the caller's overrides. Adding a setting is one field here
(see docs/development.md, "Adding a setting").
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable

import torch

from ..data import DEFAULT_DATA_DIR, DataError, parse_spec, parse_val_size, val_size_value
from ..models import list_models, model_spec
from ..models.resnet import check_stages
from ..records import FINITE, FLAG, INTEGER, TEXT, Kind

__all__ = ["Setting", "setting", "TrainConfig", "config_shape", "ConfigError", "RECIPES", "FAMILY_RECIPES", "SCHEDULES",
           "make_config", "validate_config", "add_config_arguments", "config_overrides", "env_values", "config_flags",
           "field_problems", "form_fields", "FormField", "config_record", "config_settings", "check_world_size",
           "check_batch_size"]

SCHEDULES = ("constant", "step", "cosine", "onecycle")
# A run shorter than its recipe keeps the recipe's warm-up epochs, but never more than this share of training
# (measured at 4 epochs on 20,000 images: fast's 2.4 warm-up epochs scored about 2 points above its 20% share).
SHORT_RUN_MAX_WARMUP_SHARE = 0.6


SAMPLE_NOT_FOR_TRAINING = ("data 'sample': the bundled sample holds only held-out validation images; "
                           "train on cifar10, cifar100 or folder:PATH")


class ConfigError(ValueError):
    """An invalid training configuration; the message names the field and the problem."""


@dataclass(frozen=True)
class Setting:
    """How one configuration field is described, parsed, checked and shown.

    ``kind`` is int, float, bool or str; ``low``/``high`` bound numbers (``low_open``/``high_open``
    exclude the bound); ``choices`` lists the allowed strings; ``optional`` admits None. ``parse``
    turns command-line text into a value, ``check`` raises ValueError for a value the bounds cannot
    describe. ``flag`` puts the field on the command line; ``label`` (and ``row``) on the Train form.
    ``model_option`` marks an option of the model (passed to :func:`senet.create_model` when the
    model takes it); ``se_only`` marks a field that only matters for a model with SE blocks.
    """

    help: str
    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    parse: Callable[[str], Any] | None = None
    check: Callable[[Any], Any] | None = None
    flag: bool = True
    env: str | None = None
    label: str = ""
    row: int = 0
    model_option: bool = False
    se_only: bool = False


def setting(default: Any = MISSING, **description: Any) -> Any:
    """A :class:`TrainConfig` field with its :class:`Setting`; no ``default``: the recipe gives it."""
    return field(default=default, metadata={"setting": Setting(**description)})


def _check_device(value: str) -> None:
    if value == "auto":
        return
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {value!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {value!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {value!r}: CUDA is not available on this machine")


def _check_model(value: str) -> None:
    if value not in list_models():
        raise ValueError(f"unknown model {value!r}; known models: {', '.join(list_models())}")


def _check_recipe(value: str) -> None:
    if value not in RECIPES:
        raise ValueError(f"unknown recipe {value!r}; known recipes: {', '.join(RECIPES)}")


def _check_data(value: str) -> None:
    try:
        kind, _ = parse_spec(value)
    except DataError as exc:
        raise ValueError(str(exc)) from None
    if kind == "sample":
        raise ValueError(SAMPLE_NOT_FOR_TRAINING)


@dataclass(kw_only=True)
class TrainConfig:
    """Everything needed to reproduce a run. Batch size and lr are global (all processes)."""

    model: str = setting("se_airnet", kind=str, check=_check_model,
                         help="model name (see `senet info --list`)")
    recipe: str = setting("fast", kind=str, check=_check_recipe,
                          help="recipe giving the defaults: seed | fast | paper | airbench94 | long (see RECIPES)")
    data: str = setting("cifar10", kind=str, check=_check_data, env="SENET_DATA", label="Data source", row=2,
                        help="dataset spec: cifar10 | cifar100 | folder:PATH (default: $SENET_DATA or cifar10)")
    data_dir: str = setting(DEFAULT_DATA_DIR, kind=str, help="where cifar10/cifar100 are downloaded and caches live")
    dataset_name: str = setting("", kind=str, help="a human name for the data, kept in the checkpoint")
    # ---- the recipe's hyperparameters (no default here: see RECIPES)
    epochs: int = setting(kind=int, low=1, high=100_000, label="Epochs", row=1, help="epochs to train")
    batch_size: int = setting(kind=int, low=1, high=65_536, label="Batch size", row=1,
                              help="global batch size (all processes together)")
    lr: float = setting(kind=float, low=0, low_open=True, high=100, label="Learning rate", row=1,
                        help="peak learning rate for the mean loss over the global batch")
    momentum: float = setting(kind=float, low=0, high=1, high_open=True, help="SGD momentum")
    nesterov: bool = setting(kind=bool, help="Nesterov momentum")
    weight_decay: float = setting(kind=float, low=0, high=1, label="Weight decay", row=3,
                                  help="L2 weight decay (BatchNorm biases: the same absolute decay)")
    label_smoothing: float = setting(kind=float, low=0, high=1, high_open=True, label="Label smoothing", row=3,
                                     help="label smoothing of the training loss")
    schedule: str = setting(kind=str, choices=SCHEDULES, help="learning-rate schedule")
    warmup_epochs: float = setting(kind=float, low=0, high=100_000,
                                   help="epochs of linear warm-up (default: the recipe's; another --epochs keeps its share "
                                        "when longer, its epochs, up to "
                                        f"{SHORT_RUN_MAX_WARMUP_SHARE * 100:g} percent of the run, when shorter)")
    start_lr_frac: float = setting(kind=float, low=0, high=1, help="warm-up starts at this fraction of lr")
    bias_lr_scale: float = setting(kind=float, low=0, low_open=True, high=1000,
                                   help="learning-rate multiplier of the BatchNorm biases")
    crop_pad: int = setting(kind=int, low=0, high=16, label="Crop padding", row=3,
                            help="random-crop padding in pixels (translate augmentation)")
    pad_mode: str = setting(kind=str, choices=("zeros", "reflect"), help="padding of the random crop")
    flip: str = setting(kind=str, choices=("random", "alternating", "none"),
                        help="horizontal flips: a coin per image per epoch, airbench's alternating flip, or none")
    # ---- options with a default of their own (the behaviour before they existed, so old configs read alike)
    end_lr_frac: float = setting(0.0, kind=float, low=0, high=1,
                                 help="cosine and onecycle schedules end at this fraction of lr")
    lookahead: bool = setting(False, kind=bool, help="airbench's Lookahead: every 5 steps, move a slow copy of the "
                              "weights toward the current ones and reset the weights to it")
    whiten_bias_epochs: int = setting(0, kind=int, low=0, high=100_000, help="AirNet: train the whitening layer's "
                                      "bias for this many epochs, then freeze it (0: never frozen)")
    bn_momentum: float = setting(0.1, kind=float, low=0, low_open=True, high=1,
                                 help="BatchNorm running-statistics momentum, PyTorch's convention (airbench's 0.6 "
                                      "is 0.4 here)")
    tta_level: int = setting(1, kind=int, low=0, high=2, help="test-time augmentation of the recorded val_acc_tta: "
                             "0 none, 1 flip, 2 flip and two one-pixel translations (airbench's level 2)")
    cutout: int = setting(0, kind=int, low=0, high=16, label="Cutout", row=3,
                          help="side of a random square set to the mean in each image (0: off)")
    se_weight_decay: float | None = setting(None, kind=float, low=0, high=1, optional=True, label="SE weight decay",
                                            row=3, se_only=True,
                                            help="weight decay of the SE blocks' FC weights (default: weight_decay)")
    reduction: int = setting(16, kind=int, low=1, high=4096, model_option=True, se_only=True,
                             help="SE reduction ratio r")
    se_squeeze: str = setting("avg", kind=str, choices=("avg", "max", "none"), model_option=True, se_only=True,
                              label="SE squeeze", row=4, help="the squeeze: global average pooling (the paper's), "
                              "max pooling (its Table 11), or none: a per-pixel gate (NoSqueeze, Table 16)")
    se_excitation: str = setting("sigmoid", kind=str, choices=("sigmoid", "tanh", "relu"), model_option=True,
                                 se_only=True, label="SE gate", row=4, help="the gate's nonlinearity: sigmoid "
                                 "(gates in 0..1, the paper's), tanh (-1..1) or ReLU (0 and up), its Table 12")
    se_position: str = setting("standard", kind=str, choices=("standard", "pre", "post", "identity"),
                               model_option=True, se_only=True, label="SE position", row=4,
                               help="ResNets: where the SE block sits (the paper's Fig. 5): before the residual add, "
                                    "before the residual unit, after the add, or on the identity branch")
    se_stages: str = setting("123", kind=str, model_option=True, se_only=True, label="SE stages", row=4,
                             check=check_stages, help="the stages whose blocks carry SE, e.g. 123 (all) or 3 "
                                                      "(the last only): the paper's Table 13")
    width: int = setting(1, kind=int, low=1, high=64, model_option=True, label="Width ×", row=3,
                         help="width multiplier (2 doubles every layer's channels)")
    squeeze: bool = setting(False, kind=bool, model_option=True,
                            help="seed_senet only: apply the squeeze the seed's SE block throws away")
    seed: int = setting(0, kind=int, low=0, high=2**32 - 1, label="Seed", row=1,
                        help="random seed of the initialisation and the data order")
    val_size: float = setting(0.1, kind=float, parse=parse_val_size, check=val_size_value,
                              label="Validation images", row=2,
                              help="validation holdout: a fraction (0.1) or a count (5000) of the training images; "
                                   "0 trains on every training image and scores each epoch on the test split "
                                   "(best.pt is then the last epoch: nothing is selected on test)")
    split_seed: int = setting(0, kind=int, low=0, high=2**32 - 1, help="seed of the validation split")
    train_limit: int = setting(0, kind=int, low=0, high=10**9, label="Train limit", row=2,
                               help="train on a stratified subset of N training images (0: all; short runs)")
    probe_per_class: int = setting(20, kind=int, low=0, high=1000, help="images of each class whose SE gates are "
                                   "recorded after every epoch in RUN_DIR/gates/ (0: none)")
    log_every: int = setting(10, kind=int, low=1, high=1_000_000, label="Log every (steps)", row=2,
                             help="steps between step records in metrics.jsonl")
    micro_batch: int = setting(256, kind=int, low=1, high=65_536,
                               help="CPU only: split each batch into chunks of this size")
    device: str = setting("auto", kind=str, check=_check_device, help="auto | cpu | cuda | cuda:N")
    amp: bool = setting(True, kind=bool, help="CUDA mixed precision (bfloat16 where supported)")
    compile: bool = setting(False, kind=bool, help="torch.compile the model")
    sync_bn: bool = setting(False, kind=bool, help="SyncBatchNorm under torchrun")
    world_size: int = setting(1, kind=int, low=1, high=1_000_000, flag=False,
                              help="number of processes (set by torchrun)")

    def model_options(self) -> dict[str, Any]:
        """Keyword options for :func:`senet.create_model`: the model options this model takes."""
        takes = model_spec(self.model).options
        return {f.name: getattr(self, f.name) for f in config_settings(type(self))
                if f.metadata["setting"].model_option and f.name in takes}

    def augment(self):
        """The batched augmentation this configuration trains with."""
        from ..data import Augment

        return Augment(crop_pad=self.crop_pad, pad_mode=self.pad_mode, flip=self.flip, cutout=self.cutout)


# One visible table of hyperparameters per recipe. ``seed`` is the blog post's recipe exactly; ``fast`` is
# the project's default, tuned for time to accuracy on a small CPU, with per-family changes below; ``paper``
# is He et al.'s CIFAR ResNet recipe, which the SENet paper's CIFAR results use; ``airbench94`` is PyPI
# airbench 0.1.8's airbench94 for the AirNets (its 9.9 epochs rounded to 10); ``long`` is airbench96's
# recipe on the width-2 AirNet (without airbench96's third conv and residual per group).
# airbench states lr and weight decay per 1024 examples for a summed loss, decoupled from momentum m:
# here lr = lr_1024 / (1 + 1 / (1 - m)) for the mean loss, and weight_decay = wd_1024 / (1 + 1 / (1 - m)) / lr.
RECIPES: dict[str, dict[str, Any]] = {
    "seed": dict(epochs=40, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4,
                 label_smoothing=0.0, schedule="constant", warmup_epochs=0.0, start_lr_frac=1.0,
                 bias_lr_scale=1.0, crop_pad=4, pad_mode="zeros", flip="random"),
    "fast": dict(epochs=30, batch_size=512, lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4,
                 label_smoothing=0.1, schedule="onecycle", warmup_epochs=2.0, start_lr_frac=0.1,
                 bias_lr_scale=1.0, crop_pad=4, pad_mode="reflect", flip="alternating"),
    "paper": dict(epochs=164, batch_size=128, lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
                  label_smoothing=0.0, schedule="step", warmup_epochs=0.0, start_lr_frac=1.0,
                  bias_lr_scale=1.0, crop_pad=4, pad_mode="zeros", flip="random"),
    "airbench94": dict(epochs=10, batch_size=1024, lr=11.5 / (1 + 1 / 0.15), momentum=0.85, nesterov=True,
                       weight_decay=0.0153 / 11.5, label_smoothing=0.2, schedule="onecycle", warmup_epochs=2.3,
                       start_lr_frac=0.2, end_lr_frac=0.07, bias_lr_scale=64.0, crop_pad=2, pad_mode="reflect",
                       flip="alternating", lookahead=True, whiten_bias_epochs=3, bn_momentum=0.4, tta_level=2),
    "long": dict(epochs=40, batch_size=1024, lr=9.0 / (1 + 1 / 0.15), momentum=0.85, nesterov=True,
                 weight_decay=0.0153 / 9.0, label_smoothing=0.2, schedule="onecycle", warmup_epochs=9.2,
                 start_lr_frac=0.2, end_lr_frac=0.07, bias_lr_scale=64.0, crop_pad=4, pad_mode="reflect",
                 flip="alternating", cutout=12, width=2, lookahead=True, whiten_bias_epochs=3, bn_momentum=0.4,
                 tta_level=2),
}
# (recipe, model family) -> changes. The airbench94 hyperparameters, converted from its decoupled, summed-loss
# form (lr 10 per 1024, momentum 0.85, wd 0.0153 per 1024) to PyTorch's mean-loss SGD: lr = 10 / (1 + 1 / 0.15)
# = 1.304, weight_decay = 0.00153.
FAMILY_RECIPES: dict[tuple[str, str], dict[str, Any]] = {
    ("fast", "airnet"): dict(epochs=12, batch_size=1024, lr=1.304, momentum=0.85, weight_decay=0.00153,
                             label_smoothing=0.2, warmup_epochs=2.4, start_lr_frac=0.2, bias_lr_scale=64.0,
                             crop_pad=2),
}


def config_settings(cls: type = TrainConfig) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are declared with :func:`setting`, in declaration order."""
    return [f for f in fields(cls) if "setting" in f.metadata]


def recipe_values(recipe: str, model: str) -> dict[str, Any]:
    """The values ``recipe`` gives for ``model``: the recipe's table, then its changes for the model's family."""
    values = dict(RECIPES[recipe])
    values.update(FAMILY_RECIPES.get((recipe, model_spec(model).family), {}))
    return values


def length_warmup(recipe_warmup: float, recipe_epochs: float, epochs: float) -> float:
    """The warm-up epochs for a run of ``epochs`` instead of the recipe's ``recipe_epochs``.

    Longer runs keep the recipe's share of training (airbench's triangle peaks at 23% at any length); shorter
    runs keep the recipe's warm-up epochs, at most :data:`SHORT_RUN_MAX_WARMUP_SHARE` of training, so the
    learning rate still decays.
    """
    share = recipe_warmup * epochs / recipe_epochs
    return max(share, min(recipe_warmup, SHORT_RUN_MAX_WARMUP_SHARE * epochs))


def make_config(model: str = "se_airnet", recipe: str = "fast", cls: type = TrainConfig,
                **overrides: Any) -> TrainConfig:
    """A validated configuration: the recipe's values for ``model``, then ``overrides``.

    ``None`` values in ``overrides`` mean "keep the recipe's value". Changing ``epochs`` without giving
    ``warmup_epochs`` sets the warm-up with :func:`length_warmup`.
    """
    for name, value in (("model", model), ("recipe", recipe)):
        check = fields_by_name(cls)[name].metadata["setting"].check
        try:
            if not isinstance(value, str):
                raise ValueError(f"unknown {name} {value!r}")
            check(value)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    values = recipe_values(recipe, model)
    if overrides.get("epochs") is not None and overrides.get("warmup_epochs") is None:
        values["warmup_epochs"] = length_warmup(values["warmup_epochs"], values["epochs"], overrides["epochs"])
    known = fields_by_name(cls)
    for key, value in overrides.items():
        if key not in known or key in ("model", "recipe"):
            raise ConfigError(f"unknown configuration field {key!r}")
        if value is not None:
            values[key] = value
    missing = [f.name for f in config_settings(cls) if f.default is MISSING and f.name not in values]
    if missing:
        raise ConfigError(f"recipe {recipe!r} gives no value for {', '.join(missing)}")
    config = cls(model=model, recipe=recipe, **values)
    validate_config(config)
    return config


def fields_by_name(cls: type = TrainConfig) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in config_settings(cls)}


def _number_rule(s: Setting) -> str:
    """What a number must be, in words: 'a positive integer', 'an integer in 0..16', ..."""
    noun = "integer" if s.kind is int else "number"
    if s.low == 0 and s.low_open:
        return f"a positive {noun}"
    if s.kind is int and s.low == 0 and s.high is not None and s.high <= 1000:
        return f"an integer in {s.low:g}..{s.high:g}"
    if s.low == 1 and s.kind is int:
        return "a positive integer"
    if s.low == 0:
        return f"a non-negative {noun}"
    return f"a {noun}"


def check_value(name: str, s: Setting, value: Any) -> None:
    """Raise ValueError, naming ``name``, if ``value`` does not fit the setting ``s``."""
    if value is None:
        if s.optional:
            return
        raise ValueError(f"{name} must be set, got None")
    if s.kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    elif s.kind is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        if s.choices and value not in s.choices:
            raise ValueError(f"{name} must be one of {', '.join(s.choices)}, got {value!r}")
    elif s.check is None or s.low is not None:
        ok_type = (int,) if s.kind is int else (int, float)
        rule = _number_rule(s)
        if isinstance(value, bool) or not isinstance(value, ok_type) or not math.isfinite(value):
            raise ValueError(f"{name} must be {rule}, got {value!r}")
        if s.low is not None and (value < s.low or (s.low_open and value == s.low)):
            raise ValueError(f"{name} must be {rule}, got {value!r}")
        if s.high is not None and (value > s.high or (s.high_open and value == s.high)):
            if rule.startswith("an integer in"):
                raise ValueError(f"{name} must be {rule}, got {value!r}")
            raise ValueError(f"{name} must be below {s.high:g}, got {value!r}" if s.high_open
                             else f"{name} must be at most {s.high:g}, got {value!r}")
    if s.check is not None:
        s.check(value)


def validate_config(config: TrainConfig) -> None:
    """Raise :class:`ConfigError` for any field out of range; builds the model (on the meta device) once."""
    try:
        for f in config_settings(type(config)):
            check_value(f.name, f.metadata["setting"], getattr(config, f.name))
        check_world_size(config.batch_size, config.world_size)
        from ..models import create_model

        with torch.device("meta"):  # checks the model's options without allocating the weights
            create_model(config.model, **config.model_options())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def check_batch_size(batch_size: int, train_images: int) -> None:
    """A batch must fit in the training images (after the validation holdout and ``train_limit``)."""
    if batch_size > train_images:
        raise ConfigError(f"batch_size {batch_size} is larger than the {train_images:,} training images")


def check_world_size(batch_size: int, world_size: int) -> None:
    """The global batch must split evenly over the processes (each rank takes batch_size / world_size)."""
    if world_size > 1 and batch_size % world_size:
        raise ConfigError(f"batch_size {batch_size} (global) is not divisible by the {world_size} processes")


# --------------------------------------------------------------------------- the command line
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type = TrainConfig) -> None:
    """One ``--flag`` per setting with ``flag``; a flag not given is None (the recipe's or default value)."""
    for f in config_settings(cls):
        s: Setting = f.metadata["setting"]
        if not s.flag:
            continue
        text = s.help + (f" (one of {', '.join(s.choices)})" if s.choices else "")
        if s.kind is bool:
            parser.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=text)
        else:
            parser.add_argument(_flag(f.name), dest=f.name, type=s.parse or s.kind, default=None, help=text,
                                metavar=f.name.upper())


def config_overrides(args: argparse.Namespace, cls: type = TrainConfig) -> dict[str, Any]:
    """The settings given as flags on the command line (never the environment: see :func:`env_values`)."""
    return {f.name: getattr(args, f.name) for f in config_settings(cls) if getattr(args, f.name, None) is not None}


def env_values(cls: type = TrainConfig) -> dict[str, Any]:
    """The settings an environment variable gives (a setting's ``env``, e.g. ``$SENET_DATA`` for ``data``).

    They only fill what neither a flag nor a recorded configuration gives: a new run's missing flags. A recorded
    config (``--config``), a resumed run and a continued study train what they recorded, whatever the environment
    says. (``data_dir``'s default, ``$SENET_DATA_DIR``, follows the same rule: a record's ``data_dir`` wins.)
    """
    out = {}
    for f in config_settings(cls):
        s: Setting = f.metadata["setting"]
        value = os.environ.get(s.env) if s.env else None
        if value:
            out[f.name] = s.parse(value) if s.parse else value
    return out


def config_flags(config: TrainConfig) -> list[str]:
    """The ``senet train`` flags that give every setting of ``config`` explicitly (None values have no flag:
    they keep their default), so that a command line says what it trains whatever the environment holds."""
    out = []
    for f in config_settings(type(config)):
        s: Setting = f.metadata["setting"]
        value = getattr(config, f.name)
        if not s.flag or value is None:
            continue
        if s.kind is bool:
            out.append(_flag(f.name) if value else "--no-" + f.name.replace("_", "-"))
        else:
            out += [_flag(f.name), repr(value) if isinstance(value, float) else str(value)]
    return out


def field_problems(values: dict[str, Any], cls: type = TrainConfig) -> dict[str, str]:
    """Each given field's problem, in the words ``senet train`` would print (:func:`check_value`); {} when none.

    The one field-by-field validation of the command line and the Train form: the form shows these messages
    under its fields and does not start while there is one.
    """
    known = fields_by_name(cls)
    problems = {}
    for name, value in values.items():
        if name in known:
            try:
                check_value(name, known[name].metadata["setting"], value)
            except ValueError as exc:
                problems[name] = str(exc)
    return problems


# --------------------------------------------------------------------------- the Train form
@dataclass(frozen=True)
class FormField:
    """One widget of the Train form, described from a setting (the page draws it)."""

    name: str
    label: str
    help: str
    kind: type
    low: float | None
    high: float | None
    choices: tuple[str, ...]
    optional: bool
    row: int
    model_option: bool
    se_only: bool


def form_fields(cls: type = TrainConfig) -> list[FormField]:
    """The settings that have a form ``label``, ordered by row then declaration."""
    out = []
    for f in config_settings(cls):
        s: Setting = f.metadata["setting"]
        if s.label:
            out.append(FormField(f.name, s.label, s.help, s.kind, s.low, s.high, s.choices, s.optional, s.row,
                                 s.model_option, s.se_only))
    return sorted(out, key=lambda x: x.row)


# --------------------------------------------------------------------------- config.json
def config_record(config: TrainConfig) -> dict:
    """``config.json``: the configuration plus the batch/lr semantics spelled out."""
    record = dataclasses.asdict(config)
    record["batch_size_per_process"] = config.batch_size // max(config.world_size, 1)
    record["batch_semantics"] = ("batch_size is the global batch (all processes together; each of the world_size "
                                 "processes takes batch_size/world_size); lr applies to the mean loss over the "
                                 "global batch and is not rescaled with world_size")
    return record


def config_from_record(record: dict, cls: type = TrainConfig, **changes: Any) -> TrainConfig:
    """A validated configuration from a ``config.json`` record (unknown keys ignored), with ``changes``."""
    known = fields_by_name(cls)
    values = {k: v for k, v in record.items() if k in known}
    values.update({k: v for k, v in changes.items() if v is not None})
    model, recipe = values.pop("model", None), values.pop("recipe", None)
    if not isinstance(model, str) or not isinstance(recipe, str):
        raise ConfigError("the configuration names no model or recipe")
    return make_config(model, recipe, cls=cls, **values)


def config_shape() -> dict[str, Kind]:
    """``config.json``'s shape for :func:`senet.records.check_record`: each setting's kind as declared here (a
    float setting also takes an integer)."""
    kinds = {int: INTEGER, float: FINITE, str: TEXT, bool: FLAG}
    return {name: kinds[f.metadata["setting"].kind] for name, f in fields_by_name().items()
            if f.metadata["setting"].kind in kinds}
