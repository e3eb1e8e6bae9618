"""Live training in a real browser on a real server: the section redraws itself while the model
trains (no click needed), Stop ends the run, and closing the tab ends a run within seconds
(the owner check through Streamlit's runtime). Without Chromium it skips, except in CI."""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.browser.harness import ARTIFACTS, launch, missing_browser, streamlit_server

pytestmark = [pytest.mark.browser]

STEP = re.compile(r"Training: step (\d+) of")


def _step(page) -> int:
    text = page.locator('[data-testid="stProgress"]').inner_text(timeout=60_000)
    match = STEP.search(text)
    return int(match.group(1)) if match else -1


def _wait_log(log_path, needle: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text()
        if needle in text:
            return text
        time.sleep(0.5)
    raise AssertionError(f"{needle!r} not in the server log: {log_path.read_text()[-2000:]}")


def test_live_training_in_the_browser() -> None:
    reason = missing_browser()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the browser test must run, but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    log_path = ARTIFACTS / "live_training_server.log"
    with streamlit_server("tests/browser/live_training_app.py", log_path) as base:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base, timeout=120_000)
            page.get_by_role("button", name="Train a tiny model").click(timeout=120_000)
            page.get_by_text("Training: step").wait_for(timeout=60_000)
            first = later = _step(page)
            # redrawn by the fragment every 2 s, without any click: a later step shows within
            # 20 s (a busy machine, two test runs at once, once took more than 4 s)
            deadline = time.monotonic() + 20
            while later <= first and time.monotonic() < deadline:
                time.sleep(1)
                later = _step(page)
            assert later > first >= 0, (first, later)
            page.get_by_role("button", name="Stop").click()
            page.get_by_text("Stopped after").wait_for(timeout=30_000)
            _wait_log(log_path, "ended: stopped", 30)

            page.get_by_role("button", name="Train a tiny model").click()
            page.get_by_text("Training: step").wait_for(timeout=60_000)
            page.close()  # the session disconnects; the run must end by itself
            text = _wait_log(log_path, "ended: owner gone", 60)
            assert text.count("ended:") == 2
            browser.close()
