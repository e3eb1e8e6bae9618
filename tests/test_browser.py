"""The app in a real browser: start `streamlit run app.py` on a free loopback port, open the home
page and every stage page that exists (ui.stages.STAGES) with a mixed English and Chinese text, and
check that each page finishes without an exception box or a browser console error. A screenshot
of each page goes to tests/artifacts/ (git-ignored) for a person to look at.

Needs Debian's `chromium` (driven by the `playwright` package; never `playwright install`).
Without it the test skips, except when CI is set: CI installs Chromium, so there it must run.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from ui.stages import STAGES

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
MIXED_TEXT = "The cat sat on the mat. 你好，世界！The cat sat on the"
PAGE_TIMEOUT_S = 120.0
SETTLE_MS = 600
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
# The frontend first probes "<page>/_stcore/health" and "<page>/_stcore/host-config" and falls
# back to the root: every non-root page logs these two harmless 404s.
BENIGN_404 = re.compile(r"/_stcore/(health|host-config)$")

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
    exceptions: [...document.querySelectorAll('[data-testid="stException"]')]
        .map(e => e.innerText.trim().slice(0, 800)),
    h1: [...document.querySelectorAll('h1')].map(e => e.innerText.trim()),
  };
}"""

HEIGHT_JS = """() => {
  let h = document.documentElement.scrollHeight;
  for (const s of ['[data-testid="stMain"]', '[data-testid="stAppViewContainer"]',
                   '[data-testid="stSidebarContent"]', '[data-testid="stMainBlockContainer"]']) {
    const el = document.querySelector(s);
    if (el) h = Math.max(h, el.scrollHeight);
  }
  return h;
}"""


def _require_browser() -> None:
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found (apt-get install -y chromium fonts-noto-cjk)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (requirements-dev.txt)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the browser test must run, but {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A Streamlit server on the real app (bundled model), stopped at the end."""
    _require_browser()
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("INSIDE_GPT_TEST_MODEL", None)
    log_path = ARTIFACTS / "streamlit.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
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
                pytest.fail(f"streamlit did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_idle(page: Any, timeout_s: float) -> dict:
    start, first_idle, state = time.monotonic(), None, {}
    while time.monotonic() - start < timeout_s:
        try:
            state = page.evaluate(STATE_JS)
        except Exception:  # navigation in progress
            state = {"app": False}
        idle = (
            state.get("app")
            and state["conn"] == "CONNECTED"
            and state["script"] == "notRunning"
            and state["skeletons"] == 0
            and not state["running"]
            and state["drawn"] == state["charts"]
        )
        if idle:
            first_idle = first_idle or time.monotonic()
            if (time.monotonic() - first_idle) * 1000 >= SETTLE_MS:
                return state
        else:
            first_idle = None
        page.wait_for_timeout(150)
    raise AssertionError(f"page not idle after {timeout_s:.0f}s: {state}")


def _visit(context: Any, base: str, path: str, query: dict[str, str], name: str) -> dict:
    """Open one page, wait until it is idle, screenshot it; return its state and errors."""
    errors: list[str] = []
    page = context.new_page()

    def on_console(msg: Any) -> None:
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        if "Failed to load resource" in msg.text and "404" in msg.text:
            if BENIGN_404.search(where.split("?")[0]) and path:
                return
        errors.append(f"{msg.text[:300]} <- {where}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {str(e)[:300]}"))
    url = f"{base}/{path}?{urlencode(query)}"
    page.goto(url, wait_until="domcontentloaded", timeout=PAGE_TIMEOUT_S * 1000)
    state = _wait_idle(page, PAGE_TIMEOUT_S)
    height = page.evaluate(HEIGHT_JS)
    if height > 900:
        page.set_viewport_size({"width": 1400, "height": min(height, 9000)})
        state = _wait_idle(page, 30)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    state["errors"] = errors
    state["url"] = page.url
    page.close()
    return state


def test_every_page_renders_in_chromium_without_errors(server: str) -> None:
    from playwright.sync_api import sync_playwright

    stages = [s for s in STAGES if (ROOT / s.path).is_file()]
    query = {"text": MIXED_TEXT}
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        try:
            visits = [("", "0_home", None)]
            visits += [(s.url_path, f"{s.number}_{s.id}", s) for s in stages]
            for path, name, stage in visits:
                state = _visit(context, server, path, query, name)
                label = path or "home"
                if state["exceptions"]:
                    problems.append(f"{label}: exception box: {state['exceptions']}")
                if state["errors"]:
                    problems.append(f"{label}: console errors: {state['errors']}")
                expected_h1 = f"{stage.number} · " if stage else "Inside GPT"
                if not any(expected_h1 in h for h in state["h1"]):
                    problems.append(f"{label}: no heading with {expected_h1!r}: {state['h1']}")
                if "text=" not in state["url"]:
                    problems.append(f"{label}: the URL lost the text: {state['url']}")
            # A deep link opens exactly that view and keeps it in the URL.
            deep = _visit(
                context,
                server,
                "Attention",
                {"text": MIXED_TEXT, "layer": "1", "head": "2", "pos": "3"},
                "3_attention_deep_link",
            )
            assert not deep["exceptions"], deep["exceptions"]
            assert any("layer 1" in h for h in deep["h1"]), deep["h1"]
            assert "head=2" in deep["url"] and "pos=3" in deep["url"], deep["url"]
        finally:
            context.close()
            browser.close()
    assert not problems, "\n".join(problems)
    for name in ["0_home", *[f"{s.number}_{s.id}" for s in stages]]:
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
