"""The ``cifar100`` data spec: a small archive in torchvision's CIFAR-100 format written here, torchvision's own
checksum checks (matched to the written files, never skipped), the offline and damaged-archive errors, training
and evaluation through ``senet``, and the explorer's pages with 100 classes."""
from __future__ import annotations

import hashlib
import html
import io
import json
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from conftest import app_environment, call_cli, no_exceptions, open_app
from senet.data import DataError, load_split

# CIFAR-100's 100 fine classes in the order of its archive's meta file (torchvision's class order)
FINE_NAMES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm").split()
ARCHIVE = "cifar-100-python.tar.gz"
assert len(FINE_NAMES) == 100


def class_images(labels: np.ndarray, rng: np.random.Generator, noise: float = 12.0) -> np.ndarray:
    """Rows of 3072 uint8 (CIFAR's channel-major layout): a colour and a stripe pattern per class, plus noise."""
    yy, xx = np.mgrid[0:32, 0:32]
    rows = []
    for k in labels:
        colour = np.array([(k * 37) % 256, (k * 91 + 60) % 256, (k * 53 + 120) % 256], dtype=float)
        period = 2 + k % 5
        stripes = [(yy // period) % 2, (xx // period) % 2, ((xx + yy) // period) % 2, np.zeros_like(xx)][(k // 5) % 4]
        img = colour[:, None, None] * (0.55 + 0.45 * stripes[None]) + rng.normal(0, noise, (3, 32, 32))
        rows.append(np.clip(img, 0, 255).astype(np.uint8).reshape(-1))
    return np.stack(rows)


def _pickle_part(labels: np.ndarray, rng: np.random.Generator, name: str, noise: float) -> tuple[bytes, dict]:
    data = class_images(labels, rng, noise)
    coarse = [int(k) // 5 for k in labels]  # not the fine labels: a loader that read these would fail the tests
    entry = {"filenames": [f"{name}_{i}.png" for i in range(len(labels))], "batch_label": f"{name} batch",
             "fine_labels": [int(k) for k in labels], "coarse_labels": coarse, "data": data}
    return pickle.dumps(entry, protocol=2), {"data": data, "fine": np.asarray(labels), "coarse": np.asarray(coarse)}


def write_cifar100_archive(data_dir: Path, names: tuple[str, ...] | list[str] = FINE_NAMES, train_per_class: int = 4,
                           test_per_class: int = 2, seed: int = 0, noise: float = 12.0) -> dict:
    """``data_dir/cifar-100-python.tar.gz`` as torchvision's CIFAR-100 download is: ``cifar-100-python/`` with
    the ``train``, ``test`` and ``meta`` pickles. Returns what was written and every file's MD5."""
    rng = np.random.default_rng(seed)
    k = len(names)
    files, written = {}, {}
    for part, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = rng.permutation(np.repeat(np.arange(k), per_class))
        files[part], written[part] = _pickle_part(labels, rng, part, noise)
    files["meta"] = pickle.dumps({"fine_label_names": list(names),
                                  "coarse_label_names": [f"superclass_{i}" for i in range(k // 5 or 1)]}, protocol=2)
    data_dir.mkdir(parents=True, exist_ok=True)
    archive = data_dir / ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size, info.mtime = len(blob), 1_200_000_000
            tar.addfile(info, io.BytesIO(blob))
    written["md5"] = {name: hashlib.md5(blob).hexdigest() for name, blob in files.items()}
    written["md5"]["archive"] = hashlib.md5(archive.read_bytes()).hexdigest()
    written["names"] = list(names)
    return written


def match_checksums(mp: pytest.MonkeyPatch, md5: dict) -> None:
    """Give torchvision's CIFAR100 the written files' MD5s in place of the published ones; its checks still run."""
    import torchvision

    cls = torchvision.datasets.CIFAR100
    mp.setattr(cls, "tgz_md5", md5["archive"])
    mp.setattr(cls, "train_list", [["train", md5["train"]]])
    mp.setattr(cls, "test_list", [["test", md5["test"]]])
    mp.setattr(cls, "meta", dict(cls.meta, md5=md5["meta"]))


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> list:
    """No test here reaches the network: every URL opened is recorded and refused as an offline machine does."""
    opened: list = []

    def offline(request, *args, **kwargs):
        opened.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return opened


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A small CIFAR-100 archive (4 train and 2 test images per class) with matching checksums."""
    written = write_cifar100_archive(tmp_path / "data")
    match_checksums(monkeypatch, written["md5"])
    return dict(written, data_dir=tmp_path / "data")


def one_line(message: str) -> str:
    assert message.strip() and "\n" not in message.strip(), f"expected one line, got {message!r}"
    return message


call = call_cli  # run senet in this process: (exit code, stdout, stderr)


# --------------------------------------------------------------------------- loading
def test_train_val_and_test_come_from_the_archive_with_fine_labels_and_the_meta_files_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list) -> None:
    names = list(reversed(FINE_NAMES))  # not sorted: the class order must be the meta file's, as torchvision's
    written = write_cifar100_archive(tmp_path / "data", names=names)
    match_checksums(monkeypatch, written["md5"])
    train = load_split("cifar100", "train", data_dir=tmp_path / "data", val_size=100)
    val = load_split("cifar100", "val", data_dir=tmp_path / "data", val_size=100)
    test = load_split("cifar100", "test", data_dir=tmp_path / "data")
    assert no_network == [], "the archive is present and matches: nothing is downloaded"
    assert (tmp_path / "data" / "cifar-100-python" / "meta").is_file(), "torchvision unpacked its archive"
    assert train.classes == val.classes == test.classes == names
    assert (len(train), len(val), len(test)) == (300, 100, 200)
    assert torch.bincount(val.labels, minlength=100).tolist() == [1] * 100, "stratified: one of each class held out"
    assert train.images.shape == (300, 3, 32, 32) and train.images.dtype == torch.uint8
    src = written["test"]
    assert test.labels.tolist() == src["fine"].tolist() != src["coarse"].tolist(), "the fine labels, in order"
    assert torch.equal(test.images, torch.from_numpy(src["data"].reshape(-1, 3, 32, 32))), "rows are CHW"
    for part in (train, val):
        rows = part.indices.numpy()
        assert part.labels.tolist() == written["train"]["fine"][rows].tolist()
        assert torch.equal(part.images, torch.from_numpy(written["train"]["data"][rows].reshape(-1, 3, 32, 32)))
    assert not set(train.indices.tolist()) & set(val.indices.tolist())


def test_a_second_load_reads_the_uint8_cache_not_the_archive(archive: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    first = load_split("cifar100", "test", data_dir=archive["data_dir"])
    assert list((archive["data_dir"] / ".senet-cache").glob("cifar100-test-*.pt")), "expected a cifar100 cache file"

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", refuse)
    again = load_split("cifar100", "test", data_dir=archive["data_dir"])
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert again.classes == FINE_NAMES


def test_offline_the_download_fails_in_one_line_naming_cifar100_and_the_way_out(tmp_path: Path, capsys,
                                                                                 no_network: list) -> None:
    with pytest.raises(DataError) as err:
        load_split("cifar100", "train", data_dir=tmp_path / "empty")
    message = one_line(str(err.value))
    assert no_network and "cifar-100-python.tar.gz" in str(no_network[0]), "the real download was attempted"
    assert message.startswith("cifar100: could not download CIFAR-100 into") and "folder:PATH" in message, message
    assert "offline?" in message and "URLError" in message, message
    code, _, err_text = call(capsys, "train", "--model", "resnet20", "--data", "cifar100",
                             "--data-dir", str(tmp_path / "empty"), "--run-dir", str(tmp_path / "run"))
    assert code == 2 and "cifar100: could not download CIFAR-100" in one_line(err_text), err_text
    assert not (tmp_path / "run").exists(), "nothing is written when the data cannot be had"


def _damaged_offline(data_dir: Path, mp: pytest.MonkeyPatch) -> None:
    """A half-downloaded archive (its MD5 no longer matches) and no network to fetch it again."""
    blob = (data_dir / ARCHIVE).read_bytes()
    (data_dir / ARCHIVE).write_bytes(blob[: len(blob) // 2])


def _download_arrives_corrupt(data_dir: Path, mp: pytest.MonkeyPatch) -> None:
    """The archive is damaged, and downloading it again gives bytes that fail CIFAR-100's MD5 as well."""
    import torchvision.datasets.utils as tv_utils

    (data_dir / ARCHIVE).write_bytes(b"\x1f\x8b not quite an archive")
    mp.setattr(tv_utils, "_get_redirect_url", lambda url, max_hops=3: url)
    mp.setattr(tv_utils, "_urlretrieve", lambda url, path, chunk_size=0: Path(path).write_bytes(b"<html>proxy</html>"))


def _cannot_unpack(data_dir: Path, mp: pytest.MonkeyPatch) -> None:
    """An archive whose MD5 matches but which is no tar.gz (the checksum check passes, the unpacking fails)."""
    import torchvision

    junk = b"\x1f\x8b\x08\x00 this is not gzip data"
    (data_dir / ARCHIVE).write_bytes(junk)
    mp.setattr(torchvision.datasets.CIFAR100, "tgz_md5", hashlib.md5(junk).hexdigest())


@pytest.mark.parametrize("damage, expected", [
    (_damaged_offline, "could not download CIFAR-100 into"),
    (_download_arrives_corrupt, "does not match CIFAR-100's published MD5 checksum"),
    (_cannot_unpack, "cannot unpack"),
], ids=["half-downloaded-offline", "download-fails-md5", "md5-matches-but-not-a-tar"])
def test_a_damaged_archive_is_a_one_line_error_and_what_is_cached_stays_intact(archive: dict, monkeypatch, damage,
                                                                              expected) -> None:
    data_dir = archive["data_dir"]
    train = load_split("cifar100", "train", data_dir=data_dir, val_size=100)
    cached = {p: p.read_bytes() for p in (data_dir / ".senet-cache").glob("*.pt")}
    assert cached, "the train part is cached"
    unpacked_test = data_dir / "cifar-100-python" / "test"
    unpacked_test.write_bytes(unpacked_test.read_bytes()[:1000])  # its unpacked copy damaged too: needs the archive
    damage(data_dir, monkeypatch)
    with pytest.raises(DataError) as err:
        load_split("cifar100", "test", data_dir=data_dir)
    message = one_line(str(err.value))
    assert message.startswith("cifar100: ") and expected in message and "folder:PATH" in message, message
    if damage is _damaged_offline:
        assert "incomplete or corrupt (MD5 mismatch)" in message, message
    assert {p: p.read_bytes() for p in (data_dir / ".senet-cache").glob("*.pt")} == cached, "the cache is untouched"
    again = load_split("cifar100", "train", data_dir=data_dir, val_size=100)
    assert torch.equal(again.images, train.images) and again.classes == FINE_NAMES


def test_the_checksums_are_torchvisions_own_a_file_that_does_not_match_them_is_refused(archive: dict) -> None:
    """The production path keeps torchvision's checks: an unpacked file that fails its MD5 is not read as data."""
    import torchvision

    torchvision.datasets.CIFAR100.test_list = [["test", "0" * 32]]  # restored by the fixture's monkeypatch
    with pytest.raises(DataError) as err:
        load_split("cifar100", "test", data_dir=archive["data_dir"])
    message = one_line(str(err.value))
    assert "cifar100: the unpacked CIFAR-100 files in" in message and "cifar-100-python" in message, message
    assert not list((archive["data_dir"] / ".senet-cache").glob("cifar100-test-*.pt")), "nothing wrong is cached"


# --------------------------------------------------------------------------- training and evaluation
def test_senet_train_then_evaluate_on_cifar100_val_and_test(archive: dict, tmp_path: Path, capsys,
                                                           one_torch_thread) -> None:
    from senet import load_checkpoint

    data = ["--data", "cifar100", "--data-dir", str(archive["data_dir"])]
    run_dir = tmp_path / "run"
    code, _, err = call(capsys, "train", "--model", "se_resnet20", *data, "--epochs", "1", "--batch-size", "16",
                        "--val-size", "100", "--train-limit", "64", "--micro-batch", "128", "--run-dir", str(run_dir),
                        "--no-progress")
    assert code == 0, err
    model, meta = load_checkpoint(run_dir / "best.pt")
    assert meta["classes"] == FINE_NAMES and meta["model_options"]["num_classes"] == 100
    assert meta["data_spec"] == "cifar100" and meta["val_size"] == 100
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 100)
    for split, n in (("val", 100), ("test", 200)):
        code, out, err = call(capsys, "evaluate", "--checkpoint", str(run_dir / "best.pt"), *data, "--split", split,
                              "--json")
        assert code == 0, err
        result = json.loads(out)
        cm = np.array(result["confusion_matrix"])
        assert result["n"] == n and result["classes"] == FINE_NAMES and cm.shape == (100, 100)
        assert cm.sum(axis=1).tolist() == [n // 100] * 100, f"{split}: rows are the true classes"
        assert np.trace(cm) / n == pytest.approx(result["accuracy"])
    recorded = json.loads((run_dir / "status.json").read_text())
    assert recorded["state"] == "finished"
    assert meta["val_acc"] == pytest.approx(json.loads(call(capsys, "evaluate", "--checkpoint", str(run_dir / "best.pt"),
                                                            *data, "--split", "val", "--json")[1])["accuracy"])


def test_the_help_and_settings_offer_cifar100(capsys) -> None:
    from senet.training import make_config
    from senet.training.settings import fields_by_name

    assert "cifar100" in fields_by_name()["data"].metadata["setting"].help, "the Train form's and `senet train`'s help"
    assert make_config("resnet20", "fast", data="cifar100").data == "cifar100"
    for command in ("train", "evaluate", "ablate"):
        code, out, _ = call(capsys, command, "--help")
        assert code == 0 and "cifar100" in out, f"senet {command} --help: {out}"


# --------------------------------------------------------------------------- the explorer with 100 classes
@pytest.fixture(scope="module")
def app100(tmp_path_factory):
    """A 100-class SE checkpoint, the small CIFAR-100 archive as the data source (the checkpoint's validation
    split: 2 images per class; test: 3), and the dashboard's env vars."""
    from senet import create_model, save_checkpoint

    tmp = tmp_path_factory.mktemp("app100")
    with pytest.MonkeyPatch.context() as mp:
        written = write_cifar100_archive(tmp / "data", train_per_class=8, test_per_class=3)
        match_checksums(mp, written["md5"])
        for part in ("train", "test"):  # unpacked and cached, as the sidebar's download button leaves it
            load_split("cifar100", part, data_dir=tmp / "data")
        ck = tmp / "checkpoints"
        ck.mkdir()
        torch.manual_seed(0)
        save_checkpoint(ck / "se_resnet20.pt", create_model("se_resnet20", num_classes=100),
                        model_name="se_resnet20", model_options={"num_classes": 100, "reduction": 16},
                        classes=FINE_NAMES, val_acc=0.01, history=[], val_size=200, split_seed=0,
                        config={"data": "cifar100", "val_size": 200, "split_seed": 0})
        with app_environment(ck, tmp / "runs", "cifar100", tmp / "data"):
            yield {"tmp": tmp, "checkpoints": ck, "written": written}



def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_the_sidebar_takes_cifar100_and_its_download_button_unpacks_the_archive(app100, tmp_path, monkeypatch,
                                                                                no_network) -> None:
    data_dir = tmp_path / "fresh"
    match_checksums(monkeypatch, write_cifar100_archive(data_dir)["md5"])  # downloaded, not yet unpacked
    monkeypatch.setenv("SENET_DATA_DIR", str(data_dir))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    no_exceptions(at)
    assert at.sidebar.text_input(key="data_spec").value == "cifar100"
    assert "cifar100" in at.sidebar.text_input(key="data_spec").help
    captions = [str(c.value) for c in at.sidebar.caption]
    assert any("CIFAR-100 is not downloaded yet" in c for c in captions), captions
    button = next(b for b in at.sidebar.button if b.label == "Download CIFAR-100")
    button.click().run()
    no_exceptions(at)
    assert no_network == [], "the archive was there: unpacked, not downloaded"
    assert (data_dir / "cifar-100-python" / "test").is_file()
    assert any("data ready" in str(c.value) for c in at.sidebar.caption), [c.value for c in at.sidebar.caption]
    assert not any(b.label.startswith("Download") for b in at.sidebar.button), "CIFAR-100 is now unpacked"


def test_model_card_renders_with_100_classes(app100) -> None:
    at = open_app("senet_dashboard/views/home.py")
    no_exceptions(at)
    assert any("100 classes" in str(m.value) for m in at.markdown), "the card names the class count"


@pytest.mark.parametrize("split", ["val", "test"])
def test_excitation_page_renders_with_100_classes(app100, split) -> None:
    at = open_app("senet_dashboard/views/excitation.py", split=split)
    no_exceptions(at)
    assert at.selectbox(key="exc_class").options == FINE_NAMES, "the class picker offers all 100 fine classes"
    at.segmented_control(key="exc_view").set_value("Classes").run()
    no_exceptions(at)
    specs = charts(at)
    heat = next(s for s in specs if any(t.get("type") == "heatmap" and "all classes" in (t.get("y") or [])
                                        for t in s["data"]))
    rows = next(t for t in heat["data"] if t.get("type") == "heatmap")["y"]
    assert len(rows) >= 100 + 1, "one row per class and the all-classes row"
    assert heat["layout"]["height"] >= 100 * 6, "100 class rows are given room, not squeezed into a fixed height"
    at.segmented_control(key="exc_profile_drawing").set_value("Lines (the paper's layout)").run()
    at.multiselect(key="exc_profile_classes").set_value([0, 50, 99]).run()
    no_exceptions(at)


@pytest.mark.parametrize("split", ["val", "test"])
def test_confusion_page_renders_a_100_by_100_matrix(app100, split) -> None:
    at = open_app("senet_dashboard/views/confusion.py", split=split)
    no_exceptions(at)
    heat = next(s for s in charts(at) if s["data"] and s["data"][0].get("type") == "heatmap")
    assert len(heat["data"][0]["x"]) == len(heat["data"][0]["y"]) == 100
    assert at.selectbox(key="conf_true").options == FINE_NAMES
    metric = {m.label: m.value for m in at.metric}
    assert f"Accuracy · {split} · recomputed now" in metric, metric


def test_a_checkpoint_with_other_classes_gets_a_short_warning_not_100_names(app100, tmp_path, monkeypatch) -> None:
    from senet import create_model, save_checkpoint

    ck = tmp_path / "ck"
    ck.mkdir()
    save_checkpoint(ck / "se_resnet20.pt", create_model("se_resnet20", num_classes=3), model_name="se_resnet20",
                    model_options={"num_classes": 3, "reduction": 16}, classes=("blue", "green", "red"), history=[])
    monkeypatch.setenv("SENET_CHECKPOINTS", str(ck))
    at = open_app("senet_dashboard/views/confusion.py")
    no_exceptions(at)
    warning = html.unescape(" ".join(str(w.value) for w in at.warning))  # class names are shown as text (escaped)
    assert "differ from the checkpoint's ['blue', 'green', 'red']" in warning and "(100: apple," in warning, warning
    assert "worm" not in warning, "100 names are summarised, not listed"


# --------------------------------------------------------------------------- figures with 100 classes
def _panel_px(fig, axis: str = "yaxis") -> float:
    lo, hi = fig.layout[axis].domain
    return (hi - lo) * fig.layout.height


def test_the_classes_by_channels_heatmap_gives_each_of_100_classes_a_readable_row_in_fewer_pages() -> None:
    from senet_dashboard.figures import profiles_heatmap_figure

    rng = np.random.default_rng(0)
    widths = {"stage1.block1": 16, "stage2.block1": 32, "stage3.block1": 64, "stage3.block2": 64}
    profiles = {b: rng.random((100, c)) for b, c in widths.items()}
    overall = {b: p.mean(axis=0) for b, p in profiles.items()}
    gates = {b: rng.random(c) for b, c in widths.items()}
    fig = profiles_heatmap_figure(profiles, overall, list(FINE_NAMES), gates, marks={3: "true"})
    rows = len(fig.data[0].y)
    assert rows == 100 + 3 and "bear · true" in fig.data[0].y
    assert _panel_px(fig) / rows >= 10, "at least 10 px a class row: the names stay legible"
    x0 = {round(fig.layout[f"xaxis{n}"].domain[0], 3) for n in ("", "2", "3")}
    assert len(x0) == 3, "blocks side by side: the page is a third as long as 4 stacked 100-row heatmaps"
    assert [fig.layout[f"yaxis{n}"].showticklabels for n in ("", "2", "3", "4")] == [True, False, False, True], \
        "class names once per row of panels, at the left"
    ten = profiles_heatmap_figure({b: p[:10] for b, p in profiles.items()}, overall, list(FINE_NAMES[:10]), gates)
    assert len({round(ten.layout[f"xaxis{n}"].domain[0], 3) for n in ("", "2", "3", "4")}) == 1, \
        "ten classes keep one full-width heatmap per block"
    wide = {"b": rng.random((100, 512))}
    one = profiles_heatmap_figure(wide, {"b": wide["b"].mean(0)}, list(FINE_NAMES))
    assert one.layout.xaxis.domain[1] - one.layout.xaxis.domain[0] > 0.99, "512 channels keep the full width"


def test_profile_lines_of_chosen_classes_never_share_a_colour() -> None:
    from senet_dashboard.figures import PALETTE, profiles_figure

    rng = np.random.default_rng(0)
    profiles = {"b": rng.random((100, 16))}
    fig = profiles_figure(profiles, {"b": profiles["b"].mean(0)}, list(FINE_NAMES), [0, len(PALETTE), 99])
    colours = [t.line.color for t in fig.data if t.name in (FINE_NAMES[0], FINE_NAMES[len(PALETTE)], FINE_NAMES[99])]
    assert len(colours) == 3 and len(set(colours)) == 3, colours
    kept = profiles_figure(profiles, {"b": profiles["b"].mean(0)}, list(FINE_NAMES), [1, 2])
    assert [t.line.color for t in kept.data[:2]] == [PALETTE[1], PALETTE[2]], "without a clash a class keeps its own"


def test_the_intervention_chart_shows_the_most_probable_classes_of_100_and_says_so() -> None:
    from senet_dashboard.figures import intervention_figure

    before, after = np.full(100, 0.002), np.full(100, 0.002)
    before[[5, 40]], after[[70, 5]] = [0.6, 0.2], [0.5, 0.3]
    fig = intervention_figure(list(FINE_NAMES), before, after, top=3)
    assert list(fig.data[0].x) == [FINE_NAMES[5], FINE_NAMES[40], FINE_NAMES[70]], "the top either way, class order"
    assert list(fig.data[1].y) == [0.3, 0.002, 0.5]
    assert "3 most probable of 100 classes" in fig.layout.title.text
    assert len(intervention_figure(list(FINE_NAMES[:10]), before[:10], after[:10]).data[0].x) == 10


def test_a_100_class_confusion_matrix_has_no_unreadable_cell_numbers_and_the_splits_heatmap_grows() -> None:
    from senet_dashboard.figures import class_splits_figure, confusion_figure

    cm = np.random.default_rng(0).integers(0, 3, (100, 100))
    big = confusion_figure(cm, list(FINE_NAMES), height=600)
    assert big.data[0].text is None and big.data[0].xgap == 0, "3-pixel cells carry no numbers (the hover does)"
    assert len(big.data[1].customdata) == 100 * 100, "every cell still clickable"
    small = confusion_figure(cm[:10, :10], list(FINE_NAMES[:10]))
    assert small.data[0].texttemplate == "%{text}", "ten classes keep their numbers"
    profiles = np.random.default_rng(1).random((100, 8))
    fig = class_splits_figure(profiles, list(FINE_NAMES), [{"channels": [1, 2]}], "t")
    assert fig.layout.height >= 12 * 100, "a row per class of at least 12 px"
