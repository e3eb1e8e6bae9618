"""Page 9 (generate) in AppTest: seeded and greedy generation append to the shared text; undo."""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from engine.checkpoints import LoadedModel
from engine.sampling import SamplingSettings, sample_next
from tests.support import PLAIN, charts, table_with

open_page, trace_of, TEXT = PLAIN.open, PLAIN.trace, PLAIN.text


def _next_token(at: AppTest) -> AppTest:
    at.button(key="generate_sample").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_generate_with_a_fixed_seed_is_deterministic_and_appends_to_the_shared_text(
    tiny_loaded: LoadedModel,
) -> None:
    texts = []
    for _ in range(2):
        at = open_page("pages/9_Generate.py")
        at.number_input(key="generate_seed").set_value(11).run()
        texts.append(_next_token(at).session_state["text"])
    assert texts[0] == texts[1] != TEXT
    tok = tiny_loaded.tokenizer
    settings = SamplingSettings(temperature=1.0, top_k=40, top_p=0.95)
    step = sample_next(tiny_loaded.model, tok, tok.encode(TEXT), settings, 11)
    assert texts[0] == tok.decode([*tok.encode(TEXT), step.token_id])
    # the next page reads the new text
    at.switch_page("pages/8_Output.py").run()
    assert not at.exception
    assert at.session_state["text"] == texts[0]


def test_greedy_generation_appends_the_argmax_of_the_final_logits(
    tiny_loaded: LoadedModel,
) -> None:
    at = open_page("pages/9_Generate.py")
    at.checkbox(key="generate_greedy").check().run()
    _next_token(at)
    ref = trace_of(tiny_loaded)
    tok = tiny_loaded.tokenizer
    argmax = int(np.argmax(ref.logits[-1]))
    assert at.session_state["text"] == tok.decode([*ref.token_ids.tolist(), argmax])
    dist = charts(at)["generate_distribution"]["data"][1]
    assert dist["x"] == [1.0]
    assert dist["text"] == ["◀ chosen"]


def test_generate_n_equals_n_single_steps_and_undo_restores_the_text() -> None:
    many = open_page("pages/9_Generate.py")
    many.number_input(key="generate_seed").set_value(3).run()
    many.number_input(key="generate_n").set_value(4).run()
    many.button(key="generate_many").click().run()
    assert not many.exception
    history = many.session_state["generate_history"]
    assert len(history) == 1 and len(history[0]["tokens"]) == 4
    assert many.session_state["generate_seed"] == 7  # the seed moved on by the 4 tokens

    single = open_page("pages/9_Generate.py")
    single.number_input(key="generate_seed").set_value(3).run()
    for _ in range(4):
        _next_token(single)
    assert single.session_state["text"] == many.session_state["text"]
    assert [t[0] for e in single.session_state["generate_history"] for t in e["tokens"]] == [
        t[0] for t in history[0]["tokens"]
    ]
    assert len(table_with(single, "p when drawn")) == 4

    single.button(key="generate_undo").click().run()
    single.button(key="generate_undo").click().run()
    assert not single.exception
    assert len(single.session_state["generate_history"]) == 2
    assert single.session_state["text"] == single.session_state["generate_history"][-1]["after"]
    single.button(key="generate_undo").click().run()
    single.button(key="generate_undo").click().run()
    assert single.session_state["text"] == TEXT
    assert single.button(key="generate_undo").disabled
