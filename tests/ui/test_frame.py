"""ui.frame in AppTest (tiny test model): sidebar, query parameters, shared text, presets,
notices, and a Trace computed once per text."""

from __future__ import annotations

import numpy as np

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel
from engine.config import PRESETS
from tests.support import chart_list, new_app, unique_text, values
from ui.cache import TRACE_COMPUTATIONS
from ui.models import model_key
from ui.text import PRESETS_TEXT


def test_query_parameters_set_the_view_and_are_written_back(tiny_loaded: LoadedModel) -> None:
    text = unique_text()
    at = new_app({"text": text, "layer": "1", "head": "1", "pos": "3"})
    at.switch_page("pages/3_Attention.py")
    at.run()
    assert not at.exception
    assert at.session_state["text"] == text
    assert (at.session_state["layer"], at.session_state["head"], at.session_state["pos"]) == (
        1,
        1,
        3,
    )
    assert at.query_params["text"] == [text] or at.query_params["text"] == text
    trace = run_with_trace(tiny_loaded.model, tiny_loaded.tokenizer, text)
    big = next(
        c for c in chart_list(at) if c["layout"]["title"]["text"].startswith("Layer 1, head 1")
    )
    np.testing.assert_allclose(
        values(big["data"][0]["z"]),
        trace.get("attn.hook_pattern", 1)[1],
        atol=1e-6,
    )


def test_out_of_range_and_malformed_query_values_are_clamped_or_reported() -> None:
    at = new_app({"text": "hello world", "layer": "99", "head": "-4", "pos": "abc"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    assert not at.exception
    assert at.session_state["layer"] == PRESETS["tiny"].n_layer - 1
    assert at.session_state["head"] == 0
    assert any("pos='abc'" in w.value for w in at.warning)
    params = at.query_params
    assert params["layer"] in ("1", ["1"])


def test_sidebar_changes_update_state_and_url() -> None:
    at = new_app({"text": unique_text()})
    at.switch_page("pages/3_Attention.py")
    at.run()
    at.button(key="_w_layer_next").click().run()
    assert at.session_state["layer"] == 1
    assert at.query_params["layer"] in ("1", ["1"])
    at.number_input(key="_w_head").set_value(1).run()
    assert at.session_state["head"] == 1
    assert at.query_params["head"] in ("1", ["1"])
    at.button(key="_w_layer_prev").click().run()
    assert at.session_state["layer"] == 0
    assert not at.exception


def test_a_preset_replaces_the_text_everywhere() -> None:
    at = new_app()
    at.switch_page("pages/1_Tokens.py")
    at.run()
    chinese = next(p for p in PRESETS_TEXT if p.name == "Chinese sentence")
    at.selectbox(key="_w_preset").set_value(chinese.name).run()
    assert not at.exception
    assert at.session_state["text"] == chinese.text
    assert at.text_area(key="_w_text").value == chinese.text
    assert at.query_params["text"] in (chinese.text, [chinese.text])
    assert at.selectbox(key="_w_preset").value is None


def test_typed_text_is_shared_by_the_next_page() -> None:
    at = new_app()
    at.switch_page("pages/1_Tokens.py")
    at.run()
    text = unique_text("Typed by hand")
    at.text_area(key="_w_text").input(text).run()
    assert at.session_state["text"] == text
    at.switch_page("pages/2_Embeddings.py")
    at.run()
    assert at.session_state["text"] == text
    assert at.text_area(key="_w_text").value == text


def test_page_switches_and_selection_changes_do_not_recompute_the_trace() -> None:
    text = unique_text()
    key = (model_key("bundled"), text)
    at = new_app({"text": text})
    at.run()
    for page in ("pages/1_Tokens.py", "pages/2_Embeddings.py", "pages/3_Attention.py"):
        at.switch_page(page)
        at.run()
        assert not at.exception
    at.number_input(key="_w_head").set_value(1).run()
    at.button(key="_w_layer_next").click().run()
    assert TRACE_COMPUTATIONS[key] == 1
    at.text_area(key="_w_text").input(text + " more").run()
    assert TRACE_COMPUTATIONS[(key[0], text + " more")] == 1


def test_text_set_in_session_state_reaches_the_text_box() -> None:
    at = new_app({"text": "first"})
    at.run()
    at.session_state["text"] = "unused"
    at.run()
    assert at.text_area(key="_w_text").value == "unused"


def test_empty_text_shows_a_friendly_prompt_not_an_error() -> None:
    at = new_app({"text": "   "})
    at.switch_page("pages/3_Attention.py")
    at.run()
    assert not at.exception
    assert not at.error
    assert [i.value for i in at.info if i.proto.icon == "✍️"] == [  # the emoji is the icon
        "Type a text in the sidebar (or choose a lecture preset) and the model will read it: "
        "every page then shows what happens inside."
    ]
    assert not at.get("plotly_chart")
    assert at.text_area(key="_w_text").value == "   "
    assert "_w_preset_main" not in {s.key for s in at.main.selectbox}  # the sidebar has one


def test_empty_text_in_lecture_mode_says_where_the_sidebar_opens_and_offers_the_presets() -> None:
    """Lecture mode collapses the sidebar: the hint says where it opens (» at the top left) and
    a preset box in the page itself offers the prepared texts, on a stage page and on the home
    page, in both languages; choosing one sets the text, and the stage then draws its lecture
    bar and figures."""
    chinese = next(p for p in PRESETS_TEXT if p.name == "Chinese sentence")
    for page, lang, words in (
        ("pages/3_Attention.py", "en", "Lecture mode keeps the sidebar closed: open it with »"),
        ("pages/3_Attention.py", "zh", "课堂模式下侧边栏是收起的：点左上角的 » 打开它"),
        ("app.py", "en", "Lecture mode keeps the sidebar closed: open it with »"),
        ("app.py", "zh", "课堂模式下侧边栏是收起的：点左上角的 » 打开它"),
    ):
        at = new_app({"text": "", "present": "1", "lang": lang})
        if page != "app.py":
            at.switch_page(page)
        at.run()
        assert not at.exception and not at.error
        hints = [i.value for i in at.info if i.proto.icon == "✍️"]
        assert len(hints) == 1 and hints[0].startswith(words), hints
        box = at.main.selectbox(key="_w_preset_main")
        assert box.value is None and len(box.options) == len(PRESETS_TEXT), box.options
        if lang != "en":  # AppTest's rerun looks the other widgets' values up among their
            continue  # options by English names, which the Chinese labels are not
        box.set_value(chinese.name).run()
        assert not at.exception
        assert at.session_state["text"] == chinese.text
        assert at.query_params["text"] in (chinese.text, [chinese.text])
        assert "_w_preset_main" not in {s.key for s in at.main.selectbox}
        if page != "app.py":
            assert "bar_next" in {b.key for b in at.button}  # the lecture bar is back
            assert at.get("plotly_chart")


def test_text_longer_than_the_context_says_how_many_tokens_were_kept(
    tiny_loaded: LoadedModel,
) -> None:
    long_text = next(p for p in PRESETS_TEXT if p.name == "Long paragraph").text
    n_total = len(tiny_loaded.tokenizer.encode(long_text))
    n_ctx = PRESETS["tiny"].n_ctx
    assert n_total > n_ctx
    at = new_app({"text": long_text})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    assert not at.exception
    notice = " ".join(w.value for w in at.warning)
    assert f"{n_total} tokens" in notice
    assert f"first {n_ctx}" in notice
    assert f"last {n_total - n_ctx}" in notice
    assert at.text_area(key="_w_text").value == long_text


def test_the_selected_last_token_follows_the_end_when_the_text_grows() -> None:
    at = new_app({"text": "one two"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    n_before = at.session_state["_n_tokens"]
    assert at.session_state["pos"] == n_before - 1
    at.text_area(key="_w_text").input("one two three four").run()
    assert at.session_state["pos"] == at.session_state["_n_tokens"] - 1 > n_before - 1
    at.selectbox(key="tokens_pos").set_value(0).run()
    at.text_area(key="_w_text").input("one two three four five").run()
    assert at.session_state["pos"] == 0
