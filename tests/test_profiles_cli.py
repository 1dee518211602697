"""``senet profiles``: the SENet paper's Fig. 6 and Fig. 7 for SE-ResNet-50 (random weights, offline) on a folder
of photos named by WordNet id, and for a project checkpoint; its one-line errors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import call_cli, make_photo_folder

MODEL = "timm:legacy_seresnet50@random"
WNIDS = ("n01440764", "n01443537", "n02110958", "n02690373", "n09246464")  # tench, goldfish, pug, airliner, cliff
PAPER_SIX = ["SE_2_3", "SE_3_4", "SE_4_6", "SE_5_1", "SE_5_2", "SE_5_3"]
PAPER_FOUR = ["goldfish", "pug", "airliner", "cliff"]  # as the model names the folders' WordNet ids

pytest.importorskip("timm")


@pytest.fixture(autouse=True)
def matplotlib_home(tmp_path: Path, monkeypatch) -> None:
    """matplotlib's font cache in the test's own folder, not the user's (when it is first imported here)."""
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """PATH/test/<wnid>/: two small photos per class (a PNG and a JPEG), five classes."""
    return make_photo_folder(tmp_path / "photos", WNIDS, size=(56, 40), suffixes=(".png", ".jpg"))


def profiles(capsys, photos: Path, *extra: str) -> tuple[int, str, str]:
    return call_cli(capsys, "profiles", "--checkpoint", MODEL, "--data", f"folder:{photos}", "--split", "test",
                    "--data-dir", str(photos.parent / "cache"), *extra)


def test_fig6_defaults_to_the_papers_six_blocks_and_four_classes_and_writes_a_png(capsys, photos: Path,
                                                                                  tmp_path: Path) -> None:
    out = tmp_path / "fig6.png"
    code, stdout, err = profiles(capsys, photos, "--json", "--out", str(out))
    assert code == 0, err
    result = json.loads(stdout)
    assert list(result["blocks"]) == PAPER_SIX
    assert result["classes"] == PAPER_FOUR  # the paper's order; tench, the folder's first class, is not drawn
    assert result["figure"] == 6 and result["per_class"] == 50 and result["split"] == "test"
    assert "random weights" in result["weights"]
    assert result["images_per_class"] == {c: 2 for c in PAPER_FOUR}
    assert result["all_images"] == 10 and len(result["all_classes"]) == 5  # "all": every sampled image
    block = result["blocks"]["SE_5_3"]
    assert block["channels"] == 2048 and len(block["all"]) == 2048
    assert set(block["classes"]) == set(PAPER_FOUR)
    assert all(0.0 <= v <= 1.0 for v in block["classes"]["pug"]["mean"])
    assert result["gate_ranges"]["SE_2_3"] == [0.0, 1.0]
    assert str(out) in err  # with --json, the line naming the figure goes to stderr
    with Image.open(out) as png:
        assert png.format == "PNG"
        width, height = png.size
    assert 1200 <= width <= 2000 and 700 <= height <= 1400  # 2 x 3 panels at 150 dpi


def test_the_json_numbers_are_class_profiles_of_the_photos(capsys, photos: Path) -> None:
    from senet.analysis.imagenet import external_split
    from senet.analysis.profiles import class_profiles
    from senet.checkpoint import open_checkpoint

    code, stdout, err = profiles(capsys, photos, "--json", "--blocks", "se_4_6", "--classes", "n09246464", "pug")
    assert code == 0, err
    result = json.loads(stdout)
    assert list(result["blocks"]) == ["SE_4_6"]
    assert result["classes"] == ["cliff", "pug"]  # in the order asked
    checkpoint, data = external_split(open_checkpoint(MODEL), f"folder:{photos}", "test", photos.parent / "cache")
    direct = class_profiles(checkpoint, data, per_class=50)
    k = data.classes.index("cliff")
    cliff = result["blocks"]["SE_4_6"]["classes"]["cliff"]["mean"]
    np.testing.assert_allclose(cliff, direct.profiles["SE_4_6"][k], atol=1e-3)
    np.testing.assert_allclose(result["blocks"]["SE_4_6"]["all"], direct.overall["SE_4_6"], atol=1e-3)
    gates = direct.gates["SE_4_6"][direct.labels == k].astype(np.float64)
    np.testing.assert_allclose(result["blocks"]["SE_4_6"]["classes"]["cliff"]["std"],
                               gates.std(0, ddof=1), atol=1e-6)


def test_fig7_gives_mean_and_std_at_se_5_2_and_se_5_3_and_writes_an_svg(capsys, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "fig7.svg"
    code, stdout, err = profiles(capsys, photos, "--figure", "7", "--json", "--out", str(out))
    assert code == 0, err
    result = json.loads(stdout)
    assert list(result["blocks"]) == ["SE_5_2", "SE_5_3"]
    assert result["classes"] == ["goldfish", "airliner"]  # the paper's goldfish and plane
    for block in ("SE_5_2", "SE_5_3"):
        for stats in result["blocks"][block]["classes"].values():
            assert len(stats["mean"]) == len(stats["std"]) == 2048
            assert min(stats["std"]) >= 0 and max(stats["std"]) > 0  # two different photos: the gates differ
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "SE_5_3" in text


def test_the_text_table_has_a_row_per_block_and_the_all_column(capsys, photos: Path) -> None:
    code, stdout, err = profiles(capsys, photos)
    assert code == 0, err
    lines = stdout.splitlines()
    assert "random weights" in stdout and "airliner" in stdout
    rows = [line.split() for line in lines if line.split() and line.split()[0] in PAPER_SIX]
    assert [r[0] for r in rows] == PAPER_SIX
    assert all(len(r) == 2 + 4 + 1 and all(0 <= float(v) <= 1 for v in r[2:]) for r in rows)  # 4 classes and all


@pytest.mark.parametrize("extra, words", [
    (("--blocks", "SE_2_3", "SE_9_9"), ["--blocks", "'SE_9_9'", "SE_2_1"]),
    (("--classes", "zebra"), ["--classes", "'zebra'", "5 classes"]),
])
def test_an_unknown_block_or_class_is_one_line(capsys, photos: Path, tmp_path: Path, extra, words) -> None:
    out = tmp_path / "never.png"
    code, stdout, err = profiles(capsys, photos, "--out", str(out), *extra)
    assert code == 2 and not stdout and not out.exists()
    assert err.count("\n") == 1 and err.startswith("senet profiles: error: ")
    assert all(w in err for w in words), err


def test_bad_arguments_are_one_line_before_anything_is_computed(capsys, photos: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    (tmp_path / "folder.svg").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    for extra, words in [(("--per-class", "0"), ["--per-class 0", "1 to 1000"]),
                         (("--per-class", "1001"), ["--per-class 1001"]),
                         (("--out", str(tmp_path / "fig.jpg")), ["fig.jpg", ".png, .svg, .pdf", ".jpg"]),
                         (("--out", str(tmp_path / "fig")), ["a file without a suffix"]),
                         (("--out", str(tmp_path / "missing" / "fig.png")), ["no directory", "missing"]),
                         (("--out", str(fifo)), ["pipe.png", "a FIFO"]),
                         (("--out", str(tmp_path / "folder.svg")), ["folder.svg", "a directory"])]:
        code, stdout, err = call_cli(capsys, "profiles", "--checkpoint", "no-such-checkpoint.pt", "--data",
                                     f"folder:{photos}", *extra)
        assert code == 2 and not stdout, err
        assert err.count("\n") == 1 and err.startswith("senet profiles: error: "), err
        assert all(w in err for w in words), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_a_project_checkpoint_draws_every_block_and_its_classes(capsys, tiny_checkpoint: Path, tiny_folder: Path,
                                                                 tmp_path: Path) -> None:
    from senet.checkpoint import open_checkpoint
    from senet.models import se_blocks

    out = tmp_path / "tiny.pdf"
    code, stdout, err = call_cli(capsys, "profiles", "--checkpoint", str(tiny_checkpoint), "--data",
                                 f"folder:{tiny_folder}", "--data-dir", str(tmp_path / "cache"), "--per-class", "3",
                                 "--json", "--out", str(out))
    assert code == 0, err
    result = json.loads(stdout)
    blocks = list(se_blocks(open_checkpoint(tiny_checkpoint).model))
    assert len(blocks) == 9 and list(result["blocks"]) == blocks  # no paper blocks: every block
    assert result["classes"] == ["blue", "green", "red"]  # none of the paper's classes: the first ten
    assert result["images_per_class"] == {"blue": 2, "green": 2, "red": 2}  # the val holdout: 2 of 20 each
    assert out.read_bytes().startswith(b"%PDF")
