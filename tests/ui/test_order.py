"""The walk's two orders (issue 15): the article's flowchart (post-norm) and GPT-2's real
pre-norm block, switched in the sidebar or by `order=gpt` in a link; the home flowchart draws
both with the differences marked."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from engine.config import PRESETS
from tests.support import ROOT
from tests.ui.test_widgets import click, stage_of
from ui.stages import GPT_LAYER_STAGES, LAYER_STAGES, layer_stages, walk_neighbours


def _walk(order: str, n_layer: int) -> list[tuple[str, int]]:
    step = ("tokens", 0)
    out = [step]
    while True:
        _, nxt = walk_neighbours(step[0], step[1], n_layer, order)
        if nxt is None:
            return out
        step = (nxt[0].id, nxt[1])
        out.append(step)


def test_gpt_order_walks_the_pre_norm_block_in_every_layer() -> None:
    walk = _walk("gpt", 2)
    assert walk == [
        ("tokens", 0),
        ("embeddings", 0),
        *[(s, layer) for layer in range(2) for s in GPT_LAYER_STAGES],
        ("output", 1),
        ("generate", 1),
        ("intervene", 1),  # pages 10 (issue 17) and 11 (issue 18) end the walk in either order
        ("learning", 1),
    ]
    assert GPT_LAYER_STAGES[:2] == ("layer_norm", "attention")  # ln_1 before attention
    assert sorted(GPT_LAYER_STAGES) == sorted(LAYER_STAGES) == sorted(layer_stages("gpt"))
    # walking back retraces the same steps
    back = [walk[-1]]
    while True:
        prev, _ = walk_neighbours(back[-1][0], back[-1][1], 2, "gpt")
        if prev is None:
            break
        back.append((prev[0].id, prev[1]))
    assert back == walk[::-1]


def test_order_switch_changes_the_pages_next_button() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["text"] = "To be, or not to be: to be."
    at.query_params["layer"] = "0"
    at.switch_page("pages/2_Embeddings.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="_w_order").value == "article"
    click(at, "embeddings_next")
    assert stage_of(at) == "attention"  # the article: attention first
    at.switch_page("pages/3_Attention.py")  # AppTest reruns the page it last switched to
    at.radio(key="_w_order").set_value("gpt").run()
    assert at.query_params["order"] in ("gpt", ["gpt"])
    click(at, "attention_next")
    assert stage_of(at) == "dropout"  # GPT-2: attention -> dropout -> add
    n_layer = PRESETS["tiny"].n_layer
    visited = [(stage_of(at), at.session_state["layer"])]
    while stage_of(at) != "output":
        assert len(visited) < 50, visited
        click(at, f"{stage_of(at)}_next")
        visited.append((stage_of(at), at.session_state["layer"]))
    expected = [("dropout", 0), ("residual", 0), ("feed_forward", 0)]
    expected += [(s, layer) for layer in range(1, n_layer) for s in GPT_LAYER_STAGES]
    assert visited == [*expected, ("output", n_layer - 1)]


def test_a_link_with_order_gpt_opens_the_gpt_walk_and_home_draws_both_orders() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["text"] = "hello world"
    at.query_params["order"] = "gpt"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["order"] == "gpt"
    text = " ".join(m.value for m in at.markdown)
    assert "GPT-2's real order in every block (pre-norm)" in text
    assert "**GPT-2 (pre-norm):** :red[**Layer norm (ln₁, moved first)**] → Attention" in text
    assert "**The article (post-norm):** Attention → Feed-forward → Layer norm" in text
    at.switch_page("pages/5_Layer_norm.py").run()
    assert at.button(key="layer_norm_prev").label.endswith("2 · Embeddings")
