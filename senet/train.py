"""The training engine: recipes, a validated configuration, and a resumable loop.

A run writes its directory (see :mod:`senet.runs`) as it goes, so another
process can follow it live. The loop is deliberately plain (airbench's style):
data held in memory as tensors, augmentation on whole batches, Nesterov SGD,
a per-step learning-rate schedule, and checkpoints through
:func:`senet.save_checkpoint`. Under ``torchrun`` the same loop runs one process
per device with DistributedDataParallel; only rank 0 writes the run directory.

Learning rate and batch size are always *global*: ``batch_size`` images per
optimiser step summed over all processes, and ``lr`` applies to the mean loss
over that global batch.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .accounting import model_info
from .checkpoint import read_checkpoint, save_checkpoint
from .data import (DEFAULT_DATA_DIR, Augment, DataError, TensorDataset, eval_batches, limit_split,
                   load_split, parse_spec, steps_per_epoch, train_batches)
from .excitation import se_blocks
from .inference import to_probabilities
from .models import create_model, list_models
from .runs import MetricsWriter, read_json, truncate_metrics, write_json_atomic, write_status

__all__ = ["RECIPES", "FAST_FAMILY_OVERRIDES", "TrainConfig", "ConfigError", "make_config", "train",
           "lr_factor", "model_family", "make_run_dir", "make_optimizer", "param_groups", "check_world_size"]

# One visible table of hyperparameters per recipe. ``seed`` is the blog post's
# recipe exactly; ``fast`` is the project's default, tuned for time to accuracy
# on a small CPU, with per-family overrides below.
RECIPES: dict[str, dict[str, Any]] = {
    "seed": dict(epochs=40, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4,
                 label_smoothing=0.0, schedule="constant", warmup_epochs=0.0, start_lr_frac=1.0,
                 bias_lr_scale=1.0, crop_pad=4, pad_mode="zeros", flip="random"),
    "fast": dict(epochs=30, batch_size=512, lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4,
                 label_smoothing=0.1, schedule="onecycle", warmup_epochs=2.0, start_lr_frac=0.1,
                 bias_lr_scale=1.0, crop_pad=4, pad_mode="reflect", flip="alternating"),
}
# The airbench94 hyperparameters, converted from its decoupled, summed-loss
# form (lr 10 per 1024, momentum 0.85, wd 0.0153 per 1024) to PyTorch's
# mean-loss SGD: lr = 10 / (1 + 1 / 0.15) = 1.304, weight_decay = 0.00153.
FAST_FAMILY_OVERRIDES: dict[str, dict[str, Any]] = {
    "airnet": dict(epochs=12, batch_size=1024, lr=1.304, momentum=0.85, weight_decay=0.00153,
                   label_smoothing=0.2, warmup_epochs=2.4, start_lr_frac=0.2, bias_lr_scale=64.0,
                   crop_pad=2),
}
SCHEDULES = ("constant", "cosine", "onecycle")


class ConfigError(ValueError):
    """An invalid training configuration; the message names the field and the problem."""


def model_family(name: str) -> str:
    """'se_resnet56' -> 'resnet', 'se_airnet' -> 'airnet', 'seed_senet' -> 'seed_senet'."""
    base = name[3:] if name.startswith("se_") else name
    return base.rstrip("0123456789")


@dataclass
class TrainConfig:
    """Everything needed to reproduce a run. Batch size and lr are global (all processes)."""

    model: str = "se_airnet"
    data: str = "cifar10"
    data_dir: str = DEFAULT_DATA_DIR
    dataset_name: str = ""
    recipe: str = "fast"
    epochs: int = 12
    batch_size: int = 1024
    lr: float = 1.304
    momentum: float = 0.85
    nesterov: bool = True
    weight_decay: float = 0.00153
    se_weight_decay: float | None = None  # weight decay of the SE blocks' FC weights; None: weight_decay
    label_smoothing: float = 0.2
    schedule: str = "onecycle"
    warmup_epochs: float = 2.4
    start_lr_frac: float = 0.2
    bias_lr_scale: float = 64.0
    crop_pad: int = 2
    pad_mode: str = "reflect"
    flip: str = "alternating"
    cutout: int = 0  # side of the cutout square in pixels (0: off)
    reduction: int = 16
    width: int = 1
    squeeze: bool = False
    seed: int = 0
    val_size: float = 0.1
    split_seed: int = 0
    train_limit: int = 0  # train on a stratified subset of this many images (0: the whole train split)
    log_every: int = 10
    micro_batch: int = 256
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    sync_bn: bool = False
    world_size: int = 1

    def model_options(self) -> dict[str, Any]:
        """Keyword options for :func:`senet.create_model`."""
        if self.model == "seed_senet":
            return {"reduction": self.reduction, "squeeze": self.squeeze}
        opts: dict[str, Any] = {"width": self.width}
        if self.model.startswith("se_"):
            opts["reduction"] = self.reduction
        return opts

    def augment(self) -> Augment:
        return Augment(crop_pad=self.crop_pad, pad_mode=self.pad_mode, flip=self.flip, cutout=self.cutout)


def _positive(name: str, value: Any, integer: bool = False) -> None:
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type) or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")


def make_config(model: str = "se_airnet", recipe: str = "fast", **overrides: Any) -> TrainConfig:
    """A validated :class:`TrainConfig`: recipe defaults, family overrides, then ``overrides``.

    ``None`` values in ``overrides`` mean "keep the recipe's value".
    """
    if model not in list_models():
        raise ConfigError(f"unknown model {model!r}; known models: {', '.join(list_models())}")
    if not isinstance(recipe, str) or recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; known recipes: {', '.join(RECIPES)}")
    values: dict[str, Any] = dict(RECIPES[recipe])
    if recipe == "fast":
        values.update(FAST_FAMILY_OVERRIDES.get(model_family(model), {}))
    known = {f.name for f in fields(TrainConfig)}
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(f"unknown configuration field {key!r}")
        if value is not None:
            values[key] = value
    config = TrainConfig(model=model, recipe=recipe, **{k: v for k, v in values.items() if k not in ("model", "recipe")})
    validate_config(config)
    return config


def validate_config(c: TrainConfig) -> None:
    """Raise :class:`ConfigError` for any field out of range; builds the model once to check its options."""
    _positive("epochs", c.epochs, integer=True)
    _positive("batch_size", c.batch_size, integer=True)
    _positive("lr", c.lr)
    _positive("log_every", c.log_every, integer=True)
    _positive("micro_batch", c.micro_batch, integer=True)
    if c.se_weight_decay is not None and (isinstance(c.se_weight_decay, bool)
                                          or not isinstance(c.se_weight_decay, (int, float))
                                          or not math.isfinite(c.se_weight_decay) or c.se_weight_decay < 0):
        raise ConfigError(f"se_weight_decay must be a non-negative number, got {c.se_weight_decay!r}")
    for name in ("momentum", "weight_decay", "label_smoothing", "warmup_epochs"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"{name} must be a non-negative number, got {v!r}")
    if c.momentum >= 1:
        raise ConfigError(f"momentum must be below 1, got {c.momentum!r}")
    if c.label_smoothing >= 1:
        raise ConfigError(f"label_smoothing must be below 1, got {c.label_smoothing!r}")
    if c.schedule not in SCHEDULES:
        raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {c.schedule!r}")
    if c.pad_mode not in ("zeros", "reflect") or c.flip not in ("random", "alternating", "none"):
        raise ConfigError(f"pad_mode/flip not understood: {c.pad_mode!r}/{c.flip!r}")
    if isinstance(c.crop_pad, bool) or not isinstance(c.crop_pad, int) or not 0 <= c.crop_pad <= 16:
        raise ConfigError(f"crop_pad must be an integer in 0..16, got {c.crop_pad!r}")
    if isinstance(c.cutout, bool) or not isinstance(c.cutout, int) or not 0 <= c.cutout <= 16:
        raise ConfigError(f"cutout must be an integer in 0..16, got {c.cutout!r}")
    _positive("world_size", c.world_size, integer=True)
    _positive("reduction", c.reduction, integer=True)  # also for plain models: recorded in config.json
    check_world_size(c.batch_size, c.world_size)
    v = c.val_size
    if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0
            or (v >= 1 and not float(v).is_integer())):
        raise ConfigError(f"val_size must be a fraction in (0, 1) or a whole count of images, got {v!r}")
    for name in ("seed", "split_seed", "train_limit"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"{name} must be a non-negative integer, got {v!r}")
    if c.device != "auto":
        try:
            device = torch.device(c.device)
        except (RuntimeError, ValueError, TypeError):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {c.device!r}") from None
        if device.type not in ("cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {c.device!r}")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {c.device!r}: CUDA is not available on this machine")
    try:
        parse_spec(c.data)
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    try:
        with torch.device("meta"):  # checks the options without allocating the weights
            create_model(c.model, **c.model_options())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def check_world_size(batch_size: int, world_size: int) -> None:
    """The global batch must split evenly over the processes (each rank takes batch_size / world_size)."""
    if world_size > 1 and batch_size % world_size:
        raise ConfigError(f"batch_size {batch_size} (global) is not divisible by the {world_size} processes")


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str, start_frac: float) -> float:
    """The learning-rate multiplier at ``step`` (0-based) of ``total_steps``.

    ``constant``: 1. ``cosine``: linear warm-up from ``start_frac`` then cosine
    to 0. ``onecycle``: linear warm-up from ``start_frac`` to 1, then linear
    decay to 0 (airbench's triangle).
    """
    if schedule == "constant":
        return 1.0
    if step < warmup_steps:
        return start_frac + (1.0 - start_frac) * step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


# --------------------------------------------------------------------------- process helpers
class StopFlag:
    """Set by SIGTERM / SIGINT; the loop finishes its step, saves ``last.pt`` and exits 0."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        def handler(signum, _frame):
            self.requested = True
            self.signal_name = signal.Signals(signum).name
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread
                pass

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()


def pick_device(name: str) -> torch.device:
    """'auto' -> CUDA when present (this process's LOCAL_RANK device), else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(name)


def make_run_dir(root: str | os.PathLike, model: str) -> Path:
    """A new, exclusively created run directory ``root/<time>-<model>[-n]``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = root / (f"{stamp}-{model}" + (f"-{n}" if n else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise OSError(f"could not create a new run directory under {root}")


def param_groups(model: nn.Module, c: TrainConfig) -> list[dict]:
    """BatchNorm biases get ``bias_lr_scale`` x lr with the same absolute decay; with ``se_weight_decay``
    set, the SE blocks' parameters get that weight decay; the rest the plain lr and decay."""
    se_params = {id(p) for block in se_blocks(model).values() for p in block.parameters()}
    norm_biases, se, others = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_norm_bias = isinstance(module, nn.modules.batchnorm._BatchNorm) and name == "bias"
            if is_norm_bias and c.bias_lr_scale != 1:
                norm_biases.append(p)
            elif id(p) in se_params and c.se_weight_decay is not None:
                se.append(p)
            else:
                others.append(p)
    groups = [dict(params=others, lr=c.lr, weight_decay=c.weight_decay, base_lr=c.lr)]
    if se:
        groups.append(dict(params=se, lr=c.lr, weight_decay=c.se_weight_decay, base_lr=c.lr))
    if norm_biases:
        lr = c.lr * c.bias_lr_scale
        groups.append(dict(params=norm_biases, lr=lr, weight_decay=c.weight_decay / c.bias_lr_scale, base_lr=lr))
    return groups


def make_optimizer(model: nn.Module, c: TrainConfig) -> torch.optim.SGD:
    """SGD with (Nesterov) momentum and weight decay, over :func:`param_groups`."""
    return torch.optim.SGD(param_groups(model, c), lr=c.lr, momentum=c.momentum,
                           nesterov=c.nesterov and c.momentum > 0)


# --------------------------------------------------------------------------- distributed
class Dist:
    """This process's place in a torchrun job (world_size 1 without torchrun)."""

    def __init__(self) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.rank = int(os.environ.get("RANK", 0))
        self.active = self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def init(self, device: torch.device) -> None:
        if self.active and not torch.distributed.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum over ranks (identity for one process)."""
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` is set on any rank (one all-reduce)."""
        return bool(self.sum([float(flag)], device)[0]) if self.active else flag

    def broadcast_buffers(self, model: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

        Each rank updates its running statistics from its own shard, so
        without this an evaluation sharded over ranks would mix the
        statistics of different ranks, and would not match the checkpoint
        that rank 0 saves.
        """
        if self.active:
            for buffer in model.buffers():
                torch.distributed.broadcast(buffer.data, src=0)

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.active and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


# --------------------------------------------------------------------------- evaluation during training
@torch.no_grad()
def evaluate_loss_acc(model: nn.Module, data: TensorDataset, criterion: Callable, device: torch.device,
                      dist: Dist, tta: bool = False, amp_dtype: torch.dtype | None = None) -> tuple[float, float]:
    """(mean loss, accuracy) over the whole split, reduced across ranks."""
    dist.broadcast_buffers(model)
    model.eval()
    loss_sum = correct = count = 0.0
    for x, y, _ in eval_batches(data, 250, rank=dist.rank, world_size=dist.world_size, device=device):
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(x)
            if tta:
                out = torch.log((to_probabilities(out) + to_probabilities(model(x.flip(-1)))) / 2)
        out = out.float()
        loss_sum += float(criterion(out, y)) * len(y)
        correct += float((out.argmax(1) == y).sum())
        count += len(y)
    loss_sum, correct, count = dist.sum([loss_sum, correct, count], device)
    model.train()
    return loss_sum / max(count, 1), correct / max(count, 1)


# --------------------------------------------------------------------------- set-up pieces of the loop
def load_training_data(config: TrainConfig) -> tuple[TensorDataset, TensorDataset]:
    """The run's (train, val) splits, with ``train_limit`` applied and the batch size checked against them."""
    train_set = load_split(config.data, "train", config.data_dir, config.val_size, config.split_seed)
    val_set = load_split(config.data, "val", config.data_dir, config.val_size, config.split_seed)
    if config.train_limit:
        train_set = limit_split(train_set, config.train_limit, config.split_seed)
    if config.batch_size > len(train_set):
        raise ConfigError(f"batch_size {config.batch_size} is larger than the {len(train_set)} training images")
    return train_set, val_set


def build_model(config: TrainConfig, train_set: TensorDataset, device: torch.device, fresh: bool) -> nn.Module:
    """The named model on ``device`` in channels_last; a fresh one gets its data-dependent init, if it has one."""
    model = create_model(config.model, num_classes=len(train_set.classes), **config.model_options())
    if hasattr(model, "init_from_data") and fresh:
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(config.seed))
        model.init_from_data(eval_norm(train_set.images[order[:5000]]))
    return model.to(device).to(memory_format=torch.channels_last)


def new_train_state() -> dict[str, Any]:
    """The loop's counters, saved in ``last.pt`` so that a resumed run continues exactly."""
    return {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_val_acc": -1.0, "history": [],
            "elapsed_s": 0.0, "loss_ema": None, "epoch_sums": [0.0, 0.0, 0.0]}


def restore(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load ``run_dir/last.pt`` into the model, optimiser, loop state and the CPU random generator."""
    payload = read_checkpoint(run_dir / "last.pt")
    model.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(payload["extra_state"]["optimizer"])
    state.update(payload["extra_state"]["train_state"])
    if isinstance(payload["extra_state"].get("rng_state"), torch.Tensor):
        torch.set_rng_state(payload["extra_state"]["rng_state"])


def wrap_for_training(model: nn.Module, config: TrainConfig, dist: Dist, device: torch.device
                      ) -> tuple[nn.Module, nn.parallel.DistributedDataParallel | None]:
    """(the module to call, the DDP wrapper or None): SyncBatchNorm, DDP and torch.compile as configured."""
    net: nn.Module = model
    ddp = None
    if dist.active:
        if config.sync_bn:
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = ddp = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)
    return net, ddp


def mixed_precision_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 on a CUDA device that supports it, else fp16 on CUDA; None (fp32) on the CPU or with amp off."""
    if device.type != "cuda" or not config.amp:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def optimizer_step(net: nn.Module, ddp: nn.Module | None, x: torch.Tensor, y: torch.Tensor, criterion: Callable,
                   optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, chunk: int,
                   amp_dtype: torch.dtype | None, step: int) -> tuple[float, float]:
    """One SGD step on the batch (x, y), in micro-batches of ``chunk`` whose gradients add up to the batch's.

    Returns this process's (summed loss, correct predictions) over the batch.
    """
    optimizer.zero_grad(set_to_none=True)
    loss_total, correct = 0.0, 0.0
    for start in range(0, len(x), chunk):
        xs, ys = x[start:start + chunk], y[start:start + chunk]
        last_chunk = start + chunk >= len(x)
        # under DDP, gradients are all-reduced once, on the last chunk of the step
        with ddp.no_sync() if ddp is not None and not last_chunk else contextlib.nullcontext():
            with torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                out = net(xs)
                loss = criterion(out.float(), ys)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} at step {step}; try a smaller --lr")
            scaler.scale(loss * (len(ys) / len(y))).backward()
        loss_total += float(loss.detach()) * len(ys)
        correct += float((out.detach().argmax(1) == ys).sum())
    scaler.step(optimizer)
    scaler.update()
    return loss_total, correct


# --------------------------------------------------------------------------- the loop
def train(config: TrainConfig, run_dir: str | os.PathLike, resume: bool = False,
          progress: bool = True, on_log: Callable[[dict], None] | None = None) -> dict:
    """Train ``config`` into ``run_dir`` (created by the caller); returns the final status.

    With ``resume`` the run continues from ``run_dir/last.pt`` (model,
    optimiser, epoch, step and counters; the data order is a function of the
    seed and epoch, so a resumed run matches an uninterrupted one).
    """
    run_dir = Path(run_dir)
    dist = Dist()
    check_world_size(config.batch_size, dist.world_size)
    device = pick_device(config.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init(device)
    config.world_size = dist.world_size
    main = dist.is_main
    stop = StopFlag()
    stop.install()
    metrics = None
    started = time.time()
    trace = IndexTrace(dist.rank)
    try:
        if main:
            write_status(run_dir, state="starting", pid=os.getpid(), host=socket.gethostname(),
                         started_at=(read_json(run_dir / "status.json") or {}).get("started_at", started)
                         if resume else started, error=None)
            if not resume:
                write_json_atomic(run_dir / "config.json", config_record(config))
        torch.manual_seed(config.seed)
        train_set, val_set = load_training_data(config)
        model = build_model(config, train_set, device, fresh=not resume)
        optimizer = make_optimizer(model, config)
        state = new_train_state()
        if resume:
            restore(run_dir, model, optimizer, state)
        if main:
            if resume:
                truncate_metrics(run_dir / "metrics.jsonl", state["global_step"])
            metrics = MetricsWriter(run_dir / "metrics.jsonl")
            if resume:
                metrics.write({"type": "resume", "step": state["global_step"], "epoch": state["epoch"], "time": time.time()})
        amp_dtype = mixed_precision_dtype(config, device)
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        net, ddp = wrap_for_training(model, config, dist, device)
        criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        eval_criterion = nn.CrossEntropyLoss()
        aug = config.augment()
        spe = steps_per_epoch(len(train_set), config.batch_size)
        total_steps = spe * config.epochs
        warmup_steps = int(round(config.warmup_epochs * spe))
        chunk = config.batch_size if device.type == "cuda" else config.micro_batch
        info = model_info(model)

        def save(name: str, val_acc: float | None, val_acc_tta: float | None = None, with_state: bool = True) -> None:
            extra = ({"optimizer": optimizer.state_dict(), "train_state": dict(state), "rng_state": torch.get_rng_state()}
                     if with_state else None)
            save_checkpoint(run_dir / name, model, model_name=config.model,
                            model_options=dict(config.model_options(), num_classes=len(train_set.classes)),
                            classes=train_set.classes, extra_state=extra,
                            config=asdict(config), recipe=config.recipe, epochs=state["epoch"],
                            history=state["history"], val_acc=val_acc, val_acc_tta=val_acc_tta,
                            val_size=len(val_set), split_seed=config.split_seed,
                            dataset=config.dataset_name or config.data, data_spec=config.data,
                            wall_time_s=state["elapsed_s"], hardware=hardware(device, dist.world_size),
                            params=info["params"], se_params=info["se_params"], se_formula=info["se_formula"],
                            macs=info["macs"], run_dir=str(run_dir))

        if main:
            write_status(run_dir, state="running", epoch=state["epoch"], epochs=config.epochs,
                         step=state["global_step"], total_steps=total_steps, steps_per_epoch=spe,
                         best_val_acc=state["best_val_acc"] if state["best_val_acc"] >= 0 else None,
                         device=str(device), world_size=dist.world_size)
        bar = None
        if main and progress:
            from tqdm import tqdm
            bar = tqdm(total=total_steps, initial=state["global_step"], unit="step", dynamic_ncols=True, file=sys.stderr)
        net.train()
        stopped = False
        while state["epoch"] < config.epochs and not stopped:
            epoch = state["epoch"]
            t_epoch = time.time()
            window_t, window_n = time.time(), 0
            loss_sum, correct, seen = state["epoch_sums"]
            batches = train_batches(train_set, config.batch_size, epoch, config.seed, aug, dist.rank,
                                    dist.world_size, state["step_in_epoch"], device)
            for x, y, idx in batches:
                trace.add(epoch, idx)
                factor = lr_factor(state["global_step"], total_steps, warmup_steps, config.schedule, config.start_lr_frac)
                for g in optimizer.param_groups:
                    g["lr"] = g["base_lr"] * factor
                if device.type != "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                loss_total, correct_step = optimizer_step(net, ddp, x, y, criterion, optimizer, scaler, chunk,
                                                          amp_dtype, state["global_step"])
                step_loss, step_correct, n = dist.sum([loss_total, correct_step, len(y)], device)
                loss_sum, correct, seen = loss_sum + step_loss, correct + step_correct, seen + n
                ema = state["loss_ema"]
                state["loss_ema"] = step_loss / n if ema is None else 0.9 * ema + 0.1 * step_loss / n
                state["global_step"] += 1
                state["step_in_epoch"] += 1
                state["epoch_sums"] = [loss_sum, correct, seen]
                window_n += n
                if bar:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{state['loss_ema']:.3f}")
                if main and (state["global_step"] % config.log_every == 0 or state["step_in_epoch"] == spe):
                    now = time.time()
                    rec = {"type": "step", "step": state["global_step"], "epoch": epoch + state["step_in_epoch"] / spe,
                           "loss": state["loss_ema"], "lr": optimizer.param_groups[0]["lr"],
                           "images_per_s": window_n / max(now - window_t, 1e-9), "time": now}
                    metrics.write(rec)
                    write_status(run_dir, state="running", epoch=epoch, step=state["global_step"],
                                 images_per_s=rec["images_per_s"],
                                 elapsed_s=state["elapsed_s"] + now - t_epoch)
                    if on_log:
                        on_log(rec)
                    window_t, window_n = now, 0
                if dist.any(stop.requested, device):
                    stopped = True
                    break
            state["elapsed_s"] += time.time() - t_epoch
            if stopped:
                break
            val_loss, val_acc = evaluate_loss_acc(model, val_set, eval_criterion, device, dist, amp_dtype=amp_dtype)
            row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
                   "val_loss": val_loss, "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
                   "elapsed_s": state["elapsed_s"]}
            state.update(epoch=epoch + 1, step_in_epoch=0, epoch_sums=[0.0, 0.0, 0.0])
            state["history"] = state["history"] + [row]
            improved = val_acc > state["best_val_acc"]
            if improved:
                state["best_val_acc"] = val_acc
            val_acc_tta = None
            if state["epoch"] == config.epochs or improved:  # best.pt and the final last.pt carry both figures
                val_acc_tta = evaluate_loss_acc(model, val_set, eval_criterion, device, dist, tta=True, amp_dtype=amp_dtype)[1]
                row["val_acc_tta"] = val_acc_tta
            if main:
                metrics.write({"type": "epoch", "step": state["global_step"], "time": time.time(), **row})
                save("last.pt", val_acc, val_acc_tta)
                if improved:
                    save("best.pt", val_acc, val_acc_tta, with_state=False)
                write_status(run_dir, state="running", epoch=state["epoch"], step=state["global_step"],
                             best_val_acc=state["best_val_acc"], elapsed_s=state["elapsed_s"])
            dist.barrier()
        if bar:
            bar.close()
        if main:
            if stopped:
                last_acc = state["history"][-1]["val_acc"] if state["history"] else None
                save("last.pt", last_acc)
                status = write_status(run_dir, state="stopped", epoch=state["epoch"], step=state["global_step"],
                                      error=None, stopped_by=stop.signal_name, elapsed_s=state["elapsed_s"])
            else:
                status = write_status(run_dir, state="finished", epoch=state["epoch"], step=state["global_step"],
                                      error=None, elapsed_s=state["elapsed_s"])
        else:
            status = {"state": "stopped" if stopped else "finished"}
        dist.barrier()
        return status
    except BaseException as exc:
        if main:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            try:
                write_status(run_dir, state="failed", error=f"{type(exc).__name__}: {message}"[:500])
            except OSError:
                print(f"senet: could not write status to {run_dir}: {message}", file=sys.stderr)
        raise
    finally:
        if metrics:
            metrics.close()
        trace.save()
        stop.restore()
        dist.close()


def config_record(config: TrainConfig) -> dict:
    """``config.json``: the configuration plus the batch/lr semantics spelled out."""
    record = asdict(config)
    record["batch_size_per_process"] = config.batch_size // max(config.world_size, 1)
    record["batch_semantics"] = ("batch_size is the global batch (all processes together; each of the world_size "
                                 "processes takes batch_size/world_size); lr applies to the mean loss over the "
                                 "global batch and is not rescaled with world_size")
    return record


class IndexTrace:
    """Test hook: with ``$SENET_TRACE_INDICES=DIR`` each rank saves the training indices it saw
    (``DIR/rank<r>.pt``: {epoch: tensor}); off (and free) otherwise. It writes outside the run directory."""

    def __init__(self, rank: int) -> None:
        folder = os.environ.get("SENET_TRACE_INDICES")
        self.path = Path(folder) / f"rank{rank}.pt" if folder else None
        self.seen: dict[int, list[torch.Tensor]] = {}

    def add(self, epoch: int, indices: torch.Tensor) -> None:
        if self.path is not None:
            self.seen.setdefault(epoch, []).append(indices.cpu())

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({e: torch.cat(v) for e, v in self.seen.items()}, self.path)


def eval_norm(images: torch.Tensor) -> torch.Tensor:
    """uint8 images normalised with the CIFAR mean/std (for data-dependent initialisation)."""
    from .inference import normalize
    from .checkpoint import CIFAR_MEAN, CIFAR_STD
    return normalize(images, CIFAR_MEAN, CIFAR_STD)


def hardware(device: torch.device, world_size: int) -> str:
    """A short description of where the run trains."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        threads = torch.get_num_threads()
        name = f"CPU ({os.cpu_count()} cores, {threads} thread{'s' if threads != 1 else ''})"
    return f"{world_size} x {name}" if world_size > 1 else name
