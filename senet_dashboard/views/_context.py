"""What every page works over, and the one way pages hand over to each other.

A page asks :func:`page_context` for the sidebar's choice: a typed :class:`senet.Checkpoint`, the data source
and the split. The address bar always carries that choice (``?checkpoint=...&data=...&split=...``), so a link,
a reload, a new browser session and every hand-off between pages (:func:`hand_over`) open the same thing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from senet import CheckpointError
from senet.checkpoint import Checkpoint
from senet.analysis.imagenet import folder_classes, restrict_to
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views._loaders import SidebarKeys

VIEWS = Path(__file__).resolve().parent
LINK_PARAMS = ("checkpoint", "data", "split")  # the sidebar's choice, in the address bar on every page
SIDEBAR_KEYS = (SidebarKeys.CHECKPOINT, SidebarKeys.DATA_SPEC, SidebarKeys.SPLIT)  # the widgets holding it


@dataclass(frozen=True)
class PageContext:
    """The sidebar's checkpoint, data source and split, as a page uses them."""

    checkpoint: Checkpoint
    meta: dict  # load_checkpoint's metadata, for the loaders that read it
    path: str  # the sidebar's key: a file path, or another library's model by name
    stamp: float  # the file's modification time (0 for a model by name): keys every cache
    spec: str
    split: str

    @property
    def classes(self) -> list[str]:
        return self.checkpoint.classes

    @property
    def card_folders(self) -> list[str] | None:
        """The class folders' names behind :attr:`classes` for an ImageNet model judged among a photo folder's
        classes (``n01443537`` behind ``goldfish``), else None."""
        return (self.checkpoint.card.get("class_subset") or {}).get("folders")

    @property
    def key(self) -> tuple:
        """What identifies a result computed over this context's data: checkpoint, its stamp, data, split."""
        return (self.path, self.stamp, self.spec, self.split)


@st.cache_resource(max_entries=16, show_spinner=False)
def _typed(path: str, stamp: float) -> Checkpoint:
    return Checkpoint.from_meta(*ui.load_entry(path))


@st.cache_resource(max_entries=16, show_spinner=False)
def _among(path: str, stamp: float, classes: tuple[str, ...]) -> Checkpoint:
    """Another library's ImageNet model judged among a photo folder's ``classes`` (its logits restricted)."""
    return restrict_to(_typed(path, stamp), list(classes))


def _checkpoint(path: str, stamp: float, meta: dict, spec: str, split: str) -> Checkpoint:
    """The checkpoint the pages use: an ImageNet model on a photo folder of some of its classes is judged among
    those classes (a k-way choice, as ``senet evaluate`` does), every page alike; otherwise as loaded."""
    if meta.get("external") and ui.photo_reason(meta, spec, split) is None:
        return _among(path, stamp, tuple(folder_classes(spec, split)))
    return _typed(path, stamp)


def page_context(show_error: bool = True) -> PageContext | None:
    """The sidebar's choice, or None after a message saying why there is none (no checkpoint, a broken one)."""
    path = ui.selected_path()
    if not path:
        if show_error:
            ui.no_checkpoint_message()
        return None
    try:
        model, meta = ui.load_entry(path)
        stamp = ui.entry_mtime(path)
    except (CheckpointError, OSError) as exc:
        if show_error:
            st.error(f"Cannot use this checkpoint: {str(exc).splitlines()[0]}", icon=":material/error:")
        return None
    spec, split = ui.data_spec(), ui.split_choice()
    return PageContext(_checkpoint(path, stamp, meta, spec, split), meta, path, stamp, spec, split)


def current_link() -> dict[str, str]:
    """The sidebar's choice as address-bar parameters."""
    return {"checkpoint": ui.selected_path() or "", "data": ui.data_spec(), "split": ui.split_choice()}


def hand_over(page: str, **params: str) -> None:
    """Open ``page`` (a file in ``views/``) on this session's checkpoint, data source and split, plus ``params``
    (``image=...``): the one hand-off between pages. It goes through the address bar, so it survives a reload."""
    st.switch_page(VIEWS / page, query_params={**current_link(), **params})


def link_changed() -> dict[str, str] | None:
    """The address bar's checkpoint/data/split when they differ from what was last applied or written, else
    None. The sidebar applies them (as if typed) on any page, not only in a new session."""
    link = {k: str(st.query_params.get(k) or "").strip() for k in LINK_PARAMS}
    if not any(link.values()):
        return None
    kept = all(k in st.session_state for k in SIDEBAR_KEYS)  # Streamlit may drop widget state on a page switch
    if link == st.session_state.get(SidebarKeys.LINK_APPLIED) and kept:
        return None
    st.session_state[SidebarKeys.LINK_APPLIED] = link
    return link


def write_link() -> None:
    """Put the sidebar's choice into the address bar (after the sidebar is drawn), so the address is a link."""
    link = current_link()
    st.session_state[SidebarKeys.LINK_APPLIED] = link
    for name, value in link.items():
        if value and st.query_params.get(name) != value:
            st.query_params[name] = value
