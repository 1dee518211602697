"""The Compare page's study view: a study's variants x seeds, every seed as a point, differences with intervals."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import streamlit as st

from senet_dashboard.curves import curves_from_records
from senet_dashboard.figures import overlay_figure
from senet_dashboard.study_figures import paired_differences_figure, study_points_figure
from senet.training.runs import read_metrics
from senet.training.study import StudyError, summarize
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views import _format as fmt


class Keys:
    """The study view's session-state and widget keys, declared once: a misspelt key is an AttributeError."""

    STUDY: Final = "study"
    EXTRA: Final = "extra_studies"  # directories opened by path in this session
    OPEN_PATH: Final = "open_study_path"
    OPEN: Final = "open_study_button"
    POINTS: Final = "study_points"
    PAIRS: Final = "study_pairs"
    CURVES: Final = "study_curves"


def studies_root() -> Path:
    """Where studies are found: $SENET_STUDIES, default ./studies."""
    return Path(os.environ.get("SENET_STUDIES", "studies"))


@st.cache_data(max_entries=16, show_spinner="Reading the study's runs…")
def _summary(path: str, stamp: float) -> dict:
    return summarize(Path(path))


def _stamp(study: Path) -> float:
    """Changes whenever a run of the study writes its status."""
    return max((p.stat().st_mtime for p in study.glob("runs/*/status.json")), default=0.0)


def _interval(iv: dict | None) -> str:
    if not iv:
        return "–"
    if iv["low"] != iv["low"]:
        return f"{100 * iv['mean']:.2f}% (one seed)"
    return f"{100 * iv['mean']:.2f}% [{100 * iv['low']:.2f}, {100 * iv['high']:.2f}]"


def study_view() -> None:
    """Pick a study directory (under $SENET_STUDIES or any path) and show what it found."""
    root = studies_root()
    listed = ui.demo().listed  # a public demo lists no study that a symlink takes outside its folders
    found = sorted(str(p.parent) for p in root.glob("*/study.json") if listed(p.parent, "study directory"))
    extra = st.session_state.setdefault(Keys.EXTRA, [])
    options = found + [p for p in extra if p not in found]
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    with c2.popover("Open a study…", icon=":material/folder_open:", width="stretch"):
        typed = st.text_input("Path of a study directory", key=Keys.OPEN_PATH)
        if st.button("Open", key=Keys.OPEN) and typed:
            refusal = ui.demo().path_refusal(typed, "study directory")  # public demo: only under its folders
            if refusal:
                st.error(refusal)
            elif not (Path(typed).expanduser() / "study.json").is_file():
                st.error(f"{typed}: not a study directory (no study.json); make one with `senet study`")
            else:
                extra.append(str(Path(typed).expanduser().resolve()))
                st.session_state[Keys.STUDY] = extra[-1]
                st.rerun()
    if not options:
        c1.info(f"No studies in `{root}` yet. Train one with `senet study --study-dir "
                f"{root}/NAME --variants se_airnet airnet --seeds 5 ...`, or open one by path.")
        return
    # kept while the runs view is shown (Streamlit forgets a widget a run does not draw)
    study = c1.selectbox("Study", options, key=Keys.STUDY, format_func=lambda p: Path(p).name, persist_state="page")
    try:
        summary = _summary(study, _stamp(Path(study)))
    except StudyError as exc:
        st.error(str(exc))
        return
    on_test = summary.get("scored_on") == "test"
    st.caption(f"{summary['interval']}. Accuracy: "
               + ("each run's last epoch on the test split (trained on every training image, nothing selected on "
                  "test)" if on_test else "each run's best epoch on its validation split")
               + ", recorded in training. A variant's seeds share data, split and recipe; only the seed differs.")
    st.dataframe([{"variant": v["variant"], "seeds done": len(v["seeds"]),
                   f"{'test' if on_test else 'val'} acc, mean [95% CI]": _interval(v["acc"]),
                   "with TTA": _interval(v["acc_tta"]), "params": f"{v['params']:,}" if v["params"] else "–",
        "MACs / image": fmt.human(v["macs"]) if v["macs"] else "–"}
        for v in summary["variants"]], hide_index=True, width="stretch")
    runs = {row["variant"]: {int(seed): r["acc"] for seed, r in row["per_seed"].items() if r["acc"] is not None}
            for row in summary["variants"]}
    curves = {}
    for run_dir in sorted(d for d in Path(study).glob("runs/*") if listed(d, "run directory")):
        records = read_metrics(run_dir / "metrics.jsonl")[0]
        if records:
            curves[run_dir.name] = curves_from_records(records)
    g1, g2 = st.columns(2)
    g1.plotly_chart(study_points_figure(summary, runs), key=Keys.POINTS)
    if summary["pairs"]:
        g2.plotly_chart(paired_differences_figure(summary), key=Keys.PAIRS)
    else:
        g2.caption("Differences appear once two variants have a seed in common.")
    if curves:
        st.plotly_chart(overlay_figure(curves, "val_acc", height=360), key=Keys.CURVES)
