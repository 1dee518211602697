"""Demo mode's leaks (issue 29, class 3) in a real browser: ``streamlit run app.py`` with ``SENET_DEMO=1`` driven by
Playwright with Debian's Chromium. A page that raises shows no traceback and no server path; a run that a symlink
takes outside the runs root is not listed and its log never reaches the browser; a checkpoint card and class names
holding an image on another host make no request there. Screenshots go to ``test-artifacts/``.

The exception is injected, not found: a ``sitecustomize`` in the test's folder (first on the server's
``PYTHONPATH``) makes the model card's model summary raise for one checkpoint file, ``boom.pt``.
"""
from __future__ import annotations

import os
import shutil
import time

import pytest

from browser_support import ARTIFACTS, CHROMIUM, chromium_page, dashboard, goto, settle
from conftest import ROOT, make_folder_dataset
from test_demo_leaks import save

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.is_file():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

SECRET = "OUTSIDE-RUN-SECRET"
LEAK_HOST = "example.invalid"  # never resolves; a request to it is still recorded by the browser
IMAGE = f"![pixel](http://{LEAK_HOST}/leak.png)"
INJECT = '''
import os
if os.environ.get("SENET_TEST_BOOM"):
    import senet_dashboard.views._loaders as _loaders
    _info_for = _loaders.info_for

    def info_for(path):
        if str(path).endswith("boom.pt"):
            raise RuntimeError(f"injected failure reading {os.environ['SENET_TEST_BOOM']}/server-only/secret.pt")
        return _info_for(path)

    _loaders.info_for = info_for
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo-browser")
    served, outside = tmp / "served", tmp / "outside"
    ck, runs, data = served / "checkpoints", served / "runs", served / "data"
    save(ck / "se_resnet20.pt")
    save(ck / "boom.pt")
    save(ck / "evil.pt", classes=(f"cat {IMAGE}", "dog", "bird"), recipe=f"fast {IMAGE}",
         dataset=f"data {IMAGE}", hardware=f"gpu {IMAGE}", wall_time_s=12.0)
    make_folder_dataset(data / "tiny", per_class=20)
    runs.mkdir(parents=True)
    (outside / "run").mkdir(parents=True)
    (outside / "run" / "config.json").write_text('{"model": "se_resnet20", "recipe": "fast", "epochs": 2}')
    (outside / "run" / "status.json").write_text('{"state": "failed", "epoch": 1, "epochs": 2, "error": "x"}')
    (outside / "run" / "train.log").write_text(f"{SECRET}\nTraceback: {SECRET}\n")
    shutil.copy(ck / "se_resnet20.pt", outside / "run" / "best.pt")
    (runs / "escape").symlink_to(outside / "run")
    inject = tmp / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT)
    env = dict(os.environ, SENET_DEMO="1", SENET_CHECKPOINTS=str(ck), SENET_RUNS=str(runs),
               SENET_DATA=f"folder:{data / 'tiny'}", SENET_DEMO_DATA=str(data), SENET_DATA_DIR=str(tmp / "cache"),
               SENET_STUDIES=str(served / "studies"), SENET_TEST_BOOM=str(ROOT),
               PYTHONPATH=os.pathsep.join([str(inject), str(ROOT)]))
    with dashboard(env, tmp / "streamlit.log") as url:
        yield url, ck, tmp


def _shot(page, name: str, width: int) -> None:
    """A screenshot of the whole page at ``width`` px (Streamlit scrolls inside its main area)."""
    page.set_viewport_size({"width": width, "height": 1200})
    time.sleep(0.3)
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                           " return m ? m.scrollHeight : document.body.scrollHeight; }")
    page.set_viewport_size({"width": width, "height": max(1200, min(int(height), 5000))})
    time.sleep(0.5)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"demo-leaks-{name}-{width}.png"), full_page=True)


def test_a_page_that_raises_shows_visitors_no_traceback_and_no_server_path(site):
    url, ck, _ = site
    with chromium_page(sync_api, width=1280) as page:
        page.goto(f"{url}/?checkpoint={ck / 'boom.pt'}")
        page.locator('[data-testid="stException"]').first.wait_for()
        settle(page)
        shown = page.locator('[data-testid="stException"]').first.inner_text()
        body = page.locator("body").inner_text()
        for width in (1280, 1920):
            _shot(page, "exception", width)
    assert "encountered an error" in shown, shown
    for secret in ("Traceback", "injected failure", "server-only", "RuntimeError", str(ROOT), "_loaders.py"):
        assert secret not in body, f"{secret!r} reached the browser"


def test_a_run_outside_the_runs_root_is_not_listed_and_its_log_never_shown(site):
    url, _, _ = site
    with chromium_page(sync_api, width=1280) as page:
        goto(page, f"{url}/train", "Train")
        body = page.locator("body").inner_text()
        for width in (1280, 1920):
            _shot(page, "train", width)
    assert "Training is off" in body
    assert SECRET not in body and "escape" not in body, "the symlinked run was listed"


@pytest.mark.parametrize("path, title", [("/", "SENet Explorer"), ("/excitation", "Excitation explorer"),
                                         ("/confusion", "Confusion explorer"), ("/compare", "Compare")])
def test_markdown_in_a_card_and_class_names_makes_no_request_elsewhere(site, path, title):
    url, ck, _ = site
    requested: list[str] = []
    with chromium_page(sync_api, width=1280) as page:
        page.on("request", lambda r: requested.append(r.url))
        goto(page, f"{url}{path}?checkpoint={ck / 'evil.pt'}", title)
        settle(page)
        body = page.locator("body").inner_text()
        images = page.locator("img").evaluate_all("els => els.map(e => e.src)")
        name = path.strip("/") or "card"
        for width in (1280, 1920):
            _shot(page, f"markdown-{name}", width)
    assert not [u for u in requested if LEAK_HOST in u], "the browser requested the card's image"
    assert not [u for u in images if LEAK_HOST in u]
    if path == "/":
        flat = body.replace("\u2060", "")
        assert f"data {IMAGE}" in flat or f"fast {IMAGE}" in flat, "the recorded text is shown, as text"
