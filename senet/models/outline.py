"""A network's outline for a diagram: its stages, their SE blocks (C, the hidden width C/r) and where each
block's gate acts."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .gates import block_channels, block_reduction, se_blocks

# where a project ResNet's SE block sits in its residual block (the SENet paper's Fig. 5 / Table 14)
POSITIONS = {
    "standard": "on the residual branch, after its last BN, before the addition (the paper's SE block)",
    "pre": "at the start of the residual branch, on the block's input",
    "post": "after the addition and its ReLU",
    "identity": "on the shortcut branch",
}


@dataclass(frozen=True)
class OutlineBlock:
    """One SE block: its name, stage, channels C, hidden width and reduction ratio r."""

    name: str
    stage: str
    channels: int
    hidden: int
    reduction: float


def network_outline(model: nn.Module) -> list[OutlineBlock]:
    """The model's SE blocks in order, each with its stage (the first part of its name or module path)."""
    blocks = []
    for name, block in se_blocks(model).items():
        channels, r = block_channels(block), block_reduction(block)
        blocks.append(OutlineBlock(name, name.split(".")[0], channels, max(1, round(channels / r)), r))
    return blocks


def gate_position(model_name: str, options: dict, block: str = "", module_path: str = "") -> str:
    """Where the gate acts, in words: from the model's ``se_position`` option (the project's ResNets), the
    AirNet's conv groups, or (other libraries' models) the ``module_path`` of ``block``."""
    if "airnet" in model_name:
        return "at the end of its conv group (conv, pool, BN, GELU, conv, BN, GELU), scaling the group's output"
    if model_name.startswith("seed"):
        return "in each residual block as the seed blog post places it (see the model card for its gate)"
    if "resnet" in model_name and ":" not in model_name:
        return POSITIONS.get(str(options.get("se_position", "standard")), POSITIONS["standard"])
    if module_path and block != module_path:  # a ResNet's block, named as the SENet paper names it
        return (f"where the library's ResNet applies its SE module `{module_path}`, named as the SENet paper names "
                "it (SE_stage_block: stages conv2 to conv5, blocks from 1)")
    return "where the library's model applies its SE module (named by its module path)"
