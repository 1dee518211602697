"""senet: Squeeze-and-Excitation networks on CIFAR-10 -- models, training, evaluation, excitations.

Hu, Shen, Sun, "Squeeze-and-Excitation Networks" (arXiv 1709.01507). This
package holds all computation behind the SENet Explorer dashboard and the
``senet`` command line; it never imports streamlit. Its layers, each importing
only those before it: ``files``; ``data`` and ``models``; ``checkpoint``;
``analysis``; ``training``; ``cli``.
"""
from .analysis import Evaluation, evaluate, evaluate_checkpoint, predict, run_over_split
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, open_checkpoint, save_checkpoint
from .data import DataError, ImageError, load_split, open_image, preprocess
from .models import SEBlock, SeedSEBlock, create_model, excitations, gate_overrides, list_models, model_info, \
    se_blocks

__all__ = [
    "SEBlock", "SeedSEBlock", "create_model", "list_models", "excitations", "gate_overrides", "se_blocks",
    "model_info", "save_checkpoint", "load_checkpoint", "open_checkpoint", "Checkpoint", "CheckpointError",
    "preprocess", "predict", "open_image", "ImageError", "load_split", "DataError", "evaluate", "evaluate_checkpoint",
    "Evaluation", "run_over_split",
]
__version__ = "0.2.0"
