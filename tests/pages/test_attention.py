"""Page 3 (multi-head self-attention) in AppTest: the maps equal the Trace's patterns, and
changing the text, layer, head or position changes them."""

from __future__ import annotations

import numpy as np

from engine.checkpoints import LoadedModel
from engine.figures import common
from engine.lens import attention as la
from engine.lens.heads import head_scores
from tests.support import MIXED, chart, values, z_of

open_page, trace_of, TEXT = MIXED.open, MIXED.trace, MIXED.text


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
    trace = trace_of(tiny_loaded, text="A rose by any other name")
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
        f"{'▶ ' if h == 0 else ''}head {h}<br>{scores.label(1, h)}"
        for h in range(trace.config.n_head)
    ]
    for h in range(trace.config.n_head):
        np.testing.assert_allclose(z_of(spec, h), trace.get("attn.hook_pattern", 1)[h], atol=1e-6)
    table = at.dataframe[-1].value
    assert len(table) == trace.config.n_layer * trace.config.n_head
    row = table[(table["layer"] == 1) & (table["head"] == 1)].iloc[0]
    assert row["label"] == scores.label(1, 1)
    assert row["previous-token"] == f"{scores.previous[1, 1]:.2f}"


def test_query_steps_follow_the_selected_position(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/3_Attention.py", layer="0", head="1", pos="3")
    assert not at.get("plotly_chart") or all(
        "attention_steps_chart" not in c.proto.id for c in at.get("plotly_chart")
    )  # a closed section computes nothing
    at = open_page(
        "pages/3_Attention.py", layer="0", head="1", pos="3", sections=("attention_sec_steps",)
    )
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
    at = open_page("pages/3_Attention.py", layer="1", head="0", sections=("attention_sec_mask",))
    trace = trace_of(tiny_loaded)
    article = z_of(chart(at, "attention_article_chart"))
    gpt = z_of(chart(at, "attention_gpt_chart"))
    np.testing.assert_allclose(article, la.unmasked_pattern(trace, 1, 0), atol=1e-5)
    np.testing.assert_allclose(gpt, trace.get("attn.hook_pattern", 1)[0], atol=1e-6)
    assert np.triu(article, 1).sum() > 0


def test_the_head_table_is_shown_compact_with_short_headers_and_their_full_names() -> None:
    """The head table keeps its eight columns and their full names (the data), and draws the
    score columns with short headers whose help is the full name, sized to fit 505 px."""
    import json

    for lang, short in (("en", "prev."), ("zh", "前一词元")):
        at = open_page("pages/3_Attention.py", lang=lang)
        frame = next(f for f in at.dataframe if f.value.shape[1] == 8)
        config = json.loads(frame.proto.columns)
        full = "previous-token" if lang == "en" else "前一词元"
        assert full in frame.value.columns
        assert config[full]["label"] == short
        if lang == "en":
            assert config[full]["help"] == full
            assert config["entropy (nats)"] == {
                "label": "entropy",
                "help": "entropy (nats)",
                "width": 66,
            }
        widths = [config[str(c)]["width"] for c in frame.value.columns]
        assert sum(widths) <= 505
