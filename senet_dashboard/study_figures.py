"""Figures of a study (:mod:`senet.training.study`): every seed as a point, means with intervals, differences."""
from __future__ import annotations

import math

import plotly.graph_objects as go

from senet.recorded import split_words

from .figures import PALETTE, _layout

__all__ = ["study_points_figure", "paired_differences_figure"]


def study_points_figure(summary: dict, per_seed: dict[str, dict[int, float]], metric: str = "acc",
                        height: int = 320) -> go.Figure:
    """Per variant: each seed's accuracy (``acc`` or ``acc_tta`` on the runs' scored split) as a point, and the
    mean with its 95% interval as a bar beside them."""
    label = (f"{split_words(summary.get('scored_on', 'val'))} accuracy" + (" with TTA" if metric == "acc_tta" else "")
             + ", recorded in training")
    fig = _layout(go.Figure(), f"Every seed ({label})", height, hovermode="closest")
    for i, row in enumerate(summary["variants"]):
        name, colour = row["variant"], PALETTE[i % len(PALETTE)]
        seeds = per_seed.get(name, {})
        fig.add_scatter(x=[name] * len(seeds), y=[100 * v for v in seeds.values()], mode="markers", name=name,
                        marker=dict(color=colour, size=9, opacity=0.7), showlegend=False,
                        customdata=list(seeds), hovertemplate="seed %{customdata}: %{y:.2f}%<extra></extra>")
        iv = row.get(metric)
        if iv and math.isfinite(iv["low"]):
            fig.add_scatter(x=[name], y=[100 * iv["mean"]], mode="markers", showlegend=False,
                            marker=dict(color="black", symbol="line-ew-open", size=26, line=dict(width=2)),
                            error_y=dict(type="data", symmetric=False, array=[100 * (iv["high"] - iv["mean"])],
                                         arrayminus=[100 * (iv["mean"] - iv["low"])], color="black", width=10),
                            hovertemplate=f"mean %{{y:.2f}}% (95% t-interval {100 * iv['low']:.2f} to "
                                          f"{100 * iv['high']:.2f})<extra></extra>")
    fig.update_yaxes(title_text="accuracy (%)", ticksuffix="%")
    fig.update_xaxes(title_text="variant (black: mean and 95% t-interval over seeds)")
    return fig


def paired_differences_figure(summary: dict, height: int = 260) -> go.Figure:
    """Each pair's seed-paired difference A - B in percentage points, with its 95% t-interval and a zero line."""
    pairs = summary["pairs"]
    fig = _layout(go.Figure(), "Seed-paired differences (A - B)", max(height, 90 + 45 * len(pairs)), hovermode="closest")
    labels = [f"{p['a']} − {p['b']}" + (" (TTA)" if p["metric"] == "acc_tta" else "") for p in pairs]
    for label, p in zip(labels, pairs):
        has_interval = math.isfinite(p["low"])
        crosses = has_interval and p["low"] <= 0 <= p["high"]
        colour = "#888" if crosses or not has_interval else ("#54A24B" if p["mean"] > 0 else "#E45756")
        fig.add_scatter(x=[100 * p["mean"]], y=[label], mode="markers", showlegend=False,
                        marker=dict(color=colour, size=11),
                        error_x=dict(type="data", symmetric=False, color=colour,
                                     array=[100 * (p["high"] - p["mean"])] if has_interval else [0],
                                     arrayminus=[100 * (p["mean"] - p["low"])] if has_interval else [0]),
                        hovertemplate=f"{100 * p['mean']:+.2f} pts over {p['seeds']} seeds"
                                      + (f" (95% t-interval {100 * p['low']:+.2f} to {100 * p['high']:+.2f})"
                                         if has_interval else " (one seed: no interval)") + "<extra></extra>")
    fig.add_vline(x=0, line=dict(color="#444", width=1))
    fig.update_xaxes(title_text="difference (pts); grey: its interval includes 0")
    return fig
