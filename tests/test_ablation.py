"""Gate ablation over a split: SE off and gate fixed to its mean, per block and for all blocks."""
from __future__ import annotations

import pytest
import torch

from conftest import make_folder_dataset
from senet.checkpoint import Checkpoint
from senet import create_model
from senet.analysis.ablation import gate_ablation
from senet.data import load_split
from senet.models import excitations, gate_overrides, se_blocks
from senet.data import normalize

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ablation")
    root = make_folder_dataset(tmp / "data", per_class=12)
    data = load_split(f"folder:{root}", "train", tmp / "cache", val_size=0.25)
    torch.manual_seed(3)
    model = create_model("se_resnet20", num_classes=3)
    # a few steps of training on a noisy copy, so that predictions differ between images and depend on the gates
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = normalize(data.images, MEAN, STD)
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(model(x + 1.5 * torch.randn_like(x)), data.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():  # sharpen the gates, so that switching them changes predictions
        for block in se_blocks(model).values():
            for p in block.parameters():
                p.mul_(4)
    return model.eval(), data


def _accuracy(model, data, overrides=None) -> float:
    x = normalize(data.images, MEAN, STD)
    with torch.no_grad(), gate_overrides(model, overrides or {}):
        return float((model(x).argmax(1) == data.labels).float().mean())


def test_baseline_and_every_row_match_the_same_intervention_done_by_hand(setup):
    model, data = setup
    calls = []
    result = gate_ablation(Checkpoint.of(model, mean=MEAN, std=STD), data, batch_size=7, progress=lambda d, n: calls.append((d, n)))
    blocks = list(se_blocks(model))
    assert result.n == len(data) and result.baseline == pytest.approx(_accuracy(model, data))
    means = {b: g.mean(0) for b, g in excitations(model, normalize(data.images, MEAN, STD)).items()}
    for b in blocks:
        assert result.accuracy(b, "off") == pytest.approx(_accuracy(model, data, {b: 1.0}))
        assert result.accuracy(b, "mean") == pytest.approx(_accuracy(model, data, {b: means[b]}))
    assert result.accuracy("all", "mean") == pytest.approx(_accuracy(model, data, means))
    assert [r["blocks"] for r in result.table()] == blocks + ["all"]
    passes, batches = 1 + 2 * (len(blocks) + 1), -(-len(data) // 7)
    assert calls[-1] == (passes * len(data),) * 2 and len(calls) == passes * batches, "one call per batch of a pass"
    assert [d for d, _ in calls] == sorted({d for d, _ in calls}), "increasing counts of images run"
    assert any(r["accuracy"] != result.baseline for r in result.rows), "the test model's gates must matter"


def test_all_blocks_off_is_the_plain_twin_with_the_same_weights(setup):
    model, data = setup
    plain = create_model("resnet20", num_classes=3).eval()
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(".se." in k for k in unexpected), (missing, unexpected)
    result = gate_ablation(Checkpoint.of(model, mean=MEAN, std=STD), data)
    assert result.accuracy("all", "off") == pytest.approx(_accuracy(plain, data))
    row = result.table()[-1]
    assert row["off_change_pts"] == pytest.approx(100 * (row["off_acc"] - result.baseline))


def test_per_class_takes_a_stratified_sample_and_a_plain_model_is_refused(setup):
    model, data = setup
    result = gate_ablation(Checkpoint.of(model, mean=MEAN, std=STD), data, per_class=2)
    assert result.n == 6
    with pytest.raises(ValueError, match="no SE blocks"):
        gate_ablation(Checkpoint.of(create_model("resnet20", num_classes=3), mean=MEAN, std=STD), data)
    with pytest.raises(KeyError, match="no ablation row"):
        result.accuracy("stage9", "off")


def test_ablation_leaves_the_model_as_it_found_it(setup):
    model, data = setup
    x = normalize(data.images[:4], MEAN, STD)
    with torch.no_grad():
        before = model(x)
    model.train()
    try:
        gate_ablation(Checkpoint.of(model, mean=MEAN, std=STD), data, per_class=1)
        assert model.training, "training mode is restored"
    finally:
        model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), before), "no hook is left behind"
