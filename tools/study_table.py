"""Print a study's summary as the Markdown table STUDIES.md shows: per variant the mean accuracy on the scored split
with its 95% interval over seeds (with and without TTA), and the seed-paired difference to a reference variant.

    python tools/study_table.py STUDY_DIR [--reference se_resnet20]

The figures come from ``senet.training.study.summarize`` (the same as ``senet study --summary DIR --json``);
nothing is computed here but the layout and the sign of each difference (variant minus reference).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from senet.training.study import summarize  # noqa: E402


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _interval(cell: dict | None) -> str:
    if not cell or cell.get("mean") is None:
        return "–"
    if not _finite(cell.get("low")):  # one seed: no interval (the summary's NaN, or None from JSON)
        return f"{100 * cell['mean']:.2f}% (one seed)"
    return f"{100 * cell['mean']:.2f}% [{100 * cell['low']:.2f}, {100 * cell['high']:.2f}]"


def _difference(pairs: list[dict], variant: str, reference: str, metric: str) -> str:
    for p in pairs:
        if p["metric"] != metric or {p["a"], p["b"]} != {variant, reference}:
            continue
        sign = 1 if p["a"] == variant else -1  # variant minus reference
        mean = round(100 * sign * p["mean"], 2) / 100 + 0.0  # no "-0.00"
        if not _finite(p.get("low")):
            return f"{100 * mean:+.2f} pts (one seed)"
        low, high = sorted((sign * p["low"], sign * p["high"]))
        return f"{100 * mean:+.2f} pts [{100 * low:+.2f}, {100 * high:+.2f}] ({p['seeds']} seed{'s' if p['seeds'] != 1 else ''})"
    return "–"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study_dir")
    ap.add_argument("--reference", help="the variant differences are taken against (default: the first)")
    args = ap.parse_args()
    summary = summarize(args.study_dir)
    variants = summary["variants"]
    reference = args.reference or variants[0]["variant"]
    split = {"val": "val", "test": "test"}[summary.get("scored_on", "val")]
    print(f"| variant | seeds | {split} acc [95% interval] | with TTA | − {reference} | − {reference}, TTA |")
    print("|---|---:|---:|---:|---:|---:|")
    for v in variants:
        name = v["variant"]
        same = name == reference
        print(f"| `{name}` | {len(v['seeds'])} | {_interval(v['acc'])} | {_interval(v['acc_tta'])} | "
              f"{'(reference)' if same else _difference(summary['pairs'], name, reference, 'acc')} | "
              f"{'' if same else _difference(summary['pairs'], name, reference, 'acc_tta')} |")
    print(f"\nIntervals: {summary['interval']}.")


if __name__ == "__main__":
    main()
