"""Every stage page in AppTest: it marks itself in the sidebar, renders Chinese, markup-like and
one-token texts, and ends with the walk controls of its stage."""

from __future__ import annotations

import pytest

from tests.support import MIXED, lazy_section_keys
from ui.stages import STAGES

open_page, trace_of, TEXT = MIXED.open, MIXED.trace, MIXED.text


def test_every_page_marks_itself_in_the_sidebar_navigation() -> None:
    for page, label in (
        ("pages/1_Tokens.py", "1 · Input & tokens"),
        ("pages/2_Embeddings.py", "2 · Embeddings"),
        ("pages/3_Attention.py", "3 · Multi-head self-attention"),
    ):
        at = open_page(page)
        marked = [pl.proto.label for pl in at.sidebar.get("page_link") if "◀" in pl.proto.label]
        # no-break spaces in the marker: when the label wraps, the marker moves as a whole
        assert marked == [f"**{label}** ◀\u00a0you\u00a0are\u00a0here"]


CHINESE = "我们在学习大型语言模型。"


@pytest.mark.parametrize(
    "page",
    [
        "pages/4_Feed_forward.py",
        "pages/5_Layer_norm.py",
        "pages/6_Residual.py",
        "pages/7_Dropout.py",
        "pages/8_Output.py",
        "pages/9_Generate.py",
    ],
)
@pytest.mark.parametrize("text", [CHINESE, "*_$x$_* <b>", "a"])
def test_every_page_renders_chinese_markup_like_and_one_token_texts(page: str, text: str) -> None:
    at = open_page(page, text=text)
    stage = page.split("/")[1].split("_", 1)[0]
    assert at.title[0].value.startswith(f"{stage} · ")
    assert not at.error
    assert at.get("plotly_chart")
    # a next (or previous) control at the bottom of every page
    assert any(b.key and b.key.endswith(("_next", "_prev")) for b in at.button)


def test_every_page_ends_with_the_walk_controls_of_its_stage() -> None:
    for stage in STAGES[3:]:
        at = open_page(stage.path, layer="0")
        keys = {b.key for b in at.button}
        assert f"{stage.id}_prev" in keys
        assert (f"{stage.id}_next" in keys) == (stage is not STAGES[-1])


@pytest.mark.parametrize("stage", [s for s in STAGES if lazy_section_keys(s.path)], ids=str)
@pytest.mark.parametrize("text", [TEXT, "a"])
def test_every_lazy_section_renders_when_open_and_costs_nothing_when_closed(
    stage: object, text: str
) -> None:
    path = stage.path  # type: ignore[attr-defined]
    keys = lazy_section_keys(path)
    closed = open_page(path, text=text)
    opened = open_page(path, text=text, sections=tuple(keys))
    assert not opened.error, [e.value for e in opened.error]
    # every section drew something, and the closed page has none of it
    n_closed = len(closed.get("plotly_chart")) + len(closed.dataframe) + len(closed.markdown)
    n_opened = len(opened.get("plotly_chart")) + len(opened.dataframe) + len(opened.markdown)
    assert n_opened >= n_closed + len(keys), (n_closed, n_opened, keys)
    for key in keys:
        assert opened.session_state[key] is True and closed.session_state[key] is False
