"""Demo mode's second round (issue 29, class 3): what a public demo still let a visitor do, each tried on the real
code paths -- the policy, ``senet.data``, and the dashboard through AppTest. (Browser checks of the same classes:
``test_demo_leaks_browser.py``.)

1. a model listed in ``SENET_DEMO_MODELS`` is built exactly as listed (one canonical spelling);
2. no download behind any data spec, even when CIFAR's folder exists but is incomplete;
3. the class profiles count against the budget like every split-wide computation;
4. listings (shipped checkpoints, runs, studies) do not follow symlinks out of their roots;
5. one canonical spelling of a data path for every cache and prepared result;
6. error details off for visitors;
7. card and class text shown as text, never as markdown.
"""
from __future__ import annotations

import html
import os
import shutil
from pathlib import Path

import pytest
import torch

import conftest
from conftest import app_environment, make_folder_dataset, texts

CLASSES = ("blue", "green", "red")


def one_line(messages: list[str], *needles: str) -> str:
    hits = [m for m in messages if all(n in m for n in needles)]
    assert len(hits) == 1, f"expected one message with {needles}, got {messages}"
    assert "\n" not in hits[0], hits[0]
    return hits[0]


def policy(**env):
    from senet_dashboard.demo import DemoPolicy

    return DemoPolicy.from_env({"SENET_DEMO": "1", **env})


def save(path: Path, classes=CLASSES, **meta) -> Path:
    from senet import create_model, save_checkpoint

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, create_model("se_resnet20", num_classes=len(classes)), model_name="se_resnet20",
                    model_options={"num_classes": len(classes), "reduction": 16}, classes=tuple(classes),
                    val_acc=0.5, history=[{"epoch": 1, "train_loss": 1.2, "train_acc": 0.3, "val_loss": 1.1,
                                           "val_acc": 0.4, "lr": 0.1}], **meta)
    return path


# --------------------------------------------------------------------------- 1. listed models, exactly as listed
def test_a_listed_model_passes_only_in_its_listed_spelling():
    p = policy(SENET_DEMO_MODELS="torchvision:mobilenet_v3_small, timm:seresnet50@RANDOM")
    assert p.models == ("torchvision:mobilenet_v3_small", "timm:seresnet50@random"), "listed canonically"
    assert p.model_refusal("torchvision:mobilenet_v3_small") is None
    assert p.model_refusal("  torchvision:mobilenet_v3_small ") is None, "spaces around a name are no new model"
    for other in ("torchvision:mobilenet_v3_small@IMAGENET1K_V1", "torchvision:mobilenet_v3_small@random",
                  "torchvision:mobilenet_v3_small@RANDOM", "torchvision:mobilenet_v3_small@ random",
                  "torchvision:mobilenet_v3_small_x", "timm:seresnet50"):
        why = p.model_refusal(other)
        assert why and "\n" not in why and other in why and "exactly as listed" in why, (other, why)
    for spelling in ("timm:seresnet50@random", "timm:seresnet50@RANDOM", "timm:seresnet50@ random",
                     "timm:seresnet50@None"):
        assert p.model_refusal(spelling) is None, f"{spelling}: the listed model in another spelling"
    from senet_dashboard.demo import DemoConfigError

    with pytest.raises(DemoConfigError, match="SENET_DEMO_MODELS"):
        policy(SENET_DEMO_MODELS="keras:resnet50")


def test_each_spelling_of_a_served_model_builds_one_copy_and_other_tags_none(tmp_path, monkeypatch):
    """Links naming the listed model as @RANDOM, '@ random' and @random build it once; its pretrained weights
    (another tag) are refused before anything is built or fetched."""
    from senet_dashboard.views import _loaders as ui

    ck = save(tmp_path / "ck" / "se_resnet20.pt")
    built: list[str] = []
    original = ui._load_checkpoint

    def load(path, mtime):
        if path.startswith("torchvision:"):
            built.append(path)
        return original(path, mtime)

    original.clear()  # Streamlit's cache of built models: each key below is built anew
    monkeypatch.setattr(ui, "_load_checkpoint", load)
    with app_environment(ck.parent, tmp_path / "runs", "sample", tmp_path / "data", SENET_DEMO="1",
                         SENET_DEMO_MODELS="torchvision:mobilenet_v3_small@random"):
        for spelling in ("torchvision:mobilenet_v3_small@RANDOM", "torchvision:mobilenet_v3_small@ random",
                         "torchvision:mobilenet_v3_small@random"):
            at = conftest.open_app(query={"checkpoint": spelling})
            assert not at.exception, [e.value for e in at.exception]
            assert at.sidebar.selectbox(key="checkpoint").value == "torchvision:mobilenet_v3_small@random"
        at = conftest.open_app(query={"checkpoint": "torchvision:mobilenet_v3_small@IMAGENET1K_V1"})
        one_line(texts(at.sidebar, "error"), "torchvision:mobilenet_v3_small@IMAGENET1K_V1", "exactly as listed")
        assert at.sidebar.selectbox(key="checkpoint").value == str(ck), "the refused link changed nothing"
    assert set(built) == {"torchvision:mobilenet_v3_small@random"}, f"one cache key, so one copy built: {built}"


# --------------------------------------------------------------------------- 2. no download behind any spec
@pytest.fixture
def no_network(monkeypatch):
    """Record any attempt of torchvision's CIFAR classes to download (and fail it, offline either way)."""
    import torchvision.datasets.cifar as cifar

    attempts: list[str] = []

    def refuse(url, *args, **kwargs):
        attempts.append(url)
        raise OSError("the test forbids downloads")

    monkeypatch.setattr(cifar, "download_and_extract_archive", refuse)
    return attempts


def incomplete_cifar(data_dir: Path) -> Path:
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "data_batch_1").write_bytes(b"\0" * 64)  # one of seven files: an interrupted unpack
    return data_dir


def test_an_incomplete_cifar_folder_is_refused_in_one_line_and_never_downloaded(tmp_path, no_network):
    from senet.data import DataError, cifar_complete, load_split
    from senet_dashboard.demo import DemoPolicy

    data_dir = incomplete_cifar(tmp_path / "data")
    assert not cifar_complete("cifar10", data_dir)
    p = DemoPolicy.from_env({"SENET_DEMO": "1"}, (), data_dir)
    why = p.data_refusal("cifar10")
    assert why and "\n" not in why and "downloads nothing" in why
    for spec in ("cifar10", "cifar100"):
        with pytest.raises(DataError) as refused:
            load_split(spec, "val", data_dir, download=False)
        assert "\n" not in str(refused.value) and spec in str(refused.value)
    assert not no_network, "download=False never calls torchvision's downloader"
    assert sorted(p.name for p in (data_dir / "cifar-10-batches-py").iterdir()) == ["data_batch_1"]


def test_the_dashboard_in_demo_mode_starts_no_download_for_an_incomplete_folder(tmp_path, no_network):
    data_dir = incomplete_cifar(tmp_path / "data")
    ck = save(tmp_path / "ck" / "se_resnet20.pt", classes=("airplane", "automobile", "bird", "cat", "deer", "dog",
                                                            "frog", "horse", "ship", "truck"))
    with app_environment(ck.parent, tmp_path / "runs", "cifar10", data_dir, SENET_DEMO="1"):
        for page in ("senet_dashboard/views/excitation.py", "senet_dashboard/views/confusion.py",
                     "senet_dashboard/views/home.py"):
            at = conftest.open_app(page)
            assert not at.exception, [e.value for e in at.exception]
            one_line(texts(at.sidebar, "error"), "cifar10", "downloads nothing")
        at = conftest.open_app(query={"data": "cifar100"})
        one_line(texts(at.sidebar, "error"), "data=cifar100", "downloads nothing")
    assert not no_network, f"a download was attempted: {no_network}"


# --------------------------------------------------------------------------- 3. class profiles inside the budget
@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    """A demo deployment: a served checkpoint and data (train 108 images, 36 per class), budget 100, plus a
    folder outside with a run, a study and a checkpoint that symlinks inside the roots point to."""
    tmp = tmp_path_factory.mktemp("leaks")
    served, outside = tmp / "served", tmp / "outside"
    ck = served / "checkpoints"
    save(ck / "se_resnet20.pt")
    data = served / "data"
    make_folder_dataset(data / "tiny", classes=CLASSES, per_class=40)
    runs, studies = served / "runs", served / "studies"
    runs.mkdir(parents=True)
    studies.mkdir(parents=True)
    # outside the roots: a checkpoint, a run whose log holds a secret, a study
    save(outside / "foreign.pt")
    (outside / "run").mkdir(parents=True)
    (outside / "run" / "config.json").write_text('{"model": "se_resnet20", "recipe": "fast", "epochs": 2}')
    (outside / "run" / "status.json").write_text('{"state": "stopped", "epoch": 1, "epochs": 2}')
    (outside / "run" / "train.log").write_text("OUTSIDE-RUN-SECRET\n")
    shutil.copy(outside / "foreign.pt", outside / "run" / "best.pt")
    (outside / "study").mkdir()
    (outside / "study" / "study.json").write_text("{}")
    (ck / "escape.pt").symlink_to(outside / "foreign.pt")
    (runs / "escape").symlink_to(outside / "run")
    (studies / "escape").symlink_to(outside / "study")
    env = {"SENET_DEMO": "1", "SENET_DEMO_DATA": str(data), "SENET_DEMO_BUDGET": "100",
           "SENET_STUDIES": str(studies)}
    with app_environment(ck, runs, f"folder:{data / 'tiny'}", tmp / "cache", **env):
        yield {"tmp": tmp, "ck": ck, "data": data, "runs": runs, "studies": studies, "outside": outside}


def test_class_profiles_count_against_the_budget(demo_site, monkeypatch):
    """200 train images per class (108 images here) is over a budget of 100: refused in one line, and the
    profiles are drawn from the most images per class that fit (25: 75 passes), never from 200."""
    from senet_dashboard.views import _explorer_cache as cache

    asked: list[int] = []
    original = cache.class_profiles

    def spy(checkpoint, data, per_class, **kwargs):
        asked.append(per_class)
        return original(checkpoint, data, per_class=per_class, **kwargs)

    monkeypatch.setattr(cache, "class_profiles", spy)
    at = conftest.open_app("senet_dashboard/views/excitation.py", query={"view": "classes"}, split="train")
    assert not at.exception, [e.value for e in at.exception]
    at.select_slider(key="exc_per_class").set_value(200).run()
    assert not at.exception, [e.value for e in at.exception]
    why = one_line(texts(at, "error"), "Class profiles of 200 train images per class", "budget of 100")
    assert "108 images" in why and "25 per class" in why, why
    assert at.select_slider(key="exc_per_class").value == 25
    assert asked and max(asked) <= 25, f"profiles were computed from {asked} images per class"
    monkeypatch.setenv("SENET_DEMO_BUDGET", "20")  # not even 10 per class (30 passes) fits: refused outright
    at = conftest.open_app("senet_dashboard/views/excitation.py", query={"view": "classes"}, split="train")
    one_line(texts(at, "error"), "Class profiles", "budget of 20")
    assert max(asked) <= 25


# --------------------------------------------------------------------------- 4. listings resolved like typed paths
def test_listings_do_not_follow_symlinks_out_of_their_roots(demo_site, monkeypatch):
    from senet_dashboard.catalog import discover_checkpoints
    from senet_dashboard.demo import DemoPolicy

    p = DemoPolicy.from_env(os.environ, (demo_site["ck"], demo_site["runs"], demo_site["studies"]))
    listed = {e.path.name for e in discover_checkpoints(demo_site["ck"], demo_site["runs"], listed=p.listed)}
    assert listed == {"se_resnet20.pt"}, listed
    assert len(discover_checkpoints(demo_site["ck"], demo_site["runs"])) == 3, "without the policy all are found"

    at = conftest.open_app("senet_dashboard/views/train.py")  # the Train page's runs
    assert not at.exception, [e.value for e in at.exception]
    everything = " ".join(_shown(at))
    assert "OUTSIDE-RUN-SECRET" not in everything and "escape" not in everything
    assert not any("escape" in str(o) for s in at.selectbox for o in s.options)
    assert not any("escape" in str(o) for o in at.sidebar.selectbox(key="checkpoint").options)
    at = conftest.open_app("senet_dashboard/views/compare.py")  # the studies
    at.segmented_control(key="compare_what").set_value("a study").run()
    assert not at.exception
    assert not any("escape" in str(o) for s in at.selectbox for o in s.options)
    monkeypatch.setenv("SENET_DEMO", "0")  # outside demo mode a link inside a root is listed as before
    at = conftest.open_app("senet_dashboard/views/train.py")
    assert "escape" in at.selectbox(key="train_run").options


def _shown(at) -> list[str]:
    """Every text, code block and table cell on an AppTest page."""
    out = [str(e.value) for kind in ("markdown", "caption", "code", "text", "info", "warning", "error")
           for e in getattr(at, kind)]
    return out + [frame.value.to_string() for frame in at.dataframe]


# --------------------------------------------------------------------------- 5. one spelling of a data path
def spellings(folder: Path) -> list[str]:
    parent, name = str(folder.parent), folder.name
    return [f"folder:{parent}/{name}", f"folder:{parent}/{name}/", f"folder:{parent}//{name}",
            f"folder:{parent}/./{name}"]


def test_every_spelling_of_a_data_path_is_one_source_for_the_caches(tmp_path):
    from senet import evaluate_checkpoint
    from senet.analysis.evaluate import has_cached_evaluation
    from senet.data import canonical_spec, load_split

    folder = make_folder_dataset(tmp_path / "tiny", classes=CLASSES, per_class=10)
    ck = save(tmp_path / "tiny.pt")
    cache, predictions = tmp_path / "cache", tmp_path / "predictions"
    specs = spellings(folder)
    assert {canonical_spec(s) for s in specs} == {f"folder:{folder}"}
    assert canonical_spec("folder:~/x") == f"folder:{Path('~/x').expanduser()}"
    assert canonical_spec(f"folder:{folder}/../tiny") == f"folder:{folder}/../tiny", "'..' is kept (symlinks)"
    for spec in specs:
        data = load_split(spec, "val", tmp_path, cache_dir=cache)
        assert data.source == f"folder:{folder}", "the dataset records the one spelling"
        evaluate_checkpoint(ck, spec, "val", tmp_path, cache_dir=predictions)
        assert has_cached_evaluation(ck, specs[0], "val", data, tmp_path, cache_dir=predictions)
    assert len(list(cache.glob("*.pt"))) == 1, sorted(p.name for p in cache.iterdir())
    assert len(list(predictions.glob("*.npz"))) == 1, sorted(p.name for p in predictions.iterdir())


def test_the_dashboard_keys_every_spelling_of_a_data_path_as_one(demo_site):
    from senet_dashboard.views import _loaders as ui

    tiny = demo_site["data"] / "tiny"
    keyed: list[str] = []
    original = ui._load_split

    def spy(spec, *args, **kwargs):
        keyed.append(spec)
        return original(spec, *args, **kwargs)

    for spec in spellings(tiny):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ui, "_load_split", spy)
            at = conftest.open_app("senet_dashboard/views/confusion.py", query={"data": spec})
        assert not at.exception and not at.sidebar.error, texts(at.sidebar, "error")
        linked = at.query_params["data"]
        assert (linked[0] if isinstance(linked, list) else linked) == f"folder:{tiny}", "the address, respelled"
    assert keyed and set(keyed) == {f"folder:{tiny}"}, set(keyed)


# --------------------------------------------------------------------------- 6. error details off for visitors
def test_demo_mode_turns_error_details_off_and_back(demo_site, monkeypatch):
    from streamlit import config

    configured = config.get_config_options()["client.showErrorDetails"].default_val  # "full"; streamlit.toml keeps it
    conftest.open_app()
    assert config.get_option("client.showErrorDetails") == "none"
    monkeypatch.setenv("SENET_DEMO_BUDGET", "lots")  # misconfigured: fails closed, details off too
    conftest.open_app()
    assert config.get_option("client.showErrorDetails") == "none"
    monkeypatch.setenv("SENET_DEMO", "0")
    conftest.open_app()
    assert config.get_option("client.showErrorDetails") == configured, "outside demo mode as configured"


# --------------------------------------------------------------------------- 7. card and class text as text
MARKDOWN_CLASSES = (":red[cat]", "$x^2$", "a_b_", "*bold*")  # valid folder names that markdown would render


def test_plain_shows_text_as_its_characters():
    from senet_dashboard.views._format import class_list, plain

    evil = "![x](http://example.invalid/x.png) :red[r] :material/home: $x$ <http://a.b> www.a.b c@d.e\n# h"
    shown = plain(evil)
    assert html.unescape(shown).replace("\u2060", "") == " ".join(evil.split()), "the same characters"
    for construct in ("![", "](", ":red[", ":material/", "$x$", "<http", "http:", "www.", "@d", "\n", "# "):
        assert construct not in shown, construct
    assert plain("se_resnet20 'a', b/c; 50%") == "se&#95;resnet20 'a', b/c; 50%"
    linked = plain("folder:/x/![i](http://e.v/i.png)", links_only=True)
    assert "![" not in linked and "](" not in linked and "folder:/x/" in linked and "http:" not in linked
    assert html.unescape(class_list(["a_b", "c"])) == "['a_b', 'c']"


def _rendered(at) -> list[str]:
    """The text of every element of the page that Streamlit renders as markdown, with metric values."""
    out = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader", "title", "header"):
        out += texts(at, kind)
    for m in at.metric:
        out += [m.proto.label, m.proto.body, m.proto.delta, m.proto.help]
    return out


def test_card_and_class_text_reach_no_page_as_markdown(tmp_path, monkeypatch):
    """A checkpoint whose recorded fields and class names are markdown (an image on another host, a colour
    directive, a formula, emphasis), on data whose class folders have the same names: every page shows them as
    text -- no element's markdown holds one of those constructs."""
    classes = sorted(MARKDOWN_CLASSES)
    image = "![pixel](http://example.invalid/leak.png)"
    ck = save(tmp_path / "ck" / "evil.pt", classes=classes, recipe=f"fast {image}", dataset=f"data {image}",
              hardware=f"gpu {image}", wall_time_s=12.0)
    data = make_folder_dataset(tmp_path / "data", classes=tuple(classes), per_class=12)
    constructs = ("![", "example.invalid", ":red[", "$x^2$", "*bold*", "a_b_")
    with app_environment(ck.parent, tmp_path / "runs", f"folder:{data}", tmp_path / "cache", SENET_DEMO="1",
                         SENET_DEMO_DATA=str(data), SENET_DEMO_BUDGET="100000"):
        for page, query in (("senet_dashboard/views/home.py", {}), ("senet_dashboard/views/confusion.py", {}),
                            ("senet_dashboard/views/excitation.py", {"view": "image"}),
                            ("senet_dashboard/views/excitation.py", {"view": "classes"}),
                            ("senet_dashboard/views/excitation.py", {"view": "channel"}),
                            ("senet_dashboard/views/excitation.py", {"view": "versus"})):
            at = conftest.open_app(page, query=query)
            assert not at.exception, (page, [e.value for e in at.exception])
            shown = _rendered(at)
            leaks = [(c, s) for s in shown for c in constructs if c in s]
            assert not leaks, (page, query, leaks[:5])
            prose = html.unescape(" ".join(shown)).replace("\u2060", "")
            if page.endswith("home.py"):
                assert f"data {image}" in prose, "the recorded dataset is shown, as text"
            else:
                assert any(c in prose for c in MARKDOWN_CLASSES), (page, query, "class names are shown, as text")
