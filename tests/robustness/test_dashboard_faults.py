"""The dashboard's Train page under faults: half-written metrics, unreadable run files, a restart while a run
is active, a run killed under it, and two sessions starting runs at once.

Runs are real ``python -m senet train`` processes started by the launcher (as
the page's Start button does), held at an exact step by the injected fault
(``inject/sitecustomize.py``) so that "active" is deterministic, and released
by the test. The dashboard is driven through ``streamlit.testing.v1.AppTest``;
a new AppTest instance is a restarted dashboard (it shares nothing with the
previous one but the files on disk).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest

from faults import INJECT, ROOT, SINGLE_THREAD, tiny_dataset, wait_for
from senet import load_checkpoint
from senet_dashboard.curves import MetricsTail
from senet_dashboard.launcher import run_state, start_run
from senet.training.runs import read_json, read_metrics
from senet.training import make_config, train


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Where the dashboard looks (runs, data) and, for launched runs, a fault holding them at step 2."""
    data = tiny_dataset(tmp_path / "data")
    runs = tmp_path / "runs"
    monkeypatch.setenv("SENET_RUNS", str(runs))
    monkeypatch.setenv("SENET_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("SENET_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SENET_DATA", f"folder:{data}")
    for k, v in SINGLE_THREAD.items():
        monkeypatch.setenv(k, v)
    release = tmp_path / "release"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(INJECT), str(ROOT)]))  # the launcher's children
    monkeypatch.setenv("SENET_FAULT", json.dumps({"hang_at_step": 2, "marker": str(tmp_path / "held-{pid}"),
                                                  "release": str(release)}))
    site = {"tmp": tmp_path, "data": data, "runs": runs, "release": release}
    yield site
    release.write_text("go")  # a failed test must not leave held training processes behind
    for pid in held_pids(site):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def config(site: dict, seed: int = 0, epochs: int = 1):
    return make_config("resnet20", "fast", data=f"folder:{site['data']}", data_dir=str(site["tmp"] / "cache"),
                       epochs=epochs, batch_size=8, lr=0.05, val_size=6, log_every=1, seed=seed)


def held_pids(site: dict) -> set[int]:
    return {int(p.read_text()) for p in site["tmp"].glob("held-*") if p.read_text()}


def train_page():
    """A freshly started dashboard, on the Train page."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("senet_dashboard/views/train.py").run()
    assert not at.exception, f"the Train page crashed: {at.exception}"
    return at


def runs_table(at) -> dict[str, dict]:
    """The page's table of past runs, by run name."""
    frames = [d.value for d in at.dataframe if "run" in getattr(d.value, "columns", [])]
    assert frames, "the Train page shows a table of runs"
    return {row["run"]: row for row in frames[0].to_dict("records")}


def has_button(at, key: str) -> bool:
    return any(b.key == key for b in at.button)


def caption_with(at, text: str) -> str:
    found = [c.value for c in at.caption if text in c.value]
    assert found, f"expected a caption with {text!r}, got {[c.value for c in at.caption]}"
    return found[0]


def wait_until_state(run_dir: Path, states: tuple[str, ...], timeout: float = 120) -> dict:
    return wait_for(lambda: run_state(run_dir) if run_state(run_dir).get("state") in states else None,
                    timeout=timeout, what=f"{run_dir.name} to be {' or '.join(states)}")


# --------------------------------------------------------------------------- files
@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch run, trained once in this process (a plain ``train`` call: no fault)."""
    root = tmp_path_factory.mktemp("trained")
    data = tiny_dataset(root / "data")
    run_dir = root / "run"
    run_dir.mkdir()
    c = make_config("resnet20", "fast", data=f"folder:{data}", data_dir=str(root / "cache"), epochs=1, batch_size=8,
                    lr=0.05, val_size=6, log_every=1)
    assert train(c, run_dir, progress=False)["state"] == "finished"
    return run_dir


@pytest.fixture
def finished_run(site: dict, trained_once: Path) -> Path:
    """A copy of the finished run in this test's runs folder."""
    return Path(shutil.copytree(trained_once, site["runs"] / "20250101-000000-resnet20"))


def test_truncated_last_metrics_line_is_ignored_by_readers_and_the_dashboard(finished_run: Path) -> None:
    metrics = finished_run / "metrics.jsonl"
    complete, _ = read_metrics(metrics)
    steps = sum(r["type"] == "step" for r in complete)
    with open(metrics, "a") as f:
        f.write('{"type": "step", "step": 99, "epoch": 9.0, "loss": 0.12')  # a writer killed mid-line
    assert read_metrics(metrics)[0] == complete, "a reader skips the incomplete last line"
    tail = MetricsTail(metrics)
    assert tail.read() == complete
    at = train_page()
    assert caption_with(at, "step records").startswith(f"{steps} step records · 1 epochs logged")
    assert runs_table(at)[finished_run.name]["state"] == "finished"
    with open(metrics, "a") as f:  # the line is completed: read exactly once, by the same session
        f.write(', "lr": 0.01, "images_per_s": 100.0, "time": 1.0}\n')
    assert len(tail.read()) == len(complete) + 1
    at.run()
    assert not at.exception
    assert caption_with(at, "step records").startswith(f"{steps + 1} step records")


def test_unreadable_status_and_config_show_the_run_as_unknown_without_breaking_the_page(site: dict,
                                                                                       finished_run: Path) -> None:
    broken = site["runs"] / "20250101-000001-broken"
    shutil.copytree(finished_run, broken)
    (broken / "status.json").write_text('{"state": "runn')  # cut short by a full disk
    (broken / "config.json").write_bytes(b"\x00\xff not json")
    (broken / "metrics.jsonl").write_bytes(b"\x00\x01garbage\n{not json}\n[1, 2]\n")
    at = train_page()
    table = runs_table(at)
    assert table[broken.name]["state"] == "unknown", table[broken.name]
    assert table[finished_run.name]["state"] == "finished", "the healthy run is unaffected"
    at.selectbox(key="train_run").set_value(str(broken)).run()
    assert not at.exception, at.exception
    assert caption_with(at, "recorded no steps")


def test_wrongly_typed_run_files_are_that_run_s_one_line_and_the_page_goes_on(site: dict, finished_run: Path) -> None:
    """Readable JSON of the wrong type (issue 29, class 5): a list where status.json has a number, a string where
    config.json has one, a metrics line whose step is text, a probe file of the wrong shape."""
    typed_status = site["runs"] / "20250101-000002-status-typed"
    typed_config = site["runs"] / "20250101-000003-config-typed"
    for copy in (typed_status, typed_config):
        shutil.copytree(finished_run, copy)
    status = json.loads((typed_status / "status.json").read_text())
    (typed_status / "status.json").write_text(json.dumps(dict(status, epoch=[1, 2], best_val_acc="high")))
    config = json.loads((typed_config / "config.json").read_text())
    (typed_config / "config.json").write_text(json.dumps(dict(config, epochs="three", lr=[0.1])))
    with open(typed_config / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"type": "step", "step": "four", "loss": "low"}) + "\n")
    (typed_config / "gates").mkdir(exist_ok=True)
    (typed_config / "gates" / "probe.json").write_text(json.dumps({"labels": "all", "classes": 3}))
    at = train_page()
    table = runs_table(at)
    assert table[typed_status.name]["state"] == "unknown", table[typed_status.name]
    assert table[typed_config.name]["state"] == "unknown", table[typed_config.name]
    assert table[finished_run.name]["state"] == "finished", "the healthy run is unaffected"
    for broken, words in ((typed_status, "bad 'epoch'"), (typed_config, "bad 'epochs'")):
        at.selectbox(key="train_run").set_value(str(broken)).run()
        assert not at.exception, f"{broken.name}: the page crashed: {at.exception}"
        shown = " ".join(e.value for e in at.error)
        assert words in shown, f"{broken.name}: expected {words!r} among the errors: {shown}"
    records, _ = read_metrics(typed_config / "metrics.jsonl")
    assert all(isinstance(r["step"], int) for r in records), "the wrongly typed line is skipped"


# --------------------------------------------------------------------------- live runs
@pytest.mark.slow
def test_restarted_dashboard_finds_the_active_run_and_stops_it_cleanly(site: dict) -> None:
    run_dir = start_run(config(site, epochs=50), site["runs"])  # started by a dashboard that is now gone
    wait_for(lambda: held_pids(site), what="the run to reach step 2")
    at = train_page()  # the restarted dashboard
    assert at.selectbox(key="train_run").value == str(run_dir), "the active run is selected"
    assert runs_table(at)[run_dir.name]["state"] == "running"
    assert caption_with(at, "step records").startswith("2 step records")
    at.button(key="stop_run").click().run()  # SIGTERM: the trainer finishes its step and saves last.pt
    assert not at.exception, at.exception
    site["release"].write_text("go")
    status = wait_until_state(run_dir, ("stopped", "failed"))
    assert status["state"] == "stopped" and status["stopped_by"] == "SIGTERM", status
    model, meta = load_checkpoint(run_dir / "last.pt")
    assert meta["classes"] == ["blue", "green", "red"]
    at = train_page()  # and once more after the stop
    assert runs_table(at)[run_dir.name]["state"] == "stopped"
    assert has_button(at, "resume_run"), "a stopped run can be resumed"


@pytest.mark.slow
def test_dashboard_shows_a_run_killed_under_it_as_failed_not_running(site: dict) -> None:
    run_dir = start_run(config(site, epochs=50), site["runs"])
    pid = next(iter(wait_for(lambda: held_pids(site), what="the run to reach step 2")))
    at = train_page()
    assert runs_table(at)[run_dir.name]["state"] == "running"
    os.kill(pid, 9)
    wait_for(lambda: run_state(run_dir)["state"] == "failed", what="the dead run to read as failed")
    at.run()  # the same session, next refresh
    assert not at.exception
    row = runs_table(at)[run_dir.name]
    assert row["state"] == "failed" and "died" in row["error"], row
    assert any("died" in e.value for e in at.error), "the run view says why it failed"
    assert not has_button(at, "stop_run"), "no Stop button for a dead run"


@pytest.mark.slow
def test_two_runs_started_at_the_same_moment_get_separate_directories_and_both_finish(site: dict) -> None:
    """Two launcher calls released by one barrier (two dashboard sessions clicking Start at once)."""
    barrier = threading.Barrier(2)
    started: dict[int, Path] = {}

    def start(seed: int) -> None:
        barrier.wait()
        started[seed] = start_run(config(site, seed=seed), site["runs"])

    threads = [threading.Thread(target=start, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(started) == 2 and started[1] != started[2], f"separate run directories: {started}"
    wait_for(lambda: len(held_pids(site)) == 2, what="both runs to reach step 2")
    site["release"].write_text("go")
    for seed, run_dir in started.items():
        status = wait_until_state(run_dir, ("finished", "failed", "stopped"))
        assert status["state"] == "finished", f"{run_dir.name}: {status}"
        assert read_json(run_dir / "config.json")["seed"] == seed, "each run kept its own configuration"
        assert read_json(run_dir / "launch.json")["pid"] == status["pid"], "each run's status is its own process's"
        steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")[0] if r["type"] == "step"]
        assert steps == [1, 2, 3], f"{run_dir.name}: one run's metrics, not interleaved: {steps}"
        load_checkpoint(run_dir / "last.pt")
    assert read_json(started[1] / "status.json")["pid"] != read_json(started[2] / "status.json")["pid"]


@pytest.mark.slow
def test_two_dashboard_sessions_starting_runs_get_separate_directories(site: dict) -> None:
    """Session A starts a run; session B, seeing it active, confirms and starts another."""
    def submit(at, seed: int) -> None:
        at.selectbox(key="new_family").set_value("resnet20")
        at.toggle(key="new_se").set_value(False)
        at.run()
        tag = "resnet20_fast"
        at.number_input(key=f"new_epochs_{tag}").set_value(1)
        at.number_input(key=f"new_lr_{tag}").set_value(0.05)
        at.number_input(key=f"new_batch_size_{tag}").set_value(8)
        at.number_input(key=f"new_seed_{tag}").set_value(seed)
        at.number_input(key=f"new_val_size_{tag}").set_value(6.0)
        at.number_input(key=f"new_log_every_{tag}").set_value(1).run()  # checked on the page: Start is on
        next(b for b in at.button if b.label == "Start training").click().run()
        assert not at.exception and not at.error, f"session {seed}: {at.exception} {[e.value for e in at.error]}"

    a, b = train_page(), train_page()
    submit(a, seed=1)
    wait_for(lambda: len(held_pids(site)) == 1, what="session A's run to reach step 2")
    submit(b, seed=2)
    b.button(key="confirm_start").click().run()  # "2 cores: start another anyway?"
    assert not b.exception, b.exception
    wait_for(lambda: len(held_pids(site)) == 2, what="session B's run to reach step 2")
    dirs = sorted(p for p in site["runs"].iterdir() if p.is_dir())
    assert len(dirs) == 2, f"two run directories: {dirs}"
    seeds = sorted(read_json(d / "config.json")["seed"] for d in dirs)
    assert seeds == [1, 2], f"each session's own configuration: {seeds}"
    a.run()
    assert sorted(r["state"] for r in runs_table(a).values()) == ["running", "running"], "A sees both runs"
    site["release"].write_text("go")
    for d in dirs:
        assert wait_until_state(d, ("finished", "failed", "stopped"))["state"] == "finished"


@pytest.mark.slow
def test_a_run_the_data_refutes_shows_as_failed_with_the_one_line_reason(site: dict) -> None:
    """Batch size 64 passes the form's checks but the tiny dataset has 30 training images: the launched
    process refuses it (exit 2) and the page says why, from the run's log."""
    run_dir = start_run(make_config("resnet20", "fast", data=f"folder:{site['data']}",
                                    data_dir=str(site["tmp"] / "cache"), epochs=1, batch_size=64, val_size=6),
                        site["runs"])
    status = wait_until_state(run_dir, ("failed", "finished"))
    assert status["state"] == "failed" and "batch_size 64 is larger than the 30 training images" in status["error"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "launch.json", "train.log"], \
        "nothing else was written (config.json is the launcher's)"
    at = train_page()
    row = runs_table(at)[run_dir.name]
    assert row["state"] == "failed" and "batch_size 64" in row["error"] and "\n" not in row["error"], row
    assert any("batch_size 64" in e.value for e in at.error)
