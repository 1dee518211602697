"""The SENet paper's figures on its own model: SE-ResNet-50's blocks named as the paper names them, ImageNet photo
folders (readable names or WordNet ids) judged among their classes, and the numbers of Fig. 6 and Fig. 7.

Offline: random weights (``@random``) and small synthetic photo folders."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from conftest import make_photo_folder
from senet.analysis import imagenet
from senet.analysis.imagenet import external_split, folder_classes, imagenet_wnids, model_wnids
from senet.analysis.paper_figures import (FIG6_BLOCKS, FIG6_CLASSES, FIG7_BLOCKS, paper_classes, paper_figure_numbers,
                                          resolve_blocks, resolve_classes, weights_words)
from senet.analysis.profiles import class_profiles
from senet.analysis.saturation import class_mean_std
from senet.checkpoint import open_checkpoint
from senet.data import DataError, load_split
from senet.models import create_model, se_blocks
from senet.models.gates import block_channels, block_reduction, module_paths, paper_names

pytest.importorskip("timm", reason="timm is not installed (pip install 'senet-explorer[timm]')")

# The paper's Table 1, SE-ResNet-50: stages conv2_x to conv5_x with 3, 4, 6 and 3 residual blocks, each block's SE
# module gating its output of 256, 512, 1024 and 2048 channels through a bottleneck of r = 16.
PAPER_STAGES = {2: (3, 256), 3: (4, 512), 4: (6, 1024), 5: (3, 2048)}
PAPER_WNIDS = {"goldfish": "n01443537", "pug": "n02110958", "airliner": "n02690373", "cliff": "n09246464"}


@pytest.fixture(scope="module")
def seresnet50():
    return open_checkpoint("timm:legacy_seresnet50@random")


@pytest.mark.parametrize("name, module", [("timm:legacy_seresnet50@random", "se_module"),
                                          ("timm:seresnet50@random", "se")])
def test_se_resnet50_blocks_are_named_as_in_the_papers_table(name, module):
    model = open_checkpoint(name).model
    blocks = se_blocks(model)
    expected = [f"SE_{stage}_{b}" for stage, (n, _) in PAPER_STAGES.items() for b in range(1, n + 1)]
    assert list(blocks) == expected, "16 blocks, input to output, SE_stage_block"
    assert {"SE_2_3", "SE_3_4", "SE_4_6", "SE_5_1", "SE_5_2", "SE_5_3"} <= set(blocks), "Fig. 6's six blocks"
    for block_name, block in blocks.items():
        stage, index = (int(v) for v in block_name.split("_")[1:])
        assert block_channels(block) == PAPER_STAGES[stage][1], block_name
        assert block_reduction(block) == 16, block_name
        assert module_paths(model)[block_name] == f"layer{stage - 1}.{index - 1}.{module}"
    assert module_paths(model)["SE_2_3"].startswith("layer1.2.") and module_paths(model)["SE_5_3"].startswith(
        "layer4.2."), "the issue's two anchors: layer1.2 is SE_2_3, layer4.2 is SE_5_3"


def test_other_models_keep_their_names():
    assert list(se_blocks(create_model("se_resnet20")))[0] == "stage1.block1", "the project's own names"
    mobile = open_checkpoint("torchvision:mobilenet_v3_small@random").model
    assert all(name == path for name, path in module_paths(mobile).items()), "no paper names for another layout"
    assert paper_names(["layer1.0.se", "features.3.se"]) is None, "one odd path: no paper names at all"
    assert paper_names(["layer1.0.se", "layer4.2.se_module"]) == {"layer1.0.se": "SE_2_1",
                                                                  "layer4.2.se_module": "SE_5_3"}


def test_gates_read_and_overridden_by_the_papers_names(seresnet50):
    from senet.models import excitations, gate_overrides

    x = torch.rand(1, 3, 64, 64)
    gates = excitations(seresnet50.model, x)
    assert gates["SE_5_3"].shape == (1, 2048)
    with torch.no_grad(), gate_overrides(seresnet50.model, {"SE_5_3": 1.0}):
        switched_off = seresnet50.model(x)
    with torch.no_grad():
        assert not torch.equal(switched_off, seresnet50.model(x)), "an override by the paper's name takes effect"


def test_wordnet_id_folders_are_matched_and_named_readably(tmp_path, seresnet50):
    folders = tuple(PAPER_WNIDS.values()) + ("tabby",)
    root = make_photo_folder(tmp_path / "photos", folders)
    assert len(imagenet_wnids()) == 1000 and imagenet_wnids()[1] == "n01443537"
    assert model_wnids(seresnet50.classes, seresnet50.card) == imagenet_wnids()
    restricted, data = external_split(seresnet50, f"folder:{root}", "test", tmp_path / "dd")
    readable = {v: k for k, v in PAPER_WNIDS.items()}
    expected = [readable.get(f, f) for f in sorted(folders)]
    assert restricted.classes == data.classes == expected, "WordNet-id folders read as the model names the class"
    assert restricted.card["class_subset"]["folders"] == sorted(folders), "the folders' own names are kept"
    indices = restricted.card["class_subset"]["indices"]
    assert [seresnet50.classes[i] for i in indices] == [readable.get(f, "tabby") for f in sorted(folders)]
    assert data.images.shape == (10, 3, 224, 224), "decoded at the model's input"


def test_a_folder_the_model_does_not_know_is_one_line(tmp_path, seresnet50):
    root = make_photo_folder(tmp_path / "photos", ("n01443537", "n99999999"))
    with pytest.raises(DataError) as info:
        external_split(seresnet50, f"folder:{root}", "test", tmp_path / "dd")
    message = str(info.value)
    assert "\n" not in message and "'n99999999'" in message and "WordNet ids" in message, message


def test_a_split_of_too_many_photos_is_refused_before_decoding(tmp_path, seresnet50, monkeypatch):
    root = make_photo_folder(tmp_path / "photos", ("goldfish", "pug"), per_class=3)
    monkeypatch.setattr(imagenet, "MAX_PHOTOS", 5)
    decoded = []
    monkeypatch.setattr(imagenet, "input_pixels", lambda *a: decoded.append(1))
    with pytest.raises(DataError) as info:
        external_split(seresnet50, f"folder:{root}", "test", tmp_path / "dd")
    assert "6 photos" in str(info.value) and "at most 5" in str(info.value) and "MiB" in str(info.value)
    assert not decoded, "refused before any photo is decoded at 224x224"


def test_a_folder_of_test_photos_alone_is_readable_and_listed_without_decoding(tmp_path):
    root = make_photo_folder(tmp_path / "photos", ("goldfish", "pug"))
    assert folder_classes(f"folder:{root}", "test") == ["goldfish", "pug"]
    assert len(load_split(f"folder:{root}", "test", tmp_path / "dd")) == 4, "no train/ beside test/ needed"
    with pytest.raises(DataError, match="no 'train' folder"):
        folder_classes(f"folder:{root}", "val")


def test_decoding_reports_its_progress(tmp_path, seresnet50):
    root = make_photo_folder(tmp_path / "photos", ("goldfish", "pug"), per_class=3)
    reports = []
    external_split(seresnet50, f"folder:{root}", "test", tmp_path / "dd", progress=lambda d, t: reports.append((d, t)))
    assert reports == [(i, 6) for i in range(1, 7)]


def test_the_papers_blocks_and_classes_are_the_defaults_where_present():
    blocks = [f"SE_{s}_{b}" for s, (n, _) in PAPER_STAGES.items() for b in range(1, n + 1)]
    assert resolve_blocks(None, blocks) == list(FIG6_BLOCKS)
    assert resolve_blocks(None, blocks, FIG7_BLOCKS) == ["SE_5_2", "SE_5_3"]
    assert resolve_blocks(None, ["stage1.block1", "stage2.block1"]) == ["stage1.block1", "stage2.block1"]
    assert resolve_blocks(["se_5_3", "SE_2_3"], blocks) == ["SE_5_3", "SE_2_3"], "any case, the order asked"
    with pytest.raises(ValueError) as info:
        resolve_blocks(["SE_6_1"], blocks)
    assert "'SE_6_1'" in str(info.value) and "SE_2_1" in str(info.value) and "\n" not in str(info.value)

    classes = ["tabby", "cliff", "airliner", "pug", "goldfish"]
    assert [classes[k] for k in resolve_classes(None, classes)] == ["goldfish", "pug", "airliner", "cliff"], \
        "the paper's four, in its order (its plane is ImageNet's airliner)"
    folders = ["n02123045", *[PAPER_WNIDS[c] for c in classes[1:]]]
    assert resolve_classes(["plane", "n02123045"], classes, folders=folders) == [2, 0], "the paper's word, a folder"
    assert resolve_classes(None, ["cat", "dog"]) == [0, 1], "none of the paper's: the data's first classes"
    assert paper_classes(["goldfish n01443537", "x"], FIG6_CLASSES) == [0]
    with pytest.raises(ValueError, match="class 'zebra': not among the data's 5 classes"):
        resolve_classes(["zebra"], classes)


def test_fig6_and_fig7_numbers_are_the_class_profiles(tmp_path, seresnet50):
    root = make_photo_folder(tmp_path / "photos", tuple(PAPER_WNIDS.values()), per_class=3)
    restricted, data = external_split(seresnet50, f"folder:{root}", "test", tmp_path / "dd")
    profiles = class_profiles(restricted, data, per_class=3)
    blocks = resolve_blocks(None, list(se_blocks(restricted.model)))
    classes = resolve_classes(None, data.classes, folders=restricted.card["class_subset"]["folders"])
    numbers = paper_figure_numbers(profiles, blocks, classes)
    assert numbers["classes"] == ["goldfish", "pug", "airliner", "cliff"] and list(numbers["blocks"]) == blocks
    goldfish = data.classes.index("goldfish")
    gates = profiles.gates["SE_5_2"][profiles.labels == goldfish].astype(np.float64)
    entry = numbers["blocks"]["SE_5_2"]["classes"]["goldfish"]
    np.testing.assert_allclose(entry["mean"], gates.mean(0), rtol=1e-6)
    np.testing.assert_allclose(entry["std"], gates.std(0, ddof=1), rtol=1e-6)
    np.testing.assert_allclose(entry["mean"], profiles.profiles["SE_5_2"][goldfish], atol=1e-3)  # fp16 gates kept
    np.testing.assert_allclose(class_mean_std(profiles, "SE_5_2", goldfish)[1], entry["std"])
    assert numbers["blocks"]["SE_2_3"]["channels"] == 256 and len(numbers["blocks"]["SE_5_3"]["all"]) == 2048
    assert numbers["images_per_class"] == {"goldfish": 3, "pug": 3, "airliner": 3, "cliff": 3}


def test_which_weights_are_said():
    assert "the SENet authors' own" in weights_words("timm:legacy_seresnet50", {
        "source": "timm", "architecture": "legacy_seresnet50", "weights_state": "pretrained",
        "weights": "legacy_seresnet50.in1k"})
    assert "not the authors'" in weights_words("timm:seresnet50", {
        "source": "timm", "architecture": "seresnet50", "weights_state": "pretrained", "weights": "seresnet50.a1_in1k"})
    assert "random weights" in weights_words("timm:legacy_seresnet50@random", {"weights_state": "random"})
