"""The senet modules behind the dashboard: catalog, curves, launcher, profiles, confusion views, figures."""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_folder_dataset
from senet.checkpoint import Checkpoint
from senet import create_model, save_checkpoint
from senet_dashboard.catalog import default_entry, discover_checkpoints, probe
from senet.analysis.compare import cpu_latency, paired_comparison, se_stage_terms
from senet_dashboard.confusion import cell_members, predictions_table, row_normalised
from senet_dashboard.curves import Curves, MetricsTail, curves_from_records, progress, smooth
from senet.data import load_split
from senet.analysis.evaluate import Evaluation
from senet.models import excitations, se_blocks
from senet_dashboard.figures import (confusion_figure, epoch_figure, gate_heatmap_figure, lr_figure,
                           overlay_figure, profiles_figure, separation_figure, step_loss_figure)
from senet_dashboard.launcher import LaunchError, resume_run, run_state, start_run, stop_run, train_command
from senet.analysis.profiles import channel_order, class_profiles
from senet.analysis.explanation import block_ablation, explain, intervene
from senet.training.runs import read_json, write_json_atomic
from senet.training import make_config


def _ckpt(path: Path, name: str = "se_resnet20") -> Path:
    save_checkpoint(path, create_model(name, num_classes=3), model_name=name, model_options={"num_classes": 3},
                    classes=("a", "b", "c"))
    return path


# --------------------------------------------------------------------------- catalog
def test_catalog_orders_shipped_first_prefers_best_and_flags_corrupt_files(tmp_path):
    ck, runs = tmp_path / "checkpoints", tmp_path / "runs"
    ck.mkdir()
    for name in ("zzz.pt", "se_resnet20.pt", "airnet.pt", "se_airnet.pt"):
        _ckpt(ck / name)
    (ck / "empty.pt").write_bytes(b"")
    (ck / "text.pt").write_text("hello")
    for run in ("r1", "r2"):
        (runs / run).mkdir(parents=True)
        _ckpt(runs / run / "last.pt")
    _ckpt(runs / "r2" / "best.pt")
    entries = discover_checkpoints(ck, runs)
    names = [e.path.name for e in entries if e.source == "shipped"]
    assert names[:3] == ["se_airnet.pt", "airnet.pt", "se_resnet20.pt"], names
    run_files = {e.path.parent.name: e.path.name for e in entries if e.source == "run"}
    assert run_files == {"r1": "last.pt", "r2": "best.pt"}, "best.pt wins over last.pt, last.pt otherwise"
    problems = {e.path.name: e.problem for e in entries if e.problem}
    assert set(problems) == {"empty.pt", "text.pt"}
    assert all("\n" not in p for p in problems.values())
    assert default_entry(entries).path.name == "se_airnet.pt"


def test_catalog_of_missing_directories_is_empty_and_default_skips_broken(tmp_path):
    assert discover_checkpoints(tmp_path / "nope", tmp_path / "nothing") == []
    (tmp_path / "bad.pt").write_text("x")
    good = _ckpt(tmp_path / "good.pt")
    entries = discover_checkpoints(tmp_path, tmp_path / "none")
    assert default_entry(entries).path == good
    assert probe(good) is None and "header" in probe(tmp_path / "bad.pt")


# --------------------------------------------------------------------------- curves
def test_smoothing_is_debiased_and_zero_weight_is_identity():
    values = [3.0, 1.0, 4.0, 1.0, 5.0]
    assert smooth(values, 0.0) == values
    assert smooth([2.0] * 5, 0.9) == pytest.approx([2.0] * 5), "a constant stays constant (de-biased EMA)"
    s = smooth(values, 0.6)
    assert s[0] == pytest.approx(3.0) and min(values) < s[-1] < max(values)
    with pytest.raises(ValueError):
        smooth(values, 1.0)


def test_metrics_tail_reads_incrementally_and_restarts_when_the_file_is_rewritten(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read() == []
    with open(path, "w") as f:
        f.write(json.dumps({"type": "step", "step": 1, "loss": 2.0}) + "\n" + '{"type": "st')
    assert [r["step"] for r in tail.read()] == [1], "an incomplete last line waits"
    with open(path, "a") as f:
        f.write('ep", "step": 2, "loss": 1.5}\n')
    assert [r["step"] for r in tail.read()] == [1, 2]
    tmp = tmp_path / "new.jsonl"
    tmp.write_text(json.dumps({"type": "step", "step": 1, "loss": 9.0}) + "\n")
    os.replace(tmp, path)  # what a resume does (truncate_metrics rewrites the file)
    assert [r["loss"] for r in tail.read()] == [9.0]


def test_progress_reports_epoch_step_speed_and_eta():
    records = [{"type": "step", "step": 10, "epoch": 0.5, "loss": 1.0, "lr": 0.1, "images_per_s": 200.0}]
    status = {"state": "running", "step": 10, "total_steps": 40, "epochs": 2, "steps_per_epoch": 20,
              "elapsed_s": 5.0, "updated_at": 100.0}
    p = progress(status, curves_from_records(records), now=100.0)
    assert p["fraction"] == 0.25 and p["epoch"] == 0 and p["eta_s"] == pytest.approx(15.0)
    assert "0/2 epochs done" in p["text"] and "step 10/40" in p["text"] and "200 images/s" in p["text"]
    assert progress(dict(status, state="finished"), curves_from_records(records))["eta_s"] is None


def test_progress_counts_completed_epochs_and_has_the_speed_from_the_first_step():
    """One epoch convention (completed epochs, as the runs table shows), and a speed before any step record:
    the trainer writes images/s to status.json from its first step, step records come every log_every steps."""
    status = {"state": "running", "step": 3, "total_steps": 40, "epochs": 2, "epoch": 1, "steps_per_epoch": 20,
              "images_per_s": 150.0, "elapsed_s": 2.0, "updated_at": 100.0}
    p = progress(status, curves_from_records([]), now=100.0)
    assert "1/2 epochs done" in p["text"] and "150 images/s" in p["text"] and "ETA" in p["text"]
    stale = [{"type": "step", "step": 1, "epoch": 0.05, "loss": 1.0, "lr": 0.1, "images_per_s": 90.0}]
    assert progress(status, curves_from_records(stale), now=100.0)["images_per_s"] == 150.0
    assert progress(dict(status, state="finished"), curves_from_records(stale))["images_per_s"] == 90.0


def test_the_smoothed_loss_shown_is_where_the_smoothed_line_ends():
    from senet_dashboard.curves import last_smoothed

    losses = [2.4, 2.2, 2.3, 2.1059]
    assert last_smoothed(losses, 0.6) == pytest.approx(smooth(losses, 0.6)[-1])
    assert last_smoothed(losses, 0.6) != pytest.approx(losses[-1]), "not the raw last step"
    assert last_smoothed([], 0.6) is None


# --------------------------------------------------------------------------- launcher
def test_train_command_runs_the_config_file_and_gives_every_setting_as_a_flag():
    from senet.training.settings import config_flags

    config = make_config("se_resnet20", "fast", data="folder:/a b", se_weight_decay=None)
    cmd = train_command("/runs/a/config.json", "/runs/a", config)
    assert cmd == [sys.executable, "-m", "senet", "train", "--config", "/runs/a/config.json", *config_flags(config),
                   "--run-dir", "/runs/a", "--no-progress"]
    assert cmd[cmd.index("--data") + 1] == "folder:/a b" and "--no-amp" not in cmd and "--amp" in cmd


def _launched_config(config, tmp_path, monkeypatch):
    """What ``senet train`` builds from the config file the launcher writes (training itself stubbed out)."""
    import senet.cli as cli
    from senet.training.settings import config_record

    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "config.json", config_record(config))
    seen = {}
    monkeypatch.setattr(cli, "_check_data", lambda config: None)
    monkeypatch.setattr(cli, "_run", lambda config, run_dir, resume, progress, **_: seen.update(config=config) or 0)
    assert cli.main(train_command(run_dir / "config.json", run_dir, config)[3:]) == 0
    return seen["config"]


def test_a_launched_config_reaches_the_trainer_whole(tmp_path, monkeypatch):
    """What the dashboard launches is what it was asked for, every setting included."""
    from dataclasses import asdict, replace

    config = make_config("se_airnet", "fast", data="folder:/x y", epochs=3, batch_size=64, lr=0.5, momentum=0.8,
                         weight_decay=1e-3, se_weight_decay=0.0, label_smoothing=0.1, schedule="cosine",
                         warmup_epochs=0.5, crop_pad=4, cutout=10, reduction=8, width=2, seed=7, val_size=5000,
                         split_seed=3, train_limit=600, log_every=5, micro_batch=32, device="cpu", amp=False,
                         compile=True, dataset_name="CIFAR-10 (JPEG q75 copy)", data_dir="/d")
    assert asdict(_launched_config(config, tmp_path / "a", monkeypatch)) == asdict(config)
    # settings the old flag-rebuilding launcher could not express travel too
    odd = replace(make_config("se_resnet20", "fast", data="cifar10"), start_lr_frac=0.5, pad_mode="zeros",
                  nesterov=False)
    assert asdict(_launched_config(odd, tmp_path / "b", monkeypatch)) == asdict(odd)
    seed_model = make_config("seed_senet", "seed", data="cifar10", squeeze=True)
    assert _launched_config(seed_model, tmp_path / "c", monkeypatch).squeeze is True


def test_start_run_writes_the_config_before_the_process_starts(tmp_path, monkeypatch):
    import senet_dashboard.launcher as launcher

    started = []
    monkeypatch.setattr(launcher, "_spawn", lambda cmd, run_dir, action: started.append((cmd, run_dir)) or 1)
    config = make_config("se_resnet20", "fast", data="cifar10", start_lr_frac=0.5)
    run_dir = start_run(config, tmp_path / "runs")
    assert read_json(run_dir / "config.json")["start_lr_frac"] == 0.5
    assert started == [(train_command(run_dir / "config.json", run_dir, config), run_dir)]


def test_run_with_dead_process_is_failed_and_log_error_is_reported(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.log").write_text("$ python -m senet train\nsenet train: error: unknown dataset 'x'\n")
    write_json_atomic(run / "launch.json", {"pid": 2 ** 22 + 4321, "host": os.uname().nodename, "launched_at": 1.0})
    state = run_state(run)
    assert state["state"] == "failed" and "unknown dataset" in state["error"]
    write_json_atomic(run / "status.json", {"state": "running", "pid": 2 ** 22 + 4321, "host": os.uname().nodename,
                                            "updated_at": 2.0})
    assert run_state(run)["state"] == "failed"
    assert stop_run(run) is False, "nothing to stop"
    with pytest.raises(LaunchError):
        resume_run(run)  # no last.pt


@pytest.mark.slow
def test_start_stop_resume_finish_through_separate_processes(tmp_path):
    data = make_folder_dataset(tmp_path / "data", per_class=20)
    config = make_config("resnet20", "fast", data=f"folder:{data}", data_dir=str(tmp_path / "cache"), epochs=40,
                         batch_size=16, log_every=1)
    run = start_run(config, tmp_path / "runs")
    other = start_run(make_config("resnet20", "fast", data=f"folder:{data}", data_dir=str(tmp_path / "cache"),
                                  epochs=1, batch_size=16), tmp_path / "runs")
    assert run != other and run.parent == other.parent, "each start gets its own directory"

    def wait(cond, what, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}: {run_state(run)}; log: {(run / 'train.log').read_text()[-800:]}")

    wait(lambda: run_state(run)["state"] == "running" and (run / "metrics.jsonl").is_file()
         and (run / "metrics.jsonl").stat().st_size > 0, "the run to log a step")
    assert stop_run(run) is True
    wait(lambda: run_state(run)["state"] == "stopped", "the run to stop")
    stopped_at = json.loads((run / "status.json").read_text())["epoch"]
    resume_run(run, epochs=stopped_at + 1)
    wait(lambda: run_state(run)["state"] == "finished", "the resumed run to finish")
    status = json.loads((run / "status.json").read_text())
    assert status["epoch"] == stopped_at + 1
    wait(lambda: run_state(other)["state"] == "finished", "the second run to finish")


# --------------------------------------------------------------------------- profiles
@pytest.fixture(scope="module")
def tiny():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        root = make_folder_dataset(Path(d) / "data", per_class=12)
        data = load_split(f"folder:{root}", "train", Path(d) / "cache", val_size=0.25)
        torch.manual_seed(0)
        model = create_model("se_resnet20", num_classes=3).eval()
        yield model, data


MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def test_class_profile_is_the_mean_gate_of_that_classes_images(tiny):
    from senet.data import normalize

    model, data = tiny
    p = class_profiles(Checkpoint.of(model, mean=MEAN, std=STD), data, per_class=1000)
    assert list(p.counts) == [int((data.labels == k).sum()) for k in range(3)]
    for k in range(3):
        gates = excitations(model, normalize(data.images[data.labels == k], MEAN, STD))
        for name, g in gates.items():
            np.testing.assert_allclose(p.profiles[name][k], g.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    everything = excitations(model, normalize(data.images, MEAN, STD))
    for name, g in everything.items():
        np.testing.assert_allclose(p.overall[name], g.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    assert all(v >= 0 for v in p.separation().values())
    for name, g in everything.items():
        assert p.spread[name] == pytest.approx(float(g.double().std(0).mean()), rel=1e-4, abs=1e-7), name


def test_channel_extremes_are_the_sampled_images_that_open_a_channel_most_and_least(tiny):
    from senet.data import normalize

    model, data = tiny
    p = class_profiles(Checkpoint.of(model, mean=MEAN, std=STD), data, per_class=5)
    assert len(p.positions) == 15 and len(set(p.positions.tolist())) == 15
    block = list(p.gates)[-1]
    channel = 3
    truth = excitations(model, normalize(data.images[torch.as_tensor(p.positions)], MEAN, STD))[block][:, channel]
    truth = truth.numpy()
    high, high_gate, low, low_gate = p.channel_extremes(block, channel, k=4)
    assert len(high) == len(low) == 4
    np.testing.assert_allclose(high_gate, np.sort(truth)[::-1][:4], atol=2e-3)  # float16 storage
    np.testing.assert_allclose(low_gate, np.sort(truth)[:4], atol=2e-3)
    best = p.positions[int(np.argmax(truth))]
    assert high[0] == best or abs(truth.max() - high_gate[0]) < 2e-3, "the top image is the one with the highest gate"
    assert set(high.tolist()) <= set(p.positions.tolist())
    with pytest.raises(KeyError, match="no SE block"):
        p.channel_extremes("stage9", 0)
    with pytest.raises(IndexError, match="channels 0-"):
        p.channel_extremes(block, 10_000)


def test_unusual_channels_rank_departures_from_the_mean_in_standard_deviations(tiny):
    model, data = tiny
    p = class_profiles(Checkpoint.of(model, mean=MEAN, std=STD), data, per_class=5)
    block = list(p.gates)[-1]
    g = p.gates[block].astype(np.float32)
    mean, std = g.mean(0), g.std(0)
    image = mean.copy()
    busy, calm = int(np.argmax(std)), int(np.argmin(np.where(std > 1e-3, std, np.inf)))
    image[busy] += 0.5 * std[busy]  # half a std on the most variable channel
    image[calm] += 3 * std[calm]  # three std on the least variable one: smaller in gate, larger in z
    rows = p.unusual_channels(block, image, k=2)
    assert [r["channel"] for r in rows] == [calm, busy]
    assert rows[0]["z"] == pytest.approx(3, rel=1e-3) and rows[1]["z"] == pytest.approx(0.5, rel=1e-2)
    assert rows[0]["mean"] == pytest.approx(float(mean[calm]), abs=1e-6)
    with pytest.raises(ValueError, match="channels"):
        p.unusual_channels(block, image[:-1])
    with pytest.raises(KeyError, match="no SE block"):
        p.unusual_channels("stage9", image)


def test_class_splits_group_the_channels_that_divide_the_classes_by_the_classes_they_open():
    from senet.analysis.profiles import ClassProfiles

    columns = [[0.9, 0.8, 0.1, 0.0],    # 0: cat and dog open it (jump 0.7)
               [0.1, 0.2, 0.9, 0.95],   # 1: car and ship (0.7)
               [0.95, 0.85, 0.05, 0.1],  # 2: cat and dog (0.75)
               [0.5, 0.55, 0.45, 0.6],  # 3: no clean split
               [0.1, 0.1, 0.9, 0.1]]    # 4: car alone (0.8)
    profiles = np.array(columns, dtype=np.float32).T  # (classes, channels)
    p = ClassProfiles(["cat", "dog", "car", "ship"], np.array([2, 2, 2, 2]), {"b": profiles},
                      {"b": profiles.mean(0)}, {"b": 0.1})
    rows = p.class_splits("b")
    assert [(r["open"], r["channels"]) for r in rows] == [(["cat", "dog"], [2, 0]), (["car"], [4]),
                                                          (["car", "ship"], [1])]
    assert rows[0]["closed"] == ["car", "ship"] and rows[0]["jump"] == pytest.approx(0.725)
    assert [r["channels"] for r in p.class_splits("b", gap=0.76)] == [[4]], "only a jump of 0.8 passes 0.76"
    unsampled = ClassProfiles(p.classes, np.array([2, 2, 2, 0]), p.profiles, p.overall, p.spread)
    car = next(r for r in unsampled.class_splits("b") if r["open"] == ["car"])
    assert car["channels"] == [4, 1] and "ship" not in car["closed"], "a class without images takes no side"
    with pytest.raises(KeyError, match="no SE block"):
        p.class_splits("stage9")


def test_class_splits_figure_draws_each_groups_channels_in_order_with_numbered_groups():
    from senet_dashboard.figures import class_splits_figure

    profiles = np.linspace(0, 1, 3 * 6).reshape(3, 6)
    splits = [{"open": ["a"], "closed": ["b", "c"], "channels": [4, 1, 5], "jump": 0.5},
              {"open": ["b", "c"], "closed": ["a"], "channels": [0, 2], "jump": 0.45}]
    fig = class_splits_figure(profiles, ["a", "b", "c"], splits, "t")
    heat = fig.data[0]
    np.testing.assert_allclose(np.asarray(heat.z), profiles[:, [4, 1, 5, 0, 2]])
    assert np.asarray(heat.customdata)[2].tolist() == [4, 1, 5, 0, 2] and list(heat.y) == ["a", "b", "c"]
    assert list(fig.layout.xaxis.ticktext) == ["1", "2"] and list(fig.layout.xaxis.tickvals) == [1.0, 3.5]
    assert [shape.x0 for shape in fig.layout.shapes] == [2.5], "one fence, between the two groups"
    empty = class_splits_figure(profiles, ["a", "b", "c"], [], "t")
    assert not empty.data and "no channel" in empty.layout.annotations[0].text


def test_a_block_whose_gate_ignores_the_image_is_reported_constant(tiny):
    """Zero the first SE block's FC weights (what strong weight decay does): its gate is sigmoid(0) = 0.5 for
    every image, so its spread is 0 and it is listed as constant, where before it was not."""
    model, data = tiny
    name, first = next(iter(se_blocks(model).items()))
    before = class_profiles(Checkpoint.of(model, mean=MEAN, std=STD), data, per_class=20)
    tolerance = before.spread[name] / 2
    assert tolerance > 0 and name not in before.constant_blocks(tolerance)
    saved = {k: v.clone() for k, v in first.state_dict().items()}
    try:
        with torch.no_grad():
            for param in first.parameters():
                param.zero_()
        after = class_profiles(Checkpoint.of(model, mean=MEAN, std=STD), data, per_class=20)
    finally:
        first.load_state_dict(saved)
    assert after.spread[name] == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(after.overall[name], 0.5, atol=1e-6)
    assert name in after.constant_blocks(tolerance) and name in after.constant_blocks()


def test_switching_every_gate_off_equals_the_network_without_se(tiny):
    from senet.data import normalize
    from senet.analysis import predict

    model, data = tiny
    x = normalize(data.images[:1], MEAN, STD)
    plain = create_model("resnet20", num_classes=3).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".se." not in k})
    off = intervene(model, x, {b: 1.0 for b in se_blocks(model)})
    np.testing.assert_allclose(off, predict(plain, x)[0].numpy(), rtol=1e-4, atol=1e-6)
    result = explain(model, x, ["a", "b", "c"])
    assert not np.allclose(off, result.probs), "SE must change the prediction of this network"
    ablation = block_ablation(model, x, result.predicted)
    assert list(ablation) == list(se_blocks(model))
    for block, p in ablation.items():
        assert p == pytest.approx(float(intervene(model, x, {block: 1.0})[result.predicted]), abs=1e-5), block
    assert [c for c, _ in result.top(3)][0] == ["a", "b", "c"][result.predicted]


def test_gate_substitution_is_channel_aligned(tiny):
    """Replacing a block's gate by this image's own gate changes nothing; by ones equals switching SE off."""
    from senet.data import normalize

    model, data = tiny
    x = normalize(data.images[:1], MEAN, STD)
    result = explain(model, x, ["a", "b", "c"])
    block = list(se_blocks(model))[-1]
    own = result.gates[block]
    np.testing.assert_allclose(intervene(model, x, {block: own}), result.probs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(intervene(model, x, {block: np.ones_like(own)}), intervene(model, x, {block: 1.0}),
                               rtol=1e-5, atol=1e-7)
    p = class_profiles(Checkpoint.of(model, mean=MEAN, std=STD), data, per_class=5)
    shuffled = own[::-1].copy()
    assert not np.allclose(intervene(model, x, {block: shuffled}), result.probs, atol=1e-6), \
        "a permuted gate must change the output (channels are not interchangeable)"
    assert p.profiles[block].shape == (3, len(own))


# --------------------------------------------------------------------------- confusion and figures
def _evaluation() -> Evaluation:
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.55, 0.4, 0.05], [0.1, 0.1, 0.8]])
    return Evaluation(probs, np.array([0, 1, 1, 1, 2]), np.arange(5), ["a", "b", "c"])


def test_cell_members_are_sorted_most_confident_first():
    ev = _evaluation()
    idx, conf = cell_members(ev, 1, 0)
    assert list(idx) == [2, 3] and list(conf) == [0.6, 0.55]
    assert len(cell_members(ev, 2, 0)[0]) == 0
    with pytest.raises(ValueError):
        cell_members(ev, 3, 0)
    rates = row_normalised(ev.confusion)
    assert rates[1].tolist() == pytest.approx([2 / 3, 1 / 3, 0])
    table = predictions_table(ev)
    assert list(table.columns[:5]) == ["index", "true", "predicted", "confidence", "correct"]
    assert table["correct"].sum() == 3


def test_confusion_overlay_has_one_clickable_marker_per_cell():
    ev = _evaluation()
    fig = confusion_figure(ev.confusion, ev.classes, normalise=True, selected=(1, 0))
    heat, overlay = fig.data
    assert heat.type == "heatmap" and overlay.type == "scatter"
    assert len(overlay.x) == 9
    cells = {(int(c[0]), int(c[1])): (x, y, c[2]) for c, x, y in zip(overlay.customdata, overlay.x, overlay.y)}
    assert cells[(1, 0)] == ("a", "b", 2), "customdata (true, predicted, count) matches the axis labels"
    assert fig.layout.shapes, "the selected cell is outlined"


def test_empty_charts_say_why_instead_of_showing_bare_axes():
    empty = Curves()
    for fig, message in ((step_loss_figure(empty), "first logged step"), (lr_figure(empty), "first logged step"),
                         (epoch_figure(empty, "acc"), "no epoch finished"),
                         (overlay_figure({"a": empty}, "val_acc"), "finished an epoch")):
        texts = [a.text for a in fig.layout.annotations]
        assert any(message in t for t in texts), f"expected a placeholder saying {message!r}, got {texts}"
        assert fig.layout.xaxis.visible is False and not fig.data
    started = Curves(step=[1, 2], step_loss=[2.3, 2.2], lr=[0.1, 0.2])
    assert not step_loss_figure(started).layout.annotations and len(step_loss_figure(started).data) == 2
    assert epoch_figure(started, "loss").layout.annotations, "steps but no epoch yet: the epoch chart still waits"


def test_channel_order_puts_the_highest_gate_first_and_keeps_ties_in_index_order():
    order = channel_order({"s1": np.array([0.2, 0.9, 0.2, 0.5]), "s2": np.array([[0.1, 0.3]])})
    assert order["s1"].tolist() == [1, 3, 0, 2]
    assert order["s2"].tolist() == [1, 0], "a (1, C) gate is ordered by its channels"


def test_sorted_gate_charts_reorder_every_series_alike_and_hover_names_the_real_channel():
    gates = {"s1": np.array([0.2, 0.9, 0.4]), "s2": np.array([0.7, 0.1, 0.3, 0.5])}
    mean = {"s1": np.array([0.1, 0.3, 0.8]), "s2": np.array([0.6, 0.2, 0.4, 0.9])}
    order = channel_order(mean)
    heat = gate_heatmap_figure(gates, order=order)
    z, channels = np.array(heat.data[0].z, dtype=float), np.array(heat.data[0].customdata)
    assert z[1].tolist() == pytest.approx([0.5, 0.7, 0.3, 0.1]) and channels[1].tolist() == [3, 0, 2, 1]
    assert math.isnan(z[0, 3]), "a narrower block is still padded at the end"
    assert z[0, :3].tolist() == pytest.approx([0.4, 0.9, 0.2]) and channels[0, :3].tolist() == [2, 1, 0], \
        "x position i shows channel order[i]"
    clicks = heat.data[1]  # the invisible points that take a click on a cell
    assert clicks.type == "scattergl" and len(clicks.x) == 7, "one point per channel of every block, none for padding"
    assert {(y, int(c)) for y, c in zip(clicks.y, clicks.customdata)} == {("s1", c) for c in range(3)} | \
        {("s2", c) for c in range(4)}, "each point names its block and its real channel"
    assert "channel %{customdata}" in clicks.hovertemplate
    plain = gate_heatmap_figure(gates)
    assert np.array(plain.data[0].customdata)[1].tolist() == [0, 1, 2, 3], "without an order: channel index"
    profiles = {b: np.stack([g, 1 - g]) for b, g in gates.items()}
    fig = profiles_figure(profiles, mean, ["a", "b"], [1], gates, order=order)
    by_name = {(t.name, t.xaxis): t for t in fig.data}
    assert list(by_name[("b", "x2")].y) == pytest.approx([0.5, 0.3, 0.7, 0.9])
    assert list(by_name[("all classes", "x2")].y) == pytest.approx([0.9, 0.6, 0.4, 0.2])
    assert list(by_name[("this image", "x2")].y) == pytest.approx([0.5, 0.7, 0.3, 0.1])


def test_specificity_ticks_are_short_for_many_blocks_and_full_for_few():
    many = {f"stage{s}.block{b}": 0.1 for s in (1, 2, 3) for b in (1, 2, 3)}
    fig = separation_figure(many, many)
    assert list(fig.layout.xaxis.ticktext)[:2] == ["s1.b1", "s1.b2"] and list(fig.data[0].x)[0] == "stage1.block1"
    assert separation_figure({"stage1": 0.1, "stage2": 0.2}).layout.xaxis.ticktext is None


def test_overlay_by_training_time_uses_hours_and_skips_epochs_without_a_time():
    c = Curves(epoch=[1, 2, 3], val_acc=[0.5, 0.6, 0.7], val_loss=[1.0, 0.8, 0.6], elapsed_s=[1800.0, math.nan, 5400.0],
               step=[1, 2], step_loss=[2.0, 1.0])
    fig = overlay_figure({"run": c}, "val_acc", x_axis="time")
    assert list(fig.data[0].x) == pytest.approx([0.5, 1.5]) and list(fig.data[0].y) == pytest.approx([0.5, 0.7])
    assert fig.layout.xaxis.title.text == "training time (h)"
    assert list(overlay_figure({"run": c}, "step_loss", x_axis="time").data[0].x) == [1, 2], "steps stay per step"
    assert overlay_figure({"run": c}, "val_loss", log_y=True).layout.yaxis.type == "log"
    assert overlay_figure({"run": c}, "val_acc", log_y=True).layout.yaxis.type != "log", "accuracy stays linear"
    assert step_loss_figure(c, log_y=True).layout.yaxis.type == "log"
    assert epoch_figure(c, "loss", log_y=True).layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="x_axis"):
        overlay_figure({"run": c}, "val_acc", x_axis="wall")


def test_gate_heatmap_pads_narrow_blocks():
    fig = gate_heatmap_figure({"s1": np.array([0.1, 0.2]), "s2": np.array([0.3, 0.4, 0.5, 0.6])})
    z = np.array(fig.data[0].z, dtype=float)
    assert z.shape == (2, 4) and math.isnan(z[0, 3]) and z[1, 3] == pytest.approx(0.6)


def test_seed_models_per_pixel_gate_is_labelled_as_a_spatial_mean():
    from senet.analysis.explanation import gate_description

    assert "spatial mean" in gate_description(create_model("seed_senet"))
    assert gate_description(create_model("seed_senet", squeeze=True)) is None
    assert gate_description(create_model("se_resnet20")) is None


def test_se_stage_terms_reproduce_the_seed_formula():
    from senet import model_info

    model = create_model("se_resnet20")
    terms = se_stage_terms(model)
    assert terms == [(3, 16, 16), (3, 32, 16), (3, 64, 16)]
    assert sum(2 / r * n * c * c for n, c, r in terms) == model_info(model)["se_formula"] == 2016
    assert cpu_latency(model, repeats=2, warmup=1) > 0


def test_step_window_shows_only_the_latest_steps_with_the_ema_of_all_of_them():
    curves = Curves(step=list(range(10, 110, 10)), step_loss=[float(v) for v in range(10, 0, -1)],
                    lr=[0.1 * v for v in range(10)], resumes=[20, 80])
    full = step_loss_figure(curves, 0.6)
    window = step_loss_figure(curves, 0.6, last_steps=30)
    assert list(full.data[0].x) == curves.step
    assert list(window.data[0].x) == [80, 90, 100] and list(window.data[0].y) == [3.0, 2.0, 1.0]
    assert list(window.data[1].y) == pytest.approx(smooth(curves.step_loss, 0.6)[-3:])
    assert "last 30 steps" in window.layout.title.text
    assert [s.x0 for s in window.layout.shapes] == [80], "only resumes inside the window are marked"
    assert list(lr_figure(curves, last_steps=30).data[0].y) == pytest.approx([0.7, 0.8, 0.9])
    assert list(step_loss_figure(curves, 0.6, last_steps=10_000).data[0].x) == curves.step


def test_paired_comparison_counts_disagreements_and_tests_them_exactly():
    labels = np.zeros(100, dtype=int)
    a, b = labels.copy(), labels.copy()
    a[:5] = 1       # A wrong on images 0-4
    b[5:20] = 1     # B wrong on images 5-19
    b[95:] = 1
    a[95:] = 1      # both wrong on 95-99
    r = paired_comparison(labels, a, b)
    assert (r.n, r.both_right, r.only_a, r.only_b, r.both_wrong) == (100, 75, 15, 5, 5)
    assert (r.accuracy_a, r.accuracy_b) == (0.90, 0.80) and math.isclose(r.difference, 0.10)
    # exact two-sided binomial test of 5 successes in 20 at p=1/2: 2 * sum_{i<=5} C(20, i) / 2^20
    assert math.isclose(r.p_value, 2 * sum(math.comb(20, i) for i in range(6)) / 2 ** 20)
    assert math.isclose(r.p_value, 0.0413894653, rel_tol=1e-6)
    low, high = r.difference_ci95
    assert low < r.difference < high and 0 < low, "15 against 5 disagreements: A is better, the interval excludes 0"
    swapped = paired_comparison(labels, b, a)
    assert swapped.p_value == r.p_value and math.isclose(swapped.difference, -r.difference)


def test_paired_comparison_of_identical_predictions_is_no_evidence_and_bad_shapes_are_refused():
    labels = np.arange(10) % 3
    same = paired_comparison(labels, labels, labels)
    assert same.p_value == 1.0 and same.difference == 0 and same.difference_ci95 == (0.0, 0.0)
    balanced = paired_comparison(np.zeros(4, int), np.array([1, 0, 1, 0]), np.array([0, 1, 0, 1]))
    assert balanced.p_value == 1.0
    with pytest.raises(ValueError, match="one length"):
        paired_comparison(labels, labels[:5], labels)
    with pytest.raises(ValueError, match="no images"):
        paired_comparison(labels[:0], labels[:0], labels[:0])


def test_twins_are_the_same_architecture_trained_alike():
    from dataclasses import asdict

    from senet.training.twins import like_for_like

    def card(model, **changes):
        config = asdict(make_config(model, "fast", data="folder:/d", **changes))
        return {"model": model, "config": config}

    assert like_for_like(card("se_resnet20"), card("resnet20")) is None
    assert like_for_like(card("se_resnet20", device="cpu"), card("resnet20")) is None, "execution only"
    assert "epochs 30 vs 3" in like_for_like(card("se_resnet20"), card("resnet20", epochs=3))
    assert "not one architecture" in like_for_like(card("se_resnet20"), card("airnet"))
    assert "not one architecture" in like_for_like(card("se_resnet20"), card("se_resnet20"))
    old = card("resnet20")
    del old["config"]["cutout"]  # a checkpoint from before the option existed: it trained at the default
    assert like_for_like(card("se_resnet20"), old) is None
    assert "cutout 8 vs 0" in like_for_like(card("se_resnet20", cutout=8), old)
    a, b = card("se_resnet20"), card("resnet20")
    a["data_fingerprint"], b["data_fingerprint"] = {"train": "1", "val": "2"}, {"train": "1", "val": "3"}
    assert "different images" in like_for_like(a, b)
    assert "no training configuration" in like_for_like({"model": "se_resnet20"}, b)


def test_interleaved_latency_alternates_and_says_when_it_is_noise():
    from senet import create_model
    from senet.analysis.compare import LatencyComparison, interleaved_latency

    lat = interleaved_latency(create_model("se_resnet20"), create_model("resnet20"), rounds=3, repeats=2)
    assert len(lat.rounds_a) == len(lat.rounds_b) == 3 and lat.median_a > 0 and lat.median_b > 0
    clear = LatencyComparison((1.1, 1.2, 1.15), (1.0, 1.0, 1.0))
    assert not clear.within_noise and clear.ratio == pytest.approx(1.15)
    noisy = LatencyComparison((0.9, 1.2, 1.0), (1.0, 1.0, 1.0))
    assert noisy.within_noise and noisy.ratio_range == (pytest.approx(0.9), pytest.approx(1.2))


def test_the_resume_marker_on_the_step_loss_chart_says_what_it_is():
    from senet_dashboard.figures import step_loss_figure

    records = [{"type": "step", "step": s, "loss": 1.0, "lr": 0.1} for s in range(1, 6)]
    records.insert(3, {"type": "resume", "step": 3, "epoch": 1})
    fig = step_loss_figure(curves_from_records(records))
    assert [a.text for a in fig.layout.annotations] == ["resumed at step 3"]


def test_the_model_card_says_on_which_data_its_figures_were_measured():
    from senet_dashboard.card import data_statement

    jpeg = data_statement({"dataset": "CIFAR-10 (JPEG q75 copy), 45,000 train / 5,000 val"})
    assert "**CIFAR-10 (JPEG q75 copy)" in jpeg and "original CIFAR-10 test split" in jpeg and "unmeasured" in jpeg
    other = data_statement({"config": {"data": "folder:/photos"}})
    assert "folder:/photos" in other and "unmeasured" in other and "JPEG" not in other
    assert "not recorded" in data_statement({})
    assert "Imported from akamaster" in data_statement({"imported_from": "akamaster", "dataset": "CIFAR-10"})
    assert "ImageNet" in data_statement({"external": True})


def _run_row(name: str, val: float | None = None, test: float | None = None, error: str | None = None) -> dict:
    return {"state": "finished", "run": name, "path": f"/runs/{name}", "model": "airnet", "recipe": "fast",
            "epoch": 3, "epochs": 4, "best_val_acc": val, "test_acc": test, "elapsed_s": 125.0, "started_at": 1.0,
            "error": error}


def test_the_runs_table_names_the_split_of_its_accuracy_column() -> None:
    from senet_dashboard.runs_table import ACC_HELP, runs_table

    table, column = runs_table([_run_row("a", val=0.9056), _run_row("b")])
    assert column == "best val acc" and column in ACC_HELP
    assert table[0][column] == pytest.approx(90.56) and table[1][column] is None, "percent; none before an epoch"
    assert "scored on" not in table[0] and "error" not in table[0]
    assert (table[0]["epochs"], table[0]["trained for"]) == ("3/4", "2m 05s")

    table, column = runs_table([_run_row("a", test=0.87)])
    assert column == "last test acc" and table[0][column] == pytest.approx(87.0)

    table, column = runs_table([_run_row("a", val=0.9), _run_row("b", test=0.87, error="died")])
    assert column == "recorded acc"
    assert [(r["scored on"], r[column]) for r in table] == [("val, best", pytest.approx(90.0)),
                                                            ("test, last", pytest.approx(87.0))]
    assert [r["error"] for r in table] == ["", "died"], "an error column once a run has one"


def test_svg_figures_draw_the_top_k_and_the_network_with_escaped_names():
    from xml.etree import ElementTree

    from senet.models.outline import OutlineBlock
    from senet_dashboard.svg_figures import network_svg, topk_svg

    top = topk_svg([("cat<script>", 0.75), ("dog", 0.25)])
    root = ElementTree.fromstring(top)  # well-formed: a class name cannot inject markup
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["cat<script>", "75.0%", "dog", "25.0%"]
    widths = [float(r.get("width")) for r in root.iter("{http://www.w3.org/2000/svg}rect")]
    assert widths[0] == pytest.approx(3 * widths[1]), "bar length proportional to the probability"
    blocks = [OutlineBlock("stage1.block1", "stage1", 16, 1, 16), OutlineBlock("stage2.block1", "stage2", 32, 2, 16)]
    net = ElementTree.fromstring(network_svg(blocks, {"stage1.block1": 0.0, "stage2.block1": 1.0}, "stage2.block1"))
    cells = [r for r in net.iter("{http://www.w3.org/2000/svg}rect") if r.get("stroke-width") in ("1", "3")
             and r.get("rx") == "4" and r.get("fill") not in ("#eef1f5",)]
    assert [c.get("stroke") for c in cells] == ["#ffffff", "#d62728"], "the chosen block is outlined"
    assert cells[0].get("fill") != cells[1].get("fill"), "coloured by the mean gate"
    titles = [t.text for t in net.iter("{http://www.w3.org/2000/svg}title")]
    assert any("stage2.block1: SE over C = 32 channels, hidden 2 (r = 16); this image's mean gate 1.000" == t
               for t in titles), titles
