"""The dashboard for another library's ImageNet SE model on a folder of photos (random weights, offline): every
class-level view works among the folder's classes, the paper's Fig. 6 and Fig. 7 presets draw its blocks and
classes, the pages say what a k-way prediction means, and data the model cannot be judged on is one line."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from conftest import IMAGENET_FOLDERS, app_environment, make_photo_folder, no_exceptions, open_app, texts

pytest.importorskip("timm", reason="timm is not installed (pip install 'senet-explorer[timm]')")

MODEL = "timm:legacy_seresnet50@random"
EXCITATION = "senet_dashboard/views/excitation.py"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict:
    """Two photos per class in WordNet-id folders (test/ only), and the dashboard's folders."""
    tmp = tmp_path_factory.mktemp("imagenet-photos")
    make_photo_folder(tmp / "photos", size=(200, 150))
    return {"spec": f"folder:{tmp / 'photos'}", "tmp": tmp}


@pytest.fixture
def app(photos):
    tmp = photos["tmp"]
    with app_environment(tmp / "checkpoints", tmp / "runs", photos["spec"], tmp / "cache"):
        yield lambda page=EXCITATION, **query: open_app(
            page, query={"checkpoint": MODEL, "data": photos["spec"], "split": "test", **query}, split="test")


def _view(at, label: str):
    at.segmented_control(key="exc_view").set_value(label).run()
    no_exceptions(at)
    assert not at.error, texts(at, "error")
    return at


def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_every_class_level_view_works_among_the_folders_classes(app):
    at = app()
    no_exceptions(at)
    readable = [IMAGENET_FOLDERS[k] for k in sorted(IMAGENET_FOLDERS)]
    assert at.selectbox(key="exc_class").options == readable, "WordNet-id folders named as the model names them"
    assert any("5-way choice" in c for i in at.image for c in i.captions), "the prediction among the 5 classes"
    assert at.pills(key="exc_block").options[-1] == "SE_5_3", "the paper's block names"
    assert "layer4.2.se_module" in " ".join(texts(at, "caption")), "the block's module path beside its name"

    _view(at, "Classes")
    heatmaps = [t for f in _figures(at) for t in f["data"] if t.get("type") == "heatmap"]
    rows = {y for t in heatmaps for y in t["y"]}
    assert heatmaps and {"pug", "tabby"} <= rows and any(r.startswith("goldfish") for r in rows), rows
    _view(at, "One channel")
    assert any("Opens it most" in m for m in texts(at, "markdown")), "the images that open the channel"
    _view(at, "Map")
    assert _figures(at), "the images placed by their gates"
    _view(at, "Spread")
    assert any("SE_5_3" in (f["layout"].get("title") or {}).get("text", "") for f in _figures(at))
    _view(at, "vs. its class")
    _view(at, "Across the split")  # its Run is clicked in the browser test (35 passes of 10 photos take ~35 s)
    assert at.button(key="exc_split_run").label == "Run"


def test_the_papers_fig6_and_fig7_presets(app):
    at = _view(app(), "Classes")
    at.button(key="exc_fig6_button").click().run()
    no_exceptions(at)
    caption = next(c for c in texts(at, "caption") if c.startswith("**The paper's Fig. 6**"))
    assert "random weights" in caption and "its four classes" in caption and "airliner" in caption, caption
    lines = [f for f in _figures(at) if any(t.get("mode") == "lines" for t in f["data"])][0]
    titles = [a["text"] for a in lines["layout"].get("annotations", []) if a.get("text", "").startswith("SE_")]
    assert titles == ["SE_2_3", "SE_3_4", "SE_4_6", "SE_5_1", "SE_5_2", "SE_5_3"], titles
    names = {t["name"] for t in lines["data"] if t.get("showlegend")}
    assert names == {"goldfish", "pug", "airliner", "cliff", "all classes"}, "no image dots: the paper has none"
    classes = at.selectbox(key="exc_class").options
    assert [classes[k] for k in at.multiselect(key="exc_profile_classes").value] == ["goldfish", "pug", "airliner",
                                                                                     "cliff"]

    at = _view(at, "Spread")
    at.button(key="exc_fig7_button").click().run()
    no_exceptions(at)
    assert any(c.startswith("**The paper's Fig. 7**") for c in texts(at, "caption"))
    titles = [(f["layout"].get("title") or {}).get("text", "") for f in _figures(at)]
    assert [t for t in titles if t.startswith("SE_5")] == ["SE_5_2: goldfish, 2 images", "SE_5_3: goldfish, 2 images"]
    assert at.segmented_control(key="exc_spread_statistic").value == "Mean ± std (the paper's)"


def test_confusion_says_it_is_a_k_way_choice(app):
    at = app("senet_dashboard/views/confusion.py")
    no_exceptions(at)
    assert any("a 5-way choice (not ImageNet top-1 or top-5)" in c for c in texts(at, "caption")), texts(at, "caption")
    assert any(m.label.startswith("Accuracy · test") for m in at.metric)


def test_data_the_model_cannot_be_judged_on_is_one_line(app, photos, tmp_path):
    stranger = tmp_path / "cats" / "test" / "kitty"
    stranger.mkdir(parents=True)
    Image.new("RGB", (64, 64), "red").save(stranger / "a.png")
    at = app(data=f"folder:{tmp_path / 'cats'}")
    no_exceptions(at)
    message = " ".join(texts(at, "info"))
    assert "'kitty'" in message and "WordNet ids" in message, message
    at = app(data="sample", split="val")
    no_exceptions(at)
    assert any("folder:PATH" in i and "n01443537" in i for i in texts(at, "info")), texts(at, "info")
