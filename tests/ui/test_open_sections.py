"""ui.state's `open` query parameter: a page's open lazy sections are part of the view. A link
with `open=` opens exactly those sections of its page; opening or closing one rewrites the
address and the sidebar's link; an id the page has no section for is reported, not raised; a
walk to another page leaves one page's sections behind."""

from __future__ import annotations

from urllib.parse import parse_qs, parse_qsl, urlsplit

from streamlit.testing.v1 import AppTest

from engine.lens import article as lens_article
from tests.support import new_app, open_page, view_link
from tests.ui.test_widgets import click, stage_of
from ui.stages import STAGE_BY_ID

TEXT = "The cat sat on the mat. The cat sat on the"
ATTENTION = "pages/3_Attention.py"
# What only one section of a page draws, to tell an open section from a closed one.
STEPS_CHART = "attention_steps_chart"  # Attention, "steps"
MASK_CHART = "attention_article_chart"  # Attention, "mask"
DROPOUT_ARTICLE_LATEX = r"\hat{x} = (1 - p)\,x"  # Dropout, "article"


def _param(at: AppTest, name: str) -> str | None:
    """A query parameter of the page's address as one string (None when it is not there)."""
    if name not in at.query_params:
        return None
    value = at.query_params[name]
    return value[-1] if isinstance(value, list) else value


def _link(at: AppTest) -> dict[str, str]:
    """The query of the sidebar's "link to this view"."""
    return dict(parse_qsl(urlsplit(view_link(at)).query))


def _chart_keys(at: AppTest) -> list[str]:
    return [c.proto.id for c in at.get("plotly_chart")]


def _drawn(at: AppTest, key: str) -> bool:
    return any(element_id.endswith(key) for element_id in _chart_keys(at))


def _has_latex(at: AppTest, formula: str) -> bool:
    """Whether the page shows `formula` as a display formula (st.latex wraps it in $$)."""
    return any(element.value.strip("$\n") == formula for element in at.latex)


def _section_states(at: AppTest, stage_id: str) -> dict[str, bool]:
    stage = STAGE_BY_ID[stage_id]
    return {short: bool(at.session_state[stage.section_key(short)]) for short in stage.sections}


def test_a_link_with_open_opens_those_sections_and_only_those() -> None:
    at = open_page(ATTENTION, TEXT, open="numpy,steps")
    assert _section_states(at, "attention") == {
        "steps": True,
        "mask": False,
        "formula": False,
        "split": False,
        "numpy": True,
    }
    assert _drawn(at, STEPS_CHART)  # the steps section's content is drawn
    assert any(c.value == lens_article.CORRECTED_SOURCE.strip() for c in at.main.code)  # numpy
    assert not _drawn(at, MASK_CHART)  # a closed section computes nothing
    titles = {e.label for e in at.expander}
    assert "One query, step by step" in titles
    # written back in the page's order, whatever order the link had; nothing to report
    assert _param(at, "open") == "steps,numpy"
    assert not at.warning


def test_opening_and_closing_a_section_rewrites_the_address_and_the_link() -> None:
    at = open_page(ATTENTION, TEXT)
    assert _param(at, "open") is None and "open" not in _link(at)
    at.session_state["attention_sec_mask"] = True  # what a click on the expander sends
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _drawn(at, MASK_CHART) and not _drawn(at, STEPS_CHART)
    assert _param(at, "open") == "mask"
    assert _link(at)["open"] == "mask"
    at.session_state["attention_sec_steps"] = True
    at.run()
    assert _param(at, "open") == "steps,mask"
    assert _link(at)["open"] == "steps,mask"
    # a change elsewhere keeps the sections open and in the address
    at.button(key="_w_layer_next").click().run()
    assert at.session_state["layer"] == 1 and _param(at, "layer") == "1"
    assert _param(at, "open") == "steps,mask" and _drawn(at, STEPS_CHART)
    at.session_state["attention_sec_mask"] = False
    at.run()
    assert _param(at, "open") == "steps" and not _drawn(at, MASK_CHART)
    at.session_state["attention_sec_steps"] = False
    at.run()
    assert _param(at, "open") is None and "open" not in _link(at)
    assert not _drawn(at, STEPS_CHART)


def test_the_sidebar_link_carries_the_open_sections_and_reopens_them() -> None:
    at = open_page("pages/6_Residual.py", TEXT, open="cosine")
    link = _link(at)
    assert link["open"] == "cosine" and link["text"] == TEXT
    assert _drawn(at, "residual_cosine")
    again = new_app(link)
    again.switch_page("pages/6_Residual.py")
    again.run()
    assert not again.exception, [e.value for e in again.exception]
    assert _section_states(again, "residual") == {"steps": False, "cosine": True, "article": False}
    assert _drawn(again, "residual_cosine")


def test_unknown_ids_are_reported_and_ignored_without_an_error() -> None:
    at = open_page(ATTENTION, TEXT, open="steps, NOPE,<b>x</b>,,steps")
    assert not at.exception and not at.error
    assert _section_states(at, "attention")["steps"] is True and _drawn(at, STEPS_CHART)
    notices = [w.value for w in at.warning]
    assert len(notices) == 1, notices
    assert "nope" in notices[0] and "steps, mask, formula, split, numpy" in notices[0]
    assert "\\<b\\>" in notices[0]  # quoted (escaped), as other link values are
    assert _param(at, "open") == "steps"  # the address keeps only what the page has
    # a page without sections: a notice, no section, no `open` in the address
    tokens = open_page("pages/1_Tokens.py", TEXT, open="steps")
    assert not tokens.exception
    assert any("no sections to open" in w.value for w in tokens.warning)
    assert _param(tokens, "open") is None and "open" not in _link(tokens)
    # in the link's language
    zh = open_page(ATTENTION, TEXT, lang="zh", open="nope")
    assert not zh.exception
    assert any("链接要求展开部分" in w.value for w in zh.warning), [w.value for w in zh.warning]
    assert not any(_section_states(zh, "attention").values())


def test_an_id_of_another_page_opens_nothing_here() -> None:
    at = open_page("pages/7_Dropout.py", TEXT, open="steps")  # an Attention/Residual id
    assert not at.exception
    assert _section_states(at, "dropout") == {"average": False, "article": False}
    assert len(at.warning) == 1 and "steps" in at.warning[0].value


def test_walking_to_another_page_leaves_the_open_sections_behind() -> None:
    # Residual's "article" and Dropout's "article" share a short id: the walk must not open
    # Dropout's because Residual's was open.
    at = open_page("pages/6_Residual.py", TEXT, open="steps,article")
    assert _param(at, "open") == "steps,article"
    for link in at.sidebar.get("page_link"):  # sidebar navigation: no sections in its links
        assert "open" not in parse_qs(link.proto.query_string), link.proto.query_string
    at = click(at, "residual_next")  # article order: Residual -> Dropout, same layer
    assert stage_of(at) == "dropout"
    assert _param(at, "open") is None and "open" not in _link(at)
    assert _section_states(at, "dropout") == {"average": False, "article": False}
    assert not _has_latex(at, DROPOUT_ARTICLE_LATEX)
    at.switch_page("pages/7_Dropout.py")  # AppTest would request its last page again
    at.session_state["dropout_sec_article"] = True
    at.run()
    assert _has_latex(at, DROPOUT_ARTICLE_LATEX)
    assert _param(at, "open") == "article"
