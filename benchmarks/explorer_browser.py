"""What the Excitation explorer page costs in a real Chromium, for several checkouts side by side in one run.

Made to compare the page before and after a front-end rewrite. Make a 'before' checkout of the landed main that
preceded the rewrite (commit 42965db) as a git worktree, then run both:

    git -C /work/main worktree add /tmp/explorer-before 42965db
    .venv/bin/python benchmarks/explorer_browser.py \\
        --checkout before=/tmp/explorer-before --checkout after=/work/main \\
        [--sessions 8] [--seconds 60] [--clicks 10] [--width 1280 --height 900] [--json OUT.json]
        [--data folder:PATH --query checkpoint=timm:legacy_seresnet50@random --query split=test --query view=classes]

(``git -C /work/main worktree remove /tmp/explorer-before`` removes the worktree afterwards.)

Each checkout is a directory holding ``app.py``. For each, one after another (never two servers at once), the script
starts ``sys.executable -m streamlit run app.py --server.headless true --server.port P --browser.gatherUsageStats
false`` in that directory (its own process group), with ``SENET_DATA=sample`` (the bundled 500 validation images),
``PYTHONPATH=<checkout>`` and ``SENET_RUNS`` pointing at an empty temporary directory; other inherited ``SENET_*``
variables are removed, so the app picks its own default checkpoint from the checkout. It then measures, in headless
Chromium (``/usr/bin/chromium``, ``--no-sandbox``) at ``--width`` x ``--height``:

1. the default view of ``/excitation`` once it has finished loading (first load on the fresh server, so a cold one):
   the page height (the largest ``scrollHeight`` of the document, ``[data-testid="stMain"]``, its block container and
   ``[data-testid="stAppViewContainer"]``), and per Plotly figure its traces, SVG elements and canvases, with the
   page's totals;
2. ``--clicks`` clicks on *Random*, one after another, each timed from the click to the complete page, with the CPU
   seconds the browser (the whole Chromium process tree) and the server (the streamlit process tree) spent on it;
3. ``--sessions`` concurrent sessions, each its own Chromium instance, all on ``/excitation``, clicking *Random*
   without pause for ``--seconds``: answers, latency p50/p95/max, errors, and the CPU the server and browsers spent.

When is a page complete? Every page gets an init script with a MutationObserver on the whole document. The app's
``data-test-script-state`` attribute (on ``[data-testid="stApp"]``, the one the project's browser tests read) gives
the script runs: an answer needs a run that *started after the click* and has ended (``notRunning``). Then: no
element left marked stale (``data-stale="true"``), no status widget (``[data-testid="stStatusWidget"]``) on the page,
every ``[data-testid="stPlotlyChart"]`` rendered (a ``.js-plotly-plot`` with its ``_fullLayout`` and ``.main-svg``),
and no DOM mutation for ``--quiet-ms`` (default 300). The time of the answer is the first frame painted after the
last DOM mutation (``requestAnimationFrame`` + ``setTimeout``), in the browser's own clock, minus the click event's
timestamp; the quiet wait itself is not counted in the wall time, but it is in the CPU window (idle, so it adds
little). Streamlit's status widget is *not* used for timing: with the project's ``toolbarMode = "minimal"`` it is never
rendered, and where it is rendered (toolbar shown) it appears only 500 ms into a run and leaves with a 200 ms
transition, often after the run has ended. Plotly charts are still being drawn for up to a second after the script
state says ``notRunning``, which is why the DOM must also settle.

CPU seconds are read from ``/proc/PID/stat`` (utime + stime + cutime + cstime, so that processes that ended and were
reaped inside a window still count) summed over a process tree, divided by ``SC_CLK_TCK``; the browser's tree is
every Chromium process this script started (Playwright's node driver is not counted). Errors: a Streamlit exception
element (``[data-testid="stException"]``) on the page after an answer, or no answer within ``--answer-timeout`` (60 s);
JavaScript errors in the page are counted beside them. If a checkout's server does not become healthy, or a phase
fails, its column says so (one line, with the server log's tail) and the script carries on with the next phase or
checkout. Servers and browsers are always stopped (try/finally, process groups, also on Ctrl-C and SIGTERM).

It is a benchmark, not a test: it asserts nothing and prints figures. The figures mean something only on an
otherwise idle machine: the browsers render on the same cores as the server.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-renderer-backgrounding",
                 "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows"]
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Installed before any of the page's scripts: script runs, the last DOM mutation, the first frame painted after it,
# the last click on a button labelled ...Random, and JavaScript errors, all in the browser's clock.
INIT_JS = r"""(() => {
  if (window.__bx) return;
  const w = window.__bx = {state: null, runs: [], lastMutation: 0, painted: 0, clickAt: -1, clicks: 0};
  const transition = (value, at) => {
    if (value === w.state) return;
    if (value === 'running') w.runs.push({start: at, end: null});
    else if ((value === 'notRunning' || value === 'compilationError') && w.runs.length
             && w.runs[w.runs.length - 1].end === null) w.runs[w.runs.length - 1].end = at;
    w.state = value;
    if (w.runs.length > 400) w.runs.splice(0, 200);
  };
  const markPaint = () => {
    const m = w.lastMutation;
    requestAnimationFrame(() => setTimeout(() => { if (w.lastMutation === m) w.painted = performance.now(); }, 0));
  };
  const onMutations = (records) => {
    const now = performance.now();
    w.lastMutation = now;
    // Each attribute record holds the value before its change; the value after change i is the old value of
    // record i+1, and the current value after the last one. So quick running -> notRunning pairs are not lost.
    const old = records.filter(r => r.type === 'attributes' && r.attributeName === 'data-test-script-state')
                       .map(r => r.oldValue);
    const app = document.querySelector('[data-testid="stApp"]');
    const current = app ? app.getAttribute('data-test-script-state') : null;
    for (const value of old.slice(1).concat([current])) transition(value, now);
    markPaint();
  };
  new MutationObserver(onMutations).observe(document, {subtree: true, childList: true, attributes: true,
                                                       characterData: true, attributeOldValue: true});
  document.addEventListener('click', (e) => {
    const b = e.target && e.target.closest ? e.target.closest('button') : null;
    if (b && /Random\s*$/.test(b.innerText.trim())) { w.clickAt = e.timeStamp; w.clicks += 1; }
  }, true);
})();"""

# null while the page is not complete for an answer to a click at `since`; else the answer's times.
COMPLETE_JS = r"""([since, quiet]) => {
  const w = window.__bx;
  if (!w) return null;
  const started = w.runs.filter(r => r.start >= since);
  if (!started.length) return null;
  const last = w.runs[w.runs.length - 1];
  if (last.end === null || w.state === 'running' || w.state === 'rerunRequested') return null;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return null;
  if (document.querySelector('[data-stale="true"]')) return null;
  for (const c of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    const gd = c.querySelector('.js-plotly-plot');
    if (!gd || !gd._fullLayout || !gd.querySelector('.main-svg')) return null;
  }
  const now = performance.now();
  if (now - w.lastMutation < quiet || w.painted < w.lastMutation) return null;
  return {done: Math.max(w.painted, last.end), runStart: started[0].start, runEnd: last.end, runs: started.length,
          exceptions: [...document.querySelectorAll('[data-testid="stException"]')]
                        .map(e => e.innerText.replace(/\s+/g, ' ').slice(0, 300))};
}"""

PAGE_JS = r"""() => {
  const q = (s) => document.querySelector(s);
  const candidates = {'document': document.documentElement, 'body': document.body,
                      'stMain': q('[data-testid="stMain"]'), 'section.main': q('section.main'),
                      'stMainBlockContainer': q('[data-testid="stMainBlockContainer"]'),
                      'stAppViewContainer': q('[data-testid="stAppViewContainer"]')};
  const heights = {};
  for (const [name, e] of Object.entries(candidates)) if (e) heights[name] = e.scrollHeight;
  const clean = (t) => (t || '').replace(/<[^>]*>/g, '').replace(/\s+/g, ' ').trim();
  const figures = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].map((c) => {
    const gd = c.querySelector('.js-plotly-plot');
    const text = (t) => (t && typeof t === 'object' ? t.text : t) || '';
    const layout = (gd && gd.layout) || {};
    let title = clean(text(layout.title));  // else the axis titles, so that the reader can tell the figure
    if (!title) title = [['x', layout.xaxis], ['y', layout.yaxis]].filter(([, a]) => a && clean(text(a.title)))
                          .map(([k, a]) => `${k}: ${clean(text(a.title))}`).join(', ');
    const types = gd && gd.data ? [...new Set(gd.data.map(t => t.type || 'scatter'))] : [];
    const box = c.getBoundingClientRect();
    return {title: title.slice(0, 60), traces: gd && gd.data ? gd.data.length : null, types,
            svg_elements: c.querySelectorAll('svg *').length, canvases: c.querySelectorAll('canvas').length,
            shown: c.getClientRects().length > 0, height_px: Math.round(box.height)};
  });
  const heap = performance.memory ? performance.memory.usedJSHeapSize : null;
  return {heights, figures,
          totals: {svg_elements: document.querySelectorAll('svg *').length,
                   canvases: document.querySelectorAll('canvas').length,
                   dom_elements: document.getElementsByTagName('*').length,
                   plotly_figures: figures.length,
                   plotly_traces: figures.reduce((s, f) => s + (f.traces || 0), 0),
                   dataframes: document.querySelectorAll('[data-testid="stDataFrame"]').length,
                   images: document.querySelectorAll('[data-testid="stImage"]').length,
                   img_elements: document.querySelectorAll('img').length,
                   vega_charts: document.querySelectorAll('[data-testid="stVegaLiteChart"]').length,
                   js_heap_mb: heap === null ? null : heap / 2 ** 20},
          url: location.pathname + location.search};
}"""


class PhaseError(RuntimeError):
    """A failure that ends one phase (or one checkout) and is reported in its column."""


# --------------------------------------------------------------------------- processes and CPU time
def _proc_table() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds incl. reaped children, comm) for every process visible in /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                data = f.read()
        except OSError:
            continue
        head, _, rest = data.rpartition(")")
        fields = rest.split()
        try:
            cpu = sum(int(x) for x in fields[11:15]) / CLK_TCK  # utime stime cutime cstime
            table[int(name)] = (int(fields[1]), cpu, head.partition("(")[2])
        except (IndexError, ValueError):
            continue
    return table


def _descendants(table: dict, roots: list[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen, todo = set(), [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += children.get(pid, [])
    return seen


def _is_chromium(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0]
    except OSError:
        return False
    return b"chrom" in Path(argv0.decode(errors="replace")).name.encode()


def cpu_now(server_pid: int | None) -> tuple[float, float]:
    """CPU seconds so far of (the server's process tree, every Chromium process tree this script started)."""
    table = _proc_table()
    mine = _descendants(table, [os.getpid()])
    server = _descendants(table, [server_pid]) if server_pid else set()
    chromium = {p for p in mine - server if _is_chromium(p)}
    roots = [p for p in chromium if table[p][0] not in chromium]
    browser = _descendants(table, roots)
    return sum(table[p][1] for p in server), sum(table[p][1] for p in browser)


def chromium_pids() -> list[int]:
    table = _proc_table()
    return sorted(p for p in _descendants(table, [os.getpid()]) if p != os.getpid() and _is_chromium(p))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run app.py`` in one checkout, in its own process group."""

    def __init__(self, checkout: Path, workdir: Path, data: str = "sample"):
        self.checkout = checkout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        runs = workdir / "runs"
        runs.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SENET_")}
        self.env.update(SENET_DATA=data, SENET_RUNS=str(runs), PYTHONPATH=str(checkout))
        self.log_path = workdir / "streamlit.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float) -> float:
        """Start the server and wait for its health check; returns the seconds that took."""
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                 "--server.port", str(self.port), "--browser.gatherUsageStats", "false"],
                cwd=self.checkout, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        start = time.perf_counter()
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise PhaseError(f"server exited with code {self.proc.returncode} before it was healthy; "
                                 f"log tail: {self.log_tail()}")
            if time.perf_counter() - start > timeout:
                raise PhaseError(f"server not healthy after {timeout:g} s; log tail: {self.log_tail()}")
            time.sleep(0.3)

    def log_tail(self, chars: int = 600) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(line.strip() for line in text[-chars:].splitlines() if line.strip()) or "(empty log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def package_origin(checkout: Path, env: dict) -> str:
    """Where the server's Python will import ``senet`` from (a check that PYTHONPATH picks the checkout)."""
    try:
        out = subprocess.run([sys.executable, "-c", "import senet, os; print(os.path.dirname(senet.__file__))"],
                             cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
        return out.stdout.strip() or f"(import failed: {out.stderr.strip().splitlines()[-1:]})"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(not checked: {exc})"


def git_describe(checkout: Path) -> str:
    try:
        head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=20).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=60).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return "(not a git checkout)"
    if not head:
        return "(not a git checkout)"
    return f"{head}" + (f" + {len(dirty)} changed tracked files (uncommitted)" if dirty else ", clean")


# --------------------------------------------------------------------------- the browser side
async def new_browser(pw):
    return await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


async def open_explorer(browser, url: str, args, js_errors: list[str]):
    """A fresh context and page on /excitation, complete; returns (context, page, load ms in the browser clock)."""
    context = await browser.new_context(viewport={"width": args.width, "height": args.height})
    await context.add_init_script(INIT_JS)
    page = await context.new_page()
    page.on("pageerror", lambda exc: js_errors.append(" ".join(str(exc).split())[:300]))
    try:
        query = "&".join(args.query or [])
        await page.goto(f"{url}/excitation" + (f"?{query}" if query else ""), wait_until="domcontentloaded",
                        timeout=args.load_timeout * 1000)
        handle = await page.wait_for_function(COMPLETE_JS, arg=[0, args.quiet_ms], timeout=args.load_timeout * 1000,
                                              polling=100)
    except Exception as exc:  # noqa: BLE001 -- playwright's errors; reported in the column
        await context.close()
        raise PhaseError(f"/excitation did not finish loading within {args.load_timeout:g} s "
                         f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    answer = await handle.json_value()
    return context, page, answer


@dataclass
class Answer:
    wall_ms: float | None          # click to the complete page; None: no answer within the timeout
    script_ms: float | None = None  # click to the end of the last script run
    runs: int = 0
    server_cpu_s: float | None = None
    browser_cpu_s: float | None = None
    exception: str | None = None


async def click_random(page, args, server_pid: int | None = None, measure_cpu: bool = False) -> Answer:
    """Click *Random* once and wait until the page is complete again."""
    button = page.get_by_role("button", name="Random")
    if not await button.count():
        shown = await page.locator('[data-testid="stException"]').all_inner_texts()
        raise PhaseError("no button named Random on the page" + (
            f"; the page shows an exception: {' '.join(shown[0].split())[:300]}" if shown else ""))
    before_clicks = await page.evaluate("() => window.__bx.clicks")
    cpu0 = cpu_now(server_pid) if measure_cpu else None
    try:
        await button.click(timeout=args.answer_timeout * 1000)
    except Exception as exc:  # noqa: BLE001
        raise PhaseError(f"could not click Random ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") \
            from None
    click_at, clicks = await page.evaluate("() => [window.__bx.clickAt, window.__bx.clicks]")
    if clicks <= before_clicks:
        raise PhaseError("the click on Random was not seen by the page")
    try:
        handle = await page.wait_for_function(COMPLETE_JS, arg=[click_at, args.quiet_ms],
                                              timeout=args.answer_timeout * 1000, polling=50)
    except Exception:  # noqa: BLE001 -- a timeout: counted as an error by the caller
        return Answer(wall_ms=None)
    done = await handle.json_value()
    answer = Answer(wall_ms=done["done"] - click_at, script_ms=done["runEnd"] - click_at, runs=done["runs"],
                    exception=done["exceptions"][0] if done["exceptions"] else None)
    if measure_cpu:
        cpu1 = cpu_now(server_pid)
        answer.server_cpu_s, answer.browser_cpu_s = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    return answer


async def measure_single(pw, url: str, server_pid: int, args, result: dict) -> None:
    """Phases 1 and 2: the default view (cold load) and --clicks sequential clicks, in one Chromium."""
    js_errors: list[str] = []
    browser = await new_browser(pw)
    try:
        result["chromium_version"] = browser.version
        cpu0 = cpu_now(server_pid)
        context, page, load = await open_explorer(browser, url, args, js_errors)
        cpu1 = cpu_now(server_pid)
        info = await page.evaluate(PAGE_JS)
        result["default_view"] = {
            "first_load_ms": load["done"], "first_load_runs": load["runs"],
            "first_load_server_cpu_s": cpu1[0] - cpu0[0], "first_load_browser_cpu_s": cpu1[1] - cpu0[1],
            "page_height_px": max(info["heights"].values()) if info["heights"] else None,
            "page_height_from": max(info["heights"], key=info["heights"].get) if info["heights"] else None,
            "heights_px": info["heights"], "figures": info["figures"], "totals": info["totals"], "url": info["url"],
            "exception": load["exceptions"][0] if load["exceptions"] else None}
        answers = []
        for _ in range(args.clicks):
            answers.append(await click_random(page, args, server_pid, measure_cpu=True))
        result["clicks"] = summarise_clicks(answers)
        result["clicks"]["js_errors"] = len(js_errors)
        result["clicks"]["js_error_messages"] = sorted(set(js_errors))[:5]
        await context.close()
    finally:
        await browser.close()


async def measure_concurrent(pw, url: str, server_pid: int, args, result: dict) -> None:
    """Phase 3: --sessions Chromium instances clicking Random without pause for --seconds."""
    js_errors: list[str] = []
    browsers = []
    try:
        opened_at = time.perf_counter()
        browsers = list(await asyncio.gather(*(new_browser(pw) for _ in range(args.sessions))))
        pages = await asyncio.gather(*(open_explorer(b, url, args, js_errors) for b in browsers))
        open_s = time.perf_counter() - opened_at
        answers: list[Answer] = []
        until = time.perf_counter() + args.seconds

        async def loop(page):
            while time.perf_counter() < until:
                answers.append(await click_random(page, args))

        cpu0 = cpu_now(server_pid)
        start = time.perf_counter()
        outcome = await asyncio.gather(*(loop(p) for _, p, _ in pages), return_exceptions=True)
        loop_s = time.perf_counter() - start
        cpu1 = cpu_now(server_pid)
        failed = [o for o in outcome if isinstance(o, BaseException)]
        walls = [a.wall_ms for a in answers if a.wall_ms is not None]
        result["concurrent"] = {
            "sessions": args.sessions, "browser_per_session": "own Chromium instance", "open_all_s": open_s,
            "loop_s": loop_s, "answers": len(walls),
            "latency_ms": {"p50": percentile(walls, 50), "p95": percentile(walls, 95),
                           "max": max(walls, default=None)},
            "errors": {"timeouts": sum(a.wall_ms is None for a in answers),
                       "exceptions": sum(a.exception is not None for a in answers),
                       "sessions_stopped": len(failed)},
            "error_messages": sorted({a.exception for a in answers if a.exception}
                                     | {str(f)[:300] for f in failed})[:5],
            "js_errors": len(js_errors), "js_error_messages": sorted(set(js_errors))[:5],
            "cpu_s": {"server": cpu1[0] - cpu0[0], "browsers": cpu1[1] - cpu0[1]}}
        result["concurrent"]["errors"]["total"] = sum(result["concurrent"]["errors"].values())
    finally:
        await asyncio.gather(*(b.close() for b in browsers), return_exceptions=True)


from load_excitation import percentile  # noqa: E402 -- the load benchmark's percentile (stdlib only)


def _med_max(values: list[float]) -> dict:
    return {"median": statistics.median(values) if values else None, "max": max(values, default=None)}


def summarise_clicks(answers: list[Answer]) -> dict:
    ok = [a for a in answers if a.wall_ms is not None]
    return {"clicks": len(answers), "answers": len(ok),
            "wall_ms": _med_max([a.wall_ms for a in ok]),
            "script_ms": _med_max([a.script_ms for a in ok]),
            "browser_cpu_s": _med_max([a.browser_cpu_s for a in ok]),
            "server_cpu_s": _med_max([a.server_cpu_s for a in ok]),
            "runs_per_answer_max": max((a.runs for a in ok), default=None),
            "errors": {"timeouts": len(answers) - len(ok), "exceptions": sum(a.exception is not None for a in ok)},
            "error_messages": sorted({a.exception for a in ok if a.exception})[:5],
            "per_click": [{"wall_ms": a.wall_ms, "script_ms": a.script_ms, "browser_cpu_s": a.browser_cpu_s,
                           "server_cpu_s": a.server_cpu_s, "runs": a.runs, "exception": a.exception}
                          for a in answers]}


async def measure_checkout(name: str, checkout: Path, args) -> dict:
    from playwright.async_api import async_playwright

    result: dict = {"name": name, "checkout": str(checkout), "git": git_describe(checkout), "errors": []}
    if not (checkout / "app.py").is_file():
        result["errors"].append(f"{checkout}/app.py: no such file")
        return result
    workdir = Path(tempfile.mkdtemp(prefix=f"explorer-browser-{name}-"))
    server = Server(checkout, workdir, args.data)
    result["senet_from"] = package_origin(checkout, server.env)
    result["server_log"] = str(server.log_path)
    try:
        result["server_healthy_s"] = server.start(args.server_timeout)
        async with async_playwright() as pw:
            phases = [("default view and clicks", measure_single)]
            if args.sessions:
                phases.append(("concurrent sessions", measure_concurrent))
            for label, phase in phases:
                try:
                    await phase(pw, server.url, server.proc.pid, args, result)
                except PhaseError as exc:
                    result["errors"].append(f"{label}: {exc}")
                    if server.proc.poll() is not None:
                        result["errors"].append(f"the server exited ({server.proc.returncode}); "
                                                f"log tail: {server.log_tail()}")
                        break
    except PhaseError as exc:
        result["errors"].append(str(exc))
    finally:
        server.stop()
        left = chromium_pids()  # browsers Playwright failed to close (only processes this script started)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if not result["errors"] and not args.keep_logs:  # a failed checkout keeps its server log for reading
        shutil.rmtree(workdir, ignore_errors=True)
        result.pop("server_log", None)
    return result


# --------------------------------------------------------------------------- the report
def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        nproc = str(len(os.sched_getaffinity(0)))
    try:
        import streamlit
        st_version = streamlit.__version__
    except ImportError:
        st_version = None
    return {"nproc": nproc, "cpu_model": model, "loadavg_at_start": os.getloadavg(),
            "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "python": platform.python_version(), "streamlit": st_version,
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def _get(d: dict, path: str):
    for key in path.split("."):
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _n(x, digits: int = 0, scale: float = 1.0) -> str:
    return "–" if x is None else f"{x * scale:,.{digits}f}"


def _pair(d: dict, base: str, digits: int = 0, scale: float = 1.0) -> str:
    m, x = _get(d, f"{base}.median"), _get(d, f"{base}.max")
    return "–" if m is None else f"{_n(m, digits, scale)} / {_n(x, digits, scale)}"


def table_rows(args) -> list[tuple[str, callable]]:
    """(label, function of a checkout's result -> cell) for the side-by-side table."""
    lat = lambda r: "–" if _get(r, "concurrent.latency_ms.p50") is None else (  # noqa: E731
        f"{_n(_get(r, 'concurrent.latency_ms.p50'))} / {_n(_get(r, 'concurrent.latency_ms.p95'))} / "
        f"{_n(_get(r, 'concurrent.latency_ms.max'))}")
    return [
        ("checkout", lambda r: r["checkout"]),
        ("git", lambda r: r.get("git", "–")),
        ("senet imported from", lambda r: r.get("senet_from", "–")),
        ("server healthy after (s)", lambda r: _n(r.get("server_healthy_s"), 1)),
        ("", None),
        (f"DEFAULT VIEW /excitation ({args.width}x{args.height})", None),
        ("first load, cold server (ms)", lambda r: _n(_get(r, "default_view.first_load_ms"))),
        ("  CPU in it: server / browser (s)", lambda r: "–" if _get(r, "default_view.first_load_ms") is None else
         f"{_n(_get(r, 'default_view.first_load_server_cpu_s'), 2)} / "
         f"{_n(_get(r, 'default_view.first_load_browser_cpu_s'), 2)}"),
        ("page height (px)", lambda r: _n(_get(r, "default_view.page_height_px"))),
        ("  measured on", lambda r: _get(r, "default_view.page_height_from") or "–"),
        ("Plotly figures / traces", lambda r: "–" if _get(r, "default_view.totals") is None else
         f"{_get(r, 'default_view.totals.plotly_figures')} / {_get(r, 'default_view.totals.plotly_traces')}"),
        ("SVG elements (whole page)", lambda r: _n(_get(r, "default_view.totals.svg_elements"))),
        ("canvases (whole page)", lambda r: _n(_get(r, "default_view.totals.canvases"))),
        ("DOM elements (whole page)", lambda r: _n(_get(r, "default_view.totals.dom_elements"))),
        ("dataframes / st.image elements / <img>", lambda r: "–" if _get(r, "default_view.totals") is None else
         f"{_get(r, 'default_view.totals.dataframes')} / {_get(r, 'default_view.totals.images')} / "
         f"{_get(r, 'default_view.totals.img_elements')}"),
        ("JS heap used (MiB)", lambda r: _n(_get(r, "default_view.totals.js_heap_mb"), 1)),
        ("exception on the page", lambda r: "–" if "default_view" not in r else
         ("yes" if _get(r, "default_view.exception") else "no")),
        ("", None),
        (f"{args.clicks} CLICKS ON RANDOM, one after another", None),
        ("answers / timeouts / exceptions", lambda r: "–" if "clicks" not in r else
         f"{_get(r, 'clicks.answers')} / {_get(r, 'clicks.errors.timeouts')} / "
         f"{_get(r, 'clicks.errors.exceptions')}"),
        ("wall, click to complete page: median / max (ms)", lambda r: _pair(r, "clicks.wall_ms")),
        ("  of which click to script end: median / max (ms)", lambda r: _pair(r, "clicks.script_ms")),
        ("browser CPU per click: median / max (s)", lambda r: _pair(r, "clicks.browser_cpu_s", 2)),
        ("server CPU per click: median / max (s)", lambda r: _pair(r, "clicks.server_cpu_s", 2)),
        ("script runs per answer (max)", lambda r: _n(_get(r, "clicks.runs_per_answer_max"))),
        ("JavaScript errors", lambda r: _n(_get(r, "clicks.js_errors"))),
        ("", None),
        (f"{args.sessions} SESSIONS AT ONCE x {args.seconds:g} s (own Chromium each)", None),
        ("answers", lambda r: _n(_get(r, "concurrent.answers"))),
        ("latency p50 / p95 / max (ms)", lat),
        ("errors: total (timeouts / exceptions / stopped)", lambda r: "–" if "concurrent" not in r else
         f"{_get(r, 'concurrent.errors.total')} ({_get(r, 'concurrent.errors.timeouts')} / "
         f"{_get(r, 'concurrent.errors.exceptions')} / {_get(r, 'concurrent.errors.sessions_stopped')})"),
        ("JavaScript errors", lambda r: _n(_get(r, "concurrent.js_errors"))),
        ("CPU in the loop: server / browsers (s)", lambda r: "–" if "concurrent" not in r else
         f"{_n(_get(r, 'concurrent.cpu_s.server'), 1)} / {_n(_get(r, 'concurrent.cpu_s.browsers'), 1)}"),
        ("loop wall (s) / sessions opened in (s)", lambda r: "–" if "concurrent" not in r else
         f"{_n(_get(r, 'concurrent.loop_s'), 1)} / {_n(_get(r, 'concurrent.open_all_s'), 1)}"),
    ]


def print_report(report: dict, args) -> None:
    m = report["machine"]
    results = report["checkouts"]
    print(f"\nExcitation explorer in Chromium · {m['date_utc']}")
    print(f"machine: nproc {m['nproc']}, {m['cpu_model']}, {m['memory_gib']} GiB · load average at start "
          + " ".join(f"{x:.2f}" for x in m["loadavg_at_start"]))
    print(f"Python {m['python']}, Streamlit {m['streamlit']}, Chromium "
          f"{next((r.get('chromium_version') for r in results if r.get('chromium_version')), '–')} (headless) · "
          f"server env SENET_DATA={args.data}, SENET_RUNS=<empty dir>, PYTHONPATH=<checkout> · "
          + (f"address /excitation?{'&'.join(args.query)} · " if args.query else "") +
          f"complete = script run ended + no stale element + every Plotly chart drawn + DOM quiet "
          f"{args.quiet_ms:g} ms (time = first paint after the last mutation)\n")
    rows = table_rows(args)
    cells = [[label] + ([] if fn is None else [str(fn(r)) for r in results]) for label, fn in rows]
    w0 = max(len(c[0]) for c in cells)
    widths = [max([len(r["name"])] + [len(c[i + 1]) for c in cells if len(c) > i + 1])
              for i, r in enumerate(results)]
    widths = [min(w, 60) for w in widths]
    print(" " * w0 + "  " + "  ".join(r["name"].rjust(w) for r, w in zip(results, widths)))
    for c in cells:
        if len(c) == 1:
            print(c[0])
            continue
        print(c[0].ljust(w0) + "  " + "  ".join((v if len(v) <= w else "…" + v[-(w - 1):]).rjust(w)
                                              for v, w in zip(c[1:], widths)))
    for r in results:
        figs = _get(r, "default_view.figures")
        if figs:
            print(f"\nfigures on the default view, {r['name']} (in page order; 'hidden' = in a tab not shown):")
            print(f"  {'#':>2}  {'traces':>6}  {'SVG el.':>7}  {'canvas':>6}  {'px high':>7}  title (trace types)")
            for i, f in enumerate(figs, 1):
                kinds = ",".join(f["types"])
                print(f"  {i:>2}  {_n(f['traces']):>6}  {f['svg_elements']:>7,}  {f['canvases']:>6}  "
                      f"{f['height_px']:>7}  {f['title'] or '(no title)'} ({kinds}){'' if f['shown'] else ' hidden'}")
    problems = [(r["name"], e) for r in results for e in r["errors"]]
    problems += [(r["name"], f"exception after a click: {e}") for r in results
                 for e in _get(r, "clicks.error_messages") or []]
    problems += [(r["name"], f"concurrent: {e}") for r in results for e in _get(r, "concurrent.error_messages") or []]
    problems += [(r["name"], f"JavaScript error: {e}") for r in results
                 for key in ("clicks", "concurrent") for e in _get(r, f"{key}.js_error_messages") or []]
    problems += [(r["name"], f"server log kept: {r['server_log']}") for r in results if r.get("server_log")]
    if problems:
        print("\nerrors:")
        for name, e in problems:
            print(f"  {name}: {e[:600]}")


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkout", action="append", required=True, metavar="NAME=DIR",
                    help="a checkout holding app.py, e.g. before=/tmp/explorer-before (repeat; measured in order)")
    ap.add_argument("--clicks", type=int, default=10, help="sequential clicks on Random (default 10)")
    ap.add_argument("--sessions", type=int, default=8, help="concurrent sessions, each its own Chromium (default 8; "
                                                            "0 skips the phase)")
    ap.add_argument("--seconds", type=float, default=60, help="how long the concurrent sessions click (default 60)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--quiet-ms", type=float, default=300, help="DOM quiet time that makes a page complete (300)")
    ap.add_argument("--answer-timeout", type=float, default=60, help="seconds before an answer is an error (60)")
    ap.add_argument("--load-timeout", type=float, default=300, help="seconds for a first page load (300)")
    ap.add_argument("--server-timeout", type=float, default=120, help="seconds for the server's health check (120)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (also kept after an error)")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    ap.add_argument("--data", default="sample", help="the servers' SENET_DATA (default sample), e.g. folder:PATH")
    ap.add_argument("--query", action="append", metavar="K=V", help="an address parameter of /excitation (repeat), "
                    "e.g. checkpoint=timm:legacy_seresnet50@random, split=test, view=classes")
    args = ap.parse_args(argv)
    checkouts = []
    for spec in args.checkout:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            ap.error(f"--checkout {spec!r}: expected NAME=DIR")
        checkouts.append((name, Path(path).expanduser().resolve()))
    if len({n for n, _ in checkouts}) != len(checkouts):
        ap.error("--checkout names must differ")
    if args.clicks < 0 or args.sessions < 0 or args.seconds <= 0:
        ap.error("--clicks and --sessions must be >= 0 and --seconds positive")
    if not CHROMIUM.is_file():
        ap.error(f"{CHROMIUM}: no Chromium")
    report = {"machine": machine(), "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "checkouts": []}
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM unwinds the finally blocks too
    interrupted = False
    try:
        for name, path in checkouts:
            print(f"measuring {name} ({path}) ...", file=sys.stderr, flush=True)
            result = asyncio.run(measure_checkout(name, path, args))
            report["checkouts"].append(result)
            for e in result["errors"]:
                print(f"  {name}: {e[:300]}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the server and browsers were stopped; the checkouts measured so far follow",
              file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    report["interrupted"] = interrupted
    if not report["checkouts"]:
        return 130
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    print_report(report, args)
    if args.json:
        print(f"\nfigures written to {args.json}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    raise SystemExit(main())
