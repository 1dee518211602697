"""Train: launch a training process, follow it live, stop and resume it, browse past runs."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Final

import numpy as np
import streamlit as st

from senet_dashboard.demo import TRAINING_OFF
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views._loaders import SidebarKeys
from senet_dashboard.views._context import hand_over
from senet_dashboard.views import _format as fmt
from senet_dashboard.curves import MetricsTail, curves_from_records, format_duration, last_smoothed, progress, \
    resume_notes
from senet_dashboard.figures import epoch_figure, lr_figure, step_loss_figure
from senet_dashboard.runs_table import ACC_HELP, runs_table
from senet_dashboard.forming_figures import forming_heatmap_figure, specificity_by_epoch_figure
from senet.training.gate_history import read_gate_history
from senet_dashboard.launcher import LaunchError, active_runs, can_resume, log_tail, resume_run, run_state, \
    start_run, stop_run
from senet_dashboard.views._train_form import launched, new_run
from senet.recorded import split_words
from senet.records import RecordError
from senet.training.runs import ACTIVE_STATES, read_config
from senet.training.preflight import check_settings
from senet.training.settings import field_problems

class Keys:
    """The page's session-state and widget keys, declared once: a misspelt key is an AttributeError."""

    CANCEL_START: Final = "cancel_start"
    CONFIRM_START: Final = "confirm_start"
    EXTRA_RUNS: Final = "extra_runs"
    FORMING_BLOCK: Final = "forming_block"
    FORMING_EPOCH: Final = "forming_epoch"
    FORMING_HEATMAP: Final = "forming_heatmap"
    FORMING_SPECIFICITY: Final = "forming_specificity"
    LIVE_EPOCH_ACC: Final = "live_epoch_acc"
    LIVE_EPOCH_LOSS: Final = "live_epoch_loss"
    LIVE_LR: Final = "live_lr"
    LIVE_STEP_LOSS: Final = "live_step_loss"
    LOG_LOSS: Final = "log_loss"
    METRIC_TAILS: Final = "metric_tails"
    OPEN_RUN_BUTTON: Final = "open_run_button"
    OPEN_RUN_PATH: Final = "open_run_path"
    PAUSE_LIVE: Final = "pause_live"
    PENDING_CONFIG: Final = "pending_config"
    RESUME_RUN: Final = "resume_run"
    RUNS_TABLE: Final = "runs_table"
    RUNS_TABLE_PATHS: Final = "runs_table_paths"
    SMOOTHING: Final = "smoothing"
    STEP_WINDOW: Final = "step_window"
    STOP_RUN: Final = "stop_run"
    TRAIN_ERROR: Final = "train_error"
    TRAIN_NOTICE: Final = "train_notice"
    TRAIN_RUN: Final = "train_run"
    USE_BEST: Final = "use_best"


S = ui.settings()
STATE_COLOR = {"running": "green", "starting": "orange", "finished": "blue", "stopped": "gray", "failed": "red"}
STEP_WINDOWS = [0, 200, 1000, 5000]  # 0: all steps

DEMO = ui.demo_on()  # a public demo shows runs read-only: nothing starts, stops or resumes

st.title("Train")
st.caption(f"Each run is its own `python -m senet train` process writing a run directory under `{S.runs_root}`; "
           "this page only reads that directory, so you can reload, switch pages or restart the dashboard.")
if DEMO:
    st.info(TRAINING_OFF, icon=":material/block:")


# --------------------------------------------------------------------------- actions (callbacks)
def _open_run(path: str) -> None:
    extra = st.session_state.setdefault(Keys.EXTRA_RUNS, [])
    if path not in extra and Path(path).parent.resolve() != S.runs_root.resolve():
        extra.append(path)
    st.session_state[Keys.TRAIN_RUN] = path


def _launch(config_dict: dict) -> None:
    st.session_state.pop(Keys.PENDING_CONFIG, None)
    if ui.demo_on():
        st.session_state[Keys.TRAIN_ERROR] = TRAINING_OFF
        return
    config, problems = check_settings(config_dict)  # again: "Start anyway" comes later than the form's check
    if config is None:
        st.session_state[Keys.TRAIN_ERROR] = f"Could not start the run: {next(iter(problems.values()))}"
        return
    try:
        run_dir = start_run(config, S.runs_root)
    except (LaunchError, OSError) as exc:
        st.session_state[Keys.TRAIN_ERROR] = f"Could not start the run: {exc}"
        return
    _open_run(str(run_dir))
    launched()  # the form folds, so the new run shows at the top of the page
    st.session_state[Keys.TRAIN_NOTICE] = f"Started {run_dir.name}"


def _request_start(config_dict: dict) -> None:
    if active_runs(S.runs_root):
        st.session_state[Keys.PENDING_CONFIG] = config_dict
    else:
        _launch(config_dict)


def _stop(run_dir: str) -> None:
    if ui.demo_on():
        st.session_state[Keys.TRAIN_ERROR] = TRAINING_OFF
        return
    try:
        sent = stop_run(run_dir)
    except LaunchError as exc:
        st.session_state[Keys.TRAIN_ERROR] = str(exc)
        return
    st.session_state[Keys.TRAIN_NOTICE] = ("Stop requested: the run finishes its step and saves last.pt."
                                        if sent else "The run was not running.")


def _resume(run_dir: str, epochs: int) -> None:
    if ui.demo_on():
        st.session_state[Keys.TRAIN_ERROR] = TRAINING_OFF
        return
    try:
        resume_run(run_dir, epochs)
    except LaunchError as exc:
        st.session_state[Keys.TRAIN_ERROR] = str(exc)
        return
    st.session_state[Keys.TRAIN_NOTICE] = f"Resumed {Path(run_dir).name}"


def _open_typed_run() -> None:
    raw = (st.session_state.get(Keys.OPEN_RUN_PATH) or "").strip()
    p = Path(raw).expanduser()
    if not raw:
        return
    refusal = ui.demo().path_refusal(raw, "run directory")  # before looking at the path: says nothing about it
    if refusal:
        st.session_state[Keys.TRAIN_ERROR] = refusal
    elif not p.is_dir():  # the messages echo what was typed, never the server's expanded home directory
        st.session_state[Keys.TRAIN_ERROR] = f"{fmt.plain(raw, links_only=True)}: no such directory"
    elif not any((p / f).is_file() for f in ("status.json", "metrics.jsonl", "config.json")):
        st.session_state[Keys.TRAIN_ERROR] = (f"{fmt.plain(raw, links_only=True)}: not a run directory (no status.json, "
                                              "config.json or metrics.jsonl)")
    else:
        _open_run(str(p.resolve()))


def _use_checkpoint(path: str) -> None:
    st.session_state[SidebarKeys.PENDING_CHECKPOINT] = path


def _pick_from_table() -> None:
    sel = st.session_state.get(Keys.RUNS_TABLE, {}).get("selection", {}).get("rows", [])
    rows = st.session_state.get(Keys.RUNS_TABLE_PATHS, [])
    if sel and sel[0] < len(rows):
        _open_run(rows[sel[0]])


# --------------------------------------------------------------------------- messages
for key, show in (("train_error", st.error), ("train_notice", st.toast)):
    message = st.session_state.pop(key, None)
    if message:
        show(message)

rows = ui.run_rows()
active = [r for r in rows if r["state"] in ACTIVE_STATES]

# --------------------------------------------------------------------------- new run
if not DEMO:
    new_run(bool(rows), _request_start)

pending = st.session_state.get(Keys.PENDING_CONFIG)
if pending and not DEMO:
    with st.container(border=True):
        names = ", ".join(r["run"] for r in active) or "another run"
        st.warning(f"**{len(active) or 1} run(s) already active ({names}).** Two runs share this machine's "
                   "CPU cores and both slow down. Start another anyway?", icon=":material/warning:")
        b1, b2, _ = st.columns([1, 1, 4])
        b1.button("Start anyway", type="primary", on_click=_launch, args=(pending,), key=Keys.CONFIRM_START)
        b2.button("Cancel", on_click=lambda: st.session_state.pop(Keys.PENDING_CONFIG, None), key=Keys.CANCEL_START)

# --------------------------------------------------------------------------- run view
run_paths = [r["path"] for r in rows] + [p for p in st.session_state.get(Keys.EXTRA_RUNS, [])
                                         if p not in {r["path"] for r in rows}]
labels = {r["path"]: r["run"] for r in rows}
if st.session_state.get(Keys.TRAIN_RUN) not in run_paths:
    st.session_state[Keys.TRAIN_RUN] = (active[0]["path"] if active else run_paths[0]) if run_paths else None

t1, t2 = st.columns([4, 1.3], vertical_alignment="bottom")
t1.subheader("Run")
h1, h2, h3, h4, h5 = st.columns([2, 1.3, 1.1, 1.1, 0.9], vertical_alignment="bottom")
if run_paths:
    h1.selectbox("Run", run_paths, key=Keys.TRAIN_RUN, format_func=lambda p: labels.get(p, p))
    h2.slider("Loss smoothing", 0.0, 0.99, 0.6, 0.01, key=Keys.SMOOTHING,
              help="TensorBoard-style exponential moving average of the step loss.")
    h3.selectbox("Steps shown", STEP_WINDOWS, key=Keys.STEP_WINDOW,
                 format_func=lambda n: f"last {n:,}" if n else "all",
                 help="Follow the latest steps of the loss and learning-rate charts; the y axis fits them.")
    h4.toggle("Log loss", key=Keys.LOG_LOSS, help="Both loss charts on a logarithmic axis.")
    h5.toggle("Pause", key=Keys.PAUSE_LIVE, help="Stop redrawing the charts every second, so that you can zoom, pan and "
              "hover over them. The run keeps training; switch off to catch up.")
with t2.popover("Open a run…", icon=":material/folder_open:", width="stretch"):
    st.text_input("Path of a run directory", key=Keys.OPEN_RUN_PATH,
                  help="Any run directory, e.g. one trained on another machine or under torchrun on a shared disk.")
    st.button("Open", on_click=_open_typed_run, key=Keys.OPEN_RUN_BUTTON)

run_dir = st.session_state.get(Keys.TRAIN_RUN)
if not run_dir:
    st.info("No runs on this server." if DEMO else "No runs yet. Start one above; its curves appear here as it "
            "trains.", icon=":material/info:")
    st.stop()

smoothing = st.session_state.get(Keys.SMOOTHING, 0.6)
last_steps = st.session_state.get(Keys.STEP_WINDOW, 0)
paused = st.session_state.get(Keys.PAUSE_LIVE, False)
started_active = run_state(run_dir).get("state") in ACTIVE_STATES


def _metrics(status: dict, curves, prog: dict) -> None:
    """The run's five figures: best (or, for a run scored on test, how many epochs) and last accuracy, the
    smoothed loss, the speed and the training time."""
    on_test = curves.scored_on == "test"  # trained on every training image: scored on test, nothing selected
    finite_val = [v for v in curves.scored("acc") if v is not None and v == v]
    best = status.get("best_val_acc") if status.get("best_val_acc") is not None else max(finite_val, default=None)
    last_val = finite_val[-1] if finite_val else None
    change = 100 * (finite_val[-1] - finite_val[-2]) if len(finite_val) > 1 else None
    m = st.columns(5)
    if on_test:
        m[0].metric("Epochs scored on test", f"{len(finite_val)}", help="This run trains on every training image "
                    "(validation size 0), so it scores each epoch on the test split and keeps its last epoch: "
                    "nothing is selected on the test split, and there is no best epoch.")
    else:
        m[0].metric("Best val accuracy", fmt.pct(best), help="Validation split, recorded in training, best epoch so "
                    "far.")
    split_name = "test" if on_test else "val"
    m[1].metric(f"Last {split_name} accuracy", fmt.pct(last_val), help=f"{split_words(split_name).capitalize()} "
                "split, the last completed epoch; the change is in percentage points against the epoch before (not "
                "tested against noise, so not coloured).",
                delta=f"{change:+.2f} pts" if change else None, delta_color="off", delta_arrow="off")
    smoothing = st.session_state.get(Keys.SMOOTHING, 0.6)
    smoothed = last_smoothed(curves.step_loss, smoothing)
    m[2].metric("Loss (smoothed)", f"{smoothed:.4f}" if smoothed is not None else "–",
                help=f"Where the smoothed training-loss line ends (smoothing {smoothing:g}).")
    m[3].metric("Images/s", f"{prog['images_per_s']:,.0f}" if prog["images_per_s"] else "–",
                help="Training images per second, over the latest steps.")
    m[4].metric("Training time", format_duration(status.get("elapsed_s")),
                help="Time spent in the training loop (validation excluded), as the checkpoint records it.")


def _charts(curves, state: str) -> None:
    """Step loss and learning rate, loss and accuracy per epoch, and a sentence per resume."""
    log_loss = st.session_state.get(Keys.LOG_LOSS, False)
    smoothing = st.session_state.get(Keys.SMOOTHING, 0.6)
    g1, g2 = st.columns(2)
    g1.plotly_chart(step_loss_figure(curves, smoothing, height=290, last_steps=last_steps, log_y=log_loss),
                    key=Keys.LIVE_STEP_LOSS)
    g2.plotly_chart(lr_figure(curves, height=290, last_steps=last_steps), key=Keys.LIVE_LR)
    g3, g4 = st.columns(2)
    g3.plotly_chart(epoch_figure(curves, "loss", height=290, log_y=log_loss), key=Keys.LIVE_EPOCH_LOSS)
    g4.plotly_chart(epoch_figure(curves, "acc", height=290), key=Keys.LIVE_EPOCH_ACC)
    for note in resume_notes(curves):
        st.caption(f":material/restart_alt: {note}")
    st.caption(f"{len(curves.step)} step records · {len(curves.epoch)} epochs logged · "
               f"updated {dt.datetime.now():%H:%M:%S}" + (" · paused" if state in ACTIVE_STATES and paused else
                                                          " · live" if state in ACTIVE_STATES else ""))


def _actions(run_dir: str, state: str, config: dict) -> None:
    """Stop an active run; resume a stopped one (to a new total of epochs, checked as ``senet train`` checks it);
    open its best.pt in the model card."""
    with st.container(horizontal=True, vertical_alignment="bottom"):
        if DEMO:
            pass  # read-only: no Stop, no Resume
        elif state in ACTIVE_STATES:
            st.button("Stop", icon=":material/stop:", on_click=_stop, args=(run_dir,), key=Keys.STOP_RUN)
        elif can_resume(run_dir):
            total = int(config.get("epochs") or 1)  # the run's total: a resume with more epochs records it
            more = st.number_input("Epochs in total", value=total, step=1, key=f"resume_{run_dir}_{total}",
                                   width=160, help="Resume trains up to this many epochs in all; another total "
                                   "than the run's re-stretches its learning-rate schedule from where it stopped.")
            problem = field_problems({"epochs": int(more)}).get("epochs")
            if problem:
                st.caption(f":red[:material/error: {problem}]")
            if st.button("Resume", icon=":material/play_arrow:", key=Keys.RESUME_RUN, disabled=bool(problem)):
                _resume(run_dir, int(more))
                st.rerun(scope="app")
        best_pt = Path(run_dir) / "best.pt"
        if best_pt.is_file() and st.button("Open best.pt in the model card", icon=":material/visibility:",
                                           key=Keys.USE_BEST):
            _use_checkpoint(str(best_pt))
            hand_over("home.py", checkpoint=str(best_pt))


@st.fragment(run_every=1.0 if started_active and not paused else None)
def live_panel(run_dir: str) -> None:
    status = run_state(run_dir)
    state = status.get("state", "unknown")
    tails = st.session_state.setdefault(Keys.METRIC_TAILS, {})
    tail = tails.setdefault(run_dir, MetricsTail(Path(run_dir) / "metrics.jsonl"))
    curves = curves_from_records(tail.read())
    try:
        config = read_config(run_dir)
    except RecordError as exc:  # a damaged config.json: this run's one line, the page goes on
        config = {}
        st.error(str(exc), icon=":material/error:")
    prog = progress(status, curves)

    with st.container(horizontal=True, vertical_alignment="center"):
        st.badge(state, color=STATE_COLOR.get(state, "gray"), icon=":material/circle:")
        st.markdown(f"**{Path(run_dir).name}** · {config.get('model', '?')} · recipe {config.get('recipe', '?')} "
                    f"· data `{config.get('data', '?')}`")
    if state == "failed":
        st.error(f"The run failed: {status.get('error') or 'no reason recorded'}", icon=":material/error:")
    elif state == "unknown" and status.get("error"):
        st.error(f"This run's files cannot be read: {status['error']}", icon=":material/error:")
    if curves.points or state == "running":
        st.progress(prog["fraction"], text=prog["text"] or state)
        _metrics(status, curves, prog)
        _charts(curves, state)
    elif state == "starting":
        st.caption(":material/hourglass_top: The training process is starting (importing, loading the data); its "
                   "charts appear with the first logged step.")
    elif state != "failed":
        st.caption("This run recorded no steps yet.")
    _actions(run_dir, state, config)
    gates_forming(run_dir)
    with st.expander("Log", icon=":material/terminal:", expanded=state == "failed" and not curves.points):
        st.code(log_tail(run_dir, 30) or "(no train.log: the run was not launched from this dashboard)",
                language=None)
    if started_active and state not in ACTIVE_STATES:
        st.rerun(scope="app")  # the run ended: redraw the page once and stop polling


@st.cache_data(max_entries=8, show_spinner=False)
def _gate_history(run_dir: str, stamp: float):
    """The run's gate history, read again only when a new epoch's file arrives (``stamp``)."""
    return read_gate_history(run_dir)


def gates_forming(run_dir: str) -> None:
    """The probe images' gates epoch by epoch: class means of one block, and class specificity by depth."""
    files = list((Path(run_dir) / "gates").glob("epoch-*.pt"))
    try:
        history = _gate_history(run_dir, max((f.stat().st_mtime for f in files), default=0.0)) if files else None
    except RecordError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    if history is None or not history.epochs:
        return
    with st.expander(f"Gates forming: {len(history.labels)} probe images, {len(history.epochs)} epochs",
                     icon=":material/animation:"):
        c1, c2 = st.columns([1, 2])
        block = c1.selectbox("SE block", history.blocks, index=len(history.blocks) - 1, key=Keys.FORMING_BLOCK)
        epoch = (c2.select_slider("After epoch", history.epochs, value=history.epochs[-1], key=Keys.FORMING_EPOCH)
                 if len(history.epochs) > 1 else history.epochs[0])
        order = np.argsort(-history.gates[history.epochs[-1]][block].mean(axis=0), kind="stable")
        g1, g2 = st.columns([3, 2])
        g1.plotly_chart(forming_heatmap_figure(history.class_means(epoch, block), history.classes, order, block,
                                               epoch), key=Keys.FORMING_HEATMAP)
        g2.plotly_chart(specificity_by_epoch_figure(history.epochs, [history.specificity(e) for e in history.epochs]),
                        key=Keys.FORMING_SPECIFICITY)
        st.caption("The same probe images (a fixed, class-stratified sample of the validation split) pass through the "
                   "model after every epoch. Early blocks tend to stay alike for all classes while late blocks "
                   "become class-specific (the SENet paper's Fig. 6); the right chart follows that per block.")


live_panel(run_dir)

# --------------------------------------------------------------------------- past runs
st.subheader("Past runs")


@st.fragment(run_every=5.0 if active else None)
def past_runs() -> None:
    rows = ui.run_rows()
    if not rows:
        st.caption("None yet.")
        return
    table, acc_column = runs_table(rows)
    st.session_state[Keys.RUNS_TABLE_PATHS] = [r["path"] for r in rows]
    st.dataframe(table, hide_index=True, width="stretch", key=Keys.RUNS_TABLE, on_select=_pick_from_table,
                 selection_mode="single-row",
                 column_config={acc_column: st.column_config.ProgressColumn(acc_column, format="%.2f%%", min_value=0,
                                                                            max_value=100, help=ACC_HELP[acc_column]),
                                "epochs": st.column_config.TextColumn("epochs", help="epochs done / epochs planned"),
                                "trained for": st.column_config.TextColumn(
                                    "trained for", help="time in the training loop (the epochs' scoring not included)")})
    st.caption("Newest first. Select a row to open that run above.")


past_runs()
