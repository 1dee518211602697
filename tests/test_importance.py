"""Gate against importance (senet.analysis.importance, ``senet importance``): the first-order estimate against a
finite difference and exact ablation on a tiny model, exact ablation against an independent override, Spearman and
the bootstrap against scipy, the split-wide result, and the command line's one-line errors and JSON."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import call_cli as call, make_folder_dataset
from senet import create_model, save_checkpoint
from senet.analysis.importance import (MAX_PER_CLASS, bootstrap_interval, exact_importance, first_order_importance,
                                       gate_importance, image_importance, rank_average, spearman)
from senet.checkpoint import Checkpoint
from senet.data import TensorDataset, normalize
from senet.models import excitations, gate_overrides, se_blocks
from senet.progress import Stopped

CLASSES = ("blue", "green", "red")
BLOCK = "stage2.block1"


def tiny_model(double: bool = False) -> torch.nn.Module:
    """An SE-ResNet-20 for 3 classes whose SE and BatchNorm weights are random (an untrained one's gates are all
    alike: its residual branches start at zero)."""
    torch.manual_seed(0)
    model = create_model("se_resnet20", num_classes=3, reduction=2)  # (16 channels / 16: one ReLU, often all off)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    for block in se_blocks(model).values():
        torch.nn.init.normal_(block.fc1.weight, std=0.5)
        torch.nn.init.normal_(block.fc2.weight, std=1.0)
    model.eval()
    return model.double() if double else model


def log_p(model: torch.nn.Module, x: torch.Tensor, target: int) -> float:
    with torch.no_grad():
        return float(torch.log_softmax(model(x), dim=1)[0, target])


@pytest.fixture
def image() -> torch.Tensor:
    return torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_the_first_order_estimate_is_the_derivative_of_the_log_probability_in_each_gate(image, one_torch_thread):
    """estimate_c = d log p / d m_c at m = 1, where channel c's gate is scaled by m_c: a central difference agrees."""
    model = tiny_model(double=True)
    target = 2
    _, gates, est = first_order_importance(model, image, torch.tensor([target]), [BLOCK])
    g = torch.as_tensor(excitations(model, image)[BLOCK][0], dtype=torch.float64)
    assert np.allclose(gates[BLOCK][0], g.numpy())
    eps = 1e-4
    for c in (0, 7, 31):
        up, down = g.clone(), g.clone()
        up[c] *= 1 + eps
        down[c] *= 1 - eps
        with gate_overrides(model, {BLOCK: up}):
            hi = log_p(model, image, target)
        with gate_overrides(model, {BLOCK: down}):
            lo = log_p(model, image, target)
        assert est[BLOCK][0, c] == pytest.approx((hi - lo) / (2 * eps), rel=1e-4, abs=1e-9)


def test_exact_ablation_is_the_drop_when_one_gate_is_set_to_0_and_the_estimate_ranks_it_alike(image, one_torch_thread):
    model = tiny_model(double=True)
    target = 1
    base, drops = exact_importance(model, image, target, BLOCK, batch_size=5)  # several batches
    assert base == pytest.approx(log_p(model, image, target))
    g = torch.as_tensor(excitations(model, image)[BLOCK][0], dtype=torch.float64)
    for c in (0, 4, 30):
        zeroed = g.clone()
        zeroed[c] = 0.0
        with gate_overrides(model, {BLOCK: zeroed}):
            assert drops[c] == pytest.approx(base - log_p(model, image, target), rel=1e-6)  # gates read as float32
    _, some = exact_importance(model, image, target, BLOCK, channels=[30, 4])
    assert some == pytest.approx(drops[[30, 4]], abs=1e-12)
    one = image_importance(model, image, target, BLOCK)
    assert np.allclose(one.exact, drops) and one.gates.shape == drops.shape
    # removing one channel is a small change in this network: the linear estimate orders the channels as ablation does
    assert spearman(one.exact, one.estimate) > 0.8
    assert np.mean(np.sign(one.exact) == np.sign(one.estimate)) > 0.8
    json.dumps(one.to_dict(), allow_nan=False)


def test_a_channel_whose_gate_is_already_0_has_importance_0(image, one_torch_thread):
    model = tiny_model(double=True)
    _, before = exact_importance(model, image, 0, BLOCK)
    assert abs(before[5]) > 1e-4  # channel 5 matters while its gate is open
    g = torch.as_tensor(excitations(model, image)[BLOCK][0], dtype=torch.float64)
    g[5] = 0.0
    with gate_overrides(model, {BLOCK: g}):
        _, drops = exact_importance(model, image, 0, BLOCK)
        _, _, est = first_order_importance(model, image, torch.tensor([0]), [BLOCK])
    assert abs(drops[5]) < 1e-12 and est[BLOCK][0, 5] == 0.0  # (a batch's rounding differs from one image's)


def test_ranks_and_spearman_match_scipy_on_a_hand_example_with_ties():
    stats = pytest.importorskip("scipy.stats")
    x = np.array([1.0, 2.0, 2.0, 3.0, 5.0, 2.0])
    y = np.array([2.0, 1.0, 4.0, 4.0, 3.0, 0.5])
    assert rank_average(x).tolist() == [1.0, 3.0, 3.0, 5.0, 6.0, 3.0]  # the three 2s share ranks 2, 3, 4
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3])) and np.isnan(spearman([1], [2]))


def test_the_bootstrap_interval_matches_scipy_and_is_fixed_by_its_seed():
    stats = pytest.importorskip("scipy.stats")
    values = np.array([0.1, 0.4, -0.2, 0.3, 0.25, 0.0, 0.6, -0.1, 0.2, 0.35, np.nan])
    lo, hi = bootstrap_interval(values, n_resamples=20000, seed=3)
    ref = stats.bootstrap((values[~np.isnan(values)],), np.mean, n_resamples=20000, method="percentile",
                          rng=np.random.default_rng(0)).confidence_interval
    assert lo == pytest.approx(ref.low, abs=0.01) and hi == pytest.approx(ref.high, abs=0.01)
    assert lo < np.nanmean(values) < hi
    assert bootstrap_interval(values, n_resamples=500, seed=3) == bootstrap_interval(values, n_resamples=500, seed=3)
    assert all(np.isnan(bootstrap_interval(np.array([np.nan]))))


def synthetic_split(per_class: int = 6, size: int = 8) -> TensorDataset:
    g = torch.Generator().manual_seed(2)
    n = per_class * len(CLASSES)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return TensorDataset(images, torch.arange(n) % len(CLASSES), list(CLASSES), split="val")


def test_gate_importance_over_a_split_summarises_the_per_image_estimates(one_torch_thread):
    model, data = tiny_model(), synthetic_split()
    checkpoint = Checkpoint.of(model, "se_resnet20", classes=CLASSES)
    reports = []
    result = gate_importance(checkpoint, data, per_class=4, check_images=3, check_channels=10, n_resamples=500,
                             progress=lambda done, total: reports.append((done, total)))
    assert result.n == 12 and sorted(torch.bincount(data.labels[result.positions]).tolist()) == [4, 4, 4]
    assert [b.block for b in result.blocks] == list(se_blocks(model)) and len(result.check_positions) == 3
    assert [d for d, _ in reports] == sorted(d for d, _ in reports) and reports[-1][0] == reports[-1][1]
    # the summaries are those of the per-image estimates, recomputed here image by image
    x = normalize(data.images[result.positions], checkpoint.mean, checkpoint.std)
    _, gates, est = first_order_importance(model, x, data.labels[result.positions])
    for b in result.blocks:
        rhos = [spearman(g, e) for g, e in zip(gates[b.block], est[b.block])]
        assert b.spearman == pytest.approx(np.nanmean(rhos), abs=1e-6)
        assert b.interval[0] <= b.spearman <= b.interval[1]
        assert np.allclose(b.mean_gate, gates[b.block].mean(0), atol=1e-6)
        assert np.allclose(b.mean_importance, est[b.block].mean(0), atol=1e-6)
        high = b.high_gate_low_importance[0]
        assert high.mean_gate >= np.median(b.mean_gate) and set(high.images) <= set(result.positions)
        low = b.low_gate_high_importance[0]
        assert low.mean_importance >= np.median(b.mean_importance)
    for a in result.agreement:
        assert a.n_images == 3 and a.channels == 10 and -1 <= a.spearman <= 1 and 0 <= a.sign_agreement <= 1
    again = gate_importance(checkpoint, data, per_class=4, check_images=3, check_channels=10, n_resamples=500)
    assert json.dumps(again.to_dict(), allow_nan=False) == json.dumps(result.to_dict(), allow_nan=False)


def test_gate_importance_refuses_bad_input_and_stops_between_batches(one_torch_thread):
    model, data = tiny_model(), synthetic_split()
    checkpoint = Checkpoint.of(model, "se_resnet20", classes=CLASSES)
    with pytest.raises(ValueError, match="unknown SE block 'stage9'; known: stage1.block1, "):
        gate_importance(checkpoint, data, block="stage9")
    for bad in (0, MAX_PER_CLASS + 1):
        with pytest.raises(ValueError, match=f"per_class {bad}: must be 1 to {MAX_PER_CLASS}"):
            gate_importance(checkpoint, data, per_class=bad)
    x = torch.randn(2, 3, 8, 8)
    before = model(x).detach()

    def stop(done: int, total: int) -> None:
        raise Stopped

    with pytest.raises(Stopped):
        gate_importance(checkpoint, data, per_class=4, batch_size=2, progress=stop)
    assert torch.equal(model(x).detach(), before)  # no multiplier left behind
    plain = Checkpoint.of(create_model("resnet20", num_classes=3), "resnet20", classes=CLASSES)
    with pytest.raises(ValueError, match="no SE blocks"):
        gate_importance(plain, data)


# --------------------------------------------------------------------------- command line
@pytest.fixture
def folder_run(tmp_path: Path) -> list[str]:
    """``importance`` arguments for a tiny folder dataset and an SE-ResNet-20 checkpoint with random SE weights."""
    make_folder_dataset(tmp_path / "ds", per_class=5, size=16)
    path = tmp_path / "se.pt"
    save_checkpoint(path, tiny_model(), model_name="se_resnet20", model_options={"num_classes": 3, "reduction": 2},
                    classes=CLASSES)
    return ["importance", "--checkpoint", str(path), "--data", f"folder:{tmp_path / 'ds'}", "--data-dir",
            str(tmp_path), "--split", "train"]


def test_importance_json_on_a_folder_dataset(folder_run, capsys, one_torch_thread):
    code, out, err = call(capsys, *folder_run, "--per-class", "2", "--check-images", "1", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 6 and result["split"] == "train" and len(result["check_positions"]) == 1
    assert [b["block"] for b in result["blocks"]] == list(se_blocks(tiny_model()))
    assert all(-1 <= b["spearman"] <= 1 and len(b["mean_gate"]) == b["channels"] for b in result["blocks"])
    code, out, err = call(capsys, *folder_run, "--per-class", "2", "--block", "stage3.block3", "--check-images", "1")
    assert code == 0, err
    assert "6 images" in out and "stage3.block3" in out and "stage1.block1" not in out
    assert "high gate, ~no importance: ch " in out and "low gate, high importance: ch " in out


@pytest.mark.parametrize("argv, message", [
    (["--block", "stage9"], "--block stage9: no such SE block in "),
    (["--per-class", "0"], f"--per-class 0: must be 1 to {MAX_PER_CLASS}"),
    (["--per-class", str(MAX_PER_CLASS + 1)], f"--per-class {MAX_PER_CLASS + 1}: must be 1 to {MAX_PER_CLASS}"),
    (["--check-images", "-1"], "--check-images -1: must be 0 to 50"),
    (["--checkpoint", "missing.pt", "--per-class", "0"], "--per-class 0"),  # checked before the checkpoint is read
    (["--checkpoint", "missing.pt"], "no such checkpoint file"),
])
def test_importance_errors_are_one_line_exit_2(folder_run, capsys, argv, message):
    code, out, err = call(capsys, *folder_run, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and not out, err
    if "stage9" in argv:
        assert "known: stage1.block1, stage1.block2" in err
