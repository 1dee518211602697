"""Confusion explorer: evaluate a checkpoint on a split, click a cell to see its images."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from views import _shared as ui
from senet.checkpoint import Checkpoint
from senet import DataError, evaluate_checkpoint
from dashboard.confusion import cell_members, predictions_csv, summary
from dashboard.figures import confusion_figure

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


c1, c2, _ = st.columns([1.3, 2, 2.3], vertical_alignment="center")
view = c1.segmented_control("Values", ["Counts", "Row-normalised"], key="conf_view", default="Counts",
                            required=True, label_visibility="collapsed")
tta = c2.toggle("Flip test-time augmentation", key="conf_tta",
                help="Average the prediction with that of the mirrored image.")
mtime = Path(path).stat().st_mtime
key = (path, mtime, ui.data_spec(), split, bool(tta), str(ui.settings().data_dir))
store = _evaluations()
ev = store.get(key)
if ev is None:
    bar = st.progress(0.0, text=f"Evaluating on {len(data):,} {split} images…")
    try:
        ev = evaluate_checkpoint(path, ui.data_spec(), split, ui.settings().data_dir, tta=bool(tta),
                                 loaded=Checkpoint.from_meta(model, meta), data=data,
                                 progress=lambda done, n: bar.progress(done / max(n, 1),
                                                                       text=f"Evaluating: {done:,} / {n:,} images"))
    except DataError as exc:
        bar.empty()
        st.error(f"Cannot evaluate: {exc}")
        st.stop()
    bar.empty()
    store[key] = ev
    while len(store) > 8:
        store.pop(next(iter(store)))

info = summary(ev)
m = st.columns(5)
m[0].metric("Accuracy", ui.pct(info["accuracy"]))
m[1].metric("Macro F1", f"{info['macro']['f1']:.4f}")
m[2].metric("Macro precision", f"{info['macro']['precision']:.4f}")
m[3].metric("Macro recall", f"{info['macro']['recall']:.4f}")
m[4].metric("Images", f"{info['n']:,}", help=f"The {split} split of {ui.data_spec()}"
            + (", with flip TTA" if tta else ""))


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
    fig = confusion_figure(ev.confusion, classes, normalise=view == "Row-normalised", selected=cell,
                           height=560 if len(classes) > 5 else 440)
    st.plotly_chart(fig, key="confusion_chart", on_select="rerun", selection_mode="points",
                    config={"displayModeBar": False})
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
        st.image([ui.enlarge(data.images[int(i)], 2) for i in positions[:shown]],
                 caption=[f"{c:.0%} · #{int(i)}" for i, c in zip(positions[:shown], confidence[:shown])], width=72)
        if len(positions) > shown:
            st.caption(f"The {shown} most confident of {len(positions):,}; the CSV below lists all.")
        share = dict(zip((int(i) for i in positions[:shown]), confidence[:shown]))
        e1, e2 = st.columns([3, 2], vertical_alignment="bottom")
        pick = e1.selectbox("See why: one of these images in the Excitation explorer", list(share), key="conf_explain",
                            format_func=lambda i: f"#{i} · {share[i]:.0%} {classes[p]}")
        if e2.button("Explain", icon=":material/tune:", key="conf_explain_go", width="stretch"):
            st.switch_page("views/excitation.py", query_params={"split": split, "image": str(pick)})
    else:
        st.caption("No images in this cell.")
    if info["top_confusions"]:
        st.markdown("##### Most confused pairs")
        st.dataframe([{"true": a, "predicted": b, "images": n} for a, b, n in info["top_confusions"]],
                     hide_index=True, width="stretch")

st.subheader("Per-class metrics")
pct_col = {name: st.column_config.ProgressColumn(name, format="%.3f", min_value=0.0, max_value=1.0)
           for name in ("precision", "recall", "f1")}
st.dataframe(info["per_class"], hide_index=True, width="stretch", column_config=pct_col)
st.download_button("Download per-image predictions (CSV)", lambda: predictions_csv(ev),
                   file_name=f"predictions_{meta.get('model')}_{split}{'_tta' if tta else ''}.csv", mime="text/csv",
                   icon=":material/download:")
