"""Parity with the reference: PyPI airbench 0.1.8's airbench94 against this project's recipes, on the same images.

    pip install airbench==0.1.8        # the reference, as published (it expects CUDA and half precision)
    .venv/bin/python benchmarks/reference_airbench.py --train-images 20000 --epochs 4 --seeds 0 1
    .venv/bin/python benchmarks/reference_airbench.py --epochs 10 --seeds 0 1          # full size: 45,000 images
    # in pieces, the project side from a study's finished plain-AirNet runs (same images, 12 epochs):
    .venv/bin/python benchmarks/reference_airbench.py --epochs 12 --seeds 0 --recipes --results parity.json
    .venv/bin/python benchmarks/reference_airbench.py --epochs 12 --seeds 0 1 --recipes --results parity.json \
        --project-runs STUDY/runs/airnet-seed0 STUDY/runs/airnet-seed1

Both sides train on the same training images (the shipped checkpoints' 45,000-image training split of the
CIFAR-10 JPEG q75 copy, or a stratified subset of ``--train-images``) for the same number of epochs and seeds,
and are scored on the same 5,000 held-out validation images, with and without test-time augmentation (TTA
level 2 for the reference, as airbench reports it; flip and level 2 for the project). The reference runs the
installed package's own ``train94`` loop: as published on CUDA (half precision), and on the CPU adapted at run
time (float32 instead of half precision, timing by ``time.perf_counter``); no line of it is copied here. The
project's side runs ``senet.training.train`` with each ``--recipes`` entry. Times are each side's training loop
only (the reference's own timing with evaluation off; the project's ``elapsed_s``, which leaves out its per-epoch
validation). Figures print side by side, one row per (side, seed), then the means.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from senet import evaluate_checkpoint  # noqa: E402
from senet.data import limit_split, load_split  # noqa: E402
from senet.files import atomic_torch_save  # noqa: E402
from senet.training import make_config, train  # noqa: E402
from senet.training.study import parse_variant  # noqa: E402

DEFAULT_FOLDER = "/work/data/cifar10-jpeg"


class _Timer:
    """Stands in for ``torch.cuda.Event(enable_timing=True)`` on the CPU."""

    def __init__(self, **_kwargs) -> None:
        self.t = 0.0

    def record(self) -> None:
        self.t = time.perf_counter()

    def elapsed_time(self, end: "_Timer") -> float:
        return (end.t - self.t) * 1000.0


@contextlib.contextmanager
def reference_on(device: torch.device):
    """airbench's CUDA/half-precision code on ``device``: as published on CUDA; elsewhere in float32, patching at
    run time only what it calls."""
    import airbench.lib_airbench94 as lib
    import airbench.utils as utils

    if device.type == "cuda":
        yield lib
        return

    saved = (torch.nn.Module.half, torch.nn.Module.cuda, torch.Tensor.half, torch.cuda.Event,
             torch.cuda.synchronize, utils.CifarLoader.__init__)
    original_init = utils.CifarLoader.__init__

    def loader_init(self, path, train=True, batch_size=500, aug=None, drop_last=None, shuffle=None, altflip=False,
                    gpu=0):
        original_init(self, path, train, batch_size, aug, drop_last, shuffle, altflip, gpu=device)

    torch.nn.Module.half = lambda self: self  # keep the network in float32
    torch.nn.Module.cuda = lambda self, *a, **k: self.to(device)
    torch.Tensor.half = lambda self, *a, **k: self.float()
    torch.cuda.Event = _Timer
    torch.cuda.synchronize = lambda *a, **k: None
    utils.CifarLoader.__init__ = loader_init
    try:
        yield lib
    finally:
        (torch.nn.Module.half, torch.nn.Module.cuda, torch.Tensor.half, torch.cuda.Event, torch.cuda.synchronize,
         utils.CifarLoader.__init__) = saved


def write_reference_data(folder: Path, train, val) -> None:
    """``folder/cifar10/{train,test}.pt`` in the layout airbench's CifarLoader reads (uint8 N x H x W x C),
    replaced atomically: another benchmark process sharing ``--work`` never reads a half-written file."""
    (folder / "cifar10").mkdir(parents=True, exist_ok=True)
    for name, split in (("train", train), ("test", val)):
        atomic_torch_save({"images": split.images.permute(0, 2, 3, 1).contiguous(), "labels": split.labels,
                           "classes": list(split.classes)}, folder / "cifar10" / f"{name}.pt")


def run_reference(folder: Path, epochs: float, seed: int, device: torch.device) -> dict:
    """airbench94's own training, seeded; accuracy on the held-out images without TTA and with its level 2."""
    from airbench.utils import evaluate

    cwd = os.getcwd()
    os.chdir(folder)  # airbench reads ./cifar10/{train,test}.pt
    try:
        with reference_on(device) as lib:
            torch.manual_seed(seed)
            loader = lib.CifarLoader("cifar10", train=True, batch_size=lib.hyp["opt"]["batch_size"],
                                     aug=lib.hyp["aug"], altflip=True)
            start = time.perf_counter()
            model = lib.train94(loader, epochs=epochs, verbose=False)
            seconds = time.perf_counter() - start
            test = lib.CifarLoader("cifar10", train=False, batch_size=2000)
            return {"acc": evaluate(model, test, tta_level=0), "acc_tta2": evaluate(model, test, tta_level=2),
                    "seconds": seconds}
    finally:
        os.chdir(cwd)


def recipe_overrides(entry: str) -> tuple[str, str, dict]:
    """``"airbench94"`` or ``"airbench94:micro_batch=1024,lookahead=false"`` -> (recipe, a label for its runs,
    the settings it changes). At another length than the recipe's, ``make_config`` sets the warm-up as ``train``
    does (``length_warmup``: a longer run keeps the recipe's share, as airbench's triangle does; a shorter one its
    warm-up epochs, at most 60% of training); each row records the warm-up it got."""
    variant = parse_variant(entry)
    return variant.model, variant.label, dict(variant.settings)


def run_project(entry: str, spec: str, data_dir: Path, train_images: int, epochs: int, seed: int,
                work: Path) -> dict:
    """This project's engine on the same images and epochs; figures recomputed from its last.pt. The run lives in
    ``work`` and is resumed from its ``last.pt`` if an earlier call was stopped."""
    recipe, label, settings = recipe_overrides(entry)
    config = make_config("airnet", recipe, data=spec, data_dir=str(data_dir), epochs=epochs, seed=seed,
                         train_limit=train_images if train_images < 45_000 else 0, log_every=1000,
                         **{k: v for k, v in settings.items() if k != "epochs"})
    run_dir = work / f"{label}-e{epochs}-n{train_images}-seed{seed}"
    resume = (run_dir / "last.pt").is_file()
    run_dir.mkdir(parents=True, exist_ok=True)
    status = train(config, run_dir, resume=resume, progress=False)
    if status.get("state") != "finished":
        raise SystemExit(f"{run_dir}: training {status.get('state')}; run the same command again to resume")
    row = {"seconds": status["elapsed_s"], "warmup_epochs": config.warmup_epochs}
    for key, level in (("acc", 0), ("acc_tta1", 1), ("acc_tta2", 2)):
        row[key] = evaluate_checkpoint(run_dir / "last.pt", spec, "val", data_dir, tta=level,
                                       cache_dir=work / "pred").accuracy
    return row


def run_from_dir(run_dir: Path, spec: str, data_dir: Path, train_images: int, epochs: int, work: Path) -> tuple[int, dict]:
    """A finished project run (e.g. a study's) in place of training one: (its seed, its figures from last.pt).
    Refused unless it trained plain AirNet on these images for these epochs."""
    config = json.loads((run_dir / "config.json").read_text())
    status = json.loads((run_dir / "status.json").read_text())
    wanted = {"model": "airnet", "data": spec, "epochs": epochs, "val_size": 0.1, "split_seed": 0,
              "train_limit": train_images if train_images < 45_000 else 0}
    wrong = {k: config.get(k) for k, v in wanted.items() if config.get(k) != v}
    if wrong or status.get("state") != "finished":
        raise SystemExit(f"{run_dir}: not a finished run on these images and epochs ({wrong or status.get('state')})")
    row = {"seconds": status["elapsed_s"], "recipe": config["recipe"], "width": config["width"]}
    for key, level in (("acc", 0), ("acc_tta1", 1), ("acc_tta2", 2)):
        row[key] = evaluate_checkpoint(run_dir / "last.pt", spec, "val", data_dir, tta=level,
                                       cache_dir=work / "pred").accuracy
    return int(config["seed"]), row


def load_results(path: Path | None) -> list[dict]:
    return json.loads(path.read_text()) if path and path.is_file() else []


def append_result(path: Path | None, row: dict) -> None:
    """Add ``row`` to the results file under a lock, re-reading it first: several processes may share one file."""
    if not path:
        return
    import fcntl

    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = load_results(path) + [row]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default=DEFAULT_FOLDER, help="the CIFAR-10 JPEG copy (ImageFolder, train/)")
    p.add_argument("--data-dir", default=str(ROOT / "data"), help="where the decoded cache lives")
    p.add_argument("--train-images", type=int, default=45_000, help="a stratified subset of the training split")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--recipes", nargs="*", default=["fast", "airbench94"],
                   help="the project's recipes to train, each RECIPE or RECIPE:SETTING=VALUE,... (one element changed, "
                        "e.g. airbench94:lookahead=false); another --epochs sets the warm-up as train does")
    p.add_argument("--work", type=Path, default=None,
                   help="keep the project's runs here (default: a temporary folder); a stopped run resumes")
    p.add_argument("--project-runs", nargs="*", default=[], type=Path,
                   help="finished run directories of the project's plain AirNet on the same images and epochs (a "
                        "study's, say), scored instead of training the project side again")
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--results", type=Path, default=None,
                   help="a JSON file the rows accumulate in: a row already there (same side, seed, epochs, images) "
                        "is not redone, so the benchmark can run in pieces; the means cover every row in it")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    spec = f"folder:{args.folder}"
    train = load_split(spec, "train", args.data_dir, 0.1, 0)
    if args.train_images < len(train):
        train = limit_split(train, args.train_images, 0)
    val = load_split(spec, "val", args.data_dir, 0.1, 0)
    print(f"CIFAR-10 (JPEG q75 copy): {len(train):,} training images, {len(val):,} held-out validation images; "
          f"{args.epochs} epochs; seeds {args.seeds}; {device}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}")
    size = {"epochs": args.epochs, "train_images": len(train)}
    rows = load_results(args.results)

    def done(side: str, seed: int) -> bool:
        return any(r["side"] == side and r["seed"] == seed and all(r[k] == v for k, v in size.items()) for r in rows)

    def add(side: str, seed: int, row: dict) -> None:
        rows.append({"side": side, "seed": seed, **size, **row})
        append_result(args.results, rows[-1])
        print_row(side, seed, row)

    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        if not args.skip_reference:
            write_reference_data(work / "ref", train, val)
        for run_dir in args.project_runs:
            seed, row = run_from_dir(run_dir, spec, Path(args.data_dir), len(train), args.epochs, work)
            side = f"project {row.pop('recipe')} (run {run_dir.name})"
            if not done(side, seed):
                add(side, seed, row)
        for seed in args.seeds:
            if not args.skip_reference and not done("reference airbench94", seed):
                add("reference airbench94", seed, run_reference(work / "ref", args.epochs, seed, device))
            for recipe in args.recipes:
                if not done(f"project {recipe}", seed):
                    add(f"project {recipe}", seed,
                        run_project(recipe, spec, Path(args.data_dir), len(train), args.epochs, seed, work))
    rows = load_results(args.results) or rows  # with the rows other processes added meanwhile
    mine_all = [r for r in rows if all(r[k] == v for k, v in size.items())]
    print(f"\nmeans over seeds (accuracy on the {len(val):,} held-out images, recomputed after training; every row "
          f"at {args.epochs} epochs on {len(train):,} images{' in ' + str(args.results) if args.results else ''}):")
    sides = dict.fromkeys(r["side"].split(" (run ")[0] for r in mine_all)
    for side in sides:
        mine = [r for r in mine_all if r["side"].split(" (run ")[0] == side]
        cells = [f"{k} {100 * statistics.mean(m[k] for m in mine):.2f}%" for k in ("acc", "acc_tta1", "acc_tta2")
                 if k in mine[0]]
        print(f"  {side:<24} seeds {sorted(m['seed'] for m in mine)}  " + "  ".join(cells)
              + f"  time {statistics.mean(m['seconds'] for m in mine):.0f} s, "
              f"{len(train) * args.epochs / statistics.mean(m['seconds'] for m in mine):,.0f} images/s")
    return 0


def print_row(side: str, seed: int, row: dict) -> None:
    cells = "  ".join(f"{k} {100 * v:.2f}%" for k, v in row.items() if k.startswith("acc"))
    print(f"{side:<24} seed {seed}: {cells}  ({row['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
