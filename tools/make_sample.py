"""Build senet/data/cifar10-jpeg-val-sample.npz: the dashboard's bundled data (the ``sample`` spec).

50 images per class drawn from the shipped checkpoints' own validation split of the CIFAR-10 JPEG q75 copy
(``senet.load_split("folder:DATA", "val", val_size=0.1, split_seed=0)``, 5,000 images no shipped model was
trained on), so figures on the sample are honest held-out figures. The draw is deterministic: a class-stratified
choice (``senet.data.stratified_split``, seed ``--seed``) of ``--per-class`` images per class, in their order in
the training folder. The file is byte-for-byte reproducible (fixed zip timestamps).

    .venv/bin/python tools/make_sample.py --data folder:/work/data/cifar10-jpeg

The ``.npz`` holds ``images`` (N, 3, 32, 32) uint8, ``labels`` (N,) int64, ``classes``, ``files`` (each image's
path under the source folder, e.g. ``train/cat/0042.jpg``), ``source_index`` (its position among the folder's
decoded training images, the index ``stratified_split`` draws from), ``val_index`` (its position in the
validation split), and the provenance: ``name``, ``val_size``, ``split_seed``, ``sample_seed`` and
``val_fingerprint`` (:func:`senet.data.fingerprint` of the validation split drawn from, which the shipped checkpoints
record as theirs: pages call the sample "a subset of" that split, by content, whatever path the copy is at).
"""
from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from senet.data import (SAMPLE_FILE, SAMPLE_NAME, DataError, fingerprint, image_to_uint8,  # noqa: E402
                        load_split, open_image, parse_spec, stratified_split)
from senet.data.images import IMAGE_SIZE  # noqa: E402


def folder_files(path: Path) -> list[str]:
    """The training images' paths under ``path``, in the order the folder source decodes them."""
    files = []
    for d in sorted(d for d in (path / "train").iterdir() if d.is_dir() and not d.name.startswith(".")):
        files += [f"train/{d.name}/{f.name}" for f in sorted(d.iterdir()) if f.is_file() and not f.name.startswith(".")]
    return files


def build(spec: str, data_dir: str, per_class: int = 50, val_size: float = 0.1, split_seed: int = 0,
          seed: int = 0) -> dict[str, np.ndarray]:
    """The sample's arrays; checks that each chosen image is the file it is recorded as."""
    kind, path = parse_spec(spec)
    if kind != "folder":
        raise DataError(f"{spec}: the sample is drawn from a folder source (folder:PATH), for its file names")
    val = load_split(spec, "val", data_dir, val_size, split_seed)
    files = folder_files(path)
    k = len(val.classes)
    counts = np.bincount(val.labels.numpy(), minlength=k)
    if counts.min() < per_class:
        raise DataError(f"{spec}: the validation split has only {counts.min()} images of some class, "
                        f"fewer than {per_class}")
    _, keep = stratified_split(val.labels, per_class * k, seed)
    source_index = val.indices[keep].numpy()
    if max(source_index) >= len(files):
        raise DataError(f"{spec}: fewer files than decoded images; cannot name the sample's files")
    chosen = [files[i] for i in source_index]
    for pos, name in zip(keep.tolist(), chosen):  # the recorded file really is that image
        decoded = image_to_uint8(open_image(path / name), IMAGE_SIZE)
        if not bool((decoded == val.images[pos]).all()):
            raise DataError(f"{spec}: {name} does not decode to validation image #{pos}; files were skipped?")
    labels = val.labels[keep].numpy()
    if np.bincount(labels, minlength=k).tolist() != [per_class] * k:
        raise DataError(f"{spec}: the draw is not {per_class} images per class")
    return {"images": val.images[keep].numpy(), "labels": labels.astype(np.int64),
            "classes": np.array(val.classes), "files": np.array(chosen), "source_index": source_index.astype(np.int64),
            "val_index": keep.numpy().astype(np.int64), "name": np.array(SAMPLE_NAME),
            "val_size": np.array(val_size), "split_seed": np.array(split_seed), "sample_seed": np.array(seed),
            "val_fingerprint": np.array(fingerprint(val))}


def write_npz(arrays: dict[str, np.ndarray], out: Path) -> None:
    """A compressed ``.npz`` that ``np.load`` reads, with fixed timestamps so that equal arrays give equal bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buffer.getvalue(), compresslevel=9)
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="folder:/work/data/cifar10-jpeg", help="the JPEG copy, as folder:PATH")
    p.add_argument("--data-dir", default="./data", help="where the decoded-image cache lives")
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--val-size", type=float, default=0.1, help="the shipped checkpoints' validation size")
    p.add_argument("--split-seed", type=int, default=0, help="the shipped checkpoints' split seed")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw from the validation split")
    p.add_argument("--out", type=Path, default=SAMPLE_FILE)
    args = p.parse_args(argv)
    try:
        arrays = build(args.data, args.data_dir, args.per_class, args.val_size, args.split_seed, args.seed)
    except DataError as exc:
        print(f"make_sample: error: {exc}", file=sys.stderr)
        return 2
    write_npz(arrays, args.out)
    print(f"{args.out}: {len(arrays['labels'])} images, {args.per_class} per class of "
          f"{len(arrays['classes'])}, {args.out.stat().st_size / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
