"""The explorer's *Importance* view in a real browser, on the shipped SE-AirNet over the bundled sample: this image's
scatter and Spearman caption at 1280 and 1920 px, and the estimate over the split showing its counts, ended by Stop
with nothing kept. Screenshots under the browser artifacts folder.

Skips (with the reason) when Chromium or Playwright is missing.
"""
from __future__ import annotations

import os
import re
import shutil

import pytest

from browser_support import ARTIFACTS, CHROMIUM, chromium_page, dashboard, goto, no_exception, settle
from conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.is_file():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

COUNTS = re.compile(r"Gate against importance over 500 val images: ([\d,]+) of 2,268 image passes")
STOPPED = re.compile(r"stopped after ([\d,]+) of 2,268 image passes; nothing of it was kept")
PROGRESS_PAST_ZERO = """() => {
    const p = document.querySelector('[data-testid="stProgress"]');
    return p && /: [1-9][\\d,]* of /.test(p.innerText);
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard over a copy of the shipped SE-AirNet and the bundled sample (500 val images), its own caches."""
    tmp = tmp_path_factory.mktemp("importance-browser")
    (tmp / "checkpoints").mkdir()
    shutil.copy2(ROOT / "checkpoints" / "se_airnet.pt", tmp / "checkpoints" / "se_airnet.pt")
    env = dict(os.environ, SENET_DATA="sample", SENET_CHECKPOINTS=str(tmp / "checkpoints"),
               SENET_RUNS=str(tmp / "runs"), SENET_DATA_DIR=str(tmp / "cache"), SENET_STUDIES=str(tmp / "studies"),
               PYTHONPATH=str(ROOT))
    with dashboard(env, tmp / "streamlit.log") as url:
        yield url


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_view_draws_this_images_scatter_and_its_rank_correlation(server, width):
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(sync_api, width=width, height=2400) as page:
        goto(page, f"{server}/excitation?view=importance&image=7&block=stage3", "Excitation explorer")
        caption = page.get_by_text("Spearman's rank correlation of gate and importance").first
        caption.wait_for(timeout=180_000)
        settle(page)
        no_exception(page, "Importance view")
        assert re.search(r"ρ = [+-]\d\.\d\d", caption.inner_text()), caption.inner_text()
        assert page.locator(".js-plotly-plot .scatterlayer .point").count() >= 512, "a point per channel of stage3"
        page.screenshot(path=str(ARTIFACTS / f"importance-view-{width}.png"), full_page=True)


def test_the_estimate_over_the_split_shows_its_counts_and_stop_ends_it(server):
    with chromium_page(sync_api, width=1280, height=2400) as page:
        goto(page, f"{server}/excitation?view=importance&image=7&block=stage3", "Excitation explorer")
        page.get_by_text("Spearman's rank correlation").first.wait_for(timeout=180_000)
        settle(page)
        page.locator('[class*="st-key-exc_imp_per_class"]').click()
        page.get_by_role("option", name="50 per class").click()
        settle(page)
        page.get_by_role("button", name="Estimate").click()
        page.wait_for_function(PROGRESS_PAST_ZERO, timeout=300_000)
        text = page.locator('[data-testid="stProgress"]').first.inner_text()
        assert COUNTS.search(text), f"the progress says what and how many of how many: {text!r}"
        page.get_by_role("button", name="Stop").click()
        line = page.get_by_text("stopped after").first
        line.wait_for(timeout=120_000)
        settle(page)
        assert STOPPED.search(line.inner_text()), line.inner_text()
        assert not page.get_by_text("Where gate and importance disagree").count(), "nothing of it is shown"
        no_exception(page, "stopped estimate")


def test_a_click_on_a_point_follows_its_channel(server):
    with chromium_page(sync_api, width=1280, height=2400) as page:
        goto(page, f"{server}/excitation?view=importance&image=7&block=stage3", "Excitation explorer")
        page.get_by_text("Spearman's rank correlation").first.wait_for(timeout=180_000)
        settle(page)
        legend = page.locator(".js-plotly-plot .legend").first
        before = re.search(r"channel (\d+) \(followed\)", legend.text_content())[1]
        points = page.locator(".js-plotly-plot .scatterlayer .trace").first.locator(".point")
        box = points.nth(0).bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        settle(page, 2.0)
        after = re.search(r"channel (\d+) \(followed\)", legend.text_content())[1]
        assert after != before, "the clicked channel is followed (ringed)"
        assert f"channel={after}" in page.url, "and the address carries it"
        no_exception(page, "point clicked")
