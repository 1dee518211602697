"""``python -m senet``: train, evaluate, info, excite and export from the command line.

Invalid arguments print one line ``senet <command>: error: ...`` and exit 2
without writing anything.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

__all__ = ["main"]


class UsageError(Exception):
    """Bad command-line input: reported in one line with exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``PROG: error: ...``) and exit code 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model into a run directory")
    p.add_argument("--model", default=None, help="model name (see `python -m senet info --list`); default se_airnet")
    p.add_argument("--data", default=None, help="dataset spec: cifar10 | folder:PATH (default: $SENET_DATA or cifar10)")
    p.add_argument("--data-dir", default=None, help="where cifar10 is downloaded and caches live (default ./data)")
    p.add_argument("--dataset-name", default=None, help="a human name for the data, kept in the checkpoint")
    p.add_argument("--recipe", default=None, choices=None, help="seed | fast (default fast)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float, help="learning rate for the mean loss over the global batch")
    p.add_argument("--batch-size", type=int, help="global batch size (all processes together)")
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--se-weight-decay", type=float, help="weight decay of the SE blocks (default: --weight-decay)")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--schedule", help="constant | cosine | onecycle")
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--crop-pad", type=int, help="random-crop padding in pixels (translate augmentation)")
    p.add_argument("--cutout", type=int, help="side of a random square set to the mean in each image (0: off)")
    p.add_argument("--reduction", type=int, help="SE reduction ratio r")
    p.add_argument("--width", type=int, help="width multiplier")
    p.add_argument("--squeeze", action="store_true", default=None, help="seed_senet only: apply the squeeze")
    p.add_argument("--seed", type=int)
    p.add_argument("--val-size", type=float, help="validation holdout: fraction (0.1) or count (5000)")
    p.add_argument("--split-seed", type=int)
    p.add_argument("--train-limit", type=int, help="train on a stratified subset of N training images (short runs)")
    p.add_argument("--log-every", type=int, help="steps between step records in metrics.jsonl")
    p.add_argument("--micro-batch", type=int, help="CPU only: split each batch into chunks of this size (default 256)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="disable CUDA mixed precision")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--sync-bn", action="store_true", default=None, help="SyncBatchNorm under torchrun")
    p.add_argument("--run-dir", help="new run directory (default runs/<time>-<model>)")
    p.add_argument("--runs-root", default="runs", help="where default run directories are made")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def train_options() -> dict[str, argparse.Action]:
    """The ``train`` command's options, by the TrainConfig field they set (what a launcher can pass)."""
    sub = argparse.ArgumentParser().add_subparsers()
    _add_train(sub)
    parser = next(iter(sub.choices.values()))
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}


def train_overrides(args: argparse.Namespace) -> dict:
    """TrainConfig overrides from parsed ``train`` options (None: keep the recipe's value).

    Every option named after a field overrides it; model, recipe and data are handled apart, and a
    whole-number ``--val-size`` of 1 or more is a count of images.
    """
    from .train import TrainConfig

    overrides = {k: v for k, v in vars(args).items()
                 if k in TrainConfig.__dataclass_fields__ and k not in ("model", "recipe", "data", "val_size")}
    if getattr(args, "val_size", None) is not None:
        v = args.val_size
        overrides["val_size"] = int(v) if v >= 1 and float(v).is_integer() else v
    return overrides


def cmd_train(args: argparse.Namespace) -> int:
    from .data import DataError
    from .runs import ACTIVE_STATES, read_json, read_status
    from .train import ConfigError, TrainConfig, make_config, make_run_dir

    rank = int(os.environ.get("RANK", 0))
    overrides = train_overrides(args)
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if args.resume:
        run_dir = Path(args.resume)
        saved = read_json(run_dir / "config.json")
        if saved is None:
            raise UsageError(f"--resume {run_dir}: no readable config.json there")
        if not (run_dir / "last.pt").is_file():
            raise UsageError(f"--resume {run_dir}: no last.pt to resume from")
        current = read_status(run_dir)
        if rank == 0 and current.get("state") in ACTIVE_STATES:
            raise UsageError(f"--resume {run_dir}: the run is still {current['state']} "
                             f"(pid {current.get('pid')}); stop it first")
        if args.run_dir and Path(args.run_dir) != run_dir:
            raise UsageError("--run-dir and --resume name different directories")
        changed = {k: v for k, v in overrides.items() if v is not None and k != "epochs" and v != saved.get(k)}
        if changed or args.model or args.data or args.recipe:
            raise UsageError(f"--resume {run_dir}: only --epochs can change on resume (got {sorted(changed) or 'model/data/recipe'})")
        saved = {k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__}
        model, recipe = saved.pop("model"), saved.pop("recipe")
        saved["world_size"] = world_size
        if args.epochs is not None:
            saved["epochs"] = args.epochs
        try:
            config = make_config(model, recipe, **saved)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        return _run(config, run_dir, resume=True, progress=args.progress)
    data = args.data or os.environ.get("SENET_DATA") or "cifar10"
    try:
        config = make_config(args.model or "se_airnet", args.recipe or "fast", data=data, world_size=world_size,
                             **overrides)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    run_dir = Path(args.run_dir) if args.run_dir else None
    if run_dir is None and world_size > 1:
        raise UsageError("under torchrun, give --run-dir explicitly so all processes agree on it")
    if run_dir is not None and rank == 0:
        launcher_files = {"train.log", "launch.json"}  # written by senet.launcher before the process starts
        if run_dir.exists() and (not run_dir.is_dir() or any(p.name not in launcher_files for p in run_dir.iterdir())):
            raise UsageError(f"--run-dir {run_dir}: already exists; use --resume {run_dir} or a new directory")
    if rank == 0:
        try:
            _check_data(config)
        except (ConfigError, DataError) as exc:
            raise UsageError(str(exc)) from None
    if run_dir is None:
        run_dir = make_run_dir(args.runs_root, config.model)
    elif rank == 0:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--run-dir {run_dir}: cannot create it ({exc.strerror})") from None
    if rank == 0:
        if overrides.get("batch_size") is not None and overrides.get("lr") is None:
            _note_unscaled_lr(config)  # only once the run is sure to start: an error stays one line
        print(f"run directory: {run_dir}", file=sys.stderr)
    return _run(config, run_dir, resume=False, progress=args.progress)


def _note_unscaled_lr(config) -> None:
    """A batch size other than the recipe's keeps the recipe's learning rate; say so, with the linear-scaling lr."""
    from .train import make_config

    tuned = make_config(config.model, config.recipe, data=config.data)
    if config.batch_size != tuned.batch_size:
        print(f"note: --batch-size {config.batch_size} keeps the {config.recipe} recipe's lr {config.lr:g}, tuned for "
              f"batch {tuned.batch_size}; linear scaling would give --lr "
              f"{config.lr * config.batch_size / tuned.batch_size:.4g}", file=sys.stderr)


def _check_data(config) -> None:
    """Load the training split once before anything is written (downloads cifar10 and fills the cache),
    so that a dataset that cannot be used is reported as a usage error with nothing written."""
    from .data import load_split
    from .train import ConfigError

    train_set = load_split(config.data, "train", config.data_dir, config.val_size, config.split_seed)
    n = min(len(train_set), config.train_limit or len(train_set))
    if config.batch_size > n:
        raise ConfigError(f"batch_size {config.batch_size} is larger than the {n} training images of {config.data}")


def _run(config, run_dir: Path, resume: bool, progress: bool) -> int:
    """Train; a data or configuration fault found on the way is one line on stderr and exit code 1
    (the run's status.json says ``failed`` with the same message)."""
    from .checkpoint import CheckpointError
    from .data import DataError
    from .train import ConfigError, train

    try:
        status = train(config, run_dir, resume=resume, progress=progress)
    except (ConfigError, DataError, CheckpointError) as exc:
        print(f"senet train: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the disk refused a write (full, read-only, gone); status.json says failed
        print(f"senet train: error: {run_dir}: {exc}", file=sys.stderr)
        return 1
    return 0 if status.get("state") in ("finished", "stopped") else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .data import DataError
    from .evaluate import evaluate_checkpoint

    try:
        result = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.data_dir, tta=args.tta,
                                     cache_dir=args.cache_dir)
    except (CheckpointError, DataError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    report = result.report()
    print(f"{args.checkpoint} on {args.data} [{args.split}{', flip TTA' if args.tta else ''}]: "
          f"accuracy {result.accuracy:.4f} over {result.n} images")
    print(f"{'class':>12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>7}")
    for row in report["per_class"]:
        print(f"{row['class']:>12} {row['precision']:9.4f} {row['recall']:7.4f} {row['f1']:7.4f} {row['support']:7d}")
    m = report["macro"]
    print(f"{'macro avg':>12} {m['precision']:9.4f} {m['recall']:7.4f} {m['f1']:7.4f} {result.n:7d}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from .ablation import MODES, gate_ablation
    from .checkpoint import CheckpointError
    from .data import DataError
    from .evaluate import checkpoint_and_split

    if args.per_class is not None and args.per_class < 1:
        raise UsageError(f"--per-class {args.per_class}: must be 1 or more")
    try:
        model, meta, data = checkpoint_and_split(args.checkpoint, args.data, args.split, args.data_dir)
    except (CheckpointError, DataError) as exc:
        raise UsageError(str(exc)) from None
    try:
        result = gate_ablation(model, data, meta["mean"], meta["std"], per_class=args.per_class)
    except ValueError as exc:
        raise UsageError(f"{args.checkpoint}: {exc}") from None
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "split": args.split, "n": result.n,
                          "baseline": result.baseline, "rows": result.rows}))
        return 0
    print(f"{args.checkpoint} on {args.data} [{args.split}, {result.n} images]: accuracy as trained "
          f"{result.baseline:.2%}")
    print(f"{'blocks':>16}  " + "  ".join(f"{label:>26}" for label in MODES.values()))
    for row in result.table():
        cells = [f"{row[f'{m}_acc']:.2%} ({row[f'{m}_change_pts']:+.2f} pts)" for m in MODES]
        print(f"{row['blocks']:>16}  " + "  ".join(f"{c:>26}" for c in cells))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .accounting import model_info
    from .checkpoint import CheckpointError, load_checkpoint
    from .models import create_model, list_models

    if args.list:
        print("\n".join(list_models()))
        return 0
    if bool(args.checkpoint) == bool(args.model):
        raise UsageError("give exactly one of --checkpoint PATH or --model NAME")
    meta: dict = {}
    try:
        if args.checkpoint:
            model, meta = load_checkpoint(args.checkpoint)
        else:
            model = create_model(args.model)
    except (CheckpointError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    info = model_info(model, tuple(meta.get("input_size", (3, 32, 32))))
    card = {"model": meta.get("model", args.model), **info}
    card.update({k: v for k, v in meta.items() if k not in ("history", "config")})
    if args.json:
        print(json.dumps({**card, "history": meta.get("history"), "config": meta.get("config")}, default=str))
        return 0
    print(f"model            {card['model']}")
    print(f"parameters       {info['params']:,}")
    print(f"SE parameters    {info['se_params']:,} in {info['se_blocks']} blocks "
          f"(seed's formula (2/r)*sum N_s*C_s^2 = {info['se_formula']:,.0f})")
    print(f"multiply-adds    {info['macs'] / 1e6:,.1f} M per image")
    for key in ("recipe", "epochs", "val_acc", "val_acc_tta", "dataset", "hardware", "wall_time_s", "weights_dtype",
                "exported_from"):
        if meta.get(key) is not None:
            print(f"{key:<16} {meta[key]}")
    if meta.get("val_acc_tta_source"):
        print(f"{'':<16} (val_acc_tta {meta['val_acc_tta_source']})")
    return 0


def cmd_excite(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import CheckpointError, load_checkpoint
    from .excitation import excitations
    from .inference import ImageError, open_image, predict, preprocess

    try:
        model, meta = load_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    failed = 0
    for image_path in args.images:
        try:
            x = preprocess(open_image(image_path), meta)
        except ImageError as exc:
            print(f"senet excite: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        probs = predict(model, x)[0]
        top = int(probs.argmax())
        print(f"{image_path}: {meta['classes'][top]} ({float(probs[top]):.1%})")
        gates = excitations(model, x)
        if not gates:
            print("  (no SE blocks)")
        for name, g in gates.items():
            g = g[0]
            hi = torch.topk(g, min(args.top, len(g)))
            lo = torch.topk(-g, min(args.top, len(g)))
            fmt = lambda idx, val: ", ".join(f"#{int(i)} {float(v):.3f}" for i, v in zip(idx, val))  # noqa: E731
            print(f"  {name:<16} mean {float(g.mean()):.3f}  most: {fmt(hi.indices, hi.values)}  "
                  f"least: {fmt(lo.indices, -lo.values)}")
    return 1 if failed else 0


def _tta_measurement(spec: str, data_dir: str) -> Callable[[Path, dict], dict]:
    """For ``export --tta-data``: measure the flip-TTA accuracy on the checkpoint's own validation split of
    ``spec``, when the trainer recorded none."""
    def measure(path: Path, meta: dict) -> dict:
        import tempfile

        import torch

        from .evaluate import evaluate_checkpoint
        from .train import hardware

        if meta.get("val_acc_tta") is not None:
            return {}
        with tempfile.TemporaryDirectory() as cache:
            acc = evaluate_checkpoint(path, spec, "val", data_dir, tta=True, cache_dir=cache).accuracy
        return {"val_acc_tta": acc,
                "val_acc_tta_source": f"measured after training, on the exported {meta.get('weights_dtype')} weights, "
                                      f"by `python -m senet export --tta-data` ({hardware(torch.device('cpu'), 1)})"}
    return measure


def cmd_export(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError, export_checkpoint
    from .data import DataError

    measure = _tta_measurement(args.tta_data, args.data_dir) if args.tta_data else None
    try:
        summary = export_checkpoint(args.checkpoint, args.out, half=args.half, overwrite=args.force, measure=measure)
    except (CheckpointError, DataError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{args.out}: {exc.strerror or exc}") from None
    print(f"{args.out}: {summary['bytes'] / 2**20:.1f} MiB ({summary['source_bytes'] / 2**20:.1f} MiB before), "
          f"weights {summary['weights_dtype']}, largest rounding error {summary['max_abs_error']:.2e}")
    if "val_acc_tta" in summary["added"]:
        print(f"{args.out}: flip-TTA accuracy on its validation split {summary['added']['val_acc_tta']:.4f} "
              "(measured now: the trainer recorded none)")
    elif args.tta_data:
        print(f"{args.out}: keeps the trainer's flip-TTA accuracy; --tta-data was not needed")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m senet", description="Squeeze-and-Excitation networks on CIFAR-10")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a split")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", default=os.environ.get("SENET_DATA", "cifar10"))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--tta", action="store_true", help="average with the mirrored image")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--cache-dir", default=None, help="where predictions are cached")
    p = sub.add_parser("ablate", help="accuracy with each SE block's gate switched off or fixed to its mean")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", default=os.environ.get("SENET_DATA", "cifar10"))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--per-class", type=int, default=None, help="use this many images of each class (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = sub.add_parser("info", help="the model card of a checkpoint or a model")
    p.add_argument("--checkpoint")
    p.add_argument("--model")
    p.add_argument("--list", action="store_true", help="list the model names")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("excite", help="prediction and SE gates for images")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("images", nargs="+")
    p.add_argument("--top", type=int, default=3, help="channels shown at each end")
    p = sub.add_parser("export", help="a slim copy of a checkpoint for shipping (no optimiser state)")
    p.add_argument("--checkpoint", required=True, help="the checkpoint to copy, e.g. runs/NAME/best.pt")
    p.add_argument("--out", required=True, help="where to write the copy")
    p.add_argument("--half", action="store_true", help="store the weights as float16 (half the size)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--tta-data", metavar="DATA", help="if the checkpoint records no flip-TTA accuracy (a best.pt "
                   "saved before the final epoch by an older trainer), measure it on its validation split of DATA")
    p.add_argument("--data-dir", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "data_dir", None) is None and args.command in ("evaluate", "ablate", "export"):
        from .data import DEFAULT_DATA_DIR
        args.data_dir = DEFAULT_DATA_DIR
    handler = {"train": cmd_train, "evaluate": cmd_evaluate, "ablate": cmd_ablate, "info": cmd_info,
               "excite": cmd_excite, "export": cmd_export}[args.command]
    try:
        return handler(args)
    except UsageError as exc:
        print(f"senet {args.command}: error: {exc}", file=sys.stderr)
        return 2
