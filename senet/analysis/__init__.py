"""Analyses of a checkpoint: running it over a split, evaluation, gate ablation, class profiles, comparisons.

Depends on :mod:`senet.data`, :mod:`senet.models` and :mod:`senet.checkpoint`.
"""
from .ablation import MODES, GateAblation, gate_ablation
from .evaluate import Evaluation, checkpoint_and_split, checkpoint_split_options, class_report, evaluate, \
    evaluate_checkpoint
from .profiles import ClassProfiles, class_profiles
from .explanation import Explanation, explain, intervene
from .importance import GateImportance, ImageImportance, exact_importance, first_order_importance, gate_importance, \
    image_importance
from .runner import SplitOutputs, predict, run_over_split, to_probabilities

__all__ = ["MODES", "GateAblation", "gate_ablation", "Evaluation", "checkpoint_and_split", "checkpoint_split_options",
           "class_report", "evaluate", "evaluate_checkpoint", "ClassProfiles", "Explanation", "class_profiles",
           "explain", "intervene", "GateImportance", "ImageImportance", "exact_importance",
           "first_order_importance", "gate_importance", "image_importance", "SplitOutputs", "predict", "run_over_split",
           "to_probabilities"]
