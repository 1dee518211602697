"""Compare: overlay the curves of several runs or checkpoints; SE against plain, side by side.

Two views, one drawn per run: runs and checkpoints, or a study. Streamlit forgets the value of a widget that a run
does not draw, so the widgets of one view keep theirs while the other view is shown (``persist_state="page"``);
the charts read the value each widget returns, so the controls and the charts always show the same setting.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import streamlit as st

from senet import CheckpointError, DataError
from senet.analysis.compare import model_row, paired_comparison
from senet.analysis.evaluate import checkpoint_split_options
from senet.data import match_cards, match_split
from senet.models import model_spec
from senet.recorded import split_words
from senet.training.hardware import mixed_hardware, read_hardware
from senet.training.runs import read_metrics
from senet.training.twins import like_for_like
from senet_dashboard.card import has_test_split
from senet_dashboard.catalog import CheckpointEntry, default_entry
from senet_dashboard.curves import Curves, curves_from_history, curves_from_records
from senet_dashboard.figures import overlay_figure
from senet_dashboard.views import _format as fmt
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views import _measure as measure
from senet_dashboard.views._context import hand_over
from senet_dashboard.views._study import study_view


class Keys:
    """The page's widget keys, declared once: a misspelt key is an AttributeError, not a new widget."""

    VIEW: Final = "compare_what"
    RUNS: Final = "compare_keys"
    X_AXIS: Final = "compare_x"
    LOG_Y: Final = "compare_log"
    LATENCY: Final = "compare_latency"
    PAIRED: Final = "compare_paired"
    PAIRED_TTA: Final = "compare_paired_tta"
    RECOMPUTE: Final = "compare_recompute"
    OVERLAY: Final = "overlay_{}"  # one chart per metric: Keys.OVERLAY.format(metric)
    CARD: Final = "compare_card"  # which compared entry to open in the model card
    CARD_GO: Final = "compare_card_go"


RUNS_VIEW, STUDY_VIEW = "runs and checkpoints", "a study"
KEPT: Final = "page"  # persist_state of the runs view's controls: kept while the study view is shown
METRICS = ("val_acc", "val_loss", "train_loss", "step_loss")  # one tab each


@dataclass(frozen=True)
class Weighing:
    """What the table and the SE-against-plain pairs are drawn over: the compared rows and the section's
    toggles, and the sidebar's data source that the evaluations run on."""

    rows: list[dict]
    held_out: str  # "Validation", "Test" or "Validation / test": the split the rows scored themselves on
    measure: bool
    paired: bool
    paired_tta: bool
    recompute: bool
    splits_now: tuple[str, ...]
    spec: str
    data_dir: Path


def main() -> None:
    st.title("Compare")
    st.caption("Overlay the training curves of runs and checkpoints, and weigh what SE costs against what it gives; "
               "or read a study of several seeds.")
    view = st.segmented_control("Compare", [RUNS_VIEW, STUDY_VIEW], key=Keys.VIEW, required=True,
                                default=RUNS_VIEW, label_visibility="collapsed")
    if view == STUDY_VIEW:
        study_view()
    else:
        runs_view()


def runs_view() -> None:
    """The chosen runs' curves, a table of what each costs and gives, and each SE model beside its plain twin."""
    found = [e for e in ui.entries() if e.source != "external"]  # ImageNet models by name: no curves, no twin
    if not found:
        ui.no_checkpoint_message()
        return
    chosen = _choose(found)
    if not chosen:
        st.info("Choose one or more runs or checkpoints above.")
        return
    series, rows = _load(chosen)
    if not rows:
        return
    scored = {r["scored_on"] for r in rows}  # each run's curves are on the split it scored itself on
    held_out = "Test" if scored == {"test"} else "Validation" if scored == {"val"} else "Validation / test"
    _curves(series, rows, held_out)
    st.subheader("SE against plain")
    weighing = _weighing_controls(rows, held_out)
    _table(weighing)
    pairs = [(se, plain) for se in rows if se["SE"] for plain in rows
             if not plain["SE"] and plain["architecture"] == se["architecture"]]
    for se, plain in pairs[:3]:
        _pair(se, plain, weighing)
    if not pairs:
        st.caption("Add an SE checkpoint and its plain twin (the same architecture) to see the difference side by "
                   "side.")


def _choose(found: list[CheckpointEntry]) -> list[CheckpointEntry]:
    """The multiselect of runs and checkpoints (the shipped ones, else the first healthy ones, at first)."""
    by_key = {e.key: e for e in found}
    if Keys.RUNS not in st.session_state:
        healthy = [e for e in found if not e.problem]
        shipped = [e.key for e in healthy if e.source == "shipped"]
        first = default_entry(found)
        st.session_state[Keys.RUNS] = shipped[:4] or [e.key for e in healthy[:3]] or ([first.key] if first else [])
    # assigned on every run: the choice also survives the study view and other pages, where it is not drawn
    st.session_state[Keys.RUNS] = [k for k in st.session_state[Keys.RUNS] if k in by_key]
    keys = st.multiselect("Runs and checkpoints", list(by_key), key=Keys.RUNS, persist_state=KEPT,
                          format_func=lambda k: ("⚠ " if by_key[k].problem else "") + by_key[k].label)
    return [by_key[k] for k in keys]


def _load(chosen: list[CheckpointEntry]) -> tuple[dict[str, Curves], list[dict]]:
    """Each chosen entry's curves (its run's metrics.jsonl, else its recorded history) and its table row; an
    unreadable one is an error of its own and left out."""
    series: dict[str, Curves] = {}
    rows = []
    for e in chosen:
        name = e.path.parent.name if e.source == "run" else e.path.stem
        try:
            model, meta = ui.load_entry(e.path)
        except CheckpointError as exc:
            st.error(str(exc), icon=":material/error:")
            continue
        metrics = e.path.parent / "metrics.jsonl"
        curves = curves_from_records(read_metrics(metrics)[0]) if e.source == "run" and metrics.is_file() else None
        if curves is None or not curves.epoch:
            history = curves_from_history(meta.get("history"))
            if curves is not None:
                history.step, history.step_loss = curves.step, curves.step_loss
            curves = history
        series[name] = curves
        rows.append({"name": name, **model_row(model, meta, ui.info_for(e.path)),
                     "architecture": model_spec(meta["model"]).architecture,
                     "path": str(e.path), "mtime": e.mtime, "meta": meta})
    return series, rows


def _curves(series: dict[str, Curves], rows: list[dict], held_out: str) -> None:
    """The x-axis and log-scale controls, and one overlay chart per metric drawn with exactly their values."""
    o1, o2, _ = st.columns([1.4, 1, 2], vertical_alignment="bottom")
    x_axis = o1.segmented_control(
        "x axis", ["epoch", "training time"], key=Keys.X_AXIS, default="epoch", required=True, persist_state=KEPT,
        help="Training time is the wall time recorded with each epoch: compare it only between runs that trained "
             "on the same hardware under the same load (two runs side by side each take about twice as long).")
    log_y = o2.toggle("Log-scale loss", key=Keys.LOG_Y, persist_state=KEPT)
    by_time = x_axis == "training time"
    recorded = {r["name"]: r["meta"].get("hardware") for r in rows}
    hardware = {name: read_hardware(text).label for name, text in recorded.items()} if by_time else None
    mixed = mixed_hardware(recorded) if by_time else None
    if mixed:  # a time is only comparable on the same hardware: the legend groups by it, and this says so
        st.warning(mixed, icon=":material/memory:")
    tabs = st.tabs([f"{held_out} accuracy", f"{held_out} loss", "Training loss", "Loss per step"])
    for tab, metric in zip(tabs, METRICS):
        with tab:
            st.plotly_chart(overlay_figure(series, metric, height=380, x_axis="time" if by_time else "epoch",
                                           log_y=log_y, hardware=hardware), key=Keys.OVERLAY.format(metric))
            if metric == "step_loss" and by_time:
                st.caption("Steps carry no training time here; this chart stays per step.")


def _weighing_controls(rows: list[dict], held_out: str) -> Weighing:
    """The toggles of what to measure and evaluate now."""
    measure = st.toggle("Measure CPU latency per image (batch 1)", key=Keys.LATENCY, persist_state=KEPT,
                        help="In the table: the median of 30 forward passes of each model on this machine's CPU. "
                             "For a pair: 7 rounds that time SE and plain in alternation (10 passes each), so that "
                             "a change of load hits both; SE/plain is the median of the per-round ratios, with "
                             "an interval from their spread.")
    paired = st.toggle(f"Paired test on the {held_out.lower()} split", key=Keys.PAIRED, persist_state=KEPT,
                       help="Evaluate each SE checkpoint and its plain twin on the same images of the split they "
                            "scored themselves on in training (the validation split; the test split for models "
                            "trained on every training image), cached on disk; count the images only one of them "
                            "gets right, and test whether that split is more than chance (exact McNemar test).")
    paired_tta = paired and st.toggle("…with flip test-time augmentation", key=Keys.PAIRED_TTA, persist_state=KEPT)
    spec, data_dir = ui.data_spec(), ui.settings().data_dir
    splits_now = ("val", "test") if has_test_split(spec, data_dir) else ("val",)
    recompute = st.toggle(f"Recompute {' and '.join(splits_now)} accuracy now", key=Keys.RECOMPUTE,
                          persist_state=KEPT,
                          help=f"Evaluate every checkpoint above on the {' and '.join(splits_now)} split(s) of "
                               f"{spec} on this machine (cached on disk), beside the figures recorded in training.")
    return Weighing(rows, held_out, measure, paired, paired_tta, recompute, splits_now, spec, data_dir)


def _over_budget(row: dict, split: str, tta: bool = False, data=None) -> str | None:
    """In a public demo, why this evaluation may not run now (over its budget and not prepared beforehand);
    None when it may, and always outside demo mode."""
    if not ui.demo_on():
        return None
    try:
        data = data if data is not None else ui.load_data(split, row["meta"])
    except DataError:
        return None  # the evaluation itself says what is wrong
    return ui.split_work_refusal(f"Evaluating {row['name']} on {split}", len(data), passes=2 if tta else 1,
                                 cached=ui.evaluation_cached(row["path"], split, tta, data),
                                 way_out="the sample data source fits", meta=row["meta"])


def _table(w: Weighing) -> None:
    """One row per compared entry: recorded figures, size, and (on request) latency and accuracy now."""
    table, refused = [], []
    for r in w.rows:
        table.append({"name": r["name"], "model": r["model"], "SE": "✓" if r["SE"] else "–",
                      "r": str(r["r"]) if r["r"] is not None else "–",
                      "recorded on": r["scored_on"],
                      "acc % (recorded)": None if r["acc"] is None else 100 * r["acc"],
                      "TTA % (recorded)": None if r["acc_tta"] is None else 100 * r["acc_tta"],
                      "params": r["params"],
                      "SE params": r["se_params"], "MACs / image": r["macs"], "epochs": r["epochs"]})
    timed = measure.latencies(w.rows) if w.measure else None
    jobs = []  # (row, split) to evaluate now: within a public demo's budget
    for r, line in zip(w.rows, table):
        if timed:  # the column exists only when it has figures, instead of a column of "None"
            line["CPU ms / image"] = round(timed[r["path"]], 2)
        for split in w.splits_now if w.recompute and ui.data_available() is None else ():
            over = _over_budget(r, split)
            refused.extend([over] if over else [])
            jobs.extend([] if over else [(r, split)])
    accs = measure.accuracies_now(jobs, w.spec, w.data_dir) if jobs else None
    for r, line in zip(w.rows, table):  # a column only with figures (none when stopped)
        for split in w.splits_now if accs is not None or refused else ():
            acc = (accs or {}).get((r["path"], split))
            line[f"{split} % (recomputed now)"] = None if acc is None else 100 * acc
    st.dataframe(table, hide_index=True, width="stretch", column_config=_table_columns(w.spec, table))
    for why in refused:
        st.caption(f":material/block: {why}")
    _open_in_card(w.rows)


def _open_in_card(rows: list[dict]) -> None:
    """The hand-off to the model card: one of the compared entries, with this session's data and split."""
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    paths = {r["path"]: r["name"] for r in rows}
    chosen = c1.selectbox("Open one of them in the model card", list(paths), format_func=paths.get, key=Keys.CARD)
    if c2.button("Model card", icon=":material/home:", key=Keys.CARD_GO, width="stretch"):
        hand_over("home.py", checkpoint=chosen)


TABLE_PX = 812  # the page's width for a table at a 1280-px window: every column fits without scrolling


def _table_columns(spec: str, table: list[dict]) -> dict:
    """Short headers (each one's full meaning in its help) and widths that fit the table into the page at
    1280 px: the name column pinned, as wide as the longest name where there is room, else the room left; the
    model column hidden (still in the data) where every name already says its model."""
    number = st.column_config.NumberColumn
    columns = {
        "model": st.column_config.TextColumn("model", width=96),
        "SE": st.column_config.TextColumn("SE", width=34, help="Whether the model has SE blocks."),
        "r": st.column_config.TextColumn("r", width=34, help="The SE blocks' reduction ratio (– without SE)."),
        "recorded on": st.column_config.TextColumn(
            "split", width=46, help="The split the trainer scored the checkpoint on: val (its own held-out images) "
                                    "or test (a model trained on every training image; nothing selected on test)."),
        "acc % (recorded)": number("acc %", format="%.2f", width=56, help="Accuracy in percent on that split, as "
                                                                         "recorded in training."),
        "TTA % (recorded)": number("TTA %", format="%.2f", width=56, help="The same with the recipe's test-time "
                                   "augmentation (the mean of the views' probabilities: the image and its mirror; "
                                   "level 2 adds one-pixel translations), as recorded in training."),
        "params": number("params", format="localized", width=78, help="Parameters of the whole model."),
        "SE params": number("SE params", format="localized", width=70, help="Parameters of the SE blocks."),
        "MACs / image": number("MACs", format="compact", width=52, help="Multiply-adds per image (one forward "
                                                                        "pass)."),
        "epochs": number("epochs", width=54, help="Epochs trained."),
        "CPU ms / image": number("CPU ms", format="%.2f", width=60, help="Milliseconds per image on this "
                                 "machine's CPU, batch 1: the median of 30 forward passes, one model after another "
                                 "(a change of load between them shows here; the pairs below time SE and plain "
                                 "in alternation)."),
        **{f"{split} % (recomputed now)": number(
            f"{split} % now", format="%.2f", width=66,
            help=f"Accuracy in percent on the {split} split of {spec}, computed now on this machine, no TTA.")
           for split in ("val", "test")},
    }
    if table and all(str(r["model"]) in str(r["name"]) for r in table):
        columns["model"] = None  # each name says its model (shipped files, runs "<time>-<model>"): room for names
    shown = set(table[0]) if table else set()
    room = TABLE_PX - sum(c["width"] for k, c in columns.items() if k in shown and c)
    longest = max((len(str(r["name"])) for r in table), default=4)
    width = int(min(7.5 * longest + 24, max(room, 120)))
    return {"name": st.column_config.TextColumn("name", pinned=True, width=width), **columns}


def _pair(se: dict, plain: dict, w: Weighing) -> None:
    """An SE model beside its plain twin: accuracy, size and (on request) latency and the paired test."""
    with st.container(border=True):
        st.markdown(f"**{se['name']}** (SE) vs **{plain['name']}** (plain)")
        reason = like_for_like(se["meta"], plain["meta"])
        if reason:
            st.warning(f"Not compared: these two are not twins trained alike ({reason}). A difference between "
                       "them would mix SE with everything else that differs.", icon=":material/block:")
            return
        st.caption(f"Twins trained alike; data: {match_cards(se['meta'], plain['meta']).note}.")
        c = st.columns(4)
        if se["acc"] is not None and plain["acc"] is not None and se["scored_on"] == plain["scored_on"]:
            diff = (se["acc"] - plain["acc"]) * 100
            c[0].metric(f"{se['scored_on'].capitalize()} acc (recorded)", fmt.pct(se["acc"]),
                        delta=f"{diff:+.2f} pts" if diff else "±0.00 pts", delta_color="off", delta_arrow="off",
                        help=f"SE's accuracy on its {split_words(se['scored_on'])} split as the trainer recorded "
                             "it, and SE − plain in percentage points; not coloured: whether it is more than "
                             "chance needs the paired test below.")
        for column, label, key, shown, text in (
                (c[1], "Parameters", "params", f"{se['params']:,}", "SE's count, and its change relative to plain"),
                (c[2], "MACs / image", "macs", fmt.human(se["macs"]), "Multiply-adds per image, and the change")):
            change = se[key] / plain[key] - 1
            column.metric(label, shown, delta=fmt.relative_change(change), delta_color="inverse" if change else "off",
                          delta_arrow="auto" if change else "off",
                          help=f"{text} (exact: {se[key]:,} vs {plain[key]:,}).")
        if w.measure:
            _pair_latency_metric(c[3], se, plain)
        if w.paired:
            _paired_test(se, plain, w)


def _pair_latency_metric(column, se: dict, plain: dict) -> None:
    """SE's CPU time against plain's, timed in alternation: the median per-round ratio and its interval."""
    lat = measure.pair_latency(se, plain)
    if lat is None:  # stopped: the line saying so is shown
        return
    low, high, confidence = lat.ratio_interval
    column.metric("CPU time SE/plain (batch 1)", f"{lat.ratio - 1:+.1%}",
                  delta=("within noise: " if lat.within_noise else "")
                  + f"{confidence:.0%} interval {low - 1:+.0%} to {high - 1:+.0%}", delta_color="off",
                  delta_arrow="off",
                  help="SE's time over plain's in each of the rounds that time them in alternation (one load for "
                       "both), as a change; the median of the rounds, with a distribution-free interval.")
    st.caption(fmt.latency_words(lat))


def _paired_test(se: dict, plain: dict, w: Weighing) -> None:
    """Both checkpoints on the same images of their scored split: a McNemar test of their disagreements."""
    same_images = match_cards(se["meta"], plain["meta"]).by == "fingerprint"  # twins: the same images, by content
    if not same_images and checkpoint_split_options(se["meta"]) != checkpoint_split_options(plain["meta"]):
        st.caption("No paired test: the two were trained with different validation splits.")
        return
    split, tta = se["scored_on"], w.paired_tta
    data = ui.get_data(split, se["meta"], "The table and curves above do not need data.")
    if data is None:
        return
    over = [why for why in (_over_budget(r, split, tta, data) for r in (se, plain)) if why]
    if over:
        st.error("No paired test: " + "; ".join(over), icon=":material/block:")
        return
    try:
        both = measure.paired_evaluations(se, plain, w.spec, split, w.data_dir, tta, data)
    except DataError as exc:
        st.error(f"Cannot evaluate: {exc}")
        return
    if both is None:  # stopped: the line saying so is shown
        return
    a, b = both
    t = paired_comparison(a.labels, a.preds, b.preds)
    low, high = t.difference_ci95
    verdict = ("a difference chance alone would rarely give" if t.p_value < 0.05
               else "a difference within what chance alone gives")
    st.markdown(
        f"On the same {t.n:,} {split_words(split)} images{' with flip TTA' if tta else ''}: "
        f"both right {t.both_right:,}, "
        f"**only SE right {t.only_a:,}**, **only plain right {t.only_b:,}**, both wrong {t.both_wrong:,}. "
        f"SE − plain = {t.difference * 100:+.2f} pts (95% CI {low * 100:+.2f} to {high * 100:+.2f}); "
        f"McNemar p = {t.p_value:.3g}: {verdict}. Recomputed now on this machine (recorded figures above can "
        f"differ by a few images: other hardware, float16 export).")
    st.caption(f"These images: {match_split(se['meta'], split, data, w.spec).note}.")


main()
