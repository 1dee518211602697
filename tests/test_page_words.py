"""Numbers and words outside the explorer and the Train form (issue 28): the latency caption's numbers agree, the
training-time axis says where each run trained, an empty confusion cell in words, no command-line flag inside the
dashboard, one line for a file or address that is not a checkpoint, the JPEG caveat only for the JPEG copy, the
chart toolbar clear of legends and titles, and Compare's table fitting the page."""
from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import app_environment, call_cli, make_folder_dataset, no_exceptions, open_app, texts

CLASSES = ("blue", "green", "red")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An SE checkpoint and its plain twin (trained alike, on a folder without a test part), and the dashboard's
    environment over them."""
    from senet import create_model, save_checkpoint
    from senet.training import make_config

    tmp = tmp_path_factory.mktemp("words")
    data = make_folder_dataset(tmp / "data", per_class=8)
    ck = tmp / "checkpoints"
    ck.mkdir()
    torch.manual_seed(0)
    history = [{"epoch": e, "train_loss": 1.2 / e, "train_acc": 0.3, "val_loss": 1.1 / e, "val_acc": 0.4 + e / 20,
                "lr": 0.1, "elapsed_s": 60.0 * e} for e in (1, 2)]
    twin = {k: v for k, v in asdict(make_config("se_resnet20", "fast", data=f"folder:{data}", epochs=2)).items()
            if k != "model"}
    for name, options in (("se_resnet20", {"reduction": 16}), ("resnet20", {})):
        save_checkpoint(ck / f"{name}.pt", create_model(name, num_classes=3), model_name=name,
                        model_options={"num_classes": 3, **options}, classes=CLASSES, val_acc=0.5, history=history,
                        recipe="fast", epochs=2, config=dict(twin, model=name), hardware="CPU (2 cores, 1 thread)")
    with app_environment(ck, tmp / "runs", f"folder:{data}", tmp / "cache"):
        yield {"tmp": tmp, "data": data, "checkpoints": ck}


# --------------------------------------------------------------------------- the latency caption
def test_latency_interval_is_the_order_statistics_of_the_per_round_ratios():
    from senet.analysis.compare import LatencyComparison

    seven = LatencyComparison((1.3, 1.1, 1.2, 1.25, 1.15, 1.05, 1.4), (1.0,) * 7)
    low, high, confidence = seven.ratio_interval
    assert (low, high) == (pytest.approx(1.05), pytest.approx(1.4)) and confidence == pytest.approx(1 - 2 / 2 ** 7)
    assert seven.ratio == pytest.approx(1.2) and not seven.within_noise
    nine = LatencyComparison(tuple(1 + i / 10 for i in range(9)), (1.0,) * 9)
    low, high, confidence = nine.ratio_interval
    assert (low, high) == (pytest.approx(1.1), pytest.approx(1.7)), "9 rounds: the 2nd smallest and 2nd largest"
    assert confidence == pytest.approx(1 - 2 * 10 / 2 ** 9) and confidence >= 0.95
    assert LatencyComparison((0.9, 1.2, 1.0), (1.0,) * 3).within_noise


def test_latency_caption_numbers_agree_and_explain_a_load_change():
    """The issue's case: each model's median over the rounds (85.94 vs 337.82 ms) beside the median per-round
    ratio (-31.7%), with nothing saying they are different statistics."""
    from senet.analysis.compare import LatencyComparison
    from senet_dashboard.views._format import latency_words

    varied = LatencyComparison((80.0, 85.94, 90.0, 70.0, 300.0, 86.0, 88.0),
                               (330.0, 337.82, 30.0, 100.0, 400.0, 340.0, 35.0))
    text = latency_words(varied)
    low, high, confidence = varied.ratio_interval
    assert f"SE/plain time {varied.ratio - 1:+.1%}, the median of the 7 per-round ratios" in text
    assert f"({confidence:.0%} interval {low - 1:+.1%} to {high - 1:+.1%}" in text
    assert "SE 86.00 ms, plain 330.00 ms" in text and "Each model's median over the rounds" in text
    assert varied.load_varied and "rounds vary widely" in text
    assert f"their ratio ({varied.medians_ratio - 1:+.1%}) is not the comparison" in text
    steady = LatencyComparison((1.13, 1.12, 1.14, 1.13, 1.12, 1.15, 1.13), (1.0,) * 7)
    text = latency_words(steady)
    assert not steady.load_varied and "vary widely" not in text and "SE slower" in text
    assert f"{steady.ratio - 1:+.1%}" == f"{steady.medians_ratio - 1:+.1%}", "steady rounds: the two agree"


def test_compare_pair_shows_the_median_per_round_ratio_with_its_interval(env):
    at = open_app("senet_dashboard/views/compare.py")
    at.toggle(key="compare_latency").set_value(True).run()
    no_exceptions(at)
    metric = {m.label: m for m in at.metric}["CPU time SE/plain (batch 1)"]
    assert metric.value.endswith("%") and "interval" in metric.proto.delta, (metric.value, metric.proto.delta)
    caption = [c for c in texts(at, "caption") if c.startswith("CPU latency per image")]
    assert len(caption) == 1 and "the median of the 7 per-round ratios" in caption[0], caption
    assert metric.value in caption[0], "the metric and its caption give the same figure"


# --------------------------------------------------------------------------- hardware on the training-time axis
def test_recorded_hardware_is_read_back_old_and_new():
    from senet.training.hardware import read_hardware

    assert read_hardware("NVIDIA H200").label == "GPU NVIDIA H200"
    assert read_hardware("CPU (2 cores, 1 threads)").label == "CPU, 1 thread (2 cores)", "older records: '1 threads'"
    cpu = read_hardware("2 x CPU (16 cores, 8 threads)")
    assert (cpu.kind, cpu.threads, cpu.processes, cpu.cores) == ("CPU", 8, 2, 16)
    assert read_hardware(None).label == "hardware not recorded"


def test_training_time_chart_groups_runs_by_hardware_and_says_when_they_differ():
    from senet.training.hardware import mixed_hardware, read_hardware
    from senet_dashboard.curves import curves_from_history
    from senet_dashboard.figures import overlay_figure

    history = [{"epoch": e, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5, "lr": 0.1,
                "elapsed_s": 30.0 * e} for e in (1, 2)]
    recorded = {"se": "NVIDIA H200", "plain": "CPU (2 cores, 1 thread)", "other": "CPU (2 cores, 2 threads)"}
    series = {name: curves_from_history(history) for name in recorded}
    fig = overlay_figure(series, "val_acc", x_axis="time",
                         hardware={k: read_hardware(v).label for k, v in recorded.items()})
    groups = {t.name: t.legendgrouptitle.text for t in fig.data}
    assert groups == {"se": "GPU NVIDIA H200", "plain": "CPU, 1 thread (2 cores)", "other": "CPU, 2 threads (2 cores)"}
    assert len({t.line.dash for t in fig.data}) == 3 and len({t.marker.symbol for t in fig.data}) == 3
    assert fig.layout.xaxis.hoverformat == ".2f", "hours in the hover as 0.74, not 0.742827"
    note = mixed_hardware(recorded)
    assert note and "GPU NVIDIA H200: se" in note and "CPU, 1 thread (2 cores): plain" in note
    assert mixed_hardware({"a": "CPU (2 cores, 1 thread)", "b": "CPU (2 cores, 1 threads)"}) is None


# --------------------------------------------------------------------------- an empty confusion cell
def test_a_cell_sentence_says_none_one_and_many():
    from senet_dashboard.confusion import cell_sentence

    assert cell_sentence(0, "dog", "truck", 50) == "No dog image was predicted **truck** (of 50 dog images)."
    assert cell_sentence(1, "dog", "truck", 50).startswith("**1** dog image was predicted **truck** (2.0% of dog")
    assert cell_sentence(12, "dog", "dog", 50).startswith("**12** dog images were predicted **dog** (24.0% of dog; "
                                                          "correct")
    assert cell_sentence(0, "dog", "cat", 1) == "No dog image was predicted **cat** (of 1 dog image)."
    assert cell_sentence(0, "dog", "cat", 0) == "There is no dog image in this split."
    assert "(s)" not in cell_sentence(3, "dog", "cat", 9)


# --------------------------------------------------------------------------- no command-line flag in the dashboard
def test_a_missing_split_names_the_sidebar_choice_in_the_dashboard_and_the_flag_on_the_command_line(env, capsys):
    at = open_app("senet_dashboard/views/confusion.py", split="test")
    no_exceptions(at)
    shown = " ".join(texts(at, "info") + texts(at, "error") + texts(at, "warning"))
    assert "has no test split" in shown and "choose the split val in the sidebar" in shown, shown
    assert "--split" not in shown and "Get data" not in shown, "the data is there; only the split is not"
    code, _, err = call_cli(capsys, "evaluate", "--checkpoint", str(env["checkpoints"] / "resnet20.pt"), "--data",
                            f"folder:{env['data']}", "--data-dir", str(env["tmp"] / "cache"), "--split", "test")
    assert code == 2 and "has no test split" in err and err.strip().endswith("(--split val)"), err


# --------------------------------------------------------------------------- files and addresses not checkpoints
@pytest.mark.parametrize("content, kind", [
    (b"# notes\nnot a checkpoint\n", "a text file beginning '# notes not a checkpoint'"),
    (json.dumps({"epochs": 3}).encode(), "a text file beginning '{\"epochs\": 3}'"),
    ("npz", "a NumPy .npz archive"),
    ("png", "a PNG image"),
    (bytes(range(256)) * 4, "a file of another kind"),
])
def test_a_file_that_is_not_a_checkpoint_is_named_in_one_line(tmp_path, content, kind):
    from senet import CheckpointError, load_checkpoint

    path = tmp_path / "thing.pt"
    if content == "npz":
        np.savez(path.with_suffix(".npz"), x=np.zeros(3))
        path = path.with_suffix(".npz")
    elif content == "png":
        Image.new("RGB", (4, 4)).save(path, format="PNG")
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message == f"{path}: not a readable PyTorch checkpoint ({kind})", message
    assert "Unsupported operand" not in message and "\n" not in message


def test_a_damaged_pytorch_file_says_so_without_torch_internals(tmp_path, env):
    from senet import CheckpointError, load_checkpoint

    good = (env["checkpoints"] / "resnet20.pt").read_bytes()
    for name, data in (("cut.pt", good[:3000]), ("pickle.pt", b"\x80")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(tmp_path / name)
        assert "damaged or truncated" in str(info.value), str(info.value)
        assert not any(w in str(info.value) for w in ("index out of range", "enforce fail", "Unsupported operand"))


def test_a_bad_checkpoint_address_parameter_is_one_line_naming_it(env, tmp_path):
    notes = tmp_path / "notes.pt"
    notes.write_text("# my notes\n")
    for value, why in ((str(notes), "not a readable PyTorch checkpoint (a text file beginning '# my notes')"),
                       (str(tmp_path), "not a file"),
                       ("runs/a\x00b.pt", ""),
                       ("x" * 300, "")):
        at = open_app(query={"checkpoint": value})  # the model card, the first page
        no_exceptions(at)
        errors = [e for e in texts(at.sidebar, "error") if "in the address" in e]
        assert len(errors) == 1 and "\n" not in errors[0], errors
        assert errors[0].startswith("checkpoint=") and "not opened" in errors[0] and why in errors[0], errors
        assert "list index out of range" not in errors[0] and len(errors[0]) < 400, errors
        assert "Model card" in " ".join(texts(at, "subheader")), "the page still shows the checkpoint it had"


# --------------------------------------------------------------------------- the JPEG caveat
def test_the_jpeg_caveat_is_only_for_the_jpeg_copy():
    from senet_dashboard.card import JPEG_COPY_FINGERPRINTS, data_statement, jpeg_copy

    named = {"dataset": "CIFAR-10 (JPEG q75 copy), 45,000 train / 5,000 val", "data_spec": "folder:/data/x"}
    assert jpeg_copy(named) and "JPEG at quality 75" in data_statement(named)
    by_path = {"dataset": "folder:/data/cifar10-jpeg", "data_spec": "folder:/data/cifar10-jpeg"}
    assert not jpeg_copy(by_path), "the path's text says nothing about the images"
    assert "JPEG" not in data_statement(by_path) and "unmeasured" in data_statement(by_path)
    other = {"dataset": "folder:/a/jpeg-photos", "data_spec": "folder:/a/jpeg-photos",
             "data_fingerprint": {"train": "sha256:" + "0" * 32, "val": "sha256:" + "1" * 32}}
    assert not jpeg_copy(other) and "JPEG" not in data_statement(other)
    moved = {"dataset": "folder:/b/copy", "data_spec": "folder:/b/copy",
             "data_fingerprint": {"train": sorted(JPEG_COPY_FINGERPRINTS)[0], "val": "x"}}
    assert jpeg_copy(moved), "the JPEG copy at another path, known by its fingerprint"


def test_the_shipped_checkpoints_are_the_jpeg_copy():
    from senet_dashboard.card import jpeg_copy
    from senet.checkpoint import read_checkpoint
    from conftest import ROOT

    for path in sorted((ROOT / "checkpoints").glob("*.pt")):
        assert jpeg_copy(read_checkpoint(path)["meta"]), path.name


# --------------------------------------------------------------------------- the toolbar corner and Compare's table
def _figures():
    from senet.analysis.gate_space import GateMap
    from senet_dashboard.curves import curves_from_history
    from senet_dashboard.figures import TOOLBAR_PX, epoch_figure, intervention_figure, lr_figure, overlay_figure
    from senet_dashboard.forming_figures import specificity_by_epoch_figure
    from senet_dashboard.gate_space_figures import gate_map_figure

    history = [{"epoch": e, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5, "lr": 0.1}
               for e in (1, 2)]
    c = curves_from_history(history)
    rng = np.random.default_rng(0)
    gm = GateMap(block="stage1", coords=rng.normal(size=(6, 2)), labels=np.array([0, 1, 2] * 2), positions=np.arange(6),
                 explained=np.array([0.5, 0.2]))
    return TOOLBAR_PX, {
        "loss": epoch_figure(c, "loss"), "lr": lr_figure(c),
        "overlay": overlay_figure({"a": c, "b": c}, "val_acc"),
        "interventions": intervention_figure(list(CLASSES), np.array([0.2, 0.3, 0.5]), np.array([0.1, 0.6, 0.3])),
        "map": gate_map_figure(gm, list(CLASSES)),
        "specificity": specificity_by_epoch_figure([1, 2], [{"b1": 0.1}, {"b1": 0.2}]),
    }


def test_every_chart_keeps_the_toolbar_corner_free():
    """Plotly's toolbar shows at a chart's top right: no legend starts in its band, a long title has a line below
    it, and it holds two buttons (download, reset) besides Streamlit's. (The browser test measures the boxes.)"""
    from senet_dashboard.figures import TITLE_BESIDE_TOOLBAR, ablation_figure

    toolbar, figures = _figures()
    figures["ablation"] = ablation_figure({"stage1": 0.9, "stage2": 0.4}, 0.6, "cat")
    assert len(figures["ablation"].layout.title.text) > TITLE_BESIDE_TOOLBAR
    for name, fig in figures.items():
        layout = fig.layout
        assert set(layout.modebar.remove) >= {"zoom2d", "pan2d", "lasso2d", "select2d", "zoomIn2d", "zoomOut2d",
                                              "autoScale2d"}, name
        legend, height = layout.legend, layout.height
        if legend.yref == "container":  # a legend line of its own: from the left, below the toolbar's band
            assert legend.xanchor == "left" and legend.x == 0, name
            assert legend.y * height <= height - toolbar + 1e-6, name
        else:  # a legend beside the plot: the plot (and the legend's top) starts below the band
            assert legend.yanchor == "top" and legend.y <= 1 and layout.margin.t >= toolbar, name
        if layout.title.text:
            assert layout.title.xanchor == "left" and layout.title.x == 0, name
            if len(layout.title.text) > TITLE_BESIDE_TOOLBAR:  # too long to share the band: a line below it
                assert layout.title.y * height <= height - toolbar + 1e-6, name


def test_compare_table_fits_the_page_at_1280_with_names_pinned(env):
    from senet_dashboard.views.compare import TABLE_PX

    at = open_app("senet_dashboard/views/compare.py")
    at.toggle(key="compare_latency").set_value(True).run()
    no_exceptions(at)
    columns = json.loads(at.dataframe[0].proto.columns)
    shown = [k for k in at.dataframe[0].value.columns if not columns.get(k, {}).get("hidden")]
    widths = {k: columns[k]["width"] for k in shown}
    assert sum(widths.values()) <= TABLE_PX, widths
    assert columns["name"]["pinned"] and widths["name"] >= 7 * max(map(len, at.dataframe[0].value["name"]))
    assert columns["MACs / image"]["label"] == "MACs" and "MACs / image" in shown
    assert columns["model"].get("hidden"), "every name says its model: the column gives its room to the names"
