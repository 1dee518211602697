"""Data-parallel training under ``torchrun`` on CPU (gloo): rank 0 writes, metrics are global, stop and resume.

Each test launches ``torchrun --standalone --nproc_per_node=2 -m senet train ...``
on a tiny folder dataset, one thread per process.
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT
from senet import load_checkpoint
from senet.data import epoch_indices, load_split, steps_per_epoch
from senet.analysis.evaluate import evaluate_checkpoint
from senet.training.runs import read_json, read_metrics

pytestmark = pytest.mark.slow
TORCHRUN = Path(sys.executable).with_name("torchrun")
if not TORCHRUN.exists():
    TORCHRUN = Path(shutil.which("torchrun") or "torchrun")
# .lock: rank 0 holds the run's lock while it trains
RUN_FILES = sorted([".lock", "best.pt", "config.json", "last.pt", "metrics.jsonl", "status.json", "gates"])


def make_noise_dataset(root: Path, classes: int = 4, per_class: int = 16, seed: int = 0) -> Path:
    """Random images in class folders: a model stays near chance, so accuracies are not all 0 or 1."""
    rng = np.random.default_rng(seed)
    for k in range(classes):
        d = root / "train" / f"c{k}"
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def torchrun_cmd(*args: str) -> list[str]:
    return [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "senet", "train", *args, "--no-progress"]


def env(**extra: str) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)


def train_args(data: Path, cache: Path, run_dir: Path, epochs: int, log_every: int = 1) -> list[str]:
    return ["--model", "se_resnet20", "--data", f"folder:{data}", "--data-dir", str(cache), "--epochs", str(epochs),
            "--batch-size", "16", "--lr", "0.05", "--val-size", "15", "--log-every", str(log_every),
            "--run-dir", str(run_dir)]


def test_torchrun_two_processes_train_and_agree_with_single_process_evaluation(tmp_path: Path) -> None:
    data = make_noise_dataset(tmp_path / "noise")
    run_dir, trace = tmp_path / "run", tmp_path / "trace"
    traced = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(ROOT / "tests" / "helpers" / "traced_train.py"),
              str(trace), "train", *train_args(data, tmp_path / "cache", run_dir, epochs=1), "--no-progress"]
    proc = subprocess.run(traced, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # one run directory, written by rank 0 only
    assert sorted(p.name for p in run_dir.iterdir()) == RUN_FILES
    status = read_json(run_dir / "status.json")
    assert status["state"] == "finished" and status["world_size"] == 2
    config = read_json(run_dir / "config.json")
    assert (config["world_size"], config["batch_size"], config["batch_size_per_process"]) == (2, 16, 8)
    assert proc.stderr.count("run directory:") == 1, "only rank 0 reports"

    # the two ranks saw disjoint shards that together cover the epoch (49 training images, 3 steps of 16)
    seen = {r: torch.load(trace / f"rank{r}.pt")[0] for r in (0, 1)}
    assert len(seen[0]) == len(seen[1]) == 24
    assert not set(seen[0].tolist()) & set(seen[1].tolist()), "ranks trained on the same images"
    train_set = load_split(f"folder:{data}", "train", tmp_path / "cache", 15, 0)
    steps = steps_per_epoch(len(train_set), 16)
    expected = epoch_indices(len(train_set), 0, 0)[: steps * 16]
    assert sorted(torch.cat([seen[0], seen[1]]).tolist()) == sorted(expected.tolist()), \
        "together the ranks must cover exactly the epoch's global batches"

    # the reduced validation metrics equal a single-process evaluation of rank 0's checkpoint
    epoch = [r for r in read_metrics(run_dir / "metrics.jsonl")[0] if r["type"] == "epoch"][0]
    model, meta = load_checkpoint(run_dir / "last.pt")
    result = evaluate_checkpoint(run_dir / "last.pt", f"folder:{data}", "val", tmp_path / "cache",
                                 cache_dir=tmp_path / "pred")
    assert result.n == 15, "the whole validation split (uneven shards of 7 and 8)"
    assert result.accuracy == epoch["val_acc"], f"single process {result.accuracy} vs reduced {epoch['val_acc']}"
    nll = float(-np.log(result.probs[np.arange(15), result.labels]).mean())
    assert math.isclose(nll, epoch["val_loss"], rel_tol=1e-4), f"val loss {nll} vs reduced {epoch['val_loss']}"
    assert meta["hardware"].startswith("2 x")


def test_sigterm_to_torchrun_stops_every_rank_with_one_checkpoint_and_resume_continues(tmp_path: Path) -> None:
    data = make_noise_dataset(tmp_path / "noise")
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(torchrun_cmd(*train_args(data, tmp_path / "cache", run_dir, epochs=400)), cwd=tmp_path,
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 600  # generous: a loaded machine can take minutes to start two ranks
        logged = 0
        while time.time() < deadline and proc.poll() is None and logged < 3:
            logged = sum(r["type"] == "step" for r in read_metrics(run_dir / "metrics.jsonl")[0])
            time.sleep(0.3)
        assert proc.poll() is None, f"torchrun ended early: {proc.communicate()[1][-3000:]}"
        assert logged >= 3, "the run logged fewer than 3 steps in 10 minutes"
        proc.send_signal(signal.SIGTERM)  # to the launcher only; it forwards SIGTERM to both ranks
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    status = read_json(run_dir / "status.json")
    assert status["state"] == "stopped" and status["stopped_by"] == "SIGTERM", (status, err[-3000:])
    assert "ChildFailedError" not in err and "exitcode" not in err, f"a rank did not exit cleanly: {err[-3000:]}"
    assert sorted(p.name for p in run_dir.iterdir()) == RUN_FILES, "one clean set of files, no temporaries"
    state = load_checkpoint(run_dir / "last.pt")[1]
    payload = torch.load(run_dir / "last.pt", weights_only=True)
    assert payload["extra_state"]["train_state"]["global_step"] == status["step"]
    assert state["config"]["world_size"] == 2

    stopped_step = status["step"]
    # +2: a stop on an epoch's last step leaves only that epoch's validation to do, so +1 could add no step
    resume_to = status["epoch"] + 2
    resumed = subprocess.run(torchrun_cmd("--resume", str(run_dir), "--epochs", str(resume_to)), cwd=tmp_path,
                             env=env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = read_json(run_dir / "status.json")
    assert final["state"] == "finished" and final["epoch"] == resume_to and final["world_size"] == 2
    steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")[0] if r["type"] == "step"]
    assert steps == list(range(1, final["step"] + 1)), "every step logged once across the stop"
    assert final["step"] > stopped_step
    epochs = [r["epoch"] for r in read_metrics(run_dir / "metrics.jsonl")[0] if r["type"] == "epoch"]
    assert epochs == list(range(1, resume_to + 1)), "every epoch validated once across the stop"


def test_a_global_batch_that_does_not_split_over_the_processes_is_a_usage_error(tmp_path: Path, capsys,
                                                                                monkeypatch) -> None:
    from senet.cli import main

    data = make_noise_dataset(tmp_path / "noise", per_class=4)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code = main(["train", "--model", "resnet20", "--data", f"folder:{data}", "--batch-size", "15",
                 "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "batch_size 15 (global) is not divisible by the 2 processes" in err
    assert not (tmp_path / "run").exists()
