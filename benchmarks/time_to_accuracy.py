"""Wall time for a recipe (default ``fast``) to reach a validation accuracy (default 93%) on the CIFAR-10 JPEG copy.

    .venv/bin/python benchmarks/time_to_accuracy.py [--model se_airnet] [--folder /work/data/cifar10-jpeg]
    .venv/bin/python benchmarks/time_to_accuracy.py --from-run runs/ship-se_airnet

Without ``--from-run`` it starts ``python -m senet train --recipe RECIPE`` in a new
run directory, follows its ``metrics.jsonl`` as it is written, and prints the wall
time from launch (data loading included) to the first epoch whose validation
accuracy reaches the target; ``--stop-at-target`` then stops the run (SIGTERM,
so it saves ``last.pt``). With ``--from-run RUN_DIR`` it reads an existing run
(finished or still running) instead of training. Both print the trainer's own
``elapsed_s`` (training and validation, without start-up) beside the wall time,
and the accuracy with flip test-time augmentation where the run recorded it.
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from senet.training.runs import read_json, read_metrics  # noqa: E402

DEFAULT_FOLDER = "/work/data/cifar10-jpeg"


def first_reaching(records: list[dict], target: float) -> dict | None:
    """The first epoch record whose val_acc reaches ``target``."""
    return next((r for r in records if r.get("type") == "epoch" and (r.get("val_acc") or 0) >= target), None)


def report(run_dir: Path, records: list[dict], target: float, launched_at: float | None) -> int:
    config = read_json(run_dir / "config.json") or {}
    status = read_json(run_dir / "status.json") or {}
    epochs = [r for r in records if r.get("type") == "epoch"]
    start = launched_at or status.get("started_at")
    print(f"date {date.today()}  machine {platform.machine()} {os.cpu_count()} cores  run {run_dir}")
    print(f"model {config.get('model')}  recipe {config.get('recipe')}  epochs {config.get('epochs')}  "
          f"batch {config.get('batch_size')}  data {config.get('data')}  state {status.get('state')}")
    for r in epochs:
        wall = r["time"] - start if start else float("nan")
        tta = f"  tta {r['val_acc_tta']:.4f}" if r.get("val_acc_tta") is not None else ""
        print(f"  epoch {r['epoch']:>3}  val_acc {r['val_acc']:.4f}{tta}  elapsed {r['elapsed_s']:8.1f} s  "
              f"wall {wall:8.1f} s")
    hit = first_reaching(records, target)
    if hit is None:
        best = max((r["val_acc"] for r in epochs), default=None)
        print(f"target {target:.0%} not reached (best val_acc {best})")
        return 1
    wall = hit["time"] - start if start else float("nan")
    print(f"reached {target:.0%} val accuracy at epoch {hit['epoch']}: wall {wall / 60:.1f} min "
          f"(training {hit['elapsed_s'] / 60:.1f} min)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from-run", type=Path, help="read this run directory instead of training")
    parser.add_argument("--target", type=float, default=0.93)
    parser.add_argument("--recipe", default="fast", help="the recipe to train (fast, airbench94, long, ...)")
    parser.add_argument("--model", default="se_airnet", help="the SE model to train (default se_airnet)")
    parser.add_argument("--folder", default=os.environ.get("SENET_BENCH_DATA", DEFAULT_FOLDER))
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--run-dir", type=Path, help="default: runs/tta-<time>-<model>")
    parser.add_argument("--stop-at-target", action="store_true", help="SIGTERM the run once the target is reached")
    parser.add_argument("train_args", nargs="*", help="more `senet train` arguments, after --")
    args = parser.parse_args()

    if args.from_run:
        records, _ = read_metrics(args.from_run / "metrics.jsonl")
        return report(args.from_run, records, args.target, None)

    run_dir = args.run_dir or ROOT / "runs" / f"tta-{time.strftime('%Y%m%d-%H%M%S')}-{args.model}"
    cmd = [sys.executable, "-m", "senet", "train", "--model", args.model, "--recipe", args.recipe,
           "--data", f"folder:{args.folder}", "--data-dir", args.data_dir, "--run-dir", str(run_dir),
           "--no-progress", *args.train_args]
    print("$", " ".join(cmd), flush=True)
    launched = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    records: list[dict] = []
    offset = 0
    try:
        while proc.poll() is None:
            time.sleep(2)
            new, offset = read_metrics(run_dir / "metrics.jsonl", offset)
            records += new
            for r in new:
                if r.get("type") == "epoch":
                    print(f"  epoch {r['epoch']} val_acc {r['val_acc']:.4f} after {time.time() - launched:.0f} s",
                          flush=True)
            if args.stop_at_target and first_reaching(records, args.target):
                proc.send_signal(signal.SIGTERM)
                proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    records = read_metrics(run_dir / "metrics.jsonl")[0]
    return report(run_dir, records, args.target, launched)


if __name__ == "__main__":
    sys.exit(main())
