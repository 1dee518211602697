"""Compare's measurements made now, each with counts, time left and a Stop (:mod:`._progress`): each checkpoint's
CPU time, SE against plain timed in alternation, accuracy recomputed on a split, and both twins evaluated for the
paired test. Timings and accuracies are kept by the server once complete (evaluations also on disk); a stopped
measurement returns None."""
from __future__ import annotations

from pathlib import Path
from typing import Final, Hashable

from senet import DataError, evaluate_checkpoint
from senet.analysis.compare import LatencyComparison, cpu_latency, interleaved_latency
from senet.analysis.evaluate import Evaluation
from senet.checkpoint import Checkpoint
from senet.data import TensorDataset
from senet.progress import Progress, within
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views import _progress as progress


class Keys:
    """The measurements' names for their Stop and Run again buttons (see _progress)."""

    TIMING: Final = "compare_timing"
    PAIR_TIMING: Final = "compare_pair_timing"
    RECOMPUTING: Final = "compare_recomputing"
    PAIRED: Final = "compare_paired_run"


def _kept() -> dict:
    return progress.server_store("compare measurements")


def _keep(key: Hashable, value) -> None:
    progress.keep("compare measurements", key, value, max_entries=256)


def _input_size(meta: dict) -> tuple:
    return tuple(meta.get("input_size", (3, 32, 32)))


def latencies(rows: list[dict]) -> dict[str, float] | None:
    """Each row's batch-1 CPU time (ms per image) by path, timed once per file; None when stopped."""
    key = {r["path"]: ("latency", r["path"], r["mtime"]) for r in rows}
    missing = [r for r in rows if key[r["path"]] not in _kept()]

    def time_each(report: Progress) -> bool:
        report(0, len(missing))
        for i, r in enumerate(missing, 1):
            model, meta = ui.load_entry(r["path"])
            _keep(key[r["path"]], cpu_latency(model, _input_size(meta)))  # each timing kept once complete
            report(i, len(missing))
        return True

    if missing and progress.run_with_progress(
            Keys.TIMING, tuple(key.values()), "Timing each checkpoint on the CPU (batch 1)", time_each,
            unit="checkpoints", kept=lambda done: f"the {done} timed before the stop are kept" if done else "") is None:
        return None
    return {path: _kept()[k] for path, k in key.items()}


def pair_latency(se: dict, plain: dict) -> LatencyComparison | None:
    """SE's and plain's CPU time measured in alternation, once per pair of files; None when stopped (this pair's
    timing, or the table's: then every timing waits for its Run again)."""
    key = ("pair latency", se["path"], se["mtime"], plain["path"], plain["mtime"])
    if key not in _kept() and progress.held(Keys.TIMING):
        return None
    if key not in _kept():
        def measure(report: Progress) -> LatencyComparison:
            (se_model, meta), (plain_model, _) = ui.load_entry(se["path"]), ui.load_entry(plain["path"])
            return interleaved_latency(se_model, plain_model, _input_size(meta), progress=report)

        lat = progress.run_with_progress(f"{Keys.PAIR_TIMING}:{se['path']}:{plain['path']}", key,
                                         f"Timing {se['name']} and {plain['name']} in alternation", measure,
                                         unit="timings")
        if lat is None:
            return None
        _keep(key, lat)
    return _kept()[key]


def accuracies_now(jobs: list[tuple[dict, str]], spec: str,
                   data_dir: str | Path) -> dict[tuple[str, str], float | None] | None:
    """Accuracy now (no TTA) of each ``(row, split)`` on that split of ``spec``, by (path, split); None for one
    whose classes do not fit the data; one bar over all the images; None when stopped."""
    key = {(r["path"], s): ("accuracy", r["path"], r["mtime"], spec, s, str(data_dir)) for r, s in jobs}
    missing = [(r, s) for r, s in jobs if key[(r["path"], s)] not in _kept()]

    def evaluate_each(report: Progress) -> bool:
        data: dict[tuple[str, str], TensorDataset | None] = {}
        for r, s in missing:
            try:
                data[(r["path"], s)] = ui.load_data(s, r["meta"], spec=spec)
            except DataError:
                data[(r["path"], s)] = None
        total, done = sum(len(d) for d in data.values() if d is not None), 0
        for (path, s), images in data.items():
            acc = None
            if images is not None:
                try:
                    loaded = Checkpoint.from_meta(*ui.load_entry(path))
                    acc = evaluate_checkpoint(path, spec, s, data_dir, loaded=loaded, data=images,
                                              progress=within(report, done, total)).accuracy
                except DataError:
                    pass
                done += len(images)
            _keep(key[(path, s)], acc)
        return True

    if missing and progress.run_with_progress(
            Keys.RECOMPUTING, tuple(key.values()), f"Recomputing accuracy ({len(missing)} checkpoint and split "
            f"pair{'s' if len(missing) > 1 else ''})", evaluate_each, kept=progress.EVALUATIONS_KEPT) is None:
        return None
    return {pair: _kept()[k] for pair, k in key.items()}


def paired_evaluations(se: dict, plain: dict, spec: str, split: str, data_dir: str | Path, tta: bool,
                       data: TensorDataset) -> tuple[Evaluation, Evaluation] | None:
    """Both twins evaluated on the same images (from the disk cache when done before); None when stopped.
    Raises :class:`DataError`, one line."""
    def evaluate_both(report: Progress) -> tuple[Evaluation, Evaluation]:
        return tuple(evaluate_checkpoint(r["path"], spec, split, data_dir, tta=tta, data=data,
                                         loaded=Checkpoint.from_meta(*ui.load_entry(r["path"])),
                                         progress=within(report, i * len(data), 2 * len(data)))
                     for i, r in enumerate((se, plain)))

    work = (se["path"], se["mtime"], plain["path"], plain["mtime"], spec, split, str(data_dir), tta)
    return progress.run_with_progress(
        f"{Keys.PAIRED}:{se['path']}:{plain['path']}", work,
        f"Paired test: evaluating {se['name']} and {plain['name']} on {len(data):,} {split} images"
        + (" with flip TTA" if tta else ""), evaluate_both, unit="image evaluations", kept=progress.EVALUATIONS_KEPT)
