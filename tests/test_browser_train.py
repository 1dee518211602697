"""The Train page in Chromium: every field is checked on the page, with ``senet train``'s words, before anything
starts; a dashboard started with ``SENET_DATA=sample`` still launches what its form shows; after Start the new
run is at the top of the page; a run resumed with more epochs says so on its learning-rate chart.

Skips (with the reason) when Chromium or Playwright is missing.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from browser_support import ARTIFACTS, CHROMIUM, chromium_page, dashboard, goto, no_exception, settle
from conftest import ROOT, make_folder_dataset
from test_run_story import StopAtStep

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.is_file():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def resumed_run(runs: Path, data: Path, cache: Path) -> Path:
    """A fast-recipe run of 2 epochs stopped after step 5, then resumed with 3 epochs in total."""
    from senet.training import make_config, train

    options = dict(data=f"folder:{data}", data_dir=str(cache), batch_size=8, lr=0.05, val_size=6, log_every=1,
                   warmup_epochs=1.0, probe_per_class=0, tta_level=0)
    run = runs / "20260101-120000-resnet20"
    run.mkdir(parents=True)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(make_config("resnet20", "fast", epochs=2, **options), run, progress=False, callbacks=(StopAtStep(5),))
        train(make_config("resnet20", "fast", epochs=3, **options), run, resume=True, progress=False)
    finally:
        torch.set_num_threads(before)
    return run


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard started with SENET_DATA=sample (which cannot be trained on) and one resumed run."""
    tmp = tmp_path_factory.mktemp("train-page")
    data = make_folder_dataset(tmp / "data", per_class=10)  # 30 images: 27 to train on after the 10% holdout
    (tmp / "checkpoints").mkdir()
    resumed = resumed_run(tmp / "runs", data, tmp / "cache")
    env = dict(os.environ, SENET_DATA="sample", SENET_RUNS=str(tmp / "runs"),
               SENET_CHECKPOINTS=str(tmp / "checkpoints"), SENET_DATA_DIR=str(tmp / "cache"), PYTHONPATH=str(ROOT))
    try:
        with dashboard(env, tmp / "streamlit.log") as url:
            yield {"url": url, "tmp": tmp, "data": data, "resumed": resumed, "runs": tmp / "runs"}
    finally:
        from senet_dashboard.launcher import active_runs, stop_run

        for row in active_runs(tmp / "runs"):
            stop_run(row["path"])


@pytest.fixture(scope="module")
def page(server):
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(sync_api, width=1280, height=900) as pg:
        yield pg


def _main(page):
    """The page's main area (the sidebar has a "Data source" field of its own)."""
    return page.locator('[data-testid="stMain"]')


def _type(page, label: str, value: str) -> None:
    box = _main(page).get_by_label(label, exact=True)
    box.fill(value)
    box.press("Tab")
    settle(page)


def _start(page):
    return _main(page).get_by_role("button", name="Start training")


def _runs(server) -> set[str]:
    return {p.name for p in server["runs"].iterdir() if p.is_dir()}


def test_the_form_refuses_what_senet_train_would_before_anything_starts(server, page):
    goto(page, f"{server['url']}/train", "Train")
    _main(page).get_by_text("New run").first.click()  # folded: there are runs
    settle(page)
    _main(page).get_by_label("Model").first.click()
    page.get_by_role("option", name="ResNet-20").click()
    settle(page)
    before = _runs(server)
    page.get_by_text("data 'sample': the bundled sample holds only held-out validation images").wait_for()
    assert _start(page).is_disabled(), "the sample cannot be trained on: Start stays off"

    _type(page, "Data source", f"folder:{server['data']}")
    _type(page, "Batch size", "8")
    _type(page, "r", "0")
    page.get_by_text("reduction must be a positive integer, got 0").wait_for()
    assert _start(page).is_disabled(), "an invalid r blocks the start (it used to launch r = 16)"

    _type(page, "r", "16")
    _type(page, "Batch size", "64")
    page.get_by_text("batch_size 64 is larger than the 27 training images").wait_for()
    assert _start(page).is_disabled()
    _type(page, "Epochs", "0")
    page.get_by_text("epochs must be a positive integer, got 0").wait_for()
    _type(page, "Weight decay", "2")
    page.get_by_text("weight_decay must be at most 1, got 2.0").wait_for()
    page.screenshot(path=str(ARTIFACTS / "train-form-refusals.png"), full_page=True)
    assert _runs(server) == before, "no run directory, no process: everything was refused on the page"
    no_exception(page, "the Train form")


def test_after_a_valid_start_the_new_run_is_at_the_top_of_the_page(server, page):
    before = _runs(server)
    for label, value in (("Epochs", "1"), ("Batch size", "8"), ("Weight decay", "0.0005"),
                         ("Log every (steps)", "1")):
        _type(page, label, value)
    _start(page).click()
    deadline = time.time() + 60
    while time.time() < deadline and len(_runs(server)) == len(before):
        time.sleep(0.3)
    new = sorted(_runs(server) - before)
    assert len(new) == 1, "one run started"
    header = page.get_by_text(new[0], exact=True).first
    header.wait_for()
    settle(page)
    assert _start(page).count() == 0 or not _start(page).is_visible(), "the form folded after Start"
    box = header.bounding_box()
    assert box is not None and box["y"] < page.viewport_size["height"], "the new run shows without scrolling"
    page.screenshot(path=str(ARTIFACTS / "train-after-start.png"))
    from senet.training.runs import read_json

    config = read_json(server["runs"] / new[0] / "config.json")
    assert config["data"] == f"folder:{server['data']}", "it records what the form showed, not $SENET_DATA"


def test_a_resumed_runs_learning_rate_chart_says_the_schedule_was_re_stretched(server, page):
    _main(page).locator('[data-testid="stSelectbox"]').filter(has_text="Run").first.click()
    page.get_by_role("option", name=server["resumed"].name).click()
    settle(page)
    page.get_by_text("resumed: 2 → 3 epochs, schedule re-stretched").first.wait_for()
    page.get_by_text("with 3 epochs in total instead of 2").first.wait_for()
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 2400})  # the charts draw once they are in view
    page.locator(".js-plotly-plot").nth(1).wait_for()
    first_x = page.evaluate("() => { const g = [...document.querySelectorAll('.js-plotly-plot')]"
                            ".find(p => ((p._fullLayout.title || {}).text || '').includes('Learning rate'));"
                            " return g ? g.data[0].x[0] : null; }")
    assert first_x == 0, "the learning rate is drawn from step 0: the warm-up's start shows"
    page.screenshot(path=str(ARTIFACTS / "train-resumed.png"))
    page.set_viewport_size(size)
    no_exception(page, "a resumed run")
