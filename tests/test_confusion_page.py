"""The Confusion explorer and the model card: what their numbers say (split, recorded or recomputed), the
confusion colours, the per-image CSV's sources (file names kept through the data cache and the splits)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_folder_dataset
from senet.analysis import Evaluation
from senet.checkpoint import Checkpoint
from test_app import no_exceptions, open_app, plotly_array, texts

CLASSES = ("blue", "green", "red")
HISTORY = [{"epoch": e, "train_loss": 1.5 - 0.1 * e, "train_acc": 0.3 + 0.05 * e, "val_loss": 1.2 - 0.1 * e,
            "val_acc": acc, "lr": 0.1} for e, acc in ((1, 0.40), (2, 0.45), (3, 0.44), (4, 0.50))]
RECIPE = {"epochs": 6, "label_smoothing": 0.2, "crop_pad": 4, "flip": "alternating", "cutout": 10, "val_size": 0.1,
          "split_seed": 0}
PLAIN_RECIPE = {"epochs": 4, "label_smoothing": 0.0, "crop_pad": 0, "flip": "none", "cutout": 0, "val_size": 0.1,
                "split_seed": 0}


# --------------------------------------------------------------------------- the app's environment
@pytest.fixture(scope="module")
def card_env(tmp_path_factory):
    """A folder dataset with a test split, one without, and two checkpoints with recorded recipes."""
    from senet import create_model, save_checkpoint

    tmp = tmp_path_factory.mktemp("card")
    data = make_folder_dataset(tmp / "data", per_class=20, test_split=True)
    no_test = make_folder_dataset(tmp / "no_test", per_class=20)
    ck = tmp / "checkpoints"
    ck.mkdir()
    torch.manual_seed(0)
    spec = f"folder:{data}"
    save_checkpoint(ck / "se_resnet20.pt", create_model("se_resnet20", num_classes=3), model_name="se_resnet20",
                    model_options={"num_classes": 3, "reduction": 16}, classes=CLASSES, val_acc=0.5, val_acc_tta=0.55,
                    history=HISTORY, epochs=4, config=dict(RECIPE, data=spec), data_spec=spec, recipe="fast",
                    val_size=6, split_seed=0)
    plain_history = [dict(r, val_loss=r["train_loss"] + 0.3) for r in HISTORY]
    save_checkpoint(ck / "resnet20.pt", create_model("resnet20", num_classes=3), model_name="resnet20",
                    model_options={"num_classes": 3}, classes=CLASSES, val_acc=0.5, history=plain_history,
                    epochs=4, config=dict(PLAIN_RECIPE, data=spec), data_spec=spec)
    values = {"SENET_CHECKPOINTS": str(ck), "SENET_RUNS": str(tmp / "runs"), "SENET_DATA": spec,
              "SENET_DATA_DIR": str(tmp / "cache")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in values.items():
            mp.setenv(k, v)
        yield {"tmp": tmp, "data": data, "no_test": no_test, "checkpoints": ck, "cache": tmp / "cache", "spec": spec}


def _evaluation(env, split: str, tta: bool = False, name: str = "se_resnet20.pt") -> Evaluation:
    from senet import evaluate, load_checkpoint
    from senet.data import load_split

    model, meta = load_checkpoint(env["checkpoints"] / name)
    return evaluate(Checkpoint.from_meta(model, meta), load_split(env["spec"], split, env["cache"]), tta=tta)


def _metrics(at) -> dict:
    return {m.label: m for m in at.metric}


def _heatmap(at) -> dict:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return spec["data"][0]


# --------------------------------------------------------------------------- data: file names
def test_folder_source_records_each_images_file_through_the_cache_and_the_splits(tmp_path):
    from senet.data import limit_split, load_source, load_split
    from senet.data.images import IMAGE_SIZE, image_to_uint8, open_image

    root = make_folder_dataset(tmp_path / "ds", per_class=10)
    spec = f"folder:{root}"
    full = load_source(spec, "train", tmp_path / "cache")
    assert full.names is not None and len(full.names) == len(full)
    assert full.names[:2] == ["train/blue/0000.png", "train/blue/0001.png"], "sorted per class, as decoded"
    again = load_source(spec, "train", tmp_path / "cache")  # from the cache
    assert again.names == full.names
    val = load_split(spec, "val", tmp_path / "cache", val_size=0.3, split_seed=1)
    assert val.names == [full.names[i] for i in val.indices.tolist()]
    for i in (0, len(val) - 1):  # the name is that image's file
        pixels = image_to_uint8(open_image(root / val.names[i]), IMAGE_SIZE)
        assert torch.equal(pixels, val.images[i])
        assert val.names[i].split("/")[1] == val.classes[int(val.labels[i])]
    small = limit_split(load_split(spec, "train", tmp_path / "cache", val_size=0.3, split_seed=1), 6)
    assert small.names == [full.names[i] for i in small.indices.tolist()]


def test_a_folder_cache_from_before_file_names_is_rebuilt(tmp_path):
    from senet.data import load_source

    root = make_folder_dataset(tmp_path / "ds", per_class=4)
    spec = f"folder:{root}"
    first = load_source(spec, "train", tmp_path / "cache")
    (cache_file,) = (tmp_path / "cache" / ".senet-cache").glob("folder-train-*.pt")
    old = torch.load(cache_file, weights_only=True)
    torch.save({k: v for k, v in old.items() if k != "names"}, cache_file)  # the cache an older version wrote
    rebuilt = load_source(spec, "train", tmp_path / "cache")
    assert rebuilt.names == first.names and torch.equal(rebuilt.images, first.images)
    assert "names" in torch.load(cache_file, weights_only=True), "the rebuilt cache keeps the names"


def test_predictions_csv_names_each_images_source(tmp_path, tiny_checkpoint):
    import pandas as pd
    import io

    from senet import evaluate, load_checkpoint
    from senet.data import TensorDataset, load_split
    from senet_dashboard.confusion import predictions_csv

    root = make_folder_dataset(tmp_path / "ds", per_class=10)
    val = load_split(f"folder:{root}", "val", tmp_path / "cache", val_size=0.3, split_seed=1)
    model, meta = load_checkpoint(tiny_checkpoint)
    ev = evaluate(Checkpoint.from_meta(model, meta), val)
    table = pd.read_csv(io.BytesIO(predictions_csv(ev, val)))
    assert list(table["index"]) == list(range(len(val)))
    assert list(table["source_index"]) == val.indices.tolist() and set(table["source_part"]) == {"train"}
    assert [Path(f) for f in table["file"]] == [root / n for n in val.names]
    assert all(Path(f).parent.name == t for f, t in zip(table["file"], table["true"])), "the file is of its class"
    # a source without file names (CIFAR-10): its position in the source's test set
    n = len(ev.labels)
    test = TensorDataset(val.images, val.labels, val.classes, "cifar10", "test", torch.arange(n) + 100)
    table = pd.read_csv(io.BytesIO(predictions_csv(ev, test)))
    assert list(table["source_index"]) == list(range(100, 100 + n)) and set(table["source_part"]) == {"test"}
    assert "file" not in table.columns


# --------------------------------------------------------------------------- confusion colours and numbers
def _cm() -> np.ndarray:
    return np.array([[90, 3, 7], [1, 95, 4], [12, 0, 88]])


def test_errors_only_hides_the_diagonal_and_scales_the_colours_to_the_errors():
    from senet_dashboard.figures import confusion_figure

    cm = _cm()
    fig = confusion_figure(cm, list("abc"), colour="errors")
    heat = fig.data[0]
    assert [heat.z[i][i] for i in range(3)] == [None] * 3
    off = cm[~np.eye(3, dtype=bool)]
    assert heat.zmax == off.max() < cm.max(), "the scale spans the off-diagonal counts only"
    assert [heat.text[i][i] for i in range(3)] == [str(cm[i, i]) for i in range(3)], "the diagonal still reads"
    rates = confusion_figure(cm, list("abc"), normalise=True, colour="errors").data[0]
    assert rates.zmax == pytest.approx((cm / cm.sum(1, keepdims=True))[~np.eye(3, dtype=bool)].max() * 100)


def test_log_colours_are_log_of_one_plus_the_count_with_ticks_in_counts():
    from senet_dashboard.figures import confusion_colour, confusion_figure

    cm = _cm()
    heat = confusion_figure(cm, list("abc"), colour="log").data[0]
    assert np.allclose(np.asarray(heat.z, dtype=float), np.log10(1 + cm))
    labels = list(heat.colorbar.ticktext)
    assert labels[:2] == ["1", "10"] and np.allclose(heat.colorbar.tickvals, [math.log10(1 + float(t))
                                                                              for t in labels])
    for mode in ("all", "errors", "log"):
        assert "Colour:" in confusion_colour(cm, False, mode)["caption"]
    with pytest.raises(ValueError, match="colour"):
        confusion_colour(cm, False, "rainbow")


def test_row_normalised_cells_read_percent_with_one_decimal_and_counts_integers():
    from senet_dashboard.figures import confusion_figure

    cm = _cm()
    text = confusion_figure(cm, list("abc"), normalise=True).data[0].text
    assert text[0][1] == f"{3 / 100:.1%}" == "3.0%" and all(re.fullmatch(r"\d+\.\d%", c) for row in text for c in row)
    assert confusion_figure(cm, list("abc")).data[0].text[2][0] == "12"


def test_confusion_axes_stay_on_the_cells_and_many_class_labels_are_slanted():
    from senet_dashboard.figures import confusion_figure

    k = 10
    fig = confusion_figure(np.eye(k, dtype=int) * 50 + 1, [f"class{i}" for i in range(k)])
    assert list(fig.layout.xaxis.range) == [-0.5, k - 0.5] and list(fig.layout.yaxis.range) == [k - 0.5, -0.5], \
        "the click overlay's markers must not pad the axes around the heatmap"
    assert fig.layout.xaxis.tickangle <= -45, "ten class names side by side overlap unless slanted"
    title = next(a for a in fig.layout.annotations if a.text == "predicted class")
    assert -title.yshift >= len("class0") * 6.5 * math.sin(math.radians(45)), "the x title sits below the labels"
    assert fig.layout.margin.b > -title.yshift, "and inside the figure"


# --------------------------------------------------------------------------- model card helpers
def test_best_epoch_is_told_apart_from_the_number_trained():
    from senet_dashboard.card import epoch_summary

    best_file = {"history": HISTORY, "epochs": 4, "config": {"epochs": 6}}  # a best.pt written at epoch 4 of 6
    s = epoch_summary(best_file)
    assert (s["best"], s["epoch"], s["trained"], s["value"]) == (4, 4, None, "4 of 6")
    assert "set to train" in s["help"]
    last = dict(best_file, history=HISTORY + [dict(HISTORY[0], epoch=5), dict(HISTORY[0], epoch=6)], epochs=6)
    s = epoch_summary(last)
    assert (s["best"], s["epoch"], s["trained"], s["value"]) == (4, 6, 6, "4 of 6")
    s = epoch_summary(best_file, {"state": "stopped", "epoch": 5})
    assert s["trained"] == 5 and s["value"] == "4 of 5", "the run's status says how many were trained"
    assert epoch_summary({"history": []}) is None


def test_the_smoothed_loss_floor_is_what_cross_entropy_with_smoothing_reaches_at_best():
    from senet_dashboard.card import smoothed_loss_floor

    for eps, k in ((0.2, 10), (0.1, 3)):
        target = torch.tensor([0])
        q = torch.full((1, k), eps / k)
        q[0, 0] += 1 - eps
        best = torch.nn.functional.cross_entropy(q.log(), target, label_smoothing=eps)
        assert smoothed_loss_floor(eps, k) == pytest.approx(float(best), rel=1e-6)
    assert smoothed_loss_floor(0.0, 10) == 0.0


def test_loss_gap_note_follows_the_recorded_recipe():
    from senet_dashboard.card import loss_gap_note, smoothed_loss_floor

    note = loss_gap_note(RECIPE, HISTORY, 3)
    assert note.startswith("Why the validation loss sits below the training loss")
    assert "label smoothing 0.2" in note and f"{smoothed_loss_floor(0.2, 3):.2f}" in note
    assert "padded by 4 px" in note and "10×10 cutout" in note and "without smoothing" in note
    plain = loss_gap_note(PLAIN_RECIPE, [dict(HISTORY[-1], val_loss=2.0)], 3)
    assert plain.startswith("The validation loss sits above the training loss") and "Why" not in plain, plain
    assert "smoothing" not in plain and "cutout" not in plain
    assert loss_gap_note({}, HISTORY, 3) is None


def test_recorded_accuracy_exists_only_for_the_checkpoints_own_validation_split(tmp_path):
    from senet.data import load_split, match_split
    from senet_dashboard.card import pts, recorded_accuracy

    root = make_folder_dataset(tmp_path / "ds", per_class=10)
    val = load_split(f"folder:{root}", "val", tmp_path / "cache")
    meta = {"val_acc": 0.9222, "val_acc_tta": 0.9294, "data_spec": f"folder:{root}"}  # no fingerprint: by path
    assert recorded_accuracy(meta, "val", False, match_split(meta, "val", val, f"folder:{root}/")) == 0.9222
    assert recorded_accuracy(meta, "val", True, match_split(meta, "val", val, f"folder:{root}")) == 0.9294
    assert recorded_accuracy(meta, "test", False, match_split(meta, "test", val, f"folder:{root}")) is None
    assert recorded_accuracy(meta, "val", False, match_split(meta, "val", val, "cifar10")) is None, \
        "another data source has no recorded figure"
    assert pts(0.9228, 0.9222) == "+0.06 pts" and pts(0.9, 0.9222) == "-2.22 pts"


# --------------------------------------------------------------------------- pages
def test_confusion_accuracy_says_its_split_recomputed_now_beside_the_recorded_figure(card_env):
    from senet_dashboard.card import pts

    at = open_app("senet_dashboard/views/confusion.py")
    no_exceptions(at)
    ev = _evaluation(card_env, "val")
    m = _metrics(at)
    now = m["Accuracy · val · recomputed now"]
    assert now.value == f"{ev.accuracy:.2%}" and now.delta == f"{pts(ev.accuracy, 0.5)} vs recorded"
    assert m["Recorded in training · val"].value == "50.00%"
    at.toggle(key="conf_tta").set_value(True).run()
    no_exceptions(at)
    m = _metrics(at)
    assert m["Recorded in training · val"].value == "55.00%", "with TTA, the recorded TTA figure"
    assert m["Accuracy · val · recomputed now"].value == f"{_evaluation(card_env, 'val', tta=True).accuracy:.2%}"
    at.toggle(key="conf_tta").set_value(False).run()
    at.sidebar.segmented_control(key="split").set_value("test").run()
    no_exceptions(at)
    m = _metrics(at)
    assert m["Accuracy · test · recomputed now"].value == f"{_evaluation(card_env, 'test').accuracy:.2%}"
    assert m["Recorded in training · test"].value == "–", "the trainer records no test figure"


def test_confusion_colour_control_hides_the_diagonal_and_says_what_the_colours_mean(card_env):
    at = open_app("senet_dashboard/views/confusion.py")
    no_exceptions(at)
    cm = _evaluation(card_env, "val").confusion
    at.segmented_control(key="conf_colour").set_value("Errors only").run()
    no_exceptions(at)
    heat = _heatmap(at)
    assert [heat["z"][i][i] for i in range(3)] == [None] * 3
    off = cm[~np.eye(3, dtype=bool)]
    assert heat["zmax"] == pytest.approx(max(float(off.max()), 1e-9))
    assert any("errors only" in c and "off-diagonal" in c for c in texts(at, "caption")), texts(at, "caption")
    at.segmented_control(key="conf_view").set_value("Row-normalised").run()
    no_exceptions(at)
    cells = [c for row in _heatmap(at)["text"] for c in row]
    assert all(re.fullmatch(r"\d+\.\d%", c) for c in cells), cells
    at.segmented_control(key="conf_colour").set_value("Log scale").run()
    no_exceptions(at)
    rates = 100 * cm / np.maximum(cm.sum(1, keepdims=True), 1)
    z = _heatmap(at)["z"]
    z = plotly_array(z).reshape(3, 3) if isinstance(z, dict) else np.asarray(z, dtype=float)
    assert np.allclose(z, np.log10(1 + rates))
    captions = [c for c in at.image[0].captions] if at.image else []
    assert all(re.match(r"\d+\.\d% · #\d+$", c) for c in captions), captions


def test_model_card_labels_every_accuracy_and_tells_best_epoch_from_epochs_trained(card_env):
    from senet_dashboard.card import pts

    at = open_app("senet_dashboard/views/home.py")
    no_exceptions(at)
    m = _metrics(at)
    recorded = m["Val accuracy · recorded in training"]
    assert recorded.value == "50.00%" and recorded.delta == f"{pts(0.55, 0.5)} with flip TTA"
    assert "6 images held out" in recorded.help and "epoch 4" in recorded.help
    assert m["Best epoch (val accuracy)"].value == "4 of 6"
    captions = texts(at, "caption")
    assert any(c.startswith("Why the validation loss sits below the training loss") and "label smoothing 0.2" in c
               and "10×10 cutout" in c for c in captions), captions
    at.sidebar.selectbox(key="checkpoint").set_value(str(card_env["checkpoints"] / "resnet20.pt")).run()
    no_exceptions(at)
    assert not any(c.startswith("Why") for c in texts(at, "caption")), "its validation loss is above: no 'why below'"
    note = next(c for c in texts(at, "caption") if c.startswith("The validation loss sits above"))
    assert "smoothing" not in note and "1.3× as high" in note, note
    assert _metrics(at)["Best epoch (val accuracy)"].value == "4 of 4"


def test_model_card_recomputes_val_and_test_accuracy_on_request(card_env):
    from senet_dashboard.card import pts

    at = open_app("senet_dashboard/views/home.py")
    no_exceptions(at)
    assert not any(m.label.startswith("Recomputed now") for m in at.metric), "nothing is computed unasked"
    button = at.button(key="card_recompute")
    assert button.label == "Recompute val and test accuracy now"
    button.click().run()
    no_exceptions(at)
    m = _metrics(at)
    val, test = _evaluation(card_env, "val"), _evaluation(card_env, "test")
    shown_val = m[f"Recomputed now · val · {val.n:,} images"]
    assert shown_val.value == f"{val.accuracy:.2%}" and shown_val.delta == f"{pts(val.accuracy, 0.5)} vs recorded"
    assert m[f"Recomputed now · test · {test.n:,} images"].value == f"{test.accuracy:.2%}"


def test_model_card_without_a_test_split_recomputes_val_only(card_env, monkeypatch):
    monkeypatch.setenv("SENET_DATA", f"folder:{card_env['no_test']}")
    at = open_app("senet_dashboard/views/home.py")
    no_exceptions(at)
    assert at.button(key="card_recompute").label == "Recompute val accuracy now"
    assert any("no test split" in c for c in texts(at, "caption"))
