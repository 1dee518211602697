"""The model family: parameter counts from the papers, SE placement, the seed's network, the registry."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from senet import SEBlock, SeedSEBlock, create_model, list_models, se_blocks

ISSUE_MODELS = ["resnet20", "resnet32", "resnet56", "resnet110", "se_resnet20", "se_resnet32", "se_resnet56",
                "se_resnet110", "seed_senet"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def se_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (SEBlock, SeedSEBlock))]


def test_list_models_names_every_model():
    names = list_models()
    for name in ISSUE_MODELS + ["airnet", "se_airnet"]:
        assert name in names, f"{name} missing from list_models(): {names}"


@pytest.mark.parametrize("name, millions", [("resnet20", 0.27), ("resnet32", 0.46), ("resnet56", 0.85),
                                            ("resnet110", 1.7)])
def test_resnet_parameter_counts_match_he_et_al(name, millions):
    params = n_params(create_model(name))
    digits = len(str(millions).split(".")[1])
    assert round(params / 1e6, digits) == millions, \
        f"{name} should have {millions}M parameters to the paper's precision (He et al., Table 6), has {params:,}"


@pytest.mark.parametrize("depth", [20, 32, 56])
def test_se_parameters_equal_seed_formula(depth):
    r, n = 16, (depth - 2) // 6
    formula = 2 / r * sum(n * c * c for c in (16, 32, 64))  # (2/r) * sum_s N_s * C_s^2
    se_model, plain = create_model(f"se_resnet{depth}", reduction=r), create_model(f"resnet{depth}")
    in_se = sum(n_params(m) for m in se_modules(se_model))
    assert in_se == formula, f"SE parameters {in_se} != (2/r) sum N_s C_s^2 = {formula}"
    assert n_params(se_model) - n_params(plain) == formula, "SE must be the only difference to the plain net"
    assert len(se_modules(se_model)) == 3 * n, "one SE block per residual block"


def test_se_resnet20_adds_2016_parameters():
    assert n_params(create_model("se_resnet20")) - n_params(create_model("resnet20")) == 2016


@pytest.mark.parametrize("name", ["resnet20", "resnet32", "resnet56", "resnet110", "airnet"])
def test_plain_models_have_no_se_block(name):
    model = create_model(name)
    assert se_modules(model) == [] and se_blocks(model) == {}
    assert not any(".se." in k for k in model.state_dict()), "plain models carry no SE weights"


def test_se_sits_after_last_bn_before_residual_add():
    torch.manual_seed(0)
    model = create_model("se_resnet20").eval()
    block = model.stage2[0]  # a downsampling block: the shortcut subsamples and pads
    x = torch.randn(2, 16, 32, 32)
    handle = block.se.gate.register_forward_hook(lambda _m, _i, out: torch.zeros_like(out))
    try:
        with torch.no_grad():
            out = block(x)
    finally:
        handle.remove()
    with torch.no_grad():
        expected = torch.relu(block.shortcut(x))
    assert torch.equal(out, expected), "a zero gate must silence the residual branch, leaving relu(shortcut)"
    with torch.no_grad():
        branch = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
        torch.testing.assert_close(block(x), torch.relu(block.se(branch) + block.shortcut(x)))


def test_option_a_shortcut_has_no_parameters():
    model = create_model("resnet20")
    assert not any("shortcut" in k or "downsample" in k for k, _ in model.named_parameters())


@pytest.mark.parametrize("name", ["resnet20", "se_resnet32", "airnet", "se_airnet"])
def test_models_map_images_to_class_scores(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_options_width_in_channels_and_reduction():
    wide = create_model("se_resnet20", width=2, reduction=8, in_channels=1)
    assert wide.conv1.in_channels == 1 and wide.fc.in_features == 128
    assert [b.hidden for b in se_blocks(wide).values()][::3] == [4, 8, 16]
    with torch.no_grad():
        assert wide.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 10)


def test_seed_senet_reproduces_the_seed_network():
    torch.manual_seed(0)
    model = create_model("seed_senet").eval()
    assert model.conv.in_channels == 3 and model.conv.out_channels == 128 and model.conv.kernel_size == (3, 3)
    blocks = list(model.res_blocks)
    assert len(blocks) == 9, "Network(blocks=10) has nine residual blocks"
    for block in blocks:
        assert block.conv1.in_channels == block.conv2.out_channels == 128
        assert isinstance(block.se, SeedSEBlock) and not block.se.squeeze
        assert tuple(block.se.fc[0].weight.shape) == (8, 128, 1, 1), "1x1 conv C -> C/16"
        assert tuple(block.se.fc[2].weight.shape) == (256, 8, 1, 1), "1x1 conv C/16 -> 2C (scale and bias)"
    assert model.out_conv.kernel_size == (1, 1) and model.out_conv.out_channels == 128
    assert isinstance(model.fc, nn.Linear) and (model.fc.in_features, model.fc.out_features) == (128, 10)

    shapes, gates = [], []
    handles = [b.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape))) for b in blocks]
    handles.append(blocks[0].se.gate.register_forward_hook(lambda _m, _i, out: gates.append(tuple(out.shape))))
    try:
        with torch.no_grad():
            out = model(torch.randn(1, 3, 32, 32))
    finally:
        for h in handles:
            h.remove()
    assert shapes == [(1, 128, 32, 32)] * 9, "all nine blocks work at full 32x32 resolution"
    assert gates == [(1, 128, 32, 32)], "the seed's gate is per pixel (the squeeze is discarded)"
    assert out.shape == (1, 10) and (out <= 0).all()
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(1), msg="output is log_softmax")


def test_seed_senet_squeeze_option_gates_per_channel():
    model = create_model("seed_senet", squeeze=True, filters=32, blocks=3).eval()
    assert all(b.se.squeeze for b in model.res_blocks)
    gates = []
    handle = model.res_blocks[0].se.gate.register_forward_hook(lambda _m, _i, out: gates.append(tuple(out.shape)))
    try:
        with torch.no_grad():
            model(torch.randn(2, 3, 32, 32))
    finally:
        handle.remove()
    assert gates == [(2, 32, 1, 1)]


def test_create_model_unknown_name_lists_known_models():
    with pytest.raises(ValueError) as info:
        create_model("se_resnet21")
    message = str(info.value)
    assert "se_resnet21" in message and "\n" not in message
    for name in list_models():
        assert name in message, f"the error should list {name}: {message}"


@pytest.mark.parametrize("options, named", [({"depth": 21}, "depth"), ({"colour": 1}, "colour"),
                                            ({"width": 0}, "width"), ({"width": 65}, "at most 64"),
                                            ({"num_classes": 0}, "num_classes"),
                                            ({"reduction": 32}, "32")])
def test_create_model_bad_options_raise_value_error_naming_them(options, named):
    with pytest.raises(ValueError, match=named):
        create_model("se_resnet20", **options)


def test_senet_package_imports_no_streamlit():
    package = Path(__file__).resolve().parents[1] / "senet"
    offenders = []
    for source in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{source.name}:{node.lineno}" for n in names if n.split(".")[0] == "streamlit"]
    assert not offenders, f"senet/ must not import streamlit (pages are the only UI): {offenders}"


def test_shortcut_b_projects_with_a_1x1_conv_and_bn_only_where_the_shape_changes():
    torch.manual_seed(0)
    plain, projected = create_model("resnet20"), create_model("resnet20", shortcut="B").eval()
    with_downsample = [name for name, m in projected.named_modules() if getattr(m, "downsample", None) is not None]
    assert with_downsample == ["stage2.0", "stage3.0"]
    # 1x1 conv + BN (weight, bias) at 16 -> 32 and 32 -> 64
    assert n_params(projected) - n_params(plain) == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
    block, x = projected.stage2[0], torch.randn(2, 16, 32, 32)
    with torch.no_grad():
        short = block.shortcut(x)
        assert torch.equal(short, block.downsample[1](block.downsample[0](x))) and short.shape == (2, 32, 16, 16)
        branch = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
        torch.testing.assert_close(block(x), torch.relu(branch + short))
    se = create_model("se_resnet20", shortcut="B")
    assert len(se_blocks(se)) == 9 and se.stage3[0].downsample is not None


def test_a_bad_shortcut_is_one_line_naming_it():
    with pytest.raises(ValueError, match=r"^shortcut must be A .* or B .*, got 'C'$"):
        create_model("se_resnet20", shortcut="C")


def test_resnet44_has_he_et_al_s_parameter_count():
    assert round(n_params(create_model("resnet44")) / 1e6, 2) == 0.66
    assert "se_resnet44" in list_models()


def test_network_outline_names_each_se_block_with_its_stage_width_and_bottleneck():
    from senet import create_model
    from senet.models.outline import POSITIONS, gate_position, network_outline

    outline = network_outline(create_model("se_resnet20", num_classes=10))
    assert [b.name for b in outline][:2] == ["stage1.block1", "stage1.block2"] and len(outline) == 9
    assert [(b.stage, b.channels, b.hidden, b.reduction) for b in outline[::3]] == \
        [("stage1", 16, 1, 16), ("stage2", 32, 2, 16), ("stage3", 64, 4, 16)], "C, C/r and r of each stage"
    assert network_outline(create_model("resnet20", num_classes=10)) == [], "a plain twin has no SE block"
    assert gate_position("se_resnet20", {"se_position": "pre"}) == POSITIONS["pre"]
    assert gate_position("se_resnet20", {}) == POSITIONS["standard"]
    assert "conv group" in gate_position("se_airnet", {})
