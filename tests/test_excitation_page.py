"""The Excitation explorer at hundreds of channels: the image-minus-class view, fair "opens it most" images, the
channel and table state across reruns, uploads (tiny, non-square), and the figures behind them."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import app_environment, make_folder_dataset, open_app
from senet.checkpoint import Checkpoint

CLASSES = ("blue", "green", "red")  # the folder dataset's classes, in its (sorted) order


# --------------------------------------------------------------------------- uploads: centre crop
def test_center_crop_box_keeps_the_middle_of_the_longer_side():
    from senet.data.images import center_crop_box

    assert center_crop_box(300, 200, (32, 32)) == (50, 0, 250, 200)  # (300 - 200) / 2 = 50 off each side
    assert center_crop_box(200, 300, (32, 32)) == (0, 50, 200, 250)
    assert center_crop_box(5, 2, (32, 32)) == (1, 0, 3, 2), "odd excess: floor((5 - 2) / 2) = 1 on the left"
    assert center_crop_box(32, 32, (32, 32)) == (0, 0, 32, 32)
    assert center_crop_box(64, 16, (16, 32)) == (16, 0, 48, 16), "a 2:1 input keeps a 2:1 box"


def test_uploads_are_centre_cropped_but_dataset_decoding_still_squashes():
    from senet.data import image_to_uint8, normalize, preprocess

    wide = np.zeros((32, 96, 3), dtype=np.uint8)
    wide[:, :32] = (255, 0, 0)
    wide[:, 32:64] = np.arange(32, dtype=np.uint8)[None, :, None] * 8  # a ramp: any resampling would show
    wide[:, 64:] = (0, 0, 255)
    image = Image.fromarray(wide)
    cropped = image_to_uint8(image, (32, 32), crop=True)
    assert torch.equal(cropped, torch.from_numpy(wide[:, 32:64]).permute(2, 0, 1)), \
        "by hand: a 96x32 image's centre square is columns 32-63, already 32x32, so no resampling"
    meta = {"input_size": (3, 32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    assert torch.equal(preprocess(image, meta), normalize(cropped[None], meta["mean"], meta["std"])), \
        "preprocess (uploads, the CLI) uses the centre crop"
    squashed = image_to_uint8(image, (32, 32))
    assert squashed[0, :, 0].float().mean() > 200 and squashed[2, :, -1].float().mean() > 200, \
        "without crop (dataset decoding) the whole image is squashed: red at the left, blue at the right"
    small = Image.fromarray(np.random.default_rng(0).integers(0, 256, (4, 2, 3), dtype=np.uint8))
    rows = np.asarray(small)[1:3]  # a 2x4 (w x h) image: its centre square is rows 1-2
    assert torch.equal(image_to_uint8(small, (2, 2), crop=True), torch.from_numpy(rows.copy()).permute(2, 0, 1))
    native = Image.fromarray(wide[:, 32:64].copy())
    assert torch.equal(image_to_uint8(native), image_to_uint8(native, crop=True)), "32x32 images are unchanged"


# --------------------------------------------------------------------------- fair extremes
def test_fair_order_interleaves_a_tie_over_its_classes_in_proportion():
    from senet.analysis.profiles import fair_order

    labels = np.repeat([0, 1, 2, 3], [16, 8, 8, 8])  # in split order: class 0 first, as in a real split
    values = np.ones(40)
    values[[5, 30]] = [0.2, 1.5]  # one image above the tie, one below it
    assert labels[np.argsort(-values, kind="stable")[1:13]].tolist() == [0] * 12, \
        "precondition: position order fills the top with class 0"
    order = fair_order(values, labels)
    assert order[0] == 30 and order[-1] == 5, "untied values keep their place"
    tie = order[1:-1]
    share = np.bincount(labels[tie], minlength=4) / len(tie)
    for j in range(1, len(tie) + 1):
        counts = np.bincount(labels[tie[:j]], minlength=4)
        assert np.all(np.abs(counts - j * share) <= 1.0), (j, counts.tolist())
    assert sorted(tie.tolist()) == sorted(set(range(40)) - {5, 30})
    low = fair_order(values, labels, descending=False)
    assert low[0] == 5 and low[-1] == 30
    assert fair_order(values).tolist() == np.argsort(-values, kind="stable").tolist(), "no labels: index order"


def _profiles(gates: np.ndarray, labels: np.ndarray, classes=("a", "b", "c")):
    from senet.analysis.profiles import ClassProfiles

    k = len(classes)
    counts = np.bincount(labels, minlength=k)
    profile = np.stack([gates[labels == c].mean(0) for c in range(k)]).astype(np.float32)
    return ClassProfiles(list(classes), counts, {"b": profile}, {"b": gates.mean(0)}, {"b": 0.1},
                         positions=np.arange(100, 100 + len(labels)), gates={"b": gates.astype(np.float16)},
                         labels=labels)


def test_channel_extremes_share_a_saturated_tie_between_classes_and_count_them():
    labels = np.repeat([0, 1, 2], [20, 20, 20])
    gates = np.zeros((60, 2), dtype=np.float32)
    gates[:20, 0] = 1.0
    gates[20:35, 0] = 1.0  # 20 of class a and 15 of class b saturate channel 0; class c stays shut
    gates[35:, 0] = np.linspace(0.1, 0.5, 25)
    gates[[41, 47, 50, 52, 58], 0] = 0.0  # five of class c shut it completely
    p = _profiles(gates, labels)
    high, high_gate, low, low_gate = p.channel_extremes("b", 0, k=7)
    assert high_gate.tolist() == [1.0] * 7
    shown = labels[high - 100]
    assert set(shown.tolist()) == {0, 1} and abs(int((shown == 0).sum()) - 4) <= 1, shown
    n, value, counts = p.extreme_class_counts("b", 0, k=7)
    assert (n, value, counts.tolist()) == (35, 1.0, [20, 15, 0]), "every image of the tie is counted"
    n, value, counts = p.extreme_class_counts("b", 0, k=3, highest=False)
    assert (n, value, counts.tolist()) == (5, 0.0, [0, 0, 5]), "a tie at the bottom is counted whole too"
    assert low_gate[:5].tolist() == [0.0] * 5 and sorted(low[:5] - 100) == [41, 47, 50, 52, 58]


# --------------------------------------------------------------------------- image minus class
def test_gate_difference_and_departures_are_image_minus_class_mean():
    labels = np.repeat([0, 1, 2], 4)
    gates = np.random.default_rng(1).random((12, 6)).astype(np.float32)
    p = _profiles(gates, labels)
    image = np.array([0.9, 0.1, 0.5, 0.5, 1.0, 0.0], dtype=np.float32)
    diff = p.gate_difference("b", image, 2)
    np.testing.assert_allclose(diff, image - gates[8:].mean(0), atol=1e-6)
    assert np.all(np.abs(diff) <= 1)
    rows = p.departures({"b": image}, [2, 0], k=3)
    assert [r["channel"] for r in rows] == np.argsort(-np.abs(diff), kind="stable")[:3].tolist()
    first = rows[0]
    c = first["channel"]
    assert first["gate"] == pytest.approx(image[c])
    assert first["means"] == pytest.approx([gates[8:, c].mean(), gates[:4, c].mean()], abs=1e-6)
    assert first["differences"] == pytest.approx([image[c] - gates[8:, c].mean(), image[c] - gates[:4, c].mean()],
                                                 abs=1e-6)
    with pytest.raises(ValueError, match="channels"):
        p.gate_difference("b", image[:-1], 0)
    with pytest.raises(KeyError, match="no SE block"):
        p.gate_difference("stage9", image, 0)


def test_gate_difference_figure_draws_each_block_and_class_on_one_signed_scale_with_the_top_marked():
    from senet_dashboard.figures import gate_difference_figure

    rng = np.random.default_rng(0)
    d = {"cat (true) mean": {"s1": rng.uniform(-1, 1, 8), "s2": rng.uniform(-1, 1, 300)},
         "dog (predicted) mean": {"s1": rng.uniform(-1, 1, 8), "s2": rng.uniform(-1, 1, 300)}}
    order = {"s1": np.arange(8)[::-1], "s2": np.arange(300)}
    fig = gate_difference_figure(d, order=order, highlight=5)
    bars = [t for t in fig.data if t.customdata is not None and t.name and t.name.endswith(" mean")]
    assert len(bars) == 4, "one chart per block and class"
    assert not [t for t in fig.data if t.type == "bar"], "no bar per channel: filled steps, a few SVG paths"
    fills = [t for t in fig.data if t.fill == "tozeroy"]
    assert len(fills) == 8 and all(np.all(np.asarray(f.y) >= 0) or np.all(np.asarray(f.y) <= 0) for f in fills), \
        "per chart: one fill above zero (opens more), one below (less)"
    assert list(bars[0].customdata) == list(range(8))[::-1]
    assert list(bars[0].y) == pytest.approx(d["cat (true) mean"]["s1"][::-1]), "in the channel order given"
    for name in ("xaxis", "yaxis"):
        assert getattr(fig.layout, name).domain is not None
    layout = fig.to_plotly_json()["layout"]
    ys = [v for k, v in layout.items() if k.startswith("yaxis")]
    assert all(y["range"][0] <= -1 and y["range"][1] >= 1 and y["zeroline"] for y in ys), "one scale, a zero line"
    assert ys[0]["title"]["text"] == "gate difference"
    titles = [a.text for a in fig.layout.annotations]
    assert "s2: this image − dog (predicted) mean" in titles
    marks = [t for t in fig.data if t.name == "largest departures"]
    top = np.argsort(-np.abs(d["dog (predicted) mean"]["s2"]))[:5]
    assert sorted(marks[3].customdata.tolist()) == sorted(top.tolist()), "the five largest |differences| are marked"
    labels = {a.text for a in fig.layout.annotations if a.yref == marks[3].yaxis}
    assert {str(c) for c in top} <= labels, "and labelled with their channel"


def test_profiles_heatmap_puts_this_image_and_the_mean_above_a_row_per_class_in_the_channel_order():
    from senet_dashboard.figures import profiles_heatmap_figure

    profiles = {"s1": np.array([[0.1, 0.2, 0.3], [0.7, 0.8, 0.9]]),
                "s2": np.array([[0.0, 1.0, 0.5, 0.25], [1.0, 0.0, 0.5, 0.75]])}
    overall = {b: p.mean(0) for b, p in profiles.items()}
    image = {"s1": np.array([0.5, 0.4, 0.3]), "s2": np.array([0.1, 0.2, 0.3, 0.4])}
    order = {"s1": np.array([2, 0, 1]), "s2": np.array([3, 2, 1, 0])}
    fig = profiles_heatmap_figure(profiles, overall, ["cat", "dog"], image, marks={1: "true"}, order=order)
    first, second = fig.data
    assert list(first.y) == ["this image", "all classes", " ", "cat", "dog · true"]
    z = np.array(first.z, dtype=float)
    assert z[0].tolist() == pytest.approx([0.3, 0.5, 0.4]) and z[4].tolist() == pytest.approx([0.9, 0.7, 0.8])
    assert np.isnan(z[2]).all(), "a gap between the summary rows and the classes"
    assert np.array(second.customdata)[3].tolist() == [3, 2, 1, 0], "hover names the real channel"
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == 1


# --------------------------------------------------------------------------- labels and axes of the bar charts
def test_bar_chart_lines_are_named_in_the_legend_not_labelled_over_the_bars():
    from senet_dashboard.figures import ablation_figure, channel_classes_figure

    fig = channel_classes_figure(np.array([0.9, 0.1, 0.5]), 0.404, list(CLASSES), "t", image_gate=1.0)
    assert not [a for a in fig.layout.annotations or () if "0.404" in a.text or "1.000" in a.text], \
        "no label on a line, where it covers the bars"
    names = [t.name for t in fig.data if t.type == "scatter"]
    assert names == ["all classes 0.404", "this image 1.000"]
    assert [s.y0 for s in fig.layout.shapes] == pytest.approx([0.404, 1.0])
    fig = ablation_figure({"stage1": 0.95, "stage2": 0.2}, 0.6, "cat")
    assert not fig.layout.annotations and [t.name for t in fig.data][1] == "all gates on 60.0%"
    bar = fig.data[0]
    assert list(bar.text) == ["95.0%", "20.0%"] and bar.textposition == "outside"
    assert fig.layout.yaxis.range[1] > 1, "room above a full bar for its label"
    assert fig.layout.legend.y < 1 and fig.layout.title.y > fig.layout.legend.y, "legend below the title"


def test_split_ablation_panels_share_one_axis_and_label_each_bar():
    from senet_dashboard.figures import split_ablation_figure

    table = [{"blocks": "stage1", "off_change_pts": -59.0, "mean_change_pts": -2.1, "off_acc": 0.3, "mean_acc": 0.9},
             {"blocks": "all", "off_change_pts": -50.0, "mean_change_pts": 0.4, "off_acc": 0.4, "mean_acc": 0.92}]
    fig = split_ablation_figure(table, 0.916, 1000)
    assert fig.layout.yaxis2.matches == "y", "the caption compares heights across the panels"
    low, high = fig.layout.yaxis.range
    assert low < -59 and high > 0.4, "every bar and its label fit"
    assert [list(t.text) for t in fig.data] == [["-59.0", "-50.0"], ["-2.1", "+0.4"]]
    assert "one scale" in fig.layout.title.text
    assert "Over 1,000 val images, recomputed now" in split_ablation_figure(table, 0.9, 1000, split="val").layout.title.text


# --------------------------------------------------------------------------- the page
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An untrained SE-ResNet-20 checkpoint and a 3-colour folder dataset, through the dashboard's env vars."""
    from senet import create_model, save_checkpoint

    tmp = tmp_path_factory.mktemp("excitation")
    data = make_folder_dataset(tmp / "data", per_class=20)
    ck = tmp / "checkpoints"
    ck.mkdir()
    torch.manual_seed(0)
    save_checkpoint(ck / "se_resnet20.pt", create_model("se_resnet20", num_classes=3), model_name="se_resnet20",
                    model_options={"num_classes": 3, "reduction": 16}, classes=CLASSES, val_acc=0.5)
    with app_environment(ck, tmp / "runs", f"folder:{data}", tmp / "cache"):
        yield {"tmp": tmp, "data": data, "checkpoints": ck}


def _open(image: int | None = None, view: str = "One channel") -> AppTest:
    """The Excitation explorer on ``image`` (the first one by default), showing ``view``."""
    at = open_app("senet_dashboard/views/excitation.py", query={"image": str(image)} if image is not None else None)
    at.segmented_control(key="exc_view").set_value(view).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _spec(at: AppTest, key: str) -> dict:
    """The Plotly spec of the chart drawn under ``key``."""
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith(f"-{key}"):
            return json.loads(chart.proto.spec)
    raise AssertionError(f"no chart {key}")


def _array(value) -> np.ndarray:
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value)


def _model_and_profiles(env):
    from senet import load_checkpoint
    from senet.analysis.profiles import class_profiles
    from senet.data import load_split

    model, meta = load_checkpoint(env["checkpoints"] / "se_resnet20.pt")
    val = load_split(f"folder:{env['data']}", "val", env["tmp"] / "cache")
    return model, meta, val, class_profiles(Checkpoint.from_meta(model, meta), val, per_class=50)


def test_a_misclassified_image_is_shown_minus_its_true_and_its_predicted_class(env):
    from senet.analysis.explanation import explain
    from senet.data import normalize

    model, meta, val, profiles = _model_and_profiles(env)
    x = normalize(val.images, meta["mean"], meta["std"])
    preds = np.array([explain(model, x[i:i + 1], list(CLASSES)).predicted for i in range(len(val))])
    wrong = np.flatnonzero(preds != val.labels.numpy())
    assert len(wrong), "precondition: the untrained model gets some image wrong"
    pos = int(wrong[0])
    true, pred = int(val.labels[pos]), int(preds[pos])
    at = _open(pos, "vs. its class")
    assert "This image against its class" in [str(s.value) for s in at.subheader]
    spec = _spec(at, "exc_difference")
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    last = list(profiles.gates)[-1]
    assert f"{last}: this image − {CLASSES[true]} (true) mean" in titles
    assert f"{last}: this image − {CLASSES[pred]} (predicted) mean" in titles
    gates = explain(model, x[pos:pos + 1], list(CLASSES)).gates[last]
    bars = {t["name"]: t for t in spec["data"] if t.get("name", "").endswith(" mean")}
    shown = bars[f"{last} − {CLASSES[true]} (true) mean"]
    channels = _array(shown["customdata"]).astype(int)
    expected = gates - profiles.profiles[last][true]
    np.testing.assert_allclose(_array(shown["y"]), expected[channels], atol=1e-5)
    assert np.all(np.diff(profiles.overall[last][channels]) <= 1e-7), "in the page's channel order (sorted)"
    table = next(d.value for d in at.dataframe if "diff 1" in d.value.columns)
    rows = table[table["block"] == last]
    assert rows["channel"].tolist() == np.argsort(-np.abs(expected), kind="stable")[:5].tolist()
    np.testing.assert_allclose(rows["diff 1"], (gates - profiles.profiles[last][pred])[rows["channel"]], atol=1e-5)


def test_a_departure_row_shows_that_block_and_channel(env):
    at = _open(view="vs. its class")
    table = next(d.value for d in at.dataframe if "diff 0" in d.value.columns)
    row = next(i for i in range(len(table)) if table["block"].iloc[i] != at.pills(key="exc_block").value)
    block, channel = table["block"].iloc[row], int(table["channel"].iloc[row])
    at.session_state["exc_departures"] = {"selection": {"rows": [row], "columns": []}}
    at.run()
    assert not at.exception
    assert at.segmented_control(key="exc_view").value == "One channel", "the picked channel is shown in its view"
    assert (at.pills(key="exc_block").value, at.number_input(key="exc_ch").value) == (block, channel)


def test_switching_block_keeps_the_channel_if_it_has_it_else_its_most_class_specific(env):
    _, _, _, profiles = _model_and_profiles(env)
    blocks = list(profiles.gates)
    def most_specific(block: str) -> int:  # the channel whose mean gate differs most between the classes
        return int(profiles.profiles[block].std(axis=0).argmax())

    narrow = next(b for b in blocks if profiles.gates[b].shape[1] == 16 and most_specific(b) != 0)
    wide = [b for b in blocks if profiles.gates[b].shape[1] == 64]
    at = _open()
    at.pills(key="exc_block").set_value(wide[0]).run()
    at.number_input(key="exc_ch").set_value(40).run()
    at.pills(key="exc_block").set_value(wide[1]).run()
    assert not at.exception
    assert at.number_input(key="exc_ch").value == 40, "a block with channel 40 keeps it"
    at.pills(key="exc_block").set_value(narrow).run()
    assert not at.exception and not at.error
    assert at.number_input(key="exc_ch").value == most_specific(narrow), \
        "a block without channel 40 shows its most class-specific channel (not channel 0)"


def test_unusual_channels_table_has_no_stale_tick_after_show_opens_another_image(env):
    at = _open()
    at.session_state["exc_unusual"] = {"selection": {"rows": [2], "columns": []}}
    at.run()
    picked = at.number_input(key="exc_ch").value
    assert at.session_state["exc_unusual"]["selection"]["rows"] == [2], "precondition: the row is ticked"
    shown = next(str(m.value) for m in at.markdown if str(m.value).startswith("val image #"))
    current = int(shown.split("#")[1].split()[0])
    target = next(int(o.split()[0].lstrip("#")) for o in at.selectbox(key="exc_ch_pick").options
                  if int(o.split()[0].lstrip("#")) != current)
    at.selectbox(key="exc_ch_pick").set_value(target).run()
    at.button(key="exc_ch_show").click().run()
    assert not at.exception
    assert any(f"val image #{target} ·" in str(m.value) for m in at.markdown), "Show opened the image"
    key = at.session_state["exc_unusual_key"] if "exc_unusual_key" in at.session_state else "exc_unusual"
    ticked = ((at.session_state[key] if key in at.session_state else {}) or {}).get("selection", {}).get("rows")
    assert not ticked, "the new image's table starts with no row ticked"
    assert at.number_input(key="exc_ch").value == picked, "the channel shown stays"
    at.session_state[key] = {"selection": {"rows": [2], "columns": []}}  # the same row of the new table
    at.run()
    unusual = next(d.value for d in at.dataframe if {"channel", "z"} <= set(d.value.columns))
    assert at.number_input(key="exc_ch").value == int(unusual["channel"].iloc[2]), "ticking it again picks it"


def test_opens_it_most_says_how_the_classes_share_the_top_images(env):
    _, _, val, profiles = _model_and_profiles(env)
    at = _open()
    block, channel = at.pills(key="exc_block").value, at.number_input(key="exc_ch").value
    column = profiles.gates[block][:, channel].astype(np.float32)
    top = column >= np.sort(column)[::-1][min(12, len(column)) - 1]  # the 12 highest, and any tied with them
    n, counts = int(top.sum()), np.bincount(val.labels.numpy()[profiles.positions][top], minlength=len(CLASSES))
    captions = [str(c.value) for c in at.caption]
    words = [f"{CLASSES[i]} {c}" for i, c in enumerate(counts.tolist()) if c]
    assert any(all(w in c for w in words) and (f"{n} of the" in c or f"these {n}" in c) for c in captions), captions


@pytest.mark.parametrize("size, warned", [((1, 1), True), ((12, 40), True), ((16, 16), False), ((40, 30), False)])
def test_a_tiny_upload_warns_that_the_model_sees_it_upscaled(env, size, warned):
    at = _open()
    at.segmented_control(key="exc_mode").set_value("Upload").run()
    buf = io.BytesIO()
    Image.new("RGB", size, (9, 99, 199)).save(buf, format="PNG")
    at.file_uploader(key="exc_upload").set_value(("tiny.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not at.error
    warnings = [str(w.value) for w in at.warning if "upscaled" in str(w.value)]
    assert (len(warnings) == 1) == warned, warnings
    if warned:
        assert f"{size[0]}×{size[1]}" in warnings[0] and "32×32" in warnings[0]


def test_an_upload_is_classified_by_its_centre_square(env):
    from senet import load_checkpoint, predict, preprocess

    model, meta = load_checkpoint(env["checkpoints"] / "se_resnet20.pt")
    wide = np.zeros((32, 96, 3), dtype=np.uint8)
    wide[:, :32], wide[:, 32:64], wide[:, 64:] = (250, 10, 10), (10, 250, 10), (10, 10, 250)
    middle = predict(model, preprocess(Image.fromarray(wide[:, 32:64].copy()), meta))[0]
    squashed = predict(model, preprocess(Image.fromarray(wide).resize((32, 32), Image.BILINEAR), meta))[0]
    k = int(middle.argmax())
    assert f"{middle[k]:.1%}" != f"{squashed[int(squashed.argmax())]:.1%}", "precondition: crop and squash differ"
    at = _open()
    at.segmented_control(key="exc_mode").set_value("Upload").run()
    buf = io.BytesIO()
    Image.fromarray(wide).save(buf, format="PNG")
    at.file_uploader(key="exc_upload").set_value(("wide.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not at.error
    text = " ".join(str(m.value) for m in at.markdown)
    assert f"Predicted **{CLASSES[k]}** ({middle[k]:.1%})" in text
    assert "centred square resized to 32×32" in text
