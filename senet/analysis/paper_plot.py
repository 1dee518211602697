"""The SENet paper's Fig. 6 and Fig. 7 drawn from :func:`senet.analysis.paper_figures.paper_figure_numbers`.

Fig. 6: one panel per SE block, the mean gate of each channel (x: channel index) for each class, and the mean over
all the sampled images ("all", black). Fig. 7: one panel per (class, block), each channel's mean gate with a band
of one standard deviation over the class's images. Drawn on a :class:`matplotlib.figure.Figure` with the Agg
canvas (no pyplot, so no global figure state) and written atomically (:func:`senet.files.atomic_write`).
"""
from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

from ..files import atomic_write

__all__ = ["FIGURE_SUFFIXES", "PNG_DPI", "figure_format", "paper_figure", "write_paper_figure"]

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")  # the formats --out writes, chosen by the file's suffix
PNG_DPI = 150
PANEL_WIDTH, PANEL_HEIGHT = 3.3, 2.3  # inches: six Fig. 6 panels make a 10 x 6 inch page, readable when printed
MIN_WIDTH = 8.0  # inches: room for the suptitle and Fig. 7's panel titles
TITLE_CHARS_PER_INCH = 14  # the suptitle's 9 pt text, wrapped to the figure's width
ALL_COLOUR = "black"
CLASS_COLOURS = ("tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                 "tab:olive", "tab:cyan", "tab:gray")


def _title(figure: int, weights: str, data: str, split: str, per_class: int, numbers: dict, width: int) -> str:
    what = ("Fig. 6: mean SE gate of each channel, per class and over all the sampled images" if figure == 6 else
            "Fig. 7: mean SE gate of each channel over one class's images, with \u00b11 standard deviation")
    k = len(numbers["all_classes"])
    sample = f"{data} [{split}]: up to {per_class} images per class"
    if figure == 6:
        sample += f"; \"all\": the {numbers['all_images']} sampled images of the data's {k} class{'es' * (k != 1)}"
    return "\n".join(textwrap.fill(line, width) for line in (what, f"weights: {weights}", sample))


def _limits(values: list[list[float]], gate_range: tuple[float, float] | None) -> tuple[float, float]:
    """The y axis: the gate's range when it is finite and (0, 1)-like, else the values' range with a margin."""
    lo, hi = gate_range or (0.0, 1.0)
    if math.isfinite(lo) and math.isfinite(hi):
        pad = 0.03 * (hi - lo)
        return lo - pad, hi + pad
    flat = [v for row in values for v in row if math.isfinite(v)] or [0.0, 1.0]
    low, high = min(flat), max(flat)
    pad = 0.05 * (high - low or 1.0)
    return (max(low - pad, lo) if math.isfinite(lo) else low - pad), (min(high + pad, hi) if math.isfinite(hi)
                                                                      else high + pad)


def _style(ax, title: str, channels: int, ylim: tuple[float, float], left: bool, bottom: bool) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, max(channels - 1, 1))
    ax.set_ylim(*ylim)
    ax.tick_params(labelsize=8)
    ax.grid(True, linewidth=0.4, alpha=0.4)
    if left:
        ax.set_ylabel("activation (mean gate)", fontsize=9)
    if bottom:
        ax.set_xlabel("channel index", fontsize=9)


def _panels(numbers: dict, figure: int) -> tuple[list[tuple[str, str | None]], int]:
    """The panels, as (block, class or None), and the columns of their grid: Fig. 6 one per block, three a row;
    Fig. 7 one per (class, block), a row per class (three a row past three blocks)."""
    blocks = list(numbers["blocks"])
    if figure == 6:
        return [(b, None) for b in blocks], min(3, max(len(blocks), 1))
    pairs = [(b, name) for name in numbers["classes"] for b in blocks if name in numbers["blocks"][b]["classes"]]
    return pairs, min(3, max(len(blocks), 1))


def _draw(ax, numbers: dict, block: str, name: str | None, colour: str) -> list[list[float]]:
    """One panel's lines (Fig. 6 when ``name`` is None, else Fig. 7's class ``name``); the values drawn."""
    entry = numbers["blocks"][block]
    x = range(entry["channels"])
    if name is None:
        drawn = [entry["all"]]
        for k, (cls, stats) in enumerate(entry["classes"].items()):
            ax.plot(x, stats["mean"], color=CLASS_COLOURS[k % len(CLASS_COLOURS)], linewidth=0.6, alpha=0.8,
                    label=f"{cls} ({numbers['images_per_class'][cls]} images)")
            drawn.append(stats["mean"])
        # on top, but thin and translucent: where a class departs from the mean its colour shows beside it
        ax.plot(x, entry["all"], color=ALL_COLOUR, linewidth=0.5, alpha=0.6,
                label=f"all ({numbers['all_images']} images)")
        return drawn
    stats = entry["classes"][name]
    below = [m - s for m, s in zip(stats["mean"], stats["std"])]
    above = [m + s for m, s in zip(stats["mean"], stats["std"])]
    ax.fill_between(x, below, above, color=colour, alpha=0.45, linewidth=0, label="\u00b11 std over its images")
    ax.plot(x, stats["mean"], color=ALL_COLOUR, linewidth=0.35, alpha=0.9, label="mean over its images")
    return [below, above]


def _legend(fig, figure: int) -> None:
    """Fig. 6: one key under the panels for all of them; Fig. 7: a key in its first panel."""
    if figure == 6:
        handles, labels = fig.axes[0].get_legend_handles_labels()
        legend = fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=8,
                            frameon=False)
    else:
        legend = fig.axes[0].legend(fontsize=7, loc="lower right", framealpha=0.8)
    for line in legend.get_lines():  # the key's lines thick enough to tell the colours apart
        line.set_linewidth(2.0)
        line.set_alpha(1.0)


def paper_figure(numbers: dict, figure: int, *, weights: str, data: str, split: str, per_class: int,
                 gate_ranges: dict[str, tuple[float, float]] | None = None):
    """Fig. 6 or Fig. 7 (``figure``) of ``numbers`` as a :class:`matplotlib.figure.Figure`; the suptitle names the
    ``weights`` (in words), the ``data``, ``split`` and images per class. ``gate_ranges``: per block, the values
    its gate can take (the y axis; default 0 to 1)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if figure not in (6, 7):
        raise ValueError(f"figure {figure}: the paper's class figures are 6 and 7")
    panels, cols = _panels(numbers, figure)
    rows = max(math.ceil(len(panels) / cols), 1)
    width = max(PANEL_WIDTH * cols, MIN_WIDTH)
    fig = Figure(figsize=(width, PANEL_HEIGHT * rows + 1.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    classes = list(numbers["classes"])
    for i, (ax, (block, name)) in enumerate(zip(axes, panels)):
        colour = CLASS_COLOURS[classes.index(name) % len(CLASS_COLOURS)] if name else ALL_COLOUR
        drawn = _draw(ax, numbers, block, name, colour)
        title = block if name is None else f"{block}: {name} ({numbers['images_per_class'][name]} images)"
        _style(ax, title, numbers["blocks"][block]["channels"], _limits(drawn, (gate_ranges or {}).get(block)),
               left=i % cols == 0, bottom=i + cols >= len(panels))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    title = _title(figure, weights, data, split, per_class, numbers, int(width * TITLE_CHARS_PER_INCH))
    fig.suptitle(title, fontsize=9, x=0.01, horizontalalignment="left")
    if panels:
        _legend(fig, figure)
    return fig


def figure_format(path: str | os.PathLike) -> str:
    """The format ``path``'s suffix names (``png``, ``svg``, ``pdf``); ValueError (one line) for another."""
    path = Path(path)
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"{path}: the figure is written as {', '.join(FIGURE_SUFFIXES)}, not "
                         f"{path.suffix or 'a file without a suffix'}")
    return path.suffix.lower().lstrip(".")


def write_paper_figure(path: str | os.PathLike, fig) -> None:
    """Save ``fig`` to ``path`` atomically, in the format its suffix names (:func:`figure_format`), a PNG at
    :data:`PNG_DPI`. ``OSError`` (one line) when the disk refuses or ``path`` is not a regular file."""
    fmt = figure_format(path)
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=PNG_DPI))
