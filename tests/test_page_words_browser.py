"""Issue 28's words and layout in a real browser (Chromium through Playwright): an empty confusion cell clicked,
a bad ``?checkpoint=`` address, Plotly's toolbar clear of every legend and title, and Compare's table and chart
at 1280 and 1920 px. Screenshots go to ``test-artifacts/``. Skips without Chromium or Playwright."""
from __future__ import annotations

import os
import time

import pytest
import torch

from browser_support import ARTIFACTS, CHROMIUM, chromium_page, dashboard, goto, no_exception, settle
from conftest import ROOT, make_folder_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.is_file():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CLASSES = ("blue", "green", "red")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard over a tiny folder dataset and an untrained SE model and its plain twin, recorded as trained
    on different hardware, with two epochs of history each."""
    from senet import create_model, save_checkpoint

    tmp = tmp_path_factory.mktemp("words-browser")
    data = make_folder_dataset(tmp / "data", per_class=12, test_split=True)
    checkpoints = tmp / "checkpoints"
    checkpoints.mkdir()
    torch.manual_seed(0)
    for name, options, hardware, seconds in (("se_resnet20", {"reduction": 16}, "NVIDIA H200", 20.0),
                                             ("resnet20", {}, "CPU (2 cores, 1 thread)", 600.0)):
        history = [{"epoch": e, "train_loss": 1.2 / e, "train_acc": 0.3 + e / 10, "val_loss": 1.1 / e,
                    "val_acc": 0.4 + e / 10, "lr": 0.1 / e, "elapsed_s": seconds * e} for e in (1, 2, 3)]
        save_checkpoint(checkpoints / f"{name}.pt", create_model(name, num_classes=3), model_name=name,
                        model_options={"num_classes": 3, **options}, classes=CLASSES, val_acc=0.5, history=history,
                        hardware=hardware)
    (tmp / "notes.pt").write_text("# my notes\nnot a checkpoint\n")
    env = dict(os.environ, SENET_DATA=f"folder:{data}", SENET_RUNS=str(tmp / "runs"),
               SENET_CHECKPOINTS=str(checkpoints), SENET_DATA_DIR=str(tmp / "cache"), PYTHONPATH=str(ROOT),
               SENET_STUDIES=str(tmp / "studies"))
    with dashboard(env, tmp / "streamlit.log") as url:
        yield url, tmp


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 6000))})
    time.sleep(0.5)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


# Every chart's toolbar, shown as when the pointer is over the chart, against its legend and title: the boxes
# that overlap (none expected).
OVERLAPS = """() => {
    const boxes = [];
    const meet = (a, b) => a.width > 0 && b.width > 0 && a.left < b.right - 1 && b.left < a.right - 1
                           && a.top < b.bottom - 1 && b.top < a.bottom - 1;
    document.querySelectorAll('.js-plotly-plot').forEach((g, i) => {
        const bar = g.querySelector('.modebar');
        if (!bar || !g.getBoundingClientRect().width) return;
        g.querySelectorAll('.modebar-container, .modebar').forEach(m => { m.style.opacity = 1; });
        const b = bar.getBoundingClientRect();
        for (const sel of ['.legend', '.gtitle', '.infolayer .annotation']) {
            g.querySelectorAll(sel).forEach(el => {
                const r = el.getBoundingClientRect();
                if (meet(b, r)) boxes.push(`chart ${i}: toolbar over ${sel} "${(el.textContent || '').slice(0, 40)}"`);
            });
        }
    });
    return boxes;
}"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_toolbar_never_covers_a_legend_or_a_title(server, width):
    url, _ = server
    with chromium_page(sync_api, width=width, height=1200) as page:
        for path, title in (("", "SENet Explorer"), ("compare", "Compare")):
            goto(page, f"{url}/{path}", title)
            charts = page.locator(".js-plotly-plot")
            charts.first.wait_for()
            for i in range(charts.count()):  # the toolbar is drawn once the pointer has been over the chart
                if charts.nth(i).is_visible():  # (not those in a tab not shown)
                    charts.nth(i).scroll_into_view_if_needed()
                    charts.nth(i).hover()
            assert page.locator(".modebar").count() >= 1
            assert page.evaluate(OVERLAPS) == [], f"/{path} at {width} px"
        page.locator("button", has_text="training time").first.click()
        settle(page)
        assert page.get_by_text("These runs trained on different hardware").first.is_visible()
        assert page.evaluate(OVERLAPS) == [], f"compare by training time at {width} px"
        titles = page.evaluate("""() => [...document.querySelector('.js-plotly-plot').querySelectorAll(
            '.legendgrouptitle, .legendtitle, .legend .groups text')].map(t => t.textContent)""")
        assert any("GPU NVIDIA H200" in t for t in titles) and any("CPU, 1 thread" in t for t in titles), titles
        table = page.locator('[data-testid="stDataFrame"]').first
        table.scroll_into_view_if_needed()
        scroll = page.evaluate("""() => { const s = document.querySelector('[data-testid="stDataFrame"] .dvn-scroller');
            return s ? [s.scrollWidth, s.clientWidth] : null; }""")
        assert scroll and scroll[0] <= scroll[1] + 1, f"Compare's table scrolls sideways at {width} px: {scroll}"
        no_exception(page, "compare")
        _shot(page, f"words-compare-{width}")


def test_an_empty_confusion_cell_says_no_image_was_predicted(server):
    url, _ = server
    with chromium_page(sync_api, width=1280, height=1400) as page:
        goto(page, f"{url}/confusion", "Confusion explorer")
        chart = page.locator(".js-plotly-plot").first
        chart.wait_for()
        target = page.evaluate("""() => {
            const g = document.querySelector('.js-plotly-plot'), z = g.data[0].z;
            for (let t = 0; t < z.length; t++) for (let p = 0; p < z.length; p++) if (z[t][p] === 0) {
                const xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis, box = g.getBoundingClientRect();
                return {t, p, x: box.left + xa._offset + xa.l2p(p), y: box.top + ya._offset + ya.l2p(t),
                        names: g.data[0].x};
            }
            return null;
        }""")
        assert target, "the untrained model's matrix has no empty cell to click"
        page.mouse.click(target["x"], target["y"])
        true_name, pred_name = target["names"][target["t"]], target["names"][target["p"]]
        page.get_by_text(f"No {true_name} image was predicted {pred_name}").wait_for()
        settle(page)
        body = page.locator('[data-testid="stMain"]').inner_text()
        assert "0 " + true_name not in body and "image(s)" not in body
        no_exception(page, "confusion")
        _shot(page, "words-confusion-empty-cell")


def test_a_bad_checkpoint_address_is_one_line_naming_the_parameter(server):
    url, tmp = server
    with chromium_page(sync_api, width=1280, height=1200) as page:
        for value, why in ((tmp / "notes.pt", "not a readable PyTorch checkpoint (a text file beginning"),
                           (tmp / "nowhere.pt", "no such checkpoint file")):
            page.goto(f"{url}/?checkpoint={value}")
            page.get_by_role("heading", name="SENet Explorer").first.wait_for()
            settle(page)
            errors = page.locator('[data-testid="stSidebar"] [data-testid="stAlertContentError"]')
            errors.first.wait_for()
            text = errors.first.locator('[data-testid="stMarkdownContainer"]').inner_text()  # not the icon's name
            assert text.startswith(f"checkpoint={value} in the address: not opened;") and why in text, text
            assert len(text.strip().splitlines()) == 1 and "list index" not in text and "operand" not in text
            assert page.get_by_text("Model card ·").first.is_visible(), "the page keeps the checkpoint it had"
            no_exception(page, f"?checkpoint={value}")
        _shot(page, "words-bad-checkpoint-address")
