"""Readable files of the wrong type and NUL bytes (issue 29, class 5): one validation layer (``senet.records``)
turns each into that file's one-line error; resuming over a wrongly typed metrics line works."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from faults import ROOT, assert_one_line_error, senet, tiny_dataset, train_args
from senet.checkpoint import CheckpointError, load_checkpoint
from senet.data import DataError, parse_spec
from senet.records import RECORDED_CONFIG, STATUS, RecordError, check_record
from senet.training.settings import config_shape
from senet.training.runs import read_metrics, read_status

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("typed")
    data = tiny_dataset(root / "data")
    run_dir = root / "run"
    result = senet(*train_args(data, root / "cache", run_dir=run_dir, epochs=1), cwd=root)
    assert result.returncode == 0, result.stderr
    return run_dir


def test_resume_skips_a_wrongly_typed_metrics_line(one_epoch_run: Path, tmp_path: Path) -> None:
    import shutil

    run_dir = Path(shutil.copytree(one_epoch_run, tmp_path / "run"))
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"type": "step", "step": "four", "loss": "low"}) + "\n")
    result = senet("train", "--resume", str(run_dir), "--epochs", "2", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")[0] if r["type"] == "step"]
    assert steps == list(range(1, 7)), steps


def test_resume_with_a_wrongly_typed_config_is_one_line(one_epoch_run: Path, tmp_path: Path) -> None:
    import shutil

    run_dir = Path(shutil.copytree(one_epoch_run, tmp_path / "run"))
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps(dict(config, batch_size="eight")))
    result = senet("train", "--resume", str(run_dir), "--epochs", "2", "--no-progress", cwd=tmp_path)
    assert_one_line_error(result, "config.json: bad 'batch_size' (expected an integer, got 'eight')")


def test_a_status_with_a_list_for_a_number_reads_as_unknown_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text(json.dumps({"state": "running", "pid": [1], "epoch": 2}))
    status = read_status(tmp_path)
    assert status["state"] == "unknown" and "bad 'pid'" in status["error"] and "\n" not in status["error"]


def test_the_shapes_accept_what_senet_writes(one_epoch_run: Path) -> None:
    check_record(json.loads((one_epoch_run / "status.json").read_text()), STATUS, "status.json")
    check_record(json.loads((one_epoch_run / "config.json").read_text()), config_shape(), "config.json")
    records, _ = read_metrics(one_epoch_run / "metrics.jsonl")
    assert {r["type"] for r in records} >= {"step", "epoch"}, "every record senet wrote passes its shape"
    with pytest.raises(RecordError, match=r"bad 'lr' \(expected a finite number, got inf\)"):
        check_record({"lr": float("inf")}, config_shape(), "config.json")


def test_the_card_s_recorded_config_shape_agrees_with_the_settings() -> None:
    full = config_shape()
    for key, (expected, _) in RECORDED_CONFIG.items():
        assert key in full, f"{key}: not a training setting"
        assert full[key][0] == expected, f"{key}: the card checks {expected}, the settings declare {full[key][0]}"


def test_a_nul_byte_in_a_path_or_spec_is_one_clear_error() -> None:
    with pytest.raises(DataError, match="contains a NUL byte"):
        parse_spec("folder:/data/a\x00b")
    with pytest.raises(CheckpointError, match="contains a NUL byte"):
        load_checkpoint("checkpoints/se\x00airnet.pt")


def test_a_nul_byte_in_the_address_is_one_error_and_the_session_goes_on(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SENET_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("SENET_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SENET_DATA", "sample")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["data"] = "folder:/srv/a\x00b"
    at.query_params["checkpoint"] = str(ROOT / "checkpoints" / "se\x00airnet.pt")
    at.run()
    assert not at.exception, at.exception
    shown = [e.value for e in at.error]
    assert shown and all("\n" not in e for e in shown), shown
    assert any("NUL byte" in e for e in shown), shown


def test_a_refusal_echoes_the_typed_path_not_the_expanded_home_directory(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    from streamlit.testing.v1 import AppTest

    from senet_dashboard.views._loaders import SidebarKeys

    home = tmp_path / "home-of-the-server"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SENET_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("SENET_DATA", "sample")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.text_input(key=SidebarKeys.OPEN_CHECKPOINT_PATH).set_value("~/secret/model.pt")
    at.button(key=SidebarKeys.OPEN_CHECKPOINT_BUTTON).click().run()
    shown = " ".join(e.value for e in at.error)
    assert "~/secret/model.pt: no such file" in shown, shown
    assert str(home) not in shown
