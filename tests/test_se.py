"""The SE block against the paper's formula, and the seed's variant against its own."""
from __future__ import annotations

import pytest
import torch

from senet import SEBlock, SeedSEBlock, create_model


def gate_of(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``block`` on ``x`` and return what its ``gate`` submodule produced."""
    seen = []
    handle = block.gate.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().clone()))
    try:
        with torch.no_grad():
            block(x)
    finally:
        handle.remove()
    return seen[0]


def shuffle_pixels_per_channel(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Permute the H*W pixels of every channel independently: channel means stay, layout changes."""
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    perms = torch.stack([torch.randperm(h * w, generator=g) for _ in range(b * c)]).view(b, c, h * w)
    return flat.gather(2, perms).view(b, c, h, w)


def test_se_block_equals_hand_computed_formula():
    torch.manual_seed(0)
    block = SEBlock(32, reduction=4)
    x = torch.randn(3, 32, 5, 7)
    w1, w2 = block.fc1.weight, block.fc2.weight  # (C/r, C), (C, C/r)
    z = x.sum(dim=3).sum(dim=2) / (5 * 7)  # squeeze: mean over H and W
    s = torch.sigmoid(torch.clamp(z @ w1.T, min=0) @ w2.T)  # excitation
    expected = x * s.view(3, 32, 1, 1)  # scale
    with torch.no_grad():
        out = block(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6,
                               msg="SEBlock should compute x * sigmoid(W2 relu(W1 mean_hw(x)))")
    torch.testing.assert_close(gate_of(block, x), s, rtol=1e-5, atol=1e-6)


def test_se_block_layers_have_no_bias_and_hidden_width_is_channels_over_r():
    block = SEBlock(64, reduction=16)
    assert block.hidden == 4
    assert tuple(block.fc1.weight.shape) == (4, 64) and block.fc1.bias is None
    assert tuple(block.fc2.weight.shape) == (64, 4) and block.fc2.bias is None
    assert sum(p.numel() for p in block.parameters()) == 2 * 64 * 64 // 16
    assert SEBlock(8, reduction=16).hidden == 1, "hidden width is max(1, C // r)"
    assert SEBlock(64, reduction=16, hidden=10).hidden == 10, "an explicit hidden width overrides r"


def test_gate_ignores_spatial_layout():
    torch.manual_seed(1)
    block = SEBlock(16, reduction=4)
    x = torch.randn(2, 16, 8, 8)
    shuffled = shuffle_pixels_per_channel(x)
    assert not torch.equal(x, shuffled)
    gate, gate_shuffled = gate_of(block, x), gate_of(block, shuffled)
    assert gate.shape == (2, 16)
    torch.testing.assert_close(gate_shuffled, gate, rtol=1e-5, atol=1e-6,
                               msg="the paper's gate depends only on channel means, not on where pixels are")


def test_seed_unsqueezed_gate_depends_on_spatial_layout():
    torch.manual_seed(1)
    block = SeedSEBlock(16, reduction=4, squeeze=False)
    x = torch.randn(2, 16, 8, 8)
    gate = gate_of(block, x)
    assert gate.shape == (2, 16, 8, 8), "the seed's gate is computed per pixel"
    mean_gate = gate.mean(dim=(2, 3))
    mean_gate_shuffled = gate_of(block, shuffle_pixels_per_channel(x)).mean(dim=(2, 3))
    diff = (mean_gate - mean_gate_shuffled).abs().max().item()
    assert diff > 1e-3, f"the seed's per-pixel gate should change when pixels move (max change {diff:.2e})"


def test_seed_block_with_squeeze_ignores_spatial_layout():
    torch.manual_seed(1)
    block = SeedSEBlock(16, reduction=4, squeeze=True)
    x = torch.randn(2, 16, 8, 8)
    gate = gate_of(block, x)
    assert gate.shape == (2, 16, 1, 1)
    torch.testing.assert_close(gate_of(block, shuffle_pixels_per_channel(x)), gate, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("squeeze", [False, True])
def test_seed_block_computes_x_times_sigmoid_w_plus_b(squeeze):
    torch.manual_seed(2)
    block = SeedSEBlock(16, reduction=4, squeeze=squeeze)
    x = torch.randn(2, 16, 6, 6)
    conv1, conv2 = block.fc[0], block.fc[2]
    assert tuple(conv1.weight.shape) == (4, 16, 1, 1) and tuple(conv2.weight.shape) == (32, 4, 1, 1)
    v = x.mean(dim=(2, 3), keepdim=True) if squeeze else x
    h = torch.relu(torch.einsum("oc,bchw->bohw", conv1.weight[:, :, 0, 0], v) + conv1.bias.view(1, -1, 1, 1))
    wb = torch.einsum("oc,bchw->bohw", conv2.weight[:, :, 0, 0], h) + conv2.bias.view(1, -1, 1, 1)
    w, b = wb[:, :16], wb[:, 16:]
    with torch.no_grad():
        out = block(x)
    torch.testing.assert_close(out, x * torch.sigmoid(w) + b, rtol=1e-5, atol=1e-5)


def test_gate_hook_reads_without_changing_output():
    torch.manual_seed(3)
    block = SEBlock(16, reduction=4)
    x = torch.randn(2, 16, 4, 4)
    with torch.no_grad():
        before = block(x)
    gate_of(block, x)
    with torch.no_grad():
        after = block(x)
    assert torch.equal(before, after)
    assert not block.gate._forward_hooks, "the hook must be gone"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "16", None])
def test_reduction_that_is_not_a_positive_integer_is_refused(bad):
    for make in (lambda: SEBlock(16, bad), lambda: SeedSEBlock(16, bad),
                 lambda: create_model("se_resnet20", reduction=bad),
                 lambda: create_model("seed_senet", reduction=bad)):
        with pytest.raises(ValueError, match="reduction") as info:
            make()
        assert repr(bad) in str(info.value), f"the error should name the value {bad!r}: {info.value}"
