"""Stage pages 1-3 in AppTest (tiny test model): what they draw equals the Trace, and changing
the text, layer, head or position changes it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel
from engine.figures import common
from engine.lens import attention as la
from engine.lens import embeddings as le
from engine.lens.heads import head_scores
from engine.trace import Trace
from tests.support import values

ROOT = Path(__file__).resolve().parent.parent
TEXT = "The cat sat on the mat. 你好，世界! The cat sat"


@pytest.fixture(autouse=True)
def _test_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDE_GPT_TEST_MODEL", "tiny")
    monkeypatch.delenv("INSIDE_GPT_MODELS_DIR", raising=False)
    monkeypatch.delenv("INSIDE_GPT_MAX_TOKENS", raising=False)


def open_page(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for key, value in {"text": TEXT, **query}.items():
        at.query_params[key] = value
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def chart(at: AppTest, key: str) -> dict:
    """The plotly spec of the chart drawn with `key` (pages give every chart a key)."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(key) or key in element.proto.id:
            return json.loads(element.proto.spec)
    raise AssertionError(f"no chart with key {key!r}")


def z_of(spec: dict, index: int = 0) -> np.ndarray:
    return values(spec["data"][index]["z"])


def trace_of(loaded: LoadedModel, text: str = TEXT) -> Trace:
    return run_with_trace(loaded.model, loaded.tokenizer, text)


def test_every_page_marks_itself_in_the_sidebar_navigation() -> None:
    for page, label in (
        ("pages/1_Tokens.py", "1 · Input & tokens"),
        ("pages/2_Embeddings.py", "2 · Embeddings"),
        ("pages/3_Attention.py", "3 · Multi-head self-attention"),
    ):
        at = open_page(page)
        marked = [
            pl.proto.label for pl in at.sidebar.get("page_link") if "you are here" in pl.proto.label
        ]
        assert marked == [f"**{label}**  ◀ you are here"]


# --- 1: tokens -----------------------------------------------------------------------------


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
    assert list(at.dataframe[0].value["token"]) == list(trace_of(tiny_loaded, text).token_strs)


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


# --- 2: embeddings -------------------------------------------------------------------------


def test_embedding_heatmaps_equal_the_trace(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/2_Embeddings.py")
    trace = trace_of(tiny_loaded)
    labels = common.token_labels(trace.token_strs)
    token = chart(at, "embeddings_heatmap_Token embedding")
    position = chart(at, "embeddings_heatmap_Position embedding")
    summed = chart(at, "embeddings_heatmap_token + position")
    np.testing.assert_allclose(z_of(token), trace["hook_embed"], atol=1e-6)
    np.testing.assert_allclose(z_of(position), trace["hook_pos_embed"], atol=1e-6)
    np.testing.assert_allclose(z_of(summed), trace.get("hook_resid_pre", 0), atol=1e-5)
    assert token["data"][0]["y"] == labels
    cosine = chart(at, "embeddings_cosine_chart")
    np.testing.assert_allclose(
        z_of(cosine), le.cosine_matrix(le.embedding_vectors(trace, "token + position")), atol=1e-5
    )


def test_pca_source_can_be_switched(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/2_Embeddings.py")
    trace = trace_of(tiny_loaded)
    at.radio(key="embeddings_source").set_value("position").run()
    coords, _ = le.pca_2d(trace["hook_pos_embed"])
    spec = chart(at, "embeddings_pca_chart")
    np.testing.assert_allclose(values(spec["data"][1]["x"]), coords[:, 0], atol=1e-4)
    assert spec["layout"]["title"]["text"].startswith("position")


def test_nearest_neighbours_follow_the_selected_token(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/2_Embeddings.py", pos="1")
    trace = trace_of(tiny_loaded)
    table = tiny_loaded.model.transformer.wte.weight.detach().numpy()
    _, sims = le.nearest_neighbours(
        table, int(trace.token_ids[1]), k=12, n_valid=tiny_loaded.tokenizer.vocab_size
    )
    spec = chart(at, "embeddings_neighbours_chart")
    np.testing.assert_allclose(values(spec["data"][0]["x"]), sims, atol=1e-6)
    at.selectbox(key="embeddings_pos").set_value(4).run()
    ids4, _ = le.nearest_neighbours(
        table, int(trace.token_ids[4]), k=12, n_valid=tiny_loaded.tokenizer.vocab_size
    )
    shown = list(at.dataframe[0].value["id"])
    assert shown == [int(i) for i in ids4]
    assert at.session_state["pos"] == 4


# --- 3: attention --------------------------------------------------------------------------


def test_selected_head_heatmap_equals_the_pattern(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/3_Attention.py", layer="1", head="1", pos="5")
    trace = trace_of(tiny_loaded)
    spec = chart(at, "attention_head_chart")
    z = z_of(spec)
    np.testing.assert_allclose(z, trace.get("attn.hook_pattern", 1)[1], atol=1e-6)
    np.testing.assert_allclose(z.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(z, 1) == 0)
    assert spec["data"][0]["x"] == common.token_labels(trace.token_strs)
    assert spec["layout"]["title"]["text"].startswith("Layer 1, head 1")
    assert at.title[0].value == "3 · Multi-head self-attention · layer 1"


def test_changing_layer_and_head_redraws_the_heatmap(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/3_Attention.py", layer="0", head="0")
    trace = trace_of(tiny_loaded)
    np.testing.assert_allclose(
        z_of(chart(at, "attention_head_chart")), trace.get("attn.hook_pattern", 0)[0], atol=1e-6
    )
    at.selectbox(key="attention_head").set_value(1).run()
    np.testing.assert_allclose(
        z_of(chart(at, "attention_head_chart")), trace.get("attn.hook_pattern", 0)[1], atol=1e-6
    )
    at.button(key="_w_layer_next").click().run()
    np.testing.assert_allclose(
        z_of(chart(at, "attention_head_chart")), trace.get("attn.hook_pattern", 1)[1], atol=1e-6
    )
    assert at.query_params["layer"] in ("1", ["1"])
    assert at.query_params["head"] in ("1", ["1"])


def test_changing_the_text_redraws_the_heatmap(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/3_Attention.py")
    at.text_area(key="_w_text").input("A rose by any other name").run()
    trace = trace_of(tiny_loaded, "A rose by any other name")
    z = z_of(chart(at, "attention_head_chart"))
    assert z.shape == (trace.n_tokens, trace.n_tokens)
    np.testing.assert_allclose(z, trace.get("attn.hook_pattern", 0)[0], atol=1e-6)


def test_head_grid_labels_come_from_the_head_scores(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/3_Attention.py", layer="1", head="0")
    trace = trace_of(tiny_loaded)
    scores = head_scores(trace)
    spec = chart(at, "attention_grid_chart")
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert titles == [
        f"{'▶ ' if h == 0 else ''}head {h}: {scores.label(1, h)}"
        for h in range(trace.config.n_head)
    ]
    for h in range(trace.config.n_head):
        np.testing.assert_allclose(z_of(spec, h), trace.get("attn.hook_pattern", 1)[h], atol=1e-6)
    table = at.dataframe[-1].value
    assert len(table) == trace.config.n_layer * trace.config.n_head
    row = table[(table["layer"] == 1) & (table["head"] == 1)].iloc[0]
    assert row["label"] == scores.label(1, 1)
    assert row["previous-token"] == pytest.approx(scores.previous[1, 1], abs=1e-6)


def test_query_steps_follow_the_selected_position(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/3_Attention.py", layer="0", head="1", pos="3")
    trace = trace_of(tiny_loaded)
    spec = chart(at, "attention_steps_chart")
    weights = next(d for d in spec["data"] if d.get("name") == "weight")
    np.testing.assert_allclose(
        values(weights["y"]), trace.get("attn.hook_pattern", 0)[1, 3], atol=1e-6
    )
    masked = next(d for d in spec["data"] if d.get("name") == "masked")
    assert len(masked["x"]) == trace.n_tokens - 4
    at.selectbox(key="attention_pos").set_value(6).run()
    spec = chart(at, "attention_steps_chart")
    weights = next(d for d in spec["data"] if d.get("name") == "weight")
    np.testing.assert_allclose(
        values(weights["y"]), trace.get("attn.hook_pattern", 0)[1, 6], atol=1e-6
    )


def test_article_view_is_the_same_head_without_the_mask(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/3_Attention.py", layer="1", head="0")
    trace = trace_of(tiny_loaded)
    article = z_of(chart(at, "attention_article_chart"))
    gpt = z_of(chart(at, "attention_gpt_chart"))
    np.testing.assert_allclose(article, la.unmasked_pattern(trace, 1, 0), atol=1e-5)
    np.testing.assert_allclose(gpt, trace.get("attn.hook_pattern", 1)[0], atol=1e-6)
    assert np.triu(article, 1).sum() > 0


def test_a_very_long_pre_token_gets_a_message_instead_of_merge_steps() -> None:
    at = open_page("pages/1_Tokens.py", text="a" + " " * 3000 + "b")
    assert not at.exception
    steps_words = at.selectbox(key="tokens_word").options
    long_word = next(k for k, label in enumerate(steps_words) if "␣␣␣␣" in label)
    at.selectbox(key="tokens_word").set_value(long_word).run()
    assert not at.exception
    assert any("too long to draw" in i.value for i in at.info)
