"""Lecture mode in a real browser (issue 15): figure type read from the rendered SVG, keyboard
and clicker stepping through the walk, the lecture view fitting a projector's screen.

Needs Debian's `chromium` (driven by `playwright`; never `playwright install`); skips without it
except when CI is set (tests/browser/conftest.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.browser.harness import PAGE_TIMEOUT_S, SETTLE_MS, launch, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEXT = "The cat sat on the mat. The cat sat on the"
LONG_TEXT = "The cat sat on the mat and the dog sat on the log. " * 2  # about 27 tokens

# Every text element of every drawn chart: tick labels, axis titles, legend, annotations.
FONTS_JS = """() => {
  const out = {tick: [], annotation: [], colours: []};
  for (const chart of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    for (const t of chart.querySelectorAll('.xtick text, .ytick text')) {
      const cs = getComputedStyle(t);
      out.tick.push(parseFloat(cs.fontSize));
      out.colours.push(cs.fill);
    }
    for (const t of chart.querySelectorAll('.annotation-text')) {
      out.annotation.push(parseFloat(getComputedStyle(t).fontSize));
    }
  }
  return out;
}"""


# The x tick labels of one chart, found by its element key.
TICKS_JS = """(key) => [...document.querySelectorAll(`.st-key-${key} .xtick text`)]
  .map(t => t.textContent)"""


def open_page(context: Any, base: str, path: str, query: dict[str, str]) -> Any:
    """A new page at `path` with `query`, waited until idle (no screenshot)."""
    page = context.new_page()
    page.goto(f"{base}/{path}?{urlencode(query)}", wait_until="domcontentloaded")
    wait_idle(page, PAGE_TIMEOUT_S, SETTLE_MS)
    return page


@pytest.mark.parametrize(("present", "least"), [("0", 16), ("1", 20)])
def test_chart_text_is_projector_sized_and_near_black(
    server: str, present: str, least: float
) -> None:
    """Tick labels and annotations of every chart on the Attention page are at least 16 px
    (20 px in lecture mode) and near-black, as drawn by plotly in Chromium (Streamlit's chart
    theme would make them 13.5 px grey)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = open_page(context, server, "Attention", {"text": LONG_TEXT, "present": present})
            fonts = page.evaluate(FONTS_JS)
            ticks = page.evaluate(TICKS_JS, "attention_head_chart")
            n_tokens = len(
                page.evaluate(TICKS_JS.replace(".xtick", ".ytick"), "attention_head_chart")
            )
        finally:
            browser.close()
    assert len(fonts["tick"]) > 50, fonts
    assert min(fonts["tick"]) >= least, sorted(fonts["tick"])[:5]
    assert fonts["annotation"] and min(fonts["annotation"]) >= least, fonts["annotation"]
    assert set(fonts["colours"]) == {"rgb(17, 17, 17)"}, set(fonts["colours"])
    # Every token label is drawn (plotly alone drops every second one past about 20).
    assert n_tokens > 24 and len(ticks) == n_tokens, (n_tokens, ticks)
    assert ticks[0].startswith("0:") and ticks[-1].startswith(f"{n_tokens - 1}:"), ticks
