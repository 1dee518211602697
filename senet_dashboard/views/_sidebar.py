"""The shared sidebar: checkpoint, data source and split, and the links that set them."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from senet import CheckpointError, DataError
from senet.data import CIFAR_SOURCES, SAMPLE_NAME, parse_spec
from senet_dashboard.catalog import CheckpointEntry, default_entry
from senet_dashboard.demo import DOWNLOAD_OFF, DemoConfigError
from senet_dashboard.views import _context
from senet_dashboard.views._format import plain
from senet_dashboard.views._imagenet import imagenet_picker, weights_caption
from senet_dashboard.views._loaders import (SidebarKeys, SPLITS, cifar10_downloaded, cifar_downloaded, data_available,
                                            data_spec, demo, demo_on, demo_data_help, entries, load_entry, model_key,
                                            settings)
from senet.models.external import is_external


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
    text = str(st.session_state.get(SidebarKeys.OPEN_CHECKPOINT_PATH) or "").strip()
    if not text:
        st.session_state[SidebarKeys.OPEN_CHECKPOINT_ERROR] = "Type the path of a .pt file first."
        return
    refusal = demo().path_refusal(text, "checkpoint")  # before looking at the file: says nothing about it
    if refusal:
        st.session_state[SidebarKeys.OPEN_CHECKPOINT_ERROR] = refusal
        return
    p = Path(text).expanduser()  # messages echo what was typed, never the server's expanded home directory
    if not p.exists():
        st.session_state[SidebarKeys.OPEN_CHECKPOINT_ERROR] = f"{plain(text, links_only=True)}: no such file"
        return
    if not p.is_file():
        st.session_state[SidebarKeys.OPEN_CHECKPOINT_ERROR] = f"{plain(text, links_only=True)}: not a file"
        return
    try:
        load_entry(p)
    except CheckpointError as exc:
        st.session_state[SidebarKeys.OPEN_CHECKPOINT_ERROR] = f"Cannot open this checkpoint: {exc}"
        return
    st.session_state[SidebarKeys.PENDING_CHECKPOINT] = str(p)


def _sample_caption(cifar10_ready: bool) -> str:
    name, detail = SAMPLE_NAME.split(": ", 1)
    return (f":material/inventory_2: **{name}**: {detail}, from the shipped checkpoints' own validation split (no "
            "shipped model trained on them). Figures on it are on these 500 images; split val only."
            + ("" if cifar10_ready else " The full CIFAR-10 (about 170 MB) is one button away:"))


def sidebar() -> None:
    """The shared sidebar: checkpoint, data source, split; afterwards the address bar carries all three."""
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
        link = _context.link_changed()
        if link is not None:  # a link, a reload of one, or another page's hand-off
            _apply_link(link)
        for problem in st.session_state.pop(SidebarKeys.LINK_ERRORS, []):
            st.error(plain(problem, links_only=True), icon=":material/link_off:")  # echoes a link's text
        if SidebarKeys.PENDING_DATA_SPEC in st.session_state:  # set by a download, before the data-source field exists
            st.session_state[SidebarKeys.DATA_SPEC] = st.session_state.pop(SidebarKeys.PENDING_DATA_SPEC)
        _checkpoint_picker()
        if not demo_on() or demo().models:  # a public demo that serves no ImageNet model does not offer one
            imagenet_picker()
        st.divider()
        _data_source(policy)
        if st.session_state.get(SidebarKeys.SPLIT) not in SPLITS:
            st.session_state[SidebarKeys.SPLIT] = "val"
        st.segmented_control("Split", SPLITS, key=SidebarKeys.SPLIT, required=True, persist_state="session",
                             help="val: the checkpoint's own held-out part of the training images; "
                                  "test: the source's test images.")
    _context.write_link()


def _checkpoint_picker() -> None:
    """The checkpoint box (a pending choice from a link, the Open popover or another page applied first)."""
    pending = st.session_state.pop(SidebarKeys.PENDING_CHECKPOINT, None)
    if pending:
        if pending not in {e.key for e in entries()}:
            st.session_state[SidebarKeys.EXTRA_CHECKPOINTS] = list(st.session_state.get(SidebarKeys.EXTRA_CHECKPOINTS, [])) + [pending]
        st.session_state[SidebarKeys.CHECKPOINT] = pending
    found = entries()
    by_key = {e.key: e for e in found}
    if found:
        if st.session_state.get(SidebarKeys.CHECKPOINT) not in by_key:
            default = default_entry(found)
            st.session_state[SidebarKeys.CHECKPOINT] = default.key if default else list(by_key)[0]
        st.selectbox("Checkpoint", list(by_key), key=SidebarKeys.CHECKPOINT, format_func=_checkpoint_label(by_key),
                     persist_state="session",  # kept through st.switch_page, which drops other widgets' state
                     help="Shipped checkpoints (checkpoints/) and the best checkpoint of each run (runs/).")
        chosen = by_key.get(st.session_state.get(SidebarKeys.CHECKPOINT))
        if chosen is not None and chosen.problem:
            st.error(chosen.problem, icon=":material/error:")
        if chosen is not None and chosen.source == "external":
            weights_caption(chosen.key)
    else:
        s = settings()
        st.session_state[SidebarKeys.CHECKPOINT] = None
        st.caption(f"No checkpoints in `{s.checkpoints_dir}` or `{s.runs_root}` yet.")
    with st.popover("Open a checkpoint file…", width="stretch"):
        st.text_input("Path to a .pt file", key=SidebarKeys.OPEN_CHECKPOINT_PATH, placeholder="/path/to/best.pt")
        st.button("Open", key=SidebarKeys.OPEN_CHECKPOINT_BUTTON, on_click=_open_checkpoint_file)
        open_error = st.session_state.pop(SidebarKeys.OPEN_CHECKPOINT_ERROR, None)
        if open_error:  # in the popover, which stays open after the click
            st.error(open_error, icon=":material/error:")


def _data_source(policy) -> None:
    """The data-source field, what it holds, and the download buttons."""
    if SidebarKeys.DATA_SPEC not in st.session_state:
        st.session_state[SidebarKeys.DATA_SPEC] = settings().default_data
    st.text_input("Data source", key=SidebarKeys.DATA_SPEC, persist_state="session",
                  help=demo_data_help() if policy.enabled else
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
        st.error(plain(reason, links_only=True), icon=":material/block:")
    else:
        st.caption(f":material/cloud_off: {plain(reason, links_only=True)}")
    for kind in ("cifar10", "cifar100"):
        offered = spec in ("cifar10", "sample") if kind == "cifar10" else spec == kind
        if offered and not cifar_downloaded(kind) and not policy.enabled \
                and st.button(f"Download {CIFAR_SOURCES[kind].title}", icon=":material/download:"):
            download_cifar(kind)


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
    st.session_state[SidebarKeys.PENDING_DATA_SPEC] = kind
    st.rerun()


def _link_error(name: str, value: str, exc: Exception) -> str:
    """One line for an address-bar parameter that cannot be used: the parameter, its value (printable, at most 80
    characters) and why, without repeating the value."""
    shown = "".join(c if c.isprintable() else "?" for c in value[:80]) + ("…" if len(value) > 80 else "")
    reason = " ".join(str(exc).split()) or type(exc).__name__
    for prefix in (str(Path(value).expanduser()), value):
        reason = reason.removeprefix(prefix + ": ")
    return f"{name}={shown} in the address: not opened; {reason}"


def _spec_problem(spec: str) -> str | None:
    """Why a data spec cannot be a data source (a NUL byte, an unknown kind), in one line; None if it can."""
    try:
        parse_spec(spec)
    except DataError as exc:
        return " ".join(str(exc).split())
    return None


def _apply_link(link: dict[str, str]) -> None:
    """The address bar's ``checkpoint``, ``data`` and ``split``, each checked as if typed into the sidebar (in
    demo mode: only inside the folders it serves); a refused one keeps the current choice and says why."""
    errors = []
    linked = link["checkpoint"]
    if linked and linked != st.session_state.get(SidebarKeys.CHECKPOINT):
        try:
            load_entry(Path(linked).expanduser())
            key = model_key(linked) if is_external(linked) else str(Path(linked).expanduser())  # one spelling
        except (CheckpointError, OSError, ValueError) as exc:  # ValueError: a path Python refuses (a NUL byte)
            errors.append(_link_error("checkpoint", linked, exc))
        else:
            st.session_state[SidebarKeys.PENDING_CHECKPOINT] = key
    spec = link["data"]
    if spec and spec != st.session_state.get(SidebarKeys.DATA_SPEC):
        refusal = demo().data_refusal(spec) or _spec_problem(spec)
        if refusal:
            errors.append(f"data={spec} in the address: not used ({refusal.removeprefix(spec + ': ')})")
        else:
            st.session_state[SidebarKeys.DATA_SPEC] = spec
    if link["split"] in SPLITS:
        st.session_state[SidebarKeys.SPLIT] = link["split"]
    elif link["split"]:
        shown = "".join(c if c.isprintable() else "?" for c in link["split"][:40])
        errors.append(f"split={shown} in the address: not a split (choose one of {', '.join(SPLITS)})")
    st.session_state[SidebarKeys.LINK_ERRORS] = errors
