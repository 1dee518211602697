"""The Excitation explorer's numbers and words: every number says what it is, every sentence is true of the numbers
beside it, and nothing on its figures reads as a unit it is not (issue 28's "Numbers and words" and "Layout").

Formatting functions and figure objects directly; the page through AppTest on the bundled ``sample`` with an
untrained (seeded random-weight) SE-ResNet-20 of the ten CIFAR-10 classes.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, app_environment, no_exceptions, open_app, texts
from senet.analysis.profiles import ClassProfiles

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
EXPLORER = "senet_dashboard/views/excitation.py"


def _profiles(gates: np.ndarray, labels: np.ndarray, classes=("a", "b", "c")) -> ClassProfiles:
    k = len(classes)
    counts = np.bincount(labels, minlength=k)
    profile = np.stack([gates[labels == c].mean(0) for c in range(k)]).astype(np.float32)
    return ClassProfiles(list(classes), counts, {"b": profile}, {"b": gates.mean(0)}, {"b": 0.1},
                         positions=np.arange(len(labels)), gates={"b": gates.astype(np.float16)}, labels=labels)


# --------------------------------------------------------------------------- who opens a channel most: ties
def test_a_range_of_gates_is_not_called_a_tie():
    """The walk read '13 ... have a gate of 0.95 or more, a tie' for gates from 0.95 to 0.97."""
    from senet_dashboard.views._channel import _class_spread

    labels = np.repeat([0, 1, 2], 10)
    column = np.full(30, 0.5, dtype=np.float32)
    column[:13] = [0.97, 0.97, 0.96, 0.96, 0.96, 0.96, 0.96, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]
    p = _profiles(column[:, None], labels)
    text = _class_spread(p, "b", 0, list(p.classes), k=12, highest=True)
    assert "tie" not in text.split(":")[0] and "or more" not in text, text
    assert text.startswith("13 of the 30 sampled images have a gate from 0.95 to 0.97"), text
    assert "6 of them share the 12th highest gate, 0.95" in text, text


def test_a_tie_is_a_tie_at_the_shown_precision_and_a_saturated_gate_is_below_1():
    """'a gate of 1.00 or more' for a sigmoid gate (always below 1); a tie counts what shows the same value."""
    from senet_dashboard.views._channel import _class_spread

    labels = np.repeat([0, 1, 2], 10)
    column = np.full(30, 0.5, dtype=np.float32)
    column[:14] = [1.0] * 8 + [0.9991, 0.998, 0.997, 0.9962, 0.9951, 0.9951]  # all shown as 1.00
    column[14:17] = 0.99  # shown as 0.99: not in the tie
    p = _profiles(column[:, None], labels)
    text = _class_spread(p, "b", 0, list(p.classes), k=12, highest=True)
    assert "1.00 or more" not in text and "0.995 or more" in text, text
    assert text.startswith("14 of the 30 sampled images tie at a gate of 1.00 to 2 decimals"), text
    assert "a 10 · b 4" in text, text
    column[:] = 0.5
    column[-5:] = [0.0, 0.001, 0.004, 0.0, 0.002]
    p = _profiles(column[:, None], labels)
    text = _class_spread(p, "b", 0, list(p.classes), k=3, highest=False)
    assert text.startswith("5 of the 30 sampled images tie at a gate of 0.00 to 2 decimals (below 0.005)"), text
    assert "c 5" in text, text


def test_the_images_shown_of_a_display_tie_hold_each_class_in_proportion():
    labels = np.repeat([0, 1], 20)
    column = np.full(40, 0.2, dtype=np.float32)
    column[:20] = 0.9981  # class a: all shown as 1.00, a little below class b's exact 1.0
    column[20:] = 1.0
    p = _profiles(column[:, None], labels, classes=("a", "b"))
    high, gates, _, _ = p.channel_extremes("b", 0, k=10, decimals=2)
    shown = labels[high]
    assert (shown == 0).sum() == 5 and (shown == 1).sum() == 5, "a tie as the page shows it is shared by class"
    high, _, _, _ = p.channel_extremes("b", 0, k=10)
    assert set(labels[high].tolist()) == {1}, "exact comparison (no decimals) is unchanged"


# --------------------------------------------------------------------------- inside one SE block
def _steps(name: str = "se_resnet20", seed: int = 0):
    from senet import create_model
    from senet.analysis.inside import block_steps
    from senet.models import se_blocks

    torch.manual_seed(seed)
    model = create_model(name, num_classes=10).eval()
    image = torch.randn(1, 3, 32, 32)
    blocks = list(se_blocks(model))
    return block_steps(model, image, blocks[-1])


TERM = re.compile(r"h(\d+): ([+-]\d+\.\d+) × (\d+\.\d+) = ([+-]\d+\.\d+)")


def test_each_written_term_of_fc2_is_weight_times_value():
    """The walk read '(+0.33 × h7 = 16.72)' where 16.72 was h7, not the product."""
    from senet_dashboard.views._inside import _channel_sentence

    steps = _steps()
    checked = 0
    for c in range(steps.channels):
        sentence = _channel_sentence(steps, c)
        terms = TERM.findall(sentence)
        assert terms, sentence
        shown = 0.0
        for j, w, h, product in terms:
            j, w, h, product = int(j), float(w), float(h), float(product)
            assert abs(w - steps.w2[c, j]) <= 5e-4 and abs(h - steps.hidden[j]) <= 5e-4, sentence
            assert abs(w * h - product) <= 5e-4 * (abs(w) + abs(h)) + 5e-4, f"{w} × {h} is not {product}"
            assert steps.hidden[j] != 0, "a term of an h_j the ReLU set to 0 is not one of the largest"
            shown += product
        rest = re.search(r"the other \d+ terms: ([+-]\d+\.\d+) together", sentence)
        a = float(re.search(r"a_\d+ = Σ_j W2\[\d+, j\] · h_j = \*\*([+-]\d+\.\d+)\*\*", sentence).group(1))
        assert abs(shown + (float(rest.group(1)) if rest else 0.0) - a) <= 3e-3, sentence
        checked += 1
    assert checked == steps.channels


def test_fc2_terms_name_the_zeros_of_the_relu_and_a_bias():
    from senet_dashboard.views._inside import fc2_terms

    text = fc2_terms(np.array([0.5, -2.0, 1.0, 0.25]), np.array([2.0, 0.0, 0.0, 4.0]), 2.25)
    assert text == "h0: +0.500 × 2.000 = +1.000; h3: +0.250 × 4.000 = +1.000; h1, h2 = 0 (the ReLU); FC2's bias +0.250"


def test_the_bottleneck_names_stay_clear_of_the_next_rows_title():
    """'h0 … h31' were drawn over the '3. FC2 output' title: the gap below a named row holds title and names."""
    from senet_dashboard.inside_figures import block_steps_figure

    steps = _steps()
    fig = block_steps_figure(steps)
    layout = fig.layout
    plot_height = layout.height - layout.margin.t - layout.margin.b
    titles = sorted((a.y, a.text) for a in layout.annotations)[::-1]  # top to bottom
    assert titles[1][1].startswith("2. bottleneck") and titles[2][1].startswith("3. FC2")
    assert layout.xaxis2.showticklabels, "the bottleneck names its numbers"
    gap_px = (layout.yaxis2.domain[0] - titles[2][0]) * plot_height
    assert gap_px >= 16 + 24, f"{gap_px:.0f} px between the bottleneck's axis and the next title: names overlap it"


# --------------------------------------------------------------------------- tick labels
def _axes(fig) -> dict:
    spec = fig.to_plotly_json()["layout"]
    return {k: v for k, v in spec.items() if re.fullmatch(r"[xy]axis\d*", k)}


def test_every_explorer_axis_writes_tiny_ticks_without_si_prefixes():
    """'200p' and '0.5n' on the axes of a random-weight model: every axis of the explorer's figures formats
    ticks less than 0.001 apart as plain numbers (one setting: figures.SMALL_TICKS)."""
    from senet_dashboard import figures as F
    from senet_dashboard import gate_space_figures as G
    from senet_dashboard.inside_figures import block_steps_figure
    from senet.analysis.saturation import BlockSaturation

    tiny = 1e-10
    blocks = ["s1", "s2"]
    made = {
        "separation": F.separation_figure({b: tiny * (i + 1) for i, b in enumerate(blocks)},
                                          {b: tiny for b in blocks}),
        "channel classes": F.channel_classes_figure(np.array([0.5, 0.5 + tiny, 0.5]), 0.5, ["a", "b", "c"], "t"),
        "intervention": F.intervention_figure(["a", "b"], np.array([0.5, 0.5]), np.array([0.5 + tiny, 0.5])),
        "ablation": F.ablation_figure({b: 0.5 for b in blocks}, 0.5, "a"),
        "gate heatmap": F.gate_heatmap_figure({b: np.full(4, 0.5, dtype=np.float32) for b in blocks}),
        "block steps": block_steps_figure(_steps()),
        "quantiles": G.quantiles_figure(np.full((3, 4), tiny), np.arange(4), "t", (0.0, 1.0), np.full(4, tiny)),
        "saturation": G.saturation_figure([BlockSaturation(b, tiny, tiny, tiny, (0.0, 1.0)) for b in blocks]),
    }
    for name, fig in made.items():
        axes = _axes(fig)
        assert axes, name
        for axis, spec in axes.items():
            assert spec.get("tickformatstops") == F.SMALL_TICKS, f"{name}: {axis} may write SI prefixes"
    assert F.SMALL_TICKS[0]["dtickrange"] == [None, 1e-3], "only ticks closer than 0.001 change format"


# --------------------------------------------------------------------------- the page
@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    """An untrained SE-ResNet-20 of the CIFAR-10 classes over the bundled sample (500 val images)."""
    from senet import create_model, save_checkpoint
    from senet.data import load_split

    tmp = tmp_path_factory.mktemp("explorer_words")
    checkpoints = tmp / "checkpoints"
    checkpoints.mkdir()
    torch.manual_seed(0)
    save_checkpoint(checkpoints / "se_resnet20.pt", create_model("se_resnet20", num_classes=10),
                    model_name="se_resnet20", model_options={"num_classes": 10}, classes=CIFAR10, val_acc=0.1,
                    history=[])
    with app_environment(checkpoints, tmp / "runs", "sample", tmp / "cache"):
        labels = load_split("sample", "val", tmp / "cache").labels.numpy()
        yield {"checkpoint": checkpoints / "se_resnet20.pt", "labels": labels, "cache": tmp / "cache"}


def _in_order(at) -> list:
    """Every element of the page's main area in the order it is drawn."""
    out, stack = [], [at.main]
    while stack:
        node = stack.pop()
        out.append(node)
        children = getattr(node, "children", None) or {}
        stack.extend(children[k] for k in sorted(children, reverse=True))
    return out


def _image_probs(env, position: int) -> np.ndarray:
    from senet import load_checkpoint
    from senet.analysis import predict
    from senet.data import load_split, normalize

    model, meta = load_checkpoint(env["checkpoint"])
    val = load_split("sample", "val", env["cache"])
    return predict(model, normalize(val.images[position:position + 1], meta["mean"], meta["std"]))[0].numpy()


def test_interventions_write_points_and_a_prediction_change_in_words(explorer):
    """'p(airplane) 20.2% ↓ −64.0%' (points written as percent) and 'Prediction cat ↑ changed' (an arrow on a
    label); the caveat of a gate switched off comes before the numbers it qualifies."""
    from streamlit.proto.Metric_pb2 import Metric

    position = int(np.flatnonzero(explorer["labels"] == 3)[0])  # a cat
    at = open_app(EXPLORER, query={"image": str(position)})
    no_exceptions(at)
    blocks = list(at.multiselect(key="exc_off").options)
    at.multiselect(key="exc_off").set_value(blocks).run()
    no_exceptions(at)
    before = _image_probs(explorer, position)
    metrics = {m.label: m for m in at.metric}
    prediction = metrics["Prediction"]
    assert prediction.proto.direction == Metric.MetricDirection.NONE, "a label has no direction: no arrow"
    pred = CIFAR10[int(before.argmax())]
    assert prediction.proto.delta in ("unchanged", f"changed from {pred} to {prediction.value}"), prediction.proto
    assert (prediction.proto.delta == "unchanged") == (prediction.value == pred)
    p = next(m for label, m in metrics.items() if label.startswith(f"p({pred}), as trained"))
    assert p.label == f"p({pred}), as trained {before.max():.1%}", p.label
    assert re.fullmatch(r"[+-]\d+\.\d pts", p.proto.delta) and "%" not in p.proto.delta, p.proto.delta
    assert "percentage points" in p.proto.help
    order = _in_order(at)
    caveat = next(i for i, n in enumerate(order) if getattr(n, "type", "") == "caption"
                  and "far from anything it saw in training" in str(n.value))
    first_metric = next(i for i, n in enumerate(order) if getattr(n, "type", "") == "metric")
    assert caveat < first_metric, "the caveat comes before the numbers of a gate switched off"


def test_the_caveat_of_switching_gates_off_comes_before_the_ablation_chart(explorer):
    """'stage1 SE off: −59 pts' invited 'SE is essential' while the caveat sat under the chart."""
    at = open_app(EXPLORER, query={"image": "0"})
    at.toggle(key="exc_block_ablation").set_value(True).run()
    no_exceptions(at)
    order = _in_order(at)
    chart = next(i for i, n in enumerate(order) if getattr(n, "type", "") == "plotly_chart"
                 and n.proto.id.endswith("exc_ablation"))
    caveats = [i for i, n in enumerate(order) if getattr(n, "type", "") == "caption"
               and "far from anything it saw in training" in str(n.value)]
    assert caveats and caveats[-1] < chart, "the caveat sits before the chart it qualifies"
    assert not any(i > chart for i in caveats)


def test_the_papers_fig6_lines_start_at_this_images_classes_and_follow_the_image(explorer):
    """A cat image got airplane, automobile and bird: the lines default to its true and predicted class (or the
    runner-up) and a contrasting class, say which, and follow the next image."""
    labels = explorer["labels"]
    for cls in (3, 5):  # a cat, then a dog in the same session
        position = int(np.flatnonzero(labels == cls)[0])
        if cls == 3:
            at = open_app(EXPLORER, query={"image": str(position), "view": "classes"})
            at.segmented_control(key="exc_profile_drawing").set_value("Lines (the paper's layout)").run()
        else:
            at.selectbox(key="exc_class").set_value(cls).run()
        no_exceptions(at)
        probs = _image_probs(explorer, position)
        ranked = [int(k) for k in np.argsort(-probs, kind="stable")]
        second = ranked[0] if ranked[0] != cls else ranked[1]
        chosen = list(at.multiselect(key="exc_profile_classes").value)
        assert chosen[:2] == [cls, second] and len(chosen) == 3 and chosen[2] not in (cls, second), chosen
        words = next(c for c in texts(at, "caption") if c.startswith("Lines: "))
        assert CIFAR10[cls] in words and "for contrast" in words, words
        assert ("predicted" if ranked[0] != cls else "second most probable") in words, words


# --------------------------------------------------------------------------- words
def test_the_seeds_formula_is_named_for_what_it_is():
    """'the seed's formula' meant nothing to a reader: it is the SENet paper's count of SE parameters."""
    found = [str(p.relative_to(ROOT)) for d in ("senet", "senet_dashboard") for p in (ROOT / d).rglob("*.py")
             if "seed's formula" in p.read_text(encoding="utf-8")]
    assert not found, found
    from senet_dashboard.inside_figures import step_rows

    rows = [title for title, _, _ in step_rows(_steps("seed_senet"))]
    assert any(t.startswith("4b.") and "blog post" in t for t in rows), rows


# --------------------------------------------------------------------------- in a real browser
@pytest.mark.browser
def test_in_chromium_tiny_ticks_have_no_si_prefix_and_the_bottleneck_names_clear_the_next_title(tmp_path):
    """Plotly.js itself draws the explorer's figures of a random-weight model: no tick reads '200p' or '0.5n',
    and no bottleneck name (h0, h1, ...) overlaps the title of the row under it."""
    from browser_support import CHROMIUM

    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    import json

    import plotly

    from senet_dashboard import figures as F
    from senet_dashboard.inside_figures import block_steps_figure

    blocks = ["stage1.block1", "stage1.block2", "stage2.block1"]
    made = [F.separation_figure({b: 2e-10 * (i + 1) for i, b in enumerate(blocks)}, {b: 5e-10 for b in blocks}),
            F.channel_classes_figure(np.array([0.5, 0.5 + 3e-9, 0.5 - 2e-9]), 0.5, ["a", "b", "c"], "t"),
            block_steps_figure(_steps())]
    script = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    page_html = tmp_path / "figures.html"
    page_html.write_text("<html><head><meta charset='utf-8'></head><body>"
                         + "".join(f"<div id='f{i}' style='width:900px'></div>" for i in range(len(made)))
                         + "</body></html>", encoding="utf-8")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless"])
        try:
            page = browser.new_page()
            page.goto(page_html.as_uri())
            page.add_script_tag(content=script)
            for i, fig in enumerate(made):
                page.evaluate("([id, f]) => Plotly.newPlot(id, f.data, f.layout)", [f"f{i}", json.loads(fig.to_json())])
            for i in range(len(made) - 1):
                ticks = page.locator(f"#f{i} .ytick text").all_text_contents()
                assert ticks and not [t for t in ticks if re.search(r"\d[munpµ]$", t)], ticks
            texts_drawn = page.evaluate("""id => [...document.querySelectorAll(id + ' text')].map(t => {
                const b = t.getBoundingClientRect(); return [t.textContent, b.top, b.bottom]; })""",
                                        f"#f{len(made) - 1}")
        finally:
            browser.close()
    names = [t for t in texts_drawn if re.fullmatch(r"h\d+", t[0])]
    title = next(t for t in texts_drawn if t[0].startswith("3. FC2 output"))
    assert names, texts_drawn
    for name, _, bottom in names:
        assert bottom <= title[1], f"{name} (bottom {bottom:.0f} px) overlaps the title (top {title[1]:.0f} px)"


def test_the_class_mean_of_an_intervention_starts_at_the_image_s_runner_up(explorer):
    """'Class mean of' defaulted to airplane for every image; it starts at each image's runner-up class."""
    cats = np.flatnonzero(explorer["labels"] == 3)
    for position in (int(cats[0]), int(cats[1])):
        at = open_app(EXPLORER, query={"image": str(position)})
        no_exceptions(at)
        runner_up = int(np.argsort(-_image_probs(explorer, position))[1])
        assert at.selectbox(key="exc_mean_class").value == runner_up, (position, runner_up)
