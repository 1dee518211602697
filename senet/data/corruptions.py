"""Common image corruptions at five severities, after CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019).

Each corruption follows the published definition and per-severity parameters of the CIFAR-10-C generator
(``make_cifar_c.py`` in github.com/hendrycks/robustness), re-implemented here with numpy, PIL and scipy:

=================  ============================================================  ==============================
name               definition (pixels x in 0..1 unless said)                      parameter at severity 1..5
=================  ============================================================  ==============================
gaussian_noise     x + N(0, c^2), each value                                       c = .04 .06 .08 .09 .10
shot_noise         Poisson(c x) / c, each value                                    c = 500 250 100 75 50
impulse_noise      each value set to 0 or 1 (equally likely) with probability c    c = .01 .02 .03 .05 .07
speckle_noise      x + x N(0, c^2), each value                                     c = .06 .10 .12 .16 .20
gaussian_blur      Gaussian filter, sigma c pixels (edges repeat, 4 sigma wide)    c = .4 .6 .7 .8 1
defocus_blur       filter with a disk of radius r, anti-aliased by a 3x3           (r, s) = (.3,.4) (.4,.5)
                   Gaussian of sigma s (edges mirrored without repeating)          (.5,.6) (1,.2) (1.5,.1)
contrast           (x - m) c + m, m the image's mean of each colour channel        c = .75 .5 .4 .3 .15
brightness         HSV value V + c (clipped to 1), hue and saturation kept         c = .05 .1 .15 .2 .3
jpeg_compression   saved as JPEG at quality c (PIL, 4:2:0) and decoded              c = 80 65 58 50 40
pixelate           box-resampled down to int(c H) x int(c W), then box back up     c = .95 .9 .85 .75 .65
=================  ============================================================  ==============================

The result is clipped to 0..1, scaled by 255 and stored as uint8 by truncation (``np.uint8``, as the
generator stores CIFAR-10-C; a value within 1e-6 below a whole number counts as it, so float round-off does
not cost an exact result a level), so it is the published image up to the random draws. What differs from the
generator: randomness comes from numpy's ``default_rng`` seeded per image by (seed, corruption, severity, the
image's position), not from numpy's global state, so a corrupted image is the same whichever batch it is in;
brightness scales R, G and B by (V + c) / V, which is what skimage's RGB -> HSV -> RGB round trip with V + c
computes (a black pixel, V = 0, becomes grey c); the defocus disk's 17 x 17 kernel is cut to its non-zero
part (the same filter); the Gaussian blur is scipy's ``gaussian_filter``, which skimage's ``gaussian`` calls.
Images of any size are accepted (pixelate uses ``int(c * side)``; the generator assumes 32 x 32).
"""
from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["Corruption", "CORRUPTIONS", "SEVERITIES", "check_corruption", "check_severity", "corrupt",
           "corrupt_tensor", "image_rng"]

SEVERITIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Corruption:
    """One corruption: its label, parameter per severity (1..5) and what the parameter is."""

    name: str
    label: str
    params: tuple
    meaning: str
    apply: Callable  # (float images (N, H, W, 3) in 0..1 or uint8 for PIL ones, param, rngs) -> same


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """0..1 floats -> uint8 the generator's way: clip, x 255, truncate (a value within 1e-6 below a whole number
    counts as it: float round-off of an exact result, e.g. 25 computed as 24.9999999, keeps its level)."""
    return np.minimum(np.clip(x, 0.0, 1.0) * 255.0 + 1e-6, 255.0).astype(np.uint8)


def _gaussian_noise(x: np.ndarray, c: float, rngs: list[np.random.Generator]) -> np.ndarray:
    noise = np.stack([rng.normal(0.0, c, size=x.shape[1:]) for rng in rngs])
    return x + noise


def _shot_noise(x: np.ndarray, c: float, rngs: list[np.random.Generator]) -> np.ndarray:
    return np.stack([rng.poisson(img * c) for img, rng in zip(x, rngs)]) / c


def _impulse_noise(x: np.ndarray, c: float, rngs: list[np.random.Generator]) -> np.ndarray:
    out = x.copy()
    for img, rng in zip(out, rngs):
        flipped = rng.random(img.shape) < c
        salt = rng.random(img.shape) < 0.5
        img[flipped & salt] = 1.0
        img[flipped & ~salt] = 0.0
    return out


def _speckle_noise(x: np.ndarray, c: float, rngs: list[np.random.Generator]) -> np.ndarray:
    return x + x * np.stack([rng.normal(0.0, c, size=x.shape[1:]) for rng in rngs])


def _gaussian_blur(x: np.ndarray, sigma: float, _rngs) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest", truncate=4.0)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The defocus kernel: the disk x^2 + y^2 <= r^2 on a 17 x 17 grid (r <= 8), normalised, blurred by a 3 x 3
    Gaussian of sigma ``alias_blur`` (OpenCV's ``GaussianBlur`` kernel), cut to its non-zero rows and columns."""
    half = max(8, int(np.ceil(radius)))
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx ** 2 + yy ** 2 <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    size = 3 if radius <= 8 else 5
    taps = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * alias_blur ** 2))
    taps /= taps.sum()
    padded = np.pad(disk, size // 2, mode="reflect")
    blurred = sum(taps[i] * taps[j] * padded[i:i + disk.shape[0], j:j + disk.shape[1]]
                  for i in range(size) for j in range(size))
    rows, cols = np.flatnonzero(blurred.any(1)), np.flatnonzero(blurred.any(0))
    r, c = max(half - rows[0], rows[-1] - half), max(half - cols[0], cols[-1] - half)
    return blurred[half - r:half + r + 1, half - c:half + c + 1]


def _filter(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate each channel of (N, H, W, 3) with ``kernel``, edges mirrored without repeating (OpenCV's
    ``BORDER_REFLECT_101``, numpy's ``reflect``)."""
    kh, kw = kernel.shape
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    out = np.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            if kernel[i, j]:
                out += kernel[i, j] * padded[:, i:i + h, j:j + w]
    return out


def _defocus_blur(x: np.ndarray, c: tuple[float, float], _rngs) -> np.ndarray:
    return _filter(x, disk_kernel(*c))


def _contrast(x: np.ndarray, c: float, _rngs) -> np.ndarray:
    means = x.mean(axis=(1, 2), keepdims=True)
    return (x - means) * c + means


def _brightness(x: np.ndarray, c: float, _rngs) -> np.ndarray:
    value = x.max(axis=-1, keepdims=True)
    scaled = x * (np.minimum(value + c, 1.0) / np.where(value > 0, value, 1.0))
    return np.where(value > 0, scaled, min(c, 1.0))


def _jpeg(x: np.ndarray, quality: int, _rngs) -> np.ndarray:
    out = []
    for img in x:
        buffer = io.BytesIO()
        Image.fromarray(img).save(buffer, "JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out.append(np.asarray(decoded.convert("RGB")))
    return np.stack(out)


def _pixelate(x: np.ndarray, c: float, _rngs) -> np.ndarray:
    out = []
    for img in x:
        h, w = img.shape[:2]
        small = Image.fromarray(img).resize((max(1, int(w * c)), max(1, int(h * c))), Image.BOX)
        out.append(np.asarray(small.resize((w, h), Image.BOX)))
    return np.stack(out)


_UINT8 = {"jpeg_compression", "pixelate"}  # work on the uint8 image (PIL), as the generator does

CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in [
    Corruption("gaussian_noise", "Gaussian noise", (0.04, 0.06, 0.08, 0.09, 0.10), "noise sigma (0..1 scale)",
               _gaussian_noise),
    Corruption("shot_noise", "Shot noise", (500, 250, 100, 75, 50), "photons at full intensity (fewer: noisier)",
               _shot_noise),
    Corruption("impulse_noise", "Impulse noise", (0.01, 0.02, 0.03, 0.05, 0.07), "fraction of values salted or "
               "peppered", _impulse_noise),
    Corruption("speckle_noise", "Speckle noise", (0.06, 0.10, 0.12, 0.16, 0.20), "multiplicative noise sigma",
               _speckle_noise),
    Corruption("gaussian_blur", "Gaussian blur", (0.4, 0.6, 0.7, 0.8, 1.0), "blur sigma (pixels)", _gaussian_blur),
    Corruption("defocus_blur", "Defocus blur", ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)),
               "(disk radius, anti-alias sigma) in pixels", _defocus_blur),
    Corruption("contrast", "Contrast", (0.75, 0.5, 0.4, 0.3, 0.15), "contrast kept", _contrast),
    Corruption("brightness", "Brightness", (0.05, 0.1, 0.15, 0.2, 0.3), "added to HSV value", _brightness),
    Corruption("jpeg_compression", "JPEG compression", (80, 65, 58, 50, 40), "JPEG quality", _jpeg),
    Corruption("pixelate", "Pixelate", (0.95, 0.9, 0.85, 0.75, 0.65), "side kept before box resampling up",
               _pixelate),
]}


def check_corruption(name: str) -> Corruption:
    """The corruption called ``name``; ``ValueError`` (one line, naming the known ones) for another name."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name]


def check_severity(severity: object) -> int:
    """``severity`` as an int 1..5; ``ValueError`` (one line) otherwise."""
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r}: must be a whole number from 1 to 5")
    return int(severity)


def image_rng(seed: int, name: str, severity: int, position: int) -> np.random.Generator:
    """The random draws of one image's corruption: fixed by the seed, the corruption, the severity and the
    image's position in its split, so the same image is corrupted the same way alone or in any batch."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), int(severity), int(position)])


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0,
            positions: Sequence[int] | None = None) -> np.ndarray:
    """``images`` (uint8 RGB, (H, W, 3) or (N, H, W, 3)) under corruption ``name`` at ``severity`` (1..5):
    uint8 of the same shape. ``positions``: each image's position in its split (default 0..N-1), which with
    ``seed`` fixes its random draws (see :func:`image_rng`)."""
    corruption, severity = check_corruption(name), check_severity(severity)
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 RGB of shape (H, W, 3) or (N, H, W, 3), got {images.dtype} "
                         f"{images.shape}")
    single = images.ndim == 3
    batch = images[None] if single else images
    positions = range(len(batch)) if positions is None else positions
    if len(positions) != len(batch):
        raise ValueError(f"{len(positions)} positions for {len(batch)} images")
    rngs = [image_rng(seed, name, severity, p) for p in positions]
    param = corruption.params[severity - 1]
    if name in _UINT8:
        out = corruption.apply(batch, param, rngs)
    else:
        out = _to_uint8(corruption.apply(batch.astype(np.float64) / 255.0, param, rngs))
    return out[0] if single else out


def corrupt_tensor(images: torch.Tensor, name: str, severity: int, seed: int = 0,
                   positions: Sequence[int] | None = None) -> torch.Tensor:
    """:func:`corrupt` for a uint8 tensor (N, 3, H, W) as :class:`senet.data.TensorDataset` holds images."""
    hwc = images.permute(0, 2, 3, 1).numpy()
    return torch.from_numpy(np.ascontiguousarray(corrupt(hwc, name, severity, seed, positions))).permute(0, 3, 1, 2)
