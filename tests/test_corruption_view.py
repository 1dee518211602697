"""The explorer's *Corruption* view (issue 30, part 2) through AppTest, on the shipped SE-ResNet-20 over the bundled
sample: the prediction after the corruption and each block's shift are image_shift's, and a higher severity moves
the gates differently."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from conftest import no_exceptions, open_view, shipped_on_sample, texts

IMAGE = 7  # the sample's image the address opens


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The shipped SE-ResNet-20, copied, over the bundled sample, with caches of its own."""
    with shipped_on_sample(tmp_path_factory.mktemp("corruption_view")) as env:
        yield env


def _shift(env, corruption: str, severity: int):
    from senet import load_checkpoint
    from senet.analysis.robustness import image_shift
    from senet.checkpoint import Checkpoint
    from senet.data import load_split

    ckpt = Checkpoint.from_meta(*load_checkpoint(env["checkpoint"]))
    data = load_split("sample", "val", env["cache"])
    return image_shift(ckpt, data.images[IMAGE], corruption, severity, 0, IMAGE), ckpt.classes


def _bars(at) -> np.ndarray:
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    y = spec["data"][0]["y"]
    y = np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]) if isinstance(y, dict) else y
    return np.asarray(y, dtype=float)


def _open():
    return open_view("corruption", image=str(IMAGE), block="stage3.block3")


def test_the_view_shows_image_shifts_prediction_and_block_shifts(env):
    at = _open()
    assert at.segmented_control(key="exc_view").value == "Corruption"
    at.selectbox(key="exc_corr_name").set_value("impulse_noise").run()
    at.segmented_control(key="exc_corr_severity").set_value(5).run()
    no_exceptions(at)
    expected, classes = _shift(env, "impulse_noise", 5)
    after = next(m for m in texts(at, "markdown") if m.startswith("Corrupted: predicted"))
    pred = expected.corrupted.predicted
    assert f"**{classes[pred]}** ({expected.corrupted.probs[pred]:.1%})" in after
    assert _bars(at) == pytest.approx([b.mean_abs_change for b in expected.blocks], abs=1e-6)
    table = at.dataframe[0].value
    moved = next(b for b in expected.blocks if b.block == "stage3.block3").moved(8)
    assert list(table["channel"]) == [m["channel"] for m in moved]
    assert list(table["change"]) == pytest.approx([m["change"] for m in moved], abs=1e-6)
    assert any("mean absolute gate change" in c and "cosine distance" in c for c in texts(at, "caption"))
    assert any("percentage points" in c for c in texts(at, "caption"))


def test_changing_the_severity_changes_the_shift(env):
    at = _open()
    at.selectbox(key="exc_corr_name").set_value("gaussian_noise").run()
    at.segmented_control(key="exc_corr_severity").set_value(1).run()
    mild = _bars(at)
    at.segmented_control(key="exc_corr_severity").set_value(5).run()
    no_exceptions(at)
    harsh = _bars(at)
    assert not np.allclose(mild, harsh)
    expected, _ = _shift(env, "gaussian_noise", 1)
    assert mild == pytest.approx([b.mean_abs_change for b in expected.blocks], abs=1e-6)
