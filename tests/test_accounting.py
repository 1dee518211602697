"""model_info: parameters, SE parameters against the seed's formula, multiply-accumulates."""
from __future__ import annotations

import pytest

from senet import create_model, model_info


def resnet20_conv_macs() -> int:
    """Multiply-accumulates of resnet20 for one 32x32 image, counted layer by layer by hand."""
    def conv(c_in: int, c_out: int, side: int) -> int:
        return c_in * c_out * 3 * 3 * side * side

    stem = conv(3, 16, 32)
    stage1 = 6 * conv(16, 16, 32)
    stage2 = conv(16, 32, 16) + 5 * conv(32, 32, 16)
    stage3 = conv(32, 64, 8) + 5 * conv(64, 64, 8)
    fc = 64 * 10
    return stem + stage1 + stage2 + stage3 + fc


def test_resnet20_info_matches_he_et_al():
    info = model_info(create_model("resnet20"))
    assert round(info["params"] / 1e6, 2) == 0.27, f"resnet20 has 0.27M parameters, got {info['params']:,}"
    assert info["se_params"] == 0 and info["se_blocks"] == 0 and info["se_formula"] == 0
    assert info["macs"] == resnet20_conv_macs(), "MACs should equal the hand count of the conv and fc layers"
    assert 40e6 < info["macs"] < 42e6, f"resnet20 costs about 41M multiply-adds, got {info['macs']:,}"


@pytest.mark.parametrize("depth, expected", [(20, 2016), (32, 3360), (56, 6048)])
def test_se_params_and_formula(depth, expected):
    model = create_model(f"se_resnet{depth}")
    info = model_info(model)
    assert info["se_params"] == expected, f"se_resnet{depth} should have {expected} SE parameters"
    assert info["se_formula"] == expected, "(2/r) sum N_s C_s^2 at r=16"
    assert info["se_blocks"] == 3 * (depth - 2) // 6 and info["reduction"] == 16
    assert info["params"] == sum(p.numel() for p in model.parameters())


def test_se_adds_little_compute():
    plain, se = model_info(create_model("resnet20")), model_info(create_model("se_resnet20"))
    assert se["macs"] - plain["macs"] == 2016, "the SE FC layers add one multiply-add per weight per image"


def test_seed_formula_for_seed_network():
    info = model_info(create_model("seed_senet", filters=32, blocks=4))
    assert info["se_blocks"] == 3
    assert info["se_formula"] == 2 / 16 * 3 * 32 * 32
    # the seed's block is wider than its formula says: C -> C/r -> 2C convs with biases
    assert info["se_params"] == 3 * (32 * 2 + 2 + 2 * 32 * 2 + 2 * 32)


def test_macs_scale_with_input_size_and_training_mode_is_kept():
    model = create_model("resnet20").train()
    small, large = model_info(model)["macs"], model_info(model, (3, 64, 64))["macs"]
    assert large - 640 == 4 * (small - 640), "conv cost grows with the pixel count; the fc layer does not"
    assert model.training, "model_info must restore training mode"
