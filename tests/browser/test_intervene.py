"""Page 10 (cause and effect) in a real browser on the bundled model: a shared link with ablated
heads and two prompts opens without an exception or console error, keeps all of them in the
address, and each of its three tabs draws its charts. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import pytest

from tests.browser.harness import ARTIFACTS, PAGE_TIMEOUT_S, SETTLE_MS, launch, visit, wait_idle
from ui.intervene import KNOCK_OUT_PRESETS, PATCHING_PRESETS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_intervene_page_opens_from_a_link_and_draws_every_tab(server: str) -> None:
    from playwright.sync_api import sync_playwright

    preset, pair = KNOCK_OUT_PRESETS[0], PATCHING_PRESETS[0]
    query = {
        "text": preset.text,
        "pos": str(preset.pos),
        "ablate": preset.ablate,
        "clean": pair.clean,
        "corrupt": pair.corrupt,
    }
    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        try:
            state = visit(context, server, "Intervene", query, "10_intervene_link")
            assert not state["exceptions"], state["exceptions"]
            assert not state["errors"], state["errors"]
            assert any(h.startswith("10 · ") for h in state["h1"]), state["h1"]
            for key in ("ablate=1.0%2C1.1", "clean=", "corrupt=", f"pos={preset.pos}"):
                assert key in state["url"], state["url"]
            page = context.new_page()
            page.goto(state["url"], wait_until="domcontentloaded")
            wait_idle(page, PAGE_TIMEOUT_S, SETTLE_MS)
            for i, tab in enumerate(page.get_by_role("tab").all()):
                tab.click()
                _, tab_state = wait_idle(page, PAGE_TIMEOUT_S, SETTLE_MS)
                assert not tab_state["exceptions"], tab_state["exceptions"]
                panel = page.locator('[role="tabpanel"]:not([hidden])')
                drawn = panel.locator(".js-plotly-plot .main-svg").count()
                assert drawn >= 2, f"tab {i}: {drawn} charts drawn"
                page.screenshot(path=str(ARTIFACTS / f"10_intervene_tab{i}.png"), full_page=True)
            page.close()
            # the grid: select the cell of head 1.2 and press Space; the address follows
            page = context.new_page()
            page.goto(state["url"].split("&ablate=")[0], wait_until="domcontentloaded")
            wait_idle(page, PAGE_TIMEOUT_S, SETTLE_MS)
            grid = page.locator('[data-testid="stDataFrame"]').first
            grid.scroll_into_view_if_needed()
            box = grid.bounding_box()
            assert box is not None
            # Select layer 0's index cell (the index column starts at the left edge whatever
            # the widths; rows are 35 px under a 35 px header), then walk with the arrow keys
            # to layer 1, head 2 and press Space: no guess at column widths, which differ with
            # the fonts a machine has (a click by width share missed the cell in CI).
            page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)
            page.wait_for_timeout(300)
            for key in ["ArrowRight"] * 3 + ["ArrowDown"]:
                page.keyboard.press(key)
            page.keyboard.press("Space")
            for _ in range(80):  # the rerun writes the address; wait up to 20 s for it
                if "ablate=" in page.url:
                    break
                page.wait_for_timeout(250)
            wait_idle(page, PAGE_TIMEOUT_S, SETTLE_MS)
            assert "ablate=1.2" in page.url, page.url
            page.close()
        finally:
            context.close()
            browser.close()
