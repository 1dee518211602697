"""``senet`` (or ``python -m senet``): train, evaluate, ablate, info, excite, export and import from the command line;
``senet dashboard`` starts the installed dashboard.

Invalid arguments print one line ``senet <command>: error: ...`` and exit 2
without writing anything.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

__all__ = ["main"]


class UsageError(Exception):
    """Bad command-line input: reported in one line with exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``PROG: error: ...``) and exit code 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_train(sub: argparse._SubParsersAction) -> None:
    from .training.settings import add_config_arguments

    p = sub.add_parser("train", help="train a model into a run directory")
    p.add_argument("--config", metavar="FILE", help="start from the settings in FILE (a config.json); flags override, "
                   "the environment ($SENET_DATA, $SENET_DATA_DIR) never does")
    add_config_arguments(p)
    p.add_argument("--run-dir", help="new run directory (default runs/<time>-<model>)")
    p.add_argument("--runs-root", default="runs", help="where default run directories are made")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def cmd_train(args: argparse.Namespace, callbacks: tuple = ()) -> int:
    from .training.settings import config_overrides

    overrides = config_overrides(args)
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if args.resume:
        return _resume(args, overrides, world_size, callbacks)
    config = _new_config(args, overrides, world_size)
    rank = int(os.environ.get("RANK", 0))
    run_dir = Path(args.run_dir) if args.run_dir else None
    if run_dir is None and world_size > 1:
        raise UsageError("under torchrun, give --run-dir explicitly so all processes agree on it")
    if run_dir is not None and rank == 0:
        _check_new_run_dir(run_dir, args.config)
    if rank == 0:
        _check_data(config)
    if run_dir is None:
        from .training import make_run_dir
        try:
            run_dir = make_run_dir(args.runs_root, config.model)
        except OSError as exc:
            raise UsageError(f"--runs-root {args.runs_root}: cannot create a run directory there "
                             f"({exc.strerror or exc})") from None
    elif rank == 0:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--run-dir {run_dir}: cannot create it ({exc.strerror})") from None
    if rank == 0:
        if overrides.get("batch_size") is not None and overrides.get("lr") is None:
            _note_unscaled_lr(config)  # only once the run is sure to start: an error stays one line
        if overrides.get("epochs") is not None and overrides.get("warmup_epochs") is None and not args.config:
            _note_scaled_warmup(config)
        print(f"run directory: {run_dir}", file=sys.stderr)
    return _run(config, run_dir, resume=False, progress=args.progress, callbacks=callbacks)


def _new_config(args: argparse.Namespace, overrides: dict, world_size: int):
    """The configuration of a new run: ``--config FILE`` if given, then the flags; one-line errors.

    An environment variable (``$SENET_DATA``) fills only a setting that neither a flag nor the recorded config
    gives: ``--config RUN/config.json`` trains what the file records, whatever the environment says."""
    from .files import read_json
    from .training.settings import ConfigError, config_from_record, env_values, make_config

    try:
        if args.config:
            record = read_json(args.config)
            if record is None:
                raise UsageError(f"--config {args.config}: not a readable JSON object")
            unset = {k: v for k, v in env_values().items() if k not in record}
            return config_from_record(record, **dict(unset, **overrides), world_size=world_size)
        values = dict(env_values(), **overrides)
        model, recipe = values.pop("model", "se_airnet"), values.pop("recipe", "fast")
        return make_config(model, recipe, **dict(values, world_size=world_size))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _check_new_run_dir(run_dir: Path, config_file: str | None) -> None:
    """A new run's directory must be new, or hold only what the dashboard's launcher put there."""
    allowed = {"train.log", "launch.json"}  # written by the launcher before the process starts
    if config_file and Path(config_file).resolve().parent == run_dir.resolve():
        allowed.add(Path(config_file).name)
    if run_dir.exists() and (not run_dir.is_dir() or any(p.name not in allowed for p in run_dir.iterdir())):
        raise UsageError(f"--run-dir {run_dir}: already exists; use --resume {run_dir} or a new directory")


def _resume(args: argparse.Namespace, overrides: dict, world_size: int, callbacks: tuple) -> int:
    """``train --resume RUN_DIR``: the run's own config; only ``--epochs`` may change."""
    from .records import RecordError
    from .training.runs import ACTIVE_STATES, read_config, read_status
    from .training.settings import ConfigError, config_from_record

    run_dir = Path(args.resume)
    try:
        saved = read_config(run_dir)
    except RecordError as exc:
        raise UsageError(f"--resume {run_dir}: {exc}") from None
    if not saved:
        raise UsageError(f"--resume {run_dir}: no readable config.json there")
    current = read_status(run_dir)
    if int(os.environ.get("RANK", 0)) == 0 and current.get("state") in ACTIVE_STATES:
        raise UsageError(f"--resume {run_dir}: the run is still {current['state']} "
                         f"(pid {current.get('pid')}); stop it first")
    if args.run_dir and Path(args.run_dir) != run_dir:
        raise UsageError("--run-dir and --resume name different directories")
    changed = sorted(k for k, v in overrides.items()  # flags only: the environment never changes a resumed run
                     if k != "epochs" and (k in ("model", "recipe", "data") or v != saved.get(k)))
    if changed or args.config:
        raise UsageError(f"--resume {run_dir}: only --epochs can change on resume (got {changed or '--config'})")
    try:
        config = config_from_record(saved, epochs=overrides.get("epochs"), world_size=world_size)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if not (run_dir / "last.pt").is_file() and int(os.environ.get("RANK", 0)) == 0:
        print(f"note: {run_dir} has no last.pt (it ended before its first checkpoint); it starts again from step 0 "
              "with its recorded config", file=sys.stderr)
    return _run(config, run_dir, resume=True, progress=args.progress, callbacks=callbacks)


def _note_unscaled_lr(config) -> None:
    """A batch size other than the recipe's keeps the recipe's learning rate; say so, with the linear-scaling lr."""
    from .training.settings import make_config

    tuned = make_config(config.model, config.recipe, data=config.data)
    if config.batch_size != tuned.batch_size:
        print(f"note: --batch-size {config.batch_size} keeps the {config.recipe} recipe's lr {config.lr:g}, tuned for "
              f"batch {tuned.batch_size}; linear scaling would give --lr "
              f"{config.lr * config.batch_size / tuned.batch_size:.4g}", file=sys.stderr)


def _note_scaled_warmup(config) -> None:
    """``--epochs`` alone sets the warm-up by the recipe's rule (:func:`length_warmup`); say what it gave."""
    from .training.settings import SHORT_RUN_MAX_WARMUP_SHARE, recipe_values

    tuned = recipe_values(config.recipe, config.model)
    if config.warmup_epochs <= 0 or config.epochs == tuned["epochs"]:
        return
    share = f"{config.warmup_epochs / config.epochs:.0%} of training"
    if config.epochs > tuned["epochs"]:
        rule = f"keeps the {config.recipe} recipe's warm-up share: {config.warmup_epochs:.3g} warm-up epochs ({share})"
    elif config.warmup_epochs < tuned["warmup_epochs"]:
        rule = (f"caps the {config.recipe} recipe's {tuned['warmup_epochs']:.3g} warm-up epochs at "
                f"{SHORT_RUN_MAX_WARMUP_SHARE:.0%} of training: {config.warmup_epochs:.3g} warm-up epochs")
    else:
        rule = f"keeps the {config.recipe} recipe's {config.warmup_epochs:.3g} warm-up epochs ({share})"
    print(f"note: --epochs {config.epochs} {rule}; --warmup-epochs sets it", file=sys.stderr)


def _check_data(config) -> None:
    """Load the run's splits once before anything is written (downloads cifar10 and fills the cache), so that a
    dataset that cannot be used (or has no test split for ``--val-size 0``) is a usage error with nothing written."""
    from .data import DataError
    from .training import ConfigError
    from .training.loop import load_training_data
    from .training.preflight import preflight

    try:
        preflight(config)  # counted, not decoded: the dashboard's Train form runs the same checks
        load_training_data(config)
    except (DataError, ConfigError) as exc:
        raise UsageError(str(exc)) from None


def _run(config, run_dir: Path, resume: bool, progress: bool, callbacks: tuple = ()) -> int:
    """Train; a data or configuration fault found on the way is one line on stderr and exit code 1
    (the run's status.json says ``failed`` with the same message)."""
    from .checkpoint import CheckpointError
    from .data import DataError
    from .training import ConfigError, train
    from .training.run_lock import RunBusy

    try:
        status = train(config, run_dir, resume=resume, progress=progress, callbacks=callbacks)
    except (ConfigError, DataError, CheckpointError, RunBusy) as exc:
        print(f"senet train: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the disk refused a write (full, read-only, gone); status.json says failed
        print(f"senet train: error: {run_dir}: {exc}", file=sys.stderr)
        return 1
    return 0 if status.get("state") in ("finished", "stopped") else 1


def _with_split_flag(exc: Exception) -> str:
    """A data error's message; one that names a split to use instead also names the flag that chooses it."""
    use = getattr(exc, "use_split", None)
    return f"{exc} (--split {use})" if use else str(exc)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .data import DataError
    from .analysis.evaluate import evaluate_checkpoint

    try:
        tta = args.tta_level if args.tta_level is not None else int(args.tta)
        result = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.data_dir, tta=tta,
                                     cache_dir=args.cache_dir)
    except (CheckpointError, DataError) as exc:
        raise UsageError(_with_split_flag(exc)) from None
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    report = result.report()
    views = {0: "", 1: ", flip TTA", 2: ", flip + translate TTA (level 2)"}[tta]
    print(f"{args.checkpoint} on {args.data} [{args.split}{views}]: "
          f"accuracy {result.accuracy:.4f} over {result.n} images")
    from .models.external import is_external
    if is_external(args.checkpoint):
        k = len(result.classes)
        print(f"  among the folder's {k} classes: the model's logits restricted to them (a {k}-way choice, not "
              "ImageNet top-1); images prepared with its weights' resize, crop and normalisation")
    print(f"{'class':>12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>7}")
    for row in report["per_class"]:
        print(f"{row['class']:>12} {row['precision']:9.4f} {row['recall']:7.4f} {row['f1']:7.4f} {row['support']:7d}")
    m = report["macro"]
    print(f"{'macro avg':>12} {m['precision']:9.4f} {m['recall']:7.4f} {m['f1']:7.4f} {result.n:7d}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from .analysis.ablation import MODES, gate_ablation
    from .analysis.evaluate import checkpoint_and_split
    from .checkpoint import CheckpointError
    from .data import DataError

    if args.per_class is not None and args.per_class < 1:
        raise UsageError(f"--per-class {args.per_class}: must be 1 or more")
    try:
        checkpoint, data = checkpoint_and_split(args.checkpoint, args.data, args.split, args.data_dir)
    except (CheckpointError, DataError) as exc:
        raise UsageError(_with_split_flag(exc)) from None
    try:
        result = gate_ablation(checkpoint, data, per_class=args.per_class)
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


def _add_importance(sub: argparse._SubParsersAction) -> None:
    from .analysis.importance import CHECK_IMAGES, MAX_PER_CLASS

    p = sub.add_parser("importance", help="each SE channel's gate against its importance (the drop in the true "
                       "class's log-probability when its gate is set to 0)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", default=os.environ.get("SENET_DATA", "cifar10"), help=DATA_HELP)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--per-class", type=int, default=10,
                   help=f"images of each class in the sample (1 to {MAX_PER_CLASS}; default 10)")
    p.add_argument("--block", default=None, help="one SE block (default: every block)")
    p.add_argument("--check-images", type=int, default=CHECK_IMAGES, help="images on which exact ablation checks "
                   f"the first-order estimate (0 to 50; default {CHECK_IMAGES})")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_importance(args: argparse.Namespace) -> int:
    from .analysis.evaluate import checkpoint_and_split
    from .analysis.importance import MAX_PER_CLASS, gate_importance
    from .checkpoint import CheckpointError
    from .data import DEFAULT_DATA_DIR, DataError
    from .models import se_blocks

    if not 1 <= args.per_class <= MAX_PER_CLASS:
        raise UsageError(f"--per-class {args.per_class}: must be 1 to {MAX_PER_CLASS}")
    if not 0 <= args.check_images <= 50:
        raise UsageError(f"--check-images {args.check_images}: must be 0 to 50")
    try:
        checkpoint, data = checkpoint_and_split(args.checkpoint, args.data, args.split,
                                                args.data_dir or DEFAULT_DATA_DIR)
    except (CheckpointError, DataError) as exc:
        raise UsageError(_with_split_flag(exc)) from None
    known = list(se_blocks(checkpoint.model))
    if not known:
        raise UsageError(f"{args.checkpoint}: the model has no SE blocks: there is no gate to weigh")
    if args.block is not None and args.block not in known:
        raise UsageError(f"--block {args.block}: no such SE block in {args.checkpoint}; known: {', '.join(known)}")
    result = gate_importance(checkpoint, data, per_class=args.per_class, block=args.block,
                             check_images=args.check_images)
    if args.json:
        print(json.dumps(dict(checkpoint=args.checkpoint, data=args.data, **result.to_dict())))
        return 0
    _importance_table(args, result)
    return 0


def _importance_table(args: argparse.Namespace, result) -> None:
    """``senet importance``'s text: the correlation per block, the estimate's check, the disagreeing channels."""
    def num(v: float, spec: str = ".2f") -> str:
        return "n/a" if v is None or not math.isfinite(v) else format(v, spec)

    print(f"{args.checkpoint} on {args.data} [{args.split}, {result.n} images, up to {result.per_class} per class]: "
          "gate against importance")
    print("importance: the drop in the true class's log-probability (nats) when the channel's gate is set to 0, "
          "first-order estimate (one backward pass); Spearman of gate and importance (then its magnitude) over a "
          "block's channels, per image, averaged, 95% bootstrap interval over images; 'of means': of the channels' "
          "means over the images")
    most = max((a.channels for a in result.agreement), default=0)
    print(f"check: the estimate against exact ablation of up to {most} channels per block on "
          f"{len(result.check_positions)} images (positions {', '.join(map(str, result.check_positions)) or 'none'}):"
          " Spearman per image, averaged, and the share of channels whose sign agrees")
    checks = {a.block: a for a in result.agreement}
    print(f"{'block':>16} {'channels':>8} {'Spearman':>9} {'95% interval':>16} {'|importance|':>12} "
          f"{'95% interval':>16} {'of means':>9}  {'check: Spearman':>15} {'sign':>5}")
    for b in result.blocks:
        a = checks.get(b.block)
        check = f"{num(a.spearman):>15} {num(a.sign_agreement, '.0%'):>5}" if a else f"{'-':>15} {'-':>5}"
        interval = f"[{num(b.interval[0])}, {num(b.interval[1])}]"
        interval_abs = f"[{num(b.interval_abs[0])}, {num(b.interval_abs[1])}]"
        print(f"{b.block:>16} {b.channels:>8} {num(b.spearman):>9} {interval:>16} {num(b.spearman_abs):>12} "
              f"{interval_abs:>16} {num(b.spearman_of_means):>9}  {check}")
    print("disagreeing channels, high and low as ranks among the block's channels (mean gate, mean importance in "
          "nats; the images where they disagree most, by position in the split):")
    for b in result.blocks:
        for label, rows in (("high gate, ~no importance", b.high_gate_low_importance),
                            ("low gate, high importance", b.low_gate_high_importance)):
            cells = "; ".join(f"ch {d.channel} ({d.mean_gate:.2f}, {d.mean_importance:+.3f}; images "
                              f"{', '.join(map(str, d.images))})" for d in rows[:2])
            print(f"{b.block:>16}  {label}: {cells}")


MAX_PROFILE_IMAGES = 1000  # the most --per-class of senet profiles takes


def _add_profiles(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profiles", help="the SENet paper's Fig. 6 (each channel's mean gate per class) and Fig. 7 "
                       "(with its standard deviation over a class's images) for any model and data")
    p.add_argument("--checkpoint", required=True, help="a senet checkpoint, or an ImageNet model such as "
                   "timm:legacy_seresnet50 (the SENet authors' SE-ResNet-50 weights) on folder:PATH photos")
    p.add_argument("--data", default=os.environ.get("SENET_DATA", "cifar10"), help=DATA_HELP)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--blocks", nargs="+", metavar="B", help="SE blocks to draw (default: the paper's when the model "
                   "has them: SE_2_3 ... SE_5_3 for Fig. 6, SE_5_2 SE_5_3 for Fig. 7; else every block)")
    p.add_argument("--classes", nargs="+", metavar="C", help="classes to draw, by name or WordNet id (default: the "
                   "paper's the data holds: goldfish, pug, plane (airliner), cliff; else the first 10 / the first)")
    p.add_argument("--per-class", type=int, default=50,
                   help=f"images of each class in the sample (1 to {MAX_PROFILE_IMAGES}; default 50)")
    p.add_argument("--figure", type=int, default=6, choices=(6, 7), help="6: mean gate per class and over all "
                   "images; 7: one class's mean gate with its standard deviation (default 6)")
    p.add_argument("--out", metavar="FILE", help="write the figure: FILE.png (150 dpi), .svg or .pdf")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _check_figure_out(out: str | None) -> None:
    """Refuse an --out that cannot be written, before anything is computed."""
    from .analysis.paper_plot import figure_format
    from .files import check_replaceable

    if out is None:
        return
    path = Path(out)
    try:
        figure_format(path)
    except ValueError as exc:
        raise UsageError(f"--out {exc}") from None
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"--out {out}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: cannot write in {parent} (permission denied)")
    try:
        check_replaceable(path)
    except OSError as exc:
        raise UsageError(f"--out {out}: {exc.strerror or exc}") from None


def cmd_profiles(args: argparse.Namespace) -> int:
    from .analysis.evaluate import checkpoint_and_split
    from .analysis.paper_figures import (FIG6_BLOCKS, FIG6_CLASSES, FIG7_BLOCKS, FIG7_CLASSES, paper_figure_numbers,
                                         resolve_blocks, resolve_classes, weights_words)
    from .analysis.profiles import class_profiles
    from .checkpoint import CheckpointError
    from .data import DEFAULT_DATA_DIR, DataError
    from .models import se_blocks
    from .models.gates import block_gate_range

    if not 1 <= args.per_class <= MAX_PROFILE_IMAGES:
        raise UsageError(f"--per-class {args.per_class}: must be 1 to {MAX_PROFILE_IMAGES}")
    _check_figure_out(args.out)
    try:
        checkpoint, data = checkpoint_and_split(args.checkpoint, args.data, args.split,
                                                args.data_dir or DEFAULT_DATA_DIR)
    except (CheckpointError, DataError) as exc:
        raise UsageError(_with_split_flag(exc)) from None
    modules = se_blocks(checkpoint.model)
    if not modules:
        raise UsageError(f"{args.checkpoint}: the model has no SE blocks: there is no gate to draw")
    fig6 = args.figure == 6
    try:
        blocks = resolve_blocks(args.blocks, list(modules), FIG6_BLOCKS if fig6 else FIG7_BLOCKS)
    except ValueError as exc:
        raise UsageError(f"--blocks: {exc}") from None
    try:
        folders = (checkpoint.card.get("class_subset") or {}).get("folders")  # an ImageNet model: WordNet ids
        classes = resolve_classes(args.classes, list(data.classes), FIG6_CLASSES if fig6 else FIG7_CLASSES,
                                  most=10 if fig6 else 1, folders=folders)
    except ValueError as exc:
        raise UsageError(f"--classes: {exc}") from None
    profiles = class_profiles(checkpoint, data, per_class=args.per_class, progress=_stderr_progress("profiles"))
    if sys.stderr.isatty():
        print(file=sys.stderr)
    numbers = paper_figure_numbers(profiles, blocks, classes)
    ranges = {b: block_gate_range(modules[b]) for b in blocks}
    weights = weights_words(checkpoint.name, checkpoint.card)
    if args.out:
        _write_profiles_figure(args, numbers, weights, ranges)
    if args.json:
        print(json.dumps(_finite(dict(checkpoint=args.checkpoint, weights=weights, data=args.data, split=args.split,
                                      figure=args.figure, per_class=args.per_class, out=args.out,
                                      gate_ranges={b: list(r) for b, r in ranges.items()}, **numbers))))
    elif not args.out:
        _profiles_table(args, numbers, weights)
    return 0


def _write_profiles_figure(args: argparse.Namespace, numbers: dict, weights: str, ranges: dict) -> None:
    from .analysis.paper_plot import paper_figure, write_paper_figure

    fig = paper_figure(numbers, args.figure, weights=weights, data=args.data, split=args.split,
                       per_class=args.per_class, gate_ranges=ranges)
    try:
        write_paper_figure(args.out, fig)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: {exc.strerror or exc}") from None
    what = ("each channel's mean gate per class and over all images" if args.figure == 6 else
            "each channel's mean gate with its standard deviation over a class's images")
    line = (f"{args.out}: Fig. {args.figure} of {args.checkpoint} on {args.data} [{args.split}]: {what}; blocks "
            f"{', '.join(numbers['blocks'])}; classes {', '.join(numbers['classes'])}; {numbers['all_images']} "
            "images sampled")
    print(line, file=sys.stderr if args.json else sys.stdout)


def _profiles_table(args: argparse.Namespace, numbers: dict, weights: str) -> None:
    """``senet profiles``'s text: per block, each class's mean gate over the channels (Fig. 7: with the channels'
    mean standard deviation over the class's images), and the all-image line."""
    classes = numbers["classes"]
    fig7 = args.figure == 7
    print(f"{args.checkpoint} on {args.data} [{args.split}, up to {args.per_class} images per class, "
          f"{numbers['all_images']} images of {len(numbers['all_classes'])} classes]: Fig. {args.figure}")
    print(f"weights: {weights}")
    print("each cell: a class's mean gate averaged over the block's channels"
          + (" \u00b1 the channels' mean standard deviation over its images" if fig7 else "")
          + "; all: the mean over every sampled image of the data's classes; images per class: "
          + ", ".join(f"{c} {n}" for c, n in numbers["images_per_class"].items()))
    widths = [max(len(c), 14 if fig7 else 6) for c in classes]
    print(f"{'block':>16} {'channels':>8} " + " ".join(f"{c:>{w}}" for c, w in zip(classes, widths))
          + f" {'all':>6}")
    for block, entry in numbers["blocks"].items():
        cells = []
        for c, w in zip(classes, widths):
            stats = entry["classes"].get(c)
            if stats is None:
                cells.append(f"{'-':>{w}}")
                continue
            mean = sum(stats["mean"]) / len(stats["mean"])
            cell = f"{mean:.3f} \u00b1 {sum(stats['std']) / len(stats['std']):.3f}" if fig7 else f"{mean:.3f}"
            cells.append(f"{cell:>{w}}")
        print(f"{block:>16} {entry['channels']:>8} " + " ".join(cells)
              + f" {sum(entry['all']) / len(entry['all']):>6.3f}")


def cmd_info(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError, load_checkpoint, load_external_model
    from .models import create_model, list_models, model_info
    from .models.external import is_external
    from .recorded import recorded, scored_split

    if args.list:
        print("\n".join(list_models()))
        return 0
    if args.name and (args.checkpoint or args.model):
        raise UsageError(f"{args.name}: give the model once, as NAME, --model or --checkpoint")
    if args.name:  # a model name, another library's model (torchvision:..., timm:...) or a checkpoint file
        args.model, args.checkpoint = (args.name, None) if args.name in list_models() else (None, args.name)
    if bool(args.checkpoint) == bool(args.model):
        raise UsageError("give exactly one of --checkpoint PATH or --model NAME")
    meta: dict = {}
    try:
        external = args.checkpoint or args.model
        if is_external(external):  # the architecture's card: its weights are not needed for it
            model, meta = load_external_model(external, fetch_weights=False)
        elif args.checkpoint:
            model, meta = load_checkpoint(args.checkpoint)
        else:
            model = create_model(args.model)
    except (CheckpointError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    info = model_info(model, tuple(meta.get("input_size", (3, 32, 32))))
    card = {"model": meta.get("model", args.model), **info}
    card.update({k: v for k, v in meta.items() if k not in ("history", "config")})
    if args.json:
        print(json.dumps(_finite({**card, "history": meta.get("history"), "config": meta.get("config")}),
                         default=str, allow_nan=False))
        return 0
    print(f"model            {card['model']}")
    print(f"parameters       {info['params']:,}")
    print(f"SE parameters    {info['se_params']:,} in {info['se_blocks']} blocks "
          f"(the SENet paper's count (2/r)*sum N_s*C_s^2 = {info['se_formula']:,.0f})")
    print(f"multiply-adds    {info['macs'] / 1e6:,.1f} M per image")
    for key in ("recipe", "epochs", "scored_on", "val_acc", "val_acc_tta", "test_acc", "test_acc_tta", "dataset",
                "hardware", "wall_time_s", "weights_dtype", "exported_from", "imported_from", "normalisation"):
        if meta.get(key) is not None:
            print(f"{key:<16} {meta[key]}")
    if recorded(meta, "acc_tta_source"):
        print(f"{'':<16} ({scored_split(meta)}_acc_tta {recorded(meta, 'acc_tta_source')})")
    prints = meta.get("data_fingerprint")
    if isinstance(prints, dict) and prints:  # the data by its content (senet.data.fingerprint)
        print(f"{'data by content':<16} " + ", ".join(f"{split} {str(value).removeprefix('sha256:')[:12]}"
                                                     for split, value in sorted(prints.items())))
    if meta.get("external"):
        print("\n".join(_external_lines(model, meta)))
    return 0


def _external_lines(model, meta: dict) -> list[str]:
    """``senet info``'s lines for another library's model: weights, classes, preprocessing, its SE modules."""
    from .models import se_blocks
    from .models.gates import block_channels, block_reduction

    prep = meta.get("preprocessing") or {}
    _, h, w = meta["input_size"]
    resize = f"short side resized to {round(h / prep['crop_pct'])}, " if prep.get("crop_pct", 1) < 1 else ""
    lines = [f"{'source':<16} {meta['source']} {meta.get('library_version', '')}",
             f"{'weights':<16} {meta['weights_note']}",
             f"{'classes':<16} {len(meta['classes'])} ({meta.get('weights_dataset')}: {', '.join(meta['classes'][:3])}, ...)",
             f"{'input':<16} {w}x{h}: {resize}centre crop, {prep.get('interpolation', 'bilinear')}; "
             f"mean {tuple(round(m, 3) for m in meta['mean'])} std {tuple(round(s, 3) for s in meta['std'])}"]
    for name, block in se_blocks(model).items():
        lines.append(f"  {name:<34} {type(block).__name__:<18} C {block_channels(block):>5}  r {block_reduction(block)}")
    return lines


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None, so that it prints as valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def cmd_excite(args: argparse.Namespace) -> int:
    import torch

    from .analysis.runner import predict
    from .checkpoint import CheckpointError, load_checkpoint
    from .data import ImageError, open_image, preprocess
    from .models import excitations

    if args.top < 1:
        raise UsageError(f"--top {args.top}: must be 1 or more (channels shown at each end)")
    try:
        model, meta = load_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    if meta.get("external"):
        print(f"{meta['model']}: {meta['weights_note']}")
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
    """For ``export --tta-data``: measure the flip-TTA accuracy on the checkpoint's own scored split of ``spec``
    (its validation split, or the test split for a run trained on every training image), when the trainer
    recorded none."""
    def measure(path: Path, meta: dict) -> dict:
        import tempfile

        import torch

        from .analysis.evaluate import evaluate_checkpoint
        from .recorded import recorded, scored_split
        from .training.distributed import hardware

        split = scored_split(meta)
        if recorded(meta, "acc_tta") is not None:
            return {}
        with tempfile.TemporaryDirectory() as cache:
            acc = evaluate_checkpoint(path, spec, split, data_dir, tta=True, cache_dir=cache).accuracy
        return {f"{split}_acc_tta": acc,
                f"{split}_acc_tta_source": f"measured after training, on the exported {meta.get('weights_dtype')} weights, "
                                      f"by `python -m senet export --tta-data` ({hardware(torch.device('cpu'), 1)})"}
    return measure


def cmd_export(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError, export_checkpoint
    from .data import DataError
    from .recorded import split_words

    measure = _tta_measurement(args.tta_data, args.data_dir) if args.tta_data else None
    try:
        summary = export_checkpoint(args.checkpoint, args.out, half=args.half, overwrite=args.force, measure=measure)
    except (CheckpointError, DataError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{args.out}: {exc.strerror or exc}") from None
    print(f"{args.out}: {summary['bytes'] / 2**20:.1f} MiB ({summary['source_bytes'] / 2**20:.1f} MiB before), "
          f"weights {summary['weights_dtype']}, largest rounding error {summary['max_abs_error']:.2e}")
    added = {k: v for k, v in summary["added"].items() if k.endswith("_acc_tta")}
    if added:
        (key, acc), = added.items()
        print(f"{args.out}: flip-TTA accuracy on its {split_words(key.split('_')[0])} split {acc:.4f} "
              "(measured now: the trainer recorded none)")
    elif args.tta_data:
        print(f"{args.out}: keeps the trainer's flip-TTA accuracy; --tta-data was not needed")
    return 0


def _add_robustness(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robustness", help="accuracy and gates under CIFAR-10-C corruptions; with --twin, the paired "
                       "difference on the same images")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--twin", help="a second checkpoint (e.g. the plain twin): the paired difference per corruption, "
                   "exact McNemar test")
    p.add_argument("--reference", help="the checkpoint whose errors normalise the corruption error (default: --twin)")
    p.add_argument("--data", default=os.environ.get("SENET_DATA", "cifar10"), help=DATA_HELP)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--corruptions", nargs="+", metavar="NAME", help="default: all ten (an unknown name lists them)")
    p.add_argument("--severities", nargs="+", type=int, metavar="S", help="1 (mildest) to 5; default: all five")
    p.add_argument("--per-class", type=int, default=None, help="use this many images of each class (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise corruptions' random draws (default 0)")
    p.add_argument("--cache-dir", default=None, help="where predictions are cached")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_robustness(args: argparse.Namespace) -> int:
    from .analysis.robustness import robustness
    from .checkpoint import CheckpointError
    from .data import DEFAULT_DATA_DIR, DataError
    from .data.corruptions import check_corruption, check_severity

    try:
        for name in args.corruptions or []:
            check_corruption(name)
    except ValueError as exc:
        raise UsageError(f"--corruptions: {exc}") from None
    try:
        for severity in args.severities or []:
            check_severity(severity)
    except ValueError as exc:
        raise UsageError(f"--severities: {exc}") from None
    if args.per_class is not None and args.per_class < 1:
        raise UsageError(f"--per-class {args.per_class}: must be 1 or more")
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be 0 or more")
    try:
        result = robustness(args.checkpoint, args.data, args.split, args.data_dir or DEFAULT_DATA_DIR,
                            twin=args.twin, reference=args.reference, corruptions=args.corruptions,
                            severities=args.severities, per_class=args.per_class, seed=args.seed,
                            cache_dir=args.cache_dir, progress=_stderr_progress("robustness"))
    except (CheckpointError, DataError) as exc:
        raise UsageError(_with_split_flag(exc)) from None
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(dict(checkpoint=args.checkpoint, twin=args.twin, data=args.data, **result.to_json())))
        return 0
    _robustness_tables(args, result)
    return 0


def _stderr_progress(what: str) -> Callable[[int, int], None] | None:
    """A one-line count on a terminal's stderr (None when stderr is not a terminal)."""
    if not sys.stderr.isatty():
        return None
    return lambda done, total: print(f"\r{what}: {done:,} of {total:,} image passes", end="", file=sys.stderr)


def _robustness_tables(args: argparse.Namespace, result) -> None:
    """``senet robustness``'s text: accuracy per corruption and severity for each model, CE, the paired test."""
    levels = result.severities
    ref = result.reference_role and result.models[result.reference_role].checkpoint
    print(f"{args.data} [{args.split}, {result.n} images, corruption seed {result.seed}]: accuracy (%) under each "
          f"CIFAR-10-C corruption (severity 1 mildest to 5); CE = errors summed over the severities shown / "
          + (f"{ref}'s" if ref else "a reference's (give --twin or --reference)"))
    head = f"{'corruption':>17} " + " ".join(f"{'sev ' + str(s):>6}" for s in levels) + f" {'mean':>6} {'CE':>6}"
    for role, m in result.models.items():
        mce = result.mean_corruption_error(role)
        print(f"\n{role} {m.checkpoint}: clean accuracy {100 * m.clean_accuracy:.2f}%"
              + (f", mean CE {100 * mce:.1f}%" if mce is not None else ""))
        print(head)
        for c in result.corruptions:
            accs = [100 * m.accuracy(c, s) for s in levels]
            ce = result.corruption_error(role, c)
            print(f"{c:>17} " + " ".join(f"{a:6.2f}" for a in accs) + f" {sum(accs) / len(accs):6.2f} "
                  + (f"{100 * ce:5.1f}%" if ce is not None else f"{'-':>6}"))
    if "twin" not in result.models:
        return
    clean = result.paired("clean", 0)
    print(f"\ncheckpoint minus twin, points, same images: clean {100 * clean.difference:+.2f} "
          f"[{100 * clean.difference_ci95[0]:+.2f}, {100 * clean.difference_ci95[1]:+.2f}] exact McNemar "
          f"p={clean.p_value:.3g}")
    print("per corruption, mean over the severities: 95% interval over images, exact sign test over the images "
          "where the two differ (McNemar's per severity in --json)")
    for c in result.corruptions:
        p = result.paired_over_severities(c)
        print(f"{c:>17} {100 * p['difference']:+6.2f} [{100 * p['ci95'][0]:+.2f}, {100 * p['ci95'][1]:+.2f}] "
              f"p={p['p_value']:.3g} (images better: checkpoint {p['images_checkpoint_better']}, twin "
              f"{p['images_twin_better']})")


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="a senet checkpoint from another CIFAR codebase's state dict")
    p.add_argument("--state-dict", required=True, metavar="PATH", help="the file the other codebase saved")
    p.add_argument("--out", required=True, help="where to write the senet checkpoint")
    p.add_argument("--from", dest="source", choices=("akamaster", "moskomule"), default=None,
                   help="akamaster/pytorch_resnet_cifar10 or moskomule/senet.pytorch (default: from the key names)")
    p.add_argument("--model", default=None, help="the senet model, e.g. resnet20 (default: read from the tensors)")
    p.add_argument("--reduction", type=int, default=None, help="SE reduction (default: read from the SE weights)")
    p.add_argument("--classes", default=None, help="class names, comma-separated or a file with one per line "
                   "(default: CIFAR-10's, for 10 outputs)")
    p.add_argument("--mean", default=None, metavar="R,G,B", help="input normalisation (default: the source's)")
    p.add_argument("--std", default=None, metavar="R,G,B", help="input normalisation (default: the source's)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")


def _numbers(flag: str, text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} must be comma-separated numbers, e.g. 0.485,0.456,0.406, got {text!r}") from None


def cmd_import(args: argparse.Namespace) -> int:
    from .interop import StateDictError, import_checkpoint

    classes = None
    if args.classes is not None:
        listed = Path(args.classes)
        try:
            text = listed.read_text() if listed.is_file() else args.classes.replace(",", "\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--classes {args.classes}: cannot read it ({exc})") from None
        classes = [c.strip() for c in text.splitlines() if c.strip()]
    try:
        s = import_checkpoint(args.state_dict, args.out, source=args.source, model=args.model,
                              reduction=args.reduction, classes=classes, mean=_numbers("--mean", args.mean),
                              std=_numbers("--std", args.std), overwrite=args.force)
    except StateDictError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{args.out}: {exc.strerror or exc}") from None
    options = ", ".join(f"{k} {v}" for k, v in s["options"].items() if k != "num_classes")
    print(f"{s['out']}: {s['model']} ({options}; {s['se_blocks']} SE blocks) from {s['repo']}, "
          f"{s['tensors']} tensors; inputs normalised with mean {s['mean']} std {s['std']}")
    return 0


def _add_study(sub: argparse._SubParsersAction) -> None:
    from .training.settings import add_config_arguments

    p = sub.add_parser("study", help="train variants x seeds alike, and summarise them with intervals")
    p.add_argument("--study-dir", metavar="DIR", help="the study's directory (made, or continued if it exists)")
    p.add_argument("--variants", nargs="+", metavar="MODEL[:SETTING=VALUE,...]",
                   help="e.g. se_airnet airnet, or se_resnet20:se_position=pre")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per variant (default 3)")
    p.add_argument("--summary", metavar="DIR", help="print the summary of the study in DIR instead of training")
    p.add_argument("--pooled", action="store_true", help="with --summary: also the pooled image-level test "
                   "(evaluates every run on its scored split: validation, or test)")
    p.add_argument("--json", action="store_true", help="with --summary: one JSON object")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_config_arguments(p)


def cmd_study(args: argparse.Namespace) -> int:
    from .training.settings import config_overrides, env_values
    from .training.study import MAX_SEEDS, StudyError, pooled_disagreement, run_study, summarize

    try:
        if args.summary:
            summary = summarize(Path(args.summary))
            if args.pooled:
                names = [v["variant"] for v in summary["variants"]]
                for i, a in enumerate(names):
                    for b in names[i + 1:]:
                        if any({p["a"], p["b"]} == {a, b} for p in summary["not_compared"]):
                            continue  # trained on different images
                        t = pooled_disagreement(Path(args.summary), a, b)
                        summary.setdefault("pooled", []).append(
                            {"a": a, "b": b, "n": t.n, "only_a": t.only_a, "only_b": t.only_b,
                             "difference": t.difference, "ci95": list(t.difference_ci95), "p_value": t.p_value})
            print(json.dumps(summary) if args.json else _study_table(summary))
            return 0
        if not args.study_dir or not args.variants:
            raise UsageError("give --study-dir DIR and --variants (or --summary DIR)")
        if not 1 <= args.seeds <= MAX_SEEDS:
            raise UsageError(f"--seeds {args.seeds}: must be from 1 to {MAX_SEEDS:,}")
        continued = (Path(args.study_dir) / "study.json").is_file()  # a continued study trains what it recorded
        shared = dict({} if continued else env_values(), **config_overrides(args))
        for key in ("model", "seed"):
            if key in shared and getattr(args, key, None) is not None:
                raise UsageError(f"--{key} is set per run by a study: give --variants and --seeds instead")
            shared.pop(key, None)
        recipe = shared.pop("recipe", "fast")
        states = run_study(Path(args.study_dir), args.variants, list(range(args.seeds)), recipe, shared,
                           progress=args.progress)
    except StudyError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:  # the disk refused a write (full, read-only): the run's status says failed
        print(f"senet study: error: {args.study_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for name, state in states.items():
        print(f"{name:<40} {state}")
    return 0 if all(s == "finished" for s in states.values()) else 1



def _count(n: int | None) -> str:
    """A count with thousands separators, or a dash when no run has measured it yet."""
    return f"{n:,}" if n else "–"

def _study_table(summary: dict) -> str:
    def cell(iv: dict | None) -> str:
        if not iv:
            return "–"
        if iv["low"] != iv["low"]:  # NaN: one seed
            return f"{100 * iv['mean']:.2f}% (one seed)"
        return f"{100 * iv['mean']:.2f}% [{100 * iv['low']:.2f}, {100 * iv['high']:.2f}]"

    from .recorded import split_words

    split = summary.get("scored_on", "val")
    lines = [f"study {summary['study']}: {split_words(split)} accuracy recorded in training, mean over seeds "
             f"[{summary['interval']}]"]
    if summary.get("data"):
        lines.append(f"  data: {summary['data']['note']}")
    for v in summary["variants"]:
        lines.append(f"  {v['variant']:<32} seeds {len(v['seeds'])}  acc {cell(v['acc'])}  "
                     f"TTA {cell(v['acc_tta'])}  params {_count(v['params'])}  MACs {_count(v['macs'])}")
    for p in summary["pairs"]:
        interval = (f"[{100 * p['low']:+.2f}, {100 * p['high']:+.2f}]" if p["low"] == p["low"] else "(one seed)")
        lines.append(f"  {p['a']} - {p['b']} ({split}_{p['metric']}, {p['seeds']} seeds): {100 * p['mean']:+.2f} pts "
                     f"{interval}")
    for p in summary.get("not_compared", []):
        lines.append(f"  {p['a']} - {p['b']}: not compared, trained on different images ({p['reason']})")
    for p in summary.get("pooled", []):
        lines.append(f"  pooled over seeds, {p['a']} vs {p['b']}: {p['n']:,} image-runs, only {p['a']} right "
                     f"{p['only_a']:,}, only {p['b']} right {p['only_b']:,}, {100 * p['difference']:+.2f} pts "
                     f"[{100 * p['ci95'][0]:+.2f}, {100 * p['ci95'][1]:+.2f}], McNemar p = {p['p_value']:.3g}")
    return "\n".join(lines)


def _port(text: str) -> int:
    """``--port``: an integer in 1..65535 (argparse reports the message as ``argument --port: ...``)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in 1..65535, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be an integer in 1..65535, got {port}")
    return port


def _add_dashboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="start the dashboard (a local web app) on the folders given, "
                       "as tensorboard --logdir does", description="Start the SENet Explorer dashboard (Streamlit) "
                       "and serve it until Ctrl-C. Folders are resolved against the current directory; a "
                       "checkpoints or runs folder that does not exist yet is fine (the dashboard says there are "
                       "none), a path that exists but is not a folder is an error.")
    p.add_argument("--checkpoints", metavar="DIR", default=os.environ.get("SENET_CHECKPOINTS", "checkpoints"),
                   help="folder of checkpoints (*.pt) to show (default: $SENET_CHECKPOINTS or ./checkpoints; "
                   "may not exist yet)")
    p.add_argument("--runs", metavar="DIR", default=os.environ.get("SENET_RUNS", "runs"),
                   help="folder of training runs, where the Train page starts new ones (default: $SENET_RUNS or "
                   "./runs; may not exist yet)")
    p.add_argument("--data", default=None, help="dataset spec: cifar10 | cifar100 | folder:PATH | sample (default: "
                   "$SENET_DATA, else cifar10 once downloaded into --data-dir, else the bundled sample)")
    p.add_argument("--data-dir", metavar="DIR", default=os.environ.get("SENET_DATA_DIR", "data"),
                   help="where datasets are downloaded and evaluations cached (default: $SENET_DATA_DIR or ./data)")
    p.add_argument("--port", type=_port, default=8501, help="port to serve on, 1..65535 (default 8501)")
    p.add_argument("--host", metavar="ADDR", default="localhost",
                   help="address to listen on (default localhost: this machine only; 0.0.0.0: every interface)")


def _dashboard_folder(flag: str, value: str) -> Path:
    """An absolute folder for ``--checkpoints``/``--runs``: missing is fine, a file is not."""
    path = Path(value).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {value}: not a directory")
    return path


def _dashboard_data(spec: str) -> str:
    """``--data``, checked as the other commands check it; a folder spec made absolute."""
    from .data import DataError, folder_root, parse_spec

    try:
        kind, path = parse_spec(spec)
        if kind == "folder":
            folder_root(path, "train")
            return f"folder:{path.absolute()}"
    except DataError as exc:
        raise UsageError(f"--data: {exc}") from None
    return spec.strip()


def _dashboard_app() -> Path:
    """The installed dashboard's entry script (found, never imported: senet does not import the dashboard)."""
    import importlib.util

    spec = importlib.util.find_spec("senet_dashboard")
    if spec is None or not spec.origin:
        raise UsageError("the dashboard package (senet_dashboard) is not installed with this Python; "
                         "reinstall senet-explorer (pip install .)")
    if importlib.util.find_spec("streamlit") is None:
        raise UsageError("streamlit is not installed with this Python; pip install -r requirements.txt "
                         "(or reinstall senet-explorer)")
    app = Path(spec.origin).parent / "app.py"
    if not app.is_file():
        raise UsageError(f"{app}: the dashboard's entry script is missing; reinstall senet-explorer")
    return app


def _streamlit_settings(path: Path) -> list[str]:
    """``[section] key = value`` of the dashboard's streamlit.toml as ``--section.key value`` flags."""
    import tomllib

    try:
        settings = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the dashboard's Streamlit settings ({exc})") from None

    def flat(table: dict, prefix: str) -> list[str]:
        flags = []
        for key, value in table.items():
            if isinstance(value, dict):
                flags += flat(value, f"{prefix}{key}.")
            elif f"{prefix}{key}" not in ("server.port", "server.address", "server.headless"):  # senet's flags
                flags += [f"--{prefix}{key}", str(value).lower() if isinstance(value, bool) else str(value)]
        return flags
    return flat(settings, "")


def _forwarding_signals(cmd: list[str], env: dict) -> int:
    """Run ``cmd`` as a child in this process group; SIGINT and SIGTERM sent to this process reach it too.
    Returns its exit code (128 + N if signal N ended it)."""
    import signal
    import subprocess

    try:
        proc = subprocess.Popen(cmd, env=env)
    except OSError as exc:
        raise UsageError(f"cannot start {cmd[0]} ({exc.strerror or exc})") from None

    def forward(signum, frame) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 - code if code < 0 else code


def cmd_dashboard(args: argparse.Namespace) -> int:
    checkpoints = _dashboard_folder("--checkpoints", args.checkpoints)
    runs = _dashboard_folder("--runs", args.runs)
    data_dir = Path(args.data_dir).expanduser().absolute()
    if data_dir.exists() and not data_dir.is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: not a directory")
    data = _dashboard_data(args.data) if args.data is not None else os.environ.get("SENET_DATA") or None
    app = _dashboard_app()
    flags = _streamlit_settings(app.parent / "streamlit.toml")
    env = dict(os.environ, SENET_CHECKPOINTS=str(checkpoints), SENET_RUNS=str(runs), SENET_DATA_DIR=str(data_dir))
    if data:
        env["SENET_DATA"] = data
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), *flags, "--server.port", str(args.port),
           "--server.address", args.host, "--server.headless", "true"]
    print(f"senet dashboard: {_dashboard_url(args.host, args.port)} serving checkpoints {_folder_note(checkpoints)}, "
          f"runs {_folder_note(runs)}, data {data or 'cifar10 if downloaded, else the bundled sample'}, "
          f"data dir {data_dir} (Ctrl-C stops it)", flush=True)
    return _forwarding_signals(cmd, env)


def _dashboard_url(host: str, port: int) -> str:
    """The address to open: every interface (0.0.0.0, ::) is shown as this machine's name."""
    import socket

    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def _folder_note(path: Path) -> str:
    return str(path) if path.is_dir() else f"{path} (none yet)"


DATA_HELP = "dataset spec: cifar10 | cifar100 | folder:PATH | sample (default: $SENET_DATA or cifar10)"


def build_parser() -> argparse.ArgumentParser:
    invoked = "senet" if Path(sys.argv[0]).name == "senet" else "python -m senet"  # the console script, or not
    parser = OneLineParser(prog=invoked, description="Squeeze-and-Excitation networks on CIFAR-10")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_study(sub)
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a split")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", default=os.environ.get("SENET_DATA", "cifar10"), help=DATA_HELP)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--tta", action="store_true", help="average with the mirrored image (TTA level 1)")
    p.add_argument("--tta-level", type=int, choices=(0, 1, 2), default=None,
                   help="0: none, 1: flip (= --tta), 2: flip and two one-pixel translations (airbench's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--cache-dir", default=None, help="where predictions are cached")
    p = sub.add_parser("ablate", help="accuracy with each SE block's gate switched off or fixed to its mean")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", default=os.environ.get("SENET_DATA", "cifar10"), help=DATA_HELP)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--per-class", type=int, default=None, help="use this many images of each class (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = sub.add_parser("info", help="the model card of a checkpoint or a model")
    p.add_argument("name", nargs="?", help="a model (se_resnet20, torchvision:mobilenet_v3_large, "
                   "timm:seresnet50) or a checkpoint file")
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
    _add_importance(sub)
    _add_profiles(sub)
    _add_robustness(sub)
    _add_import(sub)
    _add_dashboard(sub)
    return parser


def main(argv: list[str] | None = None, train_callbacks: tuple = ()) -> int:
    """Run one command; ``train_callbacks`` are told about every training batch (see :class:`senet.training.Callback`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "data_dir", None) is None and args.command in ("evaluate", "ablate", "export"):
        from .data import DEFAULT_DATA_DIR
        args.data_dir = DEFAULT_DATA_DIR
    handler = {"train": lambda a: cmd_train(a, train_callbacks), "study": cmd_study, "evaluate": cmd_evaluate, "ablate": cmd_ablate, "importance": cmd_importance,
               "profiles": cmd_profiles, "info": cmd_info,
               "excite": cmd_excite, "robustness": cmd_robustness, "export": cmd_export, "import": cmd_import,
               "dashboard": cmd_dashboard}[args.command]
    try:
        return handler(args)
    except UsageError as exc:
        print(f"senet {args.command}: error: {exc}", file=sys.stderr)
        return 2
