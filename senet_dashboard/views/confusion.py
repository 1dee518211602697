"""Confusion explorer: evaluate a checkpoint on a split, click a cell to see its images."""
from __future__ import annotations

from typing import Final

import streamlit as st

from senet_dashboard.views import _loaders as ui
from senet_dashboard.views._context import PageContext, hand_over, page_context
from senet_dashboard.views import _format as fmt
from senet_dashboard.views import _progress as progress
from senet import DataError
from senet.data import DataMatch, match_split
from senet.analysis.evaluate import stream_evaluation
from senet.progress import Progress
from senet.recorded import recorded as recorded_figure, scored_split
from senet_dashboard.card import pts, recorded_accuracy
from senet_dashboard.confusion import CSV_COLUMNS, cell_members, cell_sentence, per_class_rows, predictions_csv, \
    summary
from senet_dashboard.figures import confusion_colour, confusion_figure

COLOURS = {"All cells": "all", "Errors only": "errors", "Log scale": "log"}



class Keys:
    """The page's session-state and widget keys."""

    VALUES: Final = "conf_view"
    COLOUR: Final = "conf_colour"
    TTA: Final = "conf_tta"
    CHART: Final = "confusion_chart"
    LAST_CLICK: Final = "conf_last_click"
    TRUE: Final = "conf_true"
    PRED: Final = "conf_pred"
    EXPLAIN: Final = "conf_explain"
    EXPLAIN_GO: Final = "conf_explain_go"
    EVALUATE: Final = "conf_evaluate"  # the evaluation's Stop and Continue (see _progress)


@st.cache_resource(show_spinner=False)
def _evaluations() -> dict:
    """Evaluations of this server process, newest last (the disk cache survives restarts)."""
    return {}


def main() -> None:
    st.title("Confusion explorer")
    st.caption("Rows are the true classes, columns the predicted ones. Click a cell to see its images, most "
               "confident first.")
    ctx = page_context()
    if ctx is None:
        return
    data = ui.get_data(ctx.split, ctx.meta, "**What still works:** the model card, Compare, and the Excitation "
                                            "explorer with an uploaded image.")
    if data is None:
        return
    view, colour, tta = _controls()
    ev = _evaluation(ctx, data, bool(tta))
    if ev is None:
        return
    info = summary(ev)
    _metrics(ctx, info, bool(tta), match_split(ctx.meta, ctx.split, data, ctx.spec))
    cell = _picked_cell(ctx.classes, info)
    left, right = st.columns([3, 2], gap="large")
    with left:
        _matrix(ctx.classes, ev, info, cell, view, colour)
    with right:
        _cell_images(ctx, data, ev, cell)
    _per_class(ctx, ev, data, info, bool(tta))


def _controls() -> tuple[str, str, bool]:
    """Values, colour and flip TTA."""
    with st.container(horizontal=True, vertical_alignment="bottom", gap="medium"):
        view = st.segmented_control("Values", ["Counts", "Row-normalised"], key=Keys.VALUES, default="Counts",
                                    required=True, help="Counts of images, or each row as percent of its true class.")
        colour = st.segmented_control("Colour", list(COLOURS), key=Keys.COLOUR, default="All cells", required=True,
                                      help="Errors only: the diagonal (correct predictions) is greyed out and left out "
                                           "of the colour scale, so the off-diagonal errors get the whole scale. "
                                           "Log scale: colour by log(1 + value).")
        tta = st.toggle("Flip test-time augmentation", key=Keys.TTA,
                        help="Average the prediction with that of the mirrored image.")
    return view, colour, tta


def _evaluation(ctx: PageContext, data, tta: bool):
    """This context's evaluation: kept in the server, else streamed (the matrix fills in as chunks finish), or
    None after a message (a public demo's budget, a data fault)."""
    path, split = ctx.path, ctx.split
    key = (path, ctx.stamp, ctx.spec, split, tta, str(ui.settings().data_dir))
    store = _evaluations()
    ev = store.get(key)
    refusal = None if ev is not None else ui.split_work_refusal(
        f"Evaluating {split}", len(data), passes=2 if tta else 1,
        cached=ui.demo_on() and ui.evaluation_cached(path, split, tta, data),
        way_out="the sample data source fits" + ("; without flip TTA it takes half the passes" if tta else ""))
    if refusal:  # a public demo's budget: only evaluations prepared beforehand (senet evaluate) or small enough
        st.error(refusal, icon=":material/block:")
        return None
    if ev is None:  # stream it: the matrix and accuracy fill in as chunks finish; a rerun resumes from the disk cache
        label = f"Evaluating {split}" + (" with flip TTA" if tta else "")
        try:
            ev = progress.run_with_progress(
                Keys.EVALUATE, key, label, lambda report: _stream(ctx, data, tta, report), again="Continue",
                kept=progress.chunks_kept)
        except DataError as exc:
            st.error(f"Cannot evaluate: {exc}")
            return None
        if ev is None:  # stopped
            return None
        store[key] = ev
        while len(store) > 8:
            store.pop(next(iter(store)))
    return ev


def _stream(ctx: PageContext, data, tta: bool, report: Progress):
    """Evaluate this context's split, drawing the matrix of the images done so far after each chunk."""
    live, ev = st.empty(), None
    for ev in stream_evaluation(ctx.path, ctx.spec, ctx.split, ui.settings().data_dir, tta=tta,
                                loaded=ctx.checkpoint, data=data, chunk=progress.CHUNK, progress=report):
        if ev.n < len(data):
            with live.container():
                st.caption(f"Accuracy so far {fmt.pct(ev.accuracy)} on the first {ev.n:,} of {len(data):,} "
                           f"{ctx.split} images (recomputed now); the matrix fills in as they are done.")
                st.plotly_chart(confusion_figure(ev.confusion, ctx.classes, height=420),
                                key=f"confusion_partial_{ev.n}")
    live.empty()
    return ev


def _metrics(ctx: PageContext, info: dict, tta: bool, match: DataMatch) -> None:
    """Accuracy recomputed now beside the recorded one, macro F1, the image count; each says what it is, and a
    line says whether these are the checkpoint's own images (``match``: by data fingerprint, else by path)."""
    meta, split = ctx.meta, ctx.split
    recorded = recorded_accuracy(meta, split, tta, match)
    how = "with flip TTA" if tta else "no TTA"
    where = f"the {split} split of {ctx.spec}, {match.note}"
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
                     + ("" if split == scored_split(meta) else f"; the {split} split has no recorded figure")
                     + f". These images: {match.note}.")
    m[2].metric(f"Macro F1 · {split}", fmt.pct(info["macro"]["f1"]),
                help=f"Macro precision {fmt.pct(info['macro']['precision'])}, macro recall "
                     f"{fmt.pct(info['macro']['recall'])} (recomputed now, {how}).")
    m[3].metric("Images", f"{info['n']:,}", help=f"The {split} split of {ctx.spec}, {how}")
    st.caption(f"Data: {match.note}." + (f" {note}." if (note := fmt.subset_note(ctx.checkpoint.card)) else ""))


def _cell_from_point(point: dict, classes: list[str]) -> tuple[int, int] | None:
    custom = point.get("customdata")
    if isinstance(custom, (list, tuple)) and len(custom) >= 2:
        return int(custom[0]), int(custom[1])
    if point.get("y") in classes and point.get("x") in classes:
        return classes.index(point["y"]), classes.index(point["x"])
    return None


def _picked_cell(classes: list[str], info: dict) -> tuple[int, int]:
    """The cell shown: a click on the chart picks it, the selectboxes too; at first the most confused pair."""
    # A click on the chart (its selection state) picks the cell; the selectboxes below can pick one too.
    selection = (st.session_state.get(Keys.CHART) or {}).get("selection") or {}
    points = selection.get("points") or []
    clicked = _cell_from_point(points[0], classes) if points else None
    if clicked and clicked != st.session_state.get(Keys.LAST_CLICK):
        st.session_state[Keys.LAST_CLICK] = clicked
        st.session_state[Keys.TRUE], st.session_state[Keys.PRED] = clicked
    if Keys.TRUE not in st.session_state:
        top = info["top_confusions"]
        first = (classes.index(top[0][0]), classes.index(top[0][1])) if top else (0, 0)
        st.session_state[Keys.TRUE], st.session_state[Keys.PRED] = first
    for k in (Keys.TRUE, Keys.PRED):
        if not 0 <= st.session_state[k] < len(classes):
            st.session_state[k] = 0
    return st.session_state[Keys.TRUE], st.session_state[Keys.PRED]


def _matrix(classes: list[str], ev, info: dict, cell: tuple[int, int], view: str, colour: str) -> None:
    normalise = view == "Row-normalised"
    fig = confusion_figure(ev.confusion, classes, normalise=normalise, selected=cell,
                           height=600 if len(classes) > 5 else 440, colour=COLOURS[colour])
    st.plotly_chart(fig, key=Keys.CHART, on_select="rerun", selection_mode="points",
                    config={"displayModeBar": False})
    st.caption(confusion_colour(ev.confusion, normalise, COLOURS[colour])["caption"]
               + (" Cells: percent of the row's true class, one decimal." if normalise else " Cells: image counts."))
    if info["top_confusions"]:
        st.markdown("##### Most confused pairs")
        st.dataframe([{"true": a, "predicted": b, "images": n} for a, b, n in info["top_confusions"]],
                     hide_index=True, width="stretch")


def _cell_images(ctx: PageContext, data, ev, cell: tuple[int, int]) -> None:
    """The images of the picked cell, most confident first, and Explain (the hand-off to the explorer)."""
    classes, split = ctx.classes, ctx.split
    st.markdown("##### Cell")
    s1, s2 = st.columns(2)
    s1.selectbox("True class", range(len(classes)), format_func=classes.__getitem__, key=Keys.TRUE)
    s2.selectbox("Predicted class", range(len(classes)), format_func=classes.__getitem__, key=Keys.PRED)
    t, p = st.session_state[Keys.TRUE], st.session_state[Keys.PRED]
    positions, confidence = cell_members(ev, t, p)
    st.markdown(cell_sentence(len(positions), fmt.plain(classes[t]), fmt.plain(classes[p]), int(ev.confusion[t].sum())))
    if len(positions):
        shown = min(len(positions), 30)
        st.image([fmt.enlarge(data.images[int(i)], 3) for i in positions[:shown]],
                 caption=[f"{c:.1%} · #{int(i)}" for i, c in zip(positions[:shown], confidence[:shown])], width=96)
        st.caption(f"Under each image: the model's confidence in {fmt.plain(classes[p])} · its position in the {split} split.")
        if len(positions) > shown:
            st.caption(f"The {shown} most confident of {len(positions):,}; the CSV below lists all.")
        share = dict(zip((int(i) for i in positions[:shown]), confidence[:shown]))
        pick = st.selectbox("See why: one of these images in the Excitation explorer", list(share), key=Keys.EXPLAIN,
                            format_func=lambda i: f"#{i} · {share[i]:.1%} {classes[p]}")
        if st.button("Explain in the Excitation explorer", icon=":material/tune:", key=Keys.EXPLAIN_GO):
            hand_over("excitation.py", image=str(pick), view="image")


def _per_class(ctx: PageContext, ev, data, info: dict, tta: bool) -> None:
    split, meta = ctx.split, ctx.meta
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


main()
