"""Finding checkpoints: the shipped ones in ``checkpoints/`` and those of training runs, and other libraries'
ImageNet models opened by name (``torchvision:mobilenet_v3_large``, ``timm:seresnet50``).

Discovery only looks at file names and a few header bytes, so one corrupt or
foreign file never stops the listing; it is marked with a one-line ``problem``
and the other entries stay usable. Loading the chosen entry is
:func:`senet.load_checkpoint`'s job.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from senet.models.external import RANDOM, ExternalModelError, canonical_name, is_external, parse_name

__all__ = ["CheckpointEntry", "SHIPPED", "DEFAULT_CHECKPOINT", "discover_checkpoints", "default_entry", "probe",
           "external_entry", "external_name", "external_data_note"]

# The shipped checkpoints, in the order the dashboard offers them; the first present one is the default.
SHIPPED = ("se_airnet.pt", "airnet.pt", "se_resnet20.pt", "resnet20.pt")
DEFAULT_CHECKPOINT = "se_airnet.pt"


@dataclass(frozen=True)
class CheckpointEntry:
    """One checkpoint file the dashboard can offer."""

    path: Path
    label: str
    source: str               # "shipped" | "run" | "path"
    mtime: float
    size: int
    problem: str | None = None  # a one-line reason when the file is visibly not a checkpoint

    # source "external": another library's model, by name; ``path`` holds the name, mtime and size are 0

    @property
    def key(self) -> str:
        return str(self.path)


def probe(path: str | os.PathLike) -> str | None:
    """A cheap check that a file can be a PyTorch checkpoint: None if plausible, else a one-line reason."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            return f"{path}: the file is empty"
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        return f"{path}: cannot read it ({exc.strerror or exc})"
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch zip archive, or a legacy pickle
        return f"{path}: not a PyTorch checkpoint (unexpected file header)"
    return None


def _entry(path: Path, label: str, source: str) -> CheckpointEntry | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return CheckpointEntry(path, label, source, st.st_mtime, st.st_size, probe(path))


def discover_checkpoints(checkpoints_dir: str | os.PathLike = "checkpoints",
                         runs_root: str | os.PathLike = "runs",
                         extra: list[str | os.PathLike] | tuple = (),
                         listed: Callable[[Path], bool] = lambda path: True) -> list[CheckpointEntry]:
    """Shipped checkpoints (known names first), then each run's ``best.pt`` (else ``last.pt``), newest first,
    then ``extra`` paths. Missing directories are simply empty. ``listed`` decides which found files may be
    offered (a public demo: only those inside its folders once their symlinks are resolved)."""
    entries: list[CheckpointEntry] = []
    ckdir = Path(checkpoints_dir)
    if ckdir.is_dir():
        files = [p for p in ckdir.glob("*.pt") if p.is_file() and listed(p)]
        order = {name: i for i, name in enumerate(SHIPPED)}
        files.sort(key=lambda p: (order.get(p.name, len(order)), p.name))
        for p in files:
            e = _entry(p, f"{p.stem}  ·  shipped", "shipped")
            if e:
                entries.append(e)
    root = Path(runs_root)
    runs = []
    if root.is_dir():
        for d in root.iterdir():
            if not d.is_dir():
                continue
            for name in ("best.pt", "last.pt"):
                if not listed(d / name):
                    continue
                e = _entry(d / name, f"{d.name}  ·  run ({name})", "run")
                if e:
                    runs.append(e)
                    break
    runs.sort(key=lambda e: e.mtime, reverse=True)
    entries += runs
    seen = {e.key for e in entries}
    for p in extra:
        if is_external(str(p)):
            if str(p) not in seen:
                entries.append(external_entry(str(p)))
                seen.add(str(p))
            continue
        p = Path(p)
        if str(p) not in seen:
            e = _entry(p, f"{p.name}  ·  {p.parent}", "path")
            if e:
                entries.append(e)
                seen.add(e.key)
    return entries


def external_name(name: str, pretrained: bool) -> str:
    """The name to open: ``name`` spelled canonically (:func:`canonical_name`), with ``@random`` when no
    pretrained weights are wanted; a malformed name as typed (opening it says why)."""
    name = name.strip()
    if not pretrained and "@" not in name:
        name = f"{name}@{RANDOM}"
    try:
        return canonical_name(name)
    except ExternalModelError:
        return name


def external_entry(name: str) -> CheckpointEntry:
    """The picker's entry for another library's model (``torchvision:mobilenet_v3_large@random``)."""
    weights = "random weights" if parse_name(name).random else "ImageNet weights"
    return CheckpointEntry(Path(name), f"{name.split('@')[0]}  ·  {weights}", "external", 0.0, 0)


def external_data_note(meta: dict, spec: str) -> str:
    """Why split-wide views (class profiles, confusion, ablation over a split) need other data for another
    library's ImageNet model than ``spec`` (not a photo folder): one line saying what they need."""
    _, h, w = meta.get("input_size", (3, 224, 224))
    return (f"{meta.get('model')} predicts {len(meta.get('classes', [])):,} ImageNet classes from {w}×{h} photos; "
            f"{spec} holds other classes, so class profiles, confusion and split-wide ablation need a data source "
            "`folder:PATH` of photos in class folders named after some of its classes (`PATH/test/goldfish/` or "
            "`PATH/test/n01443537/`, choose the split test; or `PATH/train/...`); uploaded photos work with any data")


def default_entry(entries: list[CheckpointEntry]) -> CheckpointEntry | None:
    """``checkpoints/se_airnet.pt`` when present, else the first healthy entry, else the first one."""
    for e in entries:
        if e.source == "shipped" and e.path.name == DEFAULT_CHECKPOINT and not e.problem:
            return e
    healthy = [e for e in entries if not e.problem]
    return (healthy or entries or [None])[0]
