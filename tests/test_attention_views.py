"""The attention views' computations: one SE block step by step, feature maps and channel responses, the map of
images by their gates with its probe, and the gates' spread and saturation -- each against a hand computation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from senet.analysis.ablation import GateAblation
from senet.analysis.gate_space import ALL_BLOCKS, gate_map, gate_vectors, probe_accuracy
from senet.analysis.inside import block_steps, channel_responses, ranked_channels
from senet.analysis.profiles import ClassProfiles
from senet.analysis.saturation import class_quantiles, removal_verdicts, saturation
from senet.checkpoint import Checkpoint
from senet.data import TensorDataset
from senet.models import SEBlock, SeedSEBlock, create_model, excitations


class OneBlock(nn.Module):
    """conv -> SE block -> pool -> linear: the smallest network with one SE block."""

    def __init__(self, block: nn.Module, channels: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.se = block
        self.head = nn.Linear(channels, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.se(self.conv(x)).mean(dim=(2, 3)))


def _numpy_steps(block: nn.Module, u: np.ndarray) -> dict[str, np.ndarray]:
    """The paper's equations in numpy, written out independently of the project's code."""
    if isinstance(block, SeedSEBlock):
        c1, c2 = block.fc[0], block.fc[2]
        w1, b1 = c1.weight.detach().numpy()[:, :, 0, 0], c1.bias.detach().numpy()
        w2, b2 = c2.weight.detach().numpy()[:, :, 0, 0], c2.bias.detach().numpy()
        src = u.mean(axis=(1, 2), keepdims=True) if block.squeeze else u
        h = np.maximum(np.tensordot(w1, src, axes=(1, 0)) + b1[:, None, None], 0)
        both = np.tensordot(w2, h, axes=(1, 0)) + b2[:, None, None]
        w, b = both[:block.channels], both[block.channels:]
        s = 1 / (1 + np.exp(-w))
        return dict(gate=s.mean(axis=(1, 2)), out=u * s + b, hidden=h.mean(axis=(1, 2)))
    w1, w2 = block.fc1.weight.detach().numpy(), block.fc2.weight.detach().numpy()
    act = {"sigmoid": lambda a: 1 / (1 + np.exp(-a)), "tanh": np.tanh, "relu": lambda a: np.maximum(a, 0)}
    f = act[block.excitation]
    if block.squeeze == "none":
        h = np.maximum(np.einsum("hc,cyx->hyx", w1, u), 0)
        s = f(np.einsum("ch,hyx->cyx", w2, h))
        return dict(gate=s.mean(axis=(1, 2)), out=u * s, hidden=h.mean(axis=(1, 2)))
    z = u.mean(axis=(1, 2)) if block.squeeze == "avg" else u.max(axis=(1, 2))
    h = np.maximum(w1 @ z, 0)
    a = w2 @ h
    s = f(a)
    return dict(z=z, hidden=h, pre_gate=a, gate=s, out=u * s[:, None, None])


BLOCKS = {
    "paper avg": lambda: SEBlock(8, reduction=2),
    "paper max": lambda: SEBlock(8, reduction=2, squeeze="max"),
    "paper tanh": lambda: SEBlock(8, reduction=4, excitation="tanh"),
    "paper relu": lambda: SEBlock(8, reduction=4, excitation="relu"),
    "paper NoSqueeze": lambda: SEBlock(8, reduction=2, squeeze="none"),
    "seed per pixel": lambda: SeedSEBlock(8, reduction=2, squeeze=False),
    "seed squeezed": lambda: SeedSEBlock(8, reduction=2, squeeze=True),
}


@pytest.mark.parametrize("kind", list(BLOCKS))
def test_block_steps_match_a_hand_computation_and_the_blocks_own_output(kind):
    torch.manual_seed(0)
    model = OneBlock(BLOCKS[kind]()).eval()
    x = torch.randn(1, 3, 6, 6)
    steps = block_steps(model, x, "se")
    u = model.conv(x)[0].detach().numpy()
    np.testing.assert_allclose(steps.u, u, rtol=1e-5, atol=1e-6)
    expected = _numpy_steps(model.se, u)
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(steps, name), value, rtol=1e-4, atol=1e-5, err_msg=f"{kind}: {name}")
    assert steps.check_error < 1e-5
    assert steps.per_pixel == (kind in ("paper NoSqueeze", "seed per pixel"))
    assert (steps.gate_map is not None) == steps.per_pixel
    assert (steps.bias is not None) == kind.startswith("seed")
    # the gate shown is the gate the explorer reads everywhere else
    np.testing.assert_allclose(steps.gate, excitations(model, x)["se"][0].numpy(), rtol=1e-5, atol=1e-6)


def test_block_steps_names_the_known_blocks_for_an_unknown_one():
    model = OneBlock(SEBlock(8, reduction=2))
    with pytest.raises(KeyError, match="no SE block named 'stage9'; blocks: se"):
        block_steps(model, torch.randn(1, 3, 4, 4), "stage9")


def test_block_steps_on_a_real_network_block():
    torch.manual_seed(0)
    model = create_model("se_resnet20", num_classes=10).eval()
    steps = block_steps(model, torch.randn(1, 3, 32, 32), "stage3.block3")
    assert steps.u.shape == (64, 8, 8) and steps.hidden.shape == (4,) and steps.check_error < 1e-5
    np.testing.assert_allclose(steps.z, steps.u.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_ranked_channels_breaks_saturated_ties_by_strength():
    gate = np.array([1.0, 0.2, 1.0, 0.0, 0.0, 0.9999])
    strength = np.array([0.1, 5.0, 3.0, 2.0, 7.0, 4.0])
    most, least = ranked_channels(gate, 2, strength)
    assert most == [5, 2], "three gates round to 1.000: the strongest squeeze first"
    assert least == [4, 3]
    assert ranked_channels(np.array([0.3, 0.9, 0.1]), 3) == ([1], [2]), "k is capped at half the channels"


def test_channel_responses_are_each_channels_spatial_maximum():
    torch.manual_seed(0)
    model = OneBlock(SEBlock(8, reduction=2)).eval()
    images = torch.randint(0, 256, (6, 3, 5, 5), dtype=torch.uint8)
    data = TensorDataset(images, torch.arange(6) % 2, ["a", "b"])
    ck = Checkpoint.of(model, name="one", classes=["a", "b"], mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    positions = np.array([4, 1, 3])
    got = channel_responses(ck, data, positions)["se"]
    x = (images[positions].float() / 255 - 0.5) / 0.25
    expected = model.conv(x).amax(dim=(2, 3)).detach().numpy()
    np.testing.assert_allclose(got.astype(np.float32), expected, rtol=2e-3, atol=2e-3)


def _profiles(gates: dict[str, np.ndarray], labels: np.ndarray, classes: list[str]) -> ClassProfiles:
    k = len(classes)
    counts = np.bincount(labels, minlength=k)
    profiles = {b: np.stack([g[labels == c].mean(0) for c in range(k)]) for b, g in gates.items()}
    return ClassProfiles(classes, counts, profiles, {b: g.mean(0) for b, g in gates.items()},
                         {b: float(g.std(0, ddof=1).mean()) for b, g in gates.items()}, positions=np.arange(len(labels)),
                         gates={b: g.astype(np.float16) for b, g in gates.items()}, labels=labels)


def test_gate_map_is_the_pca_of_the_gate_vectors():
    rng = np.random.default_rng(0)
    g = rng.random((40, 6)).astype(np.float32)
    g[:, 0] *= 5  # one direction dominates
    p = _profiles({"b": g, "c": rng.random((40, 3)).astype(np.float32)}, np.arange(40) % 2, ["x", "y"])
    m = gate_map(p, "b")
    x = p.gates["b"].astype(np.float64)
    x -= x.mean(0)
    eigval, eigvec = np.linalg.eigh(np.cov(x.T, bias=True))
    top = eigvec[:, ::-1][:, :2]
    for axis in range(2):  # equal up to sign
        ref = x @ top[:, axis]
        assert min(np.abs(m.coords[:, axis] - ref).max(), np.abs(m.coords[:, axis] + ref).max()) < 1e-3
    np.testing.assert_allclose(m.explained, eigval[::-1][:2] / eigval.sum(), rtol=1e-4)
    assert gate_vectors(p, ALL_BLOCKS).shape == (40, 9)
    with pytest.raises(KeyError, match="no SE block named 'nope'"):
        gate_map(p, "nope")


def test_probe_reads_class_from_informative_gates_and_not_from_noise():
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 3
    informative = rng.normal(0, 0.05, (120, 5)) + np.eye(3, 5)[labels]  # class k opens channel k
    noise = rng.random((120, 5))
    scores = {s.block: s for s in probe_accuracy(_profiles({"early": noise, "late": informative}, labels,
                                                           ["a", "b", "c"]))}
    assert scores["late"].accuracy > 0.95
    assert scores["early"].accuracy < 0.6
    assert scores[ALL_BLOCKS].features == 10 and scores["late"].chance == pytest.approx(1 / 3)
    assert scores["late"].folds == 5
    with pytest.raises(ValueError, match="at least 2 classes"):
        probe_accuracy(_profiles({"b": noise[:4]}, np.zeros(4, dtype=int), ["a"]))


def test_class_quantiles_and_saturation_by_hand():
    labels = np.array([0, 0, 0, 0, 1, 1])
    g = np.array([[0.01, 0.5, 0.99], [0.02, 0.6, 0.98], [0.03, 0.7, 0.97], [0.04, 0.8, 0.96],
                  [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], dtype=np.float32)
    p = _profiles({"b": g}, labels, ["x", "y"])
    q = class_quantiles(p, "b", 0)
    np.testing.assert_allclose(q[1], np.median(g[:4].astype(np.float16).astype(np.float32), axis=0), atol=1e-3)
    np.testing.assert_allclose(q[0], np.percentile(g[:4].astype(np.float16).astype(np.float32), 25, axis=0),
                               atol=1e-3)
    (row,) = saturation(p, {"b": (0.0, 1.0)})
    assert row.low_share == pytest.approx(4 / 18) and row.high_share == pytest.approx(4 / 18)
    assert not row.saturated and not row.near_identity
    (relu,) = saturation(p, {"b": (0.0, float("inf"))})
    assert relu.high_share is None, "a ReLU gate has no top to saturate at"
    three = ClassProfiles(["x", "y", "z"], np.array([4, 2, 0]), {}, {}, {}, np.arange(6),
                          {"b": g.astype(np.float16)}, labels)
    with pytest.raises(ValueError, match="no sampled images of class 'z'"):
        class_quantiles(three, "b", 2)


def test_flags_and_removal_verdicts_follow_the_measured_ablation():
    labels = np.arange(20) % 2
    ones = np.full((20, 4), 0.99, dtype=np.float32)
    ones[::2, 0] = 0.97  # a little variation
    half = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    p = _profiles({"early": half, "last": ones}, labels, ["x", "y"])
    rows = {r.block: r for r in saturation(p, {"early": (0.0, 1.0), "last": (0.0, 1.0)})}
    assert rows["last"].near_identity and "close to identity" in rows["last"].flags()
    assert not rows["early"].flags()
    ablation = GateAblation(n=200, baseline=0.9, rows=[
        {"blocks": "early", "mode": "off", "accuracy": 0.7}, {"blocks": "early", "mode": "mean", "accuracy": 0.8},
        {"blocks": "last", "mode": "off", "accuracy": 0.898}, {"blocks": "last", "mode": "mean", "accuracy": 0.9}])
    verdicts = removal_verdicts(list(rows.values()), ablation)
    assert "-0.20 pts on 200 images" in verdicts["last"] and "removable at little cost" in verdicts["last"]
    assert "-20.00 pts" in verdicts["early"] and "cheap" not in verdicts["early"]


def test_block_steps_beyond_128_channels_draw_each_row_as_one_filled_line_with_the_followed_channel_marked():
    from senet import create_model
    from senet.analysis.inside import block_steps
    from senet_dashboard.inside_figures import WIDE, block_steps_figure

    torch.manual_seed(0)
    model = create_model("se_airnet", num_classes=10, width=2).eval()  # the shipped width: 512 channels, C/r = 32
    steps = block_steps(model, torch.randn(1, 3, 32, 32), "stage2")
    assert steps.channels > WIDE, "precondition: a wide block"
    order = np.argsort(-steps.gate, kind="stable")
    fig = block_steps_figure(steps, order=order, highlight=7)
    rows = [t for t in fig.data if t.type == "scatter" and t.fill == "tozeroy"]
    assert len(rows) == 4, "squeeze, FC2 output, gate, scaled output: one filled line each"
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 1 and bars[0].x[0] == "h0", "only the bottleneck's few numbers are bars"
    gate = rows[2]
    assert list(gate.customdata) == order.tolist() and np.allclose(gate.y, steps.gate[order])
    marks = [t for t in fig.data if t.name == "followed"]
    assert len(marks) == 4 and all(int(m.customdata[0]) == 7 for m in marks), "the followed channel, on every row"
    assert int(marks[2].x[0]) == int(np.flatnonzero(order == 7)[0]) and np.isclose(marks[2].y[0], steps.gate[7])
    assert fig.layout.xaxis2.showticklabels is False, "32 bottleneck names would run into the next title"
