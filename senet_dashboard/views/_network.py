"""The explorer's network diagram: where each SE block sits, this image's mean gate per block, and the block
every view follows (picked here)."""
from __future__ import annotations

import streamlit as st

from senet.analysis.explanation import Explanation
from senet.models.gates import module_paths
from senet.models.outline import OutlineBlock, gate_position, network_outline
from senet_dashboard.svg_figures import network_svg
from senet_dashboard.views._context import PageContext
from senet_dashboard.views._explorer_state import Keys


@st.cache_resource(max_entries=16, show_spinner=False)
def _outline(path: str, stamp: float, _ctx: PageContext) -> list[OutlineBlock]:
    return network_outline(_ctx.checkpoint.model)


def network_section(ctx: PageContext, result: Explanation) -> OutlineBlock:
    """Draw the diagram and the block picker; returns the chosen block."""
    outline = _outline(ctx.path, ctx.stamp, ctx)
    names = [b.name for b in outline]
    if st.session_state.get(Keys.BLOCK) not in names:
        st.session_state[Keys.BLOCK] = names[-1]
    chosen = st.session_state[Keys.BLOCK]
    means = {b: float(g.mean()) for b, g in result.gates.items()}
    st.image(network_svg(outline, means, chosen), width="content")
    st.pills("SE block", names, key=Keys.BLOCK, required=True, label_visibility="collapsed",
             format_func=_short, help="The block every view follows; its cell is outlined in red above.")
    block = next(b for b in outline if b.name == st.session_state[Keys.BLOCK])
    paths = module_paths(ctx.checkpoint.model)
    st.caption(f"**{block.name}**: squeeze (mean over H×W) → FC {block.channels}→{block.hidden} → ReLU → FC "
               f"{block.hidden}→{block.channels} → gate, which scales the {block.channels} channels "
               f"{gate_position(ctx.checkpoint.name, ctx.checkpoint.options, block.name, paths.get(block.name, ''))}"
               ". Cell colour: this image's mean gate "
               f"(0 dark, 1 yellow); hover a cell for its figures.")
    return block


def _short(name: str) -> str:
    """``stage2.block3`` -> ``2.3``; other names as they are, shortened from the left."""
    parts = name.split(".")
    if len(parts) == 2 and parts[0].startswith("stage") and parts[1].startswith("block"):
        return f"{parts[0][5:]}.{parts[1][5:]}"
    return name if len(name) <= 18 else "…" + name[-17:]
