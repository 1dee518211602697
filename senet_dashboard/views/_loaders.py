"""Loading for the pages: settings, the demo policy, checkpoints and data (cached), and the messages when none.

Pages import this module; it holds no computation of its own -- everything is
a call into ``senet`` -- only the Streamlit caching and messages around it.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import streamlit as st
import torch

from senet import CheckpointError, DataError, load_checkpoint, model_info
from senet_dashboard.catalog import CheckpointEntry, discover_checkpoints, external_data_note
from senet.models.external import ExternalModelError, canonical_name, is_external
from senet.recorded import scored_split
from senet.data import (CIFAR_SOURCES, SAMPLE_FILE, TensorDataset, canonical_spec, cifar_complete, load_split,
                        parse_spec)
from senet.analysis.evaluate import checkpoint_split_options, has_cached_evaluation
from senet.analysis.imagenet import class_indices, external_split, folder_classes, model_wnids
from senet.checkpoint import Checkpoint
from senet_dashboard.views._progress import keep, run_with_progress, server_store
from senet_dashboard.views._format import class_list, plain
from senet_dashboard.demo import DEMO_ENV, DemoPolicy, images_within
from senet_dashboard.launcher import list_run_rows


ROOT = Path(__file__).resolve().parents[2]  # the checkout; an installed package gets every folder from senet dashboard
SPLITS = ("val", "test", "train")

class SidebarKeys:
    """The session keys of the sidebar's choices and of the hand-offs that set them, declared once."""

    CHECKPOINT: Final = "checkpoint"
    DATA_SPEC: Final = "data_spec"
    SPLIT: Final = "split"
    EXTRA_CHECKPOINTS: Final = "extra_checkpoints"
    PENDING_CHECKPOINT: Final = "pending_checkpoint"
    PENDING_DATA_SPEC: Final = "pending_data_spec"
    OPEN_CHECKPOINT_PATH: Final = "open_checkpoint_path"
    OPEN_CHECKPOINT_BUTTON: Final = "open_checkpoint_button"
    OPEN_CHECKPOINT_ERROR: Final = "open_checkpoint_error"
    LINK_ERRORS: Final = "link_errors"
    LINK_APPLIED: Final = "link_applied"
    IMAGENET_NAME: Final = "imagenet_name"
    IMAGENET_PRETRAINED: Final = "imagenet_pretrained"
    IMAGENET_OPEN: Final = "imagenet_open"
    IMAGENET_ERROR: Final = "imagenet_error"


@dataclass(frozen=True)
class Settings:
    """Where the dashboard looks for things; each can be set by an environment variable."""

    checkpoints_dir: Path
    runs_root: Path
    data_dir: Path
    default_data: str

    @classmethod
    def from_env(cls) -> "Settings":
        data_dir = Path(os.environ.get("SENET_DATA_DIR", ROOT / "data"))
        return cls(Path(os.environ.get("SENET_CHECKPOINTS", ROOT / "checkpoints")),
                   Path(os.environ.get("SENET_RUNS", ROOT / "runs")), data_dir,
                   os.environ.get("SENET_DATA") or fallback_data(data_dir))


def fallback_data(data_dir: Path) -> str:
    """The data source when ``$SENET_DATA`` is unset: ``cifar10`` once downloaded, else the bundled ``sample``
    (so that a fresh checkout shows results with no download), else ``cifar10`` (the pages say how to get it)."""
    if (data_dir / "cifar-10-batches-py").is_dir() or not SAMPLE_FILE.is_file():
        return "cifar10"
    return "sample"


def settings() -> Settings:
    return Settings.from_env()


# --------------------------------------------------------------------------- public demo mode (dashboard/demo.py)
def demo() -> DemoPolicy:
    """The public demo policy (``SENET_DEMO`` and friends), read once per configuration. Raises
    :class:`senet_dashboard.demo.DemoConfigError` for a malformed setting (the sidebar then stops every page)."""
    s = settings()
    studies = Path(os.environ.get("SENET_STUDIES", "studies"))  # as views/_study.py finds studies
    return _demo_policy(tuple(os.environ.get(k, "") for k in DEMO_ENV), (s.checkpoints_dir, s.runs_root, studies),
                        s.data_dir, s.default_data)


@functools.lru_cache(maxsize=4)
def _demo_policy(values: tuple[str, ...], dirs: tuple[Path, ...], data_dir: Path, default_data: str) -> DemoPolicy:
    return DemoPolicy.from_env(dict(zip(DEMO_ENV, values)), dirs, data_dir, default_data)


def demo_on() -> bool:
    return demo().enabled


def demo_budget() -> int | None:
    """Image passes one split-wide computation may take in demo mode (None outside it)."""
    return demo().budget if demo().enabled else None


def split_work_refusal(what: str, images: int, passes: int = 1, cached: bool = False,
                       way_out: str = "choose fewer images, or the sample data",
                       meta: dict | None = None) -> str | None:
    """None if a split-wide computation of the model of ``meta`` (default: the sidebar's) may run now, else a
    one-line reason (demo mode's budget, which counts a photo's pass as several of a 32x32 image)."""
    pixels = _input_pixels() if meta is None else _pixels(meta)
    return demo().split_work_refusal(what, images, passes, cached, way_out, pixels)


def per_class_within_budget(passes: int, n_classes: int) -> int | None:
    """The most images per class a computation of ``passes`` passes may take in demo mode (None: no limit)."""
    return demo().per_class_within_budget(passes, n_classes, _input_pixels())


def _input_pixels() -> int:
    """The pixels of one input of the sidebar's model (32x32 when none can be read)."""
    path = selected_path()
    try:
        _, meta = load_entry(path) if path else (None, {})
    except CheckpointError:
        return 32 * 32
    return _pixels(meta)


def _pixels(meta: dict) -> int:
    _, h, w = meta.get("input_size", (3, 32, 32))
    return int(h) * int(w)


def subset_size(data: TensorDataset, per_class: int | None) -> int:
    """How many images of ``data`` a per-class subset of at most ``per_class`` each takes (all for None / 0)."""
    return images_within(np.bincount(data.labels.numpy(), minlength=len(data.classes)).tolist(), per_class)


def evaluation_cached(path: str | Path, split: str, tta: int | bool, data: TensorDataset,
                      spec: str | None = None) -> bool:
    """Whether this evaluation was prepared beforehand (``senet evaluate`` or an earlier page left it on disk)."""
    return has_cached_evaluation(path, spec or data_spec(), split, data, settings().data_dir, tta)


def upload_refusal(upload) -> str | None:
    """None if an uploaded file (``st.file_uploader``'s value) is within demo mode's caps, else a one-line
    reason; outside demo mode always None (``open_image`` still refuses decompression bombs)."""
    if upload is None:
        return None
    return demo().upload_refusal(upload.name, int(upload.size), upload.getvalue())


# --------------------------------------------------------------------------- checkpoints
@st.cache_resource(max_entries=8, show_spinner="Loading checkpoint…")
def _load_checkpoint(path: str, mtime: float) -> tuple[torch.nn.Module, dict]:
    model, meta = load_checkpoint(path)
    return model, meta


@st.cache_resource(max_entries=16, show_spinner=False)
def _model_info(path: str, mtime: float) -> dict:
    model, meta = _load_checkpoint(path, mtime)
    return model_info(model, tuple(meta.get("input_size", (3, 32, 32))))


def entries() -> list[CheckpointEntry]:
    """The checkpoints the picker offers (a public demo lists none that a symlink takes outside its folders)."""
    s, policy = settings(), demo()
    return discover_checkpoints(s.checkpoints_dir, s.runs_root, st.session_state.get(SidebarKeys.EXTRA_CHECKPOINTS, []),
                                listed=policy.listed)


def run_rows() -> list[dict]:
    """The runs under the runs root (:func:`senet_dashboard.launcher.list_run_rows`); a public demo lists only
    those inside its folders once their symlinks are resolved, as it would open them typed."""
    policy = demo()
    return [r for r in list_run_rows(settings().runs_root) if policy.listed(r["path"], "run directory")]


def load_entry(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """The model and metadata of a checkpoint file (cached by path and modification time).

    Raises :class:`senet.CheckpointError` with a one-line reason.
    """
    refusal = demo().model_refusal(str(path)) if is_external(str(path)) else demo().path_refusal(path, "checkpoint")
    if refusal:
        raise CheckpointError(refusal)
    if is_external(str(path)):  # torchvision:..., timm:...: built (weights fetched) once per server and spelling
        return _load_checkpoint(model_key(path), 0.0)
    p = Path(path)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        raise CheckpointError(f"{p}: no such checkpoint file") from None
    return _load_checkpoint(str(p), mtime)


def model_key(name: str | Path) -> str:
    """Another library's model by its one spelling (``@RANDOM`` and ``@ random`` are ``@random``), the key of its
    caches. Raises :class:`senet.CheckpointError` for a malformed name."""
    try:
        return canonical_name(str(name))
    except ExternalModelError as exc:
        raise CheckpointError(str(exc)) from None


def entry_mtime(path: str | Path) -> float:
    """The modification time that keys a checkpoint's caches; 0 for another library's model (by name)."""
    return 0.0 if is_external(str(path)) else Path(path).stat().st_mtime


def info_for(path: str | Path) -> dict:
    return _model_info(model_key(path) if is_external(str(path)) else str(Path(path)), entry_mtime(path))


def selected_path() -> str | None:
    return st.session_state.get(SidebarKeys.CHECKPOINT)


def no_checkpoint_message() -> None:
    s = settings()
    st.info(
        f"No checkpoint yet. Train one on the **Train** page, or from a shell: "
        f"`python -m senet train --model se_resnet20 --epochs 5`. Shipped checkpoints are read from "
        f"`{s.checkpoints_dir}`, runs from `{s.runs_root}`.", icon=":material/info:")


# --------------------------------------------------------------------------- data
def data_spec() -> str:
    """The sidebar's data source in its one spelling (``folder:PATH/``, ``PATH//x``, ``PATH/./x`` are one
    source: one key for every cache and prepared result); a malformed spec as typed (loading it says why)."""
    spec = st.session_state.get(SidebarKeys.DATA_SPEC) or settings().default_data
    try:
        return canonical_spec(spec)
    except DataError:
        return spec


def data_available(spec: str | None = None) -> str | None:
    """None when the data source can be read without a download, else a one-line reason."""
    spec = spec or data_spec()
    refusal = demo().data_refusal(spec)
    if refusal:
        return refusal
    try:
        kind, path = parse_spec(spec)
    except DataError as exc:
        return str(exc)
    if kind in CIFAR_SOURCES:
        if cifar_downloaded(kind):
            return None
        return f"{CIFAR_SOURCES[kind].title} is not downloaded yet (into {settings().data_dir})"
    if kind == "sample":
        return None if SAMPLE_FILE.is_file() else f"sample: the bundled sample file {SAMPLE_FILE} is missing"
    if not path.is_dir():
        return f"folder:{path}: no such directory"
    if not (path / "train").is_dir() and not (path / "test").is_dir():
        return f"folder:{path}: no 'train' folder (expected {path}/train/<class>/<image>)"
    return None


def cifar10_downloaded() -> bool:
    return cifar_downloaded("cifar10")


def cifar_downloaded(kind: str) -> bool:
    """Whether torchvision's ``cifar10`` or ``cifar100`` archive is unpacked, every file of it, in the data
    directory (an incomplete folder would be downloaded again)."""
    return cifar_complete(kind, settings().data_dir)


def _source_stamp(spec: str) -> float:
    kind, path = parse_spec(spec)
    root = settings().data_dir / CIFAR_SOURCES[kind].folder if kind in CIFAR_SOURCES \
        else SAMPLE_FILE if kind == "sample" else path / "train"
    try:
        return root.stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(max_entries=6, show_spinner="Reading images…")
def _load_split(spec: str, split: str, data_dir: str, val_size: float, split_seed: int, stamp: float,
                download: bool) -> TensorDataset:
    return load_split(spec, split, data_dir, val_size, split_seed, download=download)


def load_data(split: str, meta: dict | None = None, spec: str | None = None) -> TensorDataset:
    """A split of the sidebar's data source (the checkpoint's own validation split when ``meta`` is given).

    Raises :class:`senet.DataError` with a one-line reason.
    """
    spec = spec or data_spec()
    refusal = demo().data_refusal(spec)
    if refusal:
        raise DataError(refusal)
    if meta and meta.get("external"):
        return photo_data(meta, spec, split)
    val_size, split_seed = checkpoint_split_options(meta or {})
    return _load_split(spec, split, str(settings().data_dir), val_size, split_seed, _source_stamp(spec),
                       download=not demo().enabled)  # a public demo downloads nothing, whatever the folder holds


# --------------------------------------------------------------------------- an ImageNet model's photos
PHOTOS_STOP = "decoding_photos"  # the name of its Stop (see _progress)


def photo_reason(meta: dict, spec: str, split: str) -> str | None:
    """None when another library's ImageNet model (``meta``) can be judged on ``split`` of ``spec``: a
    ``folder:`` whose class folders are named after some of its classes (readably or by WordNet id); else one
    line saying why not. Reads folder names only."""
    try:
        kind, _ = parse_spec(spec)
    except DataError as exc:
        return str(exc)
    if kind != "folder":
        return external_data_note(meta, spec)
    reason = data_available(spec)
    if reason:
        return reason
    try:
        class_indices(list(meta["classes"]), folder_classes(spec, split), str(meta.get("model")),
                      model_wnids(list(meta["classes"]), meta))
    except DataError as exc:
        return str(exc)
    return None


def photo_data(meta: dict, spec: str, split: str) -> TensorDataset:
    """The photos of ``split`` of a ``folder:`` for another library's ImageNet model: decoded once per server
    at the model's input with its weights' resize, crop and interpolation (at most :data:`MAX_PHOTOS`, held in
    memory; the last two kept), with progress and Stop; their classes as the restricted model names them.
    Raises :class:`senet.DataError` with a one-line reason (also when stopped)."""
    reason = photo_reason(meta, spec, split)
    if reason:
        raise DataError(reason)
    _, path = parse_spec(spec)
    part = path / ("test" if split == "test" else "train")
    key = (model_key(meta["path"]), spec, split, part.stat().st_mtime)
    if key in server_store("photos"):
        return server_store("photos")[key]
    checkpoint = Checkpoint.from_meta(*load_entry(meta["path"]))
    val_size, split_seed = checkpoint_split_options(meta)
    _, h, w = checkpoint.input_size
    found = run_with_progress(PHOTOS_STOP, key, f"Decoding the {split} photos at {w}×{h}, as the model's weights "
                              "prepare them", lambda report: external_split(
                                  checkpoint, spec, split, settings().data_dir, val_size, split_seed,
                                  progress=report)[1], unit="photos")
    if found is None:
        raise DataError(f"{spec}: decoding its {split} photos was stopped")
    return keep("photos", key, found, max_entries=2)


def get_data(split: str, meta: dict | None, what_still_works: str) -> TensorDataset | None:
    """:func:`load_data` or None after a message saying how to get data and what still works."""
    if meta and meta.get("external"):  # an ImageNet model: photos of some of its classes, at its input size
        reason = photo_reason(meta, data_spec(), split)
        if reason is None:
            try:
                return load_data(split, meta)
            except DataError as exc:
                reason = str(exc)
        st.info(f"{plain(reason, links_only=True)}.  \n{what_still_works}", icon=":material/info:")
        return None
    if split == "val" and meta and scored_split(meta) == "test":
        st.info("**No val split for this model:** it trained on every training image (validation size 0), so no "
                "image was held out; choose the split **test** in the sidebar, the split it was scored on.  \n"
                f"{what_still_works}", icon=":material/info:")
        return None
    reason = data_available()
    if reason is None:
        try:
            data = load_data(split, meta)
        except DataError as exc:
            if exc.use_split:  # the data is there, not this split: say which one to choose, not how to get data
                st.info(f"**{split_missing(exc)}**  \n{what_still_works}", icon=":material/info:")
                return None
            reason = str(exc)
        else:
            if meta and list(meta.get("classes", [])) != list(data.classes):
                st.warning(f"The data's classes {class_list(data.classes)} differ from the checkpoint's "
                           f"{class_list(meta.get('classes', []))}; choose a matching data source in the sidebar.",
                           icon=":material/warning:")
                return None
            return data
    no_data_message(reason, what_still_works)
    return None


def split_missing(exc: DataError) -> str:
    """A data error about a split the source lacks, worded for the dashboard: the split to choose in the sidebar
    (the library's message says "use the val split"; the command line's says ``--split val``)."""
    if not exc.use_split:
        return str(exc)
    return f"{str(exc).removesuffix(f'; use the {exc.use_split} split')}: choose the split {exc.use_split} in the sidebar."


def split_data_reason(meta: dict | None, spec: str | None = None) -> str | None:
    """None when split-wide work (class profiles, ablation over a split) can use the data source for this
    checkpoint, else a one-line reason: no data, or an ImageNet model whose classes the data does not hold."""
    if meta and meta.get("external"):
        return photo_reason(meta, spec or data_spec(), split_choice())
    return data_available(spec)


def no_split_data_message(meta: dict | None, what_still_works: str) -> None:
    """:func:`no_data_message` for :func:`split_data_reason`: how to get data, or what an ImageNet model needs."""
    if meta and meta.get("external"):
        reason = photo_reason(meta, data_spec(), split_choice()) or "no photos"
        st.info(f"{plain(reason, links_only=True)}.  \n{what_still_works}", icon=":material/info:")
    else:
        no_data_message(data_available(), what_still_works)


def no_data_message(reason: str, what_still_works: str) -> None:
    reason = plain(reason, links_only=True)  # it may echo a data source typed or linked
    if demo_on():
        st.info(f"**No data: {reason}.**  \n{demo_data_help()}  \n{what_still_works}", icon=":material/cloud_off:")
        return
    st.info(
        f"**No data: {reason}.**  \n"
        f"Get data: in the sidebar, download CIFAR-10 (about 170 MB, into `{settings().data_dir}`; data source "
        f"`cifar100` offers CIFAR-100), or set the "
        f"data source to `folder:PATH` with images in `PATH/train/<class>/` (optionally `PATH/test/<class>/`), or "
        f"to `sample` (the bundled 500 held-out validation images, split val only); `SENET_DATA` sets the default."
        f"  \n{what_still_works}", icon=":material/cloud_off:")


def split_choice() -> str:
    return st.session_state.get(SidebarKeys.SPLIT, "val")


def demo_data_help() -> str:
    """What data a public demo serves, for the data-source field and the no-data message."""
    policy = demo()
    served = ["`sample`"] + [f"`{k}`" for k in CIFAR_SOURCES if cifar_complete(k, policy.data_dir)]
    roots = ", ".join(f"`folder:{r}`" for r in policy.data_roots)
    return (f"This public demo serves {', '.join(served)}" + (f", and `folder:PATH` under {roots}" if roots else "")
            + "; it downloads nothing.")


