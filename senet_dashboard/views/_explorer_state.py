"""The Excitation explorer's state: its session keys (declared once: a misspelt name is an AttributeError), its
views, and the image, block and channel that every view follows and the address bar carries."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import streamlit as st
import torch


class Keys:
    """Every session-state key the explorer's page and views share."""

    VIEW: Final = "exc_view"
    PENDING_VIEW: Final = "exc_pending_view"  # a view asked for from inside another view, shown next run
    PENDING_BLOCK: Final = "exc_pending_block"  # a block picked inside a view, followed from the next run
    MODE: Final = "exc_mode"  # "From the data" or "Upload"
    CLASS: Final = "exc_class"
    INDEX: Final = "exc_idx"  # the image's index within its class
    UPLOAD: Final = "exc_upload"
    URL_IMAGE: Final = "exc_url_image"  # the image= last read from or written to the address
    URL_VIEW: Final = "exc_url_view"  # the view/block/channel last read from or written to the address
    GALLERY_SEED: Final = "gallery_seed"
    BLOCK: Final = "exc_block"  # the block every view follows (the network diagram picks it)
    CHANNEL: Final = "exc_ch"  # the channel every view follows
    ORDER: Final = "exc_order"  # channel order of the per-channel figures
    PER_CLASS: Final = "exc_per_class"  # images per class of the class profiles
    PROFILED: Final = "exc_profiled_per_class"  # images per class of the profiles the views were given
    HEATMAP: Final = "exc_heatmap"  # the gate heatmap of this image (a click picks block and channel)
    LAST_CELL: Final = "exc_last_cell"
    OFF: Final = "exc_off"
    MEAN_BLOCKS: Final = "exc_mean_blocks"
    MEAN_CLASS: Final = "exc_mean_class"
    MEAN_CLASS_IMAGE: Final = "exc_mean_class_image"  # the image MEAN_CLASS was defaulted for
    BLOCK_ABLATION: Final = "exc_block_ablation"
    PROFILE_CLASSES: Final = "exc_profile_classes"
    PROFILE_CLASSES_FOR: Final = "exc_profile_classes_for"  # the image whose classes PROFILE_CLASSES defaults to
    PROFILE_DRAWING: Final = "exc_profile_drawing"
    SPLIT_PER_CLASS: Final = "exc_split_per_class"
    SPLIT_REQUESTED: Final = "exc_split_requested"
    SPLIT_RESULTS: Final = "exc_split_results"
    SPREAD_CLASS: Final = "exc_spread_class"
    PAPER_FIG6: Final = "exc_paper_fig6"  # the Classes view draws the paper's Fig. 6 (its blocks and classes)
    PAPER_FIG7: Final = "exc_paper_fig7"  # the Spread view draws the paper's Fig. 7 (its two blocks)
    SPREAD_STATISTIC: Final = "exc_spread_statistic"  # median and quartiles, or the paper's mean and std
    # long work's names for its Stop and Run again buttons (see _progress)
    PROFILING: Final = "exc_profiling"
    RESPONDING: Final = "exc_responding"
    ABLATING: Final = "exc_ablating"
    RESPONSES_ASKED: Final = "exc_responses_asked"  # the responses a view asked a whole-page run for (once)
    # tables, charts and buttons of the views
    ABLATION: Final = "exc_ablation"
    CH_PICK: Final = "exc_ch_pick"
    CH_SHOW: Final = "exc_ch_show"
    CH_SPECIFIC: Final = "exc_ch_specific"
    CHANNEL_CLASSES: Final = "exc_channel_classes"
    DEPARTURE_CHANNELS: Final = "exc_departure_channels"
    DEPARTURES: Final = "exc_departures"
    DIFFERENCE: Final = "exc_difference"
    INSIDE_SHOW: Final = "exc_inside_show"
    INSIDE_STEPS: Final = "exc_inside_steps"
    INTERVENTION: Final = "exc_intervention"
    MAP: Final = "exc_map"
    MAP_BLOCK: Final = "exc_map_block"
    MAP_OPEN: Final = "exc_map_open"
    MAP_THUMBS: Final = "exc_map_thumbs"
    PROBE: Final = "exc_probe"
    PROFILES: Final = "exc_profiles"
    PROFILES_MAP: Final = "exc_profiles_map"
    QUANTILES: Final = "exc_quantiles"
    SATURATION: Final = "exc_saturation"
    SEPARATION: Final = "exc_separation"
    SPLIT_CHANNELS: Final = "exc_split_channels"
    SPLIT_CHART: Final = "exc_split_chart"
    SPLIT_RUN: Final = "exc_split_run"
    SPLITS: Final = "exc_splits"
    SPLITS_MAP: Final = "exc_splits_map"
    SPREAD_ABLATE: Final = "exc_spread_ablate"
    FIG6_BUTTON: Final = "exc_fig6_button"
    FIG7_BUTTON: Final = "exc_fig7_button"
    UNUSUAL: Final = "exc_unusual"
    UNUSUAL_CHANNELS: Final = "exc_unusual_channels"
    GALLERY_MORE: Final = "gallery_more"
    # the Importance view: its per-class sample size, run button, chart, its last clicked point, image choice
    IMP_PER_CLASS: Final = "exc_imp_per_class"
    IMP_RUN: Final = "exc_imp_run"
    IMP_CHART: Final = "exc_imp_chart"
    IMP_LAST_POINT: Final = "exc_imp_last_point"
    IMP_PICK: Final = "exc_imp_pick"
    IMP_SHOW: Final = "exc_imp_show"
    IMP_IMAGE_RUN: Final = "exc_imp_image_run"  # the button that ablates a photo's block (minutes, so on request)
    IMP_IMAGE_ASKED: Final = "exc_imp_image_asked"  # the ablation of one image asked for by that button
    IMP_ABLATING: Final = "exc_imp_ablating"  # long work's names (see _progress)
    IMP_ESTIMATING: Final = "exc_imp_estimating"
    # the Corruption view: its corruption, severity, chart, table of channels and the last row it followed
    CORR_NAME: Final = "exc_corr_name"
    CORR_SEVERITY: Final = "exc_corr_severity"
    CORR_CHART: Final = "exc_corr_chart"
    CORR_MOVED: Final = "exc_corr_moved"
    CORR_LAST_ROW: Final = "exc_corr_last_row"


# the explorer's views: address name -> label; the first is the default
VIEWS: Final = {"image": "This image", "versus": "vs. its class", "classes": "Classes",
                "channel": "One channel", "block": "Inside a block", "map": "Map", "spread": "Spread",
                "split": "Across the split", "importance": "Importance",
                "corruption": "Corruption"}


@dataclass(frozen=True)
class ChosenImage:
    """The image every view explains: its pixels as the model sees them, and where it came from."""

    x: torch.Tensor  # (1, 3, H, W), normalised
    pixels: torch.Tensor  # (3, H, W) uint8
    caption: str
    key: str  # identifies the image for caches: "split:position" or the upload's digest
    position: int | None = None  # index in the split (None for an upload)
    true_class: int | None = None


def read_address(blocks: list[str]) -> None:
    """A link's (or reload's) ``view``, ``block`` and ``channel``, applied once when they change."""
    state = st.session_state
    link = tuple(str(st.query_params.get(k) or "") for k in ("view", "block", "channel"))
    if link == state.get(Keys.URL_VIEW):
        return
    state[Keys.URL_VIEW] = link
    view, block, channel = link
    if view in VIEWS:
        state[Keys.VIEW] = VIEWS[view]
    if block in blocks:
        state[Keys.BLOCK] = block
    if channel.isascii() and channel.isdigit():
        state[Keys.CHANNEL] = int(channel)


def write_address() -> None:
    """The view, block and channel shown, into the address bar (so a link opens the same view)."""
    state = st.session_state
    view = next((k for k, label in VIEWS.items() if label == state.get(Keys.VIEW)), "image")
    link = (view, str(state.get(Keys.BLOCK) or ""), str(state.get(Keys.CHANNEL, "")))
    state[Keys.URL_VIEW] = link
    for name, value in zip(("view", "block", "channel"), link):
        if value and st.query_params.get(name) != value:
            st.query_params[name] = value


def switch_view(view: str) -> None:
    """Show ``view`` (an address name) instead: from inside a view, whose widget already exists this run."""
    st.session_state[Keys.PENDING_VIEW] = VIEWS[view]
    st.rerun()


def pick(block: str, channel: int | None = None) -> None:
    """Follow ``block`` (and ``channel``) from inside a view: the block picker is already drawn this run, so
    another block takes a rerun. Call before the view draws its channel input."""
    if channel is not None:
        st.session_state[Keys.CHANNEL] = int(channel)
    if block != st.session_state.get(Keys.BLOCK):
        st.session_state[Keys.PENDING_BLOCK] = block
        st.rerun()


def apply_pending_view() -> None:
    """Before the block picker and the view switch are drawn: what :func:`switch_view` and :func:`pick` asked."""
    if Keys.PENDING_VIEW in st.session_state:
        st.session_state[Keys.VIEW] = st.session_state.pop(Keys.PENDING_VIEW)
    if Keys.PENDING_BLOCK in st.session_state:
        st.session_state[Keys.BLOCK] = st.session_state.pop(Keys.PENDING_BLOCK)


def current_view() -> str:
    """The address name of the view shown."""
    return next((k for k, label in VIEWS.items() if label == st.session_state.get(Keys.VIEW)), "image")


def follow(block: str, width: int, default: int) -> int:
    """The channel followed in ``block``: the shared one while in range, else ``default``."""
    channel = st.session_state.get(Keys.CHANNEL)
    if not isinstance(channel, (int, np.integer)) or not 0 <= int(channel) < width:
        st.session_state[Keys.CHANNEL] = channel = int(default)
    return int(channel)
