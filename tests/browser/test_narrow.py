"""The views a reviewer found broken at 1024 px, in a real browser: with the sidebar open (the
page body about 500 px wide) and in lecture mode, in English and Chinese, on the lecture
presets' texts. Nothing FIT_JS checks is cut (panel titles over each other, legend entries past
the chart's edge, ...) and no table scrolls sideways (WIDE_TABLES_JS). Screenshots go to
tests/artifacts/narrow_*.png (git-ignored) for a person to look at."""

from __future__ import annotations

import pytest

from tests.browser.harness import launch, visit
from ui.text import PRESETS_TEXT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPEATED = next(p.text for p in PRESETS_TEXT if p.name == "Repeated line (induction)")
CHINESE = next(p.text for p in PRESETS_TEXT if p.name == "Chinese sentence")

# (page, query, screenshot name)
VIEWS = [
    ("Dropout", {"text": CHINESE, "lang": "zh", "open": "average"}, "dropout_zh"),
    ("Dropout", {"text": REPEATED, "open": "average"}, "dropout_en"),
    ("Dropout", {"text": CHINESE, "lang": "zh", "present": "1", "open": "average"}, "dropout_zh_l"),
    ("Dropout", {"text": REPEATED, "present": "1", "open": "average"}, "dropout_en_lecture"),
    ("Attention", {"text": REPEATED}, "attention_en"),
    ("Attention", {"text": CHINESE, "lang": "zh"}, "attention_zh"),
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
                if state["exceptions"] or state["errors"]:
                    problems.append(f"{name}: {state['exceptions']} {state['errors']}")
                if state["cut"]:
                    problems.append(f"{name}: does not fit 1024 px: {state['cut']}")
                if state["wide_tables"]:
                    problems.append(f"{name}: tables scroll sideways: {state['wide_tables']}")
        finally:
            context.close()
            browser.close()
    assert not problems, "\n".join(problems)
