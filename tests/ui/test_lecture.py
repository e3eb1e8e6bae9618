"""ui.lecture: lecture mode from the `present` query parameter and the sidebar toggle, its control
bar (previous / layer / head / position / next), the main figure first, and speaker notes."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from engine.config import PRESETS
from tests.support import ROOT
from tests.ui.test_widgets import stage_of
from ui.lecture import LECTURE_MAIN_HEIGHT, MAIN_CHART, SPEAKER_NOTES, bar_title
from ui.stages import STAGE_BY_ID, STAGES


def _open(page: str, **params: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_present_link_opens_the_lecture_bar_and_keeps_the_parameter() -> None:
    at = _open("pages/3_Attention.py", text="To be, or not to be: to be.", present="1", layer="1")
    assert at.session_state["present"] is True
    assert at.toggle(key="_w_present").value is True
    keys = {b.key for b in at.button}
    assert {"bar_prev", "bar_next"} <= keys
    assert at.selectbox(key="_w_bar_layer").value == 1
    assert [e.label for e in at.expander][:1] == ["Speaker notes"]
    assert at.query_params["present"] == ["1"] or at.query_params["present"] == "1"
    # The bar's layer select moves the shared layer (and the URL follows).
    at.selectbox(key="_w_bar_layer").set_value(0).run()
    assert at.session_state["layer"] == 0


def test_the_bar_names_each_stage_by_its_short_name_in_both_languages() -> None:
    """The bar's title is the stage's number and flowchart name, without the layer (the layer
    select beside it shows it): one line in the bar's 219 px at 1024 px (tests/browser)."""
    for lang, page, expected in (
        ("en", "pages/8_Output.py", "**8 · Output**"),
        ("en", "pages/3_Attention.py", "**3 · Attention**"),
        ("zh", "pages/8_Output.py", "**8 · 输出**"),
        ("zh", "pages/7_Dropout.py", "**7 · Dropout（暂退法）**"),
    ):
        at = _open(page, text="To be, or not to be: to be.", present="1", layer="1", lang=lang)
        titles = [
            m.value for m in at.main.markdown if m.value.startswith("**") and " · " in m.value
        ]
        assert titles[:1] == [expected], titles
    assert bar_title(STAGE_BY_ID["learning"]) == "11 · Learning"


def test_bar_next_steps_the_walk_and_the_toggle_turns_lecture_mode_off() -> None:
    at = _open("pages/7_Dropout.py", text="hello world", present="1", layer="0")
    at.switch_page("pages/7_Dropout.py")
    at.button(key="bar_next").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert stage_of(at) == "attention" and at.session_state["layer"] == 1
    assert PRESETS["tiny"].n_layer > 1
    at.switch_page("pages/3_Attention.py")
    at.toggle(key="_w_present").set_value(False).run()
    assert at.session_state["present"] is False
    assert "bar_next" not in {b.key for b in at.button}
    assert "present" not in at.query_params


def test_every_stage_has_a_main_chart_and_notes_and_the_main_chart_fits() -> None:
    """Each stage names a main chart that its page really draws, and speaker notes; in lecture
    mode that chart is at most LECTURE_MAIN_HEIGHT px tall."""
    assert set(MAIN_CHART) == set(SPEAKER_NOTES) == {s.id for s in STAGES}
    for stage in STAGES:
        source = (ROOT / stage.path).read_text(encoding="utf-8")
        assert f'"{MAIN_CHART[stage.id]}"' in source, stage.id
    at = _open("pages/3_Attention.py", text="To be, or not to be: to be.", present="1")

    first = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    assert "attention weights" in first["title"]["text"]  # the single head's map comes first
    assert first["height"] <= LECTURE_MAIN_HEIGHT
    assert first["xaxis"]["tickfont"]["size"] == 20


def _hints(at: AppTest) -> list[str]:
    """Every sentence-bearing element of the page body: Markdown, captions, info boxes."""
    return [e.value for e in (*at.main.markdown, *at.main.caption, *at.main.info)]


def test_hints_say_where_a_control_is_in_lecture_mode_too() -> None:
    """Lecture mode starts with the sidebar collapsed, yet hints said "change the layer in the
    sidebar", "Type a longer text in the sidebar", "“Walk order” in the sidebar". Now, in
    lecture mode, the layer and position are chosen "in the bar at the top" (the lecture bar's
    pickers), and what only the sidebar has (text, model, walk order) is "in the sidebar (open
    it with » at the top left)"; outside lecture mode the hints still say "in the sidebar". In
    both languages, on the feed-forward, layer norm, attention (one token), output (its last
    position) and home (the untrained model) pages."""
    from ui.i18n import _, use_language

    cases = (  # page, query, a hint on the pickers (True) or on the sidebar (False)
        ("pages/4_Feed_forward.py", {"text": "The cat sat.", "layer": "0"}, True),
        ("pages/5_Layer_norm.py", {"text": "The cat sat.", "layer": "0"}, True),
        ("pages/8_Output.py", {"text": "The cat sat.", "pos": "99"}, True),  # the last
        ("pages/3_Attention.py", {"text": "The"}, False),
        ("app.py", {"text": "The cat sat.", "model": "random"}, False),
    )
    for lang in ("en", "zh"):
        with use_language(lang):
            pickers = {False: _("in the sidebar"), True: _("in the bar at the top")}
            sidebar = {
                False: _("in the sidebar"),
                True: _("in the sidebar (open it with » at the top left)"),
            }
            bare = _("in the sidebar")
        for page, query, on_pickers in cases:
            for lecture in (False, True):
                params = {**query, "lang": lang, **({"present": "1"} if lecture else {})}
                at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
                for k, v in params.items():
                    at.query_params[k] = v
                if page != "app.py":
                    at.switch_page(page)
                at.run()
                assert not at.exception, [e.value for e in at.exception]
                texts = _hints(at)
                want = (pickers if on_pickers else sidebar)[lecture]
                assert any(want in t for t in texts), (lang, page, lecture, want, texts)
                if lecture:  # no hint sends a lecturer to a closed sidebar without saying how
                    closed = [t for t in texts if bare in t and "»" not in t]
                    assert not closed, (lang, page, closed)
