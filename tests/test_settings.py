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
    """A hypothetical new hyperparameter, declared in one line as the README shows."""

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


def test_the_dataclass_repeats_no_recipe_value() -> None:
    """Defaults come from the recipe table: a hyperparameter a recipe sets has no default in the dataclass."""
    recipe_keys = set().union(*RECIPES.values())
    defaulted = {f.name for f in config_settings() if f.default is not MISSING}
    assert not recipe_keys & defaulted, f"declared twice: {sorted(recipe_keys & defaulted)}"


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


@pytest.mark.parametrize("value", [0, -0.5, 2.5, float("nan"), True, "0.1", None])
def test_anything_else_is_not_a_validation_size(value) -> None:
    with pytest.raises(ValueError, match="val_size must be a fraction in"):
        val_size_value(value)
