"""Formatting for the pages: numbers as text, images enlarged for the screen."""
from __future__ import annotations

import re

import numpy as np
import torch
from PIL import Image

from senet.analysis.compare import LatencyComparison


_PUNCTUATION = re.compile(r"[!#$&()*+\-.:<=>@\[\\\]^_`{|}~]")  # ASCII punctuation that may start markdown
_LINK = re.compile(r"[\[\]<>]")  # what an image or a link needs besides a bare address
_AUTOLINK = re.compile(r"(?i)\b(h)(ttps?:)|\b(f)(tp:)|\b(w)(ww\.)|(@)([\w-]+\.\w)")  # an e-mail: @domain.tld


def plain(value: object, links_only: bool = False) -> str:
    """Text read from a file (a class name, a checkpoint card's recorded fields) for any Streamlit string that
    renders markdown -- st.markdown, captions, messages, titles, badges, widget labels, help, metric labels,
    values and deltas, image captions -- shown as the characters it is: ASCII punctuation as numeric character
    references (not ``' " , / ; ? %``, which start nothing), so no image (a request to another address), link,
    directive, colour or formula forms; runs of whitespace (line breaks included) as one space; a word joiner
    inside ``http:``, ``www.`` and an e-mail's ``@``, so no bare address becomes a link. ``links_only`` (for a typed
    path or address echoed in a message) neutralises only what makes an image or a link: brackets, angle brackets
    and bare addresses. Never for plain-text places (tables, charts, select options, code spans)."""
    text = " ".join(str(value).split())
    text = _AUTOLINK.sub(lambda m: "\u2060".join(g for g in m.groups() if g is not None), text)
    return (_LINK if links_only else _PUNCTUATION).sub(lambda m: f"&#{ord(m.group())};", text)


CARD_TEXT = ("recipe", "dataset", "data_spec", "imported_from", "hardware", "epochs")  # recorded, shown in prose


def card_text(meta: dict) -> dict:
    """A checkpoint's metadata with the fields its card writes into prose (:data:`CARD_TEXT`, and the config's
    data source) made markdown-safe by :func:`plain`; for display only (an int stays an int)."""
    out = dict(meta)
    for key in CARD_TEXT:
        if out.get(key) is not None and not isinstance(out[key], int):
            out[key] = plain(out[key])
    if isinstance(out.get("config"), dict) and out["config"].get("data") is not None:
        out["config"] = dict(out["config"], data=plain(out["config"]["data"]))
    return out


def class_list(names) -> str:
    """Class names for a message (markdown-safe, :func:`plain`): all of them up to 12, else the first 8 and how
    many there are."""
    names = [str(n) for n in names]
    return plain(names if len(names) <= 12 else f"({len(names)}: {', '.join(names[:8])}, …)")


def enlarge(pixels: torch.Tensor | np.ndarray, scale: int = 8) -> Image.Image:
    """A (3, H, W) uint8 tensor or (H, W, 3) array as a PIL image enlarged ``scale`` x, nearest neighbour."""
    arr = pixels.permute(1, 2, 0).numpy() if isinstance(pixels, torch.Tensor) else np.asarray(pixels)
    img = Image.fromarray(np.ascontiguousarray(arr.astype(np.uint8)))
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


def relative_change(x: float) -> str:
    """A relative change as a percentage with enough digits to show a small one (+0.86%, +0.005%); 0 is ±0%."""
    if x == 0:
        return "±0%"
    digits = 2 if abs(x) >= 1e-3 else 4 if abs(x) >= 1e-5 else 6
    return f"{x:+.{digits}%}"


def human(n: float | None) -> str:
    """1234567 -> '1.23 M'."""
    if n is None:
        return "–"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:g}"


def latency_words(lat: LatencyComparison, a: str = "SE", b: str = "plain") -> str:
    """One caption for an alternating CPU-latency comparison whose numbers agree with each other: the median
    per-round ratio with its interval (the comparison), then each model's median over the rounds, and, when the
    rounds vary widely, why those two medians need not give the same ratio."""
    low, high, confidence = lat.ratio_interval
    n = len(lat.ratios)
    change = lat.ratio - 1
    faster = ("within noise: the rounds do not say which is faster" if lat.within_noise
              else f"{a} {'slower' if change > 0 else 'faster'}")
    text = (f"CPU latency per image (batch 1) on this machine, {n} rounds timing {a} and {b} in alternation: "
            f"{a}/{b} time {change:+.1%}, the median of the {n} per-round ratios ({confidence:.0%} interval "
            f"{low - 1:+.1%} to {high - 1:+.1%}; {faster}). Each model's median over the rounds: {a} "
            f"{lat.median_a:.2f} ms, {b} {lat.median_b:.2f} ms")
    if not lat.load_varied:
        return text + "."
    spans = "; ".join(f"{name}'s from {min(r):.2f} to {max(r):.2f} ms"
                      for name, r in ((a, lat.rounds_a), (b, lat.rounds_b)))
    return (text + f". The rounds vary widely ({spans}): the machine's load changed while timing, so these two "
            f"medians come from different rounds and their ratio ({lat.medians_ratio - 1:+.1%}) is not the "
            f"comparison; the per-round ratio, each timed under one load, is.")


def strip(images: list[torch.Tensor | np.ndarray], scale: int = 3, gap: int = 4) -> Image.Image:
    """(3, H, W) uint8 images side by side as one picture (one element for the browser, not one each)."""
    tiles = [enlarge(p, scale) for p in images]
    if not tiles:
        return Image.new("RGB", (1, 1), "white")
    width = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
    out = Image.new("RGB", (width, max(t.height for t in tiles)), "white")
    x = 0
    for t in tiles:
        out.paste(t, (x, 0))
        x += t.width + gap
    return out


def subset_note(card: dict) -> str | None:
    """For another library's ImageNet model judged among a photo folder's classes (its ``class_subset``): what
    its probabilities and accuracy mean, in one sentence; None for any other checkpoint."""
    subset = card.get("class_subset")
    if not subset:
        return None
    k = len(subset["classes"])
    return (f"Among the data's {k} classes: the model's {subset['of']:,} ImageNet logits restricted to them, so "
            f"each prediction is a {k}-way choice (not ImageNet top-1 or top-5)")
