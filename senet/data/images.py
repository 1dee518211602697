"""Images: opening any user image safely, converting it to a uint8 tensor, normalisation and its constants."""
from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Mapping
from typing import Any, BinaryIO

import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageError", "PHOTO_FORMATS", "MAX_PIXELS", "IMAGE_SIZE", "CIFAR_MEAN", "CIFAR_STD", "CIFAR10_CLASSES", "open_image",
           "check_size", "to_rgb", "center_crop_box", "image_to_uint8", "normalize", "preprocess", "input_pixels"]

# What a photo or a dataset image is stored as; decided by content, so EPS, TIFF, PSD, ... under a ".png" name
# never reach Pillow's decoders for those formats (EPS would reach Ghostscript); phone MPO files open as JPEG.
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
MAX_PIXELS = 40_000_000  # refuse larger images before decoding them in full
IMAGE_SIZE = (32, 32)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
RESAMPLING = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
              "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}


class ImageError(ValueError):
    """An image that cannot be used; the message names it and says why."""


def _one_line(text: object, limit: int = 120) -> str:
    return " ".join(str(text).split())[:limit]


def open_image(source: str | os.PathLike | bytes | BinaryIO, name: str | None = None,
               formats: tuple[str, ...] = PHOTO_FORMATS) -> Image.Image:
    """Open and fully decode an image file, refusing bombs and junk with :class:`ImageError`.

    Only ``formats`` (by content, whatever the name says) are decoded; a path must be a regular file (a FIFO
    or device would block or never end). Animations give their first frame; an EXIF orientation tag (phone photos)
    is applied. The size is checked from the header, before the pixels are
    decoded. ``name`` labels the image in error messages.
    """
    label = _one_line(name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "uploaded image"), 200)
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        _check_regular_file(source, label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source, formats=formats)
            check_size(image, label)
            image.seek(0)
            image.load()
            if "exif" in image.info and image.getexif().get(0x0112, 1) != 1:  # EXIF Orientation (phone photos)
                image = ImageOps.exif_transpose(image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label}: image is too large (over {MAX_PIXELS:,} pixels)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image file in a format accepted here ({', '.join(formats)}; decided by content)") from None
    except FileNotFoundError:
        raise ImageError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{label}: is a directory, not an image file") from None
    except PermissionError:
        raise ImageError(f"{label}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{label}: broken or truncated image ({_one_line(exc)})") from None
    return image


def _check_regular_file(path: str | os.PathLike, label: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ImageError(f"{label}: no such file") from None
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL byte
        raise ImageError(f"{label}: cannot be read ({_one_line(getattr(exc, 'strerror', None) or exc)})") from None
    if stat.S_ISDIR(mode):
        raise ImageError(f"{label}: is a directory, not an image file")
    if not stat.S_ISREG(mode):
        raise ImageError(f"{label}: is not a regular file (a FIFO, device or socket), not an image file")


def check_size(image: Image.Image, label: str = "image") -> None:
    """Raise :class:`ImageError` for an image over :data:`MAX_PIXELS` (reads only the header)."""
    w, h = image.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{label}: image is too large ({w}x{h} = {w * h:,} pixels; the limit is {MAX_PIXELS:,})")
    if w < 1 or h < 1:
        raise ImageError(f"{label}: image has no pixels ({w}x{h})")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode (L, LA, P, RGBA, CMYK, I;16, I, F, ...) -> RGB; transparency over black."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np
        arr = np.asarray(image, dtype=np.float64)
        hi = 65535.0 if image.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        image = Image.fromarray(np.clip(arr / hi * 255.0, 0, 255).astype("uint8"), mode="L")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode == "CMYK":
        return image.convert("RGB")
    return image.convert("RGB")


def center_crop_box(width: int, height: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred box (left, top, right, bottom) of a ``width`` x ``height`` image with the aspect
    ratio of ``size`` (H, W): a 300x200 photo cropped for 32x32 keeps its middle 200x200."""
    target = size[1] / size[0]  # W / H
    if width / height > target:  # too wide: trim left and right
        w = max(1, round(height * target))
        left = (width - w) // 2
        return left, 0, left + w, height
    h = max(1, round(width / target))  # too tall (or exact): trim top and bottom
    top = (height - h) // 2
    return 0, top, width, top + h


def _shrink(box: tuple[int, int, int, int], fraction: float) -> tuple[int, int, int, int]:
    """The centred part of ``box`` with each side ``fraction`` as long."""
    left, top, right, bottom = box
    w, h = max(1, round((right - left) * fraction)), max(1, round((bottom - top) * fraction))
    x, y = left + (right - left - w) // 2, top + (bottom - top - h) // 2
    return x, y, x + w, y + h


def image_to_uint8(image: Image.Image, size: tuple[int, int] = (32, 32), crop: bool = False,
                   crop_pct: float = 1.0, interpolation: str = "bilinear") -> torch.Tensor:
    """An RGB uint8 tensor (3, H, W) of the image resized to ``size`` (H, W).

    ``crop=True`` (user images) first cuts the centred box of ``size``'s aspect ratio, so the picture keeps its
    proportions; ``crop=False`` (dataset decoding) squashes the whole image to ``size``. ``crop_pct`` below 1
    keeps only the centre of that (ImageNet weights' resize to ``size / crop_pct``, then centre crop to ``size``);
    ``interpolation`` is one of :data:`RESAMPLING` (``bilinear`` for the project's models).
    """
    check_size(image)
    try:
        rgb = to_rgb(image)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # unsupported mode, or pixels that fail to decode
        raise ImageError(f"image: cannot convert {image.mode} image to RGB ({_one_line(exc)})") from None
    box = center_crop_box(rgb.width, rgb.height, size) if crop else (0, 0, rgb.width, rgb.height)
    if crop_pct < 1.0:
        box = _shrink(box, crop_pct)
    if box != (0, 0, rgb.width, rgb.height):
        rgb = rgb.crop(box)
    if rgb.size != (size[1], size[0]):
        rgb = rgb.resize((size[1], size[0]), RESAMPLING.get(interpolation, Image.BILINEAR), reducing_gap=3.0)
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(size[0], size[1], 3).permute(2, 0, 1).contiguous()


def normalize(images: torch.Tensor, mean: list[float] | tuple[float, ...], std: list[float] | tuple[float, ...]) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float, scaled to [0, 1] and normalised per channel."""
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def _read(checkpoint: Mapping | Any, key: str, default: Any) -> Any:
    """A field of a checkpoint's ``meta`` dict, or of a :class:`senet.Checkpoint` (or its ``card``)."""
    if isinstance(checkpoint, Mapping):
        return checkpoint.get(key, default)
    if hasattr(checkpoint, key):
        return getattr(checkpoint, key)
    return (getattr(checkpoint, "card", None) or {}).get(key, default)


def input_pixels(image: Image.Image, checkpoint: Mapping | Any) -> torch.Tensor:
    """The uint8 (3, H, W) pixels the checkpoint's model sees for ``image``, before normalisation: its centred
    box of the input's aspect ratio (for ImageNet weights only the central ``crop_pct`` of it, as their resize
    and centre crop do) resized to the input size with the weights' interpolation (``preprocessing`` in meta)."""
    _, h, w = _read(checkpoint, "input_size", (3, *IMAGE_SIZE))
    prep = _read(checkpoint, "preprocessing", None) or {}
    crop_pct = float(prep.get("crop_pct", 1.0))
    squash = prep.get("crop_mode") == "squash"  # timm's: the whole image to the scaled size, then the centre
    return image_to_uint8(image, (h, w), crop=not squash, crop_pct=min(crop_pct, 1.0),
                          interpolation=str(prep.get("interpolation", "bilinear")))


def preprocess(image: Image.Image, checkpoint: Mapping | Any) -> torch.Tensor:
    """A PIL image of any mode and size -> the normalised (1, 3, H, W) input the checkpoint expects: its
    centred square (the input's aspect ratio) resized to the input size (:func:`input_pixels`).

    ``checkpoint`` is a :class:`senet.Checkpoint` or a checkpoint's ``meta`` dict (``input_size``, ``mean``, ``std``;
    ``preprocessing`` for other libraries' ImageNet weights).
    """
    pixels = input_pixels(image, checkpoint)
    return normalize(pixels[None], _read(checkpoint, "mean", CIFAR_MEAN), _read(checkpoint, "std", CIFAR_STD))
