"""ImageNet models of other libraries that have SE blocks, named with a source prefix.

``torchvision:mobilenet_v3_large``, ``torchvision:efficientnet_b0``, ``torchvision:regnet_y_400mf``,
``timm:seresnet50``, ``timm:legacy_seresnet18``: any classification model of torchvision, or of timm (an
optional dependency, ``pip install 'senet-explorer[timm]'``), that has SE modules (see
:data:`senet.models.gates.EXTERNAL_SE`). The weights come from the library's own mechanism into the user's cache:
torchvision's weights enums (the ``DEFAULT`` member unless ``@TAG`` names another, e.g.
``torchvision:mobilenet_v3_large@IMAGENET1K_V1``), timm's pretrained tags (its default tag unless the name
carries one, ``timm:seresnet50.a2_in1k``). ``@random`` builds the model without weights (random
initialisation, seeded), which needs no download. So do the class names (ImageNet's 1,000) and the
preprocessing (resize, centre crop, interpolation, normalisation): from the weights' metadata, not CIFAR's.

Every failure is an :class:`ExternalModelError` with one line: an unknown name, a model without SE modules,
timm missing, or weights that could not be fetched (offline).
"""
from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn

from .gates import se_blocks

__all__ = ["ExternalModelError", "ExternalName", "ExternalModel", "SOURCES", "RANDOM", "SUGGESTED", "TIMM_HINT",
           "is_external", "parse_name", "canonical_name", "load_external", "weights_note", "source_version"]

SOURCES = ("torchvision", "timm")
RANDOM = "random"  # the weights tag for a randomly initialised model
TIMM_HINT = "timm is not installed; install it with pip install 'senet-explorer[timm]' (or pip install timm==1.0.31)"
SUGGESTED = ("torchvision:mobilenet_v3_large", "torchvision:mobilenet_v3_small", "torchvision:efficientnet_b0",
             "torchvision:regnet_y_400mf", "timm:legacy_seresnet50", "timm:seresnet50", "timm:legacy_seresnet18",
             "timm:efficientnet_b0")  # timm:legacy_seresnet50: the SENet authors' own SE-ResNet-50 weights
_SE_HINT = {"torchvision": "mobilenet_v3_*, efficientnet_*, efficientnet_v2_*, regnet_y_*",
            "timm": "seresnet*, seresnext*, legacy_se*, efficientnet_*, mobilenetv3_*, regnety_*"}


class ExternalModelError(ValueError):
    """An external model that cannot be used; the message is one line naming it and the reason."""


@dataclass(frozen=True)
class ExternalName:
    """A parsed name: ``source:architecture[@weights]``; weights None means the library's default weights."""

    source: str
    architecture: str
    weights: str | None = None

    def __str__(self) -> str:
        return f"{self.source}:{self.architecture}" + (f"@{self.weights}" if self.weights else "")

    @property
    def random(self) -> bool:
        return self.weights == RANDOM


@dataclass
class ExternalModel:
    """A built model (eval mode) and what feeding it needs: the fields of a senet checkpoint."""

    model: nn.Module
    name: str
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int]
    card: dict = field(default_factory=dict)


def is_external(name: object) -> bool:
    """Whether ``name`` is a prefixed model name (``torchvision:...``, ``timm:...``) rather than a file path."""
    if not isinstance(name, (str, os.PathLike)):
        return False
    text = os.fspath(name)
    source, sep, rest = text.partition(":")
    return bool(sep) and source in SOURCES and "/" not in rest and not Path(text).is_file()


def parse_name(name: str) -> ExternalName:
    """``torchvision:mobilenet_v3_large@random`` -> ExternalName; ExternalModelError for a malformed name."""
    source, _, rest = str(name).strip().partition(":")
    architecture, _, weights = rest.partition("@")
    if source not in SOURCES:
        raise ExternalModelError(f"{name}: unknown model source {source!r} (known: {', '.join(SOURCES)})")
    if not architecture.strip() or any(c.isspace() for c in architecture):
        raise ExternalModelError(f"{name}: give a model name after '{source}:', e.g. {source}:"
                                 f"{'mobilenet_v3_large' if source == 'torchvision' else 'seresnet50'}")
    weights = weights.strip() or None
    if weights and weights.lower() in (RANDOM, "none"):
        weights = RANDOM
    return ExternalName(source, architecture.strip(), weights)


def canonical_name(name: str) -> str:
    """The one spelling of a model name: ``' torchvision:mobilenet_v3_large@ RANDOM '`` ->
    ``torchvision:mobilenet_v3_large@random`` (spaces around the parts dropped, ``@random``/``@none`` in lower
    case, an empty ``@`` dropped). Two names that build the same model the same way have the same spelling, so
    caches and a public demo's list of models compare spellings. ExternalModelError for a malformed name."""
    return str(parse_name(name))


def load_external(name: str, fetch_weights: bool = True) -> ExternalModel:
    """Build the named model; with ``fetch_weights`` (and no ``@random``) load its pretrained weights, downloading
    them once into the library's cache. ``fetch_weights=False`` builds the architecture only (``senet info``)."""
    parsed = parse_name(name)
    builder = _torchvision if parsed.source == "torchvision" else _timm
    fetch = fetch_weights and not parsed.random
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # random initialisation is the same every time
        loaded = builder(parsed, fetch)
    loaded.model.eval()
    state = "pretrained" if fetch else RANDOM if parsed.random or not loaded.card.get("weights_available") \
        else "not loaded"
    loaded.card.update(weights_state=state, weights_note=weights_note(loaded.card, state), external=True)
    return loaded


def source_version(name: str) -> str:
    """The installed version of the library a prefixed name comes from ("" if it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(parse_name(name).source)
    except (PackageNotFoundError, ExternalModelError):
        return ""


def weights_note(card: dict, state: str) -> str:
    """One line on the weights, for pages and the command line."""
    if state == "pretrained":
        return f"pretrained: {card['source']} weights {card['weights']} ({card.get('weights_dataset', 'ImageNet')})"
    if state == "not loaded":
        return (f"architecture only: {card['source']}'s weights {card['weights_available']} are fetched (once, into "
                "the cache) when the model is opened without @random")
    return "random initialisation (no pretrained weights loaded): its predictions and gates mean nothing"


def _no_se(parsed: ExternalName) -> ExternalModelError:
    return ExternalModelError(f"{parsed}: has no SE modules, so there are no gates to explore; SE models of "
                              f"{parsed.source} include {_SE_HINT[parsed.source]}")


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) if isinstance(exc, URLError) else None  # not "<urlopen error ...>"
    text = " ".join(str(reason if reason is not None else exc).split()) or type(exc).__name__
    return text[:160]


@contextlib.contextmanager
def _quiet_download():
    """Hold back what the libraries print while fetching (torch.hub's "Downloading: ..." line): passed on after a
    download, but after a failure without those lines, so that the failure is one line in all."""
    out, err = io.StringIO(), io.StringIO()
    failed = True
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
        failed = False
    finally:
        for held, stream in ((out, sys.stdout), (err, sys.stderr)):
            lines = held.getvalue().splitlines(keepends=True)
            stream.write("".join(line for line in lines if not (failed and line.startswith("Downloading: "))))


def _fetch_failed(parsed: ExternalName, what: str, cache: str, exc: BaseException | str) -> ExternalModelError:
    reason = exc if isinstance(exc, str) else _short(exc)
    return ExternalModelError(f"{parsed}: its pretrained weights {what} could not be fetched into {cache} ({reason});"
                              f" connect to the internet once, or use {parsed.source}:{parsed.architecture}@random "
                              "for random weights")


# --------------------------------------------------------------------------- torchvision
def _torchvision_weights(parsed: ExternalName):
    """The weights enum member that describes the model (DEFAULT, or the one named), or None if it has none."""
    import torchvision.models as tvm

    if parsed.architecture not in tvm.list_models(module=tvm):
        raise ExternalModelError(f"{parsed}: torchvision has no classification model {parsed.architecture!r}; "
                                 f"SE models include {_SE_HINT['torchvision']}")
    try:
        enum = tvm.get_model_weights(parsed.architecture)
    except (ValueError, KeyError):
        return None
    if parsed.weights in (None, RANDOM):
        return enum.DEFAULT
    try:
        return enum[parsed.weights]
    except KeyError:
        raise ExternalModelError(f"{parsed}: unknown weights {parsed.weights!r} for {parsed.architecture}; "
                                 f"known: {', '.join(w.name for w in enum)}") from None


def _torchvision(parsed: ExternalName, fetch: bool) -> ExternalModel:
    import torchvision
    import torchvision.models as tvm

    member = _torchvision_weights(parsed)
    classes = list(member.meta["categories"]) if member is not None else [f"class {i}" for i in range(1000)]
    model = tvm.get_model(parsed.architecture, weights=None, num_classes=len(classes))
    if not se_blocks(model):
        raise _no_se(parsed)
    if fetch and member is None:
        raise ExternalModelError(f"{parsed}: torchvision has no pretrained weights for it; use @random")
    if fetch:
        cache = str(Path(torch.hub.get_dir()) / "checkpoints")
        try:
            with _quiet_download():
                state = member.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # noqa: BLE001 -- URLError, OSError, a corrupt download: one line, never a traceback
            raise _fetch_failed(parsed, member.name, cache, exc) from None
        model.load_state_dict(state)
    t = member.transforms() if member is not None else None
    crop, resize = (t.crop_size[0], t.resize_size[0]) if t is not None else (224, 256)
    card = {"source": "torchvision", "library_version": torchvision.__version__, "architecture": parsed.architecture,
            "pretrained": fetch, "weights": member.name if fetch else None,
            "weights_available": member.name if member is not None and not fetch else None,
            "dataset": "ImageNet-1k" if fetch else None, "weights_dataset": "ImageNet-1k",
            "preprocessing": {"resize": resize, "crop_pct": crop / resize, "crop_mode": "center",
                              "interpolation": t.interpolation.value if t is not None else "bilinear"}}
    if fetch:
        metrics = (member.meta.get("_metrics") or {}).get("ImageNet-1K") or {}
        card["published_top1"] = metrics.get("acc@1")  # percent, as torchvision publishes it for these weights
    mean, std = (tuple(t.mean), tuple(t.std)) if t is not None else ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return ExternalModel(model, str(parsed), classes, mean, std, (3, crop, crop), card)


# --------------------------------------------------------------------------- timm
def _import_timm(parsed: ExternalName):
    try:
        import timm
        import timm.data
    except ImportError:
        raise ExternalModelError(f"{parsed}: {TIMM_HINT}") from None
    return timm


def _timm_classes(model: nn.Module) -> tuple[list[str], str | None]:
    """Readable class names for the model's outputs from timm's ImageNet info (first lemma of each class, made
    unique), and the ImageNet subset; numbered classes when the head is not an ImageNet one."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    n = int(getattr(model, "num_classes", 0) or model.pretrained_cfg.get("num_classes") or 0)
    subset = infer_imagenet_subset(model)
    if subset is None:
        return [f"class {i}" for i in range(n)], None
    info = ImageNetInfo(subset)
    lemmas = [d.split(", ") for d in info.label_descriptions()]
    names = _unique([ls[0] for ls in lemmas], [f"{ls[0]} ({ls[1]})" if len(ls) > 1 else ls[0] for ls in lemmas])
    return _unique(names, [f"{n} ({synset})" for n, synset in zip(names, info.label_names())]), subset


def _unique(names: list[str], fuller: list[str]) -> list[str]:
    """``names``, with the ``fuller`` form where a name occurs more than once."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return [n if counts[n] == 1 else f for n, f in zip(names, fuller)]


def _hub_unreachable(cfg: dict) -> str | None:
    """Why the Hugging Face hub cannot be reached for weights that are not in the local cache, else None: a
    quick check, so that an offline request fails at once instead of after the hub client's retries."""
    hub_id = cfg.get("hf_hub_id")
    if not hub_id or os.environ.get("HF_HUB_OFFLINE"):
        return None  # a URL download fails fast by itself; so does the hub client in offline mode
    from huggingface_hub import try_to_load_from_cache

    repo = hub_id.split("@")[0]
    if any(isinstance(try_to_load_from_cache(repo, f), str) for f in ("model.safetensors", "pytorch_model.bin")):
        return None
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # a proxy may reach what this machine's resolver cannot
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError as exc:
        return f"cannot reach {host}: {_short(exc)}"
    return None


def _timm(parsed: ExternalName, fetch: bool) -> ExternalModel:
    timm = _import_timm(parsed)
    arch = parsed.architecture
    base, tag = timm.models.split_model_name_tag(arch)
    if not timm.is_model(base):
        raise ExternalModelError(f"{parsed}: timm {timm.__version__} has no model {base!r}; SE models include "
                                 f"{_SE_HINT['timm']}")
    try:
        model = timm.create_model(arch, pretrained=False)
    except (RuntimeError, ValueError, KeyError) as exc:  # an unknown pretrained tag
        raise ExternalModelError(f"{parsed}: {_short(exc)}") from None
    if not se_blocks(model):
        raise _no_se(parsed)
    cfg = dict(model.pretrained_cfg or {})
    label = f"{base}.{cfg.get('tag')}" if cfg.get("tag") else base
    if fetch:
        from huggingface_hub.constants import HF_HUB_CACHE

        cache = f"{HF_HUB_CACHE}" if cfg.get("hf_hub_id") else str(Path(torch.hub.get_dir()) / "checkpoints")
        reason = _hub_unreachable(cfg)
        if reason:
            raise _fetch_failed(parsed, label, cache, reason)
        try:
            with _quiet_download():
                model = timm.create_model(arch, pretrained=True)
        except Exception as exc:  # noqa: BLE001 -- hub and URL errors of many types: one line, never a traceback
            raise _fetch_failed(parsed, label, cache, exc) from None
    data = timm.data.resolve_model_data_config(model)
    classes, subset = _timm_classes(model)
    card = {"source": "timm", "library_version": timm.__version__, "architecture": base, "pretrained": fetch,
            "weights": label if fetch else None, "weights_available": label if not fetch and cfg.get("tag") else None,
            "dataset": (subset or "its own classes") if fetch else None, "weights_dataset": subset or "unknown",
            "preprocessing": {"crop_pct": float(data.get("crop_pct", 1.0)), "crop_mode": data.get("crop_mode", "center"),
                              "interpolation": data.get("interpolation", "bilinear")}}
    return ExternalModel(model, str(parsed), classes, tuple(data["mean"]), tuple(data["std"]),
                         tuple(int(v) for v in data["input_size"]), card)
