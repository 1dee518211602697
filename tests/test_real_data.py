"""End to end on the real CIFAR-10 copy: train a small model for one short epoch, then evaluate it.

Uses the ``real_data`` fixture (skips when the data is absent). The decoded uint8
cache is kept under $SENET_TEST_CACHE (default /tmp/senet-test-data) so that
only the first run pays for decoding the 50,000 JPEGs.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import senet_cli
from senet.training.runs import read_json, read_metrics

pytestmark = pytest.mark.slow

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_train_one_short_epoch_on_real_data_then_evaluate(real_data: Path, tmp_path: Path) -> None:
    data_dir = Path(os.environ.get("SENET_TEST_CACHE", "/tmp/senet-test-data")) / "senet-data-dir"
    spec = f"folder:{real_data}"
    run_dir = tmp_path / "run"
    trained = senet_cli("train", "--model", "se_resnet20", "--data", spec, "--data-dir", str(data_dir),
                        "--recipe", "fast", "--epochs", "1", "--batch-size", "128", "--lr", "0.2",
                        "--warmup-epochs", "0.2", "--train-limit", "3072", "--val-size", "1000",
                        "--run-dir", str(run_dir), "--no-progress", cwd=tmp_path, env=SINGLE_THREAD, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    status = read_json(run_dir / "status.json")
    assert status["state"] == "finished" and status["step"] == 3072 // 128
    epoch = [r for r in read_metrics(run_dir / "metrics.jsonl")[0] if r["type"] == "epoch"]
    assert len(epoch) == 1
    assert epoch[0]["val_acc"] > 0.15, f"one short epoch should beat chance (10%): {epoch[0]}"

    evaluated = senet_cli("evaluate", "--checkpoint", str(run_dir / "last.pt"), "--data", spec,
                          "--data-dir", str(data_dir), "--split", "val", "--json", cwd=tmp_path, env=SINGLE_THREAD,
                          timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    result = json.loads(evaluated.stdout)
    assert result["n"] == 1000 and result["classes"] == CIFAR10_CLASSES
    cm = result["confusion_matrix"]
    assert sum(map(sum, cm)) == 1000 and [sum(row) for row in cm] == [100] * 10, "stratified: 100 per true class"
    assert result["accuracy"] == pytest.approx(epoch[0]["val_acc"]), \
        "evaluate on the recorded val split reproduces the trainer's validation accuracy"
