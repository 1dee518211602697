"""Figures of one SE block from the inside (:mod:`senet.analysis.inside`): its steps for one image, and the
feature maps before and after the gate scales them."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from senet.analysis.inside import BlockSteps
from .figures import ACCENT, PALETTE, _layout

__all__ = ["step_rows", "block_steps_figure", "feature_map_image", "feature_map_pairs"]


def step_rows(steps: BlockSteps) -> list[tuple[str, np.ndarray, str]]:
    """The diagram's rows in the order of the paper's equations: (title, values, colour)."""
    mean = " (spatial mean)" if steps.per_pixel else ""
    pool = {"avg": "mean", "max": "max"}.get(steps.squeeze, "mean")
    squeeze = (f"1. squeeze z = {pool} of u over H×W" if not steps.per_pixel
               else "1. no squeeze: the FCs see every pixel; shown: u's spatial mean")
    sigma = {"sigmoid": "σ", "tanh": "tanh", "relu": "ReLU"}.get(steps.excitation, steps.excitation)
    scaled = "s·u" if steps.bias is None else "σ(w)·u + b"
    rows = [(squeeze, steps.z, PALETTE[0]),
            (f"2. bottleneck h = ReLU(W1·z): C/r = {len(steps.hidden)} numbers{mean}", steps.hidden, PALETTE[4]),
            (f"3. FC2 output a = W2·h{mean}", steps.pre_gate, PALETTE[5]),
            (f"4. gate s = {sigma}(a){mean}", steps.gate, PALETTE[1])]
    if steps.bias is not None:
        rows.append((f"4b. additive bias b{mean} (the seed blog post's block adds it)", steps.bias, PALETTE[6]))
    rows.append((f"5. scaled output x̃ = {scaled}: its spatial mean per channel", steps.out.mean(axis=(1, 2)),
                 PALETTE[2]))
    return rows


TITLE_ROOM = 34  # px above each row for its title
TICK_ROOM = 22  # px more below a row whose x axis is labelled (the bottleneck's h0, h1, ...)
SHOWN_NAMES = 16  # a bottleneck of up to this many numbers names each one under its bar


def block_steps_figure(steps: BlockSteps, order: np.ndarray | None = None, highlight: int | None = None,
                       row_height: int = 120) -> go.Figure:
    """One bar chart per step, top to bottom; channel rows share ``order`` (default: channel index) and mark
    channel ``highlight``; the bottleneck row shows its C/r numbers in their own order, named under their bars
    (with room, so that the names stay clear of the next row's title). Axes are laid out by hand
    (``make_subplots`` cost ~60 ms a figure here, on every new image)."""
    rows = step_rows(steps)
    named = [len(values) != steps.channels and len(values) <= SHOWN_NAMES for _, values, _ in rows]
    # pixels from the top of the plotting area: each row's title room, its plot, and the room for its names
    tops, y = [], 0
    for i in range(len(rows)):
        y += (TITLE_ROOM if i else 0) + (TICK_ROOM if i and named[i - 1] else 0)
        tops.append(y)
        y += row_height
    plot_height = y
    channel_order = np.arange(steps.channels) if order is None else np.asarray(order)
    data, layout = [], {}
    for i, (title, values, colour) in enumerate(rows):
        values = np.asarray(values, dtype=np.float32)
        top = 1 - tops[i] / plot_height
        bottom = 1 - (tops[i] + row_height) / plot_height
        suffix = "" if i == 0 else str(i + 1)
        layout[f"xaxis{suffix}"] = dict(anchor=f"y{suffix}", domain=[0, 1])
        layout[f"yaxis{suffix}"] = dict(anchor=f"x{suffix}", domain=[max(0.0, bottom), min(1.0, top)])
        if len(values) == steps.channels:
            data += _channel_row(values, channel_order, highlight, colour, suffix)
            layout[f"xaxis{suffix}"]["showticklabels"] = False
        else:  # the bottleneck: few numbers, each labelled
            data.append(dict(type="bar", x=[f"h{j}" for j in range(len(values))], y=values, marker_color=colour,
                             xaxis=f"x{suffix}", yaxis=f"y{suffix}", showlegend=False,
                             text=[f"{v:.2f}" for v in values] if named[i] else None,
                             textposition="outside", cliponaxis=False, hovertemplate="%{x}: %{y:.4f}<extra></extra>"))
            # more names would crowd each other; the hover still names each one
            layout[f"xaxis{suffix}"]["showticklabels"] = named[i]
        layout.setdefault("annotations", []).append(dict(text=title, x=0, xanchor="left", xref="paper", y=top,
                                                         yanchor="bottom", yref="paper", showarrow=False,
                                                         font=dict(size=12)))
    low, high = steps.gate_range
    if np.isfinite(high):
        layout["yaxis4"]["range"] = [min(low, 0.0), high * 1.05]
    margin = dict(l=10, r=10, t=TITLE_ROOM, b=10)  # the first row's title sits in the top margin
    return _layout(go.Figure(data=data, layout=layout), None, plot_height + margin["t"] + margin["b"],
                   hovermode="closest", bargap=0.05, margin=margin)


WIDE = 128  # a channel row wider than this is drawn as one filled step line, not a bar per channel


def _channel_row(values: np.ndarray, order: np.ndarray, highlight: int | None, colour: str, suffix: str) -> list:
    """One step's value per channel in ``order``: bars (``highlight`` in the accent colour), or beyond
    :data:`WIDE` channels one filled step line (a single SVG path) with the highlighted channel marked."""
    axes = dict(xaxis=f"x{suffix}", yaxis=f"y{suffix}", showlegend=False)
    hover = "channel %{customdata}: %{y:.4f}<extra></extra>"
    x, y = np.arange(len(order)), values[order]
    if len(order) <= WIDE:
        colours = np.where(order == highlight, ACCENT, colour).tolist() if highlight is not None else colour
        return [dict(type="bar", x=x, y=y, customdata=order, marker_color=colours, hovertemplate=hover, **axes)]
    row = [dict(type="scatter", mode="lines", x=x, y=y, customdata=order, fill="tozeroy", fillcolor=colour,
                line=dict(color=colour, width=1, shape="hvh"), hovertemplate=hover, **axes)]
    at = np.flatnonzero(order == highlight)
    if len(at):
        row.append(dict(type="scatter", mode="markers", x=at, y=y[at], customdata=order[at], hovertemplate=hover,
                        marker=dict(color=ACCENT, size=8, symbol="triangle-down"), name="followed", **axes))
    return row


_DIVERGING = np.array([[33, 102, 172], [247, 247, 247], [178, 24, 43]], dtype=np.float32)  # blue, white, red


def feature_map_image(values: np.ndarray, bound: float, size: int = 96) -> Image.Image:
    """A feature map as a picture: blue (-bound) through white (0) to red (+bound), each pixel an enlarged
    square (nearest-neighbour upsampling, so no detail is invented)."""
    t = np.clip(np.asarray(values, dtype=np.float32) / max(bound, 1e-12), -1, 1)
    low = t < 0
    rgb = np.where(low[..., None], _DIVERGING[1] + (_DIVERGING[1] - _DIVERGING[0]) * t[..., None],
                   _DIVERGING[1] + (_DIVERGING[2] - _DIVERGING[1]) * t[..., None])
    image = Image.fromarray(rgb.round().astype(np.uint8))
    scale = max(1, size // max(t.shape))
    return image.resize((t.shape[1] * scale, t.shape[0] * scale), Image.NEAREST)


def feature_map_pairs(steps: BlockSteps, channels: list[int], size: int = 96) -> tuple[list, list, list[float]]:
    """For each channel: the picture of ``u_c``, of the scaled map, and the shared scale (the larger |value|)."""
    before, after, bounds = [], [], []
    for c in channels:
        bound = float(max(np.abs(steps.u[c]).max(), np.abs(steps.out[c]).max(), 1e-6))
        before.append(feature_map_image(steps.u[c], bound, size))
        after.append(feature_map_image(steps.out[c], bound, size))
        bounds.append(bound)
    return before, after, bounds
