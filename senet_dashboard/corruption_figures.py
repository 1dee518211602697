"""The *Corruption* view's figure: each SE block's gate shift when one image is corrupted (the mean absolute gate
change over the block's channels), the followed block marked."""
from __future__ import annotations

import plotly.graph_objects as go

from .figures import ACCENT, PALETTE, _layout

__all__ = ["block_shift_figure"]


def block_shift_figure(blocks: list[str], mean_abs: list[float], cosine: list[float], followed: str | None = None,
                       height: int = 300) -> go.Figure:
    """One bar per block (in network order): the mean over its channels of ``|gate after - gate before|``; the
    cosine distance between the two gate vectors on hover; the ``followed`` block's bar outlined."""
    hover = [f"{b}<br>mean |gate change| {m:.4f}<br>cosine distance {c:.4f}"
             for b, m, c in zip(blocks, mean_abs, cosine)]
    fig = go.Figure(go.Bar(
        x=blocks, y=mean_abs, name="mean |gate change|", hovertext=hover, hoverinfo="text",
        text=[f"{m:.3f}" for m in mean_abs], textposition="outside", cliponaxis=False,
        marker=dict(color=[ACCENT if b == followed else PALETTE[0] for b in blocks])))
    return _layout(fig, None, height=height, showlegend=False,
                   xaxis=dict(title="SE block (input side first)"),
                   yaxis=dict(title="mean |gate after − gate before|", rangemode="tozero"))
