"""Importing the weights of other CIFAR codebases: their state dicts, mapped onto senet's ResNets.

Two layouts are known (both read from their model code, not copied):

- ``akamaster``: github.com/akamaster/pytorch_resnet_cifar10 ``resnet20/32/44/56/110``. Its option-A shortcut
  (subsample, zero-pad the channels) is senet's ``shortcut="A"``, so its ``resnet20`` is senet's ``resnet20``;
  keys ``layerN.i.*`` and ``linear.*``; an option-B block's ``shortcut.0/1`` (1x1 conv, BN) is senet's
  ``downsample``. Its trainer.py normalises with ImageNet's mean and std.
- ``moskomule``: github.com/moskomule/senet.pytorch ``se_resnet20/32/56`` (senet/se_resnet.py,
  ``CifarSEResNet``) and the plain ``resnet20/32/56/110`` of senet/baseline.py. Their blocks project the
  shortcut with a 1x1 conv + BN (``downsample``) where the width changes: senet's ``shortcut="B"``. The SE layer
  (``se.fc.0``, ``se.fc.2``: Linear C->C/r->C without biases, sigmoid) is the paper's block, as senet's
  ``se.fc1``/``se.fc2``. Its cifar.py trains on homura's CIFAR-10, normalised with senet's own CIFAR mean/std.

Checkpoints may hold the state dict itself, ``{'state_dict': ...}`` (akamaster's trainer) or ``{'model': ...}``
(homura's saver), with or without DataParallel's ``module.`` prefix. A mismatch raises
:class:`StateDictError` with one line naming the tensor that does not fit.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import _load_failure, save_checkpoint
from .data import CIFAR10_CLASSES, CIFAR_MEAN, CIFAR_STD
from .models import create_model, list_models, model_spec, se_blocks

__all__ = ["SOURCES", "Source", "StateDictError", "Imported", "import_state_dict", "import_checkpoint",
           "detect_source", "unwrap_state_dict", "senet_keys", "rename"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class StateDictError(ValueError):
    """A state dict that cannot become a senet checkpoint; the message is one line naming what does not fit."""


@dataclass(frozen=True)
class Source:
    """One foreign codebase: where it lives, how its keys become senet's, and how it normalised its inputs."""

    name: str
    repo: str
    renames: tuple[tuple[str, str], ...]  # (its fragment, senet's), in order; "^" anchors a fragment at the start
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    normalisation: str  # where the source states mean and std
    models: tuple[str, ...]  # its model names that senet has
    shortcut: str | None = None  # None: read from the keys (A unless a projection's tensors are there)

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}"


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("akamaster", "akamaster/pytorch_resnet_cifar10",
           (("^layer", "^stage"), ("^linear.", "^fc."), (".shortcut.", ".downsample.")), IMAGENET_MEAN, IMAGENET_STD,
           "trainer.py: transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])",
           ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")),
    Source("moskomule", "moskomule/senet.pytorch",
           (("^layer", "^stage"), (".se.fc.0.", ".se.fc1."), (".se.fc.2.", ".se.fc2.")), CIFAR_MEAN, CIFAR_STD,
           "cifar.py: homura's DATASET_REGISTRY('cifar10'), transforms.Normalize((0.4914, 0.4822, 0.4465), "
           "(0.2023, 0.1994, 0.2010))",
           ("se_resnet20", "se_resnet32", "se_resnet56", "resnet20", "resnet32", "resnet56", "resnet110"), "B"),
)}


@dataclass
class Imported:
    """A foreign state dict turned into a senet model, with what its checkpoint should record."""

    model: nn.Module
    name: str
    options: dict
    source: Source
    tensors: int
    record: dict = field(default_factory=dict)  # numbers the source saved beside its weights (best_prec1, epoch)


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def unwrap_state_dict(obj: Any) -> tuple[dict[str, torch.Tensor], dict, str]:
    """The tensors of a loaded file, unwrapped from ``{'state_dict': ...}`` or ``{'model': ...}`` and from
    DataParallel's ``module.`` prefix; also the plain numbers saved beside them (``best_prec1``, ``epoch``) and
    the prefix removed (``"module."`` or ``""``)."""
    record: dict = {}
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                record = {k: v for k, v in obj.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise StateDictError("not a state dict: expected a dict of tensors, or {'state_dict': ...} holding one")
    prefix = "module." if all(str(k).startswith("module.") for k in obj) else ""
    return {str(k)[len(prefix):]: v for k, v in obj.items()}, record, prefix


def detect_source(keys: list[str] | set[str]) -> str:
    """Which known layout the key names are in (``linear.weight``: akamaster; ``fc.weight``: moskomule)."""
    if "linear.weight" in keys and any(k.startswith("layer1.") for k in keys):
        return "akamaster"
    if "fc.weight" in keys and any(k.startswith("layer1.") for k in keys):
        return "moskomule"
    raise StateDictError("unknown layout: neither akamaster's (layer1.*, linear.weight) nor moskomule's "
                         "(layer1.*, fc.weight); give --from")


def rename(key: str, renames: tuple[tuple[str, str], ...], back: bool = False) -> str:
    """A key in senet's names (or, ``back``, a senet key in the source's)."""
    for theirs, ours in renames:
        a, b = (ours, theirs) if back else (theirs, ours)
        if a.startswith("^"):
            key = b[1:] + key[len(a) - 1:] if key.startswith(a[1:]) else key
        else:
            key = key.replace(a, b)
    return key


def senet_keys(source: Source, state: dict[str, torch.Tensor]) -> dict[str, str]:
    """``{senet key: source key}`` for every tensor of ``state``."""
    return {rename(key, source.renames): key for key in state}


def _infer(source: Source, state: dict[str, torch.Tensor]) -> tuple[str, dict]:
    """The senet model and options the tensors describe: depth from the blocks per stage, SE and its
    reduction from the SE weights, the shortcut, the number of classes and input channels."""
    head_key = rename("fc.weight", source.renames, back=True)
    for key, rank in (("conv1.weight", 4), (head_key, 2)):
        if key not in state or state[key].dim() != rank:
            raise StateDictError(f"no {rank}-d tensor {key!r} in the state dict: not {source.name}'s CIFAR ResNet "
                                 "layout")
    head, stem = state[head_key], state["conv1.weight"]
    blocks = {int(m.group(1)) for k in state for m in [re.match(r"layer1\.(\d+)\.", k)] if m}
    se = any(".se." in k for k in state)
    name = f"{'se_' if se else ''}resnet{6 * (max(blocks, default=-1) + 1) + 2}"
    shortcut = source.shortcut or ("B" if any(".shortcut." in k for k in state) else "A")
    options: dict = {"num_classes": int(head.shape[0]), "shortcut": shortcut}
    if stem.shape[1] != 3:
        options["in_channels"] = int(stem.shape[1])
    fc1 = [v for k, v in state.items() if re.search(r"^layer3\..*\.se\.fc\.0\.weight$", k)]
    if se and fc1 and fc1[-1].dim() == 2 and fc1[-1].shape[0] > 0:
        options["reduction"] = int(fc1[-1].shape[1] // fc1[-1].shape[0])
    return name, options


def _check_model(source: Source, name: str, inferred: str) -> None:
    if name not in list_models():
        raise StateDictError(f"unknown senet model {name!r}; {source.name} imports into: {', '.join(source.models)}")
    if name not in source.models:
        held = f"; the state dict holds a {inferred}" if inferred != name else ""
        raise StateDictError(f"{source.name} has no {name} senet can import (it imports {', '.join(source.models)})"
                             + held)


def _fit(model: nn.Module, name: str, state: dict[str, torch.Tensor], source: Source, prefix: str,
         hint: str) -> dict:
    """The state dict in senet's keys, after checking each tensor against ``model``; StateDictError otherwise.
    Messages name tensors as the file does (``prefix``: DataParallel's ``module.``, if it had one)."""
    own, mapping = model.state_dict(), senet_keys(source, state)
    for new, old in mapping.items():
        tensor, shown = state[old], prefix + old
        if new not in own:
            raise StateDictError(f"tensor {shown!r} {_shape(tensor)} has no place in senet's {name}{hint}")
        if own[new].shape != tensor.shape:
            raise StateDictError(f"tensor {shown!r} has shape {_shape(tensor)}; senet's {name} expects "
                                 f"{_shape(own[new])} for {new!r}{hint}")
        if tensor.is_floating_point() != own[new].is_floating_point():
            raise StateDictError(f"tensor {shown!r} is {tensor.dtype}; senet's {name} expects {own[new].dtype}")
    fitted = {}
    for new, tensor in own.items():
        if new in mapping:
            fitted[new] = state[mapping[new]].to(tensor.dtype)
        elif new.endswith("num_batches_tracked"):  # older PyTorch did not save it; unused in eval mode
            fitted[new] = torch.zeros_like(tensor)
        else:
            shown = prefix + rename(new, source.renames, back=True)
            raise StateDictError(f"no tensor {shown!r} {_shape(tensor)} in the state dict: senet's {name} needs it "
                                 f"as {new!r}{hint}")
    return fitted


def import_state_dict(obj: Any, source: str | None = None, model: str | None = None,
                      reduction: int | None = None) -> Imported:
    """A senet model holding the weights of a foreign state dict (or a file's loaded contents).

    ``source`` is ``akamaster`` or ``moskomule`` (default: detected from the key names); ``model`` the senet
    model name (default: inferred from the tensors: depth, SE, reduction, shortcut, classes). Every tensor must
    fit: a missing, unexpected or differently shaped one raises :class:`StateDictError` naming it.
    """
    state, record, prefix = unwrap_state_dict(obj)
    name_of = source or detect_source(set(state))
    if name_of not in SOURCES:
        raise StateDictError(f"unknown source {name_of!r}; known: {', '.join(SOURCES)}")
    src = SOURCES[name_of]
    inferred, options = _infer(src, state)
    name = model or inferred
    _check_model(src, name, inferred)
    if reduction is not None:
        options["reduction"] = reduction
    if not model_spec(name).has_se:
        options.pop("reduction", None)
    try:
        target = create_model(name, **options)
    except ValueError as exc:
        raise StateDictError(f"the tensors describe no valid {name}: {exc}") from None
    hint = f" (the state dict holds a {inferred})" if inferred != name else ""
    target.load_state_dict(_fit(target, name, state, src, prefix, hint))
    return Imported(target.eval(), name, options, src, len(state), record)


def _read(path: Path) -> Any:
    if not path.is_file():
        raise StateDictError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- torch raises many types for bad files
        raise StateDictError(f"{path}: not a readable PyTorch file ({_load_failure(exc)})") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _classes(imported: Imported, classes: list[str] | None) -> list[str]:
    n = imported.options["num_classes"]
    if classes is None:
        if n != len(CIFAR10_CLASSES):
            raise StateDictError(f"the model predicts {n} classes, not CIFAR-10's 10: name them (--classes)")
        return list(CIFAR10_CLASSES)
    if len(classes) != n or len(set(classes)) != n:
        raise StateDictError(f"the model predicts {n} classes; {len(classes)} names given "
                             f"({len(set(classes))} distinct)")
    return list(classes)


def import_checkpoint(state_dict: str | os.PathLike, out: str | os.PathLike, *, source: str | None = None,
                      model: str | None = None, reduction: int | None = None, classes: list[str] | None = None,
                      mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                      overwrite: bool = False) -> dict:
    """Write ``out``, a senet checkpoint of the foreign state dict in file ``state_dict``.

    The checkpoint records the source's normalisation (or ``mean``/``std`` given), the class names (CIFAR-10's
    unless ``classes``) and a card saying where it came from. Nothing is written unless every tensor fits;
    an existing ``out`` is refused unless ``overwrite``. Returns a summary for the command line.
    """
    state_dict, out = Path(state_dict), Path(out)
    if out.exists() and not overwrite:
        raise StateDictError(f"{out}: already exists (replace it with --force, or overwrite=True)")
    if out.exists() and state_dict.exists() and out.resolve() == state_dict.resolve():
        raise StateDictError(f"{out}: is the state dict being imported; write to another path")
    try:
        imported = import_state_dict(_read(state_dict), source, model, reduction)
    except StateDictError as exc:
        text = str(exc)
        raise StateDictError(text if text.startswith(str(state_dict)) else f"{state_dict}: {text}") from None
    src, names = imported.source, _classes(imported, classes)
    mean, std = tuple(mean or src.mean), tuple(std or src.std)
    channels = imported.options.get("in_channels", 3)
    for what, values in (("mean", mean), ("std", std)):
        if len(values) != channels:
            raise StateDictError(f"{what} needs {channels} numbers, one per input channel, got {len(values)}")
    if not all(math.isfinite(x) for x in mean + std) or min(std) <= 0:
        raise StateDictError(f"mean and std must be finite and std positive, got mean {mean} std {std}")
    given = mean != tuple(src.mean) or std != tuple(src.std)
    card = {
        "imported_from": f"{src.repo} ({src.url}), state dict {state_dict.name}",
        "source_repo": src.url, "source_file": str(state_dict), "source_sha256": _sha256(state_dict),
        "source_record": imported.record,
        "normalisation": "given at import" if given else f"the source's, {src.normalisation}",
        "dataset": "the source's data (unknown to senet)",
        "caveat": "trained outside senet: if on CIFAR-10's training images, senet's val split (held out of "
                  "those images) is not held out for this model; measure it on a test split",
    }
    save_checkpoint(out, imported.model, model_name=imported.name, model_options=imported.options,
                    classes=names, mean=mean, std=std, input_size=(channels, 32, 32), **card)
    return {"out": str(out), "model": imported.name, "options": imported.options, "source": src.name,
            "repo": src.repo, "tensors": imported.tensors, "mean": mean, "std": std,
            "se_blocks": len(se_blocks(imported.model)), "record": imported.record}
