"""The explorer's *Importance* view: does a high gate mark an important channel? For this image, each channel of
the followed block, its gate against its importance measured by ablation (the drop in the true class's
log-probability when that gate alone is set to 0); over a per-class sample of the split, on request, the
first-order estimate's rank correlation per block, with its interval, and the channels where gate and importance
disagree most, with the images behind them."""
from __future__ import annotations

import math

import numpy as np
import streamlit as st

from senet.analysis.explanation import Explanation
from senet.analysis.importance import GateImportance, ImageImportance, spearman
from senet.analysis.profiles import ClassProfiles
from senet_dashboard.importance_figures import gate_importance_figure
from senet_dashboard.views import _format as fmt
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views import _progress as progress
from senet_dashboard.views._context import PageContext
from senet_dashboard.views._explorer_state import ChosenImage, Keys, follow, pick
from senet_dashboard.views._importance_cache import (ONE_IMAGE, ablation_passes, estimate_passes, image_importance,
                                                     image_key, kept_estimate, split_estimate, split_key)

PER_CLASS_CHOICES = (10, 20, 50)  # images per class of the estimate over the split
READING = ("Read the two correlations differently: against the signed importance, a positive ρ says a high gate "
           "marks a channel that helps the class; against its size, a positive ρ is partly built in, since a "
           "channel whose gate is near 0 is already nearly removed, so removing it changes little.")


def importance_view(ctx: PageContext, image: ChosenImage, result: Explanation,
                    profiles: ClassProfiles | None = None) -> None:
    """Gate against importance, for this image and over the split. Not a fragment: both computations' Stop must be
    able to end the run (a click inside a fragment waits for it)."""
    blocks = list(result.gates)
    block = st.session_state.get(Keys.BLOCK) if st.session_state.get(Keys.BLOCK) in blocks else blocks[-1]
    target = image.true_class if image.true_class is not None else result.predicted
    name = fmt.plain(ctx.classes[target])
    st.subheader(f"Gate against importance in {block}, this image")
    over = ui.split_work_refusal(f"Ablating {block}'s channels one at a time", 1, ablation_passes(ctx, block),
                                 way_out="choose a block with fewer channels in the diagram above")
    if over:
        st.caption(f":material/block: {over}")
    elif _asked_for(ctx, image, block, target):
        found = image_importance(ctx, image, block, target)
        if found is not None:
            _image_figure(found, name, image.true_class is not None)
    st.subheader("Over a sample of the split")
    _over_split(ctx, block)


def _asked_for(ctx: PageContext, image: ChosenImage, block: str, target: int) -> bool:
    """Whether this image's ablation runs now: at once for CIFAR-sized images (a few seconds), on a click for
    photos, where one forward pass per channel takes minutes (2,050 passes of SE-ResNet-50 at 224x224 for SE_5_3)."""
    key = image_key(ctx, image, block, target)
    h, w = image.pixels.shape[-2:]
    if h * w <= 32 * 32 or key in progress.server_store(ONE_IMAGE) or st.session_state.get(Keys.IMP_IMAGE_ASKED) == key:
        return True
    passes = ablation_passes(ctx, block)
    row = st.container(horizontal=True, vertical_alignment="center")
    row.caption(f"Ablating {block}'s {passes - 2:,} channels on this image takes {passes:,} forward passes of a "
                f"{w}×{h} image, which can take minutes on a CPU; a bar shows the time left, and Stop ends it.",
                width="content")
    row.button("Ablate", key=Keys.IMP_IMAGE_RUN, icon=":material/play_arrow:", on_click=_ask, args=(key,))
    return False


def _ask(key: tuple) -> None:
    st.session_state[Keys.IMP_IMAGE_ASKED] = key
    progress.forget_stop(Keys.IMP_ABLATING)


def _point_clicked(block: str, width: int) -> None:
    """A click on a point follows that channel (once per click)."""
    points = ((st.session_state.get(Keys.IMP_CHART) or {}).get("selection") or {}).get("points") or []
    if not points or points[0] == st.session_state.get(Keys.IMP_LAST_POINT):
        return
    point = st.session_state[Keys.IMP_LAST_POINT] = points[0]
    channel = point.get("customdata")
    channel = channel[0] if isinstance(channel, list) and channel else channel
    if isinstance(channel, (int, float)) and 0 <= channel < width and channel != st.session_state.get(Keys.CHANNEL):
        st.session_state[Keys.CHANNEL] = int(channel)
        st.rerun()  # the address and the page's other parts follow the channel


def _image_figure(found: ImageImportance, name: str, true_class: bool) -> None:
    """The scatter, and the caption with the rank correlations and what they measure."""
    width = len(found.gates)
    _point_clicked(found.block, width)
    followed = follow(found.block, width, int(np.argmax(found.exact)))
    whose = f"the true class ({name})" if true_class else f"the predicted class ({name}; an upload has no true class)"
    st.plotly_chart(gate_importance_figure(found.gates, found.exact, found.estimate, followed, target_name=name),
                    key=Keys.IMP_CHART, on_select="rerun", selection_mode="points",
                    config={"displayModeBar": False})
    rho, rho_abs = spearman(found.gates, found.exact), spearman(found.gates, np.abs(found.exact))
    top = int(np.argmax(found.exact))
    p0, p1 = math.exp(found.log_prob), math.exp(found.log_prob - found.exact[top])
    st.caption(
        f"One point per channel of {found.block} ({width}): its gate for this image against its **importance**, "
        f"the drop in the log-probability of {whose}, in nats, when that gate alone is set to 0, measured by "
        f"ablation (one forward pass per channel; hollow: the first-order estimate). Spearman's rank "
        f"correlation of gate and importance over the channels: **ρ = {_rho(rho)}** (signed: +1 when a higher gate "
        f"always means a channel that helps more), **ρ = {_rho(rho_abs)}** against the drop's size. The most "
        f"important channel, {top}, costs {found.exact[top]:+.4f} nats: p({name}) from {p0:.1%} to {p1:.1%}, "
        f"{100 * (p1 - p0):+.2f} percentage points.")
    st.caption(f"{READING} Click a point to follow its channel.")


def _rho(value: float) -> str:
    return "undefined (a constant gate or importance)" if math.isnan(value) else f"{value:+.2f}"


def _over_split(ctx: PageContext, block: str) -> None:
    """The estimate over the split, on a button: the per-block table and the disagreeing channels."""
    if ui.split_data_reason(ctx.meta, ctx.spec) is not None:
        ui.no_split_data_message(ctx.meta, "The gate against importance of this image above works on an upload.")
        return
    try:
        data = ui.load_data(ctx.split, ctx.meta, ctx.spec)
    except Exception as exc:  # noqa: BLE001 -- DataError and friends: one line
        st.error(f"Cannot estimate over the split: {exc}")
        return
    st.session_state.setdefault(Keys.IMP_PER_CLASS, 20)
    a1, a2 = st.columns([1, 3], vertical_alignment="bottom")
    per = a1.selectbox("Images", PER_CLASS_CHOICES, format_func=lambda c: f"{c} per class", key=Keys.IMP_PER_CLASS)
    found = kept_estimate(ctx, per)
    n = ui.subset_size(data, per)
    passes = estimate_passes(ctx, n)
    over = None if found else ui.split_work_refusal("The estimate over the split", n, math.ceil(passes / max(n, 1)))
    clicked = a2.button("Done" if found else "Estimate", key=Keys.IMP_RUN, disabled=bool(found or over),
                        icon=":material/check:" if found else ":material/play_arrow:",
                        on_click=progress.forget_stop, args=(Keys.IMP_ESTIMATING,),
                        help=f"About {passes:,} image passes; kept by this server for every session.")
    if over:
        st.caption(f":material/block: {over}")
        return
    if found is None and not clicked:
        progress.show_stopped(Keys.IMP_ESTIMATING, split_key(ctx, per), again=None)
        st.caption(f"The first-order estimate of every channel's importance (one backward pass per image) over "
                   f"{n:,} {ctx.split} images, checked against exact ablation on a few of them; the same as "
                   "`senet importance`.")
        return
    try:
        found = found or split_estimate(ctx, per)
    except Exception as exc:  # noqa: BLE001 -- DataError and friends: one line
        st.error(f"Cannot estimate over the split: {exc}")
        return
    if found is not None:
        _split_table(found)
        _disagreements(ctx, found, block, data)


def _split_table(found: GateImportance) -> None:
    """Per block: the rank correlations with their intervals, and the estimate's agreement with exact ablation."""
    agreement = {a.block: a for a in found.agreement}
    rows = [{"block": b.block, "channels": b.channels, "signed": _with_interval(b.spearman, b.interval),
             "size": _with_interval(b.spearman_abs, b.interval_abs), "images": b.n_defined,
             "check": _check(agreement.get(b.block))} for b in found.blocks]
    text = st.column_config.TextColumn
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "signed": text("ρ(gate, importance) [95%]", help="Spearman's rank correlation of the block's gates and its "
                       "channels' importance within one image, averaged over the images; a percentile bootstrap "
                       "95% interval over the images"),
        "size": text("ρ(gate, |importance|) [95%]", help="Against the importance's size: partly built in (a gate "
                     "near 0 leaves little to remove)"),
        "images": st.column_config.NumberColumn("images with a ρ", help="A constant gate or importance has no "
                                                "rank correlation"),
        "check": text("estimate vs ablation", help=f"On {len(found.check_positions)} of the images: Spearman of "
                      "the first-order estimate and exact ablation, and the share of channels whose estimate has "
                      "the exact drop's sign")})
    st.caption(f"{found.n:,} {found.split} images ({found.per_class} per class at most, a seeded sample). "
               "Importance: the drop in the true class's log-probability (nats) when a channel's gate alone is set "
               "to 0, by the first-order estimate. ρ by size is partly built in: a gate near 0 leaves little to "
               "remove.")


def _with_interval(value: float, bounds: tuple[float, float]) -> str:
    """``'+0.014 [-0.033, +0.059]'``; a dash without a value."""
    if math.isnan(value):
        return "—"
    lo, hi = bounds
    return f"{value:+.3f}" + ("" if math.isnan(lo) else f" [{lo:+.3f}, {hi:+.3f}]")


def _check(agreement) -> str:
    """The estimate's agreement with exact ablation: ``'ρ 0.85 · signs 86%'``."""
    if agreement is None or math.isnan(agreement.spearman):
        return "—"
    return f"ρ {agreement.spearman:.2f} · signs {agreement.sign_agreement:.0%}"


def _disagreements(ctx: PageContext, found: GateImportance, block: str, data) -> None:
    """The followed block's channels where gate and importance disagree most, each with its images; one of them
    opens in the explorer (following its channel)."""
    summary = found.block(block)
    labels = data.labels.numpy()
    st.markdown(f"**Where gate and importance disagree most in {block}** (mean over the {found.n:,} images)")
    left, right = st.columns(2, gap="large")
    choices = []
    for column, title, rows in ((left, "High gate, little importance", summary.high_gate_low_importance),
                                (right, "Low gate, high importance", summary.low_gate_high_importance)):
        column.markdown(f"*{title}*")
        for d in rows:
            column.caption(f"channel {d.channel}: mean gate {d.mean_gate:.3f}, mean importance "
                           f"{d.mean_importance:+.4f} nats, disagreement {d.score:.2f}. Its images, left to right:")
            column.image(fmt.strip([data.images[int(i)] for i in d.images], 2), width="content")
            choices += [(d.channel, int(i)) for i in d.images]
    o1, o2 = st.columns([3, 1], vertical_alignment="bottom")
    chosen = o1.selectbox("Look at one of them", choices, key=Keys.IMP_PICK, format_func=lambda c: (
        f"#{c[1]} · {ctx.classes[labels[c[1]]]} · channel {c[0]}"))
    if chosen and o2.button("Show", icon=":material/arrow_upward:", key=Keys.IMP_SHOW, width="stretch"):
        st.query_params["image"] = str(chosen[1])
        pick(block, chosen[0])
        st.rerun()  # the whole page: the image changes every view
    st.caption("Disagreement: the difference of the channel's percentile ranks among the block's channels, gate "
               "against the importance's size (left) or importance against gate (right), 0 to 1. The images are "
               "those where the same difference, within the image, is largest.")
