"""End to end in a real browser: ``streamlit run app.py`` driven by Playwright with Debian's Chromium.

Visits every page, starts a tiny training run and watches its curve gain
points (and pauses it to keep a zoom), clicks a confusion-matrix cell and sees its images, uploads an image
and sees the excitation charts. Screenshots go to ``test-artifacts/``.
Skips (with the reason) when Chromium or Playwright is missing.
"""
from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from browser_support import ARTIFACTS, CHROMIUM, chromium_page, dashboard, goto, no_exception, outside_hosts, settle
from conftest import ROOT, make_folder_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.is_file():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard on a free port, over a tiny synthetic dataset and an untrained SE-ResNet-20 checkpoint."""
    from senet import create_model, save_checkpoint

    tmp = tmp_path_factory.mktemp("browser")
    data = make_folder_dataset(tmp / "data", per_class=20, test_split=True)
    checkpoints = tmp / "checkpoints"
    checkpoints.mkdir()
    torch.manual_seed(0)
    save_checkpoint(checkpoints / "se_resnet20.pt", create_model("se_resnet20", num_classes=3),
                    model_name="se_resnet20", model_options={"num_classes": 3, "reduction": 16},
                    classes=("blue", "green", "red"), val_acc=0.5,
                    history=[{"epoch": 1, "train_loss": 1.1, "train_acc": 0.4, "val_loss": 1.0, "val_acc": 0.45,
                              "lr": 0.1},
                             {"epoch": 2, "train_loss": 0.9, "train_acc": 0.55, "val_loss": 0.8, "val_acc": 0.5,
                              "lr": 0.05}])
    env = dict(os.environ, SENET_DATA=f"folder:{data}", SENET_RUNS=str(tmp / "runs"),
               SENET_CHECKPOINTS=str(checkpoints), SENET_DATA_DIR=str(tmp / "cache"), PYTHONPATH=str(ROOT),
               SENET_STUDIES=str(tmp / "studies"))
    try:
        with dashboard(env, tmp / "streamlit.log") as url:
            yield url, tmp
    finally:
        from senet_dashboard.launcher import active_runs, stop_run

        for row in active_runs(tmp / "runs"):  # a failed test may leave its training process running
            stop_run(row["path"])


@pytest.fixture(scope="module")
def page(server):
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(sync_api) as pg:
        yield pg


_goto, _settle = goto, settle


def _shot(page, name: str) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside its main area, so grow the viewport)."""
    size = page.viewport_size
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                           " return m ? m.scrollHeight : document.body.scrollHeight; }")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 6000))})
    time.sleep(0.5)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def _plot_points(page, index: int, trace: int) -> int:
    """Number of x values in trace ``trace`` of the ``index``-th Plotly chart on the page."""
    return page.evaluate(
        "([i, t]) => { const g = document.querySelectorAll('.js-plotly-plot')[i];"
        " return g && g.data && g.data[t] ? g.data[t].x.length : 0; }", [index, trace])


def _x_range(page, index: int) -> list[float] | None:
    """The x range the ``index``-th chart shows, or None while it autoscales."""
    return page.evaluate(
        "i => { const a = document.querySelectorAll('.js-plotly-plot')[i]._fullLayout.xaxis;"
        " return a.autorange ? null : a.range.map(Number); }", index)


def _zoom_x(page, index: int) -> list[float]:
    """Zoom the ``index``-th chart in on the middle of its x axis with a mouse drag, as a user would."""
    box = page.locator(".js-plotly-plot").nth(index).locator(".nsewdrag").first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=5)
    page.mouse.up()
    zoomed = _x_range(page, index)
    assert zoomed is not None, "the drag did not zoom the chart"
    return zoomed


def test_every_page_renders_without_errors(server, page):
    url, _ = server
    requested = []  # every request the pages make: offline, anything not on this server fails (and is noise)

    def record(request) -> None:
        requested.append(request.url)

    page.on("request", record)
    try:
        for path, title in (("", "SENet Explorer"), ("train", "Train"), ("excitation", "Excitation explorer"),
                            ("confusion", "Confusion explorer"), ("compare", "Compare")):
            _goto(page, f"{url}/{path}", title)
            assert page.locator('[data-testid="stException"]').count() == 0, f"{path}: the page shows an exception"
            sidebar = page.locator('[data-testid="stSidebar"]')
            assert sidebar.get_by_text("Checkpoint").first.is_visible(), f"/{path}: the shared sidebar is missing"
            _shot(page, f"page-{path or 'home'}")
    finally:
        page.remove_listener("request", record)
    elsewhere = outside_hosts(requested)
    assert requested and not elsewhere, f"the pages fetch from other hosts: {elsewhere[:5]}"


def test_training_run_curve_gains_points(server, page):
    url, tmp = server
    _goto(page, f"{url}/train", "Train")
    page.get_by_label("Model").first.click()
    page.get_by_role("option", name="ResNet-20").click()
    _settle(page)
    for label, value in (("Epochs", "500"), ("Batch size", "16"), ("Log every (steps)", "1")):  # stopped long before it ends
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Tab")
    page.get_by_role("button", name="Start training").click()
    caption = page.get_by_text("step records")
    caption.wait_for()

    def logged() -> int:
        text = caption.inner_text()
        return int(text.split(" step records")[0].split()[-1])

    deadline = time.time() + 180
    first = None
    while time.time() < deadline:
        n = logged()
        if n > 0 and first is None:
            first = n
            _shot(page, "train-running")
        if first is not None and n > first:
            break
        time.sleep(0.5)
    assert first is not None and logged() > first, \
        f"expected the step-loss curve to gain points while training; log:\n{_log(tmp)}"
    assert _plot_points(page, 0, 0) >= first, "the step-loss chart did not draw the logged steps"

    # Pause: the charts stop redrawing (so a zoom survives) while the run keeps training; unpause catches up.
    page.get_by_text("Pause", exact=True).click()
    _settle(page)
    drawn = _plot_points(page, 0, 0)
    zoomed = _zoom_x(page, 0)
    on_disk = _steps_on_disk(tmp)
    # Each phase has its own time limit: on a slow machine the start alone can use most of the one above.
    _wait_until(lambda: _steps_on_disk(tmp) >= on_disk + 2 or not _run_active(tmp), 120)
    time.sleep(2)  # two refresh periods
    assert _steps_on_disk(tmp) > drawn, "the run should have logged steps the paused charts do not show"
    assert _plot_points(page, 0, 0) == drawn, "the paused chart was redrawn"
    assert _x_range(page, 0) == zoomed, "the user's zoom was lost while paused"
    page.get_by_text("Pause", exact=True).click()
    _wait_until(lambda: _plot_points(page, 0, 0) > drawn, 60)
    assert _plot_points(page, 0, 0) > drawn, "unpausing did not catch up with the run"

    # Stop: the run saves last.pt and the live view stops polling. (Stopping, not waiting for the run to finish,
    # keeps the test independent of the machine's speed: on an idle CI machine a short run ended mid-test.)
    page.get_by_role("button", name="Stop").click()
    page.get_by_role("button", name="Resume").wait_for(timeout=120_000)
    _settle(page)
    _shot(page, "train-stopped")
    assert not _run_active(tmp), "the run kept training after Stop"
    assert list((tmp / "runs").glob("*/last.pt")), "the stopped run did not save last.pt"
    stamp = caption.inner_text()
    time.sleep(3)
    assert caption.inner_text() == stamp, "the live view kept polling after the run stopped"


def _wait_until(condition, timeout_s: float) -> None:
    """Poll ``condition`` until it holds or ``timeout_s`` pass; the caller asserts it afterwards."""
    deadline = time.time() + timeout_s
    while time.time() < deadline and not condition():
        time.sleep(0.3)


def _run_active(tmp: Path) -> bool:
    """Whether the (only) run under ``tmp/runs`` is still starting or training."""
    from senet_dashboard.launcher import active_runs

    return bool(active_runs(tmp / "runs"))


def _steps_on_disk(tmp: Path) -> int:
    """Step records the (only) run under ``tmp/runs`` has written so far."""
    return sum(line.count('"type": "step"') for f in (tmp / "runs").glob("*/metrics.jsonl")
               for line in f.read_text().splitlines())


def _log(tmp: Path) -> str:
    logs = list((tmp / "runs").glob("*/train.log"))
    return logs[0].read_text()[-1500:] if logs else "(no train.log)"


def test_clicking_a_confusion_cell_shows_its_images(server, page):
    url, _ = server
    _goto(page, f"{url}/confusion", "Confusion explorer")
    chart = page.locator(".js-plotly-plot").first
    chart.wait_for()
    # The page opens on the most confused off-diagonal cell; click the fullest diagonal cell instead
    # (else the second fullest off-diagonal one), at its centre on the scatter overlay.
    target = page.evaluate("""() => {
        const g = document.querySelector('.js-plotly-plot');
        const z = g.data[0].z; let best = [0, 0, -1];
        for (let t = 0; t < z.length; t++) if (z[t][t] > best[2]) best = [t, t, z[t][t]];
        if (best[2] <= 0) {
            const cells = [];
            for (let t = 0; t < z.length; t++) for (let p = 0; p < z.length; p++)
                if (t !== p && z[t][p] > 0) cells.push([t, p, z[t][p]]);
            cells.sort((a, b) => b[2] - a[2] || b[0] - a[0] || b[1] - a[1]);
            best = cells[1] || cells[0] || best;
        }
        const xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis, box = g.getBoundingClientRect();
        return {t: best[0], p: best[1], n: best[2], x: box.left + xa._offset + xa.l2p(best[1]),
                y: box.top + ya._offset + ya.l2p(best[0]), names: g.data[0].x};
    }""")
    assert target["n"] > 0, "the confusion matrix has no images at all"
    page.mouse.click(target["x"], target["y"])
    true_name, pred_name = target["names"][target["t"]], target["names"][target["p"]]
    expected = f"{target['n']} {true_name} image{' was' if target['n'] == 1 else 's were'} predicted {pred_name}"
    page.get_by_text(expected).wait_for()
    _settle(page)
    images = page.locator('[data-testid="stImage"] img')
    assert images.count() >= min(target["n"], 30), f"expected the {target['n']} images of the clicked cell"
    _shot(page, "confusion-cell")
    # "Explain" opens the first (most confident) image of the cell in the Excitation explorer, by a link.
    first = re.search(r"#(\d+)", page.locator('[data-testid="stImage"]').first.inner_text()).group(1)
    page.get_by_role("button", name="Explain").click()
    page.get_by_text(f"image #{first} · true class {true_name}").wait_for()
    _settle(page)
    assert f"image={first}" in page.url, f"the address should link to the image, got {page.url}"
    assert page.get_by_text("Gates of this image").is_visible()
    assert page.locator('[data-testid="stException"]').count() == 0
    _shot(page, "confusion-explain")


def _png(mode: str, size: tuple[int, int]) -> bytes:
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_uploading_an_image_shows_excitation_charts(server, page, tmp_path):
    url, _ = server
    _goto(page, f"{url}/excitation", "Excitation explorer")
    page.get_by_text("Upload", exact=True).first.click()
    _settle(page)
    upload = tmp_path / "photo.png"
    upload.write_bytes(_png("RGBA", (90, 60)))
    page.locator('input[type="file"]').set_input_files(str(upload))
    page.get_by_text("Gates of this image").wait_for()
    page.get_by_text("uploaded photo.png").wait_for()
    _settle(page)
    assert page.locator(".js-plotly-plot").count() >= 1, "expected the gate heatmap (the top 5 is an SVG image)"
    assert page.locator('[data-testid="stException"]').count() == 0
    _shot(page, "excitation-upload")
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"this is text, not a PNG")
    page.locator('input[type="file"]').set_input_files(str(bad))
    page.get_by_text("not-an-image.png: not an image file").wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0


def test_clicking_a_gate_cell_follows_that_block_and_channel_into_one_channel(server, page):
    url, _ = server
    _goto(page, f"{url}/excitation", "Excitation explorer")
    page.get_by_text("Gates of this image").wait_for()
    _settle(page)
    index = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].findIndex(
        g => g._fullData && g._fullData[0] && g._fullData[0].type === 'heatmap')""")
    assert index >= 0, "the gate heatmap is drawn"
    page.locator(".js-plotly-plot").nth(index).scroll_into_view_if_needed()
    # the middle cell of the first block's row, in the browser's own coordinates
    target = page.evaluate("""(k) => {
        const g = document.querySelectorAll('.js-plotly-plot')[k], tr = g._fullData[0];
        const xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis, box = g.getBoundingClientRect();
        const row = 0, col = Math.floor(tr.z[row].filter(v => v !== null && !Number.isNaN(v)).length / 2);
        return {x: box.left + xa._offset + xa.l2p(col), y: box.top + ya._offset + ya.l2p(row),
                channel: tr.customdata[row][col], block: tr.y[row]};
    }""", index)
    page.mouse.click(target["x"], target["y"])
    _settle(page)
    page.get_by_role("radio", name="One channel").click()
    page.get_by_text(f"{target['block']}, channel {target['channel']}: mean gate per class").wait_for()
    _settle(page)
    assert page.get_by_text("Opens it most").is_visible() and page.get_by_text("Opens it least").is_visible()
    assert f"channel={target['channel']}" in page.url and "view=channel" in page.url, page.url
    assert page.locator('[data-testid="stException"]').count() == 0
    _shot(page, "excitation-one-channel")


def test_opening_a_checkpoint_file_by_path_selects_it(server, page):
    url, tmp = server
    other = tmp / "elsewhere" / "twin.pt"
    other.parent.mkdir(exist_ok=True)
    other.write_bytes((tmp / "checkpoints" / "se_resnet20.pt").read_bytes())
    _goto(page, url, "SENet Explorer")
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Open a checkpoint file…").click()
    box = page.get_by_label("Path to a .pt file")
    box.fill(str(other))
    box.press("Enter")
    _settle(page)
    page.get_by_test_id("stPopoverBody").get_by_role("button", name="Open", exact=True).click()
    chosen = sidebar.get_by_test_id("stSelectbox").get_by_role("combobox").first
    _wait_until(lambda: chosen.input_value().startswith("twin.pt"), 60)
    _settle(page)
    assert chosen.input_value() == f"twin.pt  ·  {other.parent}", "the opened file is the selected checkpoint"
    assert page.locator('[data-testid="stException"]').count() == 0
    assert not sidebar.locator('[data-testid="stAlertContentError"]').count(), "opening a valid file is no error"
    _shot(page, "open-checkpoint-file")


def test_the_compare_page_draws_a_study(server, page):
    """A 2 x 2 study trained here appears on Compare: every seed as a point, the paired difference, the curves."""
    from senet.training.study import run_study

    url, tmp = server
    run_study(tmp / "studies" / "tiny", ["se_resnet20", "resnet20"], [0, 1], "fast",
              dict(data=f"folder:{tmp / 'data'}", data_dir=str(tmp / "cache"), epochs=1, batch_size=8, val_size=9))
    _goto(page, f"{url}/compare", "Compare")
    page.get_by_text("a study", exact=True).click()
    _settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    for title in ("Every seed", "Seed-paired differences", "Validation accuracy"):
        page.get_by_text(title).first.wait_for()
    assert page.locator('[data-testid="stDataFrame"]').count() == 1, "the per-variant table"
    assert page.locator(".js-plotly-plot").count() == 3, "points, differences, curves"
    page.screenshot(path=str(ARTIFACTS / "compare-study.png"), full_page=True)


def test_attention_views_show_and_a_map_point_opens_its_image(server, page):
    """Inside a block (both drawings), the map of images (a click on a point, then "Explain this image"), and the
    spread and saturation view, in a real browser, each its own view."""
    url, _ = server
    _goto(page, f"{url}/excitation?view=block", "Excitation explorer")
    page.get_by_text("step by step:").first.wait_for()
    _settle(page)
    page.get_by_role("radio", name="Feature maps u_c and s_c · u_c").click()
    page.get_by_text("u_c, entering the block").first.wait_for()
    _settle(page)
    page.get_by_role("radio", name="Map", exact=True).click()
    page.get_by_text("placed by their gate vectors").first.wait_for()
    _settle(page)
    index = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].findIndex(
        g => g._fullLayout.xaxis && String(g._fullLayout.xaxis.title.text).startsWith('PC 1'))""")
    assert index >= 0, "the map of images is drawn"
    page.locator(".js-plotly-plot").nth(index).scroll_into_view_if_needed()
    target = page.evaluate("""(i) => {
        const g = document.querySelectorAll('.js-plotly-plot')[i];
        const t = g._fullData.findIndex(d => d.mode === 'markers' && d.customdata && d.customdata.length);
        const tr = g._fullData[t];
        const xa = g._fullLayout['xaxis' + tr.xaxis.slice(1)], ya = g._fullLayout['yaxis' + tr.yaxis.slice(1)];
        const box = g.getBoundingClientRect();
        return {x: box.left + xa._offset + xa.l2p(tr.x[0]), y: box.top + ya._offset + ya.l2p(tr.y[0]),
                position: tr.customdata[0]};
    }""", index)
    page.mouse.click(target["x"], target["y"])
    page.get_by_role("button", name="Explain this image").wait_for()
    _settle(page)
    page.get_by_role("button", name="Explain this image").click()
    page.get_by_text(f"val image #{target['position']} ·").first.wait_for()
    page.get_by_text("Gates of this image").wait_for()
    _settle(page)
    no_exception(page, "excitation after opening a map point")
    page.get_by_role("radio", name="Spread", exact=True).click()
    page.get_by_text("Share of gates at the ends of their range").first.wait_for()
    no_exception(page, "excitation, spread and saturation")
    _shot(page, "excitation-attention-views")


def test_the_train_page_shows_gates_forming_in_a_real_browser(server, page):
    """A tiny run that recorded its probe gates, opened by path: the Gates forming panel, an epoch picked."""
    from senet.training import make_config, train

    url, tmp = server
    data = tmp / "data"
    run = tmp / "forming-run"
    run.mkdir()
    config = make_config("se_resnet20", "fast", data=f"folder:{data}", data_dir=str(tmp / "cache"), epochs=2,
                         batch_size=8, val_size=15, probe_per_class=4)
    train(config, run, progress=False)
    _goto(page, f"{url}/train", "Train")
    page.get_by_text("Open a run…").first.click()
    box = page.get_by_test_id("stPopoverBody").get_by_test_id("stTextInputField")
    box.fill(str(run))
    box.press("Enter")
    _settle(page)
    page.get_by_test_id("stPopoverBody").get_by_role("button", name="Open", exact=True).click()
    _settle(page)
    page.get_by_text("Gates forming: 12 probe images, 2 epochs").first.click()
    page.get_by_text("stage3.block3 after epoch 2: mean gate per class (probe images)").first.wait_for()
    no_exception(page, "train, gates forming")
    _shot(page, "train-gates-forming")
