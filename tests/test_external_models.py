"""Other libraries' ImageNet SE models (torchvision, timm): found gates, overrides, preprocessing, offline and
missing-timm messages, the command line and the dashboard. Randomly initialised models only: nothing downloads."""
from __future__ import annotations

import io
import socket
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import make_photo_folder
from senet import CheckpointError, excitations, gate_overrides, open_checkpoint, preprocess, se_blocks
from senet.data import input_pixels
from senet.models.gates import block_channels, block_gate_range, block_reduction, gate_module, module_paths, paper_names

SMALL_INPUT = (1, 3, 64, 64)  # the gates need no 224x224 input: keeps these tests fast


def _torchvision_se() -> type:
    from torchvision.ops import SqueezeExcitation
    return SqueezeExcitation


def _timm_se() -> tuple[type, ...]:
    import timm.layers.squeeze_excite as layers
    import timm.models._efficientnet_blocks as effnet
    import timm.models.senet as senet
    return layers.SEModule, layers.EffectiveSEModule, effnet.SqueezeExcite, senet.SEModule


# name, the library's own SE module types (counted independently of senet's lookup)
FAMILIES = [
    ("torchvision:mobilenet_v3_large@random", _torchvision_se),
    ("torchvision:efficientnet_b0@random", _torchvision_se),
    ("torchvision:regnet_y_400mf@random", _torchvision_se),
    ("timm:seresnet50@random", _timm_se),
    ("timm:legacy_seresnet18@random", _timm_se),
    ("timm:efficientnet_b0@random", _timm_se),
]


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch, tmp_path):
    """Caches in a fresh folder, so that no test finds (or leaves) weights on this machine."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


@pytest.mark.parametrize("name, se_types", FAMILIES, ids=[f[0].split("@")[0] for f in FAMILIES])
def test_gates_of_every_se_module_are_found_named_and_in_range(name, se_types):
    ckpt = open_checkpoint(name)
    types = se_types()
    paths = [path for path, m in ckpt.model.named_modules() if isinstance(m, types)]
    blocks = se_blocks(ckpt.model)
    named = module_paths(ckpt.model)
    assert paths and list(named.values()) == paths, "every SE module, in order"
    resnet = paths[0].startswith("layer")  # a ResNet's blocks: the paper's names, SE_stage_block
    assert list(blocks) == (list(paper_names(paths).values()) if resnet else paths), "named by the paper or by path"
    modules = dict(ckpt.model.named_modules())
    assert all(modules[named[n]] is b for n, b in blocks.items())
    gates = excitations(ckpt.model, torch.rand(2, *SMALL_INPUT[1:]))
    assert list(gates) == list(blocks)
    for n, g in gates.items():
        low, high = block_gate_range(blocks[n])
        assert g.shape == (2, block_channels(blocks[n])), n
        assert torch.isfinite(g).all() and g.min() >= low and g.max() <= high, n
    assert len(ckpt.classes) == 1000 and len(set(ckpt.classes)) == 1000, "ImageNet's class names, unique"
    assert ckpt.input_size[1:] != (32, 32) and ckpt.mean != (0.4914, 0.4822, 0.4465), "not CIFAR's"
    assert "random" in ckpt.card["weights_note"]


@pytest.mark.parametrize("name", ["torchvision:mobilenet_v3_small@random", "timm:legacy_seresnet18@random",
                                  "timm:efficientnet_b0@random"])
def test_gate_overrides_change_the_output_and_leave_no_hooks(name):
    ckpt = open_checkpoint(name)
    model, x = ckpt.model, torch.rand(*SMALL_INPUT)
    blocks = se_blocks(model)
    first, last = list(blocks)[0], list(blocks)[-1]
    with torch.no_grad():
        before = model(x)
        with gate_overrides(model, {last: 1.0}):
            off = model(x)
            gates = excitations(model, x)
        profile = torch.linspace(0, 1, block_channels(blocks[first]))
        with gate_overrides(model, {first: profile}):
            replaced = excitations(model, x)[first][0]
        after = model(x)
    assert not torch.allclose(off, before, rtol=1e-3, atol=0), "SE off in the last block changes the logits"
    assert torch.allclose(gates[last], torch.ones_like(gates[last])), "the captured gate is the override"
    assert torch.allclose(replaced, profile), "a (C,) profile replaces the gate channel by channel"
    assert torch.equal(after, before), "outside the context the model is as it was"
    assert all(not gate_module(b)._forward_hooks for b in blocks.values())


def test_a_channels_last_timm_se_module_is_read_and_overridden_per_channel():
    from timm.layers.squeeze_excite import SqueezeExciteCl

    model = nn.Sequential(SqueezeExciteCl(16, rd_channels=4))
    x = torch.rand(2, 5, 5, 16)  # N, H, W, C
    (name,) = se_blocks(model)
    gate = excitations(model, x)[name]
    assert gate.shape == (2, 16)
    profile = torch.linspace(0.1, 0.9, 16)
    with gate_overrides(model, {name: profile}), torch.no_grad():
        out = model(x)
    assert torch.allclose(out, x * profile), "the profile scales the last (channel) dimension"


def test_random_initialisation_is_the_same_every_time():
    a = open_checkpoint("torchvision:mobilenet_v3_small@random").model.state_dict()
    b = open_checkpoint("torchvision:mobilenet_v3_small@random").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- preprocessing
def _photo(width: int = 400, height: int = 300) -> Image.Image:
    """A smooth picture (resampling differences stay small) with a 10-pixel red frame."""
    yy, xx = np.mgrid[0:height, 0:width]
    arr = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 255 // (width + height)], -1).astype(np.uint8)
    arr[:10], arr[-10:], arr[:, :10], arr[:, -10:] = (255, 0, 0), (255, 0, 0), (255, 0, 0), (255, 0, 0)
    return Image.fromarray(arr)


def test_photos_are_prepared_as_torchvisions_own_transforms_prepare_them():
    import torchvision.models as tvm

    ckpt = open_checkpoint("torchvision:efficientnet_b0@random")
    photo = _photo()
    ours = preprocess(photo, ckpt)[0]
    theirs = tvm.get_model_weights("efficientnet_b0").DEFAULT.transforms()(photo)
    assert ours.shape == theirs.shape == (3, *ckpt.input_size[1:])
    assert (ours - theirs).abs().mean() < 0.05, "resize 256, centre crop 224, bicubic, ImageNet normalisation"
    square = preprocess(photo, {**ckpt.card, "input_size": ckpt.input_size, "mean": ckpt.mean, "std": ckpt.std,
                                "preprocessing": {"crop_pct": 1.0}})[0]
    assert (square - theirs).abs().mean() > 2 * (ours - theirs).abs().mean(), "the crop fraction matters"


def test_photos_are_prepared_as_timms_own_transforms_prepare_them():
    import timm.data

    ckpt = open_checkpoint("timm:seresnet50@random")
    photo = _photo()
    config = timm.data.resolve_model_data_config(ckpt.model)
    theirs = timm.data.create_transform(**config)(photo)
    ours = preprocess(photo, ckpt)[0]
    assert ours.shape == theirs.shape and (ours - theirs).abs().mean() < 0.05


# --------------------------------------------------------------------------- failures, one line each
def _one_line(exc: BaseException, *words: str) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    for w in words:
        assert w in text, (w, text)
    return text


@pytest.mark.parametrize("error", [urllib.error.URLError("[Errno -2] Name or service not known"),
                                   OSError("Network is unreachable")])
def test_offline_torchvision_weights_fail_in_one_line_naming_the_model(monkeypatch, capsys, error):
    def offline(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)  # the download itself
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint("torchvision:mobilenet_v3_small")
    _one_line(caught.value, "torchvision:mobilenet_v3_small", "could not be fetched", "@random")
    from senet.cli import main

    assert main(["excite", "--checkpoint", "torchvision:mobilenet_v3_small", "photo.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not be fetched" in err, err


def test_offline_timm_weights_fail_at_once_in_one_line(monkeypatch):
    def no_route(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for key in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)  # not cached here
    monkeypatch.setattr(socket, "create_connection", no_route)
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint("timm:seresnet50")
    _one_line(caught.value, "timm:seresnet50", "could not be fetched", "huggingface.co")


def test_a_failing_timm_hub_download_is_one_line(monkeypatch):
    import timm.models._hub as hub

    class Connected:
        def close(self) -> None:
            pass

    def hub_down(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: Connected())
    monkeypatch.setattr(hub, "hf_hub_download", hub_down)
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint("timm:efficientnet_b0")  # weights on the Hugging Face hub
    _one_line(caught.value, "timm:efficientnet_b0", "could not be fetched")


def test_without_timm_the_message_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint("timm:seresnet50@random")
    _one_line(caught.value, "timm:seresnet50", "pip install", "senet-explorer[timm]")


@pytest.mark.parametrize("name, words", [
    ("torchvision:resnet18@random", ("no SE modules", "mobilenet_v3")),
    ("torchvision:no_such_net", ("no_such_net", "no classification model")),
    ("torchvision:mobilenet_v3_small@IMAGENET9K", ("IMAGENET9K", "IMAGENET1K_V1")),
    ("timm:no_such_net@random", ("no_such_net",)),
    ("torchvision:", ("give a model name",)),
])
def test_bad_names_are_one_line_errors(name, words):
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(name)
    _one_line(caught.value, *words)


# --------------------------------------------------------------------------- command line
def test_cli_info_shows_an_imagenet_models_card_without_downloading(capsys):
    import torchvision.models as tvm
    from torchvision.ops import SqueezeExcitation

    from senet.cli import main

    assert main(["info", "torchvision:mobilenet_v3_large"]) == 0
    out = capsys.readouterr().out
    expected = [p for p, m in tvm.mobilenet_v3_large().named_modules() if isinstance(m, SqueezeExcitation)]
    assert f"in {len(expected)} blocks" in out
    assert all(f"  {p} " in out for p in expected), "every SE module by its path"
    assert "1000" in out and "tench" in out and "IMAGENET1K" in out, out
    assert main(["info", "--model", "torchvision:mobilenet_v3_large", "--json"]) == 0
    assert '"external": true' in capsys.readouterr().out


def test_cli_excite_names_imagenet_classes_and_says_the_weights_are_random(tmp_path, capsys):
    from torchvision.models import get_model_weights

    from senet.cli import main

    photo = tmp_path / "photo.jpg"
    _photo().save(photo)
    assert main(["excite", "--checkpoint", "torchvision:mobilenet_v3_small@random", str(photo), "--top", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "random initialisation" in out[0]
    predicted = out[1].split(": ", 1)[1].rsplit(" (", 1)[0]
    assert predicted in get_model_weights("mobilenet_v3_small").DEFAULT.meta["categories"]
    n_blocks = len(se_blocks(open_checkpoint("torchvision:mobilenet_v3_small@random").model))
    assert sum(line.startswith("  features.") for line in out) == n_blocks


def _imagenet_folder(root: Path, classes: tuple[str, ...] = ("goldfish", "tabby", "golden_retriever"),
                     per_class: int = 3) -> Path:
    """Photos in class folders named after ImageNet classes (any case, ``_`` for a space), train/ and test/."""
    return make_photo_folder(root, classes, per_class, parts=("train", "test"), suffixes=(".png",))


def test_cli_evaluate_judges_an_imagenet_model_among_the_folders_classes(tmp_path, capsys):
    import json

    from senet.analysis.imagenet import external_split
    from senet.cli import main

    root = _imagenet_folder(tmp_path / "photos")
    name = "torchvision:mobilenet_v3_small@random"
    args = ["evaluate", "--checkpoint", name, "--data", f"folder:{root}", "--split", "test",
            "--data-dir", str(tmp_path / "dd"), "--cache-dir", str(tmp_path / "cache")]
    assert main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["classes"] == ["golden_retriever", "goldfish", "tabby"] and result["n"] == 9
    assert np.array(result["confusion_matrix"]).shape == (3, 3), "a 3 x 3 matrix, not 1,000 x 1,000"
    assert main(args) == 0  # the text report says what the accuracy means
    out = capsys.readouterr().out
    assert "3-way choice" in out and "golden_retriever" in out

    ckpt = open_checkpoint(name)
    restricted, data = external_split(ckpt, f"folder:{root}", "test", tmp_path / "dd")
    assert data.images.shape == (9, 3, *ckpt.input_size[1:]), "decoded at the model's input, not 32 x 32"
    for pixels, file in zip(data.images, data.names):  # each photo as its weights prepare it
        assert torch.equal(pixels, input_pixels(Image.open(root / file), ckpt)), file
    columns = [ckpt.classes.index(c) for c in ("golden retriever", "goldfish", "tabby")]
    x = preprocess(Image.open(root / data.names[0]), ckpt)
    with torch.no_grad():
        assert torch.equal(restricted.model(x), ckpt.model(x)[:, columns]), "the logits of the folder's classes"
    assert list(se_blocks(restricted.model)) == list(se_blocks(ckpt.model)), "the same gates, the same names"


@pytest.mark.parametrize("make, words", [
    (lambda root: _imagenet_folder(root, ("goldfish", "kitty")), ("'kitty'", "name each class folder")),
    (lambda root: "sample", ("folder:PATH",)),
])
def test_cli_evaluate_refuses_data_an_imagenet_model_cannot_be_judged_on_in_one_line(tmp_path, capsys, make, words):
    from senet.cli import main

    made = make(tmp_path / "photos")
    spec = made if isinstance(made, str) else f"folder:{made}"
    assert main(["evaluate", "--checkpoint", "torchvision:mobilenet_v3_small@random", "--data", spec,
                 "--data-dir", str(tmp_path / "dd")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words), err


# --------------------------------------------------------------------------- dashboard
@pytest.mark.parametrize("name", ["torchvision:mobilenet_v3_small", "timm:legacy_seresnet18"])
def test_excitation_page_shows_an_uploaded_photos_imagenet_top5_and_every_blocks_gates(tmp_path, monkeypatch, name):
    import json

    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    monkeypatch.setenv("SENET_CHECKPOINTS", str(tmp_path / "none"))
    monkeypatch.setenv("SENET_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("SENET_DATA", "sample")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.sidebar.selectbox(key="imagenet_name").set_value(name)
    at.sidebar.toggle(key="imagenet_pretrained").set_value(False)
    at.sidebar.button(key="imagenet_open").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.selectbox(key="checkpoint").value == f"{name}@random"
    assert any("random initialisation" in str(c.value) for c in at.sidebar.caption), "random weights said plainly"
    at.switch_page("senet_dashboard/views/excitation.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("ImageNet" in str(i.value) and "Upload" in str(i.value) for i in at.info), \
        "without matching labelled data the page says what it needs and what still works"
    at.segmented_control(key="exc_mode").set_value("Upload").run()
    buf = io.BytesIO()
    _photo().save(buf, format="JPEG")
    at.file_uploader(key="exc_upload").set_value(("photo.jpg", buf.getvalue(), "image/jpeg")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert "Gates of this image" in [s.value for s in at.subheader]
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    ckpt = open_checkpoint(f"{name}@random")
    categories = set(ckpt.classes)
    top = next(c for image in at.image for c in image.captions if c.startswith("Top 5, softmax probability: "))
    names = [item.rsplit(" ", 1)[0] for item in top.removeprefix("Top 5, softmax probability: ").split(" · ")]
    assert len(names) == 5 and set(names) <= categories, f"a top-5 of ImageNet names: {names}"
    blocks = list(se_blocks(ckpt.model))
    rows = [t["y"] for s in specs for t in s["data"] if t.get("type") == "heatmap"]
    assert blocks in rows, f"one heatmap row per SE block, named by path: {rows}"
    at.segmented_control(key="exc_view").set_value("Inside a block").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(str(m.value).startswith("**Channel ") for m in at.markdown), "the library block, step by step"


def test_sidebar_says_in_one_line_when_an_imagenet_models_weights_cannot_be_fetched(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)  # the download itself
    monkeypatch.setenv("SENET_CHECKPOINTS", str(tmp_path / "none"))
    monkeypatch.setenv("SENET_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("SENET_DATA", "sample")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    before = at.session_state["checkpoint"]
    at.sidebar.selectbox(key="imagenet_name").set_value("torchvision:mobilenet_v3_small")
    at.sidebar.button(key="imagenet_open").click().run()  # pretrained weights: the default
    assert not at.exception, [e.value for e in at.exception]
    errors = [str(e.value) for e in at.sidebar.error]
    assert len(errors) == 1, errors
    _one_line(Exception(errors[0]), "torchvision:mobilenet_v3_small", "could not be fetched", "Pretrained weights off")
    assert at.session_state["checkpoint"] == before, "the selection stays as it was"


@pytest.mark.parametrize("name", ["torchvision:mobilenet_v3_small@random", "timm:legacy_seresnet18@random",
                                  "timm:efficientnet_b0@random"])
def test_one_library_block_step_by_step_reads_its_own_submodules(name):
    from senet.analysis.inside import block_steps

    ckpt = open_checkpoint(name)
    x = torch.rand(*SMALL_INPUT)
    last = list(se_blocks(ckpt.model))[-1]
    steps = block_steps(ckpt.model, x, last)
    assert not steps.recomputed and steps.per_pixel is False
    np.testing.assert_allclose(steps.gate, excitations(ckpt.model, x)[last][0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(steps.z, steps.u.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert steps.check_error < 1e-4, "gate x u is the block's own output"
    assert len(steps.hidden) == round(steps.channels / float(block_reduction(se_blocks(ckpt.model)[last])))
