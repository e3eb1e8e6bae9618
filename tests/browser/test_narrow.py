"""The views a reviewer found broken at 1024 px, in a real browser: with the sidebar open (the
page body about 500 px wide) and in lecture mode, in English and Chinese, on the lecture
presets' texts. Nothing FIT_JS checks is cut (panel titles over each other, legend entries past
the chart's edge, ...), no table scrolls sideways (WIDE_TABLES_JS), and the home page's
flowchart breaks its lines only between words (FLOW_BREAKS_JS). Screenshots go to
tests/artifacts/narrow_*.png (git-ignored) for a person to look at."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.browser.harness import (
    PAGE_TIMEOUT_S,
    SETTLE_MS,
    launch,
    layout_problems,
    visit,
    wait_idle,
)
from ui.text import PRESETS_TEXT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPEATED = next(p.text for p in PRESETS_TEXT if p.name == "Repeated line (induction)")
CHINESE = next(p.text for p in PRESETS_TEXT if p.name == "Chinese sentence")

# Lines of the home page's flowchart boxes that end inside a word: each box's text nodes are
# read character by character (a Range's box), and a line that ends where no break belongs
# (after a letter or a Chinese character, before another; at a hyphen) is reported as
# "<line end>/<next line's start>". Allowed: after a space, a zero-width space or closing
# punctuation, before opening punctuation.
FLOW_BREAKS_JS = r"""() => {
  const bad = [];
  const after = /[\s\u200b，、。：；！？）」]/, before = /[（「]/;
  for (const box of document.querySelectorAll("[class*='st-key-flow_']")) {
    const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent, range = document.createRange();
      let top = null;
      for (let i = 0; i < text.length; i++) {
        range.setStart(node, i); range.setEnd(node, i + 1);
        const rect = range.getClientRects()[0];
        if (!rect || !rect.width) continue;
        if (top !== null && rect.top > top + 2 && i > 0
            && !after.test(text[i - 1]) && !before.test(text[i]))
          bad.push(`${text.slice(Math.max(0, i - 6), i)}/${text.slice(i, i + 6)}`);
        top = rect.top;
      }
    }
  }
  return bad;
}"""

# (page, query, screenshot name)
VIEWS = [
    ("Dropout", {"text": CHINESE, "lang": "zh", "open": "average"}, "dropout_zh"),
    ("Dropout", {"text": REPEATED, "open": "average"}, "dropout_en"),
    ("Dropout", {"text": CHINESE, "lang": "zh", "present": "1", "open": "average"}, "dropout_zh_l"),
    ("Dropout", {"text": REPEATED, "present": "1", "open": "average"}, "dropout_en_lecture"),
    ("Attention", {"text": REPEATED}, "attention_en"),
    ("Attention", {"text": CHINESE, "lang": "zh"}, "attention_zh"),
    ("Output", {"text": CHINESE, "lang": "zh", "open": "pretraining"}, "output_zh"),
    ("Output", {"text": REPEATED}, "output_en"),
    ("", {"present": "1"}, "home_en_lecture"),
    ("", {"present": "1", "lang": "zh"}, "home_zh_lecture"),
    ("", {"lang": "zh"}, "home_zh"),
]


def test_the_reviewed_views_fit_1024_px(server: str) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="en-US")
        try:
            for path, query, name in VIEWS:
                state = visit(context, server, path, query, f"narrow_{name}")
                if not path:  # the home page: its flowchart, at the viewport's width
                    page = context.new_page()
                    page.goto(f"{server}/?{urlencode(query)}")
                    wait_idle(page, PAGE_TIMEOUT_S, SETTLE_MS)
                    broken = page.evaluate(FLOW_BREAKS_JS)
                    page.close()
                    if broken:
                        problems.append(f"{name}: flowchart words broken: {broken}")
                problems += layout_problems(state, name, 1024)
        finally:
            context.close()
            browser.close()
    assert not problems, "\n".join(problems)
