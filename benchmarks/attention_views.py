"""Server time of the attention views (issue 17) on the default checkpoint: each view's first computation and
its later answers (target: under 1 s once the first computation is cached).

    python benchmarks/attention_views.py [--checkpoint checkpoints/se_airnet.pt] [--data sample] [--repeat 5]

Per view, the backend work a page rerun does for it: the computation and its figures serialised to JSON (what
Streamlit sends). "first" includes the computation that the dashboard then caches (st.cache_data); "later" is
what every rerun still does. The class profiles themselves (shared with the rest of the Excitation page) are
timed once on their own.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, float]:
    """(first call, median of the next ``repeat``) in milliseconds."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    later = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        later.append(time.perf_counter() - t)
    return 1000 * first, 1000 * statistics.median(later)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "se_airnet.pt"))
    ap.add_argument("--data", default="sample", help="data spec of the split the views sample (default: the bundled sample)")
    ap.add_argument("--per-class", type=int, default=50, help="the class profiles' sample size, as on the page")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    from senet_dashboard.forming_figures import forming_heatmap_figure, specificity_by_epoch_figure
    from senet_dashboard.gate_space_figures import gate_map_figure, probe_figure, quantiles_figure, saturation_figure
    from senet_dashboard.inside_figures import block_steps_figure, feature_map_pairs
    from senet.analysis.gate_space import gate_map, probe_accuracy
    from senet.analysis.inside import block_steps, channel_responses, ranked_channels
    from senet.analysis.profiles import class_profiles
    from senet.analysis.saturation import class_quantiles, saturation
    from senet.checkpoint import open_checkpoint
    from senet.data import load_split, normalize
    from senet.models import se_blocks
    from senet.training.gate_history import choose_probe, read_gate_history, record_gates

    ck = open_checkpoint(args.checkpoint)
    data = load_split(args.data, "val")
    blocks = list(se_blocks(ck.model))
    last = blocks[-1]
    print(f"checkpoint: {args.checkpoint} ({ck.name}, SE blocks {', '.join(blocks)}); data: {args.data}, "
          f"{len(data):,} val images; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.2f}")
    t = time.perf_counter()
    profiles = class_profiles(ck, data, per_class=args.per_class)
    print(f"class profiles ({len(profiles.positions)} images, shared with the page): "
          f"{1000 * (time.perf_counter() - t):.0f} ms\n")
    x = normalize(data.images[:1], ck.mean, ck.std)
    ranges = {b: tuple(m.gate_range) for b, m in se_blocks(ck.model).items()}
    cached: dict = {}

    def inside():
        steps = block_steps(ck.model, x, last)
        most, least = ranked_channels(steps.gate, 3, steps.z)
        block_steps_figure(steps, highlight=most[0]).to_json()
        feature_map_pairs(steps, most + least)

    def responders():
        if "responses" not in cached:
            cached["responses"] = channel_responses(ck, data, profiles.positions)
        np.argsort(-cached["responses"][last][:, 0])[:10]

    def gate_map_view(thumbnails: bool = False):
        key = ("map", thumbnails)
        if key not in cached:
            cached[key] = gate_map(profiles, last)
        pixels = data.images[profiles.positions].permute(0, 2, 3, 1).numpy() if thumbnails else None
        gate_map_figure(cached[key], profiles.classes, thumbnails=pixels).to_json()

    def probe_view():
        if "probe" not in cached:
            cached["probe"] = probe_accuracy(profiles)
        probe_figure(cached["probe"]).to_json()

    def spread_view():
        q = class_quantiles(profiles, last, 0)
        quantiles_figure(q, np.argsort(-q[1]), "t", ranges[last], profiles.overall[last]).to_json()
        saturation_figure(saturation(profiles, ranges)).to_json()

    with tempfile.TemporaryDirectory() as tmp:
        probe = choose_probe(data, 20)
        for epoch in range(1, 13):  # a 12-epoch run's history (the same model each epoch: size and time only)
            record_gates(Path(tmp), ck.model, data, probe, epoch)

        def forming():  # the page reads the files again only when a new epoch's file arrives
            if "history" not in cached:
                cached["history"] = read_gate_history(tmp)
            history = cached["history"]
            order = np.argsort(-history.gates[history.epochs[-1]][last].mean(axis=0))
            forming_heatmap_figure(history.class_means(history.epochs[-1], last), history.classes, order, last,
                                   history.epochs[-1]).to_json()
            specificity_by_epoch_figure(history.epochs, [history.specificity(e) for e in history.epochs]).to_json()

        size = sum(f.stat().st_size for f in (Path(tmp) / "gates").iterdir())
        rows = [("1. gates forming (read 12 epochs + 2 figures)", forming),
                ("2. inside one block: steps + feature maps, a new image", inside),
                ("2. the images a channel responds to most", responders),
                ("3. map of images (PCA + figure)", gate_map_view),
                ("3. map of images drawn as thumbnails", lambda: gate_map_view(True)),
                ("3. probe accuracy per block (+ figure)", probe_view),
                ("4. spread and saturation (quantiles, shares, 2 figures)", spread_view),
                ("5. one SE block step by step (part of row 2)", lambda: block_steps(ck.model, x, last))]
        print(f"{'view':58s} {'first (ms)':>11s} {'later (ms)':>11s}")
        for name, fn in rows:
            first, later = timed(fn, args.repeat)
            print(f"{name:58s} {first:11.0f} {later:11.1f}")
        print(f"\ngate history on disk: {size / 1024:.0f} KiB for 12 epochs of {len(probe)} probe images (float16)")


if __name__ == "__main__":
    main()
