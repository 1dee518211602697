"""Training images/s on this machine: one process vs two processes under ``torchrun`` (DDP, gloo on CPU).

    .venv/bin/python benchmarks/ddp_throughput.py [--model se_resnet20] [--images 5120] [--batch-size 256]

Runs the real command line three times on the same data and global batch:

* ``python -m senet train`` with ``--threads`` torch threads (default: all cores),
* ``python -m senet train`` with one thread,
* ``torchrun --standalone --nproc_per_node=2 -m senet train`` with one thread per process,

each for one epoch of ``--images`` training images (``--train-limit``), and reads
the images/s from the run's ``metrics.jsonl`` (the step records after the first,
which includes start-up). Run directories go to a temporary folder.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from senet.training.runs import read_metrics  # noqa: E402

DEFAULT_FOLDER = "/work/data/cifar10-jpeg"


def throughput(run_dir: Path) -> float:
    """Images/s over the step records after the first window (which includes warm-up)."""
    steps = [r for r in read_metrics(run_dir / "metrics.jsonl")[0] if r.get("type") == "step"]
    if len(steps) < 3:
        raise SystemExit(f"{run_dir}: too few step records to measure")
    steps = steps[1:]
    # images_per_s of each window times its duration = images; sum over windows / total time
    images = sum(r["images_per_s"] * (r["time"] - prev["time"]) for prev, r in zip(steps, steps[1:]))
    return images / (steps[-1]["time"] - steps[0]["time"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="se_resnet20")
    parser.add_argument("--folder", default=os.environ.get("SENET_BENCH_DATA", DEFAULT_FOLDER))
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--images", type=int, default=5120, help="training images in the one epoch")
    parser.add_argument("--batch-size", type=int, default=256, help="global batch")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of the 1-process run")
    args = parser.parse_args()
    if not (Path(args.folder) / "train").is_dir():
        raise SystemExit(f"{args.folder}: no train/ folder; pass --folder PATH")

    common = ["--model", args.model, "--data", f"folder:{args.folder}", "--data-dir", args.data_dir,
              "--recipe", "fast", "--epochs", "1", "--batch-size", str(args.batch_size), "--lr", "0.2",
              "--train-limit", str(args.images), "--val-size", "1000", "--log-every", "2", "--no-progress"]
    torchrun = Path(sys.executable).with_name("torchrun")
    setups = [
        (f"1 process, {args.threads} thread(s)", [sys.executable, "-m", "senet", "train"], args.threads),
        ("1 process, 1 thread", [sys.executable, "-m", "senet", "train"], 1),
        ("2 processes (torchrun, DDP gloo), 1 thread each",
         [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "senet", "train"], 1),
    ]
    print(f"date {date.today()}  machine {platform.machine()} {os.cpu_count()} cores  python {platform.python_version()}")
    print(f"model {args.model}  global batch {args.batch_size}  {args.images} images, 1 epoch")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, launcher, threads) in enumerate(setups):
            run_dir = Path(tmp) / f"run{i}"
            env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            t = time.time()
            proc = subprocess.run([*launcher, *common, "--run-dir", str(run_dir)], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{name}: failed\n{proc.stderr[-2000:]}")
            results[name] = throughput(run_dir)
            print(f"  {name:<48} {results[name]:8.1f} images/s   (wall {time.time() - t:.0f} s with start-up)")
    base = results[setups[0][0]]
    for name, value in results.items():
        print(f"{name:<50} {value:8.1f} images/s  x{value / base:.2f}")


if __name__ == "__main__":
    main()
