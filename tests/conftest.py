"""Shared fixtures: tiny synthetic datasets and checkpoints, and the real data when present."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED_TARBALL = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg-train.tar.gz"

torch.set_num_threads(min(2, os.cpu_count() or 1))


def make_folder_dataset(root: Path, classes: tuple[str, ...] = ("red", "green", "blue"), per_class: int = 20,
                        size: int = 32, seed: int = 0, test_split: bool = False) -> Path:
    """An ImageFolder tree ``root/train/<class>/*.png`` whose classes differ by dominant colour (learnable)."""
    rng = np.random.default_rng(seed)
    parts = ["train", "test"] if test_split else ["train"]
    for part in parts:
        for k, name in enumerate(classes):
            d = root / part / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                img = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
                img[..., k % 3] = rng.integers(150, 256, size=(size, size), dtype=np.uint8)
                if k >= 3:  # more classes than colours: add a stripe pattern
                    img[:: 2 + k % 3] = 255
                Image.fromarray(img).save(d / f"{i:04d}.png")
    return root


# ImageNet classes by WordNet id, as ImageNet names its class folders: the SENet paper's Fig. 6 classes and tabby
IMAGENET_FOLDERS = {"n01443537": "goldfish", "n02110958": "pug", "n02123045": "tabby", "n02690373": "airliner",
                    "n09246464": "cliff"}


def make_photo_folder(root: Path, folders: tuple[str, ...] | list[str] = tuple(IMAGENET_FOLDERS), per_class: int = 2,
                      parts: tuple[str, ...] = ("test",), size: tuple[int, int] = (120, 90),
                      suffixes: tuple[str, ...] = (".JPEG",)) -> Path:
    """Photos for an ImageNet model: ``root/<part>/<folder>/`` (``folders`` named by WordNet id or readably), each
    ``size`` (width, height) of random pixels with one colour channel saturated per class, the file types taking
    turns over ``suffixes``."""
    rng = np.random.default_rng(0)
    width, height = size
    for part in parts:
        for k, name in enumerate(folders):
            (root / part / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                pixels[..., k % 3] = 255
                Image.fromarray(pixels).save(root / part / name / f"{name}_{i}{suffixes[i % len(suffixes)]}")
    return root


@pytest.fixture
def one_torch_thread():
    """Tiny models train fastest on one thread, and do not fight other processes for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """A 3-class, 20-images-per-class folder dataset (train only)."""
    return make_folder_dataset(tmp_path / "tiny")


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """An untrained se_resnet20 checkpoint whose classes match tiny_folder (sorted, as ImageFolder orders them)."""
    from senet import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("se_resnet20", num_classes=3)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, model, model_name="se_resnet20", model_options={"num_classes": 3, "reduction": 16},
                    classes=("blue", "green", "red"), val_acc=0.5, history=[])
    return path


def senet_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m senet ARGS`` and capture its output."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "senet", *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The development CIFAR-10 JPEG copy as an ImageFolder root, or skip.

    Found through $SENET_TEST_DATA (a folder with train/<class>/), else unpacked
    once from ../shared/datasets/cifar10-jpeg-train.tar.gz into $SENET_TEST_CACHE
    (default /tmp/senet-test-data).
    """
    env = os.environ.get("SENET_TEST_DATA")
    if env:
        if not (Path(env) / "train").is_dir():
            pytest.skip(f"SENET_TEST_DATA={env} has no train/ folder")
        return Path(env)
    if not SHARED_TARBALL.is_file():
        pytest.skip(f"real CIFAR-10 data absent: set SENET_TEST_DATA or provide {SHARED_TARBALL}")
    cache = Path(os.environ.get("SENET_TEST_CACHE", "/tmp/senet-test-data"))
    root = cache / "cifar10-jpeg"
    done = cache / ".unpacked"
    if not done.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with tarfile.open(SHARED_TARBALL) as tar:
            tar.extractall(cache, filter="data")
        done.write_text("ok")
    return root


def call_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``senet`` in this process: (exit code, stdout, stderr)."""
    from senet.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- the dashboard under AppTest
@contextlib.contextmanager
def app_environment(checkpoints: Path, runs: Path, data: str, data_dir: Path, **extra: str) -> Iterator[None]:
    """The dashboard's environment variables (``SENET_CHECKPOINTS`` and friends, plus ``extra``) for a test
    module's app, restored afterwards. Every page test builds its app through this one fixture helper."""
    values = {"SENET_CHECKPOINTS": str(checkpoints), "SENET_RUNS": str(runs), "SENET_DATA": data,
              "SENET_DATA_DIR": str(data_dir), **extra}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in values.items():
            mp.setenv(k, v)
        yield


@contextlib.contextmanager
def shipped_on_sample(tmp: Path, name: str = "se_resnet20") -> Iterator[dict]:
    """A copy of shipped checkpoint ``name`` under ``tmp``, the dashboard's environment set to it over the bundled
    sample with caches of its own: {"checkpoint": its path, "cache": the data directory}."""
    checkpoints = tmp / "checkpoints"
    checkpoints.mkdir()
    shutil.copy2(ROOT / "checkpoints" / f"{name}.pt", checkpoints / f"{name}.pt")
    with app_environment(checkpoints, tmp / "runs", "sample", tmp / "cache"):
        yield {"checkpoint": checkpoints / f"{name}.pt", "cache": tmp / "cache"}


def open_app(page: str | None = None, *, query: dict | None = None, split: str = "val", timeout: float = 180):
    """A new browser session of the dashboard (``app.py``) under AppTest, on ``page`` (a file under
    ``senet_dashboard/views/``), with ``query`` in its address and ``split`` chosen in the sidebar."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.query_params.update(query or {})
    at.run()
    if split != "val":
        at.sidebar.segmented_control(key="split").set_value(split).run()
    if page:
        at.switch_page(page).run()
    return at


def open_view(view: str, **query: str):
    """The Excitation explorer opened on ``view`` (its address name) with ``query`` (image, block, ...), checked to
    show no exception and no error."""
    at = open_app("senet_dashboard/views/excitation.py", query={"view": view, **query})
    no_exceptions(at)
    assert not at.error, texts(at, "error")
    return at


def texts(at, kind: str) -> list[str]:
    """The text of every element of one kind (``markdown``, ``caption``, ``error``, ...) on an AppTest page."""
    return [str(e.value) for e in getattr(at, kind)]


def no_exceptions(at) -> None:
    assert not at.exception, f"expected no exception, got: {[e.value for e in at.exception]}"
