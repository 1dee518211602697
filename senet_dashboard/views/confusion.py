"""Confusion explorer: evaluate a checkpoint on a split, click a cell to see its images."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from senet_dashboard.views import _loaders as ui
from senet_dashboard.views._context import hand_over
from senet_dashboard.views import _format as fmt
from senet.checkpoint import Checkpoint
from senet import DataError
from senet.analysis.evaluate import stream_evaluation
from senet.recorded import recorded as recorded_figure, scored_split
from senet_dashboard.card import pts, recorded_accuracy
from senet_dashboard.confusion import CSV_COLUMNS, cell_members, per_class_rows, predictions_csv, summary
from senet_dashboard.figures import confusion_colour, confusion_figure

COLOURS = {"All cells": "all", "Errors only": "errors", "Log scale": "log"}

st.title("Confusion explorer")
st.caption("Rows are the true classes, columns the predicted ones. Click a cell to see its images, most confident "
           "first.")

loaded = ui.selected_model()
if loaded is None:
    st.stop()
model, meta = loaded
classes = list(meta["classes"])
path = ui.selected_path()
split = ui.split_choice()
data = ui.get_data(split, meta, "**What still works:** the model card, Compare, and the Excitation explorer with an "
                                "uploaded image.")
if data is None:
    st.stop()


@st.cache_resource(show_spinner=False)
def _evaluations() -> dict:
    """Evaluations of this server process, newest last (the disk cache survives restarts)."""
    return {}


with st.container(horizontal=True, vertical_alignment="bottom", gap="medium"):
    view = st.segmented_control("Values", ["Counts", "Row-normalised"], key="conf_view", default="Counts",
                                required=True, help="Counts of images, or each row as percent of its true class.")
    colour = st.segmented_control("Colour", list(COLOURS), key="conf_colour", default="All cells", required=True,
                                  help="Errors only: the diagonal (correct predictions) is greyed out and left out "
                                       "of the colour scale, so the off-diagonal errors get the whole scale. "
                                       "Log scale: colour by log(1 + value).")
    tta = st.toggle("Flip test-time augmentation", key="conf_tta",
                    help="Average the prediction with that of the mirrored image.")
mtime = Path(path).stat().st_mtime
key = (path, mtime, ui.data_spec(), split, bool(tta), str(ui.settings().data_dir))
store = _evaluations()
ev = store.get(key)
refusal = None if ev is not None else ui.split_work_refusal(
    f"Evaluating {split}", len(data), passes=2 if tta else 1,
    cached=ui.demo_on() and ui.evaluation_cached(path, split, bool(tta), data),
    way_out="the sample data source fits" + ("; without flip TTA it takes half the passes" if tta else ""))
if refusal:  # a public demo's budget: only evaluations prepared beforehand (senet evaluate) or small enough
    st.error(refusal, icon=":material/block:")
    st.stop()
if ev is None:  # stream it: the matrix and accuracy fill in as chunks finish; a rerun resumes from the disk cache
    live = st.empty()
    try:
        for ev in stream_evaluation(path, ui.data_spec(), split, ui.settings().data_dir, tta=bool(tta),
                                    loaded=Checkpoint.from_meta(model, meta), data=data):
            if ev.n < len(data):
                with live.container():
                    st.progress(ev.n / len(data), text=f"Evaluating {split}: {ev.n:,} of {len(data):,} images done; "
                                                       f"accuracy so far {fmt.pct(ev.accuracy)} (recomputed now)")
                    st.plotly_chart(confusion_figure(ev.confusion, classes, height=420),
                                    key=f"confusion_partial_{ev.n}")
    except DataError as exc:
        live.empty()
        st.error(f"Cannot evaluate: {exc}")
        st.stop()
    live.empty()
    store[key] = ev
    while len(store) > 8:
        store.pop(next(iter(store)))

info = summary(ev)
recorded = recorded_accuracy(meta, split, bool(tta), ui.data_spec())
how = "with flip TTA" if tta else "no TTA"
where = (f"the checkpoint's own held-out validation images of {ui.data_spec()}" if split == "val"
         else f"the {split} images of {ui.data_spec()}")
m = st.columns([1.45, 1.25, 1, 0.8])
m[0].metric(f"Accuracy · {split} · recomputed now", fmt.pct(info["accuracy"]),
            delta=f"{pts(info['accuracy'], recorded)} vs recorded" if recorded is not None else None,
            delta_color="off", delta_arrow="off",
            help=f"Computed now on this machine from the checkpoint's weights, on {info['n']:,} images: {where} "
                 f"({how}). The predictions are cached on disk, so a second look reads them back.")
m[1].metric(f"Recorded in training · {split}", fmt.pct(recorded),
            help=(f"The trainer's accuracy on these images ({how}), recorded when the checkpoint was saved. A "
                  "recomputed figure can differ by a few images: the trainer ran on its own hardware (bfloat16 on a "
                  "GPU), this page in float32, and an exported file may hold float16 weights."
                  + (f" This flip-TTA figure was {recorded_figure(meta, 'acc_tta_source')}."
                     if tta and recorded_figure(meta, "acc_tta_source") else "")) if recorded is not None
            else f"The trainer records accuracy only on the split it scored itself on ({scored_split(meta)}: "
                 + ("its own validation split" if scored_split(meta) == "val" else "the test split, since it trained "
                    "on every training image") + ") and its own data source"
                 + ("" if split == scored_split(meta) else f"; the {split} split has no recorded figure") + ".")
m[2].metric(f"Macro F1 · {split}", fmt.pct(info["macro"]["f1"]),
            help=f"Macro precision {fmt.pct(info['macro']['precision'])}, macro recall "
                 f"{fmt.pct(info['macro']['recall'])} (recomputed now, {how}).")
m[3].metric("Images", f"{info['n']:,}", help=f"The {split} split of {ui.data_spec()}, {how}")


def _cell_from_point(point: dict) -> tuple[int, int] | None:
    custom = point.get("customdata")
    if isinstance(custom, (list, tuple)) and len(custom) >= 2:
        return int(custom[0]), int(custom[1])
    if point.get("y") in classes and point.get("x") in classes:
        return classes.index(point["y"]), classes.index(point["x"])
    return None


# A click on the chart (its selection state) picks the cell; the selectboxes below can pick one too.
selection = (st.session_state.get("confusion_chart") or {}).get("selection") or {}
points = selection.get("points") or []
clicked = _cell_from_point(points[0]) if points else None
if clicked and clicked != st.session_state.get("conf_last_click"):
    st.session_state["conf_last_click"] = clicked
    st.session_state["conf_true"], st.session_state["conf_pred"] = clicked
if "conf_true" not in st.session_state:
    top = info["top_confusions"]
    first = (classes.index(top[0][0]), classes.index(top[0][1])) if top else (0, 0)
    st.session_state["conf_true"], st.session_state["conf_pred"] = first
for k in ("conf_true", "conf_pred"):
    if not 0 <= st.session_state[k] < len(classes):
        st.session_state[k] = 0
cell = (st.session_state["conf_true"], st.session_state["conf_pred"])

left, right = st.columns([3, 2], gap="large")
with left:
    normalise = view == "Row-normalised"
    fig = confusion_figure(ev.confusion, classes, normalise=normalise, selected=cell,
                           height=600 if len(classes) > 5 else 440, colour=COLOURS[colour])
    st.plotly_chart(fig, key="confusion_chart", on_select="rerun", selection_mode="points",
                    config={"displayModeBar": False})
    st.caption(confusion_colour(ev.confusion, normalise, COLOURS[colour])["caption"]
               + (" Cells: percent of the row's true class, one decimal." if normalise else " Cells: image counts."))
    if info["top_confusions"]:
        st.markdown("##### Most confused pairs")
        st.dataframe([{"true": a, "predicted": b, "images": n} for a, b, n in info["top_confusions"]],
                     hide_index=True, width="stretch")
with right:
    st.markdown("##### Cell")
    s1, s2 = st.columns(2)
    s1.selectbox("True class", range(len(classes)), format_func=classes.__getitem__, key="conf_true")
    s2.selectbox("Predicted class", range(len(classes)), format_func=classes.__getitem__, key="conf_pred")
    t, p = st.session_state["conf_true"], st.session_state["conf_pred"]
    positions, confidence = cell_members(ev, t, p)
    row_total = int(ev.confusion[t].sum())
    kind = "correct" if t == p else "confused"
    st.markdown(f"**{len(positions):,}** {classes[t]} image(s) predicted **{classes[p]}** "
                f"({len(positions) / max(row_total, 1):.1%} of {classes[t]}; {kind}).")
    if len(positions):
        shown = min(len(positions), 30)
        st.image([fmt.enlarge(data.images[int(i)], 3) for i in positions[:shown]],
                 caption=[f"{c:.1%} · #{int(i)}" for i, c in zip(positions[:shown], confidence[:shown])], width=96)
        st.caption(f"Under each image: the model's confidence in {classes[p]} · its position in the {split} split.")
        if len(positions) > shown:
            st.caption(f"The {shown} most confident of {len(positions):,}; the CSV below lists all.")
        share = dict(zip((int(i) for i in positions[:shown]), confidence[:shown]))
        pick = st.selectbox("See why: one of these images in the Excitation explorer", list(share), key="conf_explain",
                            format_func=lambda i: f"#{i} · {share[i]:.1%} {classes[p]}")
        if st.button("Explain in the Excitation explorer", icon=":material/tune:", key="conf_explain_go"):
            hand_over("excitation.py", image=str(pick), view="image")
    else:
        st.caption("No images in this cell.")

st.subheader(f"Per-class metrics · {split} · recomputed now")
pct_col = {name: st.column_config.ProgressColumn(f"{name} (%)", format="%.1f%%", min_value=0.0, max_value=100.0)
           for name in ("precision", "recall", "f1")}
st.dataframe(per_class_rows(info["per_class"]), hide_index=True, width="stretch", column_config=pct_col)
st.caption(f"Macro averages over the classes: precision {fmt.pct(info['macro']['precision'])}, recall "
           f"{fmt.pct(info['macro']['recall'])}, F1 {fmt.pct(info['macro']['f1'])}.")
st.download_button("Download per-image predictions (CSV)", lambda: predictions_csv(ev, data),
                   file_name=f"predictions_{meta.get('model')}_{split}{'_tta' if tta else ''}.csv", mime="text/csv",
                   icon=":material/download:")
st.caption("One row per image. " + CSV_COLUMNS + "; also true, predicted, confidence, correct, and p_<class>: each "
           "class's probability.")
