"""Public demo mode: what a shared, public deployment of the dashboard refuses, decided in one place.

``SENET_DEMO=1`` turns it on (read once per server configuration; see docs/demo-mode.md). In demo
mode no training starts or stops, nothing is downloaded, checkpoints, run and study directories open only under
the *checkpoint roots* and ``folder:`` data only under the *data roots* (the path with its symlinks resolved; a
``..`` in it is refused outright), uploads are capped in bytes and pixels, and each split-wide computation
(an evaluation, an ablation, class profiles) may take at most ``budget`` image passes (of a 32x32 image; a
224x224 photo counts 49) unless its result was prepared beforehand (cached on disk). Every refusal is one line. Outside demo mode every check allows everything.

This module never imports streamlit; ``views/_loaders.py`` wraps it for the pages.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from senet.data import CIFAR_SOURCES, DataError, cifar_complete, parse_spec
from senet.models.external import ExternalModelError, canonical_name

__all__ = ["DemoPolicy", "DemoConfigError", "DEMO_ENV", "TRAINING_OFF", "DOWNLOAD_OFF", "image_header_size",
           "has_parent_step", "images_within"]

DEMO_ENV = ("SENET_DEMO", "SENET_DEMO_CHECKPOINTS", "SENET_DEMO_DATA", "SENET_DEMO_MAX_UPLOAD_MB",
            "SENET_DEMO_MAX_UPLOAD_PIXELS", "SENET_DEMO_BUDGET", "SENET_DEMO_MODELS")
TRAINING_OFF = "Training is off in this public demo: runs are shown read-only, none can be started, stopped or resumed."
DOWNLOAD_OFF = "Downloading datasets is off in this public demo; use the data sources it serves."
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}
DEFAULT_UPLOAD_MB = 5.0
DEFAULT_UPLOAD_PIXELS = 12_000_000   # a 4000 x 3000 phone photo
DEFAULT_BUDGET = 5_000               # image passes: one evaluation of a 5,000-image split without TTA


class DemoConfigError(ValueError):
    """A demo setting that cannot be read; the message names the variable and the value, in one line."""


def has_parent_step(text: str) -> bool:
    """Whether a typed path has a ``..`` component (refused in demo mode whatever it resolves to)."""
    return ".." in text.replace("\\", "/").split("/")


def image_header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's header without decoding its pixels; None if PIL cannot read it."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # noqa: BLE001 -- not an image: the page's own decoder says why
        return None


def images_within(counts: "list[int] | tuple[int, ...]", per_class: int | None) -> int:
    """How many images a per-class subset takes: at most ``per_class`` of each class (all when None or 0)."""
    return int(sum(counts if not per_class else (min(c, per_class) for c in counts)))


def _flag(environ: Mapping[str, str]) -> bool:
    raw = str(environ.get("SENET_DEMO", "")).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise DemoConfigError(f"SENET_DEMO={raw!r}: expected 1 (demo mode on) or 0 (off)")


def _number(environ: Mapping[str, str], name: str, default: float, kind=int) -> float:
    raw = str(environ.get(name, "")).strip()
    if not raw:
        return default
    try:
        value = kind(raw.replace("_", ""))
    except ValueError:
        raise DemoConfigError(f"{name}={raw!r}: expected a positive number") from None
    if value <= 0:
        raise DemoConfigError(f"{name}={raw!r}: expected a positive number")
    return value


def _models(raw: str) -> tuple[str, ...]:
    """The models ``SENET_DEMO_MODELS`` lists (comma-separated), each spelled canonically."""
    out: list[str] = []
    for name in (m.strip() for m in raw.split(",") if m.strip()):
        try:
            canonical = canonical_name(name)
        except ExternalModelError as exc:
            raise DemoConfigError(f"SENET_DEMO_MODELS: {exc}") from None
        if canonical not in out:
            out.append(canonical)
    return tuple(out)


def _roots(raw: str, always: tuple[Path, ...] = ()) -> tuple[Path, ...]:
    """Resolved roots from an ``os.pathsep``-separated list, after the ones that are always allowed."""
    paths = [*always, *(Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip())]
    out: list[Path] = []
    for p in paths:
        resolved = p.resolve()
        if resolved not in out:
            out.append(resolved)
    return tuple(out)


CIFAR_PIXELS = 32 * 32  # the budget counts passes of a CIFAR-sized image


def pass_weight(pixels: int) -> int:
    """How many 32x32 image passes one pass of an image of ``pixels`` pixels counts as (49 for 224x224)."""
    return max(1, -(-int(pixels) // CIFAR_PIXELS))


@dataclass(frozen=True)
class DemoPolicy:
    """What the dashboard may do; ``enabled=False`` (the default) allows everything."""

    enabled: bool = False
    checkpoint_roots: tuple[Path, ...] = ()
    data_roots: tuple[Path, ...] = ()
    data_dir: Path = field(default_factory=lambda: Path("data"))
    max_upload_bytes: int = int(DEFAULT_UPLOAD_MB * 2**20)
    max_upload_pixels: int = DEFAULT_UPLOAD_PIXELS
    budget: int = DEFAULT_BUDGET
    models: tuple[str, ...] = ()  # other libraries' models by name (torchvision:..., timm:...) it may build

    @classmethod
    def from_env(cls, environ: Mapping[str, str], checkpoint_dirs: tuple[Path, ...] = (),
                 data_dir: Path = Path("data"), default_data: str = "") -> "DemoPolicy":
        """The policy the environment sets. ``checkpoint_dirs`` (the dashboard's checkpoint, runs and studies
        directories) are always checkpoint roots; the folder of a ``folder:`` default data source is always a
        data root. Raises :class:`DemoConfigError` for a malformed setting (the dashboard then refuses to start
        rather than run unguarded)."""
        if not _flag(environ):
            return cls(enabled=False, data_dir=Path(data_dir))
        default_folder: tuple[Path, ...] = ()
        try:
            kind, path = parse_spec(default_data) if default_data else ("", None)
            default_folder = (path,) if kind == "folder" else ()
        except DataError:
            pass
        megabytes = _number(environ, "SENET_DEMO_MAX_UPLOAD_MB", DEFAULT_UPLOAD_MB, float)
        return cls(enabled=True,
                   checkpoint_roots=_roots(environ.get("SENET_DEMO_CHECKPOINTS", ""), tuple(checkpoint_dirs)),
                   data_roots=_roots(environ.get("SENET_DEMO_DATA", ""), default_folder),
                   data_dir=Path(data_dir),
                   max_upload_bytes=int(megabytes * 2**20),
                   max_upload_pixels=int(_number(environ, "SENET_DEMO_MAX_UPLOAD_PIXELS", DEFAULT_UPLOAD_PIXELS)),
                   budget=int(_number(environ, "SENET_DEMO_BUDGET", DEFAULT_BUDGET)),
                   models=_models(environ.get("SENET_DEMO_MODELS", "")))

    # ------------------------------------------------------------------ paths
    def path_refusal(self, text: str | os.PathLike, what: str = "checkpoint") -> str | None:
        """None if a checkpoint file, run or study directory may be opened, else a one-line reason. Decided
        from the path alone (never from whether it exists), so a refusal tells nothing about the server."""
        return self._inside(str(text), self.checkpoint_roots, what) if self.enabled else None

    def listed(self, path: str | os.PathLike, what: str = "checkpoint") -> bool:
        """Whether a listing (the shipped checkpoints, the runs, the studies) may show ``path``: judged as if it
        were typed, with its symlinks resolved, so a link inside a root to a folder outside is not listed."""
        return self.path_refusal(path, what) is None

    def model_refusal(self, name: str) -> str | None:
        """None if another library's model may be built by name, else a one-line reason: only a name listed in
        ``SENET_DEMO_MODELS``, exactly as listed once both are spelled canonically
        (:func:`senet.models.external.canonical_name`): each other ``@weights`` tag is another model in memory
        and another weights download, and ``@RANDOM`` or ``@ random`` is not a new model."""
        if not self.enabled:
            return None
        try:
            if canonical_name(name) in self.models:
                return None
        except ExternalModelError as exc:
            return str(exc)
        return (f"{name}: this public demo serves only the ImageNet models "
                f"{', '.join(self.models) if self.models else '(none)'}, exactly as listed")

    def data_refusal(self, spec: str) -> str | None:
        """None if a data source may be read (``sample``; CIFAR only when every file is already there; ``folder:`` only
        under the data roots), else a one-line reason."""
        if not self.enabled:
            return None
        try:
            kind, path = parse_spec(spec)
        except DataError as exc:
            return str(exc)
        if kind in CIFAR_SOURCES:  # every unpacked file there: an incomplete folder would start a download
            if cifar_complete(kind, self.data_dir):
                return None
            return f"{spec}: not (completely) downloaded on this server, and this public demo downloads nothing"
        if kind == "folder":
            return self._inside(spec.strip()[len("folder:"):], self.data_roots, "data source", prefix="folder:")
        return None

    def _inside(self, text: str, roots: tuple[Path, ...], what: str, prefix: str = "") -> str | None:
        shown = f"{prefix}{text.strip()}"
        if not text.strip():
            return f"{what}: no path given"
        if has_parent_step(text):
            return f"{shown}: '..' is not allowed in a path in this public demo"
        if "\x00" in text:
            return f"{shown[:120]!r}: contains a NUL byte, which no path can hold"
        resolved = Path(text.strip()).expanduser().resolve()
        if any(resolved == r or resolved.is_relative_to(r) for r in roots):
            return None
        return f"{shown}: outside the folders this public demo serves for a {what}"

    # ------------------------------------------------------------------ uploads and budgets
    def upload_refusal(self, name: str, size_bytes: int, data: bytes | None = None) -> str | None:
        """None if an upload is within the caps (bytes, then pixels from the header), else a one-line reason."""
        if not self.enabled:
            return None
        if size_bytes > self.max_upload_bytes:
            return (f"{name}: {size_bytes / 2**20:.1f} MB is over this public demo's upload limit of "
                    f"{self.max_upload_bytes / 2**20:.1f} MB")
        size = image_header_size(data) if data is not None else None
        if size is not None and size[0] * size[1] > self.max_upload_pixels:
            w, h = size
            return (f"{name}: {w}×{h} = {w * h:,} pixels is over this public demo's limit of "
                    f"{self.max_upload_pixels:,} pixels")
        return None

    def split_work_refusal(self, what: str, images: int, passes: int = 1, cached: bool = False,
                           way_out: str = "choose fewer images, or the sample data",
                           pixels: int = CIFAR_PIXELS) -> str | None:
        """None if a split-wide computation of ``images`` x ``passes`` image passes may run (always when its
        result is ``cached``), else a one-line reason ending in ``way_out``. An image of ``pixels`` pixels (a
        224x224 photo) counts as :func:`pass_weight` passes of a 32x32 one."""
        weight = pass_weight(pixels)
        cost = images * passes * weight
        if not self.enabled or cached or cost <= self.budget:
            return None
        each = f" × {weight} (each {pixels:,}-pixel image counts as {weight} of 32×32)" if weight > 1 else ""
        return (f"{what}: {images:,} image{'s' if images != 1 else ''} × {passes} pass{'es' if passes != 1 else ''}"
                f"{each} = {cost:,} image passes, over this public demo's budget of {self.budget:,} per computation, "
                f"and not prepared beforehand; {way_out}")

    def per_class_within_budget(self, passes: int, n_classes: int, pixels: int = CIFAR_PIXELS) -> int | None:
        """The most images per class a computation of ``passes`` passes over images of ``pixels`` pixels may take
        (None: no limit)."""
        if not self.enabled:
            return None
        return max(0, self.budget // max(1, passes * n_classes * pass_weight(pixels)))
