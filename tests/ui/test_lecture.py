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
