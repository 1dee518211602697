"""The SENet paper's section-6 ablations as model options, each checked against a hand computation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from senet import create_model, excitations, load_checkpoint, model_info, save_checkpoint, se_blocks
from senet.models import SEBlock
from senet.models.resnet import BasicBlock


def by_hand(block: SEBlock, z: torch.Tensor) -> torch.Tensor:
    return F.relu(z @ block.fc1.weight.T) @ block.fc2.weight.T


@pytest.mark.parametrize("excitation, gate, low, high", [
    ("sigmoid", torch.sigmoid, 0.0, 1.0), ("tanh", torch.tanh, -1.0, 1.0), ("relu", F.relu, 0.0, float("inf"))])
def test_squeeze_and_excitation_operators_compute_what_the_paper_says(excitation, gate, low, high) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 5)
    for squeeze, pool in (("avg", lambda t: t.mean(dim=(2, 3))), ("max", lambda t: t.amax(dim=(2, 3)))):
        block = SEBlock(8, reduction=2, squeeze=squeeze, excitation=excitation)
        expected = x * gate(by_hand(block, pool(x)))[:, :, None, None]
        assert torch.allclose(block(x), expected, atol=1e-6), (squeeze, excitation)
        assert block.gate_range == (low, high)
    block = SEBlock(8, reduction=2, squeeze="none", excitation=excitation)  # NoSqueeze: the FCs on every pixel
    pixels = x.permute(0, 2, 3, 1)
    expected = x * gate(by_hand(block, pixels)).permute(0, 3, 1, 2)
    assert torch.allclose(block(x), expected, atol=1e-6)


def test_no_squeeze_gives_a_gate_per_pixel_and_the_explorer_its_spatial_mean() -> None:
    torch.manual_seed(0)
    model = create_model("se_resnet20", se_squeeze="none").eval()
    x = torch.randn(2, 3, 32, 32)
    first = se_blocks(model)["stage1.block1"]
    seen = {}
    handle = first.gate.register_forward_hook(lambda m, i, o: seen.setdefault("gate", o))
    gates = excitations(model, x)
    handle.remove()
    assert seen["gate"].shape == (2, 16, 32, 32), "one gate per channel and pixel"
    assert torch.allclose(gates["stage1.block1"], seen["gate"].mean(dim=(2, 3)))


def composed(block: BasicBlock, x: torch.Tensor) -> torch.Tensor:
    """The four integration positions of the paper's Fig. 5, written out with the block's own layers."""
    branch = lambda t: block.bn2(block.conv2(F.relu(block.bn1(block.conv1(t)))))  # noqa: E731
    short = block.shortcut(x)
    if block.position == "standard":
        return F.relu(block.se(branch(x)) + short)
    if block.position == "pre":
        return F.relu(branch(block.se(x)) + short)
    if block.position == "post":
        return block.se(F.relu(branch(x) + short))
    return F.relu(branch(x) + block.se(short))


@pytest.mark.parametrize("position", ["standard", "pre", "post", "identity"])
@pytest.mark.parametrize("stride, planes", [(1, 16), (2, 32)])
def test_each_integration_position_is_the_papers(position, stride, planes) -> None:
    torch.manual_seed(1)
    block = BasicBlock(16, planes, stride, lambda c: SEBlock(c, 4), position).eval()
    x = torch.randn(2, 16, 8, 8)
    assert torch.allclose(block(x), composed(block, x), atol=1e-6)
    assert block.se.channels == (16 if position == "pre" else planes), "SE-PRE sees the block's input channels"


def test_se_in_chosen_stages_only_and_its_parameters_follow() -> None:
    full, last = create_model("se_resnet20"), create_model("se_resnet20", se_stages="3")
    assert list(se_blocks(last)) == ["stage3.block1", "stage3.block2", "stage3.block3"]
    assert model_info(last)["se_params"] == 3 * 2 * 64 ** 2 // 16 and model_info(full)["se_params"] == 2016
    assert list(se_blocks(create_model("se_airnet", se_stages="13"))) == ["stage1", "stage3"]
    assert create_model("se_resnet20", reduction=32, se_stages="23"), "r=32 fits when stage 1 has no SE"
    with pytest.raises(ValueError, match="narrowest SE stage"):
        create_model("se_resnet20", reduction=32)
    for bad in ("", "4", "11", 3):
        with pytest.raises(ValueError, match="se_stages"):
            create_model("se_resnet20", se_stages=bad)


@pytest.mark.parametrize("options", [dict(se_squeeze="max"), dict(se_squeeze="none"), dict(se_excitation="tanh"),
                                     dict(se_excitation="relu"), dict(se_position="pre"), dict(se_position="post"),
                                     dict(se_position="identity"), dict(se_stages="23")])
def test_every_option_trains_saves_loads_and_shows_its_gates_in_range(tmp_path, options) -> None:
    torch.manual_seed(0)
    model = create_model("se_resnet20", num_classes=3, **options)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 3, (8,))
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, model_name="se_resnet20", model_options={"num_classes": 3, **options},
                    classes=("a", "b", "c"))
    loaded, meta = load_checkpoint(path)
    assert meta["model_options"] == {"num_classes": 3, **options}
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.eval()(x), atol=1e-5)
    gates = excitations(loaded, x)
    low, high = next(iter(se_blocks(loaded).values())).gate_range
    assert gates and all(((g >= low - 1e-6) & (g <= high + 1e-6)).all() for g in gates.values())


def test_the_explorer_says_when_a_gate_is_not_a_sigmoid_in_0_to_1() -> None:
    from senet.analysis.explanation import gate_description

    assert gate_description(create_model("se_resnet20")) is None
    assert "tanh: gates from -1 to 1" in gate_description(create_model("se_resnet20", se_excitation="tanh"))
    assert "ReLU: gates from 0 up" in gate_description(create_model("se_resnet20", se_excitation="relu"))
    assert "NoSqueeze" in gate_description(create_model("se_resnet20", se_squeeze="none"))
    assert "seed's block" in gate_description(create_model("seed_senet", filters=16, blocks=2))
