"""The model registry: one entry per model name, read by the command line, the trainer and the dashboard.

An entry says which family the model belongs to (recipes differ by family), which architecture it is (a model
and its plain or SE twin share one), whether it has SE blocks, which options it takes, a description, and
how to build it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .airnet import AirNet
from .resnet import CifarResNet, check_common, check_shortcut, check_stages
from .se import paper_se
from .seed import SeedNetwork

__all__ = ["ModelSpec", "MODELS", "create_model", "list_models", "model_spec", "architectures"]


@dataclass(frozen=True)
class ModelSpec:
    """One named model: ``build(**options)`` makes it; ``options`` are the option names it takes."""

    name: str
    family: str
    architecture: str
    has_se: bool
    description: str
    options: tuple[str, ...]
    build: Callable[..., nn.Module]


SE_ABLATIONS = ("se_squeeze", "se_excitation", "se_stages")  # the SENet paper's section 6, as model options


def _resnet(depth: int, se: bool) -> Callable[..., nn.Module]:
    def build(reduction: int = 16, width: int = 1, num_classes: int = 10, in_channels: int = 3,
              se_squeeze: str = "avg", se_excitation: str = "sigmoid", se_position: str = "standard",
              se_stages: str = "123", shortcut: str = "A") -> nn.Module:
        check_common(se, reduction, width, num_classes, in_channels,
                     narrowest=16 * (2 ** (int(min(check_stages(se_stages))) - 1)))
        attn = paper_se(reduction, se_squeeze, se_excitation) if se else None
        return CifarResNet(depth, attn, width, num_classes, in_channels, se_position, se_stages,
                           check_shortcut(shortcut))
    return build


def _airnet(se: bool) -> Callable[..., nn.Module]:
    def build(reduction: int = 16, width: int = 1, num_classes: int = 10, in_channels: int = 3,
              se_squeeze: str = "avg", se_excitation: str = "sigmoid", se_stages: str = "123") -> nn.Module:
        check_common(se, reduction, width, num_classes, in_channels, narrowest=64 if "1" in check_stages(se_stages)
                     else 256)
        attn = paper_se(reduction, se_squeeze, se_excitation) if se else None
        return AirNet(attn, width, num_classes, in_channels, se_stages)
    return build


def _entries() -> list[ModelSpec]:
    entries = []
    for depth, params in ((20, "0.27M"), (32, "0.46M"), (44, "0.66M"), (56, "0.85M"), (110, "1.7M")):
        arch = f"resnet{depth}"
        text = f"ResNet-{depth} (He et al.'s CIFAR ResNet, {params})"
        entries += [ModelSpec(arch, "resnet", arch, False, text, ("width", "shortcut"), _resnet(depth, False)),
                    ModelSpec(f"se_{arch}", "resnet", arch, True, f"SE-{text}",
                              ("width", "reduction", *SE_ABLATIONS, "se_position", "shortcut"), _resnet(depth, True))]
    text = "AirNet (airbench94's network, fast)"
    entries += [ModelSpec("airnet", "airnet", "airnet", False, text, ("width",), _airnet(False)),
                ModelSpec("se_airnet", "airnet", "airnet", True, f"SE-{text}", ("width", "reduction", *SE_ABLATIONS),
                          _airnet(True)),
                ModelSpec("seed_senet", "seed_senet", "seed_senet", True,
                          "Seed network (per-pixel SE; slow on a CPU)", ("reduction", "squeeze"),
                          SeedNetwork)]
    return entries


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _entries()}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return list(MODELS)


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; ValueError naming the known models otherwise."""
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return MODELS[name]


def architectures() -> dict[str, list[ModelSpec]]:
    """Model entries grouped by architecture, in registry order."""
    out: dict[str, list[ModelSpec]] = {}
    for spec in MODELS.values():
        out.setdefault(spec.architecture, []).append(spec)
    return out


def create_model(name: str, **options) -> nn.Module:
    """Build a model by name, e.g. ``create_model("se_resnet20", reduction=8)``.

    Unknown names and options raise ``ValueError`` with a one-line reason.
    """
    spec = model_spec(name)
    try:
        return spec.build(**options)
    except TypeError as exc:  # an unexpected keyword
        raise ValueError(f"bad options for model {name!r}: {exc}") from None
