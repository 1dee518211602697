"""Public demo mode (``SENET_DEMO=1``): the policy itself (dashboard/demo.py), each refused action through the
dashboard (AppTest), the explorer still working, and one loaded model shared safely by concurrent sessions."""
from __future__ import annotations

import io
import os
import shutil
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import conftest
from conftest import ROOT, app_environment, make_folder_dataset, texts
from senet.data import CIFAR_FILES
from senet_dashboard.demo import DemoConfigError, DemoPolicy, has_parent_step, images_within

CLASSES = ("blue", "green", "red")


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def one_line(messages: list[str], *needles: str) -> str:
    """The one message that contains every needle; it must be a single line."""
    hits = [m for m in messages if all(n in m for n in needles)]
    assert len(hits) == 1, f"expected one message with {needles}, got {messages}"
    assert "\n" not in hits[0], hits[0]
    return hits[0]


# --------------------------------------------------------------------------- the policy, directly
@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """Served roots, a folder outside them, and symlinks from inside the roots to outside."""
    served, outside = tmp_path / "served", tmp_path / "outside"
    (served / "ck").mkdir(parents=True)
    (served / "data" / "set" / "train").mkdir(parents=True)
    (outside / "set" / "train").mkdir(parents=True)
    (served / "ck" / "a.pt").write_bytes(b"x")
    (outside / "secret.pt").write_bytes(b"x")
    (served / "ck" / "link.pt").symlink_to(outside / "secret.pt")
    (served / "data" / "link").symlink_to(outside / "set")
    (tmp_path / "alias").symlink_to(served / "ck")  # a root reached through a symlink still counts
    return {"served": served, "outside": outside, "tmp": tmp_path}


def policy(tree, **env) -> DemoPolicy:
    values = {"SENET_DEMO": "1", "SENET_DEMO_DATA": str(tree["served"] / "data"), **env}
    return DemoPolicy.from_env(values, (tree["tmp"] / "alias",), tree["tmp"] / "dl")


def test_policy_is_off_unless_asked_and_fails_closed_on_a_bad_setting(tree):
    off = DemoPolicy.from_env({}, (tree["served"] / "ck",))
    assert not off.enabled
    assert off.path_refusal("/etc/passwd") is None and off.data_refusal("folder:/") is None
    assert off.upload_refusal("x.png", 10 ** 9) is None and off.split_work_refusal("x", 10 ** 9) is None
    for env, name in (({"SENET_DEMO": "maybe"}, "SENET_DEMO"), ({"SENET_DEMO_BUDGET": "lots"}, "SENET_DEMO_BUDGET"),
                      ({"SENET_DEMO_MAX_UPLOAD_MB": "-1"}, "SENET_DEMO_MAX_UPLOAD_MB")):
        with pytest.raises(DemoConfigError, match=name):
            DemoPolicy.from_env({"SENET_DEMO": "1", **env})
    assert DemoPolicy.from_env({"SENET_DEMO": "off"}).enabled is False
    assert DemoPolicy.from_env({"SENET_DEMO": "TRUE"}).enabled is True


def test_checkpoint_paths_only_inside_the_roots_with_symlinks_resolved(tree):
    p = policy(tree)
    ck = tree["served"] / "ck"
    assert p.path_refusal(ck / "a.pt") is None
    assert p.path_refusal(tree["tmp"] / "alias" / "a.pt") is None, "the root given through a symlink"
    assert p.path_refusal(ck / "not-there.pt") is None, "inside: the loader says it is missing"
    for bad in (tree["outside"] / "secret.pt", ck / "link.pt", "/etc/passwd", f"{ck}/../ck/a.pt", "../x.pt"):
        why = p.path_refusal(bad)
        assert why and "\n" not in why and str(bad) in why, (bad, why)
    assert "'..'" in p.path_refusal(f"{ck}/../ck/a.pt"), "'..' is refused even where it resolves inside"
    assert has_parent_step("a/../b") and has_parent_step("..\\b") and not has_parent_step("a/..b/c")
    # the verdict comes from the path alone: an existing and a missing file outside get the same reason
    assert p.path_refusal(tree["outside"] / "secret.pt").replace("secret", "nothing") == \
        p.path_refusal(tree["outside"] / "nothing.pt")


def test_data_specs_only_inside_the_roots_and_nothing_downloaded(tree):
    p = policy(tree)
    data = tree["served"] / "data"
    assert p.data_refusal(f"folder:{data / 'set'}") is None
    assert p.data_refusal("sample") is None
    for bad in (f"folder:{tree['outside'] / 'set'}", f"folder:{data / 'link'}", f"folder:{data}/../outside/set",
                "folder:/", "folder:~"):
        why = p.data_refusal(bad)
        assert why and "\n" not in why and bad in why, (bad, why)
    assert "downloads nothing" in p.data_refusal("cifar10")
    (tree["tmp"] / "dl" / "cifar-10-batches-py").mkdir(parents=True)
    assert "downloads nothing" in p.data_refusal("cifar10"), "an incomplete folder would start a download"
    for name in CIFAR_FILES["cifar10"]:
        (tree["tmp"] / "dl" / "cifar-10-batches-py" / name).write_bytes(b"")
    assert p.data_refusal("cifar10") is None, "already downloaded: served"
    assert "downloads nothing" in p.data_refusal("cifar100")
    # the folder of the default data source is served without being listed
    default = DemoPolicy.from_env({"SENET_DEMO": "1"}, (), tree["tmp"] / "dl", f"folder:{tree['outside'] / 'set'}")
    assert default.data_refusal(f"folder:{tree['outside'] / 'set'}") is None


def test_other_libraries_models_only_when_listed(tree):
    p = policy(tree, SENET_DEMO_MODELS="torchvision:mobilenet_v3_large, timm:seresnet50")
    assert p.models == ("torchvision:mobilenet_v3_large", "timm:seresnet50")
    assert p.model_refusal("torchvision:mobilenet_v3_large") is None
    assert p.model_refusal("torchvision:mobilenet_v3_large@random"), "other weights: another model, not listed"
    why = p.model_refusal("timm:seresnext101_32x8d")
    assert "timm:seresnext101_32x8d" in why and "timm:seresnet50" in why and "\n" not in why
    assert "(none)" in policy(tree).model_refusal("timm:seresnet50"), "none unless listed"


def test_upload_caps_in_bytes_and_pixels(tree):
    p = policy(tree, SENET_DEMO_MAX_UPLOAD_MB="0.5", SENET_DEMO_MAX_UPLOAD_PIXELS="1000000")
    small = png(Image.new("RGB", (800, 600), (9, 9, 9)))
    assert p.upload_refusal("ok.png", len(small), small) is None
    wide = png(Image.new("1", (2000, 1000)))  # a few kB, 2 million pixels
    assert len(wide) < 0.5 * 2 ** 20
    why = p.upload_refusal("wide.png", len(wide), wide)
    assert "wide.png" in why and "2,000,000 pixels" in why and "1,000,000" in why
    why = p.upload_refusal("big.png", 2 ** 20, b"\0" * 2 ** 20)
    assert "big.png" in why and "1.0 MB" in why and "0.5 MB" in why
    assert p.upload_refusal("junk.png", 10, b"not an image") is None, "not an image: the decoder says why"


def test_split_wide_work_within_the_budget_or_prepared(tree):
    p = policy(tree, SENET_DEMO_BUDGET="1000")
    assert p.split_work_refusal("Evaluating val", 1000) is None
    why = p.split_work_refusal("Evaluating val", 500, passes=4)
    assert "Evaluating val" in why and "2,000 image passes" in why and "1,000" in why and "\n" not in why
    assert p.split_work_refusal("Evaluating val", 10 ** 6, cached=True) is None, "prepared beforehand"
    assert p.per_class_within_budget(passes=10, n_classes=10) == 10
    assert images_within([50, 3, 20], 10) == 23 and images_within([50, 3], None) == 53


def test_a_photos_pass_counts_as_many_passes_of_a_cifar_image(tree):
    p = policy(tree, SENET_DEMO_BUDGET="1000")
    assert p.split_work_refusal("Class profiles", 20, pixels=32 * 32) is None, "20 CIFAR images fit"
    why = p.split_work_refusal("Class profiles", 21, pixels=224 * 224)
    assert "21 images × 1 pass × 49" in why and "1,029 image passes" in why and "\n" not in why, why
    assert p.split_work_refusal("Class profiles", 20, pixels=224 * 224) is None, "20 x 49 = 980 fit"
    assert p.per_class_within_budget(passes=1, n_classes=4, pixels=224 * 224) == 5, "1,000 // (4 x 49)"


def test_cached_evaluation_is_found_only_once_prepared(tmp_path, tiny_checkpoint, tiny_folder):
    from senet import evaluate_checkpoint
    from senet.analysis.evaluate import has_cached_evaluation
    from senet.data import load_split

    spec = f"folder:{tiny_folder}"
    data = load_split(spec, "val", tmp_path / "cache")
    assert not has_cached_evaluation(tiny_checkpoint, spec, "val", data, tmp_path / "cache")
    evaluate_checkpoint(tiny_checkpoint, spec, "val", tmp_path / "cache")
    assert has_cached_evaluation(tiny_checkpoint, spec, "val", data, tmp_path / "cache")
    assert not has_cached_evaluation(tiny_checkpoint, spec, "val", data, tmp_path / "cache", tta=True)


# --------------------------------------------------------------------------- one model, many sessions
def test_one_threads_gate_hooks_do_not_reach_another_threads_pass(one_torch_thread):
    """The dashboard shares one loaded model between sessions (threads): an override, a block ablation or a
    capture in one session must not change or record another session's forward pass."""
    from senet import create_model
    from senet.analysis.explanation import block_ablation
    from senet.models import capture_gates, gate_overrides, se_blocks

    torch.manual_seed(0)
    model = create_model("se_resnet20", num_classes=3).eval()
    x, other_x = torch.randn(1, 3, 32, 32), torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    stop, seen_batches = threading.Event(), set()

    def other_session():
        with torch.no_grad():
            while not stop.is_set():
                with gate_overrides(model, {b: 1.0 for b in se_blocks(model)}):
                    model(other_x)
                block_ablation(model, x, 0)

    worker = threading.Thread(target=other_session)
    worker.start()
    changed = 0
    try:
        with torch.no_grad(), capture_gates(model) as gates:
            for _ in range(60):
                changed += not torch.allclose(model(x), expected, atol=1e-6)
                seen_batches |= {g.shape[0] for g in gates.values()}
    finally:
        stop.set()
        worker.join()
    assert changed == 0, f"{changed} of 60 passes were changed by another thread's hooks"
    assert seen_batches == {1}, f"the capture recorded another thread's batches: {seen_batches}"


# --------------------------------------------------------------------------- the dashboard in demo mode
@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    """A demo deployment: served checkpoints (SE, plain twin, one in a subfolder) and data, a folder outside
    them with a checkpoint and a dataset, symlinks from inside out, a running and a stopped run."""
    from senet import create_model, save_checkpoint
    from senet.training.runs import write_json_atomic

    tmp = tmp_path_factory.mktemp("demo")
    served, outside = tmp / "served", tmp / "outside"
    ck = served / "checkpoints"
    (ck / "more").mkdir(parents=True)
    torch.manual_seed(0)
    history = [{"epoch": 1, "train_loss": 1.2, "train_acc": 0.3, "val_loss": 1.1, "val_acc": 0.4, "lr": 0.1}]
    save_checkpoint(ck / "se_resnet20.pt", create_model("se_resnet20", num_classes=3), model_name="se_resnet20",
                    model_options={"num_classes": 3, "reduction": 16}, classes=CLASSES, val_acc=0.5, history=history)
    save_checkpoint(ck / "resnet20.pt", create_model("resnet20", num_classes=3), model_name="resnet20",
                    model_options={"num_classes": 3}, classes=CLASSES, val_acc=0.45, history=history)
    shutil.copy(ck / "resnet20.pt", ck / "more" / "twin.pt")
    outside.mkdir()
    shutil.copy(ck / "resnet20.pt", outside / "foreign.pt")
    (ck / "more" / "escape.pt").symlink_to(outside / "foreign.pt")
    data_root = served / "data"
    make_folder_dataset(data_root / "tiny", per_class=40, test_split=True)  # val: 12 images, test: 120
    make_folder_dataset(outside / "set", per_class=10)
    (data_root / "escape").symlink_to(outside / "set")
    runs = served / "runs"
    for name, state in (("running", {"state": "running", "pid": os.getpid(), "host": os.uname().nodename}),
                        ("stopped", {"state": "stopped"})):
        (runs / name).mkdir(parents=True)
        write_json_atomic(runs / name / "config.json", {"model": "se_resnet20", "recipe": "fast", "epochs": 2})
        write_json_atomic(runs / name / "status.json", dict(state, epoch=1, epochs=2, step=4, total_steps=8))
        (runs / name / "metrics.jsonl").write_text('{"type": "step", "step": 1, "epoch": 0.25, "loss": 2.0, '
                                                   '"lr": 0.1, "images_per_s": 10.0, "time": 0.0}\n')
    (runs / "stopped" / "last.pt").write_bytes((ck / "resnet20.pt").read_bytes())
    demo = {"SENET_DEMO": "1", "SENET_DEMO_DATA": str(data_root), "SENET_DEMO_BUDGET": "100",
            "SENET_DEMO_MAX_UPLOAD_MB": "1", "SENET_DEMO_MAX_UPLOAD_PIXELS": "1000000",
            "SENET_STUDIES": str(served / "studies")}
    with app_environment(ck, runs, f"folder:{data_root / 'tiny'}", tmp / "cache", **demo):
        yield {"tmp": tmp, "ck": ck, "data": data_root, "outside": outside, "runs": runs, "cache": tmp / "cache"}


def open_app(page: str | None = None, query: dict | None = None) -> AppTest:
    at = conftest.open_app(page, query=query)
    assert not at.exception, [e.value for e in at.exception]
    return at



def button_labels(at) -> list[str]:
    return [b.label for b in at.button]


def test_demo_train_page_shows_runs_read_only(demo_env, monkeypatch):
    at = open_app("senet_dashboard/views/train.py")
    one_line(texts(at, "info"), "Training is off")
    assert "Start training" not in button_labels(at), "no form to start a run"
    for run in ("running", "stopped"):
        at.selectbox(key="train_run").set_value(str(demo_env["runs"] / run)).run()
        assert not at.exception
        assert not {"stop_run", "resume_run"} & {b.key for b in at.button}, f"{run}: no Stop, no Resume"
    assert sorted(p.name for p in demo_env["runs"].iterdir()) == ["running", "stopped"], "nothing was started"
    monkeypatch.setenv("SENET_DEMO", "0")  # the same page outside demo mode offers all three (the check can fail)
    at = open_app("senet_dashboard/views/train.py")
    assert "Start training" in button_labels(at)
    at.selectbox(key="train_run").set_value(str(demo_env["runs"] / "running")).run()
    assert "stop_run" in {b.key for b in at.button}
    at.selectbox(key="train_run").set_value(str(demo_env["runs"] / "stopped")).run()
    assert "resume_run" in {b.key for b in at.button}


def test_demo_opens_no_run_directory_outside_its_roots(demo_env, tmp_path):
    run = tmp_path / "elsewhere"
    shutil.copytree(demo_env["runs"] / "stopped", run)
    at = open_app("senet_dashboard/views/train.py")
    at.text_input(key="open_run_path").set_value(str(run))
    at.button(key="open_run_button").click().run()
    one_line(texts(at, "error"), str(run), "outside the folders")
    assert at.selectbox(key="train_run").value != str(run.resolve())


def test_demo_offers_no_download(demo_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SENET_DATA", "cifar10")
    monkeypatch.setenv("SENET_DATA_DIR", str(tmp_path / "empty"))
    at = open_app("senet_dashboard/views/excitation.py")
    assert "Download CIFAR-10" not in button_labels(at)
    one_line(texts(at.sidebar, "error"), "cifar10", "downloads nothing")
    info = " ".join(texts(at, "info"))
    assert "downloads nothing" in info and "download CIFAR-10" not in info, info
    monkeypatch.setenv("SENET_DEMO", "0")
    assert "Download CIFAR-10" in button_labels(open_app("senet_dashboard/views/excitation.py")), "offered outside demo mode"


def _open_file(at: AppTest, path: str) -> None:
    at.sidebar.text_input(key="open_checkpoint_path").set_value(path)
    at.sidebar.button(key="open_checkpoint_button").click().run()


@pytest.mark.parametrize("make", [
    lambda env: env["outside"] / "foreign.pt",                         # a real checkpoint outside the roots
    lambda env: env["outside"] / "missing.pt",                         # missing: the same refusal
    lambda env: env["ck"] / "more" / "escape.pt",                      # a symlink inside pointing out
    lambda env: f"{env['ck']}/more/../resnet20.pt",                    # '..', even where it lands inside
    lambda env: "/etc/passwd",
], ids=["outside", "missing", "symlink-out", "dotdot", "system-file"])
def test_demo_opens_no_checkpoint_file_outside_its_roots(demo_env, make):
    path = str(make(demo_env))
    at = open_app("senet_dashboard/views/home.py")
    before = at.sidebar.selectbox(key="checkpoint").value
    _open_file(at, path)
    assert not at.exception
    why = one_line(texts(at.sidebar, "error"), path)
    assert "outside the folders" in why or "'..'" in why, why
    assert "no such file" not in why, "a refusal says nothing about what exists outside"
    assert at.sidebar.selectbox(key="checkpoint").value == before
    assert path not in at.sidebar.selectbox(key="checkpoint").options


def test_demo_opens_a_checkpoint_inside_its_roots(demo_env):
    inside = str(demo_env["ck"] / "more" / "twin.pt")
    at = open_app("senet_dashboard/views/home.py")
    _open_file(at, inside)
    assert not at.exception and not at.error, texts(at, "error")
    assert at.sidebar.selectbox(key="checkpoint").value == inside
    assert "Model card · resnet20" in texts(at, "subheader")


@pytest.mark.parametrize("query, needle", [
    ({"checkpoint": "{outside}/foreign.pt"}, "checkpoint="),
    ({"checkpoint": "{ck}/more/escape.pt"}, "checkpoint="),
    ({"checkpoint": "{ck}/more/../resnet20.pt"}, "checkpoint="),
    ({"data": "folder:{outside}/set"}, "data="),
    ({"data": "folder:{data}/escape"}, "data="),
    ({"data": "folder:{data}/../outside/set"}, "data="),
    ({"data": "cifar10"}, "data="),
], ids=["ck-outside", "ck-symlink", "ck-dotdot", "data-outside", "data-symlink", "data-dotdot", "data-download"])
def test_demo_refuses_paths_in_the_address(demo_env, query, needle):
    query = {k: v.format(outside=demo_env["outside"], ck=demo_env["ck"], data=demo_env["data"])
             for k, v in query.items()}
    at = open_app(query=query)
    why = one_line(texts(at.sidebar, "error"), needle, "in the address")
    assert next(iter(query.values())) in why
    assert at.sidebar.selectbox(key="checkpoint").value == str(demo_env["ck"] / "se_resnet20.pt")
    assert at.sidebar.text_input(key="data_spec").value == f"folder:{demo_env['data'] / 'tiny'}"


def test_demo_takes_served_paths_from_the_address_and_outside_demo_any(demo_env, monkeypatch):
    twin = str(demo_env["ck"] / "more" / "twin.pt")
    at = open_app(query={"checkpoint": twin, "data": f"folder:{demo_env['data'] / 'tiny'}"})
    assert not at.sidebar.error, texts(at.sidebar, "error")
    assert at.sidebar.selectbox(key="checkpoint").value == twin
    monkeypatch.setenv("SENET_DEMO", "0")
    foreign = str(demo_env["outside"] / "foreign.pt")
    at = open_app(query={"checkpoint": foreign})
    assert at.sidebar.selectbox(key="checkpoint").value == foreign, "outside demo mode a link may name any file"


@pytest.mark.parametrize("spec", ["folder:{outside}/set", "folder:{data}/escape", "folder:{data}/../outside/set",
                                  "folder:{data}/tiny/../../outside/set", "folder:/"],
                         ids=["outside", "symlink-out", "dotdot", "dotdot-deep", "root"])
def test_demo_refuses_crafted_folder_specs(demo_env, spec):
    spec = spec.format(outside=demo_env["outside"], data=demo_env["data"])
    at = open_app("senet_dashboard/views/excitation.py")
    at.sidebar.text_input(key="data_spec").set_value(spec).run()
    assert not at.exception
    one_line(texts(at.sidebar, "error"), spec)
    assert "Gates of this image" not in texts(at, "subheader"), "no image of the refused source is shown"
    assert any(spec in i and "No data" in i for i in texts(at, "info")), texts(at, "info")
    at.sidebar.text_input(key="data_spec").set_value(f"folder:{demo_env['data'] / 'tiny'}").run()
    assert "Gates of this image" in texts(at, "subheader"), "a served source works again"


def test_demo_refuses_a_study_outside_its_roots(demo_env, tmp_path):
    (tmp_path / "study.json").write_text("{}")
    at = open_app("senet_dashboard/views/compare.py")
    at.segmented_control(key="compare_what").set_value("a study").run()
    at.text_input(key="open_study_path").set_value(str(tmp_path))
    at.button(key="open_study_button").click().run()
    one_line(texts(at, "error"), str(tmp_path), "outside the folders")


def test_demo_evaluates_a_split_only_within_its_budget_or_prepared(demo_env):
    from senet import evaluate_checkpoint

    spec = f"folder:{demo_env['data'] / 'tiny'}"
    at = open_app("senet_dashboard/views/confusion.py")  # val has 12 images x 1 pass: within the budget of 100
    assert not at.error, texts(at, "error")
    assert any(m.label.startswith("Accuracy · val") for m in at.metric)
    at.sidebar.segmented_control(key="split").set_value("test").run()  # 120 images: over it
    one_line(texts(at, "error"), "Evaluating test", "120 image passes", "budget of 100")
    assert not any(m.label.startswith("Accuracy") for m in at.metric)
    evaluate_checkpoint(demo_env["ck"] / "se_resnet20.pt", spec, "test", demo_env["cache"])  # prepared beforehand
    at.run()
    assert not at.error, texts(at, "error")
    assert any(m.label.startswith("Accuracy · test") for m in at.metric)


def test_demo_model_card_and_compare_recompute_only_within_the_budget(demo_env):
    at = open_app("senet_dashboard/views/home.py")  # val (12 images) fits, test (120) does not and is not prepared for resnet20
    at.sidebar.selectbox(key="checkpoint").set_value(str(demo_env["ck"] / "resnet20.pt")).run()
    assert "Recompute val accuracy now" in button_labels(at), button_labels(at)
    one_line(texts(at, "caption"), "Recomputing test accuracy", "budget of 100")
    at = open_app("senet_dashboard/views/compare.py")
    at.toggle(key="compare_recompute").set_value(True).run()
    assert not at.exception
    refused = [c for c in texts(at, "caption") if "budget of 100" in c]
    assert refused and all("on test" in c for c in refused), refused
    table = at.dataframe[0].value
    assert table["val % (recomputed now)"].notna().all(), "val fits the budget and is recomputed"


def test_demo_upload_check_refuses_oversize_files_in_bytes_and_pixels(demo_env):
    from streamlit.runtime.uploaded_file_manager import UploadedFile, UploadedFileRec

    from senet_dashboard.views import _loaders as ui

    def upload(name: str, data: bytes) -> UploadedFile:
        return UploadedFile(UploadedFileRec(file_id=name, name=name, type="image/png", data=data), None)

    assert ui.upload_refusal(upload("ok.png", png(Image.new("RGB", (64, 64))))) is None
    assert "pixels" in ui.upload_refusal(upload("wide.png", png(Image.new("1", (2000, 1000)))))
    assert "MB" in ui.upload_refusal(upload("big.bin", b"\0" * (2 ** 20 + 1)))
    assert ui.demo_budget() == 100 and ui.per_class_within_budget(10, 3) == 3


@pytest.mark.parametrize("name, make", [
    ("wide.png", lambda: png(Image.new("1", (2000, 1000)))),                      # 2 MP in a few kB
    ("heavy.png", lambda: png(Image.frombytes("RGB", (700, 700), os.urandom(700 * 700 * 3)))),  # 1.4 MB of noise
])
def test_demo_excitation_refuses_an_oversize_upload(demo_env, name, make):
    at = open_app("senet_dashboard/views/excitation.py")
    at.segmented_control(key="exc_mode").set_value("Upload").run()
    at.file_uploader(key="exc_upload").set_value((name, make(), "image/png")).run()
    assert not at.exception
    one_line(texts(at, "error"), name, "limit")
    assert "Gates of this image" not in texts(at, "subheader")


def test_demo_excitation_ablation_over_the_whole_split_keeps_to_the_budget(demo_env, monkeypatch):
    monkeypatch.setenv("SENET_DEMO_BUDGET", "50")  # se_resnet20: 9 blocks, 2 + 2 x 10 = 22 passes per image
    at = open_app("senet_dashboard/views/excitation.py", {"view": "split"})  # the view Across the split
    at.selectbox(key="exc_split_per_class").set_value(0).run()  # all 12 val images: 264 passes
    if "exc_split_run" in {b.key for b in at.button} and not at.button(key="exc_split_run").disabled:
        at.button(key="exc_split_run").click().run()
    assert not at.exception
    one_line(texts(at, "error") + texts(at, "caption"), "budget of 50")
    assert not any("Both panels share one scale" in c for c in texts(at, "caption")), "no ablation was run"


def test_demo_builds_no_imagenet_model_unless_listed(demo_env, monkeypatch):
    from senet_dashboard.views import _loaders as ui

    built, original = [], ui._load_checkpoint

    def load(path, mtime):
        if path.startswith("torchvision:"):
            built.append(path)
        return original(path, mtime)

    monkeypatch.setattr(ui, "_load_checkpoint", load)
    at = open_app("senet_dashboard/views/home.py")
    assert "imagenet_name" not in [w.key for w in at.sidebar.selectbox], "no ImageNet model served: none offered"
    monkeypatch.setenv("SENET_DEMO_MODELS", "timm:seresnet50")  # one served: the picker offers it alone
    at = open_app("senet_dashboard/views/home.py")
    before = at.sidebar.selectbox(key="checkpoint").value
    assert list(at.sidebar.selectbox(key="imagenet_name").options) == ["timm:seresnet50"]
    at = open_app(query={"checkpoint": "torchvision:mobilenet_v3_small"})  # others refused, from a link too
    assert not at.exception
    one_line(texts(at.sidebar, "error"), "torchvision:mobilenet_v3_small", "serves only the ImageNet models")
    assert at.sidebar.selectbox(key="checkpoint").value == before and not built


def test_demo_explorer_still_works(demo_env):
    for page in ("senet_dashboard/views/home.py", "senet_dashboard/views/excitation.py", "senet_dashboard/views/confusion.py", "senet_dashboard/views/compare.py",
                 "senet_dashboard/views/train.py"):
        at = open_app(page)
        assert not at.error, (page, texts(at, "error"))
        assert any("Public demo" in c for c in texts(at.sidebar, "caption")), "the sidebar says it is a demo"
    at = open_app("senet_dashboard/views/excitation.py")
    assert "Gates of this image" in texts(at, "subheader") and at.get("plotly_chart")
    at.button[[b.label for b in at.button].index("Random")].click().run()
    assert not at.exception and "Gates of this image" in texts(at, "subheader")
    at.segmented_control(key="exc_mode").set_value("Upload").run()
    at.file_uploader(key="exc_upload").set_value(("ok.png", png(Image.new("RGB", (300, 200), (200, 30, 30))),
                                                  "image/png")).run()
    assert not at.exception and not at.error, texts(at, "error")
    assert "Gates of this image" in texts(at, "subheader"), "an upload within the caps is explained"


def test_demo_misconfigured_stops_every_page_with_one_line(demo_env, monkeypatch):
    monkeypatch.setenv("SENET_DEMO_BUDGET", "plenty")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    one_line(texts(at.sidebar, "error"), "SENET_DEMO_BUDGET", "misconfigured")
    assert not at.title, "no page runs unguarded"
