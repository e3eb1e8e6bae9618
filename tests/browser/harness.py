"""Driving the app in a real browser, shared by the browser tests (tests/browser/) and the
browser benchmark (bench/browser_bench.py): Debian's Chromium through playwright (never
`playwright install`: it downloads), a Streamlit server on a free loopback port, and the wait
until a page is idle (connected, script not running, no skeletons, every plotly chart drawn).
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"  # screenshots of the browser tests (git-ignored)
PAGE_TIMEOUT_S = 120.0  # the browser tests' limit for one page to become idle
SETTLE_MS = 600  # how long a page must stay idle to count as finished (browser tests)
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Headless flags for this closed network: without the background-networking ones Chromium keeps
# trying to reach Google's hosts.
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

# What does not fit the page: a display formula wider than its box (KaTeX scrolls it, so the
# end is hidden; 2 px of its own padding always overflow), a sidebar link whose label is longer
# than its box (Streamlit ends it in "…"; a collapsed sidebar's links have no width and are
# skipped), a button's label cut the same way (the walk's "Next: …" in Chinese at 1024 px), a
# chart title, subplot title, axis title or legend entry that reaches past its
# chart's sides or top (plotly cuts it at the edge), two panel titles drawn over each other
# (the dropout page's three panels in Chinese at 1024 px: "…恒等映射训练模式…"), and a chart
# title drawn over a panel title or the legend.
FIT_JS = """() => {
  const cut = [];
  const links = '[data-testid="stSidebar"] [data-testid="stPageLink-NavLink"]';
  for (const label of document.querySelectorAll(`${links} [data-testid="stMarkdownContainer"]`)) {
    const box = label.parentElement;  // the span that clips the label
    if (box.clientWidth && box.scrollWidth > box.clientWidth + 1)
      cut.push(`sidebar link cut: ${label.innerText.slice(0, 80)}`);
  }
  for (const label of document.querySelectorAll('button [data-testid="stMarkdownContainer"]')) {
    if (label.clientWidth && label.scrollWidth > label.clientWidth + 1)
      cut.push(`button label cut: ${label.innerText.slice(0, 80)}`);
  }
  for (const d of document.querySelectorAll('.katex-display')) {
    if (d.scrollWidth > d.clientWidth + 2)
      cut.push(`formula ${d.scrollWidth - d.clientWidth} px too wide: `
               + d.querySelector('annotation')?.textContent.slice(0, 80));
  }
  for (const c of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    const svg = c.querySelector('.main-svg');
    if (!svg) continue;
    const box = svg.getBoundingClientRect();
    for (const t of c.querySelectorAll('.gtitle, .annotation-text, .g-xtitle, .g-ytitle')) {
      const r = t.getBoundingClientRect();
      if (r.width && (r.right > box.right + 1 || r.left < box.left - 1 || r.top < box.top - 1))
        cut.push(`chart title cut: ${t.textContent.slice(0, 80)}`);
    }
    for (const t of c.querySelectorAll('.legendtext')) {
      if (t.getBoundingClientRect().right > box.right + 1)
        cut.push(`legend entry cut: ${t.textContent.slice(0, 80)}`);
    }
    const notes = [...c.querySelectorAll('.annotation-text')]
      .map(t => [t.textContent.slice(0, 40), t.getBoundingClientRect()]);
    notes.forEach(([a, r], i) => notes.slice(i + 1).forEach(([b, s]) => {
      if (r.width && s.width && Math.min(r.bottom, s.bottom) - Math.max(r.top, s.top) > 4
          && Math.min(r.right, s.right) - Math.max(r.left, s.left) > 1)
        cut.push(`panel titles overlap: ${a} / ${b}`);
    }));
    const title = c.querySelector('.gtitle');
    if (!title) continue;
    const t = title.getBoundingClientRect();
    for (const o of c.querySelectorAll('.annotation-text, .legend')) {
      const r = o.getBoundingClientRect();  // text boxes may touch: 4 px of their line spacing
      if (r.width && Math.min(t.bottom, r.bottom) - Math.max(t.top, r.top) > 4
          && Math.min(t.right, r.right) > Math.max(t.left, r.left))
        cut.push(`title ${title.textContent.slice(0, 50)} over ${o.textContent.slice(0, 40)}`);
    }
  }
  return cut;
}"""

# Tables that scroll sideways: columns wider than the table's box (Streamlit's data grid draws
# its cells on a canvas, so the columns past the edge, and a header cut there, are only seen by
# scrolling). Each as "<its headers (the grid's accessible table)>: <overflow> px".
WIDE_TABLES_JS = """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')]
  .map(t => {
    const s = t.querySelector('.dvn-scroller');
    const headers = [...t.querySelectorAll('th')].map(h => h.innerText).join(' | ');
    return s && s.scrollWidth > s.clientWidth + 1
      ? `${headers.slice(0, 120)}: ${s.scrollWidth - s.clientWidth} px` : null;
  })
  .filter(x => x)"""

# The frontend first probes "<page>/_stcore/health" and "<page>/_stcore/host-config" and falls
# back to the root: every non-root page logs these two harmless 404s.
BENIGN_404 = re.compile(r"/_stcore/(health|host-config)$")


def missing_browser() -> str | None:
    """None when Chromium and playwright are there, else why the browser cannot run."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (apt-get install -y chromium fonts-noto-cjk)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (requirements-dev.txt)"
    return None


def launch(pw: Any) -> Any:
    """A headless Chromium (the Debian binary, CHROMIUM_FLAGS) from a sync_playwright()."""
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(proc: subprocess.Popen, base: str, log_path: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"streamlit did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.3)


@contextmanager
def streamlit_server(script: str, log_path: Path) -> Iterator[str]:
    """`streamlit run script` (relative to the repository root) on a free loopback port, one
    torch thread, the real models (INSIDE_GPT_TEST_MODEL unset); yields its base URL and stops
    it at the end. Raises RuntimeError (with the log's tail) if it is not healthy in 90 s."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("INSIDE_GPT_TEST_MODEL", None)
    flags = ["--server.headless=true", "--server.address=127.0.0.1", f"--server.port={port}"]
    flags += ["--browser.gatherUsageStats=false", "--server.fileWatcherType=none"]
    flags += ["--server.runOnSave=false"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script, *flags],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, base, log_path)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _is_idle(state: dict[str, Any]) -> bool:
    return bool(
        state.get("app")
        and state["conn"] == "CONNECTED"
        and state["script"] == "notRunning"
        and state["skeletons"] == 0
        and not state["running"]
        and state["drawn"] == state["charts"]
    )


def wait_idle(
    page: Any, timeout_s: float, settle_ms: float, poll_ms: float = 150
) -> tuple[float, dict[str, Any]]:
    """Poll `page` until it is idle and stays idle for `settle_ms`. Returns the seconds from the
    call until it first became idle (of that idle stretch) and its last state (STATE_JS).
    Raises TimeoutError after `timeout_s`."""
    start, first_idle, state = time.monotonic(), None, {}
    while time.monotonic() - start < timeout_s:
        try:
            state = page.evaluate(STATE_JS)
        except Exception:  # the document is being replaced
            state = {"app": False}
        now = time.monotonic()
        if _is_idle(state):
            first_idle = first_idle or now
            if (now - first_idle) * 1000 >= settle_ms:
                return first_idle - start, state
        else:
            first_idle = None
        page.wait_for_timeout(poll_ms)
    raise TimeoutError(f"page not idle after {timeout_s:.0f} s: {state}")


def layout_problems(state: dict[str, Any], label: str, width: int) -> list[str]:
    """What `visit` found wrong on a page, one line each, named `label`: an exception or a
    console error, something that does not fit `width` px (FIT_JS), a table that scrolls
    sideways (WIDE_TABLES_JS)."""
    problems = []
    if state["exceptions"] or state["errors"]:
        problems.append(f"{label}: {state['exceptions']} {state['errors']}")
    if state["cut"]:
        problems.append(f"{label}: does not fit {width} px: {state['cut']}")
    if state["wide_tables"]:
        problems.append(f"{label}: tables scroll sideways: {state['wide_tables']}")
    return problems


def visit(context: Any, base: str, path: str, query: dict[str, str], name: str) -> dict:
    """Open one page (`path` under `base`, with `query`), wait until it is idle, screenshot it
    to ARTIFACTS/`name`.png (the whole page, at the context's width); return its state
    (STATE_JS) with the console errors (`errors`, the two benign 404s of a non-root page left
    out), what did not fit the viewport's width (`cut`, FIT_JS), the tables that scroll
    sideways (`wide_tables`, WIDE_TABLES_JS) and the final `url`."""
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
    _, state = wait_idle(page, PAGE_TIMEOUT_S, SETTLE_MS)
    cut = page.evaluate(FIT_JS)  # at the context's viewport, before the resize below
    wide_tables = page.evaluate(WIDE_TABLES_JS)
    height = page.evaluate(HEIGHT_JS)
    if height > 900:
        width = (page.viewport_size or {"width": 1400})["width"]
        page.set_viewport_size({"width": width, "height": min(height, 9000)})
        _, state = wait_idle(page, 30, SETTLE_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    state["errors"] = errors
    state["cut"] = cut
    state["wide_tables"] = wide_tables
    state["url"] = page.url
    page.close()
    return state
