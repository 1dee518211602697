"""The explorer's *Importance* view (issue 30, part 1) through AppTest, on the shipped SE-ResNet-20 over the bundled
sample: this image's gate against importance by ablation (the chart's points are exact_importance's drops, the
caption gives the rank correlation and what it measures), and the estimate over the split on its button (the
table's correlations are gate_importance's)."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch

from conftest import no_exceptions, open_view, shipped_on_sample, texts

IMAGE = 7  # the sample's image the address opens


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The shipped SE-ResNet-20, copied, over the bundled sample (500 val images), with caches of its own."""
    with shipped_on_sample(tmp_path_factory.mktemp("importance_view")) as env:
        yield env


def _loaded(env):
    from senet import load_checkpoint
    from senet.checkpoint import Checkpoint
    from senet.data import load_split

    ckpt = Checkpoint.from_meta(*load_checkpoint(env["checkpoint"]))
    return ckpt, load_split("sample", "val", env["cache"])


def _open(block: str = "stage3.block3"):
    return open_view("importance", image=str(IMAGE), block=block)


def test_the_view_plots_this_images_ablation_and_says_its_rank_correlation(env):
    from senet.analysis.importance import exact_importance, first_order_importance, spearman
    from senet.data import normalize

    at = _open()
    assert at.segmented_control(key="exc_view").value == "Importance"
    ckpt, data = _loaded(env)
    x = normalize(data.images[IMAGE:IMAGE + 1], ckpt.mean, ckpt.std)
    target = int(data.labels[IMAGE])
    base, drops = exact_importance(ckpt.model, x, target, "stage3.block3")
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    ablation = next(t for t in spec["data"] if t["name"].startswith("by ablation"))
    y = ablation["y"]
    y = np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]) if isinstance(y, dict) else y
    assert np.asarray(y, dtype=float) == pytest.approx(drops, abs=1e-6), "the points are the exact drops"
    assert len(ablation["hovertext"]) == 64 and ablation["hovertext"][5].startswith("channel 5<br>gate ")
    caption = next(c for c in texts(at, "caption") if "Spearman's rank correlation" in c)
    rho_text = caption.split("**ρ = ")[1].split("**")[0]
    _, g, _ = first_order_importance(ckpt.model, x, torch.tensor([target]), ["stage3.block3"])
    assert float(rho_text) == pytest.approx(spearman(g["stage3.block3"][0], drops), abs=0.005)
    assert "nats" in caption and "percentage points" in caption and data.classes[target] in caption


def test_the_estimate_over_the_split_runs_on_its_button_and_matches_senet(env):
    from senet.analysis.importance import gate_importance

    at = _open("stage2.block1")
    at.selectbox(key="exc_imp_per_class").set_value(10).run()
    assert not at.dataframe, "nothing runs before the button"
    at.button(key="exc_imp_run").click().run()
    no_exceptions(at)
    assert not at.error, texts(at, "error")
    table = at.dataframe[0].value
    ckpt, data = _loaded(env)
    expected = gate_importance(ckpt, data, per_class=10)
    assert list(table["block"]) == [b.block for b in expected.blocks]
    assert [float(v.split(" [")[0]) for v in table["signed"]] == pytest.approx(
        [b.spearman for b in expected.blocks], abs=5e-4), "each block's ρ, to the 3 decimals shown"
    assert list(table["signed"])[0].endswith("[{:+.3f}, {:+.3f}]".format(*expected.blocks[0].interval))
    assert [float(v.split()[1]) for v in table["check"]] == pytest.approx(
        [a.spearman for a in expected.agreement], abs=5e-3), "the estimate against ablation, per block"
    disagree = expected.block("stage2.block1").low_gate_high_importance[0]
    assert any(f"channel {disagree.channel}: mean gate" in c for c in texts(at, "caption"))
    at.selectbox(key="exc_imp_pick").set_value((disagree.channel, disagree.images[0])).run()
    at.button(key="exc_imp_show").click().run()
    no_exceptions(at)
    assert at.query_params["image"] in (str(disagree.images[0]), [str(disagree.images[0])])
    assert at.session_state["exc_ch"] == disagree.channel, "Show follows the disagreeing channel"


def test_in_a_public_demo_the_view_stays_within_the_budget(env, monkeypatch):
    monkeypatch.setenv("SENET_DEMO", "1")
    monkeypatch.setenv("SENET_DEMO_BUDGET", "40")  # a block of 16 channels (18 passes) fits; one of 64 does not
    at = _open("stage3.block3")
    refused = [c for c in texts(at, "caption") if "over this public demo's budget" in c]
    assert refused and refused[0].startswith(":material/block: Ablating stage3.block3's channels one at a time: "
                                             "1 image × 66 passes"), refused
    assert not at.get("plotly_chart"), "nothing ran"
    assert at.button(key="exc_imp_run").disabled, "the estimate over 100 images is over the budget too"
    at = _open("stage1.block1")
    assert at.get("plotly_chart") and not any("stage1.block1's channels" in c for c in texts(at, "caption"))
