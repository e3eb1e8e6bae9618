"""Open sections in a real browser (bundled model): a link with `open=steps` opens that section of
the Attention page (its chart drawn, the others closed); clicking an expander adds or removes
its id in the address; the sidebar's link to another page leaves the sections behind."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.browser.harness import PAGE_TIMEOUT_S, SETTLE_MS, launch, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEXT = "The cat sat on the mat. The cat sat on the"
STEPS = "One query, step by step"  # attention_sec_steps
MASK = "The article's version beside GPT's"  # attention_sec_mask


def _open_ids(page: Any) -> list[str] | None:
    """The address's `open` value, split (None when it has none)."""
    values = parse_qs(urlsplit(page.url).query).get("open")
    return values[-1].split(",") if values else None


def _until(page: Any, predicate: Any, what: str, timeout_s: float = 60) -> None:
    """Wait (then until the page is idle) for `predicate(page)`; fail with `what` after
    `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate(page):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}; address: {page.url}")
        page.wait_for_timeout(150)
    wait_idle(page, PAGE_TIMEOUT_S, SETTLE_MS)


def _section(page: Any, label: str) -> Any:
    return page.locator('[data-testid="stExpander"]').filter(has_text=label).first


def _charts_in(page: Any, label: str) -> int:
    return _section(page, label).locator(".js-plotly-plot .main-svg").count()


def test_open_sections_follow_the_address_and_stay_on_their_page(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        try:
            page = context.new_page()
            query = urlencode({"text": TEXT, "layer": "1", "open": "steps"})
            page.goto(f"{server}/Attention?{query}", wait_until="domcontentloaded")
            wait_idle(page, PAGE_TIMEOUT_S, SETTLE_MS)
            exceptions = page.locator('[data-testid="stException"]').count()
            assert exceptions == 0
            assert _open_ids(page) == ["steps"]
            assert _charts_in(page, STEPS) >= 1  # the link opened it: its chart is drawn
            assert _charts_in(page, MASK) == 0  # closed: nothing computed
            _section(page, MASK).locator("summary").click()  # open a second one
            _until(page, lambda p: _open_ids(p) == ["steps", "mask"], "mask not in the address")
            assert _charts_in(page, MASK) >= 2
            _section(page, STEPS).locator("summary").click()  # close the first
            _until(page, lambda p: _open_ids(p) == ["mask"], "steps still in the address")
            # the sidebar's link to the next page of the walk carries no sections
            sidebar = page.locator('[data-testid="stSidebar"]')
            sidebar.locator("a", has_text="Feed-forward").first.click()
            _until(page, lambda p: "/Feed_forward" in p.url, "did not reach Feed-forward")
            assert _open_ids(page) is None
            assert "text=" in page.url and "layer=1" in page.url
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            context.close()
            browser.close()
