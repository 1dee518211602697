"""Reading SE gates with excitations() and replacing them with gate_overrides()."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from senet import create_model, excitations, gate_overrides, se_blocks


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorm layers non-trivial statistics so that eval mode differs from train mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


def hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return randomise_batchnorm(create_model("se_resnet20")).eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_excitations_shapes_names_and_range(model, images):
    gates = excitations(model, images)
    expected_names = [f"stage{s}.block{b}" for s in (1, 2, 3) for b in (1, 2, 3)]
    assert list(gates) == expected_names, "one entry per SE block, ordered from input to output"
    for name, gate in gates.items():
        channels = {"1": 16, "2": 32, "3": 64}[name[5]]
        assert gate.shape == (4, channels), f"{name}: expected (4, {channels}), got {tuple(gate.shape)}"
        assert gate.min() >= 0 and gate.max() <= 1, f"{name}: gate values must lie in [0, 1]"
        assert not gate.requires_grad


def test_excitations_match_the_gate_computed_by_hand(model, images):
    block = model.stage1[0]
    with torch.no_grad():
        u = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(torch.relu(model.bn1(model.conv1(images))))))))
        z = u.mean(dim=(2, 3))
        expected = torch.sigmoid(torch.relu(z @ block.se.fc1.weight.T) @ block.se.fc2.weight.T)
    torch.testing.assert_close(excitations(model, images)["stage1.block1"], expected, rtol=1e-5, atol=1e-6)


def test_excitations_leave_model_output_bit_identical(model, images):
    with torch.no_grad():
        before = model(images)
    during = []
    handle = model.register_forward_hook(lambda _m, _i, out: during.append(out.clone()))
    try:
        excitations(model, images)
    finally:
        handle.remove()
    with torch.no_grad():
        after = model(images)
    assert torch.equal(during[0], before), "capturing gates must not change the output of that forward pass"
    assert torch.equal(after, before), "capturing gates must not change later outputs"
    assert hooks_left(model) == 0, "excitations() must remove its hooks"


def test_excitations_remove_hooks_when_forward_raises(model):
    with pytest.raises(RuntimeError):
        excitations(model, torch.randn(1, 5, 32, 32))  # wrong channel count: the stem conv fails
    assert hooks_left(model) == 0, "hooks must be removed even when the forward pass raises"


def test_excitations_leave_training_state_untouched(model, images):
    model.train()
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    excitations(model, images)
    assert model.training, "the model's mode must be restored"
    for k, v in model.state_dict().items():
        assert torch.equal(v, stats[k]), f"{k} changed: capturing gates must not update BatchNorm statistics"


def test_excitations_of_a_plain_model_is_empty(images):
    assert excitations(create_model("resnet20").eval(), images) == {}


def test_excitations_of_seed_model_is_spatial_mean_of_per_pixel_gate(images):
    torch.manual_seed(0)
    model = create_model("seed_senet", filters=32, blocks=3).eval()
    per_pixel = []
    handle = model.res_blocks[1].se.gate.register_forward_hook(lambda _m, _i, out: per_pixel.append(out.clone()))
    try:
        gates = excitations(model, images)
    finally:
        handle.remove()
    assert list(gates) == ["stage1.block1", "stage1.block2"]
    assert per_pixel[0].shape == (4, 32, 32, 32)
    assert gates["stage1.block2"].shape == (4, 32)
    torch.testing.assert_close(gates["stage1.block2"], per_pixel[0].mean(dim=(2, 3)))


def test_gate_override_of_one_equals_network_without_se(model, images):
    plain = create_model("resnet20").eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".se." not in k})
    with torch.no_grad():
        with gate_overrides(model, {name: 1.0 for name in se_blocks(model)}):
            switched_off = model(images)
        expected = plain(images)
        normal = model(images)
    assert torch.equal(switched_off, expected), "gate = 1 everywhere must be exactly the plain ResNet"
    assert not torch.equal(normal, expected), "the SE blocks do change the output when active"
    assert hooks_left(model) == 0, "gate_overrides must remove its hooks on exit"


def test_gate_override_with_a_profile_replaces_the_gate(model, images):
    profile = torch.linspace(0, 1, 16)
    with gate_overrides(model, {"stage1.block2": profile}):
        gates = excitations(model, images)
    assert torch.equal(gates["stage1.block2"], profile.expand(4, 16)), "every image gets the given profile"
    assert not torch.equal(excitations(model, images)["stage1.block2"], profile.expand(4, 16))


def test_gate_override_refuses_unknown_block_and_wrong_shape(model):
    with pytest.raises(ValueError, match="stage9.block1"):
        with gate_overrides(model, {"stage9.block1": 1.0}):
            pass
    with pytest.raises(ValueError, match="stage1.block1"):
        with gate_overrides(model, {"stage1.block1": torch.ones(32)}):  # stage 1 has 16 channels
            pass
    assert hooks_left(model) == 0
