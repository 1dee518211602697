"""senet.training.runs: metrics.jsonl written line by line, tolerant readers, status with dead processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from senet.training.runs import (MetricsWriter, list_runs, read_json, read_metrics, read_status, truncate_metrics,
                        write_json_atomic, write_status)


def test_metrics_writer_flushes_each_record_as_one_json_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    writer.write({"type": "step", "step": 1, "loss": 2.5})
    # readable by another reader before close: flushed as it happens
    assert path.read_text() == '{"type": "step", "step": 1, "loss": 2.5}\n'
    writer.write({"type": "epoch", "step": 5, "val_acc": 0.5})
    writer.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 5]


def test_metrics_writer_stores_non_finite_numbers_as_null(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    writer.write({"type": "epoch", "val_loss": float("inf"), "train_loss": float("nan"), "nested": [float("-inf"), 1.0]})
    writer.close()
    record = json.loads(path.read_text())  # strict JSON: no NaN / Infinity tokens
    assert record == {"type": "epoch", "val_loss": None, "train_loss": None, "nested": [None, 1.0]}


def test_reader_ignores_a_half_written_last_line_and_reads_it_once_complete(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    records, offset = read_metrics(path)
    assert [r["step"] for r in records] == [1, 2]
    assert offset == len('{"step": 1}\n{"step": 2}\n'), "offset must stop before the incomplete line"
    with open(path, "a") as f:
        f.write('ss": 0.5}\n{"step": 4}\n')
    more, offset2 = read_metrics(path, offset)
    assert more == [{"step": 3, "loss": 0.5}, {"step": 4}]
    assert offset2 == path.stat().st_size
    assert read_metrics(path, offset2) == ([], offset2)


def test_reader_skips_corrupt_lines_and_non_objects(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n[1, 2]\n\n{"step": 2}\n')
    assert [r["step"] for r in read_metrics(path)[0]] == [1, 2]


def test_reader_of_a_missing_file_returns_nothing(tmp_path: Path) -> None:
    assert read_metrics(tmp_path / "nope.jsonl", 10) == ([], 10)


def test_every_line_of_a_live_metrics_file_parses_while_another_process_writes(tmp_path: Path) -> None:
    """A tailing reader never sees a broken record while a writer process appends."""
    path = tmp_path / "metrics.jsonl"
    code = ("import sys\n"
            "from senet.training import runs\n"
            "w = runs.MetricsWriter(sys.argv[1])\n"
            "for i in range(3000): w.write({'type': 'step', 'step': i, 'loss': 1.0 / (i + 1), 'pad': 'x' * (i % 50)})\n"
            "w.close()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)])
    seen, offset = [], 0
    while proc.poll() is None:
        records, offset = read_metrics(path, offset)
        seen.extend(r["step"] for r in records)
    records, offset = read_metrics(path, offset)
    seen.extend(r["step"] for r in records)
    assert proc.returncode == 0
    assert seen == list(range(3000)), "every record exactly once, in order"


def test_truncate_on_resume_drops_records_past_the_checkpoint_and_readers_recover(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    w = MetricsWriter(path)
    for step in (10, 20, 30, 40):
        w.write({"type": "step", "step": step})
    w.close()
    _, old_offset = read_metrics(path)
    truncate_metrics(path, 20)
    assert [r["step"] for r in read_metrics(path)[0]] == [10, 20]
    # a reader that had read past the truncation point continues with new records only
    w = MetricsWriter(path)
    w.write({"type": "resume", "step": 20})
    w.write({"type": "step", "step": 30})
    w.close()
    records, _ = read_metrics(path, old_offset)
    assert records == [] or all(r.get("step", 0) >= 20 for r in records), records
    records, offset = read_metrics(path, old_offset)
    w = MetricsWriter(path)
    w.write({"type": "step", "step": 40})
    w.close()
    assert read_metrics(path, offset)[0] == [{"type": "step", "step": 40}]


def test_status_of_a_dead_process_reads_as_failed(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    write_status(tmp_path, state="running", pid=dead_pid, epoch=3)
    status = read_status(tmp_path)
    assert status["state"] == "failed" and "died" in status["error"]
    write_status(tmp_path, state="running", pid=os.getpid())
    assert read_status(tmp_path)["state"] == "running"


def test_status_without_a_file_is_unknown(tmp_path: Path) -> None:
    assert read_status(tmp_path)["state"] == "unknown"


def test_write_status_merges_fields_atomically(tmp_path: Path) -> None:
    write_status(tmp_path, state="running", epoch=1)
    write_status(tmp_path, epoch=2)
    status = read_json(tmp_path / "status.json")
    assert status["state"] == "running" and status["epoch"] == 2 and "updated_at" in status
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"], "no temporary files left behind"


def test_list_runs_summarises_run_directories(tmp_path: Path) -> None:
    for name, started in (("a", 100.0), ("b", 200.0)):
        d = tmp_path / name
        d.mkdir()
        write_json_atomic(d / "config.json", {"model": "se_resnet20", "recipe": "fast", "epochs": 4})
        write_status(d, state="finished", started_at=started, best_val_acc=0.5, epoch=4)
    (tmp_path / "not-a-run").mkdir()
    rows = list_runs(tmp_path)
    assert [r["run"] for r in rows] == ["b", "a"], "newest first, non-runs skipped"
    assert rows[0]["model"] == "se_resnet20" and rows[0]["state"] == "finished"


def test_configs_recorded_before_the_redesign_still_rebuild_and_resume(tmp_path: Path) -> None:
    """The shipped checkpoints carry the config dicts of the trainer before the settings were redeclared: they
    rebuild into the same configuration, and a run directory holding one is listed and can be resumed from."""
    from dataclasses import asdict

    from conftest import ROOT
    from senet_dashboard.launcher import can_resume, list_run_rows
    from senet import load_checkpoint
    from senet.training.settings import config_from_record

    for name in ("se_airnet.pt", "resnet20.pt"):
        recorded = load_checkpoint(ROOT / "checkpoints" / name)[1]["config"]
        config = asdict(config_from_record(recorded))
        assert {k: config[k] for k in recorded if k in config} == recorded, name
    run = tmp_path / "runs" / "old-run"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(recorded))
    (run / "status.json").write_text(json.dumps({"state": "stopped", "epoch": 3, "started_at": 1.0, "updated_at": 2.0}))
    (run / "last.pt").write_bytes(b"placeholder")
    rows = list_run_rows(tmp_path / "runs")
    assert [(r["run"], r["model"], r["state"], r["epochs"]) for r in rows] == [("old-run", "resnet20", "stopped", 30)]
    assert can_resume(run)
