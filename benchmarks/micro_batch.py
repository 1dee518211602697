"""Training images/s of one optimiser step on batches of different sizes, on this CPU.

Motivates the trainer's ``--micro-batch`` (default 256): on a small CPU, a
convolution on 1024 images at once runs slower per image than on 256, because
the activations no longer fit the caches. Prints one line per (model, batch).

    .venv/bin/python benchmarks/micro_batch.py --models se_airnet se_resnet20 --seconds 6
"""
from __future__ import annotations

from pathlib import Path

import argparse
import sys
import time

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import senet  # noqa: E402


def images_per_second(name: str, batch: int, seconds: float) -> float:
    """Steady-state training images/s of ``name`` at ``batch`` images per forward/backward."""
    model = senet.create_model(name).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        n += batch
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["se_airnet", "se_resnet20"])
    parser.add_argument("--batches", nargs="+", type=int, default=[128, 256, 512, 1024])
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.models:
        for batch in args.batches:
            print(f"{name:<12} batch {batch:>5}: {images_per_second(name, batch, args.seconds):7.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
