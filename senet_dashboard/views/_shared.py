"""Shared dashboard plumbing: settings, the sidebar, and cached loading of checkpoints and data.

Pages import this module; it holds no computation of its own -- everything is
a call into ``senet`` -- only the Streamlit caching and messages around it.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from PIL import Image

from senet import CheckpointError, DataError, load_checkpoint, model_info
from senet_dashboard.catalog import CheckpointEntry, default_entry, discover_checkpoints, external_data_note
from senet.models.external import is_external
from senet.recorded import scored_split
from senet.data import CIFAR_SOURCES, SAMPLE_FILE, SAMPLE_NAME, TensorDataset, load_split, parse_spec
from senet.analysis.evaluate import checkpoint_split_options, has_cached_evaluation
from senet_dashboard.demo import DEMO_ENV, DOWNLOAD_OFF, DemoConfigError, DemoPolicy, images_within
from senet_dashboard.demo import TRAINING_OFF  # noqa: F401 -- for the Train page

ROOT = Path(__file__).resolve().parents[2]  # the checkout (in an installed package: unused, senet dashboard sets every folder)
SPLITS = ("val", "test", "train")


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
    :class:`dashboard.demo.DemoConfigError` for a malformed setting (the sidebar then stops every page)."""
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
                       way_out: str = "choose fewer images, or the sample data") -> str | None:
    """None if a split-wide computation may run now, else a one-line reason (demo mode's budget)."""
    return demo().split_work_refusal(what, images, passes, cached, way_out)


def per_class_within_budget(passes: int, n_classes: int) -> int | None:
    """The most images per class a computation of ``passes`` passes may take in demo mode (None: no limit)."""
    return demo().per_class_within_budget(passes, n_classes)


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
    s = settings()
    return discover_checkpoints(s.checkpoints_dir, s.runs_root, st.session_state.get("extra_checkpoints", []))


def load_entry(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """The model and metadata of a checkpoint file (cached by path and modification time).

    Raises :class:`senet.CheckpointError` with a one-line reason.
    """
    refusal = demo().model_refusal(str(path)) if is_external(str(path)) else demo().path_refusal(path, "checkpoint")
    if refusal:
        raise CheckpointError(refusal)
    if is_external(str(path)):  # torchvision:..., timm:...: built (weights fetched) once per server
        return _load_checkpoint(str(path), 0.0)
    p = Path(path)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        raise CheckpointError(f"{p}: no such checkpoint file") from None
    return _load_checkpoint(str(p), mtime)


def entry_mtime(path: str | Path) -> float:
    """The modification time that keys a checkpoint's caches; 0 for another library's model (by name)."""
    return 0.0 if is_external(str(path)) else Path(path).stat().st_mtime


def info_for(path: str | Path) -> dict:
    return _model_info(str(path) if is_external(str(path)) else str(Path(path)), entry_mtime(path))


def selected_path() -> str | None:
    return st.session_state.get("checkpoint")


def selected_model(show_error: bool = True) -> tuple[torch.nn.Module, dict] | None:
    """The sidebar's checkpoint, loaded; None (after an ``st.error``) when there is none or it is broken."""
    path = selected_path()
    if not path:
        if show_error:
            no_checkpoint_message()
        return None
    try:
        return load_entry(path)
    except CheckpointError as exc:
        if show_error:
            st.error(f"Cannot use this checkpoint: {exc}", icon=":material/error:")
        return None


def no_checkpoint_message() -> None:
    s = settings()
    st.info(
        f"No checkpoint yet. Train one on the **Train** page, or from a shell: "
        f"`python -m senet train --model se_resnet20 --epochs 5`. Shipped checkpoints are read from "
        f"`{s.checkpoints_dir}`, runs from `{s.runs_root}`.", icon=":material/info:")


# --------------------------------------------------------------------------- data
def data_spec() -> str:
    return st.session_state.get("data_spec") or settings().default_data


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
    if not (path / "train").is_dir():
        return f"folder:{path}: no 'train' folder (expected {path}/train/<class>/<image>)"
    return None


def cifar10_downloaded() -> bool:
    return cifar_downloaded("cifar10")


def cifar_downloaded(kind: str) -> bool:
    """Whether torchvision's ``cifar10`` or ``cifar100`` archive is unpacked in the data directory."""
    return (settings().data_dir / CIFAR_SOURCES[kind].folder).is_dir()


def _source_stamp(spec: str) -> float:
    kind, path = parse_spec(spec)
    root = settings().data_dir / CIFAR_SOURCES[kind].folder if kind in CIFAR_SOURCES \
        else SAMPLE_FILE if kind == "sample" else path / "train"
    try:
        return root.stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(max_entries=6, show_spinner="Reading images…")
def _load_split(spec: str, split: str, data_dir: str, val_size: float, split_seed: int, stamp: float) -> TensorDataset:
    return load_split(spec, split, data_dir, val_size, split_seed)


def load_data(split: str, meta: dict | None = None, spec: str | None = None) -> TensorDataset:
    """A split of the sidebar's data source (the checkpoint's own validation split when ``meta`` is given).

    Raises :class:`senet.DataError` with a one-line reason.
    """
    spec = spec or data_spec()
    refusal = demo().data_refusal(spec)
    if refusal:
        raise DataError(refusal)
    if meta and meta.get("external"):
        raise DataError(external_data_note(meta, spec))
    val_size, split_seed = checkpoint_split_options(meta or {})
    return _load_split(spec, split, str(settings().data_dir), val_size, split_seed, _source_stamp(spec))


def get_data(split: str, meta: dict | None, what_still_works: str) -> TensorDataset | None:
    """:func:`load_data` or None after a message saying how to get data and what still works."""
    if meta and meta.get("external"):  # an ImageNet model: the data sources hold other classes, at 32x32
        st.info(f"{external_data_note(meta, data_spec())}.  \n{what_still_works}", icon=":material/info:")
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


def split_data_reason(meta: dict | None, spec: str | None = None) -> str | None:
    """None when split-wide work (class profiles, ablation over a split) can use the data source for this
    checkpoint, else a one-line reason: no data, or an ImageNet model whose classes the data does not hold."""
    if meta and meta.get("external"):
        return external_data_note(meta, spec or data_spec())
    return data_available(spec)


def no_split_data_message(meta: dict | None, what_still_works: str) -> None:
    """:func:`no_data_message` for :func:`split_data_reason`: how to get data, or what an ImageNet model needs."""
    if meta and meta.get("external"):
        st.info(f"{external_data_note(meta, data_spec())}.  \n{what_still_works}", icon=":material/info:")
    else:
        no_data_message(data_available(), what_still_works)


def class_list(names) -> str:
    """Class names for a message: all of them up to 12, else the first 8 and how many there are."""
    names = [str(n) for n in names]
    return str(names) if len(names) <= 12 else f"({len(names)}: {', '.join(names[:8])}, …)"


def no_data_message(reason: str, what_still_works: str) -> None:
    if demo_on():
        st.info(f"**No data: {reason}.**  \n{_demo_data_help()}  \n{what_still_works}", icon=":material/cloud_off:")
        return
    st.info(
        f"**No data: {reason}.**  \n"
        f"Get data: in the sidebar, download CIFAR-10 (about 170 MB, into `{settings().data_dir}`; data source "
        f"`cifar100` offers CIFAR-100), or set the "
        f"data source to `folder:PATH` with images in `PATH/train/<class>/` (optionally `PATH/test/<class>/`), or "
        f"to `sample` (the bundled 500 held-out validation images, split val only); `SENET_DATA` sets the default."
        f"  \n{what_still_works}", icon=":material/cloud_off:")


def split_choice() -> str:
    return st.session_state.get("split", "val")


# --------------------------------------------------------------------------- images
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


# --------------------------------------------------------------------------- sidebar
def _checkpoint_label(entries_by_key: dict[str, CheckpointEntry]):
    def fmt(key: str) -> str:
        e = entries_by_key.get(key)
        if e is None:
            return key
        return ("⚠ " if e.problem else "") + e.label
    return fmt


def _open_checkpoint_file() -> None:
    """The popover's Open button. A callback runs before the script, so before the checkpoint selectbox exists:
    only then may the selection change. A file that cannot be used leaves the selection as it was and says why."""
    text = str(st.session_state.get("open_checkpoint_path") or "").strip()
    if not text:
        st.session_state["open_checkpoint_error"] = "Type the path of a .pt file first."
        return
    refusal = demo().path_refusal(text, "checkpoint")  # before looking at the file: says nothing about it
    if refusal:
        st.session_state["open_checkpoint_error"] = refusal
        return
    p = Path(text).expanduser()
    if not p.exists():
        st.session_state["open_checkpoint_error"] = f"{p}: no such file"
        return
    if not p.is_file():
        st.session_state["open_checkpoint_error"] = f"{p}: not a file"
        return
    try:
        load_entry(p)
    except CheckpointError as exc:
        st.session_state["open_checkpoint_error"] = f"Cannot open this checkpoint: {exc}"
        return
    st.session_state["pending_checkpoint"] = str(p)


def _sample_caption(cifar10_ready: bool) -> str:
    name, detail = SAMPLE_NAME.split(": ", 1)
    return (f":material/inventory_2: **{name}**: {detail}, from the shipped checkpoints' own validation split (no "
            "shipped model trained on them). Figures on it are on these 500 images; split val only."
            + ("" if cifar10_ready else " The full CIFAR-10 (about 170 MB) is one button away:"))


def sidebar() -> None:
    """The shared sidebar: checkpoint, data source, split."""
    s = settings()
    with st.sidebar:
        st.markdown("### :material/neurology: SENet Explorer")
        try:
            policy = demo()
        except DemoConfigError as exc:  # fail closed: a public demo never runs unguarded
            st.error(f"Demo mode is misconfigured: {exc}", icon=":material/error:")
            st.stop()
        if policy.enabled:
            st.caption(":material/public: **Public demo**: training and downloads are off; checkpoints and data "
                       "only from the folders it serves.")
        if "link_checked" not in st.session_state:  # a new session: a shared link may name checkpoint and data
            st.session_state["link_checked"] = True
            _apply_link()
        for problem in st.session_state.pop("link_errors", []):
            st.error(problem, icon=":material/link_off:")
        if "pending_data_spec" in st.session_state:  # set by a download, before the data-source field exists
            st.session_state["data_spec"] = st.session_state.pop("pending_data_spec")
        pending = st.session_state.pop("pending_checkpoint", None)
        if pending:
            known = {e.key for e in entries()}
            if pending not in known:
                st.session_state["extra_checkpoints"] = list(st.session_state.get("extra_checkpoints", [])) + [pending]
            st.session_state["checkpoint"] = pending
        found = entries()
        by_key = {e.key: e for e in found}
        if found:
            keys = list(by_key)
            current = st.session_state.get("checkpoint")
            if current not in by_key:
                default = default_entry(found)
                st.session_state["checkpoint"] = default.key if default else keys[0]
            st.selectbox("Checkpoint", keys, key="checkpoint", format_func=_checkpoint_label(by_key),
                         help="Shipped checkpoints (checkpoints/) and the best checkpoint of each run (runs/).")
            chosen = by_key.get(st.session_state.get("checkpoint"))
            if chosen is not None and chosen.problem:
                st.error(chosen.problem, icon=":material/error:")
            if chosen is not None and chosen.source == "external":
                from senet_dashboard.views._imagenet import weights_caption  # here: it imports this module
                weights_caption(chosen.key)
        else:
            st.session_state["checkpoint"] = None
            st.caption(f"No checkpoints in `{s.checkpoints_dir}` or `{s.runs_root}` yet.")
        with st.popover("Open a checkpoint file…", width="stretch"):
            st.text_input("Path to a .pt file", key="open_checkpoint_path", placeholder="/path/to/best.pt")
            st.button("Open", key="open_checkpoint_button", on_click=_open_checkpoint_file)
            open_error = st.session_state.pop("open_checkpoint_error", None)
            if open_error:  # in the popover, which stays open after the click
                st.error(open_error, icon=":material/error:")
        if not demo_on() or demo().models:  # a public demo that serves no ImageNet model does not offer one
            from senet_dashboard.views._imagenet import imagenet_picker
            imagenet_picker()

        st.divider()
        if "data_spec" not in st.session_state:
            st.session_state["data_spec"] = s.default_data
        st.text_input("Data source", key="data_spec",
                      help=_demo_data_help() if policy.enabled else
                      "`cifar10` or `cifar100` (CIFAR-10, or CIFAR-100's 100 fine classes, downloaded into "
                           "the data directory on first use), `folder:PATH` with "
                           "images in PATH/train/<class>/ and optionally PATH/test/<class>/, or `sample`: the "
                           "bundled 500 held-out validation images of the shipped checkpoints (split val only).")
        reason = data_available()
        spec = data_spec().strip()
        if spec == "sample" and reason is None:
            st.caption(_sample_caption(cifar10_downloaded() or policy.enabled))
        elif reason is None:
            st.caption(":material/check_circle: data ready")
        elif policy.data_refusal(spec):
            st.error(reason, icon=":material/block:")
        else:
            st.caption(f":material/cloud_off: {reason}")
        if spec in ("cifar10", "sample") and not cifar10_downloaded() and not policy.enabled \
                and st.button("Download CIFAR-10", icon=":material/download:"):
            download_cifar("cifar10")
        if spec == "cifar100" and not cifar_downloaded("cifar100") and not policy.enabled \
                and st.button("Download CIFAR-100", icon=":material/download:"):
            download_cifar("cifar100")
        if st.session_state.get("split") not in SPLITS:  # a new session: a shared link may name the split
            st.session_state["split"] = st.query_params.get("split") if st.query_params.get("split") in SPLITS \
                else "val"
        st.segmented_control("Split", SPLITS, key="split", required=True,
                             help="val: the checkpoint's own held-out part of the training images; "
                                  "test: the source's test images.")


def download_cifar(kind: str = "cifar10") -> None:
    """Download and decode ``cifar10`` or ``cifar100`` (train and test), then make it the data source."""
    from senet.data import load_source

    if demo_on():
        st.error(DOWNLOAD_OFF, icon=":material/block:")
        return
    source = CIFAR_SOURCES[kind]
    with st.status(f"Downloading {source.title} (about {source.megabytes} MB) into "
                   f"{settings().data_dir}…", expanded=True) as status:
        try:
            st.write("Training images…")
            load_source(kind, "train", settings().data_dir)
            st.write("Test images…")
            load_source(kind, "test", settings().data_dir)
        except DataError as exc:
            status.update(label="Download failed", state="error")
            st.error(str(exc))
            return
        status.update(label=f"{source.title} is ready", state="complete")
    st.session_state["pending_data_spec"] = kind
    st.rerun()


def _demo_data_help() -> str:
    """What data a public demo serves, for the data-source field and the no-data message."""
    policy = demo()
    served = ["`sample`"] + [f"`{k}`" for k, src in CIFAR_SOURCES.items()
                             if (policy.data_dir / src.folder).is_dir()]
    roots = ", ".join(f"`folder:{r}`" for r in policy.data_roots)
    return (f"This public demo serves {', '.join(served)}" + (f", and `folder:PATH` under {roots}" if roots else "")
            + "; it downloads nothing.")


def _apply_link() -> None:
    """A new session's ``?checkpoint=PATH`` and ``?data=SPEC`` (a shared link), each checked as if typed into the
    sidebar (in demo mode: only inside the folders it serves); a refused one keeps the default and says why."""
    errors = []
    linked = str(st.query_params.get("checkpoint") or "").strip()
    if linked:
        try:
            load_entry(Path(linked).expanduser())
        except CheckpointError as exc:
            errors.append(f"checkpoint={linked} in the address: not opened ({str(exc).removeprefix(linked + ': ')})")
        else:
            st.session_state["pending_checkpoint"] = str(Path(linked).expanduser())
    spec = str(st.query_params.get("data") or "").strip()
    if spec:
        refusal = demo().data_refusal(spec)
        if refusal:
            errors.append(f"data={spec} in the address: not used ({refusal.removeprefix(spec + ': ')})")
        else:
            st.session_state["data_spec"] = spec
    st.session_state["link_errors"] = errors
