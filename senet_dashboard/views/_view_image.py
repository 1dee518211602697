"""The explorer's first view, *This image*: every block's gates in one heatmap (a click picks block and channel),
and interventions: gates switched off or replaced by a class mean."""
from __future__ import annotations

import numpy as np
import streamlit as st

from senet.analysis.profiles import ClassProfiles, channel_order
from senet.analysis.explanation import Explanation, block_ablation, intervene
from senet_dashboard.figures import ablation_figure, gate_heatmap_figure, intervention_figure
from senet_dashboard.views import _format as fmt
from senet_dashboard.views._context import PageContext
from senet_dashboard.views._explorer_cache import kept_profiles
from senet_dashboard.views._explorer_state import ChosenImage, Keys, pick
from senet_dashboard.views._view_split import GATE_OFF_CAVEAT


def channel_ordering(result: Explanation, profile_data: ClassProfiles | None) -> tuple[dict | None, str]:
    """The channel order the per-channel figures use (``Keys.ORDER``), and its axis label."""
    sort = st.session_state.get(Keys.ORDER, "Sorted by gate") == "Sorted by gate"
    if not sort:
        return None, "channel"
    if profile_data is not None:
        return channel_order(profile_data.overall), "channels, highest mean gate first"
    return channel_order(result.gates), "channels, highest gate of this image first"


def _cell_clicked(heatmap_rows: list[str]) -> None:
    """A click on a heatmap cell picks that block and channel (once per click)."""
    points = ((st.session_state.get(Keys.HEATMAP) or {}).get("selection") or {}).get("points") or []
    if not points or points[0] == st.session_state.get(Keys.LAST_CELL):
        return
    point = st.session_state[Keys.LAST_CELL] = points[0]
    block, channel = point.get("y"), point.get("customdata")
    if isinstance(channel, list):
        channel = channel[0] if channel else None
    if block in heatmap_rows and isinstance(channel, (int, float)) and channel >= 0:
        pick(block, int(channel))


@st.fragment
def image_view(ctx: PageContext, image: ChosenImage, result: Explanation) -> None:
    """Gates of this image, and interventions (a fragment: its widgets rerun only this view)."""
    profile_data = kept_profiles(ctx)  # computed by the page, outside this fragment
    st.subheader("Gates of this image")
    st.session_state.setdefault(Keys.ORDER, "Sorted by gate")  # kept across views, so no widget default
    st.segmented_control(
        "Channel order", ["Channel index", "Sorted by gate"], key=Keys.ORDER, required=True,
        help="Channel index is the paper's layout. Sorted puts each block's channels in the order of the all-class "
             "mean gate (this image's gate when no data is loaded), highest first.")
    order, order_label = channel_ordering(result, profile_data)
    st.plotly_chart(gate_heatmap_figure(result.gates, order=order, order_label=order_label), key=Keys.HEATMAP,
                    on_select="rerun", selection_mode="points", config={"displayModeBar": False})
    _cell_clicked(list(result.gates))
    st.caption("One row per SE block, one cell per channel: this image's gate (0 = channel suppressed, 1 = passed "
               "through). Click a cell to follow that block and channel in the other views.")
    _interventions(ctx, image, result, profile_data)


def _interventions(ctx: PageContext, image: ChosenImage, result: Explanation,
                   profile_data: ClassProfiles | None) -> None:
    st.subheader("Interventions")
    classes, blocks = ctx.classes, list(result.gates)
    i1, i2, i3 = st.columns([2, 2, 1])
    off = i1.multiselect("Switch SE off (gate = 1) in", blocks, key=Keys.OFF)
    mean_blocks = i2.multiselect("Replace the gate with a class mean in", blocks, key=Keys.MEAN_BLOCKS,
                                 disabled=profile_data is None, help="Needs the class profiles (a data source).")
    runner_up = int(np.argsort(-result.probs)[1]) if len(classes) > 1 else 0
    if st.session_state.get(Keys.MEAN_CLASS_IMAGE) != image.key:  # a new image: its runner-up class
        st.session_state[Keys.MEAN_CLASS], st.session_state[Keys.MEAN_CLASS_IMAGE] = runner_up, image.key
    mean_class = i3.selectbox("Class mean of", range(len(classes)), format_func=classes.__getitem__,
                              key=Keys.MEAN_CLASS, disabled=profile_data is None,
                              help=f"Starts at this image's runner-up class ({fmt.plain(classes[runner_up])}): "
                                   "does its class's gates move the prediction there?")
    overrides: dict = {b: profile_data.profiles[b][mean_class] for b in mean_blocks} if profile_data else {}
    overrides.update({b: 1.0 for b in off})
    pred = result.predicted
    if overrides:
        after = intervene(ctx.checkpoint.model, image.x, overrides)
        new = int(after.argmax())
        if off:
            st.caption(f":material/warning: {GATE_OFF_CAVEAT} A change here says the later layers expect the "
                       "re-weighting, not that the channels it selects carry the answer.")
        c1, c2, c3 = st.columns(3)
        shown = [fmt.plain(c) for c in classes]  # a metric's label, value and delta render markdown
        c1.metric("Prediction", shown[new], delta=prediction_change(shown, pred, new), delta_arrow="off",
                  delta_color="inverse" if new != pred else "off")
        c2.metric(**probability_change(f"p({shown[pred]})", result.probs[pred], after[pred]))
        if image.true_class is not None:
            t = image.true_class
            c3.metric(**probability_change(f"p(true: {shown[t]})", result.probs[t], after[t]))
        st.plotly_chart(intervention_figure(classes, result.probs, after), key=Keys.INTERVENTION,
                        config={"displayModeBar": False})
    else:
        st.caption("Choose blocks above to see how the prediction changes.")
    if st.toggle("SE off in one block at a time", key=Keys.BLOCK_ABLATION,
                 help="One forward pass per block, with that block's gate set to 1."):
        st.caption(f":material/warning: {GATE_OFF_CAVEAT} A large drop says the later layers expect the "
                   "re-weighting, not that the channels it selects carry the answer.")
        st.plotly_chart(ablation_figure(block_ablation(ctx.checkpoint.model, image.x, pred),
                                        float(result.probs[pred]), classes[pred]), key=Keys.ABLATION,
                        config={"displayModeBar": False})


def prediction_change(classes: list[str], before: int, after: int) -> str:
    """The prediction's change in words (a label has no direction): 'unchanged' or 'changed from X to Y'."""
    return "unchanged" if after == before else f"changed from {classes[before]} to {classes[after]}"


def probability_change(name: str, before: float, after: float) -> dict:
    """st.metric's arguments for a probability under an intervention: its value before in the label, its value
    after, and the change in percentage points (pts), never written as a percent."""
    return dict(label=f"{name}, as trained {float(before):.1%}", value=f"{float(after):.1%}",
                delta=f"{100 * (float(after) - float(before)):+.1f} pts",
                help="After the intervention; the change is in percentage points (pts): the probability after "
                     "minus the probability as trained, both in percent.")
