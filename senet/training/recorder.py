"""The recorder: everything a training run writes into its run directory, in one place.

``status.json`` (state, progress, speed), ``config.json``, ``metrics.jsonl`` (step and epoch records) and
the checkpoints ``last.pt`` / ``best.pt``. A recorder on a rank other than 0 writes nothing, so the loop
calls it unconditionally.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from ..checkpoint import save_checkpoint
from ..files import process_identity
from .optim import schedule_factor
from .runs import MetricsWriter, read_json, truncate_metrics, write_json_atomic, write_status
from .settings import TrainConfig, config_record

__all__ = ["Recorder"]

STATUS_EVERY_S = 2.0  # between log records, status.json still says how fast the run goes this often


class Recorder:
    """Writes the run directory of one training run; silent unless ``active`` (rank 0)."""

    def __init__(self, run_dir: Path, config: TrainConfig, active: bool,
                 on_log: Callable[[dict], None] | None = None) -> None:
        self.run_dir, self.config, self.active, self.on_log = run_dir, config, active, on_log
        self.metrics: MetricsWriter | None = None
        self._window_t, self._window_n, self._status_t = time.time(), 0, 0.0
        self._lrs: list[float] = []  # the learning rate of every step since the last step record

    def status(self, drop: tuple[str, ...] = (), **fields: Any) -> dict:
        return write_status(self.run_dir, drop=drop, **fields) if self.active else {"state": fields.get("state")}

    def starting(self, resume: bool) -> None:
        """Status ``starting`` (keeping the first start time on resume, dropping an earlier stop's reason); a new
        run's ``config.json``."""
        if not self.active:
            return
        now = time.time()
        started = (read_json(self.run_dir / "status.json") or {}).get("started_at", now) if resume else now
        self.status(state="starting", **process_identity(), started_at=started, error=None, drop=("stopped_by",))
        if not resume:
            write_json_atomic(self.run_dir / "config.json", config_record(self.config))

    def begin(self, state: dict, resume: bool, total_steps: int, steps_per_epoch: int, device: str,
              world_size: int) -> None:
        """Open ``metrics.jsonl`` (on resume: cut back to the checkpoint's step, then a resume marker that says
        whether the number of epochs, and with it the learning-rate schedule, changed; ``config.json`` then
        records the new total and where it changed, ``epochs_plan``)."""
        if not self.active:
            return
        path = self.run_dir / "metrics.jsonl"
        if resume or path.exists():  # a fresh start in a used directory (a study's run killed before last.pt)
            truncate_metrics(path, state["global_step"] if resume else 0)
        self.metrics = MetricsWriter(path)
        if resume:
            plan = state.get("epochs_plan") or []
            changed = len(plan) > 1 and plan[-1]["step"] == state["global_step"]
            before = plan[-2]["epochs"] if changed else self.config.epochs
            c, step = self.config, state["global_step"]
            self.metrics.write({"type": "resume", "step": step, "epoch": state["epoch"], "epochs": c.epochs,
                                "epochs_before": before, "time": time.time(),
                                "lr": c.lr * schedule_factor(c, step, steps_per_epoch),  # from this step on
                                "lr_before": c.lr * schedule_factor(c, step, steps_per_epoch, before)})
            if changed:
                write_json_atomic(self.run_dir / "config.json", dict(config_record(self.config), epochs_plan=plan))
        best = state["best_val_acc"]
        self.status(state="running", epoch=state["epoch"], epochs=self.config.epochs, step=state["global_step"],
                    total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                    best_val_acc=best if best >= 0 else None, device=device, world_size=world_size)

    def new_epoch(self) -> None:
        self._window_t, self._window_n = time.time(), 0

    def step(self, state: dict, images: int, lr: float, steps_per_epoch: int, elapsed_s: float) -> None:
        """After each optimiser step: a step record every ``log_every`` steps and at the end of the epoch;
        between them, ``status.json`` keeps the speed current (from the first step on)."""
        self._window_n += images
        if not self.active:
            return
        self._lrs.append(lr)
        now = time.time()
        speed = self._window_n / max(now - self._window_t, 1e-9)
        logged = state["global_step"] % self.config.log_every == 0 or state["step_in_epoch"] == steps_per_epoch
        if logged:
            self._write_step(state, steps_per_epoch, now, speed)
        if logged or now - self._status_t >= STATUS_EVERY_S:
            self.status(state="running", epoch=state["epoch"], step=state["global_step"], images_per_s=speed,
                        loss_ema=state["loss_ema"], elapsed_s=elapsed_s)
            self._status_t = now

    def flush_steps(self, state: dict, steps_per_epoch: int) -> None:
        """A step record for the steps since the last one (a stop between two records), so none goes unrecorded."""
        if self.active and self._lrs:
            now = time.time()
            self._write_step(state, steps_per_epoch, now, self._window_n / max(now - self._window_t, 1e-9))

    def _write_step(self, state: dict, steps_per_epoch: int, now: float, speed: float) -> None:
        """One step record. ``lrs`` holds the learning rate of every step since the record before (the first of
        them is step ``step - len(lrs)``, counted from 0), so the schedule can be drawn per step from its start;
        ``lr`` is the last of them."""
        record = {"type": "step", "step": state["global_step"],
                  "epoch": state["epoch"] + state["step_in_epoch"] / steps_per_epoch, "loss": state["loss_ema"],
                  "lr": self._lrs[-1], "lrs": self._lrs, "images_per_s": speed, "time": now}
        self.metrics.write(record)
        if self.on_log:
            self.on_log(record)
        self._window_t, self._window_n, self._lrs = now, 0, []

    def epoch(self, row: dict, state: dict) -> None:
        if self.active:
            self.metrics.write({"type": "epoch", "step": state["global_step"], "time": time.time(), **row})

    def save(self, name: str, model, state: dict, classes: list[str], facts: dict, acc: float | None,
             acc_tta: float | None = None, resume_state: dict | None = None) -> None:
        """Write checkpoint ``name`` with its accuracy on the scored split (``facts["scored_on"]``: ``val_acc`` or
        ``test_acc``); ``resume_state`` (optimiser, loop counters, ...) makes it one to resume from."""
        if not self.active:
            return
        c = self.config
        extra = resume_state
        save_checkpoint(self.run_dir / name, model, model_name=c.model,
                        model_options=dict(c.model_options(), num_classes=len(classes)), classes=classes,
                        extra_state=extra, config=asdict(c), recipe=c.recipe, epochs=state["epoch"],
                        history=state["history"], tta_level=c.tta_level,
                        split_seed=c.split_seed, dataset=c.dataset_name or c.data, data_spec=c.data,
                        wall_time_s=state["elapsed_s"], run_dir=str(self.run_dir),
                        epochs_plan=state.get("epochs_plan") or [], **facts,
                        **{f"{facts['scored_on']}_acc": acc, f"{facts['scored_on']}_acc_tta": acc_tta})

    def end(self, state: dict, stopped_by: str | None) -> dict:
        """The final status: ``stopped`` (by a signal) or ``finished``."""
        fields = dict(epoch=state["epoch"], step=state["global_step"], error=None, elapsed_s=state["elapsed_s"])
        if stopped_by is not None:
            return self.status(state="stopped", stopped_by=stopped_by, **fields)
        return self.status(state="finished", drop=("stopped_by",), **fields)

    def failed(self, exc: BaseException) -> None:
        if not self.active:
            return
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        try:
            self.status(state="failed", error=f"{type(exc).__name__}: {message}"[:500])
        except OSError:
            print(f"senet: could not write status to {self.run_dir}: {message}", file=sys.stderr)

    def close(self) -> None:
        if self.metrics:
            self.metrics.close()
