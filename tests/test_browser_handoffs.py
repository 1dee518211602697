"""Hand-offs between pages, in a real browser: what the user chose must be what the next view shows.

``streamlit run app.py`` driven by Playwright with Debian's Chromium, over a folder dataset of the ten CIFAR-10
class names (random 32x32 images, 120 per class in train/ and in test/) and two small untrained checkpoints with
those classes: ``se_airnet.pt`` (the sidebar's default) and ``se_resnet20.pt``. Both record a validation size of
0.5, so their val split holds 600 images -- more than the bundled ``sample``'s 500, the default data source here.

* Confusion explorer -> "Explain in the Excitation explorer": the explorer opens on the checkpoint, data source
  and split chosen in the sidebar and on the picked image (the user report: it fell back to ``sample`` and the
  default checkpoint and said "image=... not an image index of the val split (0–499)").
* ``/excitation?checkpoint=...&data=...&split=...&image=N`` in a fresh browser session opens that.
* Compare: after a visit to the study view, the x-axis and log-scale controls and the charts agree; its "Model
  card" button opens the picked entry in the model card with the same data and split.

Everything is located by widget label or role; assertions are on what the page shows. Skips (with the reason)
when Chromium or Playwright is missing.
"""
from __future__ import annotations

import os
import re
import time
from urllib.parse import parse_qs, quote, urlencode, urlparse

import pytest
import torch

from browser_support import CHROMIUM, chromium_page, dashboard, goto, no_exception, settle
from conftest import ROOT, make_folder_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.is_file():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CHOSEN = "se_resnet20"  # the non-default checkpoint the user picks; se_airnet.pt is the default
PER_CLASS = 120
VAL_SIZE = 0.5  # recorded in both checkpoints: val = 600 of the 1200 training images


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard whose default data source is the bundled sample, with a folder dataset to type in."""
    from senet import create_model, save_checkpoint

    tmp = tmp_path_factory.mktemp("handoffs")
    data = make_folder_dataset(tmp / "data", classes=CIFAR10, per_class=PER_CLASS, test_split=True)
    checkpoints = tmp / "checkpoints"
    checkpoints.mkdir()
    history = [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.2 * e, "val_loss": 1.8 / e, "val_acc": 0.2 * e,
                "lr": 0.1, "elapsed_s": 40.0 * e} for e in (1, 2, 3)]
    for seed, name in enumerate(("se_airnet", CHOSEN)):
        torch.manual_seed(seed)
        save_checkpoint(checkpoints / f"{name}.pt", create_model(name, num_classes=len(CIFAR10)), model_name=name,
                        model_options={"num_classes": len(CIFAR10)}, classes=CIFAR10, val_acc=0.2,
                        config={"val_size": VAL_SIZE}, split_seed=0, history=history)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENET_")}  # no SENET_DATA: default is sample
    env.update(SENET_RUNS=str(tmp / "runs"), SENET_CHECKPOINTS=str(checkpoints), SENET_DATA_DIR=str(tmp / "cache"),
               SENET_STUDIES=str(tmp / "studies"), PYTHONPATH=str(ROOT))
    with dashboard(env, tmp / "streamlit.log") as url:
        yield {"url": url, "data": f"folder:{data}", "checkpoint": str(checkpoints / f"{CHOSEN}.pt")}


@pytest.fixture
def page(server):
    """A fresh Chromium (so a fresh Streamlit session) for each test."""
    with chromium_page(sync_api) as pg:
        yield pg


# --------------------------------------------------------------------------- what the sidebar shows
def _sidebar(page):
    return page.locator('[data-testid="stSidebar"]')


def _checkpoint_box(page):
    return _sidebar(page).get_by_role("combobox", name="Checkpoint")


def _data_field(page):
    return _sidebar(page).get_by_role("textbox", name="Data source")


def _split_shown(page) -> str:
    return _sidebar(page).get_by_role("radiogroup", name="Split").get_by_role("radio", checked=True).inner_text()


def _choose_in_sidebar(page, split: str, data: str) -> None:
    """The user's choices: the checkpoint, a folder typed into the data source, the split."""
    box = _checkpoint_box(page)
    box.click()
    page.get_by_role("option", name=re.compile(rf"^{CHOSEN}\b")).click()
    settle(page)
    field = _data_field(page)
    field.fill(data)
    field.press("Enter")
    settle(page)
    _sidebar(page).get_by_role("radiogroup", name="Split").get_by_role("radio", name=split, exact=True).click()
    settle(page)
    assert _checkpoint_box(page).input_value().startswith(CHOSEN), "could not choose the checkpoint"
    assert _data_field(page).input_value() == data and _split_shown(page) == split, "could not set data and split"


def _until_right(check, timeout_s: float = 10) -> list[str]:
    """``check()``'s list of what is wrong, polled until it is empty or ``timeout_s`` pass (the page can still be
    filling in a widget's value, or a fragment, just after the script settles); the last list."""
    deadline = time.time() + timeout_s
    while True:
        wrong = check()
        if not wrong or time.time() > deadline:
            return wrong
        time.sleep(0.5)


def _what_the_explorer_shows(page, split: str, data: str, image: int) -> list[str]:
    """Every way the Excitation explorer differs from the expected checkpoint, data, split and image."""
    wrong = []
    box = _checkpoint_box(page).input_value()
    if not box.startswith(CHOSEN):
        wrong.append(f"the sidebar's Checkpoint box shows {box!r}, not {CHOSEN}")
    field = _data_field(page).input_value()
    if field != data:
        wrong.append(f"the Data source field holds {field!r}, not {data!r}")
    shown = _split_shown(page)
    if shown != split:
        wrong.append(f"the Split is {shown!r}, not {split!r}")
    linked = parse_qs(urlparse(page.url).query).get("image")
    if linked != [str(image)]:
        wrong.append(f"the address names image={linked}, not image={image} ({page.url})")
    if not page.get_by_text(f"{split} image #{image} ·").count():
        captions = page.get_by_text(re.compile(r"\b(val|test|train) image #\d+ ·")).all_inner_texts()
        wrong.append(f"the caption is {captions or 'missing'}, not '{split} image #{image} · ...'")
    warning = page.get_by_text("not an image index")
    if warning.count():
        wrong.append(f"it warns: {warning.first.inner_text()!r}")
    return wrong


# --------------------------------------------------------------------------- (a) Confusion -> Explain
def _click_a_cell(page) -> int:
    """Click, as a user would, the fullest cell of the matrix's last row (true class truck: the last images of the
    split, positions past the sample's 500 in val, as in the user report); returns its image count."""
    chart = page.locator(".js-plotly-plot").first
    chart.wait_for()
    chart.scroll_into_view_if_needed()
    target = page.evaluate("""() => {
        const g = document.querySelector('.js-plotly-plot');
        const z = g.data[0].z, t = z.length - 1; let p = 0;
        for (let q = 0; q < z[t].length; q++) if (z[t][q] > z[t][p]) p = q;
        const xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis, box = g.getBoundingClientRect();
        return {t: t, p: p, n: z[t][p], x: box.left + xa._offset + xa.l2p(p), y: box.top + ya._offset + ya.l2p(t),
                names: g.data[0].x};
    }""")
    assert target["n"] > 0, "the confusion matrix's last row has no images"
    page.mouse.click(target["x"], target["y"])
    true_name, pred_name = target["names"][target["t"]], target["names"][target["p"]]
    were = " was" if target["n"] == 1 else "s were"
    page.get_by_text(f"{target['n']} {true_name} image{were} predicted {pred_name}").wait_for()
    settle(page)
    return target["n"]


def _pick_image(page) -> int:
    """In "See why: one of these images ...", pick the image with the highest position the list offers."""
    box = page.get_by_role("combobox", name=re.compile("^See why"))
    box.scroll_into_view_if_needed()
    box.click()
    options = page.get_by_role("option")
    options.first.wait_for()
    positions = [int(re.search(r"#(\d+)", text).group(1)) for text in options.all_inner_texts()]
    pick = max(positions)
    options.nth(positions.index(pick)).click()
    settle(page)
    assert re.search(rf"#{pick}\b", box.input_value()), f"could not pick image #{pick}: {box.input_value()!r}"
    return pick


@pytest.mark.parametrize("split", ["val", "test"])
def test_explain_opens_the_same_checkpoint_data_split_and_image(server, page, split):
    url, data = server["url"], server["data"]
    goto(page, url, "SENet Explorer")
    _choose_in_sidebar(page, split, data)
    _sidebar(page).get_by_role("link", name="Confusion explorer").click()
    page.get_by_role("heading", name="Confusion explorer").wait_for()
    settle(page)
    assert _checkpoint_box(page).input_value().startswith(CHOSEN) and _data_field(page).input_value() == data \
        and _split_shown(page) == split, "the sidebar's choices did not reach the Confusion explorer"
    no_exception(page, "confusion")
    _click_a_cell(page)
    image = _pick_image(page)

    page.get_by_role("button", name="Explain in the Excitation explorer").click()
    page.get_by_role("heading", name="Excitation explorer").wait_for()
    settle(page)
    no_exception(page, "excitation after Explain")
    wrong = _until_right(lambda: _what_the_explorer_shows(page, split, data, image))
    assert not wrong, (f"Explain on {split} image #{image} of {data} with {CHOSEN}: " + "; ".join(wrong))


# --------------------------------------------------------------------------- (b) the explorer's address
@pytest.mark.parametrize("split, image", [("val", 550), ("test", 1100)])
def test_an_excitation_link_opens_its_checkpoint_data_and_image(server, page, split, image):
    """A shared link, opened in a new browser session (image 550 of val lies past the sample's 500)."""
    url, data = server["url"], server["data"]
    query = urlencode({"checkpoint": server["checkpoint"], "data": data, "split": split, "image": image},
                      quote_via=quote)
    goto(page, f"{url}/excitation?{query}", "Excitation explorer")
    no_exception(page, "excitation from a link")
    wrong = _until_right(lambda: _what_the_explorer_shows(page, split, data, image))
    assert not wrong, f"/excitation?{query}: " + "; ".join(wrong)


# --------------------------------------------------------------------------- (c) Compare, after a study
LOSS_CHART = """() => {
    const g = [...document.querySelectorAll('.js-plotly-plot')].find(g => g._fullLayout && g._fullLayout.title
        && / loss/i.test(g._fullLayout.title.text) && !/per step/i.test(g._fullLayout.title.text));
    return g ? {title: g._fullLayout.title.text, x: g._fullLayout.xaxis.title.text, y: g._fullLayout.yaxis.type}
             : null;
}"""


def _compare_controls_and_chart(page) -> tuple[str, bool, dict]:
    x_axis = page.get_by_role("radiogroup", name="x axis").get_by_role("radio", checked=True).inner_text()
    log = page.get_by_role("switch", name="Log-scale loss").is_checked()
    page.wait_for_function(LOSS_CHART)
    return x_axis, log, page.evaluate(LOSS_CHART)


def _disagreements(x_axis: str, log: bool, chart: dict) -> list[str]:
    wrong = []
    if (x_axis == "training time") != str(chart["x"]).startswith("training time"):
        wrong.append(f"the x axis control says {x_axis!r} but {chart['title']!r} is drawn against {chart['x']!r}")
    if log != (chart["y"] == "log"):
        wrong.append(f"Log-scale loss is {'on' if log else 'off'} but {chart['title']!r} has a {chart['y']} y axis")
    return wrong


def test_compare_controls_and_charts_agree_after_a_study(server, page):
    goto(page, f"{server['url']}/compare", "Compare")
    page.get_by_role("radiogroup", name="x axis").get_by_role("radio", name="training time").click()
    settle(page)
    page.get_by_text("Log-scale loss", exact=True).click()  # the switch's label (the input itself is covered)
    settle(page)
    x_axis, log, chart = _compare_controls_and_chart(page)
    assert (x_axis, log) == ("training time", True), "could not set the x axis and the log scale"
    assert not _disagreements(x_axis, log, chart), _disagreements(x_axis, log, chart)

    page.get_by_role("radio", name="a study").click()
    settle(page)
    assert not page.get_by_role("radiogroup", name="x axis").count(), "the study view shows the curve controls"
    page.get_by_role("radio", name="runs and checkpoints").click()
    settle(page)
    no_exception(page, "compare after the study view")
    wrong = _until_right(lambda: _disagreements(*_compare_controls_and_chart(page)))
    assert not wrong, "back from the study view: " + "; ".join(wrong)


def test_compare_opens_a_compared_checkpoint_in_the_model_card_with_the_same_data(server, page):
    """Compare -> model card: the card opens on the entry picked in Compare; the data source and split stay."""
    goto(page, server["url"], "SENet Explorer")
    _choose_in_sidebar(page, "test", server["data"])
    default = _checkpoint_box(page)
    default.click()
    page.get_by_role("option", name=re.compile(r"^se_airnet\b")).click()  # back to the default checkpoint
    settle(page)
    _sidebar(page).get_by_role("link", name="Compare").click()  # the page's own navigation: the same session
    page.get_by_role("heading", name="Compare").first.wait_for()
    settle(page)
    picker = page.get_by_role("combobox", name="Open one of them in the model card")
    picker.click()
    page.get_by_role("option", name=re.compile(rf"{CHOSEN}")).first.click()
    settle(page)
    page.get_by_role("button", name="Model card").click()
    page.get_by_text(f"Model card · {CHOSEN}").first.wait_for()
    settle(page)
    no_exception(page, "model card after Compare")

    def wrong() -> list[str]:
        out = []
        if not _checkpoint_box(page).input_value().startswith(CHOSEN):
            out.append(f"the Checkpoint box shows {_checkpoint_box(page).input_value()!r}, not {CHOSEN}")
        if _data_field(page).input_value() != server["data"]:
            out.append(f"the Data source field holds {_data_field(page).input_value()!r}")
        if _split_shown(page) != "test":
            out.append(f"the split shown is {_split_shown(page)!r}, not test")
        query = parse_qs(urlparse(page.url).query)
        if query.get("checkpoint", [""])[0] != server["checkpoint"]:
            out.append(f"the address names checkpoint {query.get('checkpoint')}, not {server['checkpoint']}")
        return out

    problems = _until_right(wrong)
    assert not problems, "Compare -> model card: " + "; ".join(problems)
