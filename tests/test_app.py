"""The dashboard, page by page, through Streamlit's AppTest on synthetic data and test-made checkpoints."""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import ROOT, app_environment, make_folder_dataset, no_exceptions, open_app, texts
from senet.checkpoint import Checkpoint

CLASSES = ("blue", "green", "red")  # the folder dataset's classes, in its (sorted) order
PAGES = ("senet_dashboard/views/home.py", "senet_dashboard/views/train.py", "senet_dashboard/views/excitation.py", "senet_dashboard/views/confusion.py", "senet_dashboard/views/compare.py")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Checkpoints (SE, plain twin, a corrupt file), a tiny folder dataset, and the dashboard's env vars."""
    from dataclasses import asdict

    from senet import create_model, save_checkpoint
    from senet.training import make_config

    tmp = tmp_path_factory.mktemp("app")
    data = make_folder_dataset(tmp / "data", per_class=20, test_split=True)
    ck = tmp / "checkpoints"
    ck.mkdir()
    torch.manual_seed(0)
    history = [{"epoch": 1, "train_loss": 1.2, "train_acc": 0.3, "val_loss": 1.1, "val_acc": 0.4, "lr": 0.1},
               {"epoch": 2, "train_loss": 0.9, "train_acc": 0.6, "val_loss": 0.8, "val_acc": 0.5, "lr": 0.05}]
    twin_config = {k: v for k, v in asdict(make_config("se_resnet20", "fast", data=f"folder:{data}", epochs=2)).items()
                   if k != "model"}  # the SE model and its plain twin trained alike: Compare pairs them
    save_checkpoint(ck / "se_resnet20.pt", create_model("se_resnet20", num_classes=3), model_name="se_resnet20",
                    model_options={"num_classes": 3, "reduction": 16}, classes=CLASSES, val_acc=0.5, history=history,
                    recipe="fast", epochs=2, config=dict(twin_config, model="se_resnet20"))
    save_checkpoint(ck / "resnet20.pt", create_model("resnet20", num_classes=3), model_name="resnet20",
                    model_options={"num_classes": 3}, classes=CLASSES, val_acc=0.45, history=history,
                    config=dict(twin_config, model="resnet20"))
    (ck / "broken.pt").write_bytes(b"this is not a checkpoint")
    with app_environment(ck, tmp / "runs", f"folder:{data}", tmp / "cache"):
        try:
            yield {"tmp": tmp, "data": data, "checkpoints": ck, "runs": tmp / "runs"}
        finally:
            stop_leftover_runs(tmp / "runs")


def stop_leftover_runs(root: Path) -> None:
    """Stop any training process a failed test left running."""
    from senet_dashboard.launcher import active_runs, stop_run

    for row in active_runs(root):
        stop_run(row["path"])


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


# --------------------------------------------------------------------------- every page
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exceptions(env, page):
    at = open_app(page)
    no_exceptions(at)
    assert at.title, f"{page}: expected a page title"
    assert at.sidebar.selectbox(key="checkpoint").value == str(env["checkpoints"] / "se_resnet20.pt"), \
        "expected the SE checkpoint selected by default (shipped names first)"


def test_model_card_shows_params_se_params_and_formula(env):
    from senet import create_model, model_info

    at = open_app("senet_dashboard/views/home.py")
    no_exceptions(at)
    info = model_info(create_model("se_resnet20", num_classes=3))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"] == f"{info['params']:,}"
    assert metrics["SE parameters"] == "2,016", "SE-ResNet-20 at r=16 adds 2,016 parameters (the seed's formula)"
    formula = " ".join(texts(at, "latex"))
    assert r"\frac{2}{16}" in formula and "3\\cdot16^2" in formula and "2{,}016" in formula, formula
    assert metrics["Val accuracy · recorded in training"] == "50.00%"
    assert len(at.get("plotly_chart")) == 3, "expected loss, accuracy and learning-rate curves from the history"


def test_shipped_se_airnet_is_the_default_checkpoint(env, tmp_path, monkeypatch):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    for name in ("airnet.pt", "se_airnet.pt", "se_resnet20.pt"):
        shutil.copy(env["checkpoints"] / "se_resnet20.pt", ck / name)
    monkeypatch.setenv("SENET_CHECKPOINTS", str(ck))
    at = open_app()
    assert at.sidebar.selectbox(key="checkpoint").value == str(ck / "se_airnet.pt")


def test_model_card_says_where_a_figure_measured_after_training_came_from(env, tmp_path, monkeypatch):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    shutil.copy(ROOT / "checkpoints" / "airnet.pt", ck / "airnet.pt")  # its flip-TTA figure came from export
    monkeypatch.setenv("SENET_CHECKPOINTS", str(ck))
    at = open_app("senet_dashboard/views/home.py")
    no_exceptions(at)
    accuracy = next(m for m in at.metric if m.label == "Val accuracy · recorded in training")
    assert "measured after training" in accuracy.help
    table = at.dataframe[0].value
    shown = dict(zip(table["setting"], table["value"]))
    assert "measured after training" in shown["val_acc_tta_source"] and shown["weights_dtype"] == "float16"
    assert shown["hardware"] == "NVIDIA H200"


def test_corrupt_checkpoint_is_an_error_for_that_entry_only(env):
    at = open_app("senet_dashboard/views/home.py")
    at.sidebar.selectbox(key="checkpoint").set_value(str(env["checkpoints"] / "broken.pt")).run()
    no_exceptions(at)
    errors = texts(at, "error")
    assert any("broken.pt" in e and "\n" not in e for e in errors), f"expected a one-line error naming broken.pt: {errors}"
    at.sidebar.selectbox(key="checkpoint").set_value(str(env["checkpoints"] / "resnet20.pt")).run()
    no_exceptions(at)
    assert not at.error, f"the healthy checkpoint should load without errors: {texts(at, 'error')}"
    assert "Model card · resnet20" in texts(at, "subheader")


# --------------------------------------------------------------------------- train
def _wait(at: AppTest, done, timeout: float = 240, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        no_exceptions(at)
        if done(at):
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}; page said: {texts(at, 'markdown')[-5:]} "
                         f"{texts(at, 'error')} {texts(at, 'caption')[-3:]}")


def _state(at: AppTest) -> str | None:
    """The run state shown in the live panel's badge (``:green-badge[:material/circle: running]``)."""
    for m in texts(at, "markdown"):
        if "-badge[:material/circle: " in m:
            return m.split(":material/circle: ", 1)[1].rstrip("]")
    return None


def _fill_new_run(at: AppTest, epochs: int) -> None:
    at.selectbox(key="new_family").set_value("resnet20").run()
    tag = "se_resnet20_fast"
    at.number_input(key=f"new_epochs_{tag}").set_value(epochs)
    at.number_input(key=f"new_batch_size_{tag}").set_value(16)
    at.number_input(key=f"new_log_every_{tag}").set_value(1).run()  # the page checks the values: Start is on
    next(b for b in at.button if b.label == "Start training").click().run()


def _step_records(at: AppTest) -> int:
    caption = next((c for c in texts(at, "caption") if "step records" in c), "0 step records")
    return int(caption.split(" step records")[0].split()[-1])


def test_train_page_starts_a_run_in_its_own_process_and_shows_its_metrics(env):
    at = open_app("senet_dashboard/views/train.py")
    _fill_new_run(at, epochs=2)
    no_exceptions(at)
    runs = [d for d in env["runs"].iterdir() if d.is_dir()]
    assert len(runs) == 1, f"expected one new run directory, got {runs}"
    launch = json.loads((runs[0] / "launch.json").read_text())
    assert launch["pid"] != os.getpid(), "training must run in a separate process"
    assert "senet" in launch["command"] and "train" in launch["command"]
    _wait(at, lambda a: _state(a) == "finished", what="the run to finish")
    assert _step_records(at) >= 6, "2 epochs of 3 steps, logged every step"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Best val accuracy"].endswith("%"), metrics
    charts = {c.key for c in at.get("plotly_chart")}
    assert {"live_step_loss", "live_lr", "live_epoch_loss", "live_epoch_acc"} <= charts, \
        "expected step loss, learning rate, loss and accuracy charts"
    status = json.loads((runs[0] / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 6
    table = at.dataframe[0].value
    assert list(table["state"]) == ["finished"] and list(table["run"]) == [runs[0].name]
    at.button(key="use_best").click().run()
    no_exceptions(at)
    assert at.sidebar.selectbox(key="checkpoint").value == str(runs[0] / "best.pt")
    assert "Model card · se_resnet20" in texts(at, "subheader"), "the run's best.pt opens in the model card"


def test_new_run_can_start_from_a_checkpoints_recorded_recipe(env, tmp_path, monkeypatch):
    """Start from: the form takes every setting of a checkpoint's config, and what is launched keeps them."""
    from senet import create_model, save_checkpoint
    from senet.training import make_config

    from dataclasses import asdict

    recorded = make_config("se_resnet20", "fast", data=f"folder:{env['data']}", epochs=1, width=2, crop_pad=4,
                           cutout=6, se_weight_decay=0.0, label_smoothing=0.1, batch_size=16, lr=0.05,
                           schedule="cosine", train_limit=30, reduction=8, log_every=1, seed=5, val_size=6)
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    save_checkpoint(ck / "recipe.pt", create_model("se_resnet20", num_classes=3, width=2, reduction=8),
                    model_name="se_resnet20", model_options={"num_classes": 3, "width": 2, "reduction": 8},
                    classes=CLASSES, val_acc=0.5, config=asdict(recorded))
    monkeypatch.setenv("SENET_CHECKPOINTS", str(ck))
    at = open_app("senet_dashboard/views/train.py")
    at.selectbox(key="new_from").set_value(str(ck / "recipe.pt")).run()
    no_exceptions(at)
    assert (at.selectbox(key="new_family").value, at.toggle(key="new_se").value, at.number_input(key="new_r").value,
            at.selectbox(key="new_recipe").value) == ("resnet20", True, 8, "fast")
    shown = {n.label: n.value for n in at.number_input}
    assert (shown["Width ×"], shown["Crop padding"], shown["Cutout"], shown["SE weight decay"],
            shown["Label smoothing"], shown["Epochs"], shown["Batch size"]) == (2, 4, 6, 0.0, 0.1, 1, 16), shown
    before = {d.name for d in env["runs"].iterdir()} if env["runs"].is_dir() else set()
    next(b for b in at.button if b.label == "Start training").click().run()
    no_exceptions(at)
    new = [d for d in env["runs"].iterdir() if d.name not in before]
    assert len(new) == 1, "one run started"
    _wait(at, lambda a: (new[0] / "config.json").is_file(), what="the run's config.json")
    launched = json.loads((new[0] / "config.json").read_text())
    for field in ("width", "crop_pad", "cutout", "se_weight_decay", "label_smoothing", "schedule", "train_limit",
                  "lr", "batch_size", "reduction", "seed", "val_size", "log_every"):
        assert launched[field] == getattr(recorded, field), f"{field}: launched {launched[field]!r}"
    _wait(at, lambda a: _state(a) in ("finished", "failed", "stopped"), what="the short run to end")
    assert _state(at) == "finished", texts(at, "error")


def test_second_run_asks_for_confirmation_then_stop_saves_last_checkpoint(env):
    before = {d.name for d in env["runs"].iterdir()} if env["runs"].is_dir() else set()
    at = open_app("senet_dashboard/views/train.py")
    _fill_new_run(at, epochs=200)
    new = [d for d in env["runs"].iterdir() if d.name not in before]
    assert len(new) == 1
    run = new[0]
    _wait(at, lambda a: _state(a) in ("running", "starting"), what="the first run to be active")
    _fill_new_run(at, epochs=1)
    warnings = texts(at, "warning")
    assert any("already active" in w for w in warnings), f"expected a confirmation prompt, got {warnings}"
    assert {d.name for d in env["runs"].iterdir()} == before | {run.name}, "no second run before confirmation"
    next(b for b in at.button if b.label == "Cancel").click().run()
    assert not any("already active" in w for w in texts(at, "warning"))
    _wait(at, lambda a: _step_records(a) > 0, what="the first step record")
    at.button(key="stop_run").click().run()
    _wait(at, lambda a: _state(a) == "stopped", what="the run to stop")
    assert (run / "last.pt").is_file(), "a stopped run saves last.pt"
    assert at.button(key="resume_run"), "a stopped run offers Resume"


def _synthetic_run(run: Path, steps: int, status: dict) -> None:
    """A run directory written by hand: ``steps`` step records, one epoch record, a config and ``status``."""
    from senet.training.runs import write_json_atomic

    run.mkdir()
    records = [{"type": "step", "step": s, "epoch": s / 4, "loss": 2.0 - s / 10, "lr": 0.1, "images_per_s": 100.0,
                "time": 0.0} for s in range(1, steps + 1)]
    records.append({"type": "epoch", "step": min(steps, 8), "epoch": 1, "train_loss": 1.5, "train_acc": 0.4,
                    "val_loss": 1.4, "val_acc": 0.45, "lr": 0.1, "elapsed_s": 3.0})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_json_atomic(run / "config.json", {"model": "se_resnet20", "recipe": "fast", "epochs": 2})
    write_json_atomic(run / "status.json", status)


def test_opening_a_run_directory_by_path_shows_its_curves(env, tmp_path):
    run = tmp_path / "elsewhere-run"
    _synthetic_run(run, 8, {"state": "running", "pid": 2 ** 22 + 12345, "host": os.uname().nodename, "step": 8,
                            "total_steps": 16, "epochs": 2, "steps_per_epoch": 8})
    at = open_app("senet_dashboard/views/train.py")
    at.text_input(key="open_run_path").set_value(str(run))
    at.button(key="open_run_button").click().run()
    no_exceptions(at)
    assert at.selectbox(key="train_run").value == str(run.resolve())
    assert _step_records(at) == 8
    assert _state(at) == "failed", "a run whose process is gone is shown as failed, not running"
    assert any("process died" in e for e in texts(at, "error"))

    def steps_drawn() -> list[int]:
        return list(json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["x"])

    assert steps_drawn() == list(range(1, 9))
    at.selectbox(key="step_window").set_value(200).run()
    assert steps_drawn() == list(range(1, 9)), "a window wider than the run shows all of it"
    records = [{"type": "step", "step": s, "epoch": s / 4, "loss": 1.0, "lr": 0.1, "images_per_s": 100.0, "time": 0.0}
               for s in range(9, 400)]
    with (run / "metrics.jsonl").open("a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))
    at.run()
    assert steps_drawn() == list(range(200, 400)), "the chart follows the last 200 steps"
    at.toggle(key="log_loss").set_value(True).run()
    layouts = [json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")]
    assert layouts[0]["yaxis"]["type"] == "log" and layouts[2]["yaxis"]["type"] == "log", "both loss charts"
    assert layouts[3]["yaxis"].get("type") != "log", "accuracy stays linear"


# --------------------------------------------------------------------------- excitation
def test_excitation_page_shows_gates_profiles_and_interventions(env):
    from senet import load_checkpoint
    from senet.models import gate_overrides, se_blocks
    from senet.data import normalize
    from senet.analysis import predict
    from senet.data import load_split
    from senet.analysis.profiles import class_profiles

    at = open_app("senet_dashboard/views/excitation.py")
    no_exceptions(at)
    assert len(at.get("plotly_chart")) == 1, "the default view: the gate heatmap (the top 5 is an SVG), nothing else"
    assert at.segmented_control(key="exc_view").value == "This image"
    model, meta = load_checkpoint(env["checkpoints"] / "se_resnet20.pt")
    blocks = list(se_blocks(model))
    val = load_split(f"folder:{env['data']}", "val", env["tmp"] / "cache")
    constant = class_profiles(Checkpoint.from_meta(model, meta), val, per_class=50).constant_blocks()
    show_view(at, "Classes")
    flagged = [w.value for w in at.warning if "no squeeze-and-excitation" in w.value]
    if constant:
        assert len(flagged) == 1 and all(b in flagged[0] for b in constant), (constant, flagged)
    else:
        assert not flagged, flagged
    show_view(at, "This image")
    at.multiselect(key="exc_off").set_value(blocks).run()
    no_exceptions(at)
    x = normalize(val.images[val.labels == 0][:1], meta["mean"], meta["std"])
    base = predict(model, x)[0]
    with gate_overrides(model, {b: 1.0 for b in blocks}):
        after = predict(model, x)[0]
    pred = int(base.argmax())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Prediction"] == CLASSES[int(after.argmax())]
    assert metrics[f"p({CLASSES[pred]}), as trained {base[pred]:.1%}"] == f"{after[pred]:.1%}", \
        "the page's intervention must match senet's"


def plotly_2d(value) -> np.ndarray:
    """A 2-D array from a chart's JSON spec: nested lists, a typed array with a shape, or rows of typed arrays."""
    if isinstance(value, dict):
        flat = plotly_array(value)
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.array([plotly_array(row) for row in value], dtype=float)


def show_view(at: AppTest, label: str) -> AppTest:
    """Switch the Excitation explorer to another view."""
    at.segmented_control(key="exc_view").set_value(label).run()
    no_exceptions(at)
    return at


def plotly_array(value) -> np.ndarray:
    """A trace's array from a chart's JSON spec: a plain list, or Plotly's typed array {dtype, bdata}."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value)


def test_excitation_channel_order_switches_between_sorted_and_index(env):
    def heatmap(at: AppTest) -> dict:
        trace = next(json.loads(c.proto.spec)["data"][0] for c in at.get("plotly_chart")
                     if json.loads(c.proto.spec)["data"][0]["type"] == "heatmap")
        return {"z": plotly_2d(trace["z"]), "channels": plotly_2d(trace["customdata"]).astype(int), "y": trace["y"]}

    at = open_app("senet_dashboard/views/excitation.py")
    no_exceptions(at)
    assert at.segmented_control(key="exc_order").value == "Sorted by gate"
    from senet import load_checkpoint
    from senet.data import load_split
    from senet.analysis.profiles import class_profiles
    model, meta = load_checkpoint(env["checkpoints"] / "se_resnet20.pt")
    val = load_split(f"folder:{env['data']}", "val", env["tmp"] / "cache")
    overall = class_profiles(Checkpoint.from_meta(model, meta), val, per_class=50).overall
    sorted_map = heatmap(at)
    for row, block in enumerate(sorted_map["y"]):
        width = len(overall[block])
        channels = sorted_map["channels"][row][:width]
        assert sorted(channels.tolist()) == list(range(width)), "every channel appears once"
        assert np.all(np.diff(overall[block][channels]) <= 1e-12), "sorted: the all-class mean only falls"
    at.segmented_control(key="exc_order").set_value("Channel index").run()
    no_exceptions(at)
    index_map = heatmap(at)
    for row, block in enumerate(index_map["y"]):
        width = len(overall[block])
        assert index_map["channels"][row][:width].tolist() == list(range(width))
        by_channel = dict(zip(sorted_map["channels"][row][:width].tolist(), sorted_map["z"][row][:width].tolist()))
        assert index_map["z"][row][:width].tolist() == pytest.approx([by_channel[c] for c in range(width)]), \
            "the two orders show the same gates"


def test_clicking_a_gate_cell_shows_the_images_that_open_that_channel(env):
    from senet import load_checkpoint
    from senet.data import load_split
    from senet.analysis.profiles import class_profiles

    at = open_app("senet_dashboard/views/excitation.py")
    no_exceptions(at)
    model, meta = load_checkpoint(env["checkpoints"] / "se_resnet20.pt")
    val = load_split(f"folder:{env['data']}", "val", env["tmp"] / "cache")
    profiles = class_profiles(Checkpoint.from_meta(model, meta), val, per_class=50)
    last = list(profiles.gates)[-1]
    assert at.pills(key="exc_block").value == last, "the last block first"
    show_view(at, "One channel")
    assert at.number_input(key="exc_ch").value == int(profiles.profiles[last].std(axis=0).argmax()), \
        "the most class-specific channel first"
    show_view(at, "This image")
    trace = next(json.loads(c.proto.spec)["data"][0] for c in at.get("plotly_chart")
                 if json.loads(c.proto.spec)["data"][0]["type"] == "heatmap")
    block = trace["y"][1]
    channel = int(plotly_2d(trace["customdata"])[1][2])
    point = {"curve_number": 0, "point_number": [1, 2], "point_index": [1, 2], "x": 2, "y": block, "z": 0.5,
             "customdata": channel}
    at.session_state["exc_heatmap"] = {"selection": {"points": [point], "point_indices": [2], "box": [], "lasso": []}}
    at.run()
    no_exceptions(at)
    show_view(at, "One channel")
    assert (at.pills(key="exc_block").value, at.number_input(key="exc_ch").value) == (block, channel)
    expected = profiles.channel_extremes(block, channel, k=12)
    strips = [c.value for c in at.caption if c.value.startswith("Left to right: ")]
    assert len(strips) == 2, "one strip of the images that open it most, one of those that open it least"
    shown = [float(v.split(" ")[0]) for v in strips[0].removeprefix("Left to right: ").split(" · ")]
    low = [float(v.split(" ")[0]) for v in strips[1].removeprefix("Left to right: ").split(" · ")]
    assert len(shown) == len(expected[0]) and len(low) == len(expected[2])
    assert shown == pytest.approx([round(float(v), 2) for v in expected[1]], abs=0.006), "highest gates first"
    assert shown == sorted(shown, reverse=True)
    assert low == sorted(low) and low[0] <= shown[-1]
    # "Show" puts one of them at the top of the page
    target = int(expected[2][0])
    at.selectbox(key="exc_ch_pick").set_value(target).run()
    at.button(key="exc_ch_show").click().run()
    no_exceptions(at)
    assert any(f"val image #{target} ·" in m for m in texts(at, "markdown")), texts(at, "markdown")


def test_picking_an_unusual_channel_of_this_image_shows_that_channel(env):
    from senet import load_checkpoint
    from senet.data import load_split
    from senet.data import normalize
    from senet.analysis.profiles import class_profiles
    from senet.analysis.explanation import explain

    model, meta = load_checkpoint(env["checkpoints"] / "se_resnet20.pt")
    val = load_split(f"folder:{env['data']}", "val", env["tmp"] / "cache")
    first = int(np.nonzero(val.labels.numpy() == 0)[0][0])  # the page's first image: class 0, index 0
    gates = explain(model, normalize(val.images[first:first + 1], meta["mean"], meta["std"]), list(CLASSES)).gates
    profiles = class_profiles(Checkpoint.from_meta(model, meta), val, per_class=50)
    block = list(profiles.gates)[-1]
    expected = profiles.unusual_channels(block, gates[block], k=6)
    at = show_view(open_app("senet_dashboard/views/excitation.py"), "One channel")
    table = next(d for d in at.dataframe if {"channel", "z"} <= set(d.value.columns))
    assert table.value["channel"].tolist() == [r["channel"] for r in expected]
    at.session_state["exc_unusual"] = {"selection": {"rows": [2], "columns": []}}
    at.run()
    no_exceptions(at)
    assert at.number_input(key="exc_ch").value == expected[2]["channel"]


def test_class_splits_table_lists_the_groups_and_picks_a_groups_strongest_channel(env, tmp_path, monkeypatch):
    """An untrained model's gates hardly depend on the class, so sharpen the last SE block (weights x30): its
    gates then saturate by colour, and some channels split the three colour classes cleanly."""
    from senet import create_model, load_checkpoint, save_checkpoint
    from senet.data import load_split
    from senet.models import se_blocks
    from senet.analysis.profiles import class_profiles

    torch.manual_seed(0)
    model = create_model("se_resnet20", num_classes=3)
    with torch.no_grad():
        for weight in list(se_blocks(model).values())[-1].parameters():
            weight.mul_(30)
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    save_checkpoint(ck / "se_resnet20.pt", model, model_name="se_resnet20",
                    model_options={"num_classes": 3, "reduction": 16}, classes=CLASSES, val_acc=0.5)
    monkeypatch.setenv("SENET_CHECKPOINTS", str(ck))
    model, meta = load_checkpoint(ck / "se_resnet20.pt")
    val = load_split(f"folder:{env['data']}", "val", env["tmp"] / "cache")
    profiles = class_profiles(Checkpoint.from_meta(model, meta), val, per_class=50)
    block = list(profiles.gates)[-1]
    expected = profiles.class_splits(block)
    assert len(expected) >= 2, "precondition: the sharpened block splits the classes in more than one way"

    at = show_view(open_app("senet_dashboard/views/excitation.py"), "One channel")
    table = next(d for d in at.dataframe if "open for" in d.value.columns)
    assert table.value["open for"].tolist() == [", ".join(r["open"]) for r in expected]
    assert table.value["channels"].tolist() == [len(r["channels"]) for r in expected]
    heat = next(json.loads(c.proto.spec)["data"][0] for c in at.get("plotly_chart")
                if "channels, by group" in json.dumps(json.loads(c.proto.spec)["layout"].get("xaxis", {})))
    assert [row[0] for row in heat["customdata"]][:1] == [expected[0]["channels"][0]], "group 1 comes first"
    assert len(heat["customdata"][0]) == sum(len(r["channels"]) for r in expected[:8])
    count = sum(len(r["channels"]) for r in expected)
    assert any(c.startswith(f"{count} of 64 channels split the classes") for c in texts(at, "caption"))
    assert at.number_input(key="exc_ch").value != expected[1]["channels"][0], "precondition: another channel first"
    at.session_state["exc_splits"] = {"selection": {"rows": [1], "columns": []}}
    at.run()
    no_exceptions(at)
    assert at.number_input(key="exc_ch").value == expected[1]["channels"][0]


def test_split_ablation_runs_on_request_and_matches_senet(env):
    from senet import load_checkpoint
    from senet.analysis.ablation import gate_ablation
    from senet.data import load_split

    at = show_view(open_app("senet_dashboard/views/excitation.py"), "Across the split")
    charts_before = len(at.get("plotly_chart"))
    at.button(key="exc_split_run").click().run()
    no_exceptions(at)
    assert not at.error, texts(at, "error")
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert len(at.get("plotly_chart")) == charts_before + 1, "the ablation chart appears once run"
    model, meta = load_checkpoint(env["checkpoints"] / "se_resnet20.pt")
    val = load_split(f"folder:{env['data']}", "val", env["tmp"] / "cache")
    table = gate_ablation(Checkpoint.from_meta(model, meta), val, per_class=100).table()
    off = spec["data"][0]
    assert list(off["x"]) == [r["blocks"] for r in table]
    assert plotly_array(off["y"]).tolist() == pytest.approx([r["off_change_pts"] for r in table])
    at.run()
    assert not at.error, texts(at, "error")
    assert len(at.get("plotly_chart")) == charts_before + 1, "the result stays on the page after a rerun"


@pytest.mark.parametrize("name, make, ok", [
    ("gray.png", lambda: png(Image.new("L", (40, 30), 128)), True),
    ("rgba.png", lambda: png(Image.new("RGBA", (64, 64), (255, 0, 0, 128))), True),
    ("palette.png", lambda: png(Image.new("RGB", (50, 50), (0, 200, 0)).convert("P")), True),
    ("deep.png", lambda: png(Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16))), True),
    ("dot.png", lambda: png(Image.new("RGB", (1, 1), (9, 9, 9))), True),
    ("photo.jpg", lambda: png(Image.new("RGB", (300, 200), (90, 120, 200)), "JPEG"), True),
    ("notes.png", lambda: b"plain text, not an image", False),
    ("cut.png", lambda: png(Image.new("RGB", (64, 64), (1, 2, 3)))[:60], False),
    ("huge.png", lambda: png(Image.new("1", (9000, 5000))), False),
])
def test_uploads_give_a_result_or_one_line_error(env, name, make, ok):
    at = open_app("senet_dashboard/views/excitation.py")
    at.segmented_control(key="exc_mode").set_value("Upload").run()
    at.file_uploader(key="exc_upload").set_value((name, make(), "image/png")).run()
    no_exceptions(at)
    if ok:
        assert not at.error, f"{name}: expected a result, got {texts(at, 'error')}"
        assert "Gates of this image" in texts(at, "subheader")
    else:
        errors = texts(at, "error")
        assert len(errors) == 1 and name in errors[0] and "\n" not in errors[0], errors
        assert "Gates of this image" not in texts(at, "subheader")


def test_pages_without_data_say_how_to_get_it_and_upload_still_works(env, tmp_path, monkeypatch):
    monkeypatch.setenv("SENET_DATA", "cifar10")
    monkeypatch.setenv("SENET_DATA_DIR", str(tmp_path / "empty"))
    for page in ("senet_dashboard/views/excitation.py", "senet_dashboard/views/confusion.py"):
        at = open_app(page)
        no_exceptions(at)
        info = " ".join(texts(at, "info"))
        assert "No data" in info and "folder:PATH" in info and "download" in info.lower(), info
        assert "upload" in info.lower(), "the message must say what still works"
    at = open_app("senet_dashboard/views/excitation.py")
    at.segmented_control(key="exc_mode").set_value("Upload").run()
    at.file_uploader(key="exc_upload").set_value(("x.png", png(Image.new("RGB", (32, 32), (200, 10, 10))),
                                                  "image/png")).run()
    no_exceptions(at)
    assert "Gates of this image" in texts(at, "subheader")


# --------------------------------------------------------------------------- confusion
def test_confusion_selection_shows_that_cells_images(env):
    from senet import evaluate, load_checkpoint
    from senet.data import load_split

    model, meta = load_checkpoint(env["checkpoints"] / "se_resnet20.pt")
    ev = evaluate(Checkpoint.from_meta(model, meta), load_split(f"folder:{env['data']}", "val", env["tmp"] / "cache"))
    cm = ev.confusion
    at = open_app("senet_dashboard/views/confusion.py")
    no_exceptions(at)
    assert {m.label: m.value for m in at.metric}["Accuracy · val · recomputed now"] == f"{ev.accuracy:.2%}"
    shown = (at.selectbox(key="conf_true").value, at.selectbox(key="conf_pred").value)
    cells = [(t, p) for t in range(3) for p in range(3) if cm[t, p] > 0 and (t, p) != shown]
    assert cells, "the test needs a non-empty cell other than the one shown first"
    t, p = cells[0]
    point = {"x": CLASSES[p], "y": CLASSES[t], "customdata": [t, p, int(cm[t, p]), 0.0], "point_index": t * 3 + p}
    at.session_state["confusion_chart"] = {"selection": {"points": [point], "point_indices": [t * 3 + p],
                                                         "box": [], "lasso": []}}
    at.run()
    no_exceptions(at)
    shown = f"**{cm[t, p]}** {CLASSES[t]} image{' was' if cm[t, p] == 1 else 's were'} predicted **{CLASSES[p]}**"
    assert any(m.startswith(shown)
               for m in texts(at, "markdown")), texts(at, "markdown")
    grid = at.image
    assert len(grid) == 1 and len(grid[0].value) == cm[t, p], "expected one picture per image of the cell"
    captions = grid[0].captions
    confidences = [float(c.split("%")[0]) for c in captions]
    assert confidences == sorted(confidences, reverse=True), "most confident first"
    report = at.dataframe[-1].value
    assert list(report["class"]) == list(CLASSES) and report["support"].sum() == ev.n


def test_confusion_explain_opens_that_image_in_the_excitation_explorer(env):
    from senet.data import load_split

    labels = load_split(f"folder:{env['data']}", "val", env["tmp"] / "cache").labels.numpy()
    at = open_app("senet_dashboard/views/confusion.py")
    no_exceptions(at)
    options = at.selectbox(key="conf_explain").options
    assert options, "the cell shown first has images to explain"
    pick = int(at.selectbox(key="conf_explain").options[-1].split()[0].lstrip("#"))
    at.selectbox(key="conf_explain").set_value(pick).run()
    at.button(key="conf_explain_go").click().run()
    no_exceptions(at)
    assert "Gates of this image" in texts(at, "subheader"), "the Excitation explorer is shown"
    assert any(f"val image #{pick} · true class **{CLASSES[labels[pick]]}**" in m for m in texts(at, "markdown"))
    assert at.selectbox(key="exc_class").value == labels[pick]
    assert at.query_params.get("image") == str(pick), "the address bar links to the image shown"


def test_excitation_link_picks_the_image_and_a_bad_link_says_why(env):
    from senet.data import load_split

    labels = load_split(f"folder:{env['data']}", "val", env["tmp"] / "cache").labels.numpy()
    target = len(labels) - 1
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["image"] = str(target)
    at.run()
    at.switch_page("senet_dashboard/views/excitation.py")
    at.query_params["image"] = str(target)
    at.run()
    no_exceptions(at)
    assert any(f"val image #{target} ·" in m for m in texts(at, "markdown")), texts(at, "markdown")
    show_view(at, "Classes")
    at.segmented_control(key="exc_profile_drawing").set_value("Lines (the paper's layout)").run()
    assert at.multiselect(key="exc_profile_classes").value[0] == labels[target], "profiles start at the true class"
    show_view(at, "This image")
    at.number_input(key="exc_idx").set_value(0).run()
    first = int(np.nonzero(labels == labels[target])[0][0])
    assert at.query_params.get("image") == str(first), "choosing another image updates the link"
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)  # a new browser session from a shared link
    at.query_params.update({"split": "test", "image": "2"})
    at.run()
    at.switch_page("senet_dashboard/views/excitation.py")
    at.query_params.update({"split": "test", "image": "2"})
    at.run()
    no_exceptions(at)
    assert at.segmented_control(key="split").value == "test"
    assert any("test image #2 ·" in m for m in texts(at, "markdown")), texts(at, "markdown")
    for bad in ("99999", "-1", "cat"):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()
        at.switch_page("senet_dashboard/views/excitation.py")
        at.query_params["image"] = bad
        at.run()
        no_exceptions(at)
        warnings = [w for w in texts(at, "warning") if "in the address" in w]
        assert len(warnings) == 1 and f"image={bad}" in warnings[0] and "\n" not in warnings[0], warnings
        assert "Gates of this image" in texts(at, "subheader"), "the page still shows an image"


# --------------------------------------------------------------------------- compare
def test_compare_overlays_runs_and_weighs_se_against_plain(env):
    at = open_app("senet_dashboard/views/compare.py")
    no_exceptions(at)
    table = at.dataframe[0].value
    assert set(table["model"]) == {"se_resnet20", "resnet20"}
    se = table[table["model"] == "se_resnet20"].iloc[0]
    plain = table[table["model"] == "resnet20"].iloc[0]
    assert se["params"] - plain["params"] == 2016
    assert se["MACs / image"] > plain["MACs / image"]
    assert (se["r"], plain["r"]) == ("16", "–"), "a plain net has no reduction: a dash, not 'None'"
    assert "CPU ms / image" not in table.columns, "no column of empty cells before latency is measured"
    at.toggle(key="compare_latency").set_value(True).run()
    no_exceptions(at)
    assert (at.dataframe[0].value["CPU ms / image"] > 0).all()


def test_compare_plots_against_training_time_and_log_loss(env):
    def layouts() -> list[dict]:
        return [json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")]

    at = open_app("senet_dashboard/views/compare.py")
    no_exceptions(at)
    at.toggle(key="compare_log").set_value(True).run()
    no_exceptions(at)
    assert layouts()[1]["yaxis"]["type"] == "log", "validation loss on a log axis"
    assert layouts()[0]["yaxis"].get("type") != "log", "accuracy stays linear"
    at.segmented_control(key="compare_x").set_value("training time").run()
    no_exceptions(at)
    first = layouts()[0]
    assert first["xaxis"]["title"]["text"] == "training time (h)"
    # The test checkpoints record no time per epoch: the chart says so rather than plotting nothing silently.
    assert any("recorded training time" in a["text"] for a in first.get("annotations", [])), first


def test_compare_against_training_time_names_each_curves_hardware(env, tmp_path, monkeypatch):
    from senet import create_model, save_checkpoint

    ck = tmp_path / "checkpoints"
    ck.mkdir()
    for name, hardware, seconds in (("se_airnet", "NVIDIA H200", 50.0), ("airnet", "CPU (2 cores, 1 thread)", 900.0)):
        history = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5, "val_loss": 1.0 / e, "val_acc": 0.4 + e / 10,
                    "lr": 0.1, "elapsed_s": seconds * e} for e in (1, 2)]
        save_checkpoint(ck / f"{name}.pt", create_model("resnet20", num_classes=3), model_name="resnet20",
                        model_options={"num_classes": 3}, classes=CLASSES, val_acc=0.6, history=history,
                        hardware=hardware)
    monkeypatch.setenv("SENET_CHECKPOINTS", str(ck))
    at = open_app("senet_dashboard/views/compare.py")
    at.segmented_control(key="compare_x").set_value("training time").run()
    no_exceptions(at)
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    groups = {t["name"]: t["legendgrouptitle"]["text"] for t in traces}  # the legend groups the runs by hardware
    assert groups == {"airnet": "CPU, 1 thread (2 cores)", "se_airnet": "GPU NVIDIA H200"}, groups
    assert len({t["line"]["dash"] for t in traces}) == 2, "one line style per kind of hardware"
    assert any("different hardware" in w for w in texts(at, "warning")), texts(at, "warning")
    assert max(max(t["x"]) for t in traces) == pytest.approx(0.5), "900 s per epoch: the second ends at 0.5 h"
    at.segmented_control(key="compare_x").set_value("epoch").run()
    assert sorted(t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]) == ["airnet",
                                                                                                     "se_airnet"]


def _drawn(widget):
    """What the browser draws for a segmented control or a toggle when it (re)appears: the value the server sends
    with it, else its default. A value the server holds without sending it is invisible, yet the script reads it."""
    p = widget.proto
    if hasattr(p, "raw_values"):  # a segmented control
        return list(p.raw_values)[0] if p.set_value else p.options[list(p.default)[0]].content
    return p.value if p.set_value else p.default


def test_compare_controls_and_charts_agree_after_a_study(env, tmp_path, monkeypatch):
    """The study view does not draw the curve controls; back from it, they show the user's setting and the
    charts are drawn with it (they showed the defaults while the charts kept the setting)."""
    from senet import create_model, save_checkpoint

    ck = tmp_path / "checkpoints"
    ck.mkdir()
    for name in ("a", "b"):
        history = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5, "val_loss": 1.0 / e, "val_acc": 0.5,
                    "lr": 0.1, "elapsed_s": 60.0 * e} for e in (1, 2)]
        save_checkpoint(ck / f"{name}.pt", create_model("resnet20", num_classes=3), model_name="resnet20",
                        model_options={"num_classes": 3}, classes=CLASSES, val_acc=0.5, history=history)
    monkeypatch.setenv("SENET_CHECKPOINTS", str(ck))
    monkeypatch.setenv("SENET_STUDIES", str(tmp_path / "studies"))
    at = open_app("senet_dashboard/views/compare.py")
    at.multiselect(key="compare_keys").set_value([str(ck / "a.pt")]).run()
    at.segmented_control(key="compare_x").set_value("training time").run()
    at.toggle(key="compare_log").set_value(True).run()
    at.segmented_control(key="compare_what").set_value("a study").run()
    no_exceptions(at)
    assert not at.get("plotly_chart") and not at.main.toggle, "the study view draws no curve controls here"
    at.segmented_control(key="compare_what").set_value("runs and checkpoints").run()
    no_exceptions(at)

    x_axis, log = _drawn(at.segmented_control(key="compare_x")), _drawn(at.toggle(key="compare_log"))
    loss = json.loads(at.get("plotly_chart")[1].proto.spec)["layout"]
    assert "Validation loss" in loss["title"]["text"]
    chart = (loss["xaxis"]["title"]["text"], loss["yaxis"].get("type"))
    assert chart == ("training time (h)" if x_axis == "training time" else "epoch", "log" if log else None), \
        f"the controls show {x_axis!r} and log scale {log}; the chart is drawn with {chart}"
    assert (x_axis, log) == ("training time", True), "the controls keep the user's setting"
    assert at.multiselect(key="compare_keys").value == [str(ck / "a.pt")], "the choice of runs is kept too"
    at.run()  # and the next interaction keeps them (the browser holds the values now)
    assert (at.segmented_control(key="compare_x").value, at.toggle(key="compare_log").value) == (x_axis, log)
    assert json.loads(at.get("plotly_chart")[1].proto.spec)["layout"]["yaxis"]["type"] == "log"


def test_compare_pairs_se_with_its_twin_on_the_same_validation_images(env):
    import re

    from senet import evaluate_checkpoint
    from senet.analysis.compare import paired_comparison

    at = open_app("senet_dashboard/views/compare.py")
    at.toggle(key="compare_paired").set_value(True).run()
    no_exceptions(at)
    text = " ".join(m.value for m in at.markdown if "only SE right" in m.value)
    assert text, "the paired test's result should be on the page"
    found = re.search(r"same (\d+) validation images: both right (\d+), \*\*only SE right (\d+)\*\*, "
                      r"\*\*only plain right (\d+)\*\*, both wrong (\d+)", text)
    assert found, text
    spec, cache = f"folder:{env['data']}", str(env["tmp"] / "cache")
    se, plain = (evaluate_checkpoint(env["checkpoints"] / n, spec, "val", cache) for n in ("se_resnet20.pt", "resnet20.pt"))
    t = paired_comparison(se.labels, se.preds, plain.preds)
    assert tuple(int(g) for g in found.groups()) == (t.n, t.both_right, t.only_a, t.only_b, t.both_wrong)
    assert f"McNemar p = {t.p_value:.3g}" in text
    at.toggle(key="compare_paired_tta").set_value(True).run()
    no_exceptions(at)
    assert any("with flip TTA" in m.value for m in at.markdown), "the TTA variant should say so"


def test_a_stopped_run_shows_its_last_figures_in_one_epoch_convention(env, tmp_path):
    """A run stopped after one of two epochs, whose status.json has no best accuracy: the panel shows the best
    accuracy from its epoch records (not None), "1/2 epochs done" in the progress bar, the
    smoothed loss where the smoothed line ends, and one training time."""
    run = tmp_path / "stopped-run"
    _synthetic_run(run, 5, {"state": "stopped", "epoch": 1, "step": 5, "total_steps": 8, "epochs": 2,
                            "steps_per_epoch": 4, "elapsed_s": 75.0, "started_at": 1.0, "updated_at": 500.0})
    at = open_app("senet_dashboard/views/train.py")
    at.text_input(key="open_run_path").set_value(str(run))
    at.button(key="open_run_button").click().run()
    no_exceptions(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Best val accuracy"] == "45.00%", metrics
    assert metrics["Training time"] == "1m 15s", metrics
    from senet_dashboard.curves import smooth
    assert metrics["Loss (smoothed)"] == f"{smooth([2.0 - s / 10 for s in range(1, 6)], 0.6)[-1]:.4f}"
    assert any("1/2 epochs done" in p.proto.text for p in at.get("progress")), "progress text"


def test_compare_refuses_to_pair_an_se_model_with_a_plain_one_trained_otherwise(env, tmp_path, monkeypatch):
    """The walk got '+67.32 pts, McNemar p = 0' for a shipped SE model against a 3-epoch run on 600 images: a
    pair that differs in more than SE is named as such, with the reason, and gets no difference or test."""
    import shutil
    from dataclasses import asdict

    from senet import create_model, save_checkpoint
    from senet.training import make_config

    ck = tmp_path / "checkpoints"
    ck.mkdir()
    shutil.copy(env["checkpoints"] / "se_resnet20.pt", ck / "se_resnet20.pt")
    short = asdict(make_config("resnet20", "fast", data=f"folder:{env['data']}", epochs=3, train_limit=600))
    save_checkpoint(ck / "resnet20.pt", create_model("resnet20", num_classes=3), model_name="resnet20",
                    model_options={"num_classes": 3}, classes=CLASSES, val_acc=0.2, history=[], config=short)
    monkeypatch.setenv("SENET_CHECKPOINTS", str(ck))
    at = open_app("senet_dashboard/views/compare.py")
    at.toggle(key="compare_paired").set_value(True).run()
    no_exceptions(at)
    warnings = [w.value for w in at.warning if "Not compared" in w.value]
    assert warnings and "epochs 2 vs 3" in warnings[0] and "train_limit 0 vs 600" in warnings[0], warnings
    assert not any("only SE right" in m.value for m in at.markdown), "no paired test for a pair that is not twins"
    assert not any(m.label.startswith("Val acc") for m in at.metric), "and no difference shown"


def test_compare_times_twins_in_alternation_and_leaves_noise_uncoloured(env):
    at = open_app("senet_dashboard/views/compare.py")
    at.toggle(key="compare_latency").set_value(True).run()
    no_exceptions(at)
    caption = next(c for c in texts(at, "caption") if c.startswith("CPU latency per image"))
    assert "7 rounds timing SE and plain in alternation" in caption and "median of the 7 per-round ratios" in caption
    from streamlit.proto.Metric_pb2 import Metric

    accuracy = next(m for m in at.metric if m.label == "Val acc (recorded)")
    assert accuracy.proto.delta == "+5.00 pts", "a difference in percentage points"
    assert (accuracy.proto.color, accuracy.proto.direction) == (Metric.GRAY, Metric.NONE), \
        "no green or red arrow for a difference nobody has tested"


# --------------------------------------------------------------------------- the bundled sample, opening a file
def test_with_no_data_anywhere_the_sidebar_uses_the_bundled_sample_and_pages_show_results(env, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.delenv("SENET_DATA", raising=False)
    monkeypatch.setenv("SENET_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("SENET_CHECKPOINTS", str(ROOT / "checkpoints"))
    at = open_app("senet_dashboard/views/excitation.py")
    no_exceptions(at)
    assert at.sidebar.text_input(key="data_spec").value == "sample"
    caption = " ".join(texts(at.sidebar, "caption"))
    assert "bundled sample" in caption and "500 images" in caption and "one button away" in caption, caption
    assert any(b.label == "Download CIFAR-10" for b in at.sidebar.button), "the full download stays one click away"
    assert not at.info, f"no 'No data' message: {texts(at, 'info')}"
    assert "Gates of this image" in texts(at, "subheader")
    assert any(m.startswith("val image #0 · true class **airplane**") for m in texts(at, "markdown"))
    show_view(at, "Classes")
    assert any("over 50 images of the **val** split" in m for m in texts(at, "markdown")), "class profiles drawn"
    at.switch_page("senet_dashboard/views/confusion.py").run()
    no_exceptions(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "500" and metrics["Accuracy · val · recomputed now"].endswith("%"), metrics
    assert at.dataframe[-1].value["support"].tolist() == [50] * 10
    at.sidebar.segmented_control(key="split").set_value("test").run()
    no_exceptions(at)
    info = " ".join(texts(at, "info"))
    assert "only held-out validation images" in info, f"the sample's missing split is named: {info}"


def _open_file(at: AppTest, path: str) -> None:
    at.sidebar.text_input(key="open_checkpoint_path").set_value(path)
    at.sidebar.button(key="open_checkpoint_button").click().run()


def test_opening_a_checkpoint_file_by_path_selects_it(env, tmp_path):
    other = tmp_path / "elsewhere" / "twin.pt"
    other.parent.mkdir()
    shutil.copy(env["checkpoints"] / "resnet20.pt", other)
    at = open_app("senet_dashboard/views/home.py")
    _open_file(at, str(other))
    no_exceptions(at)
    assert at.sidebar.selectbox(key="checkpoint").value == str(other)
    assert not at.error, texts(at, "error")
    assert "Model card · resnet20" in texts(at, "subheader")
    at.run()  # the next interaction keeps it
    assert at.sidebar.selectbox(key="checkpoint").value == str(other)


@pytest.mark.parametrize("make, expected", [
    (lambda d, ck: (d / "cut.pt").write_bytes((ck / "resnet20.pt").read_bytes()[:3000]) and d / "cut.pt",
     "not a readable PyTorch checkpoint"),
    (lambda d, ck: d / "nowhere.pt", "no such file"),
], ids=["corrupt", "missing"])
def test_opening_an_unusable_checkpoint_file_says_why_and_keeps_the_selection(env, tmp_path, make, expected):
    path = make(tmp_path, env["checkpoints"])
    at = open_app("senet_dashboard/views/home.py")
    before = at.sidebar.selectbox(key="checkpoint").value
    _open_file(at, str(path))
    no_exceptions(at)
    errors = texts(at.sidebar, "error")
    assert len(errors) == 1 and str(path) in errors[0] and expected in errors[0] and "\n" not in errors[0], errors
    assert at.sidebar.selectbox(key="checkpoint").value == before, "the selection stays as it was"
    assert str(path) not in at.sidebar.selectbox(key="checkpoint").options


def test_compare_shows_a_study_with_every_seed_and_the_paired_differences(env, tmp_path, monkeypatch):
    from senet.training.study import run_study

    run_study(tmp_path / "studies" / "tiny", ["se_resnet20", "resnet20"], [0, 1], "fast",
              dict(data=f"folder:{env['data']}", data_dir=str(env["tmp"] / "cache"), epochs=1, batch_size=8,
                   val_size=9))
    monkeypatch.setenv("SENET_STUDIES", str(tmp_path / "studies"))
    at = open_app("senet_dashboard/views/compare.py")
    at.segmented_control(key="compare_what").set_value("a study").run()
    no_exceptions(at)
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["se_resnet20", "resnet20"] and list(table["seeds done"]) == [2, 2]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    points = charts[0]["data"]
    assert sum(len(t["y"]) for t in points if t.get("mode") == "markers" and "customdata" in t) == 4, "every seed"
    assert charts[1]["layout"]["title"]["text"].startswith("Seed-paired differences")
    at.text_input(key="open_study_path").set_value(str(tmp_path)).run()
    at.button(key="open_study_button").click().run()
    assert any("not a study directory" in e.value for e in at.error)


def test_the_train_page_shows_gates_forming_epoch_by_epoch(env, tmp_path):
    from senet.training import make_config, train

    config = make_config("se_resnet20", "fast", data=f"folder:{env['data']}", data_dir=str(env["tmp"] / "cache"),
                         epochs=2, batch_size=8, val_size=15, probe_per_class=4)
    (tmp_path / "run").mkdir()
    train(config, tmp_path / "run", progress=False)
    at = open_app("senet_dashboard/views/train.py")
    at.text_input(key="open_run_path").set_value(str(tmp_path / "run"))
    at.button(key="open_run_button").click().run()
    no_exceptions(at)
    assert at.selectbox(key="forming_block").value == "stage3.block3", "the last block first"
    specs = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)
             for c in at.get("plotly_chart")}
    heat = next(v for k, v in specs.items() if k.startswith("stage3.block3 after epoch 2"))
    assert heat["data"][0]["z"]["shape"].replace(" ", "") == "3,64", "3 classes x 64 channels"
    lines = specs["Class specificity by depth, epoch by epoch"]["data"]
    assert len(lines) == 9 and all(list(t["x"]) == [1, 2] for t in lines)
    at.select_slider(key="forming_epoch").set_value(1).run()
    assert any(k.startswith("stage3.block3 after epoch 1") for k in
               (json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")))


def test_compare_recomputes_val_and_test_accuracy_where_the_data_has_a_test_split(env):
    from senet import evaluate_checkpoint

    at = open_app("senet_dashboard/views/compare.py")
    at.toggle(key="compare_recompute").set_value(True).run()
    no_exceptions(at)
    assert at.toggle(key="compare_recompute").label == "Recompute val and test accuracy now"
    table = at.dataframe[0].value
    se = table[table["model"] == "se_resnet20"].iloc[0]
    spec, cache = f"folder:{env['data']}", str(env["tmp"] / "cache")
    for split in ("val", "test"):
        expected = evaluate_checkpoint(env["checkpoints"] / "se_resnet20.pt", spec, split, cache).accuracy
        assert se[f"{split} % (recomputed now)"] == pytest.approx(100 * expected)
    assert "acc % (recorded)" in table.columns and set(table["recorded on"]) == {"val"}, "beside the recorded figure"


def test_the_train_form_has_one_field_per_declared_setting_with_a_label(env):
    from senet.training import form_fields

    at = open_app("senet_dashboard/views/train.py")
    labels = {w.label for kind in ("number_input", "text_input", "selectbox", "toggle") for w in at.get(kind)}
    missing = {f.label for f in form_fields()} - labels
    assert not missing, f"declared for the form but not drawn: {missing}"
    assert "Train limit" in labels, "the trainer's train limit, for quick experiments"


def _chart(at: AppTest, title_part: str) -> dict:
    """The spec of the first chart whose title or a subplot title contains ``title_part``."""
    for c in at.get("plotly_chart"):
        spec = json.loads(c.proto.spec)
        layout = spec.get("layout", {})
        titles = [((layout.get("title") or {}).get("text") or "")]
        titles += [a.get("text", "") for a in layout.get("annotations", [])]
        if any(title_part in t for t in titles):
            return spec
    raise AssertionError(f"no chart titled with {title_part!r}")


def test_inside_one_block_shows_this_images_steps_and_follows_a_channel(env):
    import re

    from senet import load_checkpoint
    from senet.analysis.inside import block_steps, ranked_channels
    from senet.data import load_split, normalize

    at = show_view(open_app("senet_dashboard/views/excitation.py"), "Inside a block")
    model, meta = load_checkpoint(env["checkpoints"] / "se_resnet20.pt")
    val = load_split(f"folder:{env['data']}", "val", env["tmp"] / "cache")
    x = normalize(val.images[val.labels == 0][:1], meta["mean"], meta["std"])  # the page's first image
    assert at.pills(key="exc_block").value == "stage3.block3", "the last block first"
    at.number_input(key="exc_ch").set_value(5).run()
    no_exceptions(at)
    steps = block_steps(model, x, "stage3.block3")
    sentence = next(m for m in texts(at, "markdown") if m.startswith("**Channel 5, step by step:**"))
    z = float(re.search(r"z_5 = mean of u_5 over its 8×8 map = \*\*(-?[\d.]+)\*\*", sentence).group(1))
    s = float(re.search(r"s_5 = σ\(a_5\) = \*\*(-?[\d.]+)\*\*", sentence).group(1))
    assert z == pytest.approx(float(steps.z[5]), abs=6e-4) and s == pytest.approx(float(steps.gate[5]), abs=6e-4)
    gate_row = _chart(at, "4. gate s = σ(a)")["data"][3]
    assert plotly_array(gate_row["y"]) == pytest.approx(steps.gate[plotly_array(gate_row["customdata"])], abs=1e-5)
    at.segmented_control(key="exc_inside_show").set_value("Feature maps u_c and s_c · u_c").run()
    no_exceptions(at)
    before = next(i for i in at.image if any(c.startswith("most excited · ch") for c in i.captions))
    assert len(before.value) == 7 and sum(c.startswith("followed · ch 5") for c in before.captions) == 1, \
        "3 most, 3 least, the followed one"
    after = at.image[list(at.image).index(before) + 1]
    assert [c.split(" · ")[0] for c in after.captions] == [f"gate {steps.gate[int(c.split('ch ')[1])]:.3f}"
                                                           for c in before.captions]
    at.segmented_control(key="exc_inside_show").set_value("Step by step").run()
    at.pills(key="exc_block").set_value("stage1.block1").run()
    no_exceptions(at)
    assert at.number_input(key="exc_ch").value == 5, "another block keeps the channel number it has"
    at.pills(key="exc_block").set_value("stage3.block3").run()
    at.number_input(key="exc_ch").set_value(40).run()
    at.pills(key="exc_block").set_value("stage1.block1").run()  # 16 channels: no channel 40
    no_exceptions(at)
    first = block_steps(model, x, "stage1.block1")
    most = ranked_channels(first.gate, 3, strength=first.z)[0][0]
    assert at.number_input(key="exc_ch").value == most, "a block without that channel starts at its most excited"
    assert any(m.startswith(f"**Channel {most}, step by step:**") for m in texts(at, "markdown"))


def test_images_by_their_gates_map_probe_spread_and_removal(env):
    from senet import load_checkpoint
    from senet.analysis.gate_space import probe_accuracy
    from senet.analysis.profiles import class_profiles
    from senet.data import load_split

    at = show_view(open_app("senet_dashboard/views/excitation.py"), "Map")
    model, meta = load_checkpoint(env["checkpoints"] / "se_resnet20.pt")
    val = load_split(f"folder:{env['data']}", "val", env["tmp"] / "cache")
    profiles = class_profiles(Checkpoint.from_meta(model, meta), val, per_class=50)
    scores = probe_accuracy(profiles)
    probe = _chart(at, "linear probe")["data"][0]
    assert plotly_array(probe["y"]) == pytest.approx([100 * s.accuracy for s in scores])
    gate_map = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                    if "PC 1" in str(json.loads(c.proto.spec)["layout"].get("xaxis", {}).get("title")))
    shown = sorted(int(p) for t in gate_map["data"] if t.get("name") in CLASSES
                   for p in plotly_array(t["customdata"]))
    assert shown == sorted(profiles.positions.tolist()), "every sampled image is a point, named by its position"
    show_view(at, "Spread")
    spread = _chart(at, "each channel's gate over the")
    assert [t["name"] for t in spread["data"]] == ["25th–75th percentile", "all-class mean", "median"], "the line on top"
    assert any("Flags:" in m for m in texts(at, "markdown"))
    at.button(key="exc_spread_ablate").click().run()  # measures the removal cost with the split ablation
    no_exceptions(at)
    assert at.segmented_control(key="exc_view").value == "Across the split", "the ablation runs in its own view"
    assert at.selectbox(key="exc_split_per_class").value == 100
    show_view(at, "Spread")
    verdicts = [m for m in texts(at, "markdown") if m.startswith("**Removable?**")]
    assert len(verdicts) == 1 and "pts on" in verdicts[0], texts(at, "markdown")


def test_a_model_trained_on_every_image_is_labelled_test_on_every_page(env, tmp_path, monkeypatch):
    """`--val-size 0`: the card, Confusion and Compare say test (not val) for its recorded figures, keep no
    best epoch, and the val split says why it has none."""
    from senet import load_checkpoint
    from senet.training import make_config, train

    config = make_config("se_resnet20", "fast", data=f"folder:{env['data']}", data_dir=str(env["tmp"] / "cache"),
                         epochs=1, batch_size=20, val_size=0, log_every=1)
    (tmp_path / "run").mkdir()
    train(config, tmp_path / "run", progress=False)
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    shutil.copy(tmp_path / "run" / "best.pt", ck / "everything.pt")
    shutil.copy(env["checkpoints"] / "resnet20.pt", ck / "resnet20.pt")
    monkeypatch.setenv("SENET_CHECKPOINTS", str(ck))
    _, meta = load_checkpoint(ck / "everything.pt")
    recorded = f"{meta['test_acc']:.2%}"

    at = open_app("senet_dashboard/views/home.py")
    at.sidebar.selectbox(key="checkpoint").set_value(str(ck / "everything.pt")).run()
    no_exceptions(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy · recorded in training"] == recorded and "Val accuracy · recorded in training" \
        not in metrics
    assert metrics["Epoch kept"] == "last (1)" and "Best epoch (val accuracy)" not in metrics
    assert any("**test split**" in t for t in texts(at, "markdown") + texts(at, "caption")), "the data statement"
    assert at.button(key="card_recompute").label == "Recompute test accuracy now"

    at.switch_page("senet_dashboard/views/confusion.py").run()
    assert any("No val split for this model" in t and "**test**" in t for t in texts(at, "info")), texts(at, "info")
    at.session_state["split"] = "test"
    at.run()
    no_exceptions(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Recorded in training · test"] == recorded == metrics["Accuracy · test · recomputed now"]

    at.switch_page("senet_dashboard/views/compare.py").run()
    no_exceptions(at)
    table = at.dataframe[0].value
    assert dict(zip(table["name"], table["recorded on"])) == {"everything": "test", "resnet20": "val"}
    assert [t.label for t in at.tabs][:2] == ["Validation / test accuracy", "Validation / test loss"]

    monkeypatch.setenv("SENET_RUNS", str(tmp_path))  # holds the run directory "run"
    at = open_app("senet_dashboard/views/train.py")
    no_exceptions(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Last test accuracy"] == recorded and metrics["Epochs scored on test"] == "1"
    assert "Best val accuracy" not in metrics


def test_a_bad_split_or_view_in_the_address_says_why_in_one_line_and_keeps_the_page_working(env):
    at = open_app(query={"split": "nonsense\x00", "view": "bogus", "channel": "٣"})  # an Arabic-Indic digit
    no_exceptions(at)
    errors = [e for e in texts(at, "error") if "split=" in e]
    assert len(errors) == 1 and "not a split" in errors[0] and "\n" not in errors[0], texts(at, "error")
    assert "split=nonsense?" in errors[0] and "\x00" not in errors[0], "a control character is not echoed"
    assert at.sidebar.segmented_control(key="split").value == "val", "the split stays as it was"
    assert at.query_params.get("split") == "val", "the address is corrected to what is shown"
    at.switch_page("senet_dashboard/views/excitation.py").run()
    no_exceptions(at)
    assert at.segmented_control(key="exc_view").value == "This image", "an unknown view opens the default one"
    assert "Gates of this image" in texts(at, "subheader")
