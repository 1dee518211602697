"""A first start in a real browser: a fresh checkout, the shipped checkpoints, no dataset anywhere.

The dashboard must default to the bundled sample of held-out images and every page must work on it, each
control the first-start walk named exercised, with no exception and no request to another host.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser_support import ARTIFACTS, CHROMIUM, chromium_page, dashboard, goto, no_exception, outside_hosts, settle
from conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.is_file():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def test_a_first_start_without_data_walks_every_page_on_the_bundled_sample(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SENET_DATA",)}
    env.update(SENET_DATA_DIR=str(tmp_path / "data"), SENET_RUNS=str(tmp_path / "runs"),
               SENET_CHECKPOINTS=str(ROOT / "checkpoints"), SENET_STUDIES=str(tmp_path / "studies"))
    ARTIFACTS.mkdir(exist_ok=True)
    requested: list[str] = []
    with dashboard(env, tmp_path / "streamlit.log") as url, chromium_page(sync_api, width=1280) as page:
        page.on("request", lambda r: requested.append(r.url))
        goto(page, url, "SENet Explorer")
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert sidebar.get_by_label("Data source", exact=True).input_value() == "sample", "no data: the bundled sample"
        sidebar.get_by_text("bundled sample", exact=False).first.wait_for()
        no_exception(page, "model card")
        page.get_by_role("button", name="Recompute val accuracy now").click()
        settle(page)
        page.get_by_text("Recomputed now · val · 500 images").first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "first-start-card.png"), full_page=True)

        goto(page, f"{url}/train", "Train")
        no_exception(page, "train")

        goto(page, f"{url}/excitation", "Excitation explorer")
        no_exception(page, "excitation")
        page.get_by_text("Gates of this image").first.wait_for()
        page.get_by_role("radio", name="vs. its class").click()  # a view that needs the class profiles
        page.get_by_text("This image against its class").first.wait_for()
        settle(page)
        no_exception(page, "excitation, vs. its class")
        page.screenshot(path=str(ARTIFACTS / "first-start-excitation.png"), full_page=True)

        goto(page, f"{url}/confusion", "Confusion explorer")
        page.get_by_text("Accuracy · val · recomputed now").first.wait_for()
        for control in ("Errors only", "Log scale", "Row-normalised"):
            page.get_by_text(control, exact=True).click()
            settle(page)
            no_exception(page, f"confusion, {control}")
        page.screenshot(path=str(ARTIFACTS / "first-start-confusion.png"), full_page=True)

        goto(page, f"{url}/compare", "Compare")
        page.get_by_text("Paired test on the validation split").click()
        settle(page)
        no_exception(page, "compare")
        page.get_by_text("only SE right", exact=False).first.wait_for()
        page.get_by_text("a study", exact=True).click()
        settle(page)
        no_exception(page, "compare, study")
    assert requested and not outside_hosts(requested), f"requests to other hosts: {outside_hosts(requested)[:5]}"
