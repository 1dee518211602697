"""The *Importance* view's figure: one block's channels for one image, each channel's gate against its importance
(the drop in the true class's log-probability, in nats, when its gate alone is set to 0)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .figures import ACCENT, PALETTE, _layout

__all__ = ["gate_importance_figure"]


def gate_importance_figure(gates: np.ndarray, exact: np.ndarray, estimate: np.ndarray | None = None,
                           followed: int | None = None, title: str = "", target_name: str = "the true class",
                           height: int = 380) -> go.Figure:
    """A scatter of each channel's gate (x) against its exact importance (y, nats), the first-order estimate as
    hollow markers beside it, the ``followed`` channel ringed; every point names its channel on hover and carries
    it as ``customdata`` (a click picks it)."""
    channels = np.arange(len(gates))
    est = np.full(len(gates), np.nan) if estimate is None else np.asarray(estimate, dtype=float)
    hover = [f"channel {c}<br>gate {g:.3f}<br>drop in log p({target_name}): {e:+.4f} nats (ablation)"
             f"<br>first-order estimate {f:+.4f} nats" for c, g, e, f in zip(channels, gates, exact, est)]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=gates, y=exact, mode="markers", name="by ablation (gate set to 0)",
                             marker=dict(color=PALETTE[0], size=7, opacity=0.8), customdata=channels,
                             hovertext=hover, hoverinfo="text"))
    if estimate is not None:
        fig.add_trace(go.Scatter(x=gates, y=est, mode="markers", name="first-order estimate",
                                 marker=dict(color=PALETTE[1], size=6, symbol="circle-open"), customdata=channels,
                                 hovertext=hover, hoverinfo="text"))
    if followed is not None and 0 <= followed < len(gates):
        fig.add_trace(go.Scatter(x=[gates[followed]], y=[exact[followed]], mode="markers+text",
                                 name=f"channel {followed} (followed)", text=[f"ch {followed}"],
                                 textposition="top center", customdata=[followed], hovertext=[hover[followed]],
                                 hoverinfo="text", marker=dict(color="rgba(0,0,0,0)", size=15,
                                                               line=dict(color=ACCENT, width=2))))
    fig.add_hline(y=0, line=dict(color="#999", width=1, dash="dot"))
    _layout(fig, title or None, height=height, hovermode="closest",
            xaxis=dict(title="gate (0 = channel suppressed, 1 = passed through)"),
            yaxis=dict(title=f"drop in log p({target_name}), nats"))
    return fig
