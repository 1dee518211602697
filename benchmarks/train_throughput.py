"""Training images/s: the project's pipeline vs the seed blog post's, on the same model, side by side.

    .venv/bin/python benchmarks/train_throughput.py [--steps 30] [--rounds 2] [--model se_resnet20]

* project: uint8 images held in memory, augmentation on whole batches
  (:func:`senet.data.train_batches`: pad 4 + random crop, random flip, normalise),
  channels_last model and input, the trainer's optimiser (:func:`senet.training.make_optimizer`).
* seed: the blog post's pipeline: per-image PIL transforms
  ``RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize`` through
  ``DataLoader(batch_size, shuffle=True, num_workers=2)``, NCHW float32 model.

Both use the seed recipe's hyperparameters (batch 128, SGD Nesterov lr 0.1) on a
fresh copy of the same model, on the same images (the real data folder when
present, else random images). The two pipelines alternate for ``--rounds``
rounds of ``--steps`` timed steps each (after untimed warm-up steps), so that
background load affects both alike. Prints both rates and their ratio.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from senet import create_model  # noqa: E402
from senet.data import CIFAR_MEAN, CIFAR_STD  # noqa: E402
from senet.data import TensorDataset, load_split, train_batches  # noqa: E402
from senet.training import make_config, make_optimizer  # noqa: E402

DEFAULT_FOLDER = "/work/data/cifar10-jpeg"


def load_images(folder: str | None, data_dir: str, limit: int) -> tuple[TensorDataset, str]:
    """The training images (first ``limit``), or random images when no folder is available."""
    if folder and (Path(folder) / "train").is_dir():
        data = load_split(f"folder:{folder}", "train", data_dir=data_dir)
        keep = torch.arange(min(limit, len(data)))
        return TensorDataset(data.images[keep], data.labels[keep], data.classes), f"folder:{folder}"
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (limit, 3, 32, 32), dtype=torch.uint8, generator=g)
    return TensorDataset(images, torch.randint(0, 10, (limit,), generator=g), [str(i) for i in range(10)]), "random images"


class SeedDataset(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10's item access: an HWC uint8 array -> PIL image -> transforms."""

    def __init__(self, data: TensorDataset) -> None:
        from torchvision import transforms

        self.images = data.images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = data.labels.tolist()
        self.transform = transforms.Compose([
            transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
            transforms.Normalize(CIFAR_MEAN, CIFAR_STD)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def train_steps(model: nn.Module, optimizer, batches, steps: int, warmup: int, channels_last: bool) -> tuple[int, float]:
    """Run ``warmup`` untimed then ``steps`` timed optimiser steps; returns (images, seconds)."""
    criterion = nn.CrossEntropyLoss()
    it = iter(batches)
    images, start = 0, None
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        x, y = next(it)[:2]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        criterion(model(x), y).backward()
        optimizer.step()
        if i >= warmup:
            images += len(y)
    return images, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="se_resnet20")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per pipeline per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each timed round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--folder", default=os.environ.get("SENET_BENCH_DATA", DEFAULT_FOLDER),
                        help="ImageFolder root with train/<class>/ (random images if absent)")
    parser.add_argument("--data-dir", default="./data", help="where the decoded uint8 cache lives")
    parser.add_argument("--images", type=int, default=10_000, help="how many training images to use")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the training process")
    parser.add_argument("--workers", type=int, default=2, help="the seed pipeline's DataLoader workers")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data, source = load_images(args.folder, args.data_dir, args.images)
    config = make_config(args.model, "seed", batch_size=args.batch_size)
    print(f"date {date.today()}  machine {platform.machine()} {os.cpu_count()} cores  torch {torch.__version__}  "
          f"threads {torch.get_num_threads()}")
    print(f"model {args.model}  batch {args.batch_size}  data {source} ({len(data)} images)  "
          f"{args.rounds} rounds x {args.steps} steps per pipeline")

    torch.manual_seed(0)
    project_model = create_model(args.model, num_classes=len(data.classes)).to(memory_format=torch.channels_last)
    torch.manual_seed(0)
    seed_model = create_model(args.model, num_classes=len(data.classes))
    project_opt, seed_opt = make_optimizer(project_model, config), make_optimizer(seed_model, config)
    loader = torch.utils.data.DataLoader(SeedDataset(data), batch_size=args.batch_size, shuffle=True,
                                         num_workers=args.workers, drop_last=True, persistent_workers=args.workers > 0)

    def project_batches():
        epoch = 0
        while True:
            yield from train_batches(data, args.batch_size, epoch, 0, config.augment())
            epoch += 1

    def seed_batches():
        while True:
            yield from loader

    totals = {"project": [0, 0.0], "seed": [0, 0.0]}
    project_it, seed_it = project_batches(), seed_batches()
    for r in range(args.rounds):
        for name, model, opt, it, cl in (("project", project_model, project_opt, project_it, True),
                                         ("seed", seed_model, seed_opt, seed_it, False)):
            n, s = train_steps(model, opt, it, args.steps, args.warmup, cl)
            totals[name][0] += n
            totals[name][1] += s
            print(f"  round {r + 1} {name:<8} {n / s:8.1f} images/s")
    project = totals["project"][0] / totals["project"][1]
    seed = totals["seed"][0] / totals["seed"][1]
    print(f"project pipeline (batched tensors, channels_last): {project:8.1f} images/s")
    print(f"seed pipeline (PIL transforms, DataLoader({args.workers} workers), NCHW): {seed:8.1f} images/s")
    print(f"ratio project / seed: {project / seed:.2f} (target >= 1.3)")


if __name__ == "__main__":
    main()
