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

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/run.py` from anywhere
    sys.path.insert(0, str(ROOT))

from tests.browser.harness import (  # noqa: E402  (the browser tests' Chromium and server)
    launch,
    missing_browser,
    streamlit_server,
    wait_idle,
)

SETTLE_MS = 500
POLL_MS = 50
PAGE_TIMEOUT_S = 180.0
IDLE_RATIO_LIMIT = 1.3


def available() -> str | None:
    """None when the browser benchmark can run, else the reason it cannot."""
    return missing_browser()


def time_to_idle(context: Any, url: str) -> tuple[float, dict[str, Any]]:
    """Seconds from navigation until the page is idle (and stays so for SETTLE_MS)."""
    page = context.new_page()
    try:
        start = time.monotonic()
        page.goto(url, wait_until="commit", timeout=PAGE_TIMEOUT_S * 1000)
        waiting = time.monotonic()
        seconds, state = wait_idle(page, PAGE_TIMEOUT_S, SETTLE_MS, POLL_MS)
        return waiting - start + seconds, state
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
        browser = launch(pw)
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
