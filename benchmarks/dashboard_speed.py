"""How fast the dashboard answers: a new image on the excitation page, and the confusion page's evaluation.

Targets (issue 15, on the default checkpoint, SE-AirNet at width 2, this CPU): a new image answered in under
300 ms of page time; the first evaluation of a split at most 1.2x this CPU's fp32 limit (10,000 images in 55 s,
so 5.5 ms per image), streamed; any later view in under 1 s.

    python benchmarks/dashboard_speed.py [--checkpoint PATH] [--data folder:PATH] [--images 20]

Without ``--checkpoint`` it uses the dashboard's default, checkpoints/se_airnet.pt, else
checkpoints/se_resnet20.pt, else an untrained SE-ResNet-20 (speed does not depend on the weights). Without ``--data`` (or $SENET_DATA) it makes
a synthetic 10-class folder whose validation split has 5,000 images. "Server time" is measured two ways:
the backend work for one answer (preprocess, gates, probabilities, figures serialised to JSON), and a
whole script rerun of the page under Streamlit's AppTest (everything the server does but send bytes).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from senet.checkpoint import Checkpoint  # noqa: E402


def pick_checkpoint(arg: str | None, tmp: Path, num_classes: int, classes: list[str]) -> Path:
    from senet import create_model, load_checkpoint, save_checkpoint

    for candidate in ([arg] if arg else [ROOT / "checkpoints" / "se_airnet.pt", ROOT / "checkpoints" / "se_resnet20.pt"]):
        if candidate and Path(candidate).is_file():
            _, meta = load_checkpoint(candidate)
            if list(meta["classes"]) == classes:
                return Path(candidate)
            print(f"(skipping {candidate}: its classes differ from the data's)")
    path = tmp / "se_resnet20-untrained.pt"
    torch.manual_seed(0)
    save_checkpoint(path, create_model("se_resnet20", num_classes=num_classes), model_name="se_resnet20",
                    model_options={"num_classes": num_classes, "reduction": 16}, classes=classes,
                    config={"val_size": 5000 if num_classes == 10 else 0.1, "split_seed": 0})
    return path


def synthetic_folder(root: Path, per_class: int = 560) -> str:
    """A 10-class ImageFolder (random 32x32 PNGs) with 5,600 training images, so val_size=5000 works."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(10):
        d = root / "train" / f"class{k}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return f"folder:{root}"


def median_ms(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:7.1f} ms   (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}, n={len(times)})"


def bench_backend(model, meta, data, n: int) -> list[float]:
    """Backend work for one new image: normalise, gates + probabilities, the heatmap to JSON, the top-5 SVG."""
    from senet_dashboard.figures import gate_heatmap_figure
    from senet_dashboard.svg_figures import topk_svg
    from senet.data import normalize
    from senet.analysis.explanation import explain

    times = []
    for i in range(n):
        t = time.perf_counter()
        x = normalize(data.images[i:i + 1], meta["mean"], meta["std"])
        result = explain(model, x, meta["classes"])
        gate_heatmap_figure(result.gates).to_json()
        topk_svg(result.top(5))
        times.append(time.perf_counter() - t)
    return times


def app(env: dict):
    from streamlit.testing.v1 import AppTest

    os.environ.update(env)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    return at


def bench_excitation_page(env: dict, n: int) -> tuple[list[float], float]:
    """Whole reruns of the excitation page, each after choosing a new image index."""
    at = app(env)
    t = time.perf_counter()
    at.switch_page("senet_dashboard/views/excitation.py").run()  # first view: loads data, computes class profiles once
    first = time.perf_counter() - t
    assert not at.exception, [e.value for e in at.exception]
    times = []
    limit = at.number_input(key="exc_idx").max
    for i in range(1, min(n, limit) + 1):
        at.number_input(key="exc_idx").set_value(i)
        t = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t)
        assert not at.exception, [e.value for e in at.exception]
    return times, first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint")
    ap.add_argument("--data", default=os.environ.get("SENET_DATA"), help="folder:PATH (default: $SENET_DATA or synthetic)")
    ap.add_argument("--data-dir", default=str(ROOT / "data"), help="where the dataset's uint8 cache lives")
    ap.add_argument("--images", type=int, default=20, help="new images to time")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    tmp = Path(tempfile.mkdtemp(prefix="senet-bench-"))
    try:
        from senet import evaluate_checkpoint, load_checkpoint
        from senet.data import load_split
        from senet.analysis.evaluate import checkpoint_split_options

        spec = args.data or synthetic_folder(tmp / "synthetic")
        data_dir = Path(args.data_dir if args.data else tmp / "cache")
        t = time.perf_counter()
        probe = load_split(spec, "train", data_dir, val_size=0.1)
        print(f"data: {spec}  ({len(probe.classes)} classes; train split read in {time.perf_counter() - t:.1f} s, "
              "decoding once into the uint8 cache if needed)")
        ckpt = pick_checkpoint(args.checkpoint, tmp, len(probe.classes), list(probe.classes))
        model, meta = load_checkpoint(ckpt)
        val_size, split_seed = checkpoint_split_options(meta)
        val = load_split(spec, "val", data_dir, val_size, split_seed)
        print(f"checkpoint: {ckpt} ({meta['model']}); validation split: {len(val):,} images")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.2f} (other work on the machine slows every figure)")
        print()

        print("Excitation page, a new image (target < 300 ms server time)")
        bench_backend(model, meta, val, 3)  # warm-up
        print(f"  backend (gates, probabilities, 3 figures to JSON): {median_ms(bench_backend(model, meta, val, args.images))}")
        ck_dir = tmp / "checkpoints"
        ck_dir.mkdir()
        shipped = ck_dir / Path(ckpt).name
        shutil.copy(ckpt, shipped)
        page_cache = tmp / "page-cache"
        (page_cache / ".senet-cache").mkdir(parents=True)
        for f in (data_dir / ".senet-cache").glob("*.pt"):  # share the decoded images, not the predictions
            (page_cache / ".senet-cache" / f.name).symlink_to(f.resolve())
        env = {"SENET_CHECKPOINTS": str(ck_dir), "SENET_RUNS": str(tmp / "runs"), "SENET_DATA": spec,
               "SENET_DATA_DIR": str(page_cache)}
        times, first = bench_excitation_page(env, args.images)
        print(f"  whole page rerun (AppTest):                        {median_ms(times)}")
        print(f"  (first view of the page, incl. class profiles once: {first:.2f} s)")
        print()

        print(f"Confusion page, evaluating {len(val):,} images (target <= 5.5 ms per image first, < 1 s later)")
        t = time.perf_counter()
        ev = evaluate_checkpoint(shipped, spec, "val", page_cache, loaded=Checkpoint.from_meta(model, meta),
                                 cache_dir=tmp / "predictions")
        seconds = time.perf_counter() - t
        print(f"  backend first evaluation: {seconds:6.2f} s, {1000 * seconds / len(val):.2f} ms per image "
              f"(accuracy {ev.accuracy:.4f}; 10,000 images would take {10 * seconds / len(val) * 1000:.0f} s)")
        t = time.perf_counter()
        evaluate_checkpoint(shipped, spec, "val", page_cache, loaded=Checkpoint.from_meta(model, meta),
                            cache_dir=tmp / "predictions", data=val)
        print(f"  backend later view (prediction cache on disk):            {time.perf_counter() - t:6.2f} s")
        t = time.perf_counter()
        again = load_split(spec, "val", data_dir, val_size, split_seed)
        evaluate_checkpoint(shipped, spec, "val", page_cache, loaded=Checkpoint.from_meta(model, meta),
                            cache_dir=tmp / "predictions", data=again)
        print(f"  ... after a server restart (also reading the split again): {time.perf_counter() - t:6.2f} s")
        at = app(env)
        t = time.perf_counter()
        at.switch_page("senet_dashboard/views/confusion.py").run()
        print(f"  page first view (evaluation with progress bar), AppTest:  {time.perf_counter() - t:6.2f} s")
        assert not at.exception, [e.value for e in at.exception]
        views = []
        for _ in range(5):
            t = time.perf_counter()
            at.run()
            views.append(time.perf_counter() - t)
        print(f"  page later view, AppTest: {median_ms(views)}")
        cell = at.selectbox(key="conf_true").value
        t = time.perf_counter()
        at.selectbox(key="conf_true").set_value((cell + 1) % len(meta["classes"])).run()
        print(f"  page, picking another cell: {(time.perf_counter() - t) * 1000:.0f} ms")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
