"""The training loop: forward, backward, step, schedule, validate -- resumable, and data-parallel under torchrun.

A run writes its directory as it goes (through :class:`~senet.training.recorder.Recorder`), so another
process can follow it live. The loop is deliberately plain (airbench's style): data held in memory as
tensors, augmentation on whole batches, Nesterov SGD, a per-step learning-rate schedule. Under ``torchrun``
the same loop runs one process per device with DistributedDataParallel; only rank 0 writes.

Learning rate and batch size are always *global*: ``batch_size`` images per optimiser step summed over all
processes, and ``lr`` applies to the mean loss over that global batch.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn

from ..checkpoint import read_checkpoint
from ..data import (CIFAR_MEAN, CIFAR_STD, DataError, TensorDataset, limit_split, load_split, normalize, parse_spec,
                    steps_per_epoch, train_batches)
from ..data.fingerprint import split_fingerprints
from ..recorded import recorded, scored_split_for
from ..models import create_model, model_info, se_blocks
from ..analysis.runner import run_over_split
from .gate_history import choose_probe, record_gates
from .distributed import Dist, StopFlag, hardware, mixed_precision_dtype, pick_device, wrap_for_training
from .preflight import no_test_split
from .run_lock import run_lock
from .optim import Lookahead, make_optimizer, schedule_factor, set_lr
from .recorder import Recorder
from .settings import TrainConfig, check_batch_size, check_world_size

__all__ = ["train", "Callback", "Trainee", "prepare", "validate"]


class Callback(Protocol):
    """Something told about every training batch (tests trace the data order with one)."""

    def on_batch(self, epoch: int, indices: torch.Tensor) -> None: ...


@dataclass
class Trainee:
    """What the loop works on: the data, the model and its wrappers, the optimiser, and the loop's counters."""

    config: TrainConfig
    device: torch.device
    dist: Dist
    train_set: TensorDataset
    eval_set: TensorDataset  # the split the run scores itself on: val, or test when nothing is held out
    model: nn.Module
    net: nn.Module
    ddp: nn.parallel.DistributedDataParallel | None
    optimizer: torch.optim.Optimizer
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    state: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    lookahead: Lookahead | None = None

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(len(self.train_set), self.config.batch_size)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    def lr_factor(self) -> float:
        return schedule_factor(self.config, self.state["global_step"], self.steps_per_epoch)

    def frozen(self) -> list[nn.Parameter]:
        """Parameters the recipe holds still this epoch (AirNet's whitening bias after ``whiten_bias_epochs``)."""
        c, whiten = self.config, getattr(self.model, "whiten", None)
        if c.whiten_bias_epochs and whiten is not None and self.state["epoch"] >= c.whiten_bias_epochs:
            return [whiten.bias]
        return []

    def resume_state(self) -> dict[str, Any]:
        """What ``last.pt`` needs so that a resumed run continues exactly."""
        out = {"optimizer": self.optimizer.state_dict(), "train_state": dict(self.state),
               "rng_state": torch.get_rng_state()}
        if self.lookahead is not None:
            out["lookahead"] = self.lookahead.slow
        return out


def train(config: TrainConfig, run_dir: str | os.PathLike, resume: bool = False, progress: bool = True,
          on_log: Callable[[dict], None] | None = None, callbacks: tuple[Callback, ...] = ()) -> dict:
    """Train ``config`` into ``run_dir`` (created by the caller); returns the final status.

    With ``resume`` the run continues from ``run_dir/last.pt`` (model, optimiser, epoch, step and counters;
    the data order is a function of the seed and epoch, so a resumed run matches an uninterrupted one).
    """
    run_dir = Path(run_dir)
    dist = Dist()
    check_world_size(config.batch_size, dist.world_size)
    device = pick_device(config.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init(device)
    config.world_size = dist.world_size
    with run_lock(run_dir) if dist.is_main else contextlib.nullcontext():  # RunBusy: another process trains it
        return _train_locked(config, run_dir, resume, progress, on_log, callbacks, device, dist)


def _train_locked(config: TrainConfig, run_dir: Path, resume: bool, progress: bool,
                  on_log: Callable[[dict], None] | None, callbacks: tuple[Callback, ...], device: torch.device,
                  dist: Dist) -> dict:
    """:func:`train`'s body, run while this process holds the run's lock."""
    if resume and not (run_dir / "last.pt").is_file():
        resume = False  # killed before its first checkpoint: the recorded config starts again from step 0
    recorder = Recorder(run_dir, config, active=dist.is_main, on_log=on_log)
    stop = StopFlag()
    stop.install()
    try:
        recorder.starting(resume)
        t = prepare(config, run_dir, resume, device, dist)
        recorder.begin(t.state, resume, t.total_steps, t.steps_per_epoch, str(device), dist.world_size)
        bar = progress_bar(t) if dist.is_main and progress else None
        stopped = False
        while t.state["epoch"] < config.epochs and not stopped:
            stopped = train_epoch(t, recorder, stop, callbacks, bar)
            if not stopped:
                end_epoch(t, recorder)
        if bar:
            bar.close()
        if stopped:
            recorder.flush_steps(t.state, t.steps_per_epoch)  # the steps since the last record, before last.pt
            history = t.state["history"]
            recorder.save("last.pt", t.model, t.state, t.train_set.classes, t.facts,
                          recorded(history[-1]) if history else None, resume_state=t.resume_state())
        status = recorder.end(t.state, stop.signal_name if stopped else None)
        dist.barrier()
        return status
    except BaseException as exc:
        recorder.failed(exc)
        raise
    finally:
        recorder.close()
        stop.restore()
        dist.close()


def train_epoch(t: Trainee, recorder: Recorder, stop: StopFlag, callbacks: tuple[Callback, ...], bar) -> bool:
    """Train until the end of the epoch or a stop request (then True); the counters in ``t.state`` advance."""
    c, state = t.config, t.state
    epoch, t0 = state["epoch"], time.time()
    criterion = nn.CrossEntropyLoss(label_smoothing=c.label_smoothing)
    chunk = c.batch_size if t.device.type == "cuda" else c.micro_batch
    recorder.new_epoch()
    batches = train_batches(t.train_set, c.batch_size, epoch, c.seed, c.augment(), t.dist.rank, t.dist.world_size,
                            state["step_in_epoch"], t.device)
    for x, y, idx in batches:
        for callback in callbacks:
            callback.on_batch(epoch, idx)
        set_lr(t.optimizer, t.lr_factor())
        if t.device.type != "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        loss, correct = optimizer_step(t, x, y, criterion, chunk)
        loss, correct, n = t.dist.sum([loss, correct, len(y)], t.device)
        sums = state["epoch_sums"]
        state["epoch_sums"] = [sums[0] + loss, sums[1] + correct, sums[2] + n]
        ema = state["loss_ema"]
        state["loss_ema"] = loss / n if ema is None else 0.9 * ema + 0.1 * loss / n
        state["global_step"] += 1
        state["step_in_epoch"] += 1
        if t.lookahead is not None:
            t.lookahead.after_step(t.model, state["global_step"], t.total_steps)
        if bar:
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{state['loss_ema']:.3f}")
        recorder.step(state, n, t.optimizer.param_groups[0]["lr"], t.steps_per_epoch,
                      state["elapsed_s"] + time.time() - t0)
        if t.dist.any(stop.requested, t.device):
            state["elapsed_s"] += time.time() - t0
            return True
    state["elapsed_s"] += time.time() - t0
    return False


def end_epoch(t: Trainee, recorder: Recorder) -> None:
    """Score the epoch on the run's split, record it and the probe gates, and save ``last.pt`` and ``best.pt``
    (both with the accuracy at the recipe's TTA level). With a validation holdout ``best.pt`` is the best epoch
    so far; a run scored on the test split selects nothing on it, so its ``best.pt`` is always the last epoch."""
    state, split = t.state, t.eval_set.split
    loss_sum, correct, seen = state["epoch_sums"]
    eval_loss, eval_acc = validate(t)
    row = {"epoch": state["epoch"] + 1, "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
           f"{split}_loss": eval_loss, f"{split}_acc": eval_acc, "lr": t.optimizer.param_groups[0]["lr"],
           "elapsed_s": state["elapsed_s"]}
    state.update(epoch=state["epoch"] + 1, step_in_epoch=0, epoch_sums=[0.0, 0.0, 0.0])
    state["history"] = state["history"] + [row]
    improved = split == "test" or eval_acc > state["best_val_acc"]
    if improved and split == "val":
        state["best_val_acc"] = eval_acc
    acc_tta = None
    if (state["epoch"] == t.config.epochs or improved) and t.config.tta_level:  # best.pt, last.pt: both figures
        acc_tta = row[f"{split}_acc_tta"] = validate(t, tta=t.config.tta_level)[1]
    recorder.epoch(row, state)
    if t.dist.is_main and t.config.probe_per_class and se_blocks(t.model):
        record_gates(recorder.run_dir, t.model, t.eval_set, choose_probe(t.eval_set, t.config.probe_per_class),
                     state["epoch"])
    recorder.save("last.pt", t.model, state, t.train_set.classes, t.facts, eval_acc, acc_tta,
                  resume_state=t.resume_state())
    if improved:
        recorder.save("best.pt", t.model, state, t.train_set.classes, t.facts, eval_acc, acc_tta)
    scored = {"best_val_acc": state["best_val_acc"]} if split == "val" else {"test_acc": eval_acc}
    recorder.status(state="running", epoch=state["epoch"], step=state["global_step"], elapsed_s=state["elapsed_s"],
                    **scored)
    t.dist.barrier()


def optimizer_step(t: Trainee, x: torch.Tensor, y: torch.Tensor, criterion: Callable,
                   chunk: int) -> tuple[float, float]:
    """One SGD step on the batch (x, y), in micro-batches of ``chunk`` whose gradients add up to the batch's.

    Returns this process's (summed loss, correct predictions) over the batch.
    """
    t.optimizer.zero_grad(set_to_none=True)
    loss_total, correct = 0.0, 0.0
    for start in range(0, len(x), chunk):
        xs, ys = x[start:start + chunk], y[start:start + chunk]
        last_chunk = start + chunk >= len(x)
        # under DDP, gradients are all-reduced once, on the last chunk of the step
        with t.ddp.no_sync() if t.ddp is not None and not last_chunk else contextlib.nullcontext():
            with torch.autocast(x.device.type, dtype=t.amp_dtype, enabled=t.amp_dtype is not None):
                out = t.net(xs)
                loss = criterion(out.float(), ys)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} at step {t.state['global_step']}; "
                                         "try a smaller --lr")
            t.scaler.scale(loss * (len(ys) / len(y))).backward()
        loss_total += float(loss.detach()) * len(ys)
        correct += float((out.detach().argmax(1) == ys).sum())
    for p in t.frozen():
        p.grad = None  # SGD skips a parameter without a gradient: no step, no momentum, no decay
    t.scaler.step(t.optimizer)
    t.scaler.update()
    return loss_total, correct


def validate(t: Trainee, tta: int = 0) -> tuple[float, float]:
    """(mean loss, accuracy) over the whole scored split (val, or test), summed across ranks; the same computation
    as ``senet evaluate`` (:func:`senet.analysis.runner.run_over_split`)."""
    t.dist.broadcast_buffers(t.model)
    out = run_over_split(t.model, t.eval_set, CIFAR_MEAN, CIFAR_STD, tta=tta, rank=t.dist.rank,
                         world_size=t.dist.world_size, amp_dtype=t.amp_dtype)
    loss_sum, correct, count = t.dist.sum([out.loss_sum(), out.correct, len(out.labels)], t.device)
    return loss_sum / max(count, 1), correct / max(count, 1)


# --------------------------------------------------------------------------- set-up
def prepare(config: TrainConfig, run_dir: Path, resume: bool, device: torch.device, dist: Dist) -> Trainee:
    """Data, model, optimiser and counters for the run (restored from ``last.pt`` on resume)."""
    torch.manual_seed(config.seed)
    train_set, eval_set = load_training_data(config)
    model = build_model(config, train_set, device, fresh=not resume)
    optimizer = make_optimizer(model, config)
    state = new_train_state()
    saved = restore(run_dir, model, optimizer, state) if resume else {}
    plan_epochs(state, config.epochs)
    lookahead = Lookahead(model) if config.lookahead else None  # the slow copy starts as the current weights
    if lookahead is not None and isinstance(saved.get("lookahead"), dict):
        lookahead.load(saved["lookahead"])
    net, ddp = wrap_for_training(model, dist, device, config.sync_bn, config.compile)
    info = model_info(model)
    facts = dict(val_size=len(eval_set) if eval_set.split == "val" else 0, scored_on=eval_set.split,
                 scored_images=len(eval_set), hardware=hardware(device, dist.world_size), params=info["params"],
                 se_params=info["se_params"], se_formula=info["se_formula"], macs=info["macs"],
                 train_images=len(train_set),
                 data_fingerprint=split_fingerprints(**{"train": train_set, eval_set.split: eval_set}))
    amp_dtype = mixed_precision_dtype(device, config.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)  # bf16 and fp32 need no scaling
    return Trainee(config, device, dist, train_set, eval_set, model, net, ddp, optimizer, amp_dtype, scaler,
                   state, facts, lookahead)


def progress_bar(t: Trainee):
    from tqdm import tqdm

    return tqdm(total=t.total_steps, initial=t.state["global_step"], unit="step", dynamic_ncols=True,
                file=sys.stderr)


def load_training_data(config: TrainConfig) -> tuple[TensorDataset, TensorDataset]:
    """The run's training split and the split it scores itself on (val; test when ``val_size`` is 0, when every
    training image is trained on), with ``train_limit`` applied and the batch size checked against them."""
    train_set = load_split(config.data, "train", config.data_dir, config.val_size, config.split_seed)
    split = scored_split_for(config.val_size)
    try:
        eval_set = load_split(config.data, split, config.data_dir, config.val_size, config.split_seed)
    except DataError:
        if split != "test" or parse_spec(config.data)[0] not in ("folder", "sample"):
            raise  # a CIFAR download's own message says what is missing
        raise DataError(no_test_split(config.data)) from None
    if config.train_limit:
        train_set = limit_split(train_set, config.train_limit, config.split_seed)
    check_batch_size(config.batch_size, len(train_set))
    return train_set, eval_set


def build_model(config: TrainConfig, train_set: TensorDataset, device: torch.device, fresh: bool) -> nn.Module:
    """The named model on ``device`` in channels_last; a fresh one gets its data-dependent init, if it has one."""
    model = create_model(config.model, num_classes=len(train_set.classes), **config.model_options())
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = config.bn_momentum
    if hasattr(model, "init_from_data") and fresh:
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(config.seed))
        model.init_from_data(normalize(train_set.images[order[:5000]], CIFAR_MEAN, CIFAR_STD))
    return model.to(device).to(memory_format=torch.channels_last)


def new_train_state() -> dict[str, Any]:
    """The loop's counters, saved in ``last.pt`` so that a resumed run continues exactly."""
    return {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_val_acc": -1.0, "history": [],
            "elapsed_s": 0.0, "loss_ema": None, "epoch_sums": [0.0, 0.0, 0.0], "epochs_plan": []}


def plan_epochs(state: dict[str, Any], epochs: int) -> None:
    """Record in ``state["epochs_plan"]`` the number of epochs the run trains for from this step on.

    The plan starts as ``[{"step": 0, "epoch": 0, "epochs": E}]``; a run resumed with another ``--epochs`` adds
    an entry at its step: from there the learning-rate schedule (and Lookahead's) is stretched over the new total
    (see :func:`senet.training.optim.planned_lrs`).
    """
    plan = state["epochs_plan"]
    if not plan or plan[-1]["epochs"] != epochs:
        at = {"step": state["global_step"], "epoch": state["epoch"]} if plan else {"step": 0, "epoch": 0}
        plan.append(dict(at, epochs=int(epochs)))


def restore(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> dict:
    """Load ``run_dir/last.pt`` into the model, optimiser, loop state and the CPU random generator; returns its
    resume state (which also holds the Lookahead's slow weights, when the run uses it)."""
    payload = read_checkpoint(run_dir / "last.pt")
    model.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(payload["extra_state"]["optimizer"])
    state.update(payload["extra_state"]["train_state"])
    if not state.get("epochs_plan"):  # a last.pt from before the plan: it trained for its config's epochs
        before = (payload.get("meta", {}).get("config") or {}).get("epochs")
        state["epochs_plan"] = [{"step": 0, "epoch": 0, "epochs": int(before)}] if before else []
    if isinstance(payload["extra_state"].get("rng_state"), torch.Tensor):
        torch.set_rng_state(payload["extra_state"]["rng_state"])
    return payload["extra_state"]
