"""senet: Squeeze-and-Excitation networks on CIFAR-10 -- models, training, evaluation, excitations.

Hu, Shen, Sun, "Squeeze-and-Excitation Networks" (arXiv 1709.01507). This
package holds all computation behind the SENet Explorer dashboard and the
``python -m senet`` command line; it never imports streamlit.
"""
from .accounting import model_info
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import DataError, load_split
from .evaluate import Evaluation, evaluate, evaluate_checkpoint
from .excitation import excitations, gate_overrides, se_blocks
from .inference import ImageError, open_image, predict, preprocess
from .models import create_model, list_models
from .se import SEBlock, SeedSEBlock

__all__ = [
    "SEBlock", "SeedSEBlock", "create_model", "list_models", "excitations", "gate_overrides", "se_blocks",
    "model_info", "save_checkpoint", "load_checkpoint", "CheckpointError", "preprocess", "predict",
    "open_image", "ImageError", "load_split", "DataError", "evaluate", "evaluate_checkpoint", "Evaluation",
]
__version__ = "0.1.0"
