"""Bad checkpoint files through the command line (info, evaluate, excite) and the dashboard.

``tests/test_checkpoint.py`` checks ``senet.load_checkpoint`` on these files;
here each one goes through the user's entry points, which must answer with one
line (exit code 2 on the command line, an ``st.error`` for that entry in the
dashboard), never run code, write nothing, and keep the good checkpoints usable.
"""
from __future__ import annotations

import io
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faults import assert_one_line_error, cli_batch, colour_images, good_checkpoint, senet, snapshot
from senet import create_model
from senet.checkpoint import FORMAT
from senet.files import remove_stale_temporaries

class RunsCode:
    """Unpickling this would create the file ``marker``: the test proves it never happens."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pickle code ran')",)


def bad_checkpoints(folder: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """{case: (file, what the one-line error must say)} for every kind of bad checkpoint in issue 6."""
    folder.mkdir(parents=True, exist_ok=True)
    good = good_checkpoint(folder / "source.pt").read_bytes()
    (folder / "source.pt").unlink()
    payload = torch.load(io.BytesIO(good), weights_only=True)
    cases: dict[str, tuple[Path, str]] = {}

    def add(case: str, reason: str, data: bytes | None = None, obj: object = None) -> None:
        path = folder / f"{case}.pt"
        if data is None:
            buf = io.BytesIO()
            torch.save(obj, buf)
            data = buf.getvalue()
        path.write_bytes(data)
        cases[case] = (path, reason)

    add("empty", "the file is empty", b"")
    add("truncated", "not a readable PyTorch checkpoint", good[: len(good) // 2])
    add("random-bytes", "not a readable PyTorch checkpoint", np.random.default_rng(0).bytes(4096))
    add("pickle-runs-code", "loading it could run code", pickle.dumps(RunsCode(marker), protocol=2))
    add("torch-file-runs-code", "loading it could run code", obj={"format": FORMAT, "x": RunsCode(marker)})
    add("bare-state-dict", "not a senet checkpoint", obj=create_model("resnet20", num_classes=3).state_dict())
    add("newer-version", "unsupported checkpoint version 2", obj=dict(payload, version=2))
    add("shapes-do-not-fit", "weights do not fit model 'se_resnet20'",
        obj=dict(payload, state_dict=create_model("se_resnet32", num_classes=3).state_dict()))
    add("wrong-class-count", "predicts 3 classes but the checkpoint names 5",
        obj=dict(payload, classes=["a", "b", "c", "d", "e"]))
    # readable files of the wrong type (issue 29, class 5): the card's one line, never a crash further on
    meta = dict(payload.get("meta") or {})
    add("history-of-strings", "bad 'history' in the checkpoint's card",
        obj=dict(payload, meta=dict(meta, history=["epoch one", "epoch two"])))
    add("config-a-string", "bad 'config' in the checkpoint's card", obj=dict(payload, meta=dict(meta, config="fast")))
    add("val-acc-in-words", "bad 'val_acc' in the checkpoint's card (expected a number, got 'ninety')",
        obj=dict(payload, meta=dict(meta, val_acc="ninety")))
    add("config-lr-in-words", "bad 'lr' in the checkpoint's recorded config",
        obj=dict(payload, meta=dict(meta, config={"model": "se_resnet20", "lr": "fast"})))
    add("input-size-gray", "bad 'input_size'", obj=dict(payload, input_size=[1, 32, 32], mean=[0.5], std=[0.2]))
    return cases


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("bad-checkpoints")
    marker = root / "PICKLE-CODE-RAN"
    data = root / "data"
    colour_images(data / "train", per_class=4)
    image = root / "image.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image)
    good = good_checkpoint(root / "checkpoints" / "good.pt")
    return {"root": root, "marker": marker, "data": data, "image": image, "good": good,
            "bad": bad_checkpoints(root / "checkpoints", marker)}


COMMANDS = ("info", "evaluate", "excite", "export")


def commands(world: dict, checkpoint: Path) -> dict[str, list[str]]:
    return {"info": ["info", "--checkpoint", str(checkpoint)],
            "evaluate": ["evaluate", "--checkpoint", str(checkpoint), "--data", f"folder:{world['data']}",
                         "--data-dir", str(world["root"] / "cache"), "--split", "train"],
            "excite": ["excite", "--checkpoint", str(checkpoint), str(world["image"])],
            "export": ["export", "--checkpoint", str(checkpoint), "--out",
                       str(world["root"] / "exported" / checkpoint.name), "--half"]}


def test_every_bad_checkpoint_gives_one_line_exit_2_through_info_evaluate_excite_and_export(world: dict) -> None:
    before = snapshot(world["root"])
    argvs = [argv for path, _ in world["bad"].values() for argv in commands(world, path).values()]
    results = cli_batch(argvs + list(commands(world, world["good"]).values()), cwd=world["root"])
    for i, (case, (path, reason)) in enumerate(world["bad"].items()):
        for command, r in zip(COMMANDS, results[len(COMMANDS) * i:len(COMMANDS) * (i + 1)]):
            line = assert_one_line_error(r, str(path), reason, prefix=f"senet {command}: error:")
            assert r["stdout"] == "", f"{case} via {command}: nothing on stdout, got {r['stdout']!r} ({line})"
    assert not world["marker"].exists(), "a pickled payload ran code while a checkpoint was read"
    good_info, good_eval, good_excite, good_export = results[len(argvs):]
    assert good_info["rc"] == 0 and "SE parameters" in good_info["stdout"], good_info
    assert good_eval["rc"] == 0 and "accuracy" in good_eval["stdout"], good_eval
    assert good_excite["rc"] == 0 and str(world["image"]) in good_excite["stdout"], good_excite
    assert good_export["rc"] == 0 and "float16" in good_export["stdout"], good_export
    after = snapshot(world["root"])
    new = sorted(set(after) - set(before))
    expected_new = ("cache", "exported/good.pt", "exported")
    assert all(p.startswith(expected_new) for p in new) and "exported/good.pt" in new, \
        f"only the good evaluation's data cache and the good export may appear: {new}"
    changed = [p for p in before if after.get(p) != before[p] and not p.startswith("cache")]
    assert changed == [], f"bad checkpoints must be left exactly as they were: {changed}"


def test_the_real_entry_point_refuses_a_pickle_that_would_run_code_in_one_line(world: dict) -> None:
    """The same through ``python -m senet`` itself (its ``__main__``), for the most dangerous file."""
    path, reason = world["bad"]["pickle-runs-code"]
    result = senet(*commands(world, path)["info"], cwd=world["root"], timeout=120)
    assert_one_line_error(result, str(path), reason, prefix="senet info: error:")
    assert not world["marker"].exists()


def test_leftover_temporary_checkpoint_of_a_dead_writer_is_removed_by_the_next_save(tmp_path: Path) -> None:
    """A ``kill -9`` in the middle of a save leaves ``.last.pt.PID-HOST.XXXX.tmp``; the next save removes it,
    but never the temporary file of a writer that is still alive."""
    target = good_checkpoint(tmp_path / "last.pt")
    name = next(tmp_path.glob(".last.pt.*.tmp"), None)
    assert name is None, "a successful save leaves no temporary file"
    host = remove_stale_temporaries.__globals__["_host_tag"]()
    dead_pid = 2 ** 22 + 12345  # above the kernel's default pid_max: no such process
    dead = tmp_path / f".last.pt.{dead_pid}-{host}.abc123.tmp"
    alive = tmp_path / f".last.pt.{os.getppid()}-{host}.def456.tmp"
    other_file = tmp_path / f".best.pt.{dead_pid}-{host}.ghi789.tmp"
    for p in (dead, alive, other_file):
        p.write_bytes(b"half a checkpoint")
    time.sleep(0.01)
    good_checkpoint(target)
    assert not dead.exists(), "the dead writer's half-written file should be gone"
    assert alive.exists(), "a temporary file of a live process may be a write in progress: keep it"
    assert other_file.exists(), "only temporary files of the file being written are considered"


# --------------------------------------------------------------------------- the dashboard
@pytest.fixture
def dashboard(world: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from streamlit.testing.v1 import AppTest

    from faults import ROOT

    monkeypatch.setenv("SENET_CHECKPOINTS", str(world["root"] / "checkpoints"))
    monkeypatch.setenv("SENET_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("SENET_DATA_DIR", str(tmp_path / "data-dir"))
    monkeypatch.setenv("SENET_DATA", f"folder:{tmp_path / 'no-data'}")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, f"the dashboard should start: {at.exception}"
    return at


def errors(at) -> list[str]:
    return [e.value for e in at.error]


@pytest.mark.parametrize("page", ["senet_dashboard/views/home.py", "senet_dashboard/views/excitation.py", "senet_dashboard/views/confusion.py"])
def test_dashboard_reports_each_corrupt_checkpoint_alone_and_keeps_the_good_one_usable(world: dict, dashboard,
                                                                                      page: str) -> None:
    at = dashboard
    at.switch_page(page).run()
    box = at.sidebar.selectbox(key="checkpoint")
    listed = " | ".join(box.options)  # the labels: "<stem>  ·  shipped", marked when visibly broken
    assert "good" in listed
    for case, (path, reason) in world["bad"].items():
        assert path.stem in listed, f"{case}: a corrupt file is still listed (marked), not hidden: {listed}"
        box.set_value(str(path)).run()
        assert not at.exception, f"{case} on {page}: the page crashed: {at.exception}"
        shown = errors(at)
        assert shown and all(str(path) in e for e in shown), f"{case} on {page}: expected errors naming it: {shown}"
        assert any(reason in e for e in shown), f"{case} on {page}: expected {reason!r} in {shown}"
        assert all("\n" not in e for e in shown), f"{case}: one line each: {shown}"
        box = at.sidebar.selectbox(key="checkpoint")
    box.set_value(str(world["good"])).run()
    assert not at.exception and errors(at) == [], f"the good checkpoint works on {page}: {errors(at)}"
    assert not world["marker"].exists(), "a pickled payload ran code in the dashboard"


def test_compare_page_shows_good_checkpoints_and_one_error_per_corrupt_one(world: dict, dashboard) -> None:
    at = dashboard
    at.switch_page("senet_dashboard/views/compare.py").run()
    everything = [str(world["good"])] + [str(p) for p, _ in world["bad"].values()]
    at.multiselect(key="compare_keys").set_value(everything).run()
    assert not at.exception, at.exception
    shown = errors(at)
    for case, (path, _) in world["bad"].items():
        assert sum(str(path) in e for e in shown) == 1, f"{case}: exactly one error for it, got {shown}"
    assert len(shown) == len(world["bad"]), f"no error for the good checkpoint: {shown}"
    table = at.dataframe[0].value
    assert list(table["name"]) == ["good"], f"the good checkpoint is compared: {table}"
    assert not world["marker"].exists()
