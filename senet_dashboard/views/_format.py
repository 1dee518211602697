"""Formatting for the pages: numbers as text, images enlarged for the screen."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def class_list(names) -> str:
    """Class names for a message: all of them up to 12, else the first 8 and how many there are."""
    names = [str(n) for n in names]
    return str(names) if len(names) <= 12 else f"({len(names)}: {', '.join(names[:8])}, …)"


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
