"""Networks and their SE blocks: the attention layers, the ResNet, AirNet and seed networks, the model
registry, reading and overriding gates, and model accounting. Depends on nothing else in ``senet``."""
from .accounting import model_info
from .gates import capture_gates, excitations, gate_overrides, se_blocks
from .registry import MODELS, ModelSpec, architectures, create_model, list_models, model_spec
from .se import ATTENTION_LAYERS, SEBlock, SeedSEBlock, paper_se, seed_se

__all__ = ["model_info", "capture_gates", "excitations", "gate_overrides", "se_blocks", "MODELS", "ModelSpec",
           "architectures", "create_model", "list_models", "model_spec", "ATTENTION_LAYERS", "SEBlock",
           "SeedSEBlock", "paper_se", "seed_se"]
