"""The app in Chinese in a real browser: home and every stage page with `lang=zh` and a Chinese
text finish without an exception box or a browser console error, their headings are Chinese, and
the address keeps `lang=zh` (a copied link opens in Chinese). Screenshots go to
tests/artifacts/zh_*.png (git-ignored) for a person to look at; the CJK glyphs come from the
fonts .ci/run installs (fonts-noto-cjk), which the figures' font stack names too."""

from __future__ import annotations

import re

import pytest

from tests.browser.harness import ROOT, launch, visit
from ui.stages import STAGES

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ZH_TEXT = "我们在学习大型语言模型是如何理解文字的。注意力头看向前面的词元。"
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_page_in_chinese_renders_in_chromium_without_errors(server: str) -> None:
    from playwright.sync_api import sync_playwright

    stages = [s for s in STAGES if (ROOT / s.path).is_file()]
    query = {"text": ZH_TEXT, "lang": "zh"}
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        # a projector's size: every formula and chart title must fit it
        context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="en-US")
        try:
            visits = [("", "zh_0_home", None)]
            visits += [(s.url_path, f"zh_{s.number}_{s.id}", s) for s in stages]
            for path, name, stage in visits:
                state = visit(context, server, path, query, name)
                label = path or "home"
                if state["exceptions"]:
                    problems.append(f"{label}: exception box: {state['exceptions']}")
                if state["errors"]:
                    problems.append(f"{label}: console errors: {state['errors']}")
                if state["cut"]:
                    problems.append(f"{label}: does not fit 1024 px: {state['cut']}")
                prefix = f"{stage.number} · " if stage else "Inside GPT"
                if not any(prefix in h and (CJK.search(h) or not stage) for h in state["h1"]):
                    problems.append(f"{label}: no Chinese heading with {prefix!r}: {state['h1']}")
                if "lang=zh" not in state["url"]:
                    problems.append(f"{label}: the URL lost lang=zh: {state['url']}")
            # No `lang` in the link: a browser set to Chinese gets Chinese (st.context.locale).
            zh_browser = browser.new_context(
                viewport={"width": 1024, "height": 768}, locale="zh-CN"
            )
            try:
                state = visit(zh_browser, server, "Tokens", {"text": ZH_TEXT}, "zh_locale_tokens")
                if "lang=zh" not in state["url"] or not any(CJK.search(h) for h in state["h1"]):
                    problems.append(f"zh-CN browser: not in Chinese: {state['h1']} {state['url']}")
            finally:
                zh_browser.close()
        finally:
            context.close()
            browser.close()
    assert not problems, "\n".join(problems)
