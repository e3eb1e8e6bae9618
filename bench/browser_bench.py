"""Browser benchmark: time until each app page is idle (all charts drawn) in Chromium, against a
floor page that shows one 256 x 256 plotly heatmap, in the same run.

Two Streamlit servers on loopback ports (the app, and bench/floor_app.py), one headless Debian
Chromium driven by playwright. Every page is visited once to fill the server's caches (model,
Trace, derived views), then `rounds` rounds visit the floor page and every app page in a fresh
browser tab each, in order. Time to idle = from `goto` until the page first reaches the idle
state (connected, script not running, no skeletons, every plotly chart has its SVG) and then
stays idle for SETTLE_MS.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SETTLE_MS = 500
POLL_MS = 50
PAGE_TIMEOUT_S = 180.0
IDLE_RATIO_LIMIT = 1.3

STATE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
  const drawn = charts.filter(c => c.querySelector('.js-plotly-plot .main-svg'));
  return {
    app: !!app,
    script: app ? app.getAttribute('data-test-script-state') : null,
    conn: app ? app.getAttribute('data-test-connection-state') : null,
    skeletons: document.querySelectorAll('[data-testid="stSkeleton"]').length,
    running: [...document.querySelectorAll('[data-testid="stStatusWidget"]')]
        .some(e => /running|stop/i.test(e.innerText)),
    charts: charts.length,
    drawn: drawn.length,
    exceptions: document.querySelectorAll('[data-testid="stException"]').length,
  };
}"""


def available() -> str | None:
    """None when the browser benchmark can run, else the reason it cannot."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (bench/requirements.txt)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def streamlit_server(script: str, log_path: Path) -> Iterator[str]:
    """`streamlit run script` on a free loopback port (1 torch thread); yields its base URL."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("INSIDE_GPT_TEST_MODEL", None)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                script,
                "--server.headless=true",
                "--server.address=127.0.0.1",
                f"--server.port={port}",
                "--browser.gatherUsageStats=false",
                "--server.fileWatcherType=none",
                "--server.runOnSave=false",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def time_to_idle(context: Any, url: str) -> tuple[float, dict[str, Any]]:
    """Seconds from navigation until the page is idle (and stays so for SETTLE_MS)."""
    page = context.new_page()
    try:
        start = time.monotonic()
        page.goto(url, wait_until="commit", timeout=PAGE_TIMEOUT_S * 1000)
        first_idle: float | None = None
        state: dict[str, Any] = {}
        while time.monotonic() - start < PAGE_TIMEOUT_S:
            try:
                state = page.evaluate(STATE_JS)
            except Exception:  # the document is being replaced
                state = {"app": False}
            idle = (
                state.get("app")
                and state["conn"] == "CONNECTED"
                and state["script"] == "notRunning"
                and state["skeletons"] == 0
                and not state["running"]
                and state["drawn"] == state["charts"]
            )
            now = time.monotonic()
            if idle:
                first_idle = first_idle or now
                if (now - first_idle) * 1000 >= SETTLE_MS:
                    return first_idle - start, state
            else:
                first_idle = None
            page.wait_for_timeout(POLL_MS)
        raise TimeoutError(f"{url} not idle after {PAGE_TIMEOUT_S:.0f} s: {state}")
    finally:
        page.close()


def measure_browser(text: str, rounds: int = 3, model: str = "bundled") -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from ui.stages import STAGES

    stages = [s for s in STAGES if (ROOT / s.path).is_file()]
    logs = Path(tempfile.gettempdir())
    query = urlencode({"text": text, "model": model})
    times: dict[str, list[float]] = {"floor": [], **{s.title: [] for s in stages}}
    charts: dict[str, int] = {}
    with (
        streamlit_server("app.py", logs / "bench-streamlit-app.log") as base,
        streamlit_server("bench/floor_app.py", logs / "bench-streamlit-floor.log") as floor,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        try:
            urls = {"floor": f"{floor}/"}
            urls.update({s.title: f"{base}/{s.url_path}?{query}" for s in stages})
            for url in urls.values():  # warm-up: server caches, browser caches
                time_to_idle(context, url)
            for _ in range(rounds):
                for name, url in urls.items():
                    seconds, state = time_to_idle(context, url)
                    times[name].append(seconds)
                    charts[name] = state["charts"]
        finally:
            context.close()
            browser.close()
    floor_times = times["floor"]
    pages = []
    for s in stages:
        t = times[s.title]
        ratio = statistics.median(x / f for x, f in zip(t, floor_times, strict=True))
        pages.append(
            {
                "title": s.title,
                "idle_median_s": statistics.median(t),
                "idle_s": t,
                "charts": charts.get(s.title, 0),
                "ratio_to_floor": ratio,
                "ok": ratio <= IDLE_RATIO_LIMIT,
            }
        )
    return {
        "floor_median_s": statistics.median(floor_times),
        "floor_s": floor_times,
        "pages": pages,
    }
