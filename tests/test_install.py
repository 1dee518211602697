"""``pip install .`` then ``senet dashboard``: the installed dashboard, started from any directory.

The slow tests build the wheel from a copy of the checkout, install it (non-editable, ``--no-deps``) into a fresh
venv whose dependencies come from this venv's site-packages through a ``.pth`` path (its editable finder is
not activated that way, so the wheel's copy is what gets imported), and start ``<venv>/bin/senet dashboard``
from a directory that is not the checkout. The fast tests check the argument validation and the command the
subcommand runs, with no server started.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
import torch

from browser_support import CHROMIUM, free_port
from conftest import ROOT, call_cli

HEALTH_WAIT_S = 90
CHECKPOINT_NAME = "tiny_installed"  # the file's stem: the sidebar's checkpoint label shows it
SENET_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "SENET_DATA", "SENET_DATA_DIR", "SENET_CHECKPOINTS",
             "SENET_RUNS", "SENET_STUDIES", "SENET_DEMO")


# --------------------------------------------------------------------------- fast: no server, no install
@pytest.mark.parametrize("argv, named", [
    (["--port", "0"], "--port"),
    (["--port", "abc"], "--port"),
    (["--port", "65536"], "--port"),
    (["--checkpoints", "{file}"], "--checkpoints"),
    (["--runs", "{file}"], "--runs"),
    (["--data-dir", "{file}"], "--data-dir"),
    (["--data", "imagenet"], "--data"),
], ids=["port-0", "port-abc", "port-65536", "checkpoints-file", "runs-file", "data-dir-file", "data-unknown"])
def test_bad_dashboard_arguments_are_one_line_errors_with_exit_2(tmp_path: Path, capsys, monkeypatch, argv,
                                                                  named) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    monkeypatch.chdir(tmp_path)
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))
    code, out, err = call_cli(capsys, "dashboard", *[a.format(file=a_file) for a in argv])
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "dashboard: error:" in err and named in err, err
    assert not started and not out


class _FakeStreamlit:
    """Stands in for the streamlit process: records the command and environment, exits at once."""
    calls: list = []

    def __init__(self, cmd, env=None, **kwargs) -> None:
        self.calls.append((cmd, env))

    def wait(self) -> int:
        return 0

    def poll(self) -> int:
        return 0


def test_dashboard_runs_the_installed_entry_script_with_absolute_folders(tmp_path: Path, capsys,
                                                                         monkeypatch) -> None:
    import senet_dashboard

    for key in SENET_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    _FakeStreamlit.calls = []
    monkeypatch.setattr(subprocess, "Popen", _FakeStreamlit)
    code, out, err = call_cli(capsys, "dashboard", "--port", "8123", "--host", "127.0.0.1", "--checkpoints",
                              "mine", "--data", "sample")
    assert code == 0, err
    (cmd, env), = _FakeStreamlit.calls
    app = Path(senet_dashboard.__file__).parent / "app.py"
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(app)]
    flags = dict(zip(cmd[5::2], cmd[6::2]))
    assert flags["--server.port"] == "8123" and flags["--server.address"] == "127.0.0.1"
    assert flags["--server.headless"] == "true"
    assert flags["--server.fileWatcherType"] == "none" and flags["--browser.gatherUsageStats"] == "false"
    assert env["SENET_CHECKPOINTS"] == str(tmp_path / "mine")
    assert env["SENET_RUNS"] == str(tmp_path / "runs") and env["SENET_DATA_DIR"] == str(tmp_path / "data")
    assert env["SENET_DATA"] == "sample"
    line, = out.strip().splitlines()
    assert line.startswith("senet dashboard: http://127.0.0.1:8123/ ") and f"{tmp_path / 'runs'} (none yet)" in line


def test_every_setting_of_streamlit_toml_becomes_a_flag() -> None:
    import tomllib

    from senet.cli import _streamlit_settings

    toml = ROOT / "senet_dashboard" / "streamlit.toml"
    flags = _streamlit_settings(toml)
    expected = {f"--{section}.{key}" for section, table in tomllib.loads(toml.read_text()).items() for key in table}
    assert set(flags[::2]) == expected
    assert (ROOT / ".streamlit" / "config.toml").resolve() == toml.resolve(), "the checkout's config is a link to it"


@pytest.mark.parametrize("missing", ["senet_dashboard", "streamlit"])
def test_a_missing_dashboard_or_streamlit_is_a_one_line_error(tmp_path: Path, capsys, monkeypatch, missing) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    monkeypatch.chdir(tmp_path)
    code, _, err = call_cli(capsys, "dashboard")
    assert code == 2 and len(err.strip().splitlines()) == 1 and missing in err, err


# --------------------------------------------------------------------------- slow: a wheel in a fresh venv
def _build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the checkout (its top-level files and both packages), so that the build's
    ``build/`` and ``*.egg-info`` land in ``tmp``, not in the checkout."""
    src = tmp / "src"
    src.mkdir()
    for p in ROOT.iterdir():
        if p.is_file():
            shutil.copy2(p, src / p.name)
    for package in ("senet", "senet_dashboard"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    offline = importlib.util.find_spec("setuptools") is not None  # else pip fetches it into an isolated build
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", str(tmp / "wheelhouse"),
           str(src)] + (["--no-build-isolation", "--no-index"] if offline else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    wheel, = (tmp / "wheelhouse").glob("senet_explorer-*.whl")
    return wheel


def _clean_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SENET_ENV}
    return dict(env, HOME=str(home), PYTHONNOUSERSITE="1", PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel installed into a fresh venv; its dependencies are this venv's, by path only."""
    tmp = tmp_path_factory.mktemp("install")
    wheel = _build_wheel(tmp)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                           "--no-cache-dir", str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))  # this venv's, in order
    (Path(site) / "senet_test_dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    (tmp / "home").mkdir()
    (tmp / "elsewhere").mkdir()
    return {"tmp": tmp, "wheel": wheel, "venv": venv, "python": python, "env": _clean_env(tmp / "home")}


def _tiny_checkpoint(folder: Path) -> Path:
    """As conftest's ``tiny_checkpoint``: an untrained se_resnet20 with three classes."""
    from senet import create_model, save_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    path = folder / f"{CHECKPOINT_NAME}.pt"
    save_checkpoint(path, create_model("se_resnet20", num_classes=3), model_name="se_resnet20",
                    model_options={"num_classes": 3, "reduction": 16}, classes=("blue", "green", "red"),
                    val_acc=0.5, history=[])
    return path


def _answers(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except OSError:
        return None


@contextlib.contextmanager
def _senet_dashboard(installed: dict, name: str):
    """``<venv>/bin/senet dashboard`` (default host: localhost) in a directory of its own (not the checkout),
    healthy; always stopped, with its whole process group."""
    tmp = installed["tmp"]
    work = tmp / name
    work.mkdir()
    checkpoints = _tiny_checkpoint(tmp / f"{name}-checkpoints").parent
    port = free_port()
    log_path = tmp / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(installed["venv"] / "bin" / "senet"), "dashboard", "--port", str(port),
                                 "--checkpoints", str(checkpoints), "--runs", str(tmp / f"{name}-runs"), "--data",
                                 "sample"],
                                cwd=work, env=installed["env"], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + HEALTH_WAIT_S
        while _answers(f"{url}/_stcore/health") != 200:
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"senet dashboard did not become healthy in {HEALTH_WAIT_S} s; "
                                     f"log: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": url, "port": port, "proc": proc, "log": log_path, "work": work}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(installed):
    with _senet_dashboard(installed, "served") as running:
        yield running


@pytest.mark.slow
def test_the_wheel_holds_the_dashboard_its_settings_the_sample_and_the_wordnet_ids(installed) -> None:
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    views = {f"senet_dashboard/views/{p.name}" for p in (ROOT / "senet_dashboard" / "views").glob("*.py")}
    needed = {"senet_dashboard/app.py", "senet_dashboard/streamlit.toml", "senet/data/cifar10-jpeg-val-sample.npz",
              "senet/data/imagenet-1k-wnids.txt", "senet/cli.py"} | views
    assert not needed - names, f"the wheel lacks {sorted(needed - names)}"


@pytest.mark.slow
def test_the_fresh_venv_imports_the_wheels_copy_not_the_checkout(installed) -> None:
    done = subprocess.run([str(installed["python"]), "-c",
                           "import senet_dashboard, senet, streamlit; print(senet_dashboard.__file__); "
                           "print(senet.__file__)"], cwd=installed["tmp"] / "elsewhere", env=installed["env"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    venv = installed["venv"].resolve()
    for path in done.stdout.split():
        assert Path(path).resolve().is_relative_to(venv), f"{path} is not the installed copy in {venv}"


@pytest.mark.slow
def test_senet_dashboard_serves_from_another_directory(installed, server) -> None:
    assert _answers(server["url"] + "/") == 200
    first = server["log"].read_text().splitlines()[0]
    assert first.startswith(f"senet dashboard: http://localhost:{server['port']}/ serving checkpoints "), first
    assert "data sample" in first
    streamlit = subprocess.run(["ps", "-ww", "-o", "args=", "--ppid", str(server["proc"].pid)], capture_output=True,
                               text=True).stdout
    app = installed["venv"].resolve().glob("lib/python*/site-packages/senet_dashboard/app.py")
    assert f"-m streamlit run {next(app)} " in streamlit, f"not the installed entry script: {streamlit!r}"


@pytest.mark.slow
@pytest.mark.browser
def test_the_model_card_renders_the_checkpoint_in_a_browser(server) -> None:
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from browser_support import chromium_page, goto, no_exception

    with chromium_page(sync_api) as page:
        goto(page, server["url"], "SENet Explorer")
        no_exception(page, "model card")
        main = page.locator('[data-testid="stMain"]')
        try:  # the card names the model and the checkpoint's file
            main.get_by_text("Model card · se_resnet20").first.wait_for(timeout=30_000)
            main.get_by_text(f"{CHECKPOINT_NAME}.pt").first.wait_for(timeout=30_000)
        except sync_api.TimeoutError:
            raise AssertionError(f"the model card of {CHECKPOINT_NAME}.pt is not shown; the page: "
                                 f"{main.inner_text()[:1500]!r}") from None
        no_exception(page, "model card")


@pytest.mark.slow
def test_sigterm_to_senet_dashboard_alone_stops_streamlit_too(server) -> None:
    """The last test of the module's server: a signal to ``senet`` only (not its group) is forwarded."""
    proc = server["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, server["log"].read_text()[-2000:]
    _assert_group_gone(proc.pid)
    assert _answers(server["url"] + "/_stcore/health") is None


@pytest.mark.slow
def test_ctrl_c_stops_senet_dashboard_cleanly(installed) -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole foreground group: senet and streamlit both get it."""
    with _senet_dashboard(installed, "interrupted") as running:
        proc = running["proc"]
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 0, running["log"].read_text()[-2000:]
        _assert_group_gone(proc.pid)
        assert "Traceback" not in running["log"].read_text()


def _assert_group_gone(pgid: int) -> None:
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of group {pgid} outlived senet dashboard")
