"""A recorded config is what trains: ``--config``, ``--resume`` and the dashboard's launcher, whatever the
environment says.

An environment variable (``$SENET_DATA``; ``$SENET_DATA_DIR``, the default of ``data_dir``) only fills a setting
that neither a flag nor a recorded configuration gives. Each test points every environment-backed setting
elsewhere -- at paths that do not exist, and at another real dataset with other classes -- and checks what the
resulting run recorded: its config, its classes, its image count and its data fingerprint.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from conftest import call_cli, make_folder_dataset, senet_cli
from senet.checkpoint import read_checkpoint
from senet.training import make_config, train
from senet.training.runs import read_json, write_json_atomic
from senet.training.settings import config_record

SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict:
    """A tiny recorded run: its data (3 classes), another dataset (4 classes, other images), and the run itself
    (1 epoch), trained here without any environment variable in play."""
    tmp = tmp_path_factory.mktemp("recorded")
    data = make_folder_dataset(tmp / "data", per_class=8)
    other = make_folder_dataset(tmp / "other", classes=("a", "b", "c", "d"), per_class=5, seed=1)
    config = make_config("resnet20", "seed", data=f"folder:{data}", data_dir=str(tmp / "cache"), epochs=1,
                         batch_size=6, lr=0.02, val_size=6, log_every=1, probe_per_class=0, tta_level=0)
    run = tmp / "run"
    run.mkdir()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train(config, run, progress=False)["state"] == "finished"
    finally:
        torch.set_num_threads(before)
    meta = read_checkpoint(run / "last.pt")["meta"]
    return {"tmp": tmp, "data": data, "other": other, "config": config, "run": run, "meta": meta}


def elsewhere(recorded: dict, where: str) -> dict[str, str]:
    """Every environment-backed training setting pointing away from the recorded run's."""
    if where == "missing":
        return {"SENET_DATA": f"folder:{recorded['tmp'] / 'no-such-data'}",
                "SENET_DATA_DIR": str(recorded["tmp"] / "no-such-dir"), **SINGLE_THREAD}
    return {"SENET_DATA": f"folder:{recorded['other']}", "SENET_DATA_DIR": str(recorded["tmp"] / "other-cache"),
            **SINGLE_THREAD}


def assert_trained_as_recorded(run: Path, recorded: dict) -> None:
    """The run's config names the recorded data, and its checkpoint holds the recorded data's images."""
    config = read_json(run / "config.json")
    assert (config["data"], config["data_dir"]) == (recorded["config"].data, recorded["config"].data_dir), config
    payload = read_checkpoint(run / "last.pt")
    meta, want = payload["meta"], recorded["meta"]
    assert payload["classes"] == ["blue", "green", "red"], "the recorded data's classes, not the other's four"
    assert meta["train_images"] == want["train_images"] == 18
    assert meta["data_fingerprint"] == want["data_fingerprint"], "trained on other images than recorded"
    assert meta["config"]["data"] == recorded["config"].data


@pytest.mark.parametrize("where", ["missing", "other"])
def test_train_config_trains_the_recorded_data_whatever_the_environment_says(recorded, tmp_path, where):
    record = tmp_path / "config.json"
    write_json_atomic(record, read_json(recorded["run"] / "config.json"))
    run = tmp_path / "run"
    done = senet_cli("train", "--config", str(record), "--run-dir", str(run), "--no-progress",
                     cwd=tmp_path, env=elsewhere(recorded, where), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_trained_as_recorded(run, recorded)


def test_train_resume_trains_the_recorded_data_whatever_the_environment_says(recorded, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(recorded["run"], run)
    for epochs, where in ((2, "missing"), (3, "other")):
        done = senet_cli("train", "--resume", str(run), "--epochs", str(epochs), "--no-progress", cwd=tmp_path,
                         env=elsewhere(recorded, where), timeout=600)
        assert done.returncode == 0, f"{where}: {done.stderr[-2000:]}"
        assert read_json(run / "status.json")["epoch"] == epochs
        assert_trained_as_recorded(run, recorded)


def _built_config(capsys, monkeypatch, *argv: str):
    """The configuration ``senet train ARGV`` builds (the data check and the training stubbed out)."""
    import senet.cli as cli

    seen = {}
    monkeypatch.setattr(cli, "_check_data", lambda config: None)
    monkeypatch.setattr(cli, "_run", lambda config, run_dir, resume, progress, **_: seen.update(config=config) or 0)
    code, _, err = call_cli(capsys, "train", *argv)
    assert code == 0, err
    return seen["config"]


def test_the_environment_fills_only_what_neither_a_flag_nor_the_record_gives(recorded, tmp_path, capsys,
                                                                             monkeypatch):
    mine, theirs = f"folder:{recorded['data']}", f"folder:{recorded['other']}"
    monkeypatch.setenv("SENET_DATA", theirs)
    runs = str(tmp_path / "runs")
    assert _built_config(capsys, monkeypatch, "--runs-root", runs).data == theirs, "a new run without --data"
    assert _built_config(capsys, monkeypatch, "--data", mine, "--runs-root", runs).data == mine, "a flag wins"
    record = dict(config_record(recorded["config"]))
    write_json_atomic(tmp_path / "with.json", record)
    assert _built_config(capsys, monkeypatch, "--config", str(tmp_path / "with.json"), "--runs-root",
                         runs).data == mine, "the record wins over the environment"
    write_json_atomic(tmp_path / "without.json", {k: v for k, v in record.items() if k != "data"})
    assert _built_config(capsys, monkeypatch, "--config", str(tmp_path / "without.json"), "--runs-root",
                         runs).data == theirs, "a record without a data source takes the environment's"


@pytest.mark.parametrize("where", ["sample", "other"])
def test_the_dashboards_launcher_trains_what_it_records_whatever_its_environment_says(recorded, tmp_path,
                                                                                        monkeypatch, where):
    """A dashboard started with SENET_DATA=sample (which cannot be trained on) or pointing at other data
    launches, records and trains the configuration it was given."""
    from senet_dashboard.launcher import run_state, start_run

    env = elsewhere(recorded, "other")
    if where == "sample":
        env["SENET_DATA"] = "sample"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    run = start_run(recorded["config"], tmp_path / "runs")
    deadline = time.time() + 600
    while run_state(run)["state"] in ("starting", "running") and time.time() < deadline:
        time.sleep(0.5)
    assert run_state(run)["state"] == "finished", (run / "train.log").read_text()[-2000:]
    command = read_json(run / "launch.json")["command"]
    assert command[command.index("--data") + 1] == recorded["config"].data, "every setting on the command line"
    assert_trained_as_recorded(run, recorded)
