"""Studies: a grid of variants x seeds trained with the same data, split and recipe, and what they show.

    STUDY_DIR/study.json                 the plan: variants, seeds, recipe, the settings every run shares
    STUDY_DIR/runs/<variant>-seed<k>/    one normal run directory per (variant, seed)

A variant is a model name with optional model settings, ``se_resnet20`` or ``se_resnet20:se_position=pre``.
:func:`run_study` trains every run that has not finished, in order: a stopped or failed run is resumed from
its ``last.pt``, a finished one is left alone, so a stopped study continues where it stopped. Several
processes may work on one study at once (each claims a run before training it), and under ``torchrun`` all
ranks take the same runs in the same order. :func:`summarize` gives, per variant, the mean accuracy over
seeds with a 95% t-interval, and per pair of variants the seed-paired difference with its interval.
"""
from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..data import DataError
from ..data.fingerprint import FINGERPRINT_KEY, match_cards, recorded_fingerprints, short
from ..files import pid_alive, process_identity, read_json, write_json_atomic
from ..recorded import recorded, scored_split
from .preflight import preflight
from .run_lock import RunBusy
from ..records import RecordError
from .runs import read_config, read_status
from .settings import ConfigError, TrainConfig, config_from_record, fields_by_name, make_config

__all__ = ["Variant", "parse_variant", "plan_study", "run_study", "summarize", "t_interval", "pooled_disagreement",
           "StudyError"]


class StudyError(ValueError):
    """A study that cannot be planned or continued; the message says why in one line."""


@dataclass(frozen=True)
class Variant:
    """A model and the model settings that make this variant (``label`` names its runs)."""

    label: str
    model: str
    settings: dict[str, Any]


MAX_SEEDS = 1000  # seeds per variant: far beyond any study, and a bound before anything is allocated


def parse_variant(text: str) -> Variant:
    """``"se_resnet20:se_position=pre,reduction=8"`` -> Variant; values are parsed as their settings declare."""
    model, _, rest = text.partition(":")
    known = fields_by_name()
    values: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, raw = item.partition("=")
        if not eq or key not in known:
            raise StudyError(f"variant {text!r}: {item!r} is not SETTING=VALUE with a known setting")
        s = known[key].metadata["setting"]
        try:
            values[key] = (raw.lower() in ("1", "true", "yes")) if s.kind is bool else (s.parse or s.kind)(raw)
        except ValueError:
            raise StudyError(f"variant {text!r}: {key}={raw!r} is not a {s.kind.__name__}") from None
    label = text.replace(":", "-").replace(",", "-").replace("=", "")
    return Variant(label, model, values)


def _run_name(variant: Variant, seed: int) -> str:
    return f"{variant.label}-seed{seed}"


def plan_study(study_dir: Path, variants: list[str], seeds: list[int], recipe: str, shared: dict[str, Any]
               ) -> list[tuple[str, TrainConfig]]:
    """Validate the grid, write (or check against) ``study.json``, and return (run name, config) per run."""
    if not 1 <= len(seeds) <= MAX_SEEDS:
        raise StudyError(f"seeds: {len(seeds):,} given; a study trains from 1 to {MAX_SEEDS:,} seeds per variant")
    plan = {"variants": list(variants), "seeds": list(seeds), "recipe": recipe, "shared": shared}
    existing = read_json(study_dir / "study.json")
    if existing is not None and existing != plan:
        raise StudyError(f"{study_dir}: holds a different study (its study.json); continue it with the same "
                         "variants, seeds, recipe and settings, or use a new directory")
    runs = []
    for text in variants:
        variant = parse_variant(text)
        for seed in seeds:
            try:
                config = make_config(variant.model, recipe, **{**shared, **variant.settings, "seed": seed})
                if seed == seeds[0]:  # the data and the batch, once per variant, before any run exists
                    preflight(config)
            except (ConfigError, DataError) as exc:
                raise StudyError(f"variant {text!r}: {exc}") from None
            runs.append((_run_name(variant, seed), config))
    if len({name for name, _ in runs}) != len(runs):
        raise StudyError("two variants or seeds name the same run")
    study_dir.mkdir(parents=True, exist_ok=True)
    if existing is None:
        write_json_atomic(study_dir / "study.json", plan)
    return runs


def _claim(run_dir: Path) -> bool:
    """Take ``run_dir`` for this process (a claim file made exclusively); a dead process's claim is taken over."""
    claim = run_dir / ".claim"
    run_dir.mkdir(parents=True, exist_ok=True)
    mine = process_identity()
    try:
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        holder = read_json(claim) or {}
        if holder == mine or not pid_alive(holder.get("pid"), holder.get("host"), holder.get("pid_start")):
            write_json_atomic(claim, mine)
            return True
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(mine))
    return True


def run_study(study_dir: str | os.PathLike, variants: list[str], seeds: list[int], recipe: str = "fast",
              shared: dict[str, Any] | None = None, progress: bool = False,
              train_one: Callable[..., dict] | None = None) -> dict[str, str]:
    """Train every run of the study that has not finished; returns each run's state. Stops early (and says so)
    when a run is stopped by a signal."""
    from .loop import train

    train_one = train_one or train
    study_dir = Path(study_dir)
    distributed = int(os.environ.get("WORLD_SIZE", 1)) > 1
    states: dict[str, str] = {}
    for name, config in plan_study(study_dir, variants, seeds, recipe, shared or {}):
        run_dir = study_dir / "runs" / name
        state = read_status(run_dir).get("state") if (run_dir / "status.json").is_file() else None
        if state == "finished":
            states[name] = state
            continue
        if not distributed and not _claim(run_dir):
            states[name] = "claimed by another process"
            continue
        resume = (run_dir / "last.pt").is_file() and (run_dir / "config.json").is_file()
        if resume:
            try:
                config = config_from_record(read_config(run_dir), epochs=config.epochs)
            except (RecordError, ConfigError) as exc:
                raise StudyError(f"run {name}: {exc}") from None
        try:
            status = train_one(config, run_dir, resume=resume, progress=progress)
        except RunBusy:  # trained by a process outside this study (a `train --resume` of the run)
            states[name] = "claimed by another process"
            continue
        states[name] = status.get("state", "unknown")
        (run_dir / ".claim").unlink(missing_ok=True)
        if states[name] == "stopped":
            break
    return states


def t_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean of independent values (NaN bounds for one value)."""
    from scipy.stats import t

    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan, math.nan
    half = t.ppf((1 + confidence) / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return mean, mean - half, mean + half


def _finished_runs(study_dir: Path) -> dict[str, dict[int, dict]]:
    """Per variant, per seed: the recorded figures of each finished run's best.pt."""
    from ..checkpoint import load_checkpoint

    plan = read_json(study_dir / "study.json")
    if plan is None:
        raise StudyError(f"{study_dir}: not a study directory (no readable study.json)")
    out: dict[str, dict[int, dict]] = {}
    for text in plan["variants"]:
        variant = parse_variant(text)
        out[text] = {}
        for seed in plan["seeds"]:
            run_dir = study_dir / "runs" / _run_name(variant, seed)
            if read_status(run_dir).get("state") == "finished" and (run_dir / "best.pt").is_file():
                _, meta = load_checkpoint(run_dir / "best.pt")
                out[text][seed] = {"acc": recorded(meta, "acc"), "acc_tta": recorded(meta, "acc_tta"),
                                   "scored_on": scored_split(meta), "params": meta.get("params"), "macs": meta.get("macs"), "run_dir": str(run_dir),
                                   "data": {k: meta.get(k) for k in (FINGERPRINT_KEY, "data_spec", "config")}}
    return out


def summarize(study_dir: str | os.PathLike) -> dict:
    """Per variant: seeds done, each seed's figures, the mean and 95% t-interval of the recorded accuracy (and
    with TTA) on the runs' scored split (``scored_on``: val, or test for a study trained on every training
    image), parameters and multiply-adds; per pair of variants: the mean of the seed-by-seed differences (A - B,
    in accuracy) with its 95% t-interval over the seeds both have finished; a pair whose runs were trained on
    different images (by their data fingerprints) is not compared but listed in ``not_compared``, and ``data``
    says whether all runs share their images and how that was decided."""
    study_dir = Path(study_dir)
    runs = _finished_runs(study_dir)
    splits = {r["scored_on"] for by_seed in runs.values() for r in by_seed.values()}
    if len(splits) > 1:
        raise StudyError(f"{study_dir}: its runs were scored on different splits ({', '.join(sorted(splits))})")
    variants = {}
    for text, by_seed in runs.items():
        row: dict[str, Any] = {"variant": text, "seeds": sorted(by_seed)}
        for key in ("acc", "acc_tta"):
            values = [r[key] for r in by_seed.values() if r[key] is not None]
            row[key] = dict(zip(("mean", "low", "high"), t_interval(values))) if values else None
        first = next(iter(by_seed.values()), {})
        row.update(params=first.get("params"), macs=first.get("macs"),
                   per_seed={seed: {"acc": r["acc"], "acc_tta": r["acc_tta"]}
                             for seed, r in by_seed.items()})
        variants[text] = row
    pairs, not_compared = [], []
    names = list(runs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = sorted(set(runs[a]) & set(runs[b]))
            apart = [f"seed {s}: {m.note}" for s in common
                     for m in [match_cards(runs[a][s]["data"], runs[b][s]["data"])] if m.different]
            if apart:  # a difference between runs on different images would not be SE's (or the variant's)
                not_compared.append({"a": a, "b": b, "reason": "; ".join(apart)})
                continue
            for key in ("acc", "acc_tta"):
                diffs = [runs[a][s][key] - runs[b][s][key] for s in common
                         if runs[a][s][key] is not None and runs[b][s][key] is not None]
                if diffs:
                    mean, low, high = t_interval(diffs)
                    pairs.append({"a": a, "b": b, "metric": key, "seeds": len(diffs), "mean": mean, "low": low,
                                  "high": high})
    return {"study": str(study_dir), "scored_on": splits.pop() if splits else "val",
            "data": _data_identity(runs), "variants": list(variants.values()), "pairs": pairs,
            "not_compared": not_compared,
            "interval": "Student's t, 95%, over seeds (pairs: over the seed-by-seed differences)"}


def _data_identity(runs: dict[str, dict[int, dict]]) -> dict:
    """Whether every finished run of the study was trained and scored on the same images: by their data
    fingerprints (whatever path each read them from), else by their data sources' paths; ``relation``, ``by``
    (``fingerprint`` or ``path``) and a ``note`` in words."""
    cards = [r["data"] for by_seed in runs.values() for r in by_seed.values()]
    if len(cards) < 2:
        return {"relation": "unknown", "by": "", "runs": len(cards), "note": "fewer than two finished runs"}
    matches = [match_cards(cards[0], card) for card in cards[1:]]
    worst = next((m for m in matches if m.different), None) or next((m for m in matches if m.relation == "unknown"),
                                                                     None)
    by = "path" if any(m.by_path for m in matches) else matches[0].by
    if worst is None:
        record = recorded_fingerprints(cards[0]) or {}
        note = (f"all {len(cards)} finished runs trained and scored on the same images, by their data fingerprints ("
                + ", ".join(f"{k} {short(v)}" for k, v in sorted(record.items())) + ")" if by == "fingerprint"
                else f"all {len(cards)} finished runs: " + next(m.note for m in matches if m.by_path))
        return {"relation": "same", "by": by, "runs": len(cards), "note": note}
    return {"relation": worst.relation, "by": worst.by, "runs": len(cards), "note": worst.note}


def pooled_disagreement(study_dir: str | os.PathLike, a: str, b: str):
    """Variants ``a`` and ``b`` on the scored images of every seed both finished, pooled: how many images only one
    of them gets right, and the exact McNemar test of that split (a ``PairedComparison``). Each seed's two runs
    are evaluated on their own scored split (validation, or test; ``senet evaluate``, cached beside the runs)."""
    from ..analysis.compare import PairedComparison, paired_comparison
    from ..analysis.evaluate import evaluate_checkpoint

    study_dir = Path(study_dir)
    runs = _finished_runs(study_dir)
    counts = [0, 0, 0, 0, 0]
    for seed in sorted(set(runs[a]) & set(runs[b])):
        evaluations = []
        for variant in (a, b):
            run_dir = Path(runs[variant][seed]["run_dir"])
            try:
                config = read_config(run_dir)
            except RecordError as exc:
                raise StudyError(str(exc)) from None
            evaluations.append(evaluate_checkpoint(run_dir / "best.pt", config.get("data", "cifar10"),
                                                   runs[variant][seed]["scored_on"],
                                                   config.get("data_dir", "./data"), cache_dir=study_dir / ".cache"))
        if list(evaluations[0].labels) != list(evaluations[1].labels):
            raise StudyError(f"seed {seed}: {a} and {b} were scored on different images")
        t = paired_comparison(evaluations[0].labels, evaluations[0].preds, evaluations[1].preds)
        for i, v in enumerate((t.n, t.both_right, t.only_a, t.only_b, t.both_wrong)):
            counts[i] += v
    if not counts[0]:
        raise StudyError(f"{study_dir}: no seed where both {a} and {b} finished")
    return PairedComparison(*counts)
