"""Property-based checks where a space of inputs beats a list: configurations and images.

Each property says what *any* input gives: a valid result or the module's own
one-line error, never another exception.
"""
from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from senet import ImageError, open_image, preprocess
from senet.data import CIFAR_MEAN, CIFAR_STD
from senet.models import list_models
from senet.training import ConfigError, TrainConfig, make_config

# 50 examples each in CI; ROBUSTNESS_EXAMPLES=2000 for a deeper search by hand.
SETTINGS = settings(max_examples=int(os.environ.get("ROBUSTNESS_EXAMPLES", 50)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
META = {"input_size": [3, 32, 32], "mean": list(CIFAR_MEAN), "std": list(CIFAR_STD)}

# --------------------------------------------------------------------------- configurations
junk = st.one_of(st.none(), st.booleans(), st.text(max_size=8), st.lists(st.integers(), max_size=2),
                 st.sampled_from([math.nan, math.inf, -math.inf, 0, 0.0, -1, -0.5, 2**63, 1e300, "1", b"1"]),
                 st.integers(-2**40, 2**40), st.floats())
# Plausible values of each field (valid or near the edge); a few fields at a time get junk instead.
PLAUSIBLE = {
    "epochs": st.integers(1, 50), "batch_size": st.integers(1, 2048), "lr": st.floats(1e-4, 2.0),
    "momentum": st.floats(0, 0.99), "weight_decay": st.floats(0, 0.01), "label_smoothing": st.floats(0, 0.5),
    "warmup_epochs": st.floats(0, 5), "reduction": st.sampled_from([1, 2, 4, 8, 16, 32]),
    "width": st.integers(1, 2), "seed": st.integers(0, 2**31), "split_seed": st.integers(0, 99),
    "val_size": st.one_of(st.floats(0.01, 0.5), st.integers(1, 5000)), "train_limit": st.integers(0, 1000),
    "log_every": st.integers(1, 100), "micro_batch": st.integers(1, 512), "crop_pad": st.integers(0, 16),
    "schedule": st.sampled_from(["constant", "cosine", "onecycle"]), "device": st.sampled_from(["auto", "cpu"]),
    "data": st.sampled_from(["cifar10", "folder:/tmp/x"]), "pad_mode": st.sampled_from(["zeros", "reflect"]),
    "flip": st.sampled_from(["random", "alternating", "none"]), "world_size": st.sampled_from([1, 1, 1, 2, 4]),
}
IMPLAUSIBLE = {"schedule": st.sampled_from(["exponential", "Cosine"]), "device": st.sampled_from(["gpu", "cuda:0", "tpu"]),
               "data": st.sampled_from(["imagenet", "folder:", " ", "cifar100"]), "pad_mode": st.just("edge"),
               "flip": st.just("always")}


@st.composite
def config_overrides(draw) -> dict:
    fields = sorted(PLAUSIBLE)
    chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=8))
    broken = draw(st.lists(st.sampled_from(fields), unique=True, max_size=3)) if draw(st.booleans()) else []
    out = {name: draw(PLAUSIBLE[name]) for name in chosen}
    for name in broken:
        out[name] = draw(st.one_of(junk, IMPLAUSIBLE.get(name, junk)))
    return out


def mostly(valid: st.SearchStrategy, *invalid: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` four times in five, else one of ``invalid``."""
    return st.integers(0, 4).flatmap(lambda i: valid if i else st.one_of(*invalid))


models = mostly(st.sampled_from(list_models()), st.sampled_from(["resnet21", "", "SE_RESNET20"]), junk)
recipes = mostly(st.sampled_from(["seed", "fast"]), st.sampled_from(["turbo", "", "Fast"]), junk)


@SETTINGS
@given(model=models, recipe=recipes, overrides=config_overrides())
def test_make_config_gives_a_valid_config_or_a_one_line_config_error(model, recipe, overrides) -> None:
    try:
        config = make_config(model, recipe, **overrides)
    except ConfigError as exc:
        event("refused")
        message = str(exc)
        assert message and "\n" not in message, f"one line, got {message!r}"
        return
    event("accepted")
    # accepted: every number the training loop relies on is in range
    assert isinstance(config, TrainConfig)
    for name in ("epochs", "batch_size", "log_every", "micro_batch"):
        value = getattr(config, name)
        assert type(value) is int and value > 0, f"{name}={value!r} was accepted"
    assert isinstance(config.lr, (int, float)) and math.isfinite(config.lr) and config.lr > 0
    assert 0 <= config.momentum < 1 and 0 <= config.label_smoothing < 1
    for name in ("weight_decay", "warmup_epochs", "val_size"):
        assert math.isfinite(getattr(config, name)), f"{name} must be finite"
    assert config.model in list_models()
    assert config.batch_size % config.world_size == 0


# --------------------------------------------------------------------------- images
MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "F"]


@st.composite
def images(draw) -> Image.Image:
    mode = draw(st.sampled_from(MODES))
    w, h = draw(st.integers(1, 96)), draw(st.integers(1, 96))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    if mode in ("I", "I;16"):
        hi = 65535 if mode == "I;16" else draw(st.sampled_from([1, 255, 2**31 - 1]))
        arr = rng.integers(0, hi, (h, w), endpoint=True)
        return Image.fromarray(arr.astype(np.uint16 if mode == "I;16" else np.int32))
    if mode == "F":
        return Image.fromarray(rng.normal(0, draw(st.sampled_from([1.0, 1e6])), (h, w)).astype(np.float32))
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=draw(st.integers(1, 256)))
    if mode == "PA":
        p = rgb.convert("P").convert("PA")
        return p
    return rgb.convert(mode)


@SETTINGS
@given(image=images())
def test_preprocess_of_any_mode_and_size_is_a_finite_model_input(image: Image.Image) -> None:
    try:
        x = preprocess(image, META)
    except ImageError as exc:
        assert "\n" not in str(exc)
        return
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32
    assert torch.isfinite(x).all(), f"{image.mode} {image.size} gave non-finite input"
    lo = min((0 - m) / s for m, s in zip(CIFAR_MEAN, CIFAR_STD))
    hi = max((1 - m) / s for m, s in zip(CIFAR_MEAN, CIFAR_STD))
    assert lo - 1e-4 <= float(x.min()) and float(x.max()) <= hi + 1e-4, "pixels stay within [0, 255] before normalising"


def encoded(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


SEED_FILES = {fmt: encoded(Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 20, 3), dtype=np.uint8)), fmt)
              for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")}


@pytest.mark.filterwarnings("ignore:Truncated File Read")  # PIL's TIFF reader warns, then we refuse the file
@SETTINGS
@given(fmt=st.sampled_from(sorted(SEED_FILES)), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8))
def test_damaged_image_files_open_to_a_usable_image_or_a_one_line_image_error(fmt, cut, flips) -> None:
    """Valid files of six formats, cut short and with random bytes overwritten (headers included)."""
    data = bytearray(SEED_FILES[fmt])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = bytes(data[: max(1, int(cut * len(data)))] if cut < 1 else data)
    try:
        x = preprocess(open_image(data, name=f"damaged.{fmt.lower()}"), META)
    except ImageError as exc:
        message = str(exc)
        assert message.startswith(f"damaged.{fmt.lower()}:") or message.startswith("image:"), message
        assert "\n" not in message
        return
    assert x.shape == (1, 3, 32, 32) and torch.isfinite(x).all()

