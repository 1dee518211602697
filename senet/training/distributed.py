"""This process's place in a ``torchrun`` job, its device, and stopping on a signal."""
from __future__ import annotations

import os
import signal
from typing import Any

import torch
from torch import nn

from .hardware import hardware

__all__ = ["Dist", "StopFlag", "pick_device", "hardware", "wrap_for_training", "mixed_precision_dtype"]


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


def wrap_for_training(model: nn.Module, dist: Dist, device: torch.device, sync_bn: bool = False,
                      compile: bool = False) -> tuple[nn.Module, nn.parallel.DistributedDataParallel | None]:
    """(the module to call, the DDP wrapper or None): SyncBatchNorm, DDP and torch.compile as asked."""
    net: nn.Module = model
    ddp = None
    if dist.active:
        if sync_bn:
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = ddp = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        net = torch.compile(net)
    return net, ddp


def mixed_precision_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """bf16 on a CUDA device that supports it, else fp16 on CUDA; None (fp32) on the CPU or with amp off."""
    if device.type != "cuda" or not amp:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
