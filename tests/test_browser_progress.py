"""Long work in a real browser: the explorer's gate ablation over all of the bundled sample shows a progress text
with counts and time left, and its Stop button ends the running script, keeping nothing of the unfinished work.

Skips (with the reason) when Chromium or Playwright is missing.
"""
from __future__ import annotations

import os
import re

import pytest

from browser_support import ARTIFACTS, CHROMIUM, chromium_page, dashboard, goto, no_exception, settle
from conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.is_file():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

COUNTS = re.compile(r"Ablating gates over 500 val images, (\d+) passes: ([\d,]+) of ([\d,]+) image passes · "
                    r"(estimating the time left|about \S+( \S+)? left)")
STOPPED = re.compile(r"stopped after ([\d,]+) of ([\d,]+) image passes; nothing of it was kept")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard over the shipped checkpoints and the bundled sample (500 val images), its own caches."""
    tmp = tmp_path_factory.mktemp("progress-browser")
    env = dict(os.environ, SENET_DATA="sample", SENET_CHECKPOINTS=str(ROOT / "checkpoints"),
               SENET_RUNS=str(tmp / "runs"), SENET_DATA_DIR=str(tmp / "cache"), SENET_STUDIES=str(tmp / "studies"),
               PYTHONPATH=str(ROOT))
    with dashboard(env, tmp / "streamlit.log") as url:
        yield url


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_gate_ablation_shows_its_counts_and_stop_ends_it(server):
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(sync_api, width=1280, height=1000) as page:
        goto(page, f"{server}/excitation?view=split", "Excitation explorer")
        page.get_by_text("Images", exact=True).first.wait_for()
        page.locator('[class*="st-key-exc_split_per_class"]').click()
        page.get_by_role("option", name="all of val").click()
        settle(page)
        page.get_by_role("button", name="Run").click()
        bar = page.locator('[data-testid="stProgress"]').first
        page.wait_for_function("""() => {
            const p = document.querySelector('[data-testid="stProgress"]');
            return p && /: [1-9][\\d,]* of /.test(p.innerText);
        }""", timeout=300_000)  # a count past 0: the work is under way
        text = bar.inner_text()
        found = COUNTS.search(text)
        assert found, f"the progress says what, how many of how many, and the time left: {text!r}"
        passes, done, total = int(found[1]), _number(found[2]), _number(found[3])
        assert total == passes * 500 and 0 < done < total, text
        page.screenshot(path=str(ARTIFACTS / "progress-in-flight.png"))
        page.locator(".st-key-progress_stop_exc_ablating").get_by_role("button", name="Stop").click()
        note = page.get_by_text(STOPPED).first
        note.wait_for(timeout=120_000)
        settle(page)  # the script ended: no run goes on behind the note
        stopped = STOPPED.search(note.inner_text())
        assert done <= _number(stopped[1]) < _number(stopped[2]) == total, note.inner_text()
        assert page.locator('[data-testid="stProgress"]').count() == 0, "the bar is gone with the work"
        assert page.get_by_role("button", name="Run").is_visible(), "nothing kept: the ablation can be run again"
        assert not page.get_by_text("Both panels share one scale").count(), "no result drawn"
        no_exception(page, "explorer after Stop")
        page.screenshot(path=str(ARTIFACTS / "progress-stopped.png"))
