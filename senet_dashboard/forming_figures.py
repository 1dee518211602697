"""Figures of gates forming during training (:mod:`senet.training.gate_history`)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .figures import PALETTE, _layout, epoch_ticks

__all__ = ["forming_heatmap_figure", "specificity_by_epoch_figure"]


def forming_heatmap_figure(means: np.ndarray, classes: list[str], order: np.ndarray, block: str, epoch: int,
                           gate_range: tuple[float, float] = (0.0, 1.0), height: int = 300) -> go.Figure:
    """Classes x channels: each class's mean gate over the probe images after ``epoch``, channels in ``order``."""
    fig = _layout(go.Figure(), f"{block} after epoch {epoch}: mean gate per class (probe images)", height,
                  hovermode="closest")
    low, high = gate_range
    fig.add_heatmap(z=means[:, order], y=classes, x=list(range(len(order))), colorscale="Viridis",
                    customdata=np.broadcast_to(order, means.shape), zmin=low,
                    zmax=high if np.isfinite(high) else None, colorbar=dict(title="gate", thickness=12),
                    hovertemplate="%{y}, channel %{customdata}: %{z:.3f}<extra></extra>")
    fig.update_xaxes(title_text="channels, highest mean gate at the last epoch first", showticklabels=False)
    return fig


def specificity_by_epoch_figure(epochs: list[int], specificity: list[dict[str, float]], height: int = 300
                                ) -> go.Figure:
    """Per block, how class-specific its gates are after each epoch (std across class means, mean over channels)."""
    fig = _layout(go.Figure(), "Class specificity by depth, epoch by epoch", height,
                  legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top", font=dict(size=10)))
    blocks = list(specificity[-1]) if specificity else []
    for i, block in enumerate(blocks):
        fig.add_scatter(x=epochs, y=[s.get(block) for s in specificity], mode="lines+markers", name=block,
                        line=dict(color=PALETTE[i % len(PALETTE)], width=2), marker=dict(size=5),
                        hovertemplate=f"{block}: %{{y:.3f}}<extra></extra>")
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="std of class-mean gates")
    return epoch_ticks(fig, max(epochs, default=1))
