"""Page 1 (input and tokens) in AppTest on the tiny test model: every token of the text, escaped
user HTML, BPE merge steps, the shared position."""

from __future__ import annotations

from engine.checkpoints import LoadedModel
from engine.figures import common
from tests.support import MIXED, chart

open_page, trace_of, TEXT = MIXED.open, MIXED.trace, MIXED.text


def test_tokens_page_lists_every_token_of_the_text(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/1_Tokens.py")
    trace = trace_of(tiny_loaded)
    assert at.title[0].value == "1 · Input & tokens"
    table = at.dataframe[0].value
    assert list(table["id"]) == [int(i) for i in trace.token_ids]
    assert list(table["token"]) == list(trace.token_strs)
    chips = next(m.value for m in at.markdown if "monospace" in m.value)
    for i in trace.token_ids:
        assert f">{int(i)}</span>" in chips
    split = at.dataframe[1].value
    assert set(split["characters"]) >= {"你", "好", "世", "界"}
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tokens"] == str(trace.n_tokens)
    assert metrics["Characters per token"] == f"{len(TEXT) / trace.n_tokens:.2f}"
    assert any("cl100k_base" in i.value and "4,096" in i.value for i in at.info)
    assert len(at.latex) == 1


def test_tokens_page_escapes_user_html(tiny_loaded: LoadedModel) -> None:
    text = "<script>alert('x')</script> $5 *bold* _x_"
    at = open_page("pages/1_Tokens.py", text=text)
    chips = next(m.value for m in at.markdown if "monospace" in m.value)
    assert "<script>" not in chips
    assert "&lt;script&gt;" in chips or "&lt;" in chips
    assert list(at.dataframe[0].value["token"]) == list(trace_of(tiny_loaded, text=text).token_strs)


def test_tokens_page_shows_bpe_steps_for_the_chosen_word(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/1_Tokens.py")
    steps = tiny_loaded.tokenizer.encode_with_steps(TEXT, max_pre_tokens=400)
    word_box = at.selectbox(key="tokens_word")
    choice = next(k for k, w in enumerate(steps.pre_tokens) if w.text == " mat")
    word_box.set_value(choice).run()
    spec = chart(at, "tokens_bpe_chart")
    bar = spec["data"][0]
    word = steps.pre_tokens[choice]
    last_row = f"merge {len(word.merges)}" if word.merges else "bytes"
    final = [t for t, y in zip(bar["text"], bar["y"], strict=True) if y == last_row]
    assert final == [common.plotly_text(tiny_loaded.tokenizer.display(i)) for i in word.ids]


def test_choosing_a_token_on_the_page_moves_the_shared_position() -> None:
    at = open_page("pages/1_Tokens.py")
    at.selectbox(key="tokens_pos").set_value(2).run()
    assert at.session_state["pos"] == 2
    assert at.query_params["pos"] in ("2", ["2"])
    assert at.selectbox(key="_w_pos").value == 2


def test_a_very_long_pre_token_gets_a_message_instead_of_merge_steps() -> None:
    at = open_page("pages/1_Tokens.py", text="a" + " " * 3000 + "b")
    assert not at.exception
    steps_words = at.selectbox(key="tokens_word").options
    long_word = next(k for k, label in enumerate(steps_words) if "␣␣␣␣" in label)
    at.selectbox(key="tokens_word").set_value(long_word).run()
    assert not at.exception
    assert any("too long to draw" in i.value for i in at.info)
