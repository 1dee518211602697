"""Where a run trained, as recorded (``hardware`` in its checkpoints: "NVIDIA H200", "CPU (2 cores, 1 thread)",
"2 x NVIDIA H200"), and reading that record back, so that training times are compared only like with like.

Wall time depends on the device, the number of CPU threads and of processes: a GPU run beside a CPU run, or a
1-thread run beside a 2-thread one, says more about the machine than about the model.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch

__all__ = ["Hardware", "hardware", "read_hardware", "mixed_hardware"]


def hardware(device: torch.device, world_size: int) -> str:
    """A short description of where the run trains (what :func:`read_hardware` reads back)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        name = "Apple GPU (MPS)"
    else:
        threads = torch.get_num_threads()
        name = f"CPU ({os.cpu_count()} cores, {threads} thread{'s' if threads != 1 else ''})"
    return f"{world_size} x {name}" if world_size > 1 else name


_CPU = re.compile(r"CPU \((?:(\d+) cores?, )?(\d+) threads?\)")


@dataclass(frozen=True)
class Hardware:
    """A run's recorded hardware: ``kind`` "GPU", "CPU" or "" (not recorded); CPU ``threads`` when known."""

    kind: str
    name: str
    threads: int | None = None
    processes: int = 1
    cores: int | None = None

    @property
    def label(self) -> str:
        """What a legend or a warning calls it: "GPU NVIDIA H200", "CPU, 1 thread", "2 processes x CPU, 2 threads"."""
        if not self.kind:
            return "hardware not recorded"
        if self.kind == "GPU":
            one = self.name if "GPU" in self.name else f"GPU {self.name}"
        else:
            one = "CPU" if self.threads is None else f"CPU, {self.threads} thread{'s' if self.threads != 1 else ''}"
            one += f" ({self.cores} cores)" if self.cores else ""
        return f"{self.processes} × {one}" if self.processes > 1 else one


def read_hardware(text: object) -> Hardware:
    """The :class:`Hardware` of a recorded ``hardware`` text (older records included: "1 threads")."""
    text = " ".join(str(text or "").split())
    if not text:
        return Hardware("", "")
    processes = 1
    match = re.match(r"(\d+) x (.+)", text)
    if match:
        processes, text = int(match.group(1)), match.group(2)
    cpu = _CPU.fullmatch(text)
    if cpu:
        return Hardware("CPU", "CPU", int(cpu.group(2)), processes, int(cpu.group(1)) if cpu.group(1) else None)
    if text.startswith("CPU"):
        return Hardware("CPU", "CPU", None, processes)
    return Hardware("GPU", text, None, processes)


def mixed_hardware(by_run: dict[str, object]) -> str | None:
    """None when every run's recorded ``hardware`` (run name -> its text) reads the same, else one line naming
    each kind and its runs, and why their training times do not compare."""
    groups: dict[str, list[str]] = {}
    for run, text in by_run.items():
        groups.setdefault(read_hardware(text).label, []).append(run)
    if len(groups) < 2:
        return None
    kinds = "; ".join(f"{label}: {', '.join(runs)}" for label, runs in groups.items())
    return (f"These runs trained on different hardware ({kinds}). Their training times measure the machines as "
            "much as the models: compare times only within one line style (one kind of hardware).")
