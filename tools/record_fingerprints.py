"""Record the data fingerprints of checkpoints trained before runs recorded them (the shipped ones), in place.

    .venv/bin/python tools/record_fingerprints.py --data folder:/tmp/cifar10-jpeg --check-sample checkpoints/*.pt

For each checkpoint: the splits it used are rebuilt from ``--data`` with its recorded ``val_size``, ``split_seed``
and train limit; the data must be the one it was trained on: the same class names, as many held-out images as it
recorded, and its recorded accuracy on that split recomputed within ``--tolerance`` points (``--no-check`` skips
the evaluation). Then ``data_fingerprint`` (:func:`senet.data.fingerprint` of the training images and of the
scored split) is written into its metadata atomically; the weights and every other field are left as they were,
and the tool reads the file back to verify that each weight tensor is byte-identical. A checkpoint that already
records other fingerprints is refused. ``--check-sample`` also checks that the bundled sample (``sample``) was drawn
from the validation split given (its ``val_fingerprint``, and each image equal to the one at its recorded position).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from senet.analysis.evaluate import checkpoint_split_options, evaluate_checkpoint  # noqa: E402
from senet.checkpoint import CheckpointError, read_checkpoint  # noqa: E402
from senet.data import (SAMPLE_FILE, DataError, fingerprint, limit_split, load_sample, load_split,  # noqa: E402
                        recorded_fingerprints)
from senet.data.fingerprint import FINGERPRINT_KEY  # noqa: E402
from senet.files import atomic_torch_save  # noqa: E402
from senet.recorded import recorded, scored_split  # noqa: E402


class RecordError(Exception):
    """A checkpoint whose fingerprints cannot be recorded; the message names it and says why."""


def weight_digests(payload: dict) -> dict[str, str]:
    """Each weight tensor's dtype, shape and bytes, hashed: equal digests are byte-identical weights."""
    out = {}
    for key, tensor in payload["state_dict"].items():
        t = tensor.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8)  # the raw bytes, whatever the dtype (float16, bfloat16, int64, ...)
        out[key] = f"{t.dtype}|{tuple(t.shape)}|" + hashlib.sha256(raw.numpy().tobytes()).hexdigest()
    return out


def fingerprints_for(path: Path, payload: dict, spec: str, data_dir: str, check: bool, tolerance: float
                     ) -> dict[str, str]:
    """The fingerprints of the splits this checkpoint used, after checking that ``spec`` is its data."""
    meta = payload.get("meta") or {}
    config = meta.get("config") or {}
    val_size, split_seed = checkpoint_split_options(meta)
    scored = scored_split(meta)
    train = load_split(spec, "train", data_dir, val_size, split_seed)
    if config.get("train_limit"):
        train = limit_split(train, int(config["train_limit"]), split_seed)
    held = load_split(spec, scored, data_dir, val_size, split_seed)
    if list(held.classes) != list(payload["classes"]):
        raise RecordError(f"{path}: {spec} has classes {held.classes}, the checkpoint {payload['classes']}")
    for what, n, data in (("val_size", meta.get("val_size"), held), ("train_images", meta.get("train_images"), train)):
        if isinstance(n, int) and n and n != len(data):
            raise RecordError(f"{path}: records {what} {n:,}, but {spec} gives {len(data):,} images")
    if check:
        acc = recorded(meta, "acc")
        if acc is None:
            raise RecordError(f"{path}: records no {scored} accuracy to check the data against (use --no-check)")
        now = evaluate_checkpoint(path, spec, scored, data_dir, data=held).accuracy
        print(f"  {scored} accuracy recorded {acc:.2%}, recomputed on {spec} {now:.2%}")
        if abs(now - acc) * 100 > tolerance:
            raise RecordError(f"{path}: recorded {scored} accuracy {acc:.2%} but {now:.2%} on {spec}: "
                              "not the data it was trained on?")
    return {"train": fingerprint(train), scored: fingerprint(held)}


def record(path: Path, spec: str, data_dir: str, check: bool = True, tolerance: float = 0.3) -> str:
    """Write the fingerprints into ``path``'s metadata; returns what was done, in words."""
    payload = read_checkpoint(path)
    found = fingerprints_for(path, payload, spec, data_dir, check, tolerance)
    meta = dict(payload.get("meta") or {})
    already = recorded_fingerprints(meta)
    if already == found:
        return f"{path}: already records these fingerprints"
    if already:
        raise RecordError(f"{path}: already records other data fingerprints {already}; not overwritten")
    before = weight_digests(payload)
    meta[FINGERPRINT_KEY] = found
    atomic_torch_save({**payload, "meta": meta}, path)
    after = read_checkpoint(path)
    if weight_digests(after) != before:
        raise RecordError(f"{path}: the weights read back differ from the ones written (disk fault?)")
    others = {k: v for k, v in after.items() if k not in ("meta", "state_dict", "extra_state")}
    if others != {k: v for k, v in payload.items() if k not in ("meta", "state_dict", "extra_state")} or \
            {k: v for k, v in after["meta"].items() if k != FINGERPRINT_KEY} != \
            {k: v for k, v in payload["meta"].items() if k != FINGERPRINT_KEY}:
        raise RecordError(f"{path}: a field other than {FINGERPRINT_KEY} changed on the way")
    return (f"{path}: recorded " + ", ".join(f"{k} {v}" for k, v in found.items())
            + f"; {len(before)} weight tensors byte-identical")


def check_sample(spec: str, data_dir: str, sample_file: Path = SAMPLE_FILE) -> str:
    """That the bundled sample was drawn from the validation split of ``spec`` it names (val_size and split_seed
    as recorded in the sample), image by image; returns a line saying so."""
    import numpy as np

    with np.load(sample_file) as z:
        val_size, split_seed, val_index = float(z["val_size"]), int(z["split_seed"]), z["val_index"]
    sample = load_sample(sample_file)
    val = load_split(spec, "val", data_dir, val_size, split_seed)
    if sample.subset_of != fingerprint(val):
        raise RecordError(f"{sample_file}: records val_fingerprint {sample.subset_of}, but the val split of {spec} "
                          f"is {fingerprint(val)}")
    if not bool((val.images[torch.from_numpy(val_index)] == sample.images).all()):
        raise RecordError(f"{sample_file}: its images are not the val images at its recorded positions")
    return f"{sample_file.name}: {len(sample)} images, a subset of the val split {fingerprint(val)} of {spec}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--data", required=True, help="the data the checkpoints were trained on, e.g. folder:PATH")
    p.add_argument("--data-dir", default="./data", help="where the decoded-image and prediction caches live")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="do not recompute each checkpoint's recorded accuracy to check the data")
    p.add_argument("--tolerance", type=float, default=0.3, help="points recomputed accuracy may differ (0.3)")
    p.add_argument("--check-sample", action="store_true",
                   help="also check that the bundled sample was drawn from this data's validation split")
    args = p.parse_args(argv)
    try:
        if args.check_sample:
            print(check_sample(args.data, args.data_dir))
        for path in args.checkpoints:
            print(record(path, args.data, args.data_dir, args.check, args.tolerance))
    except (RecordError, CheckpointError, DataError) as exc:
        print(f"record_fingerprints: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
