"""Shared plumbing of the browser tests: a dashboard server on a free port, a Chromium page, waiting for reruns."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard(env: dict, log_path: Path) -> Iterator[str]:
    """``streamlit run app.py`` with ``env``, healthy; yields its URL and stops it afterwards."""
    port = free_port()
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not become healthy; log: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def chromium_page(sync_api, width: int = 1440, height: int = 1600):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def settle(page, quiet_s: float = 1.0, timeout_s: float = 120) -> None:
    """Wait until Streamlit reports no running script for ``quiet_s`` seconds."""
    deadline = time.time() + timeout_s
    quiet_since = None
    while time.time() < deadline:
        state = page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state")
        if state != "notRunning":
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since >= quiet_s:
            return
        time.sleep(0.2)


def goto(page, url: str, title: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=title).first.wait_for()
    settle(page)


def outside_hosts(urls: list[str]) -> list[str]:
    """The requested addresses that are not on this machine's server."""
    return sorted({u for u in urls if urlparse(u).scheme in ("http", "https", "ws", "wss")
                   and urlparse(u).hostname not in ("127.0.0.1", "localhost")})


def no_exception(page, where: str) -> None:
    shown = page.locator('[data-testid="stException"]')
    if shown.count():
        raise AssertionError(f"{where}: the page shows an exception: {shown.first.inner_text()[:500]}")
