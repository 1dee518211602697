"""Plotly figures for the dashboard (pure functions of data; no Streamlit).

Each function returns a ``plotly.graph_objects.Figure`` sized for a dashboard
card. The confusion matrix carries a transparent scatter overlay, one marker
per cell with ``customdata = [true, predicted, count, row share]``: Plotly
heatmap clicks return no selection in Streamlit (streamlit issue 8760), a
scatter's do.
"""
from __future__ import annotations

import math
import re

import numpy as np
import plotly.graph_objects as go

from .curves import Curves, smooth

__all__ = ["PALETTE", "line_figure", "step_loss_figure", "epoch_figure", "lr_figure", "epoch_ticks", "gate_heatmap_figure",
           "profiles_figure", "separation_figure", "intervention_figure",
           "confusion_figure", "confusion_colour", "COLOUR_MODES",
           "overlay_figure", "ablation_figure", "channel_classes_figure", "split_ablation_figure",
           "class_splits_figure", "profiles_heatmap_figure", "gate_difference_figure"]

PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#EECA3B", "#FF9DA6",
           "#9D755D", "#BAB0AC"]
TRAIN, VAL, RAW, ACCENT = "#4C78A8", "#F58518", "rgba(76,120,168,0.25)", "#E45756"
TEST = "#B279A2"
MANY_CLASSES = 30  # above this (CIFAR-100's 100), figures with a row or bar per class change their layout


# Plotly labels ticks 2e-10 apart "200p", "400p" (and 5e-10 "0.5n"): SI prefixes that read as units. Where the
# ticks lie less than 0.001 apart, plain decimals instead, or powers of ten (2e-10) for the tiniest values.
SMALL_TICKS = [dict(dtickrange=[None, 1e-3], value=".8~g")]


# Plotly's toolbar (its modebar) shows at a chart's top right while the pointer is over the chart. Every chart
# keeps that corner free: its title sits at the top left, its legend (if any) on a line of its own below the
# toolbar's band, and the toolbar is short: download as PNG, reset the axes (and Streamlit's full screen). A drag
# still zooms and a double click resets, without their buttons.
TOOLBAR_PX = 34
TOOLBAR_REMOVE = ["zoom2d", "pan2d", "select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d"]
TITLE_BESIDE_TOOLBAR = 24  # characters: a longer title gets a line of its own below the toolbar's band


def _layout(fig: go.Figure, title: str | None = None, height: int = 300, **kwargs) -> go.Figure:
    """Every figure's title, height, margins, legend, toolbar and hover; tick labels without SI prefixes on tiny
    values (:data:`SMALL_TICKS`), on every axis the figure has so far. The title and a horizontal legend stay
    clear of the toolbar's corner (:data:`TOOLBAR_PX`): a short title at the top left beside it, a long one
    (:data:`TITLE_BESIDE_TOOLBAR`) on a line below it, so that it fits a narrow column; the legend under both."""
    fig.update_xaxes(tickformatstops=SMALL_TICKS)
    fig.update_yaxes(tickformatstops=SMALL_TICKS)
    lines = re.sub(r"<[^>]*>", "\n", title or "").splitlines()
    below = max((len(line) for line in lines), default=0) > TITLE_BESIDE_TOOLBAR
    top = TOOLBAR_PX + (24 * len(lines) if below else 0)  # where the legend's line starts, in px from the top
    layout = dict(title=dict(text=title, x=0, xanchor="left", yref="container",
                             y=1 - ((TOOLBAR_PX if below else 8) / height), yanchor="top",
                             font=dict(size=14)) if title else None,
                  height=height, margin=dict(l=10, r=10, t=top + 6, b=10),
                  legend=_legend_below_toolbar(height, top),
                  modebar=dict(remove=TOOLBAR_REMOVE),
                  hovermode="x unified")
    layout.update(kwargs)
    fig.update_layout(**layout)
    return fig


def _legend_below_toolbar(height: int, top: int = TOOLBAR_PX) -> dict:
    """A horizontal legend at the left, on its own line(s) ``top`` px from the top, below the toolbar's band and
    the title; Plotly reserves its room above the plot."""
    return dict(orientation="h", yref="container", y=1 - top / height, yanchor="top", xanchor="left", x=0)


def line_figure(title: str, x_title: str, y_title: str, height: int = 300) -> go.Figure:
    """An empty line chart with titles, for callers that add their own traces."""
    fig = go.Figure()
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return _layout(fig, title, height)


def _short_names(names: list[str]) -> list[str]:
    """Tick labels for many blocks: ``stage2.block3`` -> ``s2.b3`` (the full name stays in the hover)."""
    if len(names) <= 4:
        return list(names)
    return [re.sub(r"\bblock(\d+)", r"b\1", re.sub(r"\bstage(\d+)", r"s\1", n)) for n in names]


def _placeholder(fig: go.Figure, message: str) -> go.Figure:
    """An empty chart says why it is empty instead of showing bare axes with a made-up range."""
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=13, color="#888"))
    return fig


def _window(steps: list[int], last_steps: int | None) -> int:
    """Index of the first logged step within the last ``last_steps`` steps (0: all of them)."""
    if not last_steps or not steps:
        return 0
    first = steps[-1] - last_steps
    return next(i for i, s in enumerate(steps) if s > first)


def step_loss_figure(c: Curves, weight: float = 0.6, height: int = 300, last_steps: int | None = None,
                     log_y: bool = False) -> go.Figure:
    """Training loss per logged step: raw (faint) and smoothed (TensorBoard-style EMA).

    ``last_steps`` shows only the latest steps (the y axis fits them); the EMA still runs over all steps.
    ``log_y`` draws the loss on a log axis.
    """
    title = f"Training loss, last {last_steps:,} steps" if last_steps else "Training loss per step"
    fig = line_figure(title, "step", "loss (EMA of batches)", height)
    i = _window(c.step, last_steps)
    if c.step:
        fig.add_scatter(x=c.step[i:], y=c.step_loss[i:], mode="lines", name="raw", line=dict(color=RAW, width=1),
                        hovertemplate="%{y:.4f}")
        fig.add_scatter(x=c.step[i:], y=smooth(c.step_loss, weight)[i:], mode="lines", name=f"smoothed ({weight:g})",
                        line=dict(color=TRAIN, width=2), hovertemplate="%{y:.4f}")
    else:
        return _placeholder(fig, "waiting for the first logged step")
    for s in c.resumes:
        if s >= c.step[i]:
            fig.add_vline(x=s, line=dict(color="#999", dash="dot", width=1), annotation_text=f"resumed at step {s:,}",
                          annotation_position="top left", annotation_font=dict(size=10, color="#777"))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def epoch_figure(c: Curves, metric: str, height: int = 300, log_y: bool = False) -> go.Figure:
    """Train and validation (or test, for a run trained on every image) ``metric`` ('loss' or 'acc') per epoch;
    ``log_y`` puts a loss on a log axis."""
    label = "accuracy" if metric == "acc" else "loss"
    fig = line_figure(f"{label.capitalize()} per epoch", "epoch", label, height)
    fmt = "%{y:.2%}" if metric == "acc" else "%{y:.4f}"
    drawn = False
    for split, color in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        ys = getattr(c, f"{split}_{metric}")
        if any(not math.isnan(v) for v in ys):
            drawn = True
            fig.add_scatter(x=c.epoch, y=ys, mode="lines+markers", name=split, line=dict(color=color, width=2),
                            marker=dict(size=6), hovertemplate=fmt)
    if not drawn:
        return _placeholder(fig, "no epoch finished yet")
    if metric == "acc":
        fig.update_yaxes(tickformat=".0%")
    elif log_y:
        fig.update_yaxes(type="log")
    return epoch_ticks(fig, max(c.epoch))


def epoch_ticks(fig: go.Figure, last_epoch: float) -> go.Figure:
    """Whole-epoch ticks on the x axis (never 1.5): every epoch up to 12, then every 2, 5, 10, 20, ... epochs."""
    step = next(d for d in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10**9) if last_epoch / d <= 12)
    fig.update_xaxes(tick0=0, dtick=step, tickformat="d")
    return fig


def _thin(x: list[float], y: list[float], limit: int = 2000) -> tuple[list[float], list[float]]:
    """At most about ``limit`` points of a piecewise-smooth line, keeping its ends and every kink (a warm-up's
    peak, a step drop, a resume's jump), so that a schedule of 60,000 steps draws quickly and looks the same."""
    n = len(x)
    if n <= limit:
        return list(x), list(y)
    d = np.diff(np.asarray(y, dtype=float))
    scale = float(np.nanmax(np.abs(d))) if len(d) else 0.0
    kinks = np.nonzero(np.abs(np.diff(d)) > 1e-3 * scale)[0] + 1 if scale > 0 else np.array([], dtype=int)
    keep = sorted(set(range(0, n, math.ceil(n / limit))) | set(kinks.tolist()) | set((kinks - 1).tolist())
                  | set((kinks + 1).tolist()) | {n - 1})
    return [x[i] for i in keep if 0 <= i < n], [y[i] for i in keep if 0 <= i < n]


def _resume_marks(fig: go.Figure, c: Curves, first_step: int, per_epoch: float | None = None) -> None:
    """A dotted line at each resume the chart shows, saying when the schedule changed there."""
    for r in c.resume_info:
        if r["step"] < first_step:
            continue
        before, after = r.get("epochs_before"), r.get("epochs")
        text = (f"resumed: {before} → {after} epochs, schedule re-stretched" if before and after and before != after
                else "resumed")
        fig.add_vline(x=r["step"] / per_epoch if per_epoch else r["step"], line=dict(color="#999", dash="dot", width=1),
                      annotation_text=text, annotation_position="bottom left",
                      annotation_font=dict(size=10, color="#555"))


def lr_figure(c: Curves, height: int = 300, last_steps: int | None = None) -> go.Figure:
    """The learning rate of every step, from the first (so a warm-up's start shows), with each resume marked and,
    where a resume changed the number of epochs, the schedule's re-stretch named on the chart.

    A run's chart is per step (``last_steps`` shows the latest steps); a checkpoint's (:func:`curves_from_checkpoint`:
    computed from its recorded recipe) is per epoch, with the rates recorded at each epoch's end as dots. Without
    either, the recorded per-epoch rates alone.
    """
    per_epoch = c.steps_per_epoch if c.lr_computed else None
    steps, rates = (c.lr_step, c.lr_value) if c.lr_step else ([s - 1 for s in c.step], c.lr)  # built by hand
    if not steps:
        fig = line_figure("Learning rate at the end of each epoch", "epoch", "lr", height)
        if not c.epoch:
            return _placeholder(fig, "waiting for the first logged step")
        fig.add_scatter(x=c.epoch, y=c.epoch_lr, mode="lines+markers", name="lr", line=dict(color="#54A24B", width=2),
                        hovertemplate="%{y:.4g}", showlegend=False)
        return epoch_ticks(fig, max(c.epoch))
    fig = line_figure("Learning rate per step", "epoch" if per_epoch else "step", "lr", height)
    first = c.step[_window(c.step, last_steps)] if last_steps and c.step else 0
    pairs = [(s, v) for s, v in zip(steps, rates) if s >= first - 1]
    x, y = _thin([s / per_epoch if per_epoch else s for s, _ in pairs], [v for _, v in pairs])
    fig.add_scatter(x=x, y=y, mode="lines", name="computed from the recorded recipe" if c.lr_computed else "lr",
                    line=dict(color="#54A24B", width=2), hovertemplate="%{y:.4g}", showlegend=c.lr_computed)
    if per_epoch:
        fig.add_scatter(x=c.epoch, y=c.epoch_lr, mode="markers", name="recorded at each epoch's end",
                        marker=dict(color="#2F6B2A", size=6 if len(c.epoch) <= 20 else 3, symbol="circle-open"),
                        hovertemplate="%{y:.4g}")
        epoch_ticks(fig, max(x[-1], max(c.epoch, default=0)))
    _resume_marks(fig, c, first, per_epoch)
    return fig


def _grid(names: list[str], columns: int, row_height: int, top: int = 30) -> tuple[dict, list[tuple[str, str]], int]:
    """Layout for a grid of small charts, one per name, built directly (``make_subplots`` is ~7x slower).

    Returns the layout dict (axes with domains, titles as annotations), the (xaxis, yaxis) trace references
    per name, and the figure height.
    """
    columns = max(1, min(columns, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    height = rows * row_height + top
    gap_x, gap_y = 0.035, min(0.12, 70 / height)
    panel_x, panel_y = (1 - (columns - 1) * gap_x) / columns, (1 - (rows - 1) * gap_y) / rows  # all panels alike
    layout: dict = {"annotations": []}
    refs = []
    for i, name in enumerate(names):
        r, c = divmod(i, columns)
        n = "" if i == 0 else str(i + 1)
        x0 = c * (panel_x + gap_x)
        x1 = min(1.0, x0 + panel_x)
        y1 = 1 - r * (panel_y + gap_y)
        y0 = max(0.0, y1 - panel_y)  # rounding must not leave [0, 1]
        layout[f"xaxis{n}"] = dict(domain=[x0, x1], anchor=f"y{n}", tickformatstops=SMALL_TICKS)
        layout[f"yaxis{n}"] = dict(domain=[y0, y1], anchor=f"x{n}", range=[0, 1], showticklabels=c == 0,
                                   tickformatstops=SMALL_TICKS)
        layout["annotations"].append(dict(text=name, x=(x0 + x1) / 2, y=y1, xref="paper", yref="paper",
                                          xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=12)))
        refs.append((f"x{n}", f"y{n}"))
    return layout, refs, height


def _ordered(values: np.ndarray, order: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``values`` in display order, and the original channel index of each position."""
    values = np.asarray(values, dtype=float)
    channels = np.arange(len(values)) if order is None else np.asarray(order)
    return values[channels], channels


ORDER_LABEL = "channels, highest mean gate first"


def _axis_note(layout: dict, text: str) -> None:
    """The channel axis's title, once under a grid of small charts."""
    layout["annotations"].append(dict(text=text, x=0.5, y=0, xref="paper", yref="paper", xanchor="center",
                                      yanchor="top", yshift=-24, showarrow=False, font=dict(size=11, color="#666")))


def gate_heatmap_figure(gates: dict[str, np.ndarray], height: int | None = None,
                        order: dict[str, np.ndarray] | None = None, order_label: str = ORDER_LABEL) -> go.Figure:
    """All blocks x channels in one heatmap (blocks of fewer channels are padded with gaps); ``order`` (from
    :func:`senet.analysis.profiles.channel_order`) puts each row in its own block's order, the hover still naming
    the real channel."""
    names = list(gates)
    width = max((len(g) for g in gates.values()), default=0)
    z = np.full((len(names), width), np.nan)
    channels = np.full((len(names), width), -1)
    for i, (name, g) in enumerate(gates.items()):
        values, index = _ordered(g, order.get(name) if order else None)
        z[i, :len(values)] = values
        channels[i, :len(values)] = index
    fig = go.Figure(go.Heatmap(z=z, x=np.arange(width), y=names, customdata=channels, zmin=0, zmax=1,
                               colorscale="Viridis", colorbar=dict(title="gate", thickness=12), hoverinfo="skip"))
    # a heatmap cell cannot be selected; one invisible WebGL point per cell (a single canvas) takes the clicks
    rows, cols = np.nonzero(channels >= 0)
    fig.add_trace(go.Scattergl(x=cols, y=[names[r] for r in rows], mode="markers", showlegend=False,
                               marker=dict(size=10, opacity=0), customdata=channels[rows, cols], text=z[rows, cols],
                               hovertemplate="%{y}<br>channel %{customdata}<br>gate %{text:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text=order_label if order else "channel")
    return _layout(fig, "Gates: blocks × channels", height or max(220, 34 * len(names) + 90), hovermode="closest")


def profiles_figure(profiles: dict[str, np.ndarray], overall: dict[str, np.ndarray], classes: list[str],
                    chosen: list[int], image_gates: dict[str, np.ndarray] | None = None,
                    columns: int = 3, row_height: int = 200,
                    order: dict[str, np.ndarray] | None = None, order_label: str = ORDER_LABEL) -> go.Figure:
    """The paper's Fig. 6 for this model: mean gate per channel of chosen classes at every block,
    against the all-class mean (dashed) and this image's gate (dots); ``order`` as in :func:`gate_heatmap_figure`."""
    names = list(profiles)
    layout, refs, height = _grid(names, columns, row_height, top=60)
    colours = {k: PALETTE[k % len(PALETTE)] for k in chosen}  # a class keeps its colour across choices ...
    if len(set(colours.values())) < len(colours):  # ... unless two chosen classes (of 100) would share one
        colours = {k: PALETTE[j % len(PALETTE)] for j, k in enumerate(chosen)}
    data = []
    for i, (name, (xa, ya)) in enumerate(zip(names, refs)):
        block_order = order.get(name) if order else None
        mean, channels = _ordered(overall[name], block_order)
        x = np.arange(len(mean))
        hover = "channel %{customdata}: " if block_order is not None else ""
        for k in chosen:
            data.append(dict(type="scatter", mode="lines", x=x, y=_ordered(profiles[name][k], block_order)[0],
                             customdata=channels, xaxis=xa, yaxis=ya, name=classes[k], legendgroup=classes[k],
                             showlegend=i == 0, line=dict(color=colours[k], width=1.6),
                             hovertemplate=f"{hover}{classes[k]} %{{y:.3f}}<extra></extra>"))
        data.append(dict(type="scatter", mode="lines", x=x, y=mean, customdata=channels, xaxis=xa, yaxis=ya,
                         name="all classes", legendgroup="all", showlegend=i == 0,
                         line=dict(color="#444", width=1.4, dash="dash"),
                         hovertemplate=f"{hover}all classes %{{y:.3f}}<extra></extra>"))
        if image_gates and name in image_gates:
            data.append(dict(type="scatter", mode="markers", x=x, y=_ordered(image_gates[name], block_order)[0],
                             customdata=channels, xaxis=xa, yaxis=ya, name="this image", legendgroup="image",
                             showlegend=i == 0, marker=dict(color="black", size=4),
                             hovertemplate=f"{hover}this image %{{y:.3f}}<extra></extra>"))
    _axis_note(layout, f"{order_label if order else 'channel index'} · y: mean gate")
    layout.update(height=height + 46, margin=dict(l=10, r=10, t=80, b=46),
                  hovermode="x", legend=dict(orientation="h", yref="container", y=1, yanchor="top", xanchor="left",
                                             x=0))
    return go.Figure(data=data, layout=layout)


def profiles_heatmap_figure(profiles: dict[str, np.ndarray], overall: dict[str, np.ndarray], classes: list[str],
                            image_gates: dict[str, np.ndarray] | None = None, marks: dict[int, str] | None = None,
                            order: dict[str, np.ndarray] | None = None, order_label: str = ORDER_LABEL,
                            row_px: int = 15, columns: int | None = None) -> go.Figure:
    """The paper's Fig. 6 as one heatmap per block (stacked, each the full width): a row per class of its mean
    gate per channel, under this image's gate and the all-class mean; ``marks`` tags class rows (e.g.
    ``{3: "true"}``); ``order`` as in :func:`gate_heatmap_figure`. With hundreds of channels a line per class is a
    tangle; a colour per cell keeps every class and channel apart. With many classes (CIFAR-100) the rows are
    12 px and the blocks sit side by side (``columns``; default: up to 3, as many as leave about 3 px a channel),
    rows aligned by class and named once at the left, so that 100 classes do not stack 100 rows per block; with more
    than 8 blocks, two a row."""
    names = list(profiles)
    marks = marks or {}
    top = ["this image"] if image_gates else []
    rows = top + ["all classes", " "] + [f"{c} · {marks[k]}" if k in marks else c for k, c in enumerate(classes)]
    many = len(classes) > MANY_CLASSES
    if columns is None:  # side by side when there are many classes, or many blocks (SE-ResNet-50's 16)
        widest = max((len(np.asarray(overall[n]).ravel()) for n in names), default=1)
        columns = max(1, min(3, 900 // (3 * widest))) if many else 2 if len(names) > 8 else 1
    row_px = min(row_px, 12) if many else row_px
    layout, refs, height = _grid(names, columns, row_px * len(rows) + 40, top=50)
    data = []
    for i, (name, (xa, ya)) in enumerate(zip(names, refs)):
        block_order = order.get(name) if order else None
        mean, channels = _ordered(overall[name], block_order)
        z = ([_ordered(image_gates[name], block_order)[0]] if top else []) + [mean, np.full(len(mean), np.nan)]
        z += [_ordered(p, block_order)[0] for p in np.asarray(profiles[name])]
        data.append(dict(type="heatmap", z=np.vstack(z), x=np.arange(len(mean)), y=rows,
                         customdata=np.broadcast_to(channels, (len(rows), len(channels))), xaxis=xa, yaxis=ya,
                         coloraxis="coloraxis", hoverongaps=False, name=name,
                         hovertemplate=f"{name}<br>%{{y}}<br>channel %{{customdata}}<br>gate %{{z:.3f}}"
                                       "<extra></extra>"))
        layout[f"yaxis{ya[1:]}"] = dict(domain=layout[f"yaxis{ya[1:]}"]["domain"], anchor=xa, autorange="reversed",
                                        type="category", tickfont=dict(size=10 if many else 11),
                                        showticklabels=i % columns == 0,
                                        **({} if many else dict(tickmode="array", tickvals=rows, ticktext=rows)))
    _axis_note(layout, order_label if order else "channel")
    layout.update(height=height + 46, margin=dict(l=10, r=10, t=30, b=46), hovermode="closest",
                  coloraxis=dict(colorscale="Viridis", cmin=0, cmax=1,
                                 colorbar=dict(title=dict(text="gate", side="top"), thickness=12,
                                               len=min(1, 300 / height),
                                               y=1, yanchor="top")))
    return go.Figure(data=data, layout=layout)


DIFF_UP, DIFF_DOWN = "#D6604D", "#4393C3"  # this image opens the channel more / less than the class does


def gate_difference_figure(differences: dict[str, dict[str, np.ndarray]], order: dict[str, np.ndarray] | None = None,
                           order_label: str = ORDER_LABEL, highlight: int = 5, row_height: int = 190) -> go.Figure:
    """This image's gate minus a class's mean gate, per channel: one chart per block (rows) and reference
    (columns; ``differences[label][block]`` is (C,)), on one scale from -1 to 1 with a zero line. Red: the image
    opens the channel more than the class does; blue: less (filled steps, one per channel). The ``highlight`` largest departures of each
    chart are marked and labelled with their channel."""
    labels = list(differences)
    blocks = list(next(iter(differences.values()), {}))
    names = [f"{b}: this image − {label}" for b in blocks for label in labels]
    layout, refs, height = _grid(names, len(labels), row_height, top=30)
    data = []
    for i, (block, label) in enumerate((b, lab) for b in blocks for lab in labels):
        xa, ya = refs[i]
        d, channels = _ordered(differences[label][block], order.get(block) if order else None)
        x = np.arange(len(d))
        # two filled step lines (opens more / less than the class) instead of a bar per channel: a few SVG paths
        for part, colour in ((np.maximum(d, 0), DIFF_UP), (np.minimum(d, 0), DIFF_DOWN)):
            data.append(dict(type="scatter", mode="lines", x=x, y=part, xaxis=xa, yaxis=ya, showlegend=False,
                             line=dict(color=colour, width=1, shape="hvh"), fill="tozeroy", fillcolor=colour,
                             hoverinfo="skip"))
        data.append(dict(type="scatter", mode="lines", x=x, y=d, customdata=channels, xaxis=xa, yaxis=ya,
                         name=f"{block} − {label}", showlegend=False, line=dict(width=0, color=DIFF_UP),
                         hovertemplate=f"{block}, channel %{{customdata}}<br>this image − {label}: %{{y:+.3f}}"
                                       "<extra></extra>"))
        top = np.argsort(-np.abs(d), kind="stable")[:highlight]
        data.append(dict(type="scatter", mode="markers", x=x[top], y=d[top], customdata=channels[top], xaxis=xa,
                         yaxis=ya, showlegend=False, name="largest departures", cliponaxis=False,
                         marker=dict(color="#333", size=5),
                         hovertemplate=f"{block}, channel %{{customdata}}<br>this image − {label}: %{{y:+.3f}}"
                                       "<extra>largest departure</extra>"))
        layout["annotations"] += _stacked_labels(x[top], d[top], [str(c) for c in channels[top]], xa, ya,
                                                 near=0.04 * max(len(d), 1) * len(labels))
        layout[f"yaxis{ya[1:]}"].update(range=[-1.3, 1.3], tickvals=[-1, -0.5, 0, 0.5, 1], zeroline=True,
                                        zerolinecolor="#444", zerolinewidth=1)
        if i % len(labels) == 0:
            layout[f"yaxis{ya[1:]}"]["title"] = dict(text="gate difference", font=dict(size=11))
    _axis_note(layout, order_label if order else "channel")
    widest = max((len(v) for by_block in differences.values() for v in by_block.values()), default=0)
    layout.update(height=height + 46, margin=dict(l=10, r=10, t=30, b=46), hovermode="closest",
                  bargap=0 if widest > 128 else 0.05)
    return go.Figure(data=data, layout=layout)


def _stacked_labels(x: np.ndarray, y: np.ndarray, texts: list[str], xref: str, yref: str, near: float) -> list[dict]:
    """Labels just beyond the ends of bars (above a positive one, below a negative one), each ``near`` wide (x
    units). A label that would overlap one already placed on the same side moves beside its bar, to the right
    or the left, and only then a line further out, so no two overlap and few leave the chart."""
    boxes: list[tuple[float, float, int, int]] = []  # (left, right, side, level) of each label placed
    labels = []
    for xi, yi, text in zip(x.tolist(), y.tolist(), texts):
        side = 1 if yi >= 0 else -1
        for level in range(len(texts)):
            free = next(((lo, anchor) for lo, anchor in ((xi - near / 2, "center"), (xi + near * 0.15, "left"),
                                                          (xi - near * 1.15, "right"))
                         if not any(b[2] == side and b[3] == level and lo < b[1] and lo + near > b[0] for b in boxes)),
                        None)
            if free:
                break
        lo, anchor = free or (xi - near / 2, "center")
        boxes.append((lo, lo + near, side, level))
        labels.append(dict(text=text, x=xi, y=yi, xref=xref, yref=yref, showarrow=False, xanchor=anchor,
                           xshift={"center": 0, "left": 3, "right": -3}[anchor],
                           yanchor="bottom" if side > 0 else "top",
                           yshift=side * (4 + 12 * level) if anchor == "center" else side * (-6 + 12 * level),
                           font=dict(size=10, color="#333")))
    return labels


def separation_figure(separation: dict[str, float], spread: dict[str, float] | None = None,
                      height: int = 260) -> go.Figure:
    """How class-specific (std across class profiles) and, if given, how image-specific (std across
    images) each block's gate is; both are means over channels."""
    names = list(separation)
    fig = go.Figure(go.Bar(x=names, y=[separation[n] for n in names], marker_color=TRAIN, name="across classes",
                           hovertemplate="%{x}<br>std across classes %{y:.4f}<extra></extra>"))
    if spread is not None:
        fig.add_bar(x=names, y=[spread.get(n, 0.0) for n in names], marker_color=VAL, name="across images",
                    hovertemplate="%{x}<br>std across images %{y:.4f}<extra></extra>")
    fig.update_yaxes(title_text="gate std")
    if len(names) > 4:  # "stage2.block3" ticks overlap in a narrow column
        fig.update_xaxes(tickvals=names, ticktext=_short_names(names))
    _layout(fig, "Specificity by depth", height, hovermode="closest", barmode="group",
            margin=dict(l=10, r=10, t=66, b=10),  # the legend sits under the title, not across it (narrow columns)
            legend=dict(orientation="h", yref="container", y=1 - 30 / height, yanchor="top", xanchor="left", x=0))
    fig.update_layout(title=dict(yref="container", y=1 - 6 / height, yanchor="top"))
    return fig


def _hline(y: float, line: dict) -> dict:
    """A horizontal line across the plot as a layout shape (``add_hline`` costs ~5 ms a line)."""
    return dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=y, y1=y, line=line)


def _legend_line(name: str, line: dict) -> dict:
    """A legend entry for a line drawn as a shape (the legend names it: a label on the line covers bars)."""
    return dict(type="scatter", x=[None], y=[None], mode="lines", line=line, name=name, hoverinfo="skip")


def channel_classes_figure(per_class: np.ndarray, overall: float, classes: list[str], title: str,
                           height: int = 300, image_gate: float | None = None) -> go.Figure:
    """One channel's mean gate for each class (bars) against its all-class mean (dashed line) and, if given,
    one image's gate (dotted line)."""
    per_class = np.asarray(per_class, dtype=float)
    lines = [(float(overall), f"all classes {overall:.3f}", dict(color="#444", dash="dash", width=1.4))]
    if image_gate is not None:
        lines.append((float(image_gate), f"this image {image_gate:.3f}", dict(color=ACCENT, dash="dot", width=2)))
    data = [dict(type="bar", x=list(classes), y=per_class, showlegend=False,
                 marker=dict(color=per_class, colorscale="Viridis", cmin=0, cmax=1),
                 hovertemplate="%{x}: mean gate %{y:.3f}<extra></extra>")]
    data += [_legend_line(label, line) for _, label, line in lines]
    fig = go.Figure(data=data, layout=dict(shapes=[_hline(y, line) for y, _, line in lines],
                                           yaxis=dict(range=[0, 1], title_text="mean gate")))
    return _layout(fig, title, height, hovermode="closest")


def class_splits_figure(profiles: np.ndarray, classes: list[str], splits: list[dict], title: str,
                        height: int = 340) -> go.Figure:
    """Classes x channels heatmap of the mean gate, for the channels of ``splits`` (rows of
    :meth:`senet.profiles.ClassProfiles.class_splits`), group after group; each group is numbered on the x axis
    (1 = the first row) and fenced off by a white line."""
    channels = [c for r in splits for c in r["channels"]]
    if not channels:
        return _placeholder(_layout(go.Figure(), title, height), "no channel of this block splits the classes in two")
    profiles = np.asarray(profiles, dtype=float)
    edges = np.cumsum([0] + [len(r["channels"]) for r in splits])
    heat = dict(type="heatmap", z=profiles[:, channels], x=np.arange(len(channels)), y=list(classes),
                customdata=[list(channels)] * len(classes), zmin=0, zmax=1, colorscale="Viridis",
                colorbar=dict(title=dict(text="mean gate"), thickness=12),
                hovertemplate="%{y}<br>channel %{customdata}<br>mean gate %{z:.3f}<extra></extra>")
    fences = [dict(type="line", xref="x", x0=e - 0.5, x1=e - 0.5, yref="paper", y0=0, y1=1,
                   line=dict(color="white", width=2)) for e in edges[1:-1]]
    if len(classes) > MANY_CLASSES:  # a readable row per class (12 px), not 100 rows squeezed into the height
        height = max(height, 12 * len(classes) + 90)
    fig = go.Figure(data=[heat], layout=dict(
        shapes=fences, yaxis=dict(autorange="reversed", tickfont=dict(size=10) if len(classes) > MANY_CLASSES else {}),
        xaxis=dict(title_text="channels, by group", tickmode="array", tickvals=(edges[:-1] + edges[1:] - 1) / 2,
                   ticktext=[str(i + 1) for i in range(len(splits))])))
    return _layout(fig, title, height, hovermode="closest")


def split_ablation_figure(table: list[dict], baseline: float, n: int, height: int = 340,
                          split: str | None = None) -> go.Figure:
    """Change in accuracy (points) per block and for all blocks: gate off (left) and gate fixed to its mean
    (right), both panels on one y axis so their bars compare, each bar labelled with its change;
    ``table`` is :meth:`senet.ablation.GateAblation.table`."""
    names = [r["blocks"] for r in table]
    ticks = _short_names(names)
    changes = [r[f"{mode}_change_pts"] for r in table for mode in ("off", "mean")]
    low, high = min(changes + [0.0]), max(changes + [0.0])
    pad = 0.18 * max(high - low, 1.0)  # room for the labels outside the bars
    data = []
    for i, (mode, label, color) in enumerate((("off", "SE off (gate = 1)", ACCENT),
                                              ("mean", "gate fixed to its mean", TRAIN))):
        axis = "" if i == 0 else "2"
        y = [r[f"{mode}_change_pts"] for r in table]
        data.append(dict(type="bar", x=names, y=y, name=label, text=[f"{v:+.1f}" for v in y], textposition="outside",
                         cliponaxis=False, textfont=dict(size=11), marker_color=color,
                         customdata=[r[f"{mode}_acc"] for r in table], xaxis=f"x{axis}", yaxis=f"y{axis}",
                         hovertemplate=f"%{{x}}: {label}<br>%{{customdata:.2%}} (%{{y:+.2f}} pts)<extra></extra>"))
    y_range = [low - (pad if low < 0 else 0.25 * pad), high + (pad if high > 0 else 0.25 * pad)]
    layout = dict(
        xaxis=dict(domain=[0, 0.47], tickvals=names, ticktext=ticks),
        yaxis=dict(title_text="accuracy change (points)", range=y_range, zeroline=True, zerolinecolor="#444"),
        xaxis2=dict(domain=[0.53, 1], tickvals=names, ticktext=ticks),
        yaxis2=dict(anchor="x2", matches="y", showticklabels=False, zeroline=True, zerolinecolor="#444"),
        annotations=[dict(text=text, x=x, y=1.0, xref="paper", yref="paper", xanchor="center", yanchor="bottom",
                          showarrow=False, font=dict(size=12))
                     for text, x in (("SE off (gate = 1)", 0.235), ("gate fixed to its mean", 0.765))],
        showlegend=False)
    fig = go.Figure(data=data, layout=layout)
    images = f"{n:,} {split} images" if split else f"{n:,} images"
    return _layout(fig, f"Over {images}, recomputed now (all gates on: {baseline:.2%}); both panels on one scale",
                   height + 24, hovermode="closest", margin=dict(l=10, r=10, t=88, b=10))


def intervention_figure(classes: list[str], before: np.ndarray, after: np.ndarray, height: int = 300,
                        top: int = 12) -> go.Figure:
    """Class probabilities before and after an intervention, grouped bars; with more than
    :data:`MANY_CLASSES` classes only the ``top`` most probable either way (in class order; the title says so)."""
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    title = "Prediction before and after"
    keep = np.arange(len(classes))
    if len(classes) > MANY_CLASSES:
        keep = np.sort(np.argsort(-np.maximum(before, after), kind="stable")[:top])
        title += f": the {len(keep)} most probable of {len(classes)} classes (before or after)"
    names = [classes[k] for k in keep]
    fig = go.Figure()
    fig.add_bar(x=names, y=before[keep], name="as trained", marker_color=TRAIN, hovertemplate="%{x}: %{y:.2%}")
    fig.add_bar(x=names, y=after[keep], name="with intervention", marker_color=VAL, hovertemplate="%{x}: %{y:.2%}")
    fig.update_yaxes(range=[0, 1], tickformat=".0%", title_text="probability")
    return _layout(fig, title, height, barmode="group", hovermode="x")


def ablation_figure(ablation: dict[str, float], baseline: float, label: str, height: int = 260) -> go.Figure:
    """For each block switched off alone: the probability of the predicted class, against the baseline."""
    names = list(ablation)
    values = [ablation[n] for n in names]
    line = dict(color=ACCENT, dash="dash")
    data = [dict(type="bar", x=names, y=values, marker_color=TRAIN, name="SE off in that block",
                 text=[f"{v:.1%}" for v in values], textposition="outside", cliponaxis=False,
                 hovertemplate="SE off in %{x}<br>p(" + label + ") %{y:.2%}<extra></extra>"),
            _legend_line(f"all gates on {baseline:.1%}", line)]
    fig = go.Figure(data=data, layout=dict(
        shapes=[_hline(baseline, line)],
        yaxis=dict(range=[0, 1.12], tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1], tickformat=".0%", title_text=f"p({label})"),
        xaxis=dict(tickvals=names, ticktext=_short_names(names)) if len(names) > 4 else {}))
    return _layout(fig, f"SE off in one block at a time: p({label})", height, hovermode="closest")


COLOUR_MODES = ("all", "errors", "log")


def _log_ticks(top: float, rates: bool) -> tuple[list[float], list[str]]:
    """Colour-bar ticks of a log(1 + value) scale, labelled in the value's own units."""
    steps = [1, 10, 100, 1000, 10000, 100000]
    shown = [v for v in steps if v <= max(top, 1)]
    return [math.log10(1 + v) for v in shown], [f"{v:g}%" if rates else f"{v:,}" for v in shown]


def confusion_colour(cm: np.ndarray, normalise: bool, colour: str) -> dict:
    """What the confusion heatmap's colours show: ``z`` (None on a hidden diagonal), ``zmax``, the colour-bar
    ``title``, log ``ticks`` and a ``caption`` sentence saying what the colours mean."""
    if colour not in COLOUR_MODES:
        raise ValueError(f"colour must be one of {', '.join(COLOUR_MODES)}, got {colour!r}")
    k = len(cm)
    totals = cm.sum(axis=1, keepdims=True)
    rates = np.divide(cm, totals, out=np.zeros(cm.shape, dtype=float), where=totals > 0)
    values = rates * 100 if normalise else cm.astype(float)
    unit = "% of the true class" if normalise else "images"
    top = float(values.max()) if values.size else 0.0
    if colour == "errors":
        off = values[~np.eye(k, dtype=bool)]
        top_off = float(off.max()) if off.size else 0.0
        z = [[None if t == p else float(values[t, p]) for p in range(k)] for t in range(k)]
        shown = f"{top_off:.1f}%" if normalise else f"{top_off:,.0f}"
        return dict(z=z, zmax=max(top_off, 1e-9), title="errors (" + ("% of row" if normalise else "images") + ")",
                    ticks=None, caption=f"Colour: errors only. The diagonal (correct predictions) is grey and "
                    f"left out of the scale, so the colours span the off-diagonal cells alone, from 0 to {shown} "
                    f"({unit}).")
    if colour == "log":
        ticks = _log_ticks(top, normalise)
        return dict(z=np.log10(1 + values).tolist(), zmax=max(math.log10(1 + top), 1e-9),
                    title="% of row (log)" if normalise else "images (log)", ticks=ticks,
                    caption=f"Colour: log scale, log(1 + {'share' if normalise else 'count'}), so a few errors "
                    f"are visible beside the large diagonal; every cell, 0 to "
                    f"{f'{top:.1f}%' if normalise else f'{top:,.0f}'} ({unit}).")
    return dict(z=values.tolist(), zmax=max(top, 1e-9), title="% of row" if normalise else "images", ticks=None,
                caption=f"Colour: all cells on one linear scale, 0 to {f'{top:.1f}%' if normalise else f'{top:,.0f}'} "
                f"({unit}); the diagonal holds the correct predictions.")


def confusion_figure(confusion: np.ndarray, classes: list[str], normalise: bool = False,
                     selected: tuple[int, int] | None = None, height: int = 560, colour: str = "all") -> go.Figure:
    """A heatmap (rows true, columns predicted) of counts or row rates, with a clickable scatter overlay.

    Cells read as integers (counts) or percent with one decimal (row-normalised). ``colour``: ``all`` (one
    linear scale), ``errors`` (the diagonal greyed out and left out of the scale) or ``log`` (log(1 + value)).
    """
    cm = np.asarray(confusion)
    k = len(classes)
    totals = cm.sum(axis=1, keepdims=True)
    rates = np.divide(cm, totals, out=np.zeros(cm.shape, dtype=float), where=totals > 0)
    paint = confusion_colour(cm, normalise, colour)
    text = [[(f"{rates[t, p]:.1%}" if normalise else f"{cm[t, p]:d}") for p in range(k)] for t in range(k)]
    small = k > 6
    dense = k > MANY_CLASSES  # cells a few pixels wide: no numbers in them (the hover has them), no gaps
    # The colour bar lies above the matrix, so the cells get the figure's whole width.
    bar = dict(title=dict(text=paint["title"], side="top"), thickness=10, outlinewidth=0,
               orientation="h", x=0.5, xanchor="center", y=1.01, yanchor="bottom", len=0.85, ypad=0)
    if paint["ticks"]:
        bar.update(tickvals=paint["ticks"][0], ticktext=paint["ticks"][1])
    elif normalise:
        bar.update(ticksuffix="%")
    cells = {} if dense else dict(text=text, texttemplate="%{text}", textfont=dict(size=10 if small else 14))
    fig = go.Figure(go.Heatmap(z=paint["z"], x=classes, y=classes, colorscale="Blues", hoverinfo="skip",
                               colorbar=bar, zmin=0, zmax=paint["zmax"], xgap=0 if dense else 1,
                               ygap=0 if dense else 1, **cells))
    if colour == "errors":  # the hidden diagonal: grey cells (Plotly still writes their text)
        for i in range(k):
            fig.add_shape(type="rect", x0=i - 0.5, x1=i + 0.5, y0=i - 0.5, y1=i + 0.5, xref="x", yref="y",
                          fillcolor="#e6e6e6", line=dict(width=0), layer="below")
    tt, pp = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    custom = np.stack([tt.ravel(), pp.ravel(), cm.ravel(), rates.ravel()], axis=1)
    cell = max(8, int((height - 140) / max(k, 1) * 0.9))
    fig.add_trace(go.Scatter(
        x=[classes[p] for p in pp.ravel()], y=[classes[t] for t in tt.ravel()], mode="markers",
        marker=dict(symbol="square", size=cell, color="rgba(0,0,0,0)", line=dict(width=0)),
        customdata=custom.tolist(), showlegend=False, name="cells",
        hovertemplate="true: %{y}<br>predicted: %{x}<br>images: %{customdata[2]}<br>"
                      "share of true class: %{customdata[3]:.1%}<extra></extra>",
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1))))
    if selected is not None:
        t, p = selected
        fig.add_shape(type="rect", x0=p - 0.5, x1=p + 0.5, y0=t - 0.5, y1=t + 0.5, xref="x", yref="y",
                      line=dict(color=ACCENT, width=3))
    # Fixed ranges: the overlay's markers must not pad the axes (it left the heatmap a narrow strip). Many class
    # names are slanted; Plotly sets an axis title over long slanted labels, so the x title is an annotation
    # placed below the labels' measured depth (12 px font: about 6.5 px a character).
    angle = 45 if small else 0
    depth = int(max((len(c) for c in classes), default=0) * 6.5 * math.sin(math.radians(angle)) + 16)
    fig.update_xaxes(side="bottom", tickangle=-angle, range=[-0.5, k - 0.5], showgrid=False, zeroline=False,
                     ticks="", automargin=False, tickfont=dict(size=12))
    fig.update_yaxes(title_text="true class", range=[k - 0.5, -0.5], showgrid=False, zeroline=False, ticks="",
                     automargin=True)
    fig.add_annotation(text="predicted class", x=0.5, y=0, xref="paper", yref="paper", yanchor="top",
                       yshift=-depth - 4, showarrow=False, font=dict(size=14))
    return _layout(fig, None, height, hovermode="closest", clickmode="event+select", dragmode=False,
                   plot_bgcolor="white", margin=dict(l=10, r=10, t=10, b=depth + 30))


HARDWARE_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
HARDWARE_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star")


def overlay_figure(series: dict[str, Curves], metric: str, height: int = 320, x_axis: str = "epoch",
                   log_y: bool = False, hardware: dict[str, str] | None = None) -> go.Figure:
    """One metric of several runs on one chart: ``val_acc``, ``val_loss``, ``train_loss``, ``train_acc``
    (per epoch) or ``step_loss`` (per step). ``val_acc`` and ``val_loss`` draw each run on its scored split: a
    run trained on every image (no validation holdout) is drawn from its test figures, and its legend says so.

    ``x_axis="time"`` plots an epoch metric against the training time recorded with each epoch, in hours
    (epochs without a recorded time are left out); ``log_y`` puts a loss on a log axis. ``hardware`` (run name ->
    where it trained, e.g. "GPU NVIDIA H200", "CPU, 1 thread") groups the legend by hardware, one line style and
    marker per group, so that times from different machines are never read as one comparison.
    """
    if x_axis not in ("epoch", "time"):
        raise ValueError(f"x_axis must be 'epoch' or 'time', got {x_axis!r}")
    per_step = metric == "step_loss"
    by_time = x_axis == "time" and not per_step
    scored = metric in ("val_acc", "val_loss")
    splits = {c.scored_on for c in series.values()} if scored else set()
    held_out = ("Test" if splits == {"test"} else "Validation / test" if len(splits) > 1 else "Validation")
    title = {"val_acc": f"{held_out} accuracy", "val_loss": f"{held_out} loss", "train_loss": "Training loss",
             "train_acc": "Training accuracy", "step_loss": "Training loss per step (smoothed)"}.get(metric, metric)
    y_title = f"{held_out.lower()} {metric.split('_')[1]}" if scored else metric.replace("_", " ")
    fig = line_figure(title, "step" if per_step else "training time (h)" if by_time else "epoch", y_title, height)
    groups = list(dict.fromkeys(v for k, v in (hardware or {}).items() if k in series))  # in the runs' order
    drawn = False
    for i, (run, c) in enumerate(series.items()):
        name = run
        x = c.step if per_step else c.epoch
        y = smooth(c.step_loss, 0.6) if per_step else c.scored(metric.split("_")[1]) if scored else getattr(c, metric)
        if scored and len(splits) > 1:
            name = f"{name} ({c.scored_on})"
        if by_time:
            timed = [(t / 3600, v) for t, v in zip(c.elapsed_s, y) if math.isfinite(t)]
            x, y = [t for t, _ in timed], [v for _, v in timed]
        if not x:
            continue
        drawn = True
        group = (hardware or {}).get(run)
        k = groups.index(group) if group is not None else 0
        fig.add_scatter(x=x, y=y, mode="lines" if per_step else "lines+markers", name=name,
                        line=dict(color=PALETTE[i % len(PALETTE)], width=2,
                                  dash=HARDWARE_DASHES[k % len(HARDWARE_DASHES)]),
                        marker=dict(size=6 if group else 5, symbol=HARDWARE_SYMBOLS[k % len(HARDWARE_SYMBOLS)]),
                        hovertemplate=("%{y:.2%}" if metric.endswith("acc") else "%{y:.4f}")
                        + (f" · {group}" if group else ""),
                        **(dict(legendgroup=group, legendgrouptitle_text=group) if group else {}))
    if not drawn:
        return _placeholder(fig, "none of these has " + ("logged steps" if per_step else
                                                          "an epoch with a recorded training time" if by_time else
                                                          "finished an epoch"))
    if metric.endswith("acc"):
        fig.update_yaxes(tickformat=".0%")
    elif log_y:
        fig.update_yaxes(type="log")
    if by_time:
        fig.update_xaxes(hoverformat=".2f")  # the hover's heading: 0.74 (h), not 0.742827
    if not per_step and not by_time:
        epoch_ticks(fig, max((max(c.epoch, default=0) for c in series.values()), default=1))
    return fig
