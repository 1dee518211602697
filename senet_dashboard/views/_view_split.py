"""The explorer's *Across the split* view: what each block's gate is worth over a split (the gate ablation)."""
from __future__ import annotations

import streamlit as st

from senet_dashboard.figures import split_ablation_figure
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views._context import PageContext
from senet_dashboard.views import _progress as progress
from senet_dashboard.views._explorer_cache import ablation_key, n_passes, split_ablation
from senet_dashboard.views._explorer_state import Keys, switch_view

# said before every figure or number of a gate switched off (set to 1), beside it: what such a number cannot say
GATE_OFF_CAVEAT = "Switching a gate off (setting it to 1) puts the network far from anything it saw in training."


def request_ablation() -> None:
    """The Spread view's button: run the ablation on 100 images per class, in this view."""
    st.session_state[Keys.SPLIT_PER_CLASS] = 100
    st.session_state[Keys.SPLIT_REQUESTED] = True
    progress.forget_stop(Keys.ABLATING)
    switch_view("split")


def split_view(ctx: PageContext) -> None:
    """Accuracy over the split with each block's gate switched off, or fixed to its mean (on request). Not a
    fragment: the ablation's Stop must be able to end the run (a click inside a fragment waits for it)."""
    a1, a2 = st.columns([1, 3], vertical_alignment="bottom")
    sizes = {100: "100 per class", 0: f"all of {ctx.split}"}
    per = a1.selectbox("Images", list(sizes), format_func=sizes.get, key=Keys.SPLIT_PER_CLASS)
    computed = ablation_key(ctx, per or None) in st.session_state.get(Keys.SPLIT_RESULTS, {})
    passes = n_passes(ctx)
    over = None if computed else ui.split_work_refusal(  # a public demo's budget (None outside one)
        "The ablation over the split", ui.subset_size(ui.load_data(ctx.split, ctx.meta, ctx.spec), per or None),
        passes)
    clicked = a2.button("Done" if computed else "Run", icon=":material/check:" if computed else ":material/play_arrow:",
                        key=Keys.SPLIT_RUN, disabled=computed or bool(over),
                        on_click=progress.forget_stop, args=(Keys.ABLATING,),
                        help=f"{passes} passes over the images; kept for this session.")
    requested = st.session_state.pop(Keys.SPLIT_REQUESTED, False) and not computed and not over
    if over:
        st.caption(f":material/block: {over}")
        return
    if not (computed or clicked or requested):
        progress.show_stopped(Keys.ABLATING, ablation_key(ctx, per or None), again=None)
        st.caption("Accuracy with each block's gate switched off, or fixed to its mean, over the split; "
                   "the same as `python -m senet ablate`.")
        return
    try:
        ablation = split_ablation(ctx, per or None)
    except Exception as exc:  # noqa: BLE001 -- DataError and friends: one line
        st.error(f"Cannot run the ablation: {exc}")
        return
    if ablation is None:  # stopped: a line says so
        return
    if not computed:
        st.rerun()  # drawn again from the session's results: the button above then says Done
    st.caption(f":material/warning: {GATE_OFF_CAVEAT} A large red cost says the later layers expect the "
               "re-weighting, not that SE is essential; the blue bars, which keep the gate within what the network "
               "saw, measure what the gate's dependence on the image is worth.")
    st.plotly_chart(split_ablation_figure(ablation.table(), ablation.baseline, ablation.n, split=ctx.split),
                    key=Keys.SPLIT_CHART, config={"displayModeBar": False})
    st.caption("Both panels share one scale, and each bar is labelled with its change in percentage points. Red: "
               "the block's gate set to 1, as if it had no SE block. Blue: the gate fixed to the block's mean gate "
               "over the same images, which keeps the average channel re-weighting but not its dependence on the "
               "image. Where blue costs little and red costs a lot, the block mostly applies a fixed scale; where "
               "blue costs as much as red, what matters is that the gate follows the image: squeeze-and-excitation "
               "proper.")
