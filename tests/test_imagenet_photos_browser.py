"""Another library's ImageNet SE model (``timm:legacy_seresnet50@random``: random weights, no download) on a small
folder of photos in ImageNet WordNet-id class folders, in a real browser: each class-level view of the Excitation
explorer (Classes, One channel, Map, Spread, Across the split with its ablation run, vs. its class) and the Confusion
explorer show their own content with no exception or error, the classes named readably (goldfish, not n01443537),
the SE blocks named as the paper names them (SE_2_1 ... SE_5_3), and the 5-way choice said; and the paper's Fig. 6
and Fig. 7 presets draw the paper's blocks and classes, at 1280 and 1920 px. Full-page screenshots under the browser
artifacts folder (imagenet-photos-<view>-<width>.png).

One dashboard and one browser page for the whole module. Skips (with the reason) when Chromium or Playwright is
missing, or when timm is not installed.
"""
from __future__ import annotations

import os
import re

import pytest

from browser_support import ARTIFACTS, CHROMIUM, chromium_page, dashboard, goto, no_exception, settle
from conftest import ROOT, make_photo_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.is_file():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("timm", reason="timm is not installed (the model under test is timm's legacy_seresnet50)")

MODEL = "timm:legacy_seresnet50@random"
# WordNet-id folders and the readable names the pages must show instead (sorted by id: the data's class order)
CLASSES = {"n01443537": "goldfish", "n02110958": "pug", "n02123045": "tabby", "n02690373": "airliner",
           "n09246464": "cliff"}
PHOTOS_PER_CLASS = 2  # the ablation over the split runs 35 passes of each photo
BLOCKS = [f"SE_{stage}_{block}" for stage, n in ((2, 3), (3, 4), (4, 6), (5, 3)) for block in range(1, n + 1)]
FIG6_BLOCKS = ["SE_2_3", "SE_3_4", "SE_4_6", "SE_5_1", "SE_5_2", "SE_5_3"]
FIG6_CLASSES = ["goldfish", "pug", "airliner", "cliff"]
FIVE_WAY = "each prediction is a 5-way choice"
HEIGHT = 1400  # the viewport while a page is used; a screenshot stretches it to the page's height
LONG = 300_000  # ms: the first page decodes the photos and profiles every class on a 2-core machine


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard over the photo folder (its test split alone) with its own caches; yields (URL, data source)."""
    tmp = tmp_path_factory.mktemp("imagenet-photos-browser")
    data = f"folder:{make_photo_folder(tmp / 'photos', tuple(CLASSES), PHOTOS_PER_CLASS, size=(400, 300))}"
    env = dict(os.environ, SENET_DATA=data, SENET_CHECKPOINTS=str(tmp / "checkpoints"),
               SENET_RUNS=str(tmp / "runs"), SENET_DATA_DIR=str(tmp / "cache"), SENET_STUDIES=str(tmp / "studies"),
               PYTHONPATH=str(ROOT))
    with dashboard(env, tmp / "streamlit.log") as url:
        yield url, data


@pytest.fixture(scope="module")
def page():
    """One Chromium page for every test of the module (each test sets its width)."""
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(sync_api, width=1280, height=HEIGHT) as shared:
        yield shared


def open_page(page, server, name: str, width: int, **query: str) -> None:
    """The page ``name`` for the model and the photos' test split at ``width`` px, its script finished."""
    url, data = server
    page.set_viewport_size({"width": width, "height": HEIGHT})
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    title = "Confusion explorer" if name == "confusion" else "Excitation explorer"
    goto(page, f"{url}/{name}?checkpoint={MODEL}&data={data}&split=test{extra}", title)


def wait_for(page, selector: str) -> None:
    """Until ``selector`` is shown (the first run of a view computes for minutes at most), then the script ends."""
    page.locator(selector).first.wait_for(timeout=LONG)
    settle(page)


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


@pytest.fixture(scope="module")
def ablation_tab(server, page):
    """A second tab (its own session) on the *Across the split* view with the gate ablation started by its Run
    button: it runs (minutes on 2 cores) while the other tests use the first tab."""
    tab = page.context.new_page()
    tab.set_default_timeout(60_000)
    open_page(tab, server, "excitation", 1280, view="split")
    explorer_shown_well(tab, "Across the split view")
    tab.get_by_role("button", name="Run").click()
    tab.locator('[data-testid="stProgress"]').first.wait_for(timeout=LONG)
    yield tab
    tab.close()


def shown_well(page, where: str) -> str:
    """No exception and no st.error on the page; the classes named readably: a WordNet id only beside its name.
    Returns the main area's text."""
    no_exception(page, where)
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert not errors.count(), f"{where}: the page shows an error: {errors.first.inner_text()[:300]}"
    text = main_text(page)
    for wnid, name in CLASSES.items():
        assert wnid not in text.replace(f"{name} ({wnid})", name), f"{where}: {wnid} shown instead of {name}"
    return text


def explorer_shown_well(page, where: str) -> str:
    """shown_well, the 5-way choice under the prediction, and the paper's block names in the block picker."""
    text = shown_well(page, where)
    top5 = page.get_by_text("Top 5, softmax probability").first.inner_text()
    assert FIVE_WAY in top5 and "goldfish" in top5, f"{where}: the prediction's caption: {top5!r}"
    picker = page.locator('[data-testid="stButtonGroup"]').filter(has_text="SE_2_1").first
    assert picker.inner_text().split() == BLOCKS, f"{where}: the block picker: {picker.inner_text()!r}"
    return text


def chart_texts(page, chart: str, part: str) -> list[str]:
    """The texts of ``part`` (a CSS selector inside the plotly SVG) of every chart under ``chart``."""
    return [t.strip() for t in page.locator(f"{chart} .js-plotly-plot {part}").all_text_contents()]


def shoot(page, name: str, width: int) -> None:
    """A full-page screenshot, the mouse off any button: Streamlit scrolls inside its main area, so the viewport is
    stretched to that area's height (at most 12,000 px)."""
    page.mouse.move(1, 1)  # no button's tooltip over the page
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": width, "height": max(HEIGHT, min(int(height), 12_000))})
    page.wait_for_timeout(800)  # plotly redraws on resize
    page.screenshot(path=str(ARTIFACTS / f"imagenet-photos-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": width, "height": HEIGHT})


def test_classes_view_draws_every_blocks_class_profiles(server, page):
    open_page(page, server, "excitation", 1280, view="classes")
    wait_for(page, ".st-key-exc_profiles_map .js-plotly-plot")
    explorer_shown_well(page, "Classes view")
    titles = chart_texts(page, ".st-key-exc_profiles_map", ".annotation-text")
    assert [t for t in titles if t in BLOCKS] == BLOCKS, f"a heatmap per block, in order: {titles}"
    rows = chart_texts(page, ".st-key-exc_profiles_map", ".ytick")
    assert any(name in r for r in rows for name in CLASSES.values()), f"rows named by class: {rows}"
    bars = chart_texts(page, ".st-key-exc_separation", ".xtick")
    assert bars == BLOCKS, f"specificity by depth, a bar pair per block: {bars}"
    shoot(page, "classes", 1280)


def test_split_views_run_button_starts_the_gate_ablation_with_its_progress(ablation_tab):
    text = ablation_tab.locator('[data-testid="stProgress"]').first.inner_text()
    passes = 1 + 2 * (len(BLOCKS) + 1)
    assert f"Ablating gates over {len(CLASSES) * PHOTOS_PER_CLASS} test images, {passes} passes" in text, text


def test_one_channel_view_shows_its_mean_gate_per_class(server, page):
    open_page(page, server, "excitation", 1280, view="channel")
    wait_for(page, ".st-key-exc_channel_classes .js-plotly-plot")
    text = explorer_shown_well(page, "One channel view")
    bars = set(chart_texts(page, ".st-key-exc_channel_classes", ".xtick"))
    assert set(CLASSES.values()) <= bars, f"a bar per class, named: {bars}"
    assert re.search(r"SE_5_3, channel \d+: mean gate per class", text), "the chart names the block and channel"
    shoot(page, "channel", 1280)


def test_map_view_places_the_sampled_images_by_their_gates(server, page):
    open_page(page, server, "excitation", 1280, view="map")
    wait_for(page, ".st-key-exc_map .js-plotly-plot")
    text = explorer_shown_well(page, "Map view")
    legend = chart_texts(page, ".st-key-exc_map", ".legendtext")
    assert set(CLASSES.values()) <= set(legend), f"points coloured by class, named: {legend}"
    n = len(CLASSES) * PHOTOS_PER_CLASS
    assert page.locator(".st-key-exc_map .js-plotly-plot .scatterlayer .point").count() >= n, "every sampled image"
    assert f"{n} sampled images of the test split" in text, "the caption counts every photo"
    assert "linear probe" in text, "the probe of class information is drawn"
    shoot(page, "map", 1280)


def test_spread_view_draws_the_blocks_gate_bands_and_saturation(server, page):
    open_page(page, server, "excitation", 1280, view="spread")
    wait_for(page, ".st-key-exc_saturation .js-plotly-plot")
    text = explorer_shown_well(page, "Spread view")
    titles = chart_texts(page, '[class*="st-key-exc_quantiles"]', ".gtitle")
    assert titles and titles[0].startswith("SE_5_3: each channel's gate over the"), titles
    assert re.search(r"over the \d+ sampled (goldfish|pug|tabby|airliner|cliff) images", titles[0]), titles
    assert chart_texts(page, ".st-key-exc_saturation", ".xtick") == BLOCKS, "saturation, a bar pair per block"
    assert "The paper's Fig. 7" in text
    shoot(page, "spread", 1280)


def test_versus_view_draws_this_image_against_its_class(server, page):
    open_page(page, server, "excitation", 1280, view="versus")
    wait_for(page, ".st-key-exc_difference .js-plotly-plot")
    text = explorer_shown_well(page, "vs. its class view")
    assert "This image against its class" in text
    titles = chart_texts(page, ".st-key-exc_difference", ".annotation-text")
    assert "SE_5_3: this image − goldfish (true) mean" in titles, f"the true class by name: {titles[-4:]}"
    assert "Largest departures from the goldfish mean" in text
    shoot(page, "versus", 1280)


def test_confusion_page_names_the_classes_and_says_the_5_way_choice(server, page):
    open_page(page, server, "confusion", 1280)
    wait_for(page, ".st-key-confusion_chart .js-plotly-plot")
    text = shown_well(page, "Confusion page")
    assert FIVE_WAY in text, "the 5-way choice is said"
    for axis in (".xtick", ".ytick"):
        ticks = set(chart_texts(page, ".st-key-confusion_chart", axis))
        assert ticks == set(CLASSES.values()), f"the matrix's {axis[1:]} labels: {ticks}"
    n = len(CLASSES) * PHOTOS_PER_CLASS
    assert re.search(rf"Images\s+{n}\b", text), "every photo evaluated"
    shoot(page, "confusion", 1280)


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_papers_fig6_preset(server, page, width):
    open_page(page, server, "excitation", width, view="classes")
    wait_for(page, ".st-key-exc_profiles_map .js-plotly-plot")
    page.get_by_role("button", name="The paper's Fig. 6").click()
    wait_for(page, ".st-key-exc_profiles .js-plotly-plot")
    explorer_shown_well(page, f"Fig. 6 at {width} px")
    caption = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="The paper's Fig. 6,").first
    words = caption.inner_text()
    assert words.startswith("The paper's Fig. 6, timm:legacy_seresnet50@random"), words
    assert "its six blocks" in words and "goldfish, pug, airliner, cliff" in words, words
    titles = chart_texts(page, ".st-key-exc_profiles", ".annotation-text")
    assert [t for t in titles if t.startswith("SE_")] == FIG6_BLOCKS, f"the paper's six blocks: {titles}"
    legend = chart_texts(page, ".st-key-exc_profiles", ".legendtext")
    assert [t for t in legend if t in CLASSES.values()] == FIG6_CLASSES, f"the paper's four classes: {legend}"
    assert page.get_by_role("button", name="Every block, channels as chosen").count() == 1, "and a way back"
    shoot(page, "fig6", width)


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_papers_fig7_preset(server, page, width):
    open_page(page, server, "excitation", width, view="spread")
    wait_for(page, ".st-key-exc_saturation .js-plotly-plot")
    page.get_by_role("button", name="The paper's Fig. 7").click()
    page.locator(".st-key-exc_quantiles_SE_5_2 .js-plotly-plot").wait_for(timeout=LONG)
    settle(page)
    explorer_shown_well(page, f"Fig. 7 at {width} px")
    caption = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="The paper's Fig. 7,").first
    words = caption.inner_text()
    assert words.startswith("The paper's Fig. 7, timm:legacy_seresnet50@random"), words
    assert "SE_5_2, SE_5_3" in words and "goldfish images" in words, words
    titles = chart_texts(page, '[class*="st-key-exc_quantiles"]', ".gtitle")
    assert len(titles) == 2 and titles[0].startswith("SE_5_2: goldfish") and titles[1].startswith("SE_5_3: goldfish"), \
        f"two charts, SE_5_2 and SE_5_3, for goldfish: {titles}"
    legend = chart_texts(page, '[class*="st-key-exc_quantiles"]', ".legendtext")
    assert "mean ± 1 std" in legend, f"mean and std, the paper's statistic: {legend}"
    shoot(page, "fig7", width)


def test_split_view_draws_the_gate_ablation_when_it_is_done(ablation_tab):
    """Last: the ablation started early has run meanwhile."""
    ablation_tab.bring_to_front()
    wait_for(ablation_tab, ".st-key-exc_split_chart .js-plotly-plot")
    text = explorer_shown_well(ablation_tab, "Across the split view, after Run")
    ticks = chart_texts(ablation_tab, ".st-key-exc_split_chart", ".xtick")
    assert set(BLOCKS) <= set(ticks), f"the ablation chart has a bar per block: {ticks}"
    assert ablation_tab.locator(".st-key-exc_split_chart .js-plotly-plot .bars .point").count() >= 2 * len(BLOCKS)
    assert "Switching a gate off" in text, "the caveat is said beside the figure"
    shoot(ablation_tab, "split", 1280)
