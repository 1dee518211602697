"""Figures of one SE block from the inside (:mod:`senet.analysis.inside`): its steps for one image, and the
feature maps before and after the gate scales them."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from senet.analysis.inside import BlockSteps
from .figures import ACCENT, PALETTE, _layout

__all__ = ["step_rows", "block_steps_figure", "feature_maps_figure"]


def step_rows(steps: BlockSteps) -> list[tuple[str, np.ndarray, str]]:
    """The diagram's rows in the order of the paper's equations: (title, values, colour)."""
    mean = " (spatial mean)" if steps.per_pixel else ""
    pool = {"avg": "mean", "max": "max"}.get(steps.squeeze, "mean")
    squeeze = (f"1. squeeze z = {pool} of u over H×W" if not steps.per_pixel
               else "1. no squeeze: the FCs see every pixel; shown: u's spatial mean")
    sigma = {"sigmoid": "σ", "tanh": "tanh", "relu": "ReLU"}[steps.excitation]
    scaled = "s·u" if steps.bias is None else "σ(w)·u + b"
    rows = [(squeeze, steps.z, PALETTE[0]),
            (f"2. bottleneck h = ReLU(W1·z): C/r = {len(steps.hidden)} numbers{mean}", steps.hidden, PALETTE[4]),
            (f"3. FC2 output a = W2·h{mean}", steps.pre_gate, PALETTE[5]),
            (f"4. gate s = {sigma}(a){mean}", steps.gate, PALETTE[1])]
    if steps.bias is not None:
        rows.append((f"4b. the seed's additive bias b{mean}", steps.bias, PALETTE[6]))
    rows.append((f"5. scaled output x̃ = {scaled}: its spatial mean per channel", steps.out.mean(axis=(1, 2)),
                 PALETTE[2]))
    return rows


def block_steps_figure(steps: BlockSteps, order: np.ndarray | None = None, highlight: int | None = None,
                       row_height: int = 120) -> go.Figure:
    """One bar chart per step, top to bottom; channel rows share ``order`` (default: channel index) and mark
    channel ``highlight``; the bottleneck row shows its C/r numbers in their own order."""
    rows = step_rows(steps)
    fig = make_subplots(rows=len(rows), cols=1, subplot_titles=[r[0] for r in rows], vertical_spacing=0.5 /
                        len(rows) ** 1.3)
    channel_order = np.arange(steps.channels) if order is None else np.asarray(order)
    for i, (title, values, colour) in enumerate(rows, start=1):
        values = np.asarray(values, dtype=np.float32)
        if len(values) == steps.channels:
            ids = channel_order
            colours = [ACCENT if c == highlight else colour for c in ids]
            fig.add_bar(x=list(range(len(ids))), y=values[ids], customdata=ids, marker_color=colours,
                        row=i, col=1, showlegend=False, hovertemplate="channel %{customdata}: %{y:.4f}<extra></extra>")
            fig.update_xaxes(showticklabels=False, row=i, col=1)
        else:  # the bottleneck: few numbers, each labelled
            fig.add_bar(x=[f"h{j}" for j in range(len(values))], y=values, marker_color=colour, row=i, col=1,
                        showlegend=False, text=[f"{v:.2f}" for v in values] if len(values) <= 16 else None,
                        textposition="outside", cliponaxis=False, hovertemplate="%{x}: %{y:.4f}<extra></extra>")
    low, high = steps.gate_range
    gate_row = 4
    if np.isfinite(high):
        fig.update_yaxes(range=[min(low, 0.0), high * 1.05], row=gate_row, col=1)
    fig = _layout(fig, None, row_height * len(rows) + 40, hovermode="closest", bargap=0.05)
    fig.update_annotations(font=dict(size=12), x=0, xanchor="left")
    return fig


def feature_maps_figure(steps: BlockSteps, channels: list[int], labels: list[str], height: int = 380) -> go.Figure:
    """One column per channel: its feature map ``u_c`` (top) and the scaled map ``s_c·u_c`` (bottom), on one
    colour scale per column centred on 0, each pixel of the map drawn as a square cell."""
    scaled = "s_c·u_c" if steps.bias is None else "σ(w_c)·u_c + b_c"
    n = max(len(channels), 1)
    titles = [f"{label}<br>channel {c}" for c, label in zip(channels, labels)]
    titles += [f"gate {steps.gate[c]:.3f}" for c in channels]
    fig = make_subplots(rows=2, cols=n, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.12,
                        row_titles=["u_c (before)", f"{scaled} (after)"])
    for j, c in enumerate(channels, start=1):
        before, after = steps.u[c], steps.out[c]
        bound = float(max(np.abs(before).max(), np.abs(after).max(), 1e-6))
        for i, z in enumerate((before, after), start=1):
            fig.add_heatmap(z=z, zmin=-bound, zmax=bound, colorscale="RdBu_r", showscale=False, row=i, col=j,
                            hovertemplate=f"channel {c}, " + "row %{y}, column %{x}: %{z:.3f}<extra></extra>")
            axis = (i - 1) * n + j
            fig.update_yaxes(autorange="reversed", scaleanchor=f"x{axis if axis > 1 else ''}", showticklabels=False,
                             row=i, col=j)
            fig.update_xaxes(showticklabels=False, row=i, col=j)
    fig = _layout(fig, None, height, hovermode="closest", margin=dict(l=10, r=30, t=50, b=10))
    fig.update_annotations(font=dict(size=11))
    return fig
