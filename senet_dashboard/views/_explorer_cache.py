"""What the explorer computes once and keeps: one image's explanation, the class profiles and channel responses
of a split, the gate ablation; each keyed by checkpoint (path and stamp), data source, split and image."""
from __future__ import annotations

from typing import Callable

import numpy as np
import streamlit as st

from senet.analysis.ablation import GateAblation, gate_ablation
from senet.analysis.inside import channel_responses
from senet.analysis.profiles import ClassProfiles, class_profiles
from senet.analysis.explanation import Explanation, explain
from senet_dashboard.views import _format as fmt
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views._context import PageContext
from senet_dashboard.views._explorer_state import ChosenImage, Keys


@st.cache_data(max_entries=256, show_spinner=False)
def _explanation(key: tuple, image_key: str, _ctx: PageContext, _image: ChosenImage) -> Explanation:
    return explain(_ctx.checkpoint.model, _image.x, _ctx.classes)


def explanation(ctx: PageContext, image: ChosenImage) -> Explanation:
    """Probabilities and gates of the chosen image (computed once per checkpoint and image)."""
    return _explanation(ctx.key, image.key, ctx, image)


@st.cache_data(max_entries=8, show_spinner=False)
def _profiles(key: tuple, per_class: int, _ctx: PageContext) -> ClassProfiles:
    data = ui.load_data(_ctx.split, _ctx.meta, _ctx.spec)
    if list(data.classes) != list(_ctx.classes):
        raise ValueError(f"the data's classes {fmt.class_list(data.classes)} differ from the checkpoint's "
                         f"{fmt.class_list(_ctx.classes)}")
    return class_profiles(_ctx.checkpoint, data, per_class=per_class)


def profiles(ctx: PageContext) -> tuple[ClassProfiles | None, str | None]:
    """The class profiles of this context (``Keys.PER_CLASS`` images per class), or None and why not."""
    if ui.split_data_reason(ctx.meta, ctx.spec) is not None:
        return None, None
    per_class = st.session_state.setdefault(Keys.PER_CLASS, 50)
    st.session_state[Keys.PROFILED] = per_class
    try:
        with st.spinner(f"Averaging gates over {per_class} images per class (once per checkpoint)…"):
            return _profiles(ctx.key, per_class, ctx), None
    except Exception as exc:  # noqa: BLE001 -- DataError and friends: one line
        return None, f"Cannot compute class profiles: {exc}"


@st.cache_data(max_entries=8, show_spinner="Reading each channel's strongest responses…")
def _responses(key: tuple, per_class: int, _ctx: PageContext, _profiles: ClassProfiles) -> dict[str, np.ndarray]:
    return channel_responses(_ctx.checkpoint, ui.load_data(_ctx.split, _ctx.meta, _ctx.spec), _profiles.positions)


def responses(ctx: PageContext, profile_data: ClassProfiles) -> dict[str, np.ndarray]:
    """Each sampled image's strongest response per channel and block (for the profiles' sample)."""
    return _responses(ctx.key, st.session_state.get(Keys.PER_CLASS, 50), ctx, profile_data)


def ablation_key(ctx: PageContext, per_class: int | None) -> tuple:
    return (*ctx.key, per_class)


def split_ablation(ctx: PageContext, per_class: int | None,
                   progress: Callable[[int, int], None] | None = None) -> GateAblation:
    """The gate ablation of this context's split, kept in the session (st.cache_data cannot hold a function that
    draws a progress bar)."""
    results = st.session_state.setdefault(Keys.SPLIT_RESULTS, {})
    key = ablation_key(ctx, per_class)
    if key not in results:
        data = ui.load_data(ctx.split, ctx.meta, ctx.spec)
        results[key] = gate_ablation(ctx.checkpoint, data, per_class=per_class, progress=progress)
    return results[key]


def any_ablation(ctx: PageContext) -> GateAblation | None:
    """An ablation of this context computed in this session (the larger one if several)."""
    done = [(k[4] or 10**9, v) for k, v in st.session_state.get(Keys.SPLIT_RESULTS, {}).items() if k[:4] == ctx.key]
    return max(done, key=lambda t: t[0])[1] if done else None
