"""Data known by its content: fingerprints of a split's images and labels, recorded by every run, and every decision
on "the same data" (the model card, Confusion, twins on Compare, studies, the prediction cache) taken by them, not
by the path's text; checkpoints without one fall back to the path and say so."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, call_cli, make_folder_dataset, no_exceptions, open_app, texts


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _tiny_config(data: Path, cache: Path, model: str, **overrides):
    from senet.training import make_config

    options = dict(data=f"folder:{data}", data_dir=str(cache), epochs=1, batch_size=8, lr=0.05, val_size=6,
                   log_every=1, micro_batch=256, probe_per_class=0)
    return make_config(model, "fast", **{**options, **overrides})


def _train(config, run_dir: Path) -> Path:
    from senet.training import train

    run_dir.mkdir(parents=True, exist_ok=True)
    assert train(config, run_dir, progress=False)["state"] == "finished"
    return run_dir


# --------------------------------------------------------------------------- the fingerprint itself
def test_same_images_at_two_paths_have_one_fingerprint_and_any_change_of_content_another(tmp_path):
    from senet.data import fingerprint, load_split

    a = make_folder_dataset(tmp_path / "a" / "tiny")
    b = _copy(a, tmp_path / "b" / "copy")

    def fp(root: Path, split: str = "val") -> str:  # a decoding cache of its own for each folder
        return fingerprint(load_split(f"folder:{root}", split, tmp_path / "cache" / root.name))

    assert fp(a) == fp(b) and fp(a, "train") == fp(b, "train"), "a copy elsewhere is the same data"
    assert fp(a) != fp(a, "train") and fp(a).startswith("sha256:")
    changed = _copy(a, tmp_path / "d")
    pixel = changed / "train" / "red" / "0000.png"  # one pixel of one image changed
    img = np.array(Image.open(pixel))
    img[0, 0] = 255 - img[0, 0]
    Image.fromarray(img).save(pixel)
    assert fp(changed, "train") != fp(a, "train") or fp(changed) != fp(a), "one changed pixel is other data"
    relabelled = _copy(a, tmp_path / "c")  # the same pixels under another class name
    (relabelled / "train" / "red").rename(relabelled / "train" / "rouge")
    assert fp(relabelled, "train") != fp(a, "train"), "other class names are other data"


# --------------------------------------------------------------------------- what a run records
def test_a_run_records_the_fingerprints_of_the_images_it_trained_on_and_a_train_limit_keeps_val_held_out(
        tmp_path, one_torch_thread):
    from senet.checkpoint import load_checkpoint
    from senet.data import fingerprint, limit_split, load_split

    data = make_folder_dataset(tmp_path / "tiny")
    full = _train(_tiny_config(data, tmp_path / "cache", "resnet20"), tmp_path / "full")
    limited = _train(_tiny_config(data, tmp_path / "cache", "resnet20", train_limit=24), tmp_path / "limited")
    spec = f"folder:{data}"
    train = load_split(spec, "train", tmp_path / "cache", 6, 0)
    val = load_split(spec, "val", tmp_path / "cache", 6, 0)
    _, full_meta = load_checkpoint(full / "best.pt")
    _, limited_meta = load_checkpoint(limited / "last.pt")
    assert full_meta["data_fingerprint"] == {"train": fingerprint(train), "val": fingerprint(val)}
    assert limited_meta["data_fingerprint"]["train"] == fingerprint(limit_split(train, 24, 0)), \
        "with a train limit: the images actually trained on"
    assert limited_meta["data_fingerprint"]["val"] == fingerprint(val), \
        "a train limit takes its images from the training part: val is still the held-out split"
    assert not set(limit_split(train, 24, 0).indices.tolist()) & set(val.indices.tolist())


# --------------------------------------------------------------------------- twins and studies
@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """An SE run and its plain twin trained alike on two copies of the same images (at /a/tiny and /b/copy), laid
    out as a study, and the two best checkpoints in a checkpoint folder for the pages."""
    from senet.training.study import plan_study

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("twins")
    a = make_folder_dataset(tmp / "a" / "tiny")
    b = _copy(a, tmp / "b" / "copy")
    study = tmp / "study"
    shared = dict(data=f"folder:{a}", data_dir=str(tmp / "cache"), epochs=1, batch_size=8, lr=0.05, val_size=6,
                  log_every=1, micro_batch=256, probe_per_class=0)
    (se_name, se_config), (plain_name, plain_config) = plan_study(study, ["se_resnet20", "resnet20"], [0], "fast",
                                                                  shared)
    _train(se_config, study / "runs" / se_name)  # on /a/tiny
    _train(dataclasses.replace(plain_config, data=f"folder:{b}"), study / "runs" / plain_name)  # on the copy
    checkpoints = tmp / "checkpoints"
    checkpoints.mkdir()
    shutil.copy(study / "runs" / se_name / "best.pt", checkpoints / "se_resnet20.pt")
    shutil.copy(study / "runs" / plain_name / "best.pt", checkpoints / "resnet20.pt")
    torch.set_num_threads(2)
    return {"a": a, "b": b, "study": study, "checkpoints": checkpoints, "tmp": tmp}


def _meta(path: Path) -> dict:
    from senet.checkpoint import load_checkpoint

    return load_checkpoint(path)[1]


def test_an_se_run_and_its_plain_twin_on_two_copies_of_the_same_images_are_twins(twins):
    from senet.training.twins import like_for_like

    se, plain = _meta(twins["checkpoints"] / "se_resnet20.pt"), _meta(twins["checkpoints"] / "resnet20.pt")
    assert se["data_spec"] != plain["data_spec"], "two paths"
    assert like_for_like(se, plain) is None, like_for_like(se, plain)
    other = dict(plain, data_fingerprint=dict(plain["data_fingerprint"], train="sha256:" + "0" * 32))
    assert "different images" in like_for_like(se, other), "other content at the same path is not a twin"
    old_se, old_plain = ({k: v for k, v in m.items() if k != "data_fingerprint"} for m in (se, plain))
    reason = like_for_like(old_se, old_plain)
    assert reason and "identified by path" in reason and "/a/tiny" in reason and "/b/copy" in reason, \
        "without fingerprints: the path decides, and the reason says so"


def test_study_summary_goes_by_fingerprint_and_keeps_runs_on_other_images_apart(twins, capsys):
    from senet.checkpoint import read_checkpoint
    from senet.files import atomic_torch_save
    from senet.training.study import summarize

    summary = summarize(twins["study"])
    assert summary["data"]["relation"] == "same" and summary["data"]["by"] == "fingerprint", summary["data"]
    assert [(p["a"], p["b"]) for p in summary["pairs"]][:1] == [("se_resnet20", "resnet20")]
    assert summary["not_compared"] == []
    code, out, _ = call_cli(capsys, "study", "--summary", str(twins["study"]))
    assert code == 0 and "same images, by their data fingerprints" in out and "not compared" not in out, out

    other = twins["tmp"] / "other-study"  # the same study, but the plain run's images differ in content
    shutil.copytree(twins["study"], other)
    best = other / "runs" / "resnet20-seed0" / "best.pt"
    payload = read_checkpoint(best)
    payload["meta"]["data_fingerprint"] = dict(payload["meta"]["data_fingerprint"], val="sha256:" + "1" * 32)
    atomic_torch_save(payload, best)
    summary = summarize(other)
    assert summary["data"]["relation"] == "different" and summary["pairs"] == []
    assert summary["not_compared"][0]["a"] == "se_resnet20" and "val" in summary["not_compared"][0]["reason"]
    code, out, _ = call_cli(capsys, "study", "--summary", str(other))
    assert "not compared, trained on different images" in out, out


# --------------------------------------------------------------------------- the prediction cache
def test_the_prediction_cache_is_hit_across_two_paths_and_spellings_of_the_same_images(twins, monkeypatch):
    import importlib

    from senet.analysis.evaluate import evaluate_checkpoint, has_cached_evaluation
    from senet.data import load_split

    ckpt, cache = twins["checkpoints"] / "se_resnet20.pt", twins["tmp"] / "predictions"
    first = evaluate_checkpoint(ckpt, f"folder:{twins['a']}", "val", twins["tmp"] / "cache", cache_dir=cache)

    def no_model_runs(*args, **kwargs):
        raise AssertionError("the model ran again: the cache missed")

    monkeypatch.setattr(importlib.import_module("senet.analysis.evaluate"), "run_over_split", no_model_runs)
    for spec in (f"folder:{twins['b']}", f"folder:{twins['b']}/", f"folder:{twins['a']}/../tiny"):
        again = evaluate_checkpoint(ckpt, spec, "val", twins["tmp"] / "cache", cache_dir=cache)
        assert np.array_equal(again.probs, first.probs), spec
        data = load_split(spec, "val", twins["tmp"] / "cache", 6, 0)
        assert has_cached_evaluation(ckpt, spec, "val", data, twins["tmp"] / "cache", cache_dir=cache)


# --------------------------------------------------------------------------- the pages
@pytest.fixture
def twins_app(twins, monkeypatch):
    """The dashboard on the twins' checkpoints, reading the copy at /b/copy (the SE model read /a/tiny)."""
    for k, v in {"SENET_CHECKPOINTS": str(twins["checkpoints"]), "SENET_RUNS": str(twins["tmp"] / "no-runs"),
                 "SENET_DATA": f"folder:{twins['b']}", "SENET_DATA_DIR": str(twins["tmp"] / "cache")}.items():
        monkeypatch.setenv(k, v)
    return twins


def _card(at, checkpoint: Path):
    at.sidebar.selectbox(key="checkpoint").set_value(str(checkpoint)).run()
    no_exceptions(at)
    return at


def test_every_page_knows_the_same_images_at_another_path_as_the_checkpoints_own(twins_app):
    at = _card(open_app("senet_dashboard/views/home.py"), twins_app["checkpoints"] / "se_resnet20.pt")
    assert any("checked by their data fingerprint" in c for c in texts(at, "caption")), texts(at, "caption")
    at.button(key="card_recompute").click().run()
    no_exceptions(at)
    metric = next(m for m in at.metric if m.label.startswith("Recomputed now · val"))
    assert metric.delta and metric.delta.endswith("vs recorded"), "compared with the figure recorded on these images"
    captions = texts(at, "caption")
    assert any(c.startswith("Data: the checkpoint's own held-out val split: the same 6 images") for c in captions), \
        captions
    assert not any("is not the data" in c for c in captions)

    at.switch_page("senet_dashboard/views/confusion.py").run()
    no_exceptions(at)
    recorded = next(m for m in at.metric if m.label == "Recorded in training · val")
    assert recorded.value != "–", "the recorded figure belongs to these images, wherever they are read from"

    at.switch_page("senet_dashboard/views/compare.py").run()
    no_exceptions(at)
    assert not [w.value for w in at.warning if "Not compared" in str(w.value)], [w.value for w in at.warning]
    assert any("Twins trained alike" in c and "same images" in c for c in texts(at, "caption")), texts(at, "caption")


def test_a_checkpoint_without_a_fingerprint_falls_back_to_the_path_and_says_so(twins_app, monkeypatch):
    from senet.checkpoint import read_checkpoint
    from senet.files import atomic_torch_save

    old = twins_app["tmp"] / "old"
    old.mkdir(exist_ok=True)
    payload = read_checkpoint(twins_app["checkpoints"] / "se_resnet20.pt")
    del payload["meta"]["data_fingerprint"]  # as written before runs recorded one
    atomic_torch_save(payload, old / "se_resnet20.pt")
    monkeypatch.setenv("SENET_CHECKPOINTS", str(old))
    at = _card(open_app("senet_dashboard/views/home.py"), old / "se_resnet20.pt")
    assert any("by path only: this checkpoint records no data fingerprint" in c for c in texts(at, "caption"))
    at.button(key="card_recompute").click().run()
    no_exceptions(at)
    note = next(c for c in texts(at, "caption") if c.startswith("Data: "))
    assert "is not the data source this checkpoint was trained on" in note and \
        "identified by path; this checkpoint records no data fingerprint" in note, note
    metric = next(m for m in at.metric if m.label.startswith("Recomputed now · val"))
    assert not metric.delta, "by path the copy is another source: nothing set beside the recorded figure"


def test_the_cards_own_split_claim_is_absent_for_imported_and_imagenet_models():
    from senet.data import TensorDataset, match_split
    from senet_dashboard.card import recompute_scope, recorded_accuracy

    data = TensorDataset(torch.zeros((2, 3, 32, 32), dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"])
    for meta in ({"external": True, "val_acc": 0.8, "data_spec": "folder:/x"},
                 {"imported_from": "akamaster", "val_acc": 0.9, "config": {"data": "folder:/x"}}):
        held, check = recompute_scope(meta)
        assert "own" not in held and "not held out" in held and not check
        match = match_split(meta, "val", data, "folder:/x")
        assert match.relation == "unknown" and recorded_accuracy(meta, "val", False, match) is None


def test_the_model_card_of_an_imagenet_model_claims_no_held_out_split(tmp_path, monkeypatch):
    monkeypatch.setenv("SENET_CHECKPOINTS", str(tmp_path / "none"))
    monkeypatch.setenv("SENET_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("SENET_DATA", "sample")
    at = open_app()
    at.sidebar.selectbox(key="imagenet_name").set_value("torchvision:mobilenet_v3_small")
    at.sidebar.toggle(key="imagenet_pretrained").set_value(False)
    at.sidebar.button(key="imagenet_open").click().run()
    at.switch_page("senet_dashboard/views/home.py").run()
    no_exceptions(at)
    captions = texts(at, "caption")
    assert not any("own held-out" in c for c in captions), captions
    assert any("not held out from this ImageNet model" in c for c in captions), captions


# --------------------------------------------------------------------------- the shipped checkpoints and the sample
SHIPPED = sorted((ROOT / "checkpoints").glob("*.pt"))


def test_the_shipped_checkpoints_record_fingerprints_and_the_sample_is_a_subset_of_their_val_split():
    from senet.data import load_sample, match_split, recorded_fingerprints

    sample = load_sample()
    assert sample.subset_of and sample.subset_of.startswith("sha256:")
    for path in SHIPPED:
        meta = _meta(path)
        record = recorded_fingerprints(meta)
        assert record and set(record) == {"train", "val"}, path
        assert record["val"] == sample.subset_of, f"{path.name}: the sample was drawn from its val split"
        match = match_split(meta, "val", sample, "sample")
        assert match.relation == "subset" and "a subset of this checkpoint's own held-out val split" in match.note
    assert len({tuple(sorted(recorded_fingerprints(_meta(p)).items())) for p in SHIPPED}) == 1, "one data for all"


@pytest.mark.slow
def test_the_shipped_fingerprints_are_those_of_the_real_data(real_data):
    import os

    from senet.data import fingerprint, load_split

    data_dir = Path(os.environ.get("SENET_TEST_CACHE", "/tmp/senet-test-data")) / "senet-data-dir"
    spec = f"folder:{real_data}"
    record = _meta(SHIPPED[0])["data_fingerprint"]
    assert fingerprint(load_split(spec, "val", data_dir, 0.1, 0)) == record["val"]
    assert fingerprint(load_split(spec, "train", data_dir, 0.1, 0)) == record["train"]


def test_the_card_and_confusion_call_the_sample_a_subset_never_the_checkpoints_own_split(tmp_path, monkeypatch):
    for k, v in {"SENET_CHECKPOINTS": str(ROOT / "checkpoints"), "SENET_RUNS": str(tmp_path / "runs"),
                 "SENET_DATA": "sample", "SENET_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(k, v)
    at = _card(open_app("senet_dashboard/views/home.py"), ROOT / "checkpoints" / "resnet20.pt")
    scope = next(c for c in texts(at, "caption") if c.startswith("On sample:"))
    assert "the bundled sample, some images of a held-out val split" in scope and "drew it" not in scope, scope
    at.button(key="card_recompute").click().run()
    no_exceptions(at)
    note = next(c for c in texts(at, "caption") if c.startswith("Data: "))
    assert "500 images, a subset of this checkpoint's own held-out val split" in note, note
    metric = next(m for m in at.metric if m.label.startswith("Recomputed now · val"))
    assert not metric.delta and "not compared with the recorded figure, which is on the whole split" in metric.help
    at.switch_page("senet_dashboard/views/confusion.py").run()
    no_exceptions(at)
    assert any("a subset of this checkpoint's own held-out val split" in c for c in texts(at, "caption"))
    assert not any("own held-out validation images of sample" in str(m.help) for m in at.metric)


def test_senet_info_prints_the_data_fingerprints(capsys):
    from conftest import call_cli
    from senet.data import recorded_fingerprints

    code, out, _ = call_cli(capsys, "info", "--checkpoint", str(SHIPPED[0]))
    record = recorded_fingerprints(_meta(SHIPPED[0]))
    line = next(row for row in out.splitlines() if row.startswith("data by content"))
    assert code == 0 and f"val {record['val'].removeprefix('sha256:')[:12]}" in line, line
