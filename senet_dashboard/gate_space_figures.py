"""Figures of images in gate space and of the gates' spread (:mod:`senet.analysis.gate_space`,
:mod:`senet.analysis.saturation`)."""
from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from senet.analysis.gate_space import GateMap, ProbeScore
from senet.analysis.saturation import BlockSaturation
from .figures import ACCENT, PALETTE, _hline, _layout, _legend_line, _short_names

__all__ = ["gate_map_figure", "probe_figure", "quantiles_figure", "saturation_figure"]


def _colour(k: int, classes: int) -> str:
    if classes <= len(PALETTE):
        return PALETTE[k]
    return f"hsl({int(360 * k / classes)},65%,50%)"


def _thumbnail_uri(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def gate_map_figure(m: GateMap, classes: list[str], thumbnails: np.ndarray | None = None,
                    highlight: int | None = None, height: int = 520) -> go.Figure:
    """The images on the first two principal axes of their gates, one colour per class; each point's
    ``customdata`` is its position in the split. ``thumbnails`` (N, H, W, 3) uint8 draws the images themselves
    at their points; ``highlight`` (a split position) rings that image."""
    x, y = m.coords[:, 0], m.coords[:, 1]
    fig = _layout(go.Figure(), None, height, hovermode="closest",
                  legend=dict(orientation="v", x=1.01, xanchor="left", y=1, yanchor="top",
                              font=dict(size=10)))
    for k in np.unique(m.labels):
        members = np.flatnonzero(m.labels == k)
        fig.add_scatter(x=x[members], y=y[members], mode="markers", name=classes[int(k)],
                        customdata=m.positions[members], opacity=0.35 if thumbnails is not None else 0.85,
                        marker=dict(size=7, color=_colour(int(k), len(classes))),
                        hovertemplate=f"{classes[int(k)]} · image #%{{customdata}}<extra></extra>")
    if thumbnails is not None:
        span = max(float(np.ptp(x)), float(np.ptp(y)), 1e-6)
        size = span / max(np.sqrt(len(x)) * 1.6, 1)
        fig.update_layout(images=[dict(source=_thumbnail_uri(t), x=float(a), y=float(b), xref="x", yref="y",
                                       sizex=size, sizey=size, xanchor="center", yanchor="middle", layer="above")
                                  for t, a, b in zip(thumbnails, x, y)])
    if highlight is not None and highlight in set(m.positions.tolist()):
        i = int(np.flatnonzero(m.positions == highlight)[0])
        fig.add_scatter(x=[x[i]], y=[y[i]], mode="markers", name="this image", hoverinfo="skip",
                        marker=dict(size=18, color="rgba(0,0,0,0)", line=dict(color="black", width=2.5)))
    fig.update_xaxes(title_text=f"PC 1 ({m.explained[0]:.0%} of the variance)", zeroline=False)
    fig.update_yaxes(title_text=f"PC 2 ({m.explained[1]:.0%})", zeroline=False)
    return fig


def probe_figure(scores: list[ProbeScore], height: int = 300) -> go.Figure:
    """Per block, the probe's cross-validated class accuracy from the gates alone (error bar: std over folds),
    against the chance level."""
    names = [s.block for s in scores]
    fig = _layout(go.Figure(), "Class accuracy of a linear probe on the gates alone", height, hovermode="closest")
    fig.add_bar(x=_short_names(names), y=[100 * s.accuracy for s in scores], marker_color=PALETTE[0],
                customdata=[[n, s.features, 100 * s.fold_std] for n, s in zip(names, scores)], showlegend=False,
                error_y=dict(type="data", array=[100 * s.fold_std for s in scores], thickness=1.2, width=4),
                text=[f"{100 * s.accuracy:.1f}%" for s in scores], textposition="inside", insidetextanchor="start",
                hovertemplate="%{customdata[0]} (%{customdata[1]} gates): %{y:.1f}% ± %{customdata[2]:.1f}"
                              "<extra></extra>")
    if scores:
        chance = 100 * scores[0].chance
        line = dict(color=ACCENT, dash="dash", width=1.5)
        fig.update_layout(shapes=[_hline(chance, line)])
        fig.add_trace(_legend_line(f"chance ({chance:.0f}%)", line))
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 100])
    return fig


def quantiles_figure(quantiles: np.ndarray, order: np.ndarray, title: str, gate_range: tuple[float, float],
                     mean_all: np.ndarray | None = None, height: int = 300,
                     labels: tuple[str, str] = ("median", "25th–75th percentile"),
                     sorted_by: str | None = "median") -> go.Figure:
    """One block's per-channel gate distribution for one class: a line (``labels[0]``, the median) and a band
    (``labels[1]``, the interquartile range) from ``quantiles`` (3, C): low, line, high; channels in ``order``
    (``sorted_by`` names the line they are sorted by; None: index order); ``mean_all``: the all-class mean."""
    q1, med, q3 = (np.asarray(q)[order] for q in quantiles)
    x = np.arange(len(order))
    fig = _layout(go.Figure(), title, height, hovermode="closest")
    fig.add_scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([q3, q1[::-1]]), fill="toself",
                    fillcolor="rgba(245,133,24,0.45)", line=dict(width=0), name=labels[1], hoverinfo="skip")
    if mean_all is not None:  # under the line: with hundreds of channels the dots would hide it
        fig.add_scatter(x=x, y=np.asarray(mean_all)[order], mode="markers", name="all-class mean",
                        marker=dict(color="#999", size=3), hoverinfo="skip")
    fig.add_scatter(x=x, y=med, mode="lines", name=labels[0],
                    line=dict(color=PALETTE[0], width=1.8 if len(order) <= 256 else 0.8),
                    customdata=np.stack([order, q1, q3], axis=1),
                    hovertemplate=f"channel %{{customdata[0]}}: {labels[0]} %{{y:.3f}}, band %{{customdata[1]:.3f}}–"
                                  "%{customdata[2]:.3f}<extra></extra>")
    low, high = gate_range
    if np.isfinite(high):
        fig.update_yaxes(range=[low - 0.02 * (high - low), high + 0.02 * (high - low)])
    fig.update_yaxes(title_text="gate")
    if sorted_by:
        fig.update_xaxes(title_text=f"channels, highest {sorted_by} first", showticklabels=False)
    else:
        fig.update_xaxes(title_text="channel")
    return fig


def saturation_figure(rows: list[BlockSaturation], height: int = 300) -> go.Figure:
    """Per block, the share of gates near the bottom and near the top of the gate's range, stacked."""
    names = [r.block for r in rows]
    fig = _layout(go.Figure(), "Share of gates at the ends of their range", height, hovermode="closest",
                  barmode="stack")
    fig.add_bar(x=_short_names(names), y=[100 * r.low_share for r in rows], name="near the bottom (off)",
                marker_color=PALETTE[0], customdata=names, hovertemplate="%{customdata}: %{y:.1f}%<extra></extra>")
    fig.add_bar(x=_short_names(names), y=[100 * (r.high_share or 0.0) for r in rows], name="near the top (on)",
                marker_color=PALETTE[1], customdata=names, hovertemplate="%{customdata}: %{y:.1f}%<extra></extra>")
    fig.update_yaxes(title_text="% of gates (images × channels)", range=[0, 100])
    return fig
