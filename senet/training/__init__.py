"""Training: the settings and recipes, the loop, the recorder that writes a run directory, and that directory's
contract (:mod:`senet.training.runs`). Depends on :mod:`senet.data`, :mod:`senet.models`,
:mod:`senet.checkpoint` and :mod:`senet.analysis` (validation runs through the same code as evaluation).
"""
from .distributed import hardware
from .loop import Callback, train
from .optim import lr_factor, make_optimizer, param_groups
from .runs import make_run_dir
from .settings import (FAMILY_RECIPES, RECIPES, ConfigError, Setting, TrainConfig, add_config_arguments,
                       config_from_record, config_overrides, form_fields, make_config, setting, validate_config)

__all__ = ["hardware", "Callback", "train", "lr_factor", "make_optimizer", "param_groups", "make_run_dir",
           "FAMILY_RECIPES", "RECIPES", "ConfigError", "Setting", "TrainConfig", "add_config_arguments",
           "config_from_record", "config_overrides", "form_fields", "make_config", "setting", "validate_config"]
