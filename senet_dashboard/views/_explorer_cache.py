"""What the explorer computes once and keeps: one image's explanation, the class profiles and channel responses
of a split, the gate ablation; each keyed by checkpoint (path and stamp), data source, split and image. The work
over many images shows its progress and can be stopped (:mod:`._progress`)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from senet.analysis.ablation import GateAblation, gate_ablation
from senet.analysis.inside import channel_responses
from senet.analysis.profiles import ClassProfiles, class_profiles
from senet.analysis.explanation import Explanation, explain
from senet.models import se_blocks
from senet.progress import Progress
from senet_dashboard.views import _format as fmt
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views import _progress as progress
from senet_dashboard.views._context import PageContext
from senet_dashboard.views._explorer_state import ChosenImage, Keys


@st.cache_data(max_entries=256, show_spinner=False)
def _explanation(key: tuple, image_key: str, _ctx: PageContext, _image: ChosenImage) -> Explanation:
    return explain(_ctx.checkpoint.model, _image.x, _ctx.classes)


def explanation(ctx: PageContext, image: ChosenImage) -> Explanation:
    """Probabilities and gates of the chosen image (computed once per checkpoint and image)."""
    return _explanation(ctx.key, image.key, ctx, image)


PROFILES_STOPPED = "stopped"  # profiles()'s reason when the user stopped them (a line and a button say so)
PER_CLASS_CHOICES = (10, 25, 50, 100, 200)  # images per class of the class profiles, offered by the Classes view


def _profiles(ctx: PageContext, per_class: int, report: Progress) -> ClassProfiles:
    data = ui.load_data(ctx.split, ctx.meta, ctx.spec)
    if list(data.classes) != list(ctx.classes):
        raise ValueError(f"the data's classes {fmt.class_list(data.classes)} differ from the checkpoint's "
                         f"{fmt.class_list(ctx.classes)}")
    return class_profiles(ctx.checkpoint, data, per_class=per_class, progress=report)


def profiles(ctx: PageContext) -> tuple[ClassProfiles | None, str | None]:
    """The class profiles of this context (``Keys.PER_CLASS`` images per class, kept by the server once
    complete), or None and why not (:data:`PROFILES_STOPPED` when the user stopped them)."""
    if ui.split_data_reason(ctx.meta, ctx.spec) is not None:
        return None, None
    per_class = st.session_state.setdefault(Keys.PER_CLASS, 50)
    key = (*ctx.key, per_class)
    if key in progress.server_store("class profiles"):
        st.session_state[Keys.PROFILED] = per_class
        return progress.server_store("class profiles")[key], None
    try:
        per_class, over = _within_budget(ctx, per_class)
    except Exception as exc:  # noqa: BLE001 -- DataError and friends: one line
        return None, f"Cannot compute class profiles: {exc}"
    if per_class is None:
        return None, over
    st.session_state[Keys.PER_CLASS] = st.session_state[Keys.PROFILED] = per_class
    key = (*ctx.key, per_class)
    if key in progress.server_store("class profiles"):
        return progress.server_store("class profiles")[key], over
    try:
        found = progress.run_with_progress(
            Keys.PROFILING, key, f"Class profiles: averaging the gates of {per_class} {ctx.split} images per class",
            lambda report: _profiles(ctx, per_class, report))
    except Exception as exc:  # noqa: BLE001 -- DataError and friends: one line
        return None, f"Cannot compute class profiles: {exc}"
    if found is None:
        return None, PROFILES_STOPPED
    return progress.keep("class profiles", key, found, max_entries=8), over


def _within_budget(ctx: PageContext, per_class: int) -> tuple[int | None, str | None]:
    """The images per class the class profiles may take now: ``per_class``, else (a public demo's budget) the
    most of :data:`PER_CLASS_CHOICES` within it, with the one-line refusal of ``per_class``; (None, refusal) when
    none fits."""
    data = ui.load_data(ctx.split, ctx.meta, ctx.spec)
    over = ui.split_work_refusal(f"Class profiles of {per_class} {ctx.split} images per class",
                                 ui.subset_size(data, per_class), way_out="choose fewer images per class")
    if over is None:
        return per_class, None
    fits = [c for c in PER_CLASS_CHOICES if ui.split_work_refusal("", ui.subset_size(data, c)) is None]
    return (fits[-1], f"{over.removesuffix('choose fewer images per class')}shown with {fits[-1]} per class") \
        if fits else (None, over)


def kept_profiles(ctx: PageContext) -> ClassProfiles | None:
    """The class profiles :func:`profiles` computed for this context, if any (for a view's fragment, which never
    computes them: a Stop inside a fragment could not end the work)."""
    return progress.server_store("class profiles").get((*ctx.key, st.session_state.get(Keys.PER_CLASS, 50)))


def kept_responses(ctx: PageContext) -> dict[str, np.ndarray] | None:
    """The channel responses :func:`responses` computed for this context, if any. A view's fragment that needs
    them and finds none asks, once, for a whole-page run, in which the page computes them outside the fragment."""
    key = (*ctx.key, st.session_state.get(Keys.PER_CLASS, 50))
    found = progress.server_store("channel responses").get(key)
    if found is None and progress.stopped_at(Keys.RESPONDING, key) is None \
            and st.session_state.get(Keys.RESPONSES_ASKED) != key:
        st.session_state[Keys.RESPONSES_ASKED] = key
        st.rerun(scope="app")
    return found


def responses(ctx: PageContext, profile_data: ClassProfiles) -> dict[str, np.ndarray] | None:
    """Each sampled image's strongest response per channel and block (for the profiles' sample; kept by the
    server once complete); None when the user stopped it."""
    key = (*ctx.key, st.session_state.get(Keys.PER_CLASS, 50))
    if key not in progress.server_store("channel responses"):
        over = ui.split_work_refusal("Reading each channel's strongest responses", len(profile_data.positions),
                                     way_out="choose fewer images per class in the Classes view")
        if over:  # a public demo's budget (profiles kept by the server may be larger than it)
            st.caption(f":material/block: {over}")
            return None
        found = progress.run_with_progress(
            Keys.RESPONDING, key, "Reading each channel's strongest response in the sampled images",
            lambda report: channel_responses(ctx.checkpoint, ui.load_data(ctx.split, ctx.meta, ctx.spec),
                                             profile_data.positions, progress=report))
        if found is None:
            return None
        progress.keep("channel responses", key, found, max_entries=8)
    return progress.server_store("channel responses")[key]


def ablation_key(ctx: PageContext, per_class: int | None) -> tuple:
    return (*ctx.key, per_class)


def split_ablation(ctx: PageContext, per_class: int | None) -> GateAblation | None:
    """The gate ablation of this context's split, with progress, kept in the session once complete; None when
    the user stopped it."""
    results = st.session_state.setdefault(Keys.SPLIT_RESULTS, {})
    key = ablation_key(ctx, per_class)
    if key not in results:
        data = ui.load_data(ctx.split, ctx.meta, ctx.spec)
        n = ui.subset_size(data, per_class)
        found = progress.run_with_progress(
            Keys.ABLATING, key, f"Ablating gates over {n:,} {ctx.split} images, {n_passes(ctx)} passes",
            lambda report: gate_ablation(ctx.checkpoint, data, per_class=per_class, progress=report),
            unit="image passes")
        if found is None:
            return None
        results[key] = found
    return results[key]


def n_passes(ctx: PageContext) -> int:
    """The passes over the images the gate ablation makes (as trained, then two per block and two for all)."""
    return 1 + 2 * (len(se_blocks(ctx.checkpoint.model)) + 1)


def any_ablation(ctx: PageContext) -> GateAblation | None:
    """An ablation of this context computed in this session (the larger one if several)."""
    done = [(k[4] or 10**9, v) for k, v in st.session_state.get(Keys.SPLIT_RESULTS, {}).items() if k[:4] == ctx.key]
    return max(done, key=lambda t: t[0])[1] if done else None
