"""Every training setting is declared once: the command line, the validation and the Train form derive from it."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass

import pytest

from senet.data import parse_val_size, val_size_value
from senet.training import RECIPES, ConfigError, TrainConfig, add_config_arguments, config_overrides, form_fields, \
    make_config, setting
from senet.training.settings import FAMILY_RECIPES, config_from_record, config_record, config_settings


@dataclass(kw_only=True)
class WithDropout(TrainConfig):
    """A hypothetical new hyperparameter, declared in one line as docs/development.md shows."""

    dropout: float = setting(0.0, kind=float, low=0, high=1, high_open=True, label="Dropout", row=3,
                             help="dropout before the classifier")


def test_a_setting_declared_once_reaches_the_command_line_the_validation_and_the_form() -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, WithDropout)
    args = parser.parse_args(["--model", "se_resnet20", "--dropout", "0.25"])
    overrides = config_overrides(args, WithDropout)
    assert overrides == {"model": "se_resnet20", "dropout": 0.25}
    config = make_config(overrides.pop("model"), "fast", cls=WithDropout, **overrides)
    assert config.dropout == 0.25 and config.epochs == RECIPES["fast"]["epochs"]
    assert make_config("se_resnet20", cls=WithDropout).dropout == 0.0, "its declared default"
    with pytest.raises(ConfigError, match="dropout must be below 1, got 1.5"):
        make_config("se_resnet20", cls=WithDropout, dropout=1.5)
    with pytest.raises(ConfigError, match="dropout must be a non-negative number"):
        make_config("se_resnet20", cls=WithDropout, dropout="a lot")
    field = next(f for f in form_fields(WithDropout) if f.name == "dropout")
    assert (field.label, field.kind, field.low, field.high, field.row) == ("Dropout", float, 0, 1, 3)
    assert "dropout" not in {f.name for f in form_fields(TrainConfig)}, "the base configuration is untouched"
    record = config_record(make_config("resnet20", cls=WithDropout, dropout=0.5))
    assert config_from_record(record, cls=WithDropout).dropout == 0.5, "and it travels through config.json"


def test_every_recipe_gives_every_hyperparameter_that_has_no_default_of_its_own() -> None:
    required = {f.name for f in config_settings() if f.default is MISSING}
    assert required >= {"epochs", "lr", "batch_size", "schedule"}
    for name, values in RECIPES.items():
        assert required <= set(values), f"recipe {name} lacks {sorted(required - set(values))}"
    for (recipe, family), changes in FAMILY_RECIPES.items():
        assert recipe in RECIPES and set(changes) <= {f.name for f in config_settings()}, (recipe, family)


def test_no_value_is_declared_twice() -> None:
    """A hyperparameter that every recipe sets has no default in the dataclass; where a recipe sets a field that
    has a default of its own, it sets another value (else the line repeats the default)."""
    shared = set.intersection(*(set(v) for v in RECIPES.values()))
    defaults = {f.name: f.default for f in config_settings() if f.default is not MISSING}
    assert not shared & set(defaults), f"declared twice: {sorted(shared & set(defaults))}"
    for name, values in RECIPES.items():
        repeated = {k for k, v in values.items() if k in defaults and v == defaults[k]}
        assert not repeated, f"recipe {name} repeats the defaults of {sorted(repeated)}"


def test_every_setting_has_help_and_every_flag_parses_to_its_declared_type() -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    for f in config_settings():
        s = f.metadata["setting"]
        assert s.help, f"{f.name} has no help text"
        if s.kind in (int, float) and s.flag and s.low is not None:
            args = parser.parse_args([f"--{f.name.replace('_', '-')}", str(int(s.low) + 1)])
            assert isinstance(getattr(args, f.name), s.kind), f.name


@pytest.mark.parametrize("value, expected", [(0.1, 0.1), (5000, 5000), (5000.0, 5000), (1, 1)])
def test_a_validation_size_is_a_fraction_or_a_count(value, expected) -> None:
    result = val_size_value(value)
    assert result == expected and type(result) is type(expected)
    assert parse_val_size(str(value)) == expected


@pytest.mark.parametrize("value", [-0.5, 2.5, float("nan"), True, "0.1", None])
def test_anything_else_is_not_a_validation_size(value) -> None:
    with pytest.raises(ValueError, match=r"val_size must be 0 \(no holdout"):
        val_size_value(value)


def test_zero_is_no_holdout() -> None:
    assert val_size_value(0) == 0 and type(val_size_value(0)) is int and parse_val_size("0") == 0


def test_the_airbench_recipes_convert_its_decoupled_hyperparameters() -> None:
    """airbench94 (PyPI 0.1.8): lr 11.5 and wd 0.0153 per 1024 examples of a summed loss, momentum 0.85. For the
    mean loss over a batch of 1024 the step is lr / (1 + 1/(1-m)), and the decay per step is the same."""
    c = make_config("se_airnet", "airbench94")
    kilostep = 1024 * (1 + 1 / (1 - 0.85))
    assert c.lr == pytest.approx(11.5 / kilostep * 1024)
    assert c.lr * c.weight_decay == pytest.approx(0.0153 * 1024 / kilostep), "the same decay per step"
    assert (c.lookahead, c.whiten_bias_epochs, c.bn_momentum, c.tta_level) == (True, 3, 0.4, 2)
    assert (c.start_lr_frac, c.end_lr_frac, c.warmup_epochs / c.epochs) == (0.2, 0.07, pytest.approx(0.23))
    paper = make_config("se_resnet56", "paper")
    assert (paper.epochs, paper.batch_size, paper.lr, paper.momentum, paper.weight_decay, paper.schedule) == \
        (164, 128, 0.1, 0.9, 1e-4, "step")
    assert make_config("se_airnet", "long").width == 2


def test_the_bundled_sample_cannot_be_trained_on() -> None:
    with pytest.raises(ConfigError, match="data 'sample': the bundled sample holds only held-out validation images"):
        make_config("se_resnet20", data="sample")
