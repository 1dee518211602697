"""Data sources: dataset specs, decoding once into in-memory uint8 tensors, and the on-disk cache.

A dataset spec is ``cifar10`` (torchvision's download, as the seed did), ``cifar100``
(torchvision's CIFAR-100 download, its 100 fine classes), ``folder:PATH`` (ImageFolder layout
``PATH/train/<class>/*`` with an optional ``PATH/test/<class>/*``) or ``sample`` (the bundled 500
held-out validation images of the shipped checkpoints, ``senet/data/cifar10-jpeg-val-sample.npz``; only a ``val`` part). Each folder or
CIFAR source is decoded once into a uint8 tensor (N, 3, 32, 32) cached on disk,
keyed by the source path and its modification times. Augmentation (pad + random crop, horizontal flip) and normalisation run
on whole batches of tensors: no per-image PIL work in the training loop.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import tarfile
import urllib.error
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_torch_save
from .images import IMAGE_SIZE, ImageError, image_to_uint8, open_image

__all__ = ["DataError", "TensorDataset", "parse_spec", "load_source", "folder_root", "DEFAULT_DATA_DIR",
           "CifarSource", "CIFAR_SOURCES", "CIFAR_FILES", "cifar_complete", "canonical_spec", "SAMPLE_FILE", "SAMPLE_NAME", "SAMPLE_ONLY_VAL", "load_sample"]

log = logging.getLogger(__name__)
DEFAULT_DATA_DIR = os.environ.get("SENET_DATA_DIR", "./data")
# The bundled sample (built by tools/make_sample.py): 50 images per class of the shipped checkpoints' own
# validation split of the JPEG copy (val_size 0.1, split_seed 0), so no shipped model trained on them.
SAMPLE_FILE = Path(__file__).resolve().parent / "cifar10-jpeg-val-sample.npz"  # package data: ships in the wheel
SAMPLE_NAME = "CIFAR-10 (JPEG q75 copy): bundled sample, 50 held-out validation images per class"
SAMPLE_ONLY_VAL = ("sample: the bundled sample has only held-out validation images (split 'val'); "
                   "for train or test use cifar10 or folder:PATH")
_SPECS = "expected 'cifar10', 'cifar100' or 'folder:PATH' (or 'sample', the bundled sample)"


@dataclass(frozen=True)
class CifarSource:
    """A torchvision CIFAR download: its dataset class, its name, the folder its archive unpacks to
    (under the data directory), the test file in that folder, and the archive's size."""

    dataset: str
    title: str
    folder: str
    test_file: str
    megabytes: int


CIFAR_SOURCES = {"cifar10": CifarSource("CIFAR10", "CIFAR-10", "cifar-10-batches-py", "test_batch", 170),
                 "cifar100": CifarSource("CIFAR100", "CIFAR-100", "cifar-100-python", "test", 169)}
# the files torchvision's archives unpack to (torchvision.datasets.CIFAR10/100's train_list, test_list and meta)
CIFAR_FILES = {"cifar10": ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                           "test_batch", "batches.meta"),
               "cifar100": ("train", "test", "meta")}


class DataError(ValueError):
    """A dataset that cannot be used; the message names it and says why, in one line.

    ``use_split`` names the split to use instead when the asked one does not exist ("val" for a folder without
    a test part): each interface says how to choose it (``--split val``, the sidebar's Split).
    """

    def __init__(self, message: str, use_split: str | None = None) -> None:
        super().__init__(message)
        self.use_split = use_split


@dataclass
class TensorDataset:
    """Images as a uint8 tensor (N, 3, 32, 32), labels (N,) int64, and class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str = ""
    split: str = ""
    indices: torch.Tensor | None = None  # positions in the source's full train/test set
    names: list[str] | None = None  # folder sources: each image's file, relative to the folder ("train/cat/1.png")
    subset_of: str | None = None  # the fingerprint of the split these images were drawn from (the bundled sample)

    def __len__(self) -> int:
        return len(self.labels)


# --------------------------------------------------------------------------- specs and sources
def parse_spec(spec: str) -> tuple[str, Path | None]:
    """``"cifar10"`` -> ("cifar10", None) (``"cifar100"`` alike); ``"folder:PATH"`` -> ("folder", PATH);
    ``"sample"`` -> ("sample", None)."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"dataset spec {spec!r}: {_SPECS}")
    if "\x00" in spec:
        raise DataError(f"dataset spec {spec[:80]!r}: contains a NUL byte, which no path can hold")
    spec = spec.strip()
    if spec in CIFAR_SOURCES or spec == "sample":
        return spec, None
    if spec.startswith("folder:") and len(spec) > len("folder:"):
        return "folder", Path(spec[len("folder:"):]).expanduser()
    raise DataError(f"unknown dataset {spec!r}: {_SPECS}")


def canonical_spec(spec: str) -> str:
    """The one spelling of a dataset spec, for every cache key and prepared result: ``folder:`` with its path
    absolute and normalised (``~`` expanded; ``PATH/``, ``PATH//x``, ``PATH/./x`` are ``PATH/x``; a ``..`` is
    kept, as it may cross a symlink); other specs stripped. Raises :class:`DataError` for a malformed spec."""
    kind, path = parse_spec(spec)
    return f"folder:{path.absolute()}" if kind == "folder" else kind


def folder_root(path: Path, part: str) -> Path:
    """The class-folder root of ``part`` ('train' or 'test') in a folder dataset."""
    if not path.exists():
        raise DataError(f"folder:{path}: no such directory")
    if not path.is_dir():
        raise DataError(f"folder:{path}: not a directory")
    root = path / part
    if not root.is_dir():
        if part == "test":
            raise DataError(f"folder:{path}: has no test split (no {root} folder); use the val split", use_split="val")
        raise DataError(f"folder:{path}: no 'train' folder (expected {path}/train/<class>/<image>)")
    return root


def _class_dirs(root: Path) -> list[Path]:
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise DataError(f"{root}: no class subfolders (expected {root}/<class>/<image>)")
    return dirs


def _check_same_classes(path: Path) -> None:
    """A folder's test split must have exactly the train split's classes (labels are folder positions), when
    it has a train split: a folder of test photos alone (an ImageNet model's validation photos) is read as it is."""
    if not (path / "train").is_dir():
        return
    train = [d.name for d in _class_dirs(folder_root(path, "train"))]
    test = [d.name for d in _class_dirs(folder_root(path, "test"))]
    if train != test:
        raise DataError(f"folder:{path}: test classes {test} differ from train classes {train}")


def _source_key(kind: str, root: Path) -> str:
    """A cache key from the source's path and the modification times of it and its folders; for a folder source
    also every image file's name, size and modification time (an image edited in place changes the key; about
    0.3 s for 50,000 files)."""
    h = hashlib.sha256("|".join([kind, str(root.resolve()), str(root.stat().st_mtime_ns)]).encode())
    for d in sorted((e for e in os.scandir(root) if e.is_dir()), key=lambda e: e.name):
        h.update(f"|{d.name}:{d.stat().st_mtime_ns}".encode())
        if kind == "folder":
            for f in sorted(os.scandir(d.path), key=lambda e: e.name):
                st = f.stat()
                h.update(f"|{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _decode_folder(root: Path) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """Images, labels, class names, and each image's file relative to the folder source (``train/<class>/<file>``)."""
    classes, images, labels, names, skipped = [], [], [], [], 0
    for label, d in enumerate(_class_dirs(root)):
        classes.append(d.name)
        count = 0
        for f in sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")):
            try:
                images.append(image_to_uint8(open_image(f), IMAGE_SIZE))
            except ImageError:
                skipped += 1
                continue
            labels.append(label)
            names.append(f"{root.name}/{d.name}/{f.name}")
            count += 1
        if count == 0:
            raise DataError(f"{d}: class folder '{d.name}' has no readable images")
    if skipped:
        log.warning("%s: skipped %d file(s) that are not readable images", root, skipped)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes, names


_NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException)
_UNPACK_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def _cifar_failure(kind: str, dataset: type, data_dir: Path, exc: Exception) -> str:
    """One line saying why torchvision could not give ``kind`` (offline, a bad archive, bad unpacked files)."""
    from torchvision.datasets.utils import check_integrity

    title = CIFAR_SOURCES[kind].title
    archive = data_dir / dataset.filename
    why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:100]}"
    bad_archive = archive.is_file() and not check_integrity(str(archive), dataset.tgz_md5)
    way_out = "use --data folder:PATH with images in PATH/train/<class>/"
    if isinstance(exc, _NETWORK_ERRORS):
        damaged = f"; the {archive.name} there is incomplete or corrupt (MD5 mismatch)" if bad_archive else ""
        return f"{kind}: could not download {title} into {data_dir} ({why}){damaged}; offline? {way_out}"
    if bad_archive:
        return (f"{kind}: {archive} does not match {title}'s published MD5 checksum (corrupt or incomplete "
                f"download); delete it and try again, or {way_out}")
    if isinstance(exc, _UNPACK_ERRORS):
        return f"{kind}: cannot unpack {archive} ({why}); delete it and try again, or {way_out}"
    folder = data_dir / CIFAR_SOURCES[kind].folder
    return (f"{kind}: the unpacked {title} files in {folder} are unreadable or corrupt ({why}); delete that folder "
            f"and try again, or {way_out}")


def cifar_complete(kind: str, data_dir: str | os.PathLike) -> bool:
    """Whether every file torchvision unpacks for ``cifar10`` or ``cifar100`` is in the data directory (a folder
    with some of them missing is an incomplete download: reading it would start the download again)."""
    folder = Path(data_dir) / CIFAR_SOURCES[kind].folder
    return all((folder / name).is_file() for name in CIFAR_FILES[kind])


NO_DOWNLOAD = "not (completely) downloaded in {data_dir}, and downloads are off here"


def _decode_cifar(kind: str, data_dir: Path, train: bool,
                  download: bool = True) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A torchvision CIFAR part (downloaded and checked against torchvision's MD5 checksums on first use; with
    ``download`` False only read, a missing file or checksum a one-line :class:`DataError`)."""
    import torchvision

    dataset = getattr(torchvision.datasets, CIFAR_SOURCES[kind].dataset)
    if not download and not cifar_complete(kind, data_dir):
        raise DataError(f"{kind}: {NO_DOWNLOAD.format(data_dir=data_dir)}")
    try:
        ds = dataset(root=str(data_dir), train=train, download=download)
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        labels, classes = torch.tensor(ds.targets, dtype=torch.int64), [str(c) for c in ds.classes]
    except Exception as exc:  # noqa: BLE001 -- urllib, socket, checksum, archive and pickle errors alike
        raise DataError(_cifar_failure(kind, dataset, data_dir, exc)) from None
    if len(labels) != len(images) or (len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(classes)):
        raise DataError(f"{kind}: the unpacked files in {data_dir / CIFAR_SOURCES[kind].folder} hold "
                        f"{len(images)} images, {len(labels)} labels and {len(classes)} class names that do not "
                        "agree; delete that folder and try again")
    return images, labels, classes


def load_sample(path: str | os.PathLike = SAMPLE_FILE) -> TensorDataset:
    """The bundled sample: 500 held-out validation images (50 per class), read straight from its ``.npz``; its
    ``subset_of`` is the fingerprint of the validation split they were drawn from (``val_fingerprint``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"sample: the bundled sample file {path} is missing (rebuild it with tools/make_sample.py)")
    try:
        with np.load(path) as z:
            images, labels, classes = z["images"], z["labels"], [str(c) for c in z["classes"]]
            drawn_from = str(z["val_fingerprint"]) if "val_fingerprint" in z.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"sample: cannot read {path} ({type(exc).__name__}: {str(exc)[:100]})") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (3, IMAGE_SIZE[0], IMAGE_SIZE[1]) \
            or labels.shape != (len(images),):
        raise DataError(f"sample: {path} holds images of shape {images.shape} ({images.dtype}), "
                        f"expected (N, 3, 32, 32) uint8 with one label each")
    return TensorDataset(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)), classes,
                         "sample", "val", torch.arange(len(labels)), subset_of=drawn_from)


def load_source(spec: str, part: str = "train", data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
                cache_dir: str | os.PathLike | None = None, download: bool = True) -> TensorDataset:
    """All images of ``part`` ('train' or 'test'; for ``sample`` only 'val') of a source, through the
    on-disk uint8 cache (the sample needs none). ``download=False`` never downloads: a CIFAR source whose
    unpacked files are not all there is a one-line :class:`DataError`, decoded cache or not."""
    kind, path = parse_spec(spec)
    if kind == "sample":
        if part != "val":
            raise DataError(SAMPLE_ONLY_VAL)
        return load_sample()
    data_dir = Path(data_dir)
    if kind == "folder":
        root = folder_root(path, part)
        key_root = root
    else:
        key_root = data_dir / CIFAR_SOURCES[kind].folder
        if not download and not cifar_complete(kind, data_dir):
            raise DataError(f"{kind}: {NO_DOWNLOAD.format(data_dir=data_dir)}")
    cache_dir = Path(cache_dir) if cache_dir else data_dir / ".senet-cache"
    cache_file = None
    if key_root.is_dir():
        cache_file = cache_dir / f"{kind}-{part}-{_source_key(kind, key_root)}.pt"
        if cache_file.is_file():
            try:
                c = torch.load(cache_file, weights_only=True)
                if kind != "folder" or "names" in c:  # a folder cache from before file names is rebuilt
                    return TensorDataset(c["images"], c["labels"], list(c["classes"]), canonical_spec(spec), part,
                                         names=c.get("names"))
            except Exception:  # noqa: BLE001 -- a broken cache is rebuilt
                log.warning("%s: unreadable cache, decoding again", cache_file)
    if kind == "folder":
        if part == "test":
            _check_same_classes(path)
        images, labels, classes, names = _decode_folder(root)
    else:
        images, labels, classes = _decode_cifar(kind, data_dir, train=(part == "train"), download=download)
        names = None
        cache_file = cache_dir / f"{kind}-{part}-{_source_key(kind, key_root)}.pt"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cached = {"images": images, "labels": labels, "classes": classes}
        atomic_torch_save(cached if names is None else dict(cached, names=names), cache_file)
    except OSError as exc:
        log.warning("could not write the data cache %s: %s", cache_file, exc)
    return TensorDataset(images, labels, classes, canonical_spec(spec), part, names=names)
