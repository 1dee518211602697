"""Load on the Excitation explorer: N real browser sessions asking for new images at once.

Target (issue 18, on this 2-core CPU): 8 sessions on the default checkpoint's Excitation page, each clicking
*Random* in a loop; per-answer p95 under 2 s, no error, the server's memory bounded (one loaded model shared by
all sessions).

    python benchmarks/load_excitation.py [--sessions 8] [--seconds 60] [--data SPEC] [--json OUT.json]

It starts the dashboard itself (``streamlit run app.py`` on 127.0.0.1, a free port; nothing else is contacted),
opens one Chromium (``/usr/bin/chromium``, headless, ``--no-sandbox``) with a separate browser context, so a
separate Streamlit session, per simulated user, and stops the server when done (also on Ctrl-C or an error).

One *answer* is timed in the browser's own clock: from the click on *Random* (dispatched in the page) until a
script run that started after the click has finished (the app's ``data-test-script-state`` back to
``notRunning``) and stays finished for ``--quiet-ms``; the time is that of the finish, not of its detection. At
that point every element of the new run has been delivered and the previous run's have been removed, so the new
caption ("val image #N · true class ...") and charts are on the page. Errors: an exception box on the page, an
error alert, a JavaScript error, or no answer within ``--answer-timeout``. Memory: the resident set size of the
streamlit process (``/proc/PID/status``), sampled every 0.2 s: when healthy (before any session), after the first
session loaded the page (model, data and class profiles in memory), after all sessions loaded it, its peak during
the loop, and at the end. If each session loaded its own model, the second figure would grow by about the
model's size per extra session.

Sessions open in two steps: the first alone (the cold start: checkpoint, data and class profiles, measured as
"first page load"), then the others at once; the loop then runs all of them at the same time.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")

# Installed in every page: counts script runs and remembers when the app last became idle (browser clock).
OBSERVER_JS = """() => {
  if (window.__load) return;
  const w = window.__load = {runs: 0, lastRunAt: -1, idleAt: -1, state: null, log: []};
  const read = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app ? app.getAttribute('data-test-script-state') : null;
    if (state === w.state) return;
    const now = performance.now();
    if (state === 'running') { w.runs += 1; w.lastRunAt = now; }
    if (state === 'notRunning') w.idleAt = now;
    w.log.push([state, now]);
    if (w.log.length > 200) w.log.splice(0, 100);
    w.state = state;
  };
  new MutationObserver(read).observe(document.documentElement,
      {attributes: true, subtree: true, childList: true, attributeFilter: ['data-test-script-state']});
  read();
}"""
CAPTION_JS = """() => {
  const hit = [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
      .map(e => e.innerText).find(t => /image #\\d+ ·/.test(t));
  return hit || null;
}"""
CLICK_JS = """() => {
  const buttons = [...document.querySelectorAll('button')];
  const b = buttons.find(b => b.innerText.trim().endsWith('Random'));
  if (!b) return buttons.map(b => b.innerText.trim()).join(' | ');
  const t0 = performance.now();
  b.click();
  return t0;
}"""
HAS_RANDOM_JS = """() => window.__load.state === 'notRunning'
    && [...document.querySelectorAll('button')].some(b => b.innerText.trim().endsWith('Random'))"""
# True once a run started after t0 has finished and the app has stayed idle for quiet ms.
DONE_JS = """([t0, quiet]) => {
  const w = window.__load;
  return w.state === 'notRunning' && w.lastRunAt > t0 && w.idleAt > w.lastRunAt
      && performance.now() - w.idleAt >= quiet;
}"""
ERRORS_JS = """() => ({
  exceptions: [...document.querySelectorAll('[data-testid="stException"]')].map(e => e.innerText.slice(0, 300)),
  alerts: [...document.querySelectorAll('[data-testid="stAlertContentError"]')].map(e => e.innerText.slice(0, 300)),
})"""


# --------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MiB (Linux), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used so far) of a process from /proc, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(server_pid: int) -> tuple[float, float]:
    """CPU seconds used so far by the server, and by every other descendant of this process (the browser)."""
    stats = {int(p.name): _stat(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    children: dict[int, list[int]] = {}
    for pid, st in stats.items():
        if st:
            children.setdefault(st[0], []).append(pid)
    browser, todo = 0.0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        if pid == server_pid:
            continue
        browser += stats[pid][1] if stats.get(pid) else 0.0
        todo += children.get(pid, [])
    server = stats.get(server_pid)
    return (server[1] if server else 0.0), browser


class Server:
    """``streamlit run app.py`` on 127.0.0.1 in its own process group, with an RSS sampler."""

    def __init__(self, env: dict, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(self.port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not become healthy; log: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            value = rss_mb(self.proc.pid)
            if value is None:
                return
            self.samples.append((time.time(), value))
            self._stop.wait(0.2)

    def rss_now(self) -> float | None:
        return rss_mb(self.proc.pid)

    def peak_since(self, t: float) -> float | None:
        values = [v for ts, v in self.samples if ts >= t]
        return max(values) if values else None

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.log.close()


# --------------------------------------------------------------------------- one browser session
@dataclass
class Session:
    index: int
    load_s: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    same_image: int = 0
    runs_per_answer: list[int] = field(default_factory=list)   # script runs between click and answer
    first_run_ms: list[float | None] = field(default_factory=list)  # click to the first run's start
    timeouts: int = 0
    exceptions: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    js_errors: list[str] = field(default_factory=list)


async def open_page(browser, url: str, session: Session, timeout_s: float):
    context = await browser.new_context(viewport={"width": 1280, "height": 1400})
    page = await context.new_page()
    page.on("pageerror", lambda exc: session.js_errors.append(str(exc)[:300]))
    start = time.perf_counter()
    await page.goto(f"{url}/excitation", timeout=timeout_s * 1000)
    await page.evaluate(OBSERVER_JS)
    await page.wait_for_function(f"() => ({CAPTION_JS})() !== null && window.__load.state === 'notRunning'",
                                 timeout=timeout_s * 1000, polling=100)
    session.load_s = time.perf_counter() - start
    await check_errors(page, session)
    return context, page


async def check_errors(page, session: Session) -> None:
    found = await page.evaluate(ERRORS_JS)
    for kind in ("exceptions", "alerts"):
        seen = getattr(session, kind)
        seen.extend(m for m in found[kind] if m not in seen)


async def answer_loop(page, session: Session, until: float, quiet_ms: float, timeout_s: float) -> None:
    while time.time() < until:
        before = await page.evaluate(CAPTION_JS)
        try:  # the button is there once the app is idle; a moment's grace for a page still settling
            await page.wait_for_function(HAS_RANDOM_JS, timeout=5000, polling=100)
        except Exception:  # noqa: BLE001 -- reported below with the buttons the page has
            pass
        t0 = await page.evaluate(CLICK_JS)
        if isinstance(t0, str):
            session.exceptions.append(f"no Random button on the page (buttons: {t0[:200]}; caption: {before})")
            await check_errors(page, session)
            return
        try:
            await page.wait_for_function(DONE_JS, arg=[t0, quiet_ms], timeout=timeout_s * 1000, polling=25)
        except Exception:  # noqa: BLE001 -- playwright's TimeoutError: counted, the loop goes on
            session.timeouts += 1
            continue
        idle_at, log = await page.evaluate("() => [window.__load.idleAt, window.__load.log]")
        session.latencies_ms.append(idle_at - t0)
        after_click = [(state, at - t0) for state, at in log if at > t0]
        runs = [at for state, at in after_click if state == "running"]
        session.runs_per_answer.append(len(runs))
        session.first_run_ms.append(runs[0] if runs else None)
        after = await page.evaluate(CAPTION_JS)
        session.same_image += after == before
        await check_errors(page, session)


async def drive(args, url: str, server: Server, report: dict) -> list[Session]:
    from playwright.async_api import async_playwright

    sessions = [Session(i) for i in range(args.sessions)]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-renderer-backgrounding",
            "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows"])
        try:
            opened = [await open_page(browser, url, sessions[0], args.load_timeout)]
            report["rss_mb"]["after_first_session"] = server.rss_now()
            opened += await asyncio.gather(*(open_page(browser, url, s, args.load_timeout) for s in sessions[1:]))
            report["rss_mb"]["after_all_sessions"] = server.rss_now()
            loop_start = time.time()
            cpu_before = cpu_seconds(server.proc.pid)
            until = loop_start + args.seconds
            await asyncio.gather(*(answer_loop(page, s, until, args.quiet_ms, args.answer_timeout)
                                   for (_, page), s in zip(opened, sessions)))
            report["loop_s"] = time.time() - loop_start
            cpu_after = cpu_seconds(server.proc.pid)
            report["cpu_s_in_loop"] = {"server": cpu_after[0] - cpu_before[0],
                                       "browser": cpu_after[1] - cpu_before[1]}
            report["rss_mb"]["peak_in_loop"] = server.peak_since(loop_start)
            for context, _ in opened:
                await context.close()
        finally:
            await browser.close()
    return sessions


# --------------------------------------------------------------------------- report
def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between order statistics; None for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def model_bytes(path: Path) -> int | None:
    try:
        from senet import load_checkpoint

        model, _ = load_checkpoint(path)
    except Exception:  # noqa: BLE001 -- only a figure for the report
        return None
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def summarise(sessions: list[Session], report: dict) -> dict:
    latencies = [x for s in sessions for x in s.latencies_ms]
    report.update({
        "answers": len(latencies),
        "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                       "max": max(latencies, default=None),
                       "mean": statistics.fmean(latencies) if latencies else None},
        "answers_per_s": len(latencies) / report["loop_s"] if report.get("loop_s") else None,
        "same_image_answers": sum(s.same_image for s in sessions),
        "runs_per_answer": {"mean": statistics.fmean(runs) if (runs := [n for s in sessions
                                                                     for n in s.runs_per_answer]) else None,
                            "max": max(runs, default=None)},
        "click_to_run_start_ms_p50": percentile([x for s in sessions for x in s.first_run_ms if x is not None], 50),
        "errors": {"timeouts": sum(s.timeouts for s in sessions),
                   "exceptions": sorted({m for s in sessions for m in s.exceptions}),
                   "error_alerts": sorted({m for s in sessions for m in s.alerts}),
                   "js_errors": sorted({m for s in sessions for m in s.js_errors})},
        "page_load_s": {"first": sessions[0].load_s,
                        "others_max": max((s.load_s or 0 for s in sessions[1:]), default=None)},
        "per_session": [{"session": s.index, "answers": len(s.latencies_ms),
                         "p50_ms": percentile(s.latencies_ms, 50), "p95_ms": percentile(s.latencies_ms, 95)}
                        for s in sessions],
    })
    return report


def fmt(x: float | None, unit: str = "", digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}{unit}"


def print_report(r: dict) -> None:
    lat, mem, err = r["latency_ms"], r["rss_mb"], r["errors"]
    print(f"\n{r['sessions']} sessions × {r['seconds']:g} s on {r['url']}/excitation · checkpoint {r['checkpoint']} "
          f"· data {r['data']} · {r['cpus']} CPUs")
    print(f"answers: {r['answers']} ({fmt(r['answers_per_s'], '/s', 2)}; {r['same_image_answers']} repeated the "
          f"same image) · latency p50 {fmt(lat['p50'], ' ms')} · p95 {fmt(lat['p95'], ' ms')} · "
          f"max {fmt(lat['max'], ' ms')} · mean {fmt(lat['mean'], ' ms')}")
    print(f"script runs per answer: mean {fmt(r['runs_per_answer']['mean'], '', 2)}, max "
          f"{fmt(r['runs_per_answer']['max'])}; click to the first run's start: p50 "
          f"{fmt(r['click_to_run_start_ms_p50'], ' ms')}")
    problems = err["timeouts"] + len(err["exceptions"]) + len(err["error_alerts"]) + len(err["js_errors"])
    print(f"errors: {problems} (timeouts {err['timeouts']}, exceptions {len(err['exceptions'])}, "
          f"error alerts {len(err['error_alerts'])}, JS errors {len(err['js_errors'])})")
    for kind in ("exceptions", "error_alerts", "js_errors"):
        for m in err[kind][:5]:
            print(f"  {kind}: {' '.join(m.split())[:200]}")
    print(f"page load: first session {fmt(r['page_load_s']['first'], ' s', 1)} (cold), the other "
          f"{r['sessions'] - 1} at once: up to {fmt(r['page_load_s']['others_max'], ' s', 1)}")
    cpu = r.get("cpu_s_in_loop", {})
    print(f"CPU time in the loop ({fmt(r.get('loop_s'), ' s', 1)} of wall time, {r['cpus']} cores): server "
          f"{fmt(cpu.get('server'), ' s', 1)}, browser (all Chromium processes) {fmt(cpu.get('browser'), ' s', 1)}; "
          "the browser renders every answer on the same cores as the server")
    print(f"server RSS: healthy {fmt(mem['healthy'], ' MiB')} · after 1 session "
          f"{fmt(mem['after_first_session'], ' MiB')} · after {r['sessions']} "
          f"{fmt(mem['after_all_sessions'], ' MiB')}"
          f" · peak in the loop {fmt(mem['peak_in_loop'], ' MiB')} · end {fmt(mem['end'], ' MiB')}; "
          "the model's weights and buffers: "
          f"{fmt((r['model_bytes'] or 0) / 2**20 if r['model_bytes'] else None, ' MiB', 1)}")
    for s in r["per_session"]:
        print(f"  session {s['session']}: {s['answers']} answers, p50 {fmt(s['p50_ms'], ' ms')}, "
              f"p95 {fmt(s['p95_ms'], ' ms')}")


def default_checkpoint() -> Path | None:
    from senet_dashboard.catalog import default_entry, discover_checkpoints

    found = discover_checkpoints(os.environ.get("SENET_CHECKPOINTS", ROOT / "checkpoints"),
                                 os.environ.get("SENET_RUNS", ROOT / "runs"))
    entry = default_entry(found)
    return entry.path if entry else None


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=8, help="browser sessions at once (default 8)")
    ap.add_argument("--seconds", type=float, default=60, help="how long every session keeps asking (default 60)")
    ap.add_argument("--data", default=None, help="the data source (default $SENET_DATA, else the dashboard's own "
                                                 "default: cifar10 if downloaded, else sample)")
    ap.add_argument("--quiet-ms", type=float, default=250, help="how long the app must stay idle after a run "
                                                                "for the answer to count as complete (default 250)")
    ap.add_argument("--answer-timeout", type=float, default=60, help="seconds before an answer is an error")
    ap.add_argument("--load-timeout", type=float, default=300, help="seconds for a session's first page load")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if args.sessions < 1 or args.seconds <= 0:
        ap.error("--sessions must be at least 1 and --seconds positive")
    if not CHROMIUM.is_file():
        ap.error(f"{CHROMIUM}: no Chromium (apt-get install -y chromium)")
    sys.path.insert(0, str(ROOT))
    env = dict(os.environ)
    if args.data:
        env["SENET_DATA"] = args.data
    checkpoint = default_checkpoint()
    log = Path(tempfile.mkdtemp(prefix="senet-load-")) / "streamlit.log"
    server = Server(env, log)
    report = {"sessions": args.sessions, "seconds": args.seconds, "data": env.get("SENET_DATA", "(dashboard default)"),
              "checkpoint": str(checkpoint), "cpus": os.cpu_count(), "url": server.url, "server_log": str(log),
              "rss_mb": {}}
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM still stops the server
    try:
        server.wait_healthy()
        report["rss_mb"]["healthy"] = server.rss_now()
        sessions = asyncio.run(drive(args, server.url, server, report))
        report["rss_mb"]["end"] = server.rss_now()
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    report["model_bytes"] = model_bytes(checkpoint) if checkpoint else None
    summarise(sessions, report)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
