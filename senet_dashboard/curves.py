"""Training curves from a run's ``metrics.jsonl`` or a checkpoint's ``history``.

:class:`MetricsTail` follows a growing ``metrics.jsonl`` by byte offset (and
starts over when a resume rewrites the file); :func:`curves_from_records`
turns records into plain columns; :func:`smooth` is TensorBoard's
de-biased exponential moving average; :func:`progress` gives epoch, step,
throughput and ETA for a progress bar.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from senet.training.runs import read_metrics

__all__ = ["MetricsTail", "Curves", "curves_from_records", "curves_from_history", "curves_from_checkpoint",
           "resume_notes", "smooth", "progress", "format_duration"]


class MetricsTail:
    """Incremental reader of one ``metrics.jsonl``: :meth:`read` returns all records so far."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.records: list[dict] = []
        self._offset = 0
        self._inode: int | None = None

    def read(self) -> list[dict]:
        try:
            st = self.path.stat()
        except OSError:
            self.records, self._offset, self._inode = [], 0, None
            return self.records
        if st.st_ino != self._inode or st.st_size < self._offset:  # replaced (resume truncates) or shrunk
            self.records, self._offset, self._inode = [], 0, st.st_ino
        if st.st_size > self._offset:
            new, self._offset = read_metrics(self.path, self._offset)
            self.records.extend(new)
        return self.records


@dataclass
class Curves:
    """Columns for plotting: per logged step and per finished epoch."""

    step: list[int] = field(default_factory=list)
    step_epoch: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    images_per_s: list[float] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)  # a run trained on every image scores itself on test
    test_acc: list[float] = field(default_factory=list)
    epoch_lr: list[float] = field(default_factory=list)
    elapsed_s: list[float] = field(default_factory=list)
    resumes: list[int] = field(default_factory=list)  # steps at which the run was resumed
    # per resume: {"step", "epoch", "epochs_before", "epochs"} (the epochs are None in records older than them)
    resume_info: list[dict] = field(default_factory=list)
    # the learning rate of each step, counted from 0 (the step it was used in): recorded per step (``lrs``), one
    # per step record in older runs, or computed from a checkpoint's recorded recipe (``lr_computed``)
    lr_step: list[int] = field(default_factory=list)
    lr_value: list[float] = field(default_factory=list)
    lr_computed: bool = False
    steps_per_epoch: int | None = None  # known for a checkpoint's computed schedule: its x axis is then in epochs

    @property
    def points(self) -> int:
        return len(self.step) + len(self.epoch)

    @property
    def scored_on(self) -> str:
        """The split the run scored its epochs on: ``test`` for a run trained on every image, else ``val``."""
        return "test" if any(math.isfinite(v) for v in self.test_acc + self.test_loss) else "val"

    def scored(self, what: str) -> list[float]:
        """The per-epoch ``acc`` or ``loss`` on the scored split."""
        return getattr(self, f"{self.scored_on}_{what}")


def _num(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def curves_from_records(records: list[dict]) -> Curves:
    """Split ``metrics.jsonl`` records into step and epoch columns (unknown types are ignored)."""
    c = Curves()
    for r in records:
        kind = r.get("type")
        if kind == "step":
            c.step.append(int(r.get("step", 0)))
            c.step_epoch.append(_num(r.get("epoch")))
            c.step_loss.append(_num(r.get("loss")))
            c.lr.append(_num(r.get("lr")))
            c.images_per_s.append(_num(r.get("images_per_s")))
            _add_lrs(c, r)
        elif kind == "epoch":
            _add_epoch(c, r)
        elif kind == "resume":
            c.resumes.append(int(r.get("step", 0)))
            c.resume_info.append({"step": int(r.get("step", 0)), "epoch": r.get("epoch"),
                                  "epochs_before": r.get("epochs_before"), "epochs": r.get("epochs"),
                                  "lr": r.get("lr"), "lr_before": r.get("lr_before")})
    return c


def _add_lrs(c: Curves, record: dict) -> None:
    """The per-step learning rates of a step record (``lrs``: steps ``step - len(lrs)`` .. ``step - 1`` from 0);
    an older record has only the last step's ``lr``."""
    step = int(record.get("step", 0))
    lrs = record.get("lrs")
    values = lrs if isinstance(lrs, list) and lrs else [record.get("lr")]
    first = step - len(values)
    for i, value in enumerate(values):
        c.lr_step.append(first + i)
        c.lr_value.append(_num(value))


def resume_notes(c: Curves) -> list[str]:
    """One sentence per resume of the run: where it resumed, and whether the number of epochs (and with it the
    learning-rate schedule) changed there, with the learning rate it gave against the one the old total gave."""
    notes = []
    for r in c.resume_info:
        done = r.get("epoch")
        where = f"Resumed at step {r['step']:,}" + (f" ({done} epoch{'s' if done != 1 else ''} done)"
                                                   if isinstance(done, int) else "")
        before, after = r.get("epochs_before"), r.get("epochs")
        if not (before and after and before != after):
            notes.append(f"{where}; the schedule went on unchanged.")
            continue
        verb = "stretched over" if after > before else "squeezed into"
        new, old = r.get("lr"), r.get("lr_before")
        rates = (f"; at that step the learning rate is {new:.4g} instead of the {old:.4g} the {before}-epoch "
                 "schedule gives" if isinstance(new, (int, float)) and isinstance(old, (int, float))
                 and abs(new - old) > 1e-12 else "")
        notes.append(f"{where} with {after} epochs in total instead of {before}: from there the learning-rate "
                     f"schedule is {verb} {after} epochs{rates}.")
    return notes


def _add_epoch(c: Curves, row: dict) -> None:
    c.epoch.append(int(row.get("epoch", len(c.epoch) + 1)))
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "elapsed_s"):
        getattr(c, name).append(_num(row.get(name)))
    c.epoch_lr.append(_num(row.get("lr")))


def curves_from_history(history: list[dict] | None) -> Curves:
    """Epoch columns from a checkpoint's ``history`` (a list of epoch rows)."""
    c = Curves()
    for row in history or []:
        if isinstance(row, dict):
            _add_epoch(c, row)
    return c


def curves_from_checkpoint(meta: dict) -> Curves:
    """Epoch columns from a checkpoint's ``history``, and the learning rate of every step computed from its
    recorded recipe (``config``, its ``epochs_plan`` when resumed with other epochs), from the warm-up's first
    step on. Without the number of training images the schedule is computed at 100 steps per epoch: on an epoch
    axis the same curve, to within a step of warm-up rounding."""
    from senet.data import steps_per_epoch
    from senet.training.optim import planned_lrs

    c = curves_from_history(meta.get("history"))
    config = meta.get("config") or {}
    try:
        images, batch = meta.get("train_images"), config.get("batch_size")
        spe = steps_per_epoch(int(images), int(batch)) if images and batch else 100
        lrs = planned_lrs(config, spe, meta.get("epochs_plan") or None)
    except (TypeError, ValueError, KeyError):  # no recipe recorded (imported models): the recorded epochs only
        return c
    c.lr_step, c.lr_value, c.lr_computed, c.steps_per_epoch = list(range(len(lrs))), lrs, True, spe
    return c


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: a de-biased exponential moving average; NaNs pass through.

    ``weight`` in [0, 1): 0 returns the values unchanged.
    """
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight!r}")
    out, last, count = [], 0.0, 0
    for v in values:
        if math.isnan(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        count += 1
        out.append(last / (1 - weight ** count))
    return out


def format_duration(seconds: float | None) -> str:
    """``3725`` -> ``'1h 02m'``, ``125`` -> ``'2m 05s'``, ``9`` -> ``'9s'``; None -> ``'–'``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def epochs_done(status: dict, curves: Curves) -> int:
    """Completed epochs: the one epoch count the dashboard shows (from status.json, else the epoch records)."""
    recorded = status.get("epoch")
    return int(recorded) if isinstance(recorded, (int, float)) else len(curves.epoch)


def last_smoothed(values: list[float], weight: float) -> float | None:
    """The last point of the smoothed curve (what the chart's smoothed line ends at); None without values."""
    finite = [v for v in smooth(values, weight) if not math.isnan(v)]
    return finite[-1] if finite else None


def progress(status: dict, curves: Curves, now: float | None = None) -> dict:
    """Figures for a progress bar: ``fraction``, ``epoch`` (completed), ``epochs``, ``step``, ``total_steps``,
    ``images_per_s`` (latest), ``eta_s`` (remaining steps at the recent step rate) and ``text``."""
    now = time.time() if now is None else now
    total = status.get("total_steps") or 0
    step = status.get("step") or (curves.step[-1] if curves.step else 0)
    epochs = status.get("epochs")
    done = epochs_done(status, curves)
    active = status.get("state") in ("running", "starting")
    # status.json has the current speed from the first step on; step records only every log_every steps
    ips = (status.get("images_per_s") if active else None) or (curves.images_per_s[-1] if curves.images_per_s
                                                               else status.get("images_per_s"))
    eta = None
    if total and step and status.get("state") in ("running", "starting"):
        elapsed = status.get("elapsed_s")
        if elapsed:
            eta = (total - step) * elapsed / step
            # elapsed_s is written at the last log; count the time since then as spent
            updated = status.get("updated_at")
            if updated:
                eta = max(0.0, eta - max(0.0, now - updated))
    fraction = min(1.0, step / total) if total else 0.0
    if status.get("state") == "finished":
        fraction = 1.0
    parts = []
    if epochs:
        parts.append(f"{done}/{epochs} epochs done")
    if total:
        parts.append(f"step {step}/{total}")
    if ips:
        parts.append(f"{ips:,.0f} images/s")
    if eta is not None:
        parts.append(f"ETA {format_duration(eta)}")
    return {"fraction": fraction, "epoch": done, "epochs": epochs, "step": step, "total_steps": total,
            "images_per_s": ips, "eta_s": eta, "text": " · ".join(parts) or status.get("state", "")}
