"""Figures for the model card (checkpoints/README.md): one Markdown row per shipped checkpoint.

Accuracy, parameters, SE parameters and multiply-adds come from the checkpoint's
metadata (recomputed from the model to check them); CPU latency per image is
measured here (batch 1, median of repeated forward passes, torch threads as set).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/model_card.py checkpoints/*.pt

With ``--gates DATA`` (e.g. ``folder:/work/data/cifar10-jpeg``) it also prints, per SE block, the gate's
mean, its std across images and its std across channels, over 100 validation images per class of the
checkpoint's own split: the model card's gate table; then the largest groups of channels that split the
classes cleanly in two.

With ``--paired DATA`` it compares the first two checkpoints (SE model, then its plain twin) on the same
validation images, with and without flip TTA: the images only one of them gets right, the accuracy
difference with its 95% interval, and the exact McNemar p-value (predictions cached as the CLI's are).
"""
from __future__ import annotations

from pathlib import Path

import argparse
import sys

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import senet  # noqa: E402
from senet.analysis.compare import cpu_latency  # noqa: E402
from senet.checkpoint import Checkpoint  # noqa: E402


def row(path: str, repeats: int) -> str:
    """A Markdown table row for one checkpoint."""
    model, meta = senet.load_checkpoint(path)
    info = senet.model_info(model)
    assert (info["params"], info["macs"]) == (meta["params"], meta["macs"]), f"{path}: metadata disagrees with the model"
    latency = cpu_latency(model.to(memory_format=torch.channels_last), repeats=repeats)
    tta = meta.get("val_acc_tta")
    return (f"| `{path}` | {meta['model']} | {meta['val_acc']:.2%} | {tta:.2%} | {info['params']:,} | {info['se_params']:,} "
            f"| {info['macs'] / 1e6:.1f} M | {latency:.2f} ms | {meta['epochs']} | {meta['wall_time_s'] / 60:.0f} min |"
            if tta is not None else f"| `{path}` | {meta['model']} | {meta['val_acc']:.2%} | - | {info['params']:,} | "
            f"{info['se_params']:,} | {info['macs'] / 1e6:.1f} M | {latency:.2f} ms | {meta['epochs']} | "
            f"{meta['wall_time_s'] / 60:.0f} min |")


def gate_table(path: str, data_spec: str, data_dir: str, per_class: int) -> str:
    """A Markdown table of gate statistics per SE block of one checkpoint, over its validation split."""
    from senet.data import load_split
    from senet.analysis.profiles import class_profiles

    model, meta = senet.load_checkpoint(path)
    val = load_split(data_spec, "val", data_dir, meta["val_size"], meta["split_seed"])
    p = class_profiles(Checkpoint.from_meta(model, meta), val, per_class=per_class)
    lines = [f"`{path}`, {int(p.counts.sum())} validation images:", "",
             "| block | mean gate | std across images | std across channels |", "|---|---:|---:|---:|"]
    for block, overall in p.overall.items():
        flag = " (constant)" if block in p.constant_blocks() else ""
        lines.append(f"| {block}{flag} | {overall.mean():.3f} | {p.spread[block]:.3f} | {overall.std():.3f} |")
    lines += ["", "Channels that split the classes cleanly in two (`ClassProfiles.class_splits`), largest groups:", "",
              "| block | channels that split | open for | closed for | channels | mean jump |",
              "|---|---:|---|---|---:|---:|"]
    for block in p.profiles:
        splits = p.class_splits(block)
        total = sum(len(r["channels"]) for r in splits)
        for i, r in enumerate(splits[:3]):
            lines.append(f"| {block if i == 0 else ''} | {total if i == 0 else ''} | {', '.join(r['open'])} | "
                         f"{', '.join(r['closed'])} | {len(r['channels'])} | {r['jump']:.2f} |")
        if not splits:
            lines.append(f"| {block} | 0 | | | | |")
    return "\n".join(lines)


def paired_lines(first: str, second: str, data_spec: str, data_dir: str) -> list[str]:
    """The paired test of two checkpoints on their shared validation split, without and with flip TTA."""
    from senet.analysis.compare import paired_comparison
    from senet.analysis.evaluate import evaluate_checkpoint

    lines = [f"`{first}` (A) against `{second}` (B), same validation images:", "",
             "| TTA | n | both right | only A right | only B right | both wrong | A - B | 95% CI | McNemar p |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for tta in (False, True):
        a, b = (evaluate_checkpoint(p, data_spec, "val", data_dir, tta=tta) for p in (first, second))
        if not (np.array_equal(a.indices, b.indices) and np.array_equal(a.labels, b.labels)):
            raise SystemExit(f"{first} and {second} were validated on different images; no paired test")
        t = paired_comparison(a.labels, a.preds, b.preds)
        low, high = t.difference_ci95
        lines.append(f"| {'flip' if tta else 'none'} | {t.n:,} | {t.both_right:,} | {t.only_a} | {t.only_b} | "
                     f"{t.both_wrong} | {t.difference * 100:+.2f} pts | {low * 100:+.2f} to {high * 100:+.2f} | "
                     f"{t.p_value:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--gates", metavar="DATA", help="also print the gate statistics over this data's val split")
    parser.add_argument("--paired", metavar="DATA", help="also the paired test of the first two checkpoints")
    parser.add_argument("--data-dir", default="data", help="where dataset caches live (default ./data)")
    parser.add_argument("--per-class", type=int, default=100, help="validation images per class for --gates")
    args = parser.parse_args()
    if args.paired and len(args.checkpoints) < 2:
        parser.error("--paired needs two checkpoints: the SE model, then its plain twin")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print("| checkpoint | model | val acc | val acc (flip TTA) | parameters | SE parameters | multiply-adds "
          "| CPU latency / image | epochs | training time |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in args.checkpoints:
        print(row(path, args.repeats), flush=True)
    if args.gates:
        for path in args.checkpoints:
            if senet.load_checkpoint(path)[1].get("se_params"):
                print(f"\n{gate_table(path, args.gates, args.data_dir, args.per_class)}", flush=True)
    if args.paired:
        print("\n" + "\n".join(paired_lines(args.checkpoints[0], args.checkpoints[1], args.paired, args.data_dir)))


if __name__ == "__main__":
    main()
