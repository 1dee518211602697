"""Figures drawn as one small SVG image each (no JavaScript, so the browser draws them at no cost): the network
diagram (stem, stages of SE blocks, each cell coloured by this image's mean gate, head) and the top-k bars."""
from __future__ import annotations

from html import escape

from plotly.colors import sample_colorscale

from senet.models.outline import OutlineBlock

CELL_W, CELL_H, GAP, STAGE_PAD = 58, 34, 6, 8


def _box(x: float, y: float, w: float, h: float, fill: str, stroke: str, width: float, label: str,
         title: str, dark_text: bool = True) -> str:
    colour = "#222" if dark_text else "#fff"
    return (f'<g><title>{escape(title)}</title><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="4" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"/><text x="{x + w / 2}" y="{y + h / 2 + 4}" '
            f'text-anchor="middle" font-size="11" fill="{colour}">{escape(label)}</text></g>')


def network_svg(blocks: list[OutlineBlock], mean_gates: dict[str, float] | None, chosen: str | None) -> str:
    """An SVG of ``stem → stage [blocks] → … → head``; each block cell coloured by ``mean_gates`` (Viridis,
    0–1; grey without), the ``chosen`` block outlined, C on each cell, the stage's name above it."""
    parts, x, top = [], 0.0, 18
    parts.append(_box(x, top, 44, CELL_H, "#eef1f5", "#9aa5b1", 1, "stem", "stem: the layers before the first SE block"))
    x += 44
    stages: dict[str, list[OutlineBlock]] = {}
    for b in blocks:
        stages.setdefault(b.stage, []).append(b)
    for stage, members in stages.items():
        parts.append(f'<text x="{x + 14}" y="{top + CELL_H / 2 + 4}" font-size="13" fill="#777">→</text>')
        x += 26
        width = len(members) * (CELL_W + GAP) - GAP + 2 * STAGE_PAD
        parts.append(f'<rect x="{x}" y="{top - 4}" width="{width}" height="{CELL_H + 8}" rx="6" fill="none" '
                     f'stroke="#c9d1da" stroke-dasharray="3 2"/><text x="{x + 4}" y="{top - 7}" font-size="10" '
                     f'fill="#555">{escape(stage)}</text>')
        cx = x + STAGE_PAD
        for b in members:
            gate = (mean_gates or {}).get(b.name)
            fill = sample_colorscale("Viridis", [min(max(gate, 0.0), 1.0)])[0] if gate is not None else "#dde3ea"
            here = b.name == chosen
            title = (f"{b.name}: SE over C = {b.channels} channels, hidden {b.hidden} (r = {b.reduction:g})"
                     + (f"; this image's mean gate {gate:.3f}" if gate is not None else ""))
            parts.append(_box(cx, top, CELL_W, CELL_H, fill, "#d62728" if here else "#ffffff", 3 if here else 1,
                              f"C={b.channels}", title, dark_text=gate is None or gate > 0.55))
            cx += CELL_W + GAP
        x += width
    parts.append(f'<text x="{x + 14}" y="{top + CELL_H / 2 + 4}" font-size="13" fill="#777">→</text>')
    x += 26
    parts.append(_box(x, top, 44, CELL_H, "#eef1f5", "#9aa5b1", 1, "head", "pool and the classifier"))
    total = x + 46
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total} {top + CELL_H + 6}" '
            f'width="{total}" height="{top + CELL_H + 6}" role="img" aria-label="network diagram" '
            f'font-family="sans-serif">{"".join(parts)}</svg>')


def topk_svg(top: list[tuple[str, float]], width: int = 420, bar_height: int = 18,
             colours: tuple[str, str] = ("#F58518", "#4C78A8")) -> str:
    """Horizontal bars of the top-k class probabilities, best first, each labelled with its class and percent."""
    label_w, gap = 110, 4
    scale = width - label_w - 60
    parts = []
    for i, (name, p) in enumerate(top):
        y = i * (bar_height + gap)
        w = max(1.0, scale * float(p))
        parts.append(f'<text x="{label_w - 6}" y="{y + bar_height - 5}" text-anchor="end" font-size="12" '
                     f'fill="#333">{escape(str(name)[:18])}</text><rect x="{label_w}" y="{y}" width="{w:.1f}" '
                     f'height="{bar_height}" fill="{colours[0] if i == 0 else colours[1]}"/><text '
                     f'x="{label_w + w + 5:.1f}" y="{y + bar_height - 5}" font-size="12" fill="#333">{p:.1%}</text>')
    height = len(top) * (bar_height + gap)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="top-{len(top)} class probabilities" '
            f'font-family="sans-serif">{"".join(parts)}</svg>')
