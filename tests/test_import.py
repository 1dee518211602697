"""`senet import`: other CIFAR codebases' state dicts become senet checkpoints that give the same logits.

The source architectures are re-implemented here, minimally, from their documented structure (module names
and forward passes of akamaster/pytorch_resnet_cifar10's resnet.py and moskomule/senet.pytorch's
senet/se_resnet.py and se_module.py), randomly initialised, and saved in the layouts their trainers write.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import senet
from conftest import call_cli
from senet.interop import StateDictError, import_checkpoint, import_state_dict

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class AkaBlock(nn.Module):
    """akamaster's BasicBlock: conv1/bn1/conv2/bn2; option A pads x[:, :, ::2, ::2] with planes//4 zero channels
    on each side; option B is ``shortcut`` = Sequential(1x1 conv, BN)."""

    def __init__(self, in_planes: int, planes: int, stride: int, option: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.planes, self.option = planes, option
        self.changes = stride != 1 or in_planes != planes
        self.shortcut = nn.Sequential()
        if self.changes and option == "B":
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.changes and self.option == "A":
            short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.planes // 4, self.planes // 4))
        else:
            short = self.shortcut(x)
        return F.relu(out + short)


class AkaResNet(nn.Module):
    """akamaster's ResNet: conv1, bn1, layer1..3 (16/32/64), avg_pool2d over the whole map, ``linear``."""

    def __init__(self, n: int, option: str = "A", num_classes: int = 10) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
        in_planes, layers = 16, []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(AkaBlock(in_planes, planes, s, option))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))
        return self.linear(F.avg_pool2d(out, out.size(3)).flatten(1))


class MoskoSELayer(nn.Module):
    """moskomule's SELayer: avg_pool, fc = Sequential(Linear(C, C//r, no bias), ReLU, Linear(C//r, C, no bias),
    Sigmoid), x * y."""

    def __init__(self, channel: int, reduction: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channel, channel // reduction, bias=False), nn.ReLU(),
                                nn.Linear(channel // reduction, channel, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class MoskoBlock(nn.Module):
    """moskomule's CifarSEBasicBlock (``se`` = SELayer before the add) or baseline BasicBlock (no ``se``); the
    shortcut is ``downsample`` = Sequential(1x1 conv with the stride, BN) where the width changes."""

    def __init__(self, inplanes: int, planes: int, stride: int, reduction: int | None) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes)
        self.se = MoskoSELayer(planes, reduction) if reduction else None
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
                           if inplanes != planes else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.downsample(x) if self.downsample is not None else x
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.se is not None:
            out = self.se(out)
        return F.relu(out + residual)


class MoskoResNet(nn.Module):
    """moskomule's CifarSEResNet (``reduction``) or baseline ResNet (``reduction=None``): conv1, bn1, layer1..3,
    adaptive average pool, ``fc``."""

    def __init__(self, n: int, reduction: int | None = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
        inplane, layers = 16, []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(MoskoBlock(inplane, planes, s, reduction))
                inplane = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))
        return self.fc(x.mean(dim=(2, 3)))


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics (so BN is not the identity; small BN scales, as in trained
    networks, keep the logits near 10 rather than growing with depth), in eval mode."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.uniform_(m.bias, -0.5, 0.5)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.4, 1.0)
            nn.init.uniform_(m.bias, -0.3, 0.3)
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def akamaster_file(model: nn.Module) -> dict:
    """As akamaster's trainer and its pretrained_models/ save: {'state_dict': DataParallel's, 'best_prec1': ..},
    and (PyTorch 0.3 era) without BatchNorm's num_batches_tracked."""
    state = {k: v for k, v in nn.DataParallel(model).state_dict().items() if not k.endswith("num_batches_tracked")}
    return {"state_dict": state, "best_prec1": 91.25}


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("n, wrap", [(3, "akamaster"), (3, "plain"), (5, "akamaster")])
def test_akamaster_resnets_give_the_same_logits(n: int, wrap: str) -> None:
    source = randomised(AkaResNet(n))
    obj = akamaster_file(source) if wrap == "akamaster" else source.state_dict()
    imported = import_state_dict(obj, "akamaster")
    assert imported.name == f"resnet{6 * n + 2}" and imported.options["shortcut"] == "A"
    assert sum(p.numel() for p in imported.model.parameters()) == sum(p.numel() for p in source.parameters())
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(logits(imported.model, x), logits(source, x), atol=1e-5, rtol=0)
    if wrap == "akamaster":
        assert imported.record == {"best_prec1": 91.25}


def test_akamaster_option_b_becomes_a_projection_shortcut_and_the_source_is_detected() -> None:
    source = randomised(AkaResNet(3, option="B"), seed=1)
    imported = import_state_dict(akamaster_file(source))  # no source named: detected from ``linear.weight``
    assert imported.source.name == "akamaster" and imported.options["shortcut"] == "B"
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(logits(imported.model, x), logits(source, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("n, reduction", [(3, 16), (5, 8), (3, None)])
def test_moskomule_resnets_give_the_same_logits_and_their_gates_are_found(n: int, reduction: int | None) -> None:
    source = randomised(MoskoResNet(n, reduction), seed=2)
    obj = {"model": nn.DataParallel(source).state_dict(), "epoch": 7}  # homura's saver keeps it under 'model'
    imported = import_state_dict(obj)
    name = f"{'se_' if reduction else ''}resnet{6 * n + 2}"
    assert (imported.source.name, imported.name, imported.options["shortcut"]) == ("moskomule", name, "B")
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(logits(imported.model, x), logits(source, x), atol=1e-5, rtol=0)
    gates = senet.excitations(imported.model, x)
    assert len(gates) == (3 * n if reduction else 0)
    if reduction:
        assert imported.options["reduction"] == reduction
        seen = []
        hooks = [m.se.fc[3].register_forward_hook(lambda _m, _i, out: seen.append(out))
                 for stage in (source.layer1, source.layer2, source.layer3) for m in stage]
        logits(source, x)
        for h in hooks:
            h.remove()
        for ours, theirs in zip(gates.values(), seen):  # the same gate, block by block
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def _drop(state: dict, key: str) -> dict:
    return {k: v for k, v in state.items() if k != key}


@pytest.mark.parametrize("change, kwargs, names", [
    (lambda s: _drop(s, "module.layer2.0.conv1.weight"), {}, ["'module.layer2.0.conv1.weight'", "(32, 16, 3, 3)"]),
    (lambda s: {**s, "module.layer2.0.extra.weight": torch.zeros(3)}, {}, ["'module.layer2.0.extra.weight'",
                                                                          "no place"]),
    (lambda s: {**s, "module.layer3.1.conv2.weight": torch.zeros(64, 64, 1, 1)}, {},
     ["'module.layer3.1.conv2.weight'", "(64, 64, 1, 1)", "(64, 64, 3, 3)"]),
    (lambda s: s, {"model": "resnet32"}, ["'module.layer1.3.conv1.weight'", "holds a resnet20"]),
    (lambda s: s, {"model": "se_resnet20"}, ["se_resnet20", "holds a resnet20"]),
    (lambda s: s, {"source": "moskomule"}, ["'fc.weight'"]),
])
def test_a_mismatch_is_one_line_naming_the_tensor_that_does_not_fit(change, kwargs, names) -> None:
    obj = akamaster_file(randomised(AkaResNet(3)))
    obj["state_dict"] = change(obj["state_dict"])
    with pytest.raises(StateDictError) as info:
        import_state_dict(obj, **{"source": "akamaster", **kwargs})
    message = str(info.value)
    assert "\n" not in message and all(name in message for name in names), message


def test_a_moskomule_se_tensor_of_the_wrong_reduction_is_named() -> None:
    state = randomised(MoskoResNet(3, 8)).state_dict()
    with pytest.raises(StateDictError, match=r"'layer1\.0\.se\.fc\.0\.weight' has shape \(2, 16\)"):
        import_state_dict(state, "moskomule", reduction=16)


def test_the_checkpoint_records_the_source_normalisation_so_inference_matches(tmp_path: Path) -> None:
    source = randomised(AkaResNet(3), seed=3)
    out = tmp_path / "aka.pt"
    import_checkpoint(save(akamaster_file(source), tmp_path / "resnet20.th"), out)
    model, meta = senet.load_checkpoint(out)
    assert meta["mean"] == list(IMAGENET_MEAN) and meta["std"] == list(IMAGENET_STD)
    assert meta["classes"] == list(senet.data.CIFAR10_CLASSES) and "akamaster/pytorch_resnet_cifar10" in \
        meta["imported_from"] and meta["source_record"] == {"best_prec1": 91.25}
    image = Image.fromarray(torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy())
    theirs = (torch.tensor(list(image.tobytes()), dtype=torch.float32).view(32, 32, 3).permute(2, 0, 1) / 255.0
              - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(logits(model, senet.preprocess(image, meta)), logits(source, theirs[None]),
                               atol=1e-5, rtol=0)


def test_an_imported_se_checkpoint_opens_with_its_gates(tmp_path: Path) -> None:
    out = tmp_path / "se.pt"
    import_checkpoint(save(randomised(MoskoResNet(3, 16)).state_dict(), tmp_path / "se.pkl"), out)
    ckpt = senet.open_checkpoint(out)
    assert ckpt.name == "se_resnet20" and ckpt.options["shortcut"] == "B"
    assert ckpt.mean == senet.data.CIFAR_MEAN and ckpt.std == senet.data.CIFAR_STD
    blocks = senet.se_blocks(ckpt.model)
    assert list(blocks)[:2] == ["stage1.block1", "stage1.block2"] and len(blocks) == 9


call = call_cli  # run senet in this process: (exit code, stdout, stderr)


def test_the_cli_imports_and_the_result_works_with_info_and_excite(tmp_path: Path, capsys) -> None:
    path = save(randomised(MoskoResNet(3, 16)).state_dict(), tmp_path / "moskomule.pth")
    out = tmp_path / "imported.pt"
    code, stdout, err = call(capsys, "import", "--from", "moskomule", "--model", "se_resnet20", "--state-dict",
                             str(path), "--out", str(out))
    assert code == 0 and str(out) in stdout and "se_resnet20" in stdout and "9 SE blocks" in stdout, err
    code, stdout, _ = call(capsys, "info", "--checkpoint", str(out))
    assert code == 0 and "moskomule/senet.pytorch" in stdout
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    code, stdout, _ = call(capsys, "excite", "--checkpoint", str(out), str(tmp_path / "red.png"))
    assert code == 0 and "stage3.block3" in stdout


def test_the_cli_takes_classes_and_normalisation(tmp_path: Path, capsys) -> None:
    path = save(randomised(AkaResNet(3, num_classes=3)).state_dict(), tmp_path / "three.th")
    out = tmp_path / "three.pt"
    code, _, err = call(capsys, "import", "--state-dict", str(path), "--out", str(out))
    assert code == 2 and "3 classes" in err and err.count("\n") == 1 and not out.exists(), err
    (tmp_path / "classes.txt").write_text("red\ngreen\nblue\n")
    code, _, err = call(capsys, "import", "--state-dict", str(path), "--out", str(out), "--classes",
                        str(tmp_path / "classes.txt"), "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25")
    assert code == 0, err
    meta = senet.load_checkpoint(out)[1]
    assert meta["classes"] == ["red", "green", "blue"] and meta["mean"] == [0.5] * 3 and meta["std"] == [0.25] * 3
    assert meta["normalisation"] == "given at import"


def _bad_shape(tmp_path: Path) -> Path:
    state = randomised(AkaResNet(3)).state_dict()
    state["linear.weight"] = torch.zeros(10, 32)
    return save(state, tmp_path / "bad.th")


@pytest.mark.parametrize("make, extra, message", [
    (_bad_shape, ["--force"], "'linear.weight' has shape (10, 32)"),
    (lambda t: save(randomised(AkaResNet(3)).state_dict(), t / "good.th"), [], "already exists"),
    (lambda t: save({"state_dict": randomised(AkaResNet(3)).state_dict(), "args": argparse.Namespace(lr=0.1)},
                    t / "pickled.th"), ["--force"], "argparse.Namespace"),
    (lambda t: t / "missing.th", ["--force"], "no such file"),
    (lambda t: save(randomised(AkaResNet(3)).state_dict(), t / "good.th"), ["--force", "--mean", "a,b"], "--mean"),
    (lambda t: save(randomised(AkaResNet(3)).state_dict(), t / "good.th"), ["--force", "--std", "0.2,0,0.2"],
     "std positive"),
])
def test_a_failed_import_is_one_line_and_keeps_an_existing_out_file(tmp_path: Path, capsys, make, extra,
                                                                      message) -> None:
    out = tmp_path / "out.pt"
    out.write_bytes(b"keep me")
    code, stdout, err = call(capsys, "import", "--state-dict", str(make(tmp_path)), "--out", str(out), *extra)
    assert code == 2 and message in err and err.count("\n") == 1 and not stdout, err
    assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "no temporary file left"
