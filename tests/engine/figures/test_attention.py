"""engine.figures.attention: maps, head grid, query steps and article view, on their data."""

from __future__ import annotations

import numpy as np
import pytest

from engine.figures import attention as fa
from engine.figures import common
from engine.lens import attention as la
from engine.lens.heads import head_scores
from engine.trace import Trace
from tests.support import assert_validates_unchanged


def test_pattern_heatmap_equals_the_trace_and_hovers_raw_scores(tiny_trace: Trace) -> None:
    layer, head = 1, 0
    pattern = tiny_trace.get("attn.hook_pattern", layer)[head]
    before_mask = la.raw_scores(tiny_trace, layer, head)
    fig = fa.pattern_heatmap(pattern, before_mask, tiny_trace.token_strs, "Layer 1, head 0")
    heat = fig.data[0]
    z = np.array(heat.z, dtype=float)
    np.testing.assert_array_equal(z, pattern)
    np.testing.assert_allclose(z.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(z, 1) == 0)
    assert list(heat.x) == common.token_labels(tiny_trace.token_strs)
    assert list(heat.y) == list(heat.x)
    raw = np.array(heat.customdata, dtype=np.float64)  # float32 numbers, not a string per cell
    assert heat.customdata.dtype == np.float32 and np.isfinite(raw).all()
    np.testing.assert_allclose(raw, before_mask, rtol=1e-6, atol=1e-6)
    # where the model let a key through, it is the score the model used
    used = tiny_trace.get("attn.hook_attn_scores", layer)[head]
    allowed = np.tril(np.ones_like(z, dtype=bool))
    np.testing.assert_allclose(raw[allowed], used[allowed], rtol=1e-5, atol=1e-5)
    assert "score before the mask" in heat.hovertemplate and "weight" in heat.hovertemplate
    assert fig.layout.title.text == "Layer 1, head 0"
    assert fig.layout.yaxis.autorange == "reversed"
    with pytest.raises(ValueError, match="before the causal mask"):
        fa.pattern_heatmap(pattern, used, tiny_trace.token_strs, "masked scores")
    bare = fa.pattern_heatmap(pattern, None, tiny_trace.token_strs, "no scores").data[0]
    assert bare.customdata is None and "score" not in bare.hovertemplate


def test_head_grid_has_one_map_per_head_titled_with_its_label(tiny_trace: Trace) -> None:
    patterns = tiny_trace.get("attn.hook_pattern", 0)
    labels = ["previous-token", "broad"]
    fig = fa.head_grid(patterns, labels, tiny_trace.token_strs, selected=1, pos=5, title="L0")
    assert len(fig.data) == tiny_trace.config.n_head
    rows = fa.grid_window(tiny_trace.n_tokens, 5)
    for h in range(tiny_trace.config.n_head):
        np.testing.assert_array_equal(np.array(fig.data[h].z), patterns[h][rows, rows])
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["head 0<br>previous-token", "▶ head 1<br>broad"]


def test_head_grid_built_without_validation_is_what_plotly_validates(tiny_trace: Trace) -> None:
    patterns = tiny_trace.get("attn.hook_pattern", 0)
    fig = fa.head_grid(patterns, ["induction", None], tiny_trace.token_strs, 0, 3, "L0")
    assert_validates_unchanged(fig)
    assert isinstance(fig.data[0].colorscale[0][1], str)  # the resolved list, not "Blues"


def test_grid_window_keeps_the_selected_query_visible() -> None:
    assert fa.grid_window(20, 5) == slice(0, 20)
    w = fa.grid_window(200, 150, size=48)
    assert w.start <= 150 < w.stop and w.stop - w.start == 48


def test_query_steps_show_scores_mask_weights_and_contributions(tiny_trace: Trace) -> None:
    layer, head, pos = 0, 1, 4
    steps = la.query_steps(tiny_trace, layer, head, pos)
    fig = fa.query_steps_figure(steps, tiny_trace.token_strs, pos, "Q")
    raw, masked, minus_inf, weights, contrib = fig.data
    T = tiny_trace.n_tokens
    expected_raw = la.raw_scores(tiny_trace, layer, head)[pos]
    np.testing.assert_allclose(raw.y, expected_raw)
    assert all(m is None for m in masked.y[pos + 1 :])
    np.testing.assert_allclose(np.array(masked.y[: pos + 1], dtype=float), expected_raw[: pos + 1])
    assert list(minus_inf.text) == ["−∞"] * (T - pos - 1)
    np.testing.assert_array_equal(
        weights.y, tiny_trace.get("attn.hook_pattern", layer)[head, pos].astype(np.float64)
    )
    assert sum(weights.y) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(contrib.y, la.value_contributions(tiny_trace, layer, head, pos))
    assert list(raw.x) == common.token_labels(tiny_trace.token_strs)
    assert_validates_unchanged(fig)  # built without validation (spec_figure)
    last = tiny_trace.n_tokens - 1  # no future key: no "−∞" marks
    assert_validates_unchanged(
        fa.query_steps_figure(
            la.query_steps(tiny_trace, layer, head, last), tiny_trace.token_strs, last, "Q"
        )
    )


def test_head_scores_table_lists_every_head_with_its_label(tiny_trace: Trace) -> None:
    scores = head_scores(tiny_trace)
    table = fa.head_scores_table(scores)
    cfg = tiny_trace.config
    assert len(table) == cfg.n_layer * cfg.n_head
    row = table[(table["layer"] == 1) & (table["head"] == 0)].iloc[0]
    assert row["label"] == scores.label(1, 0)
    assert row["previous-token"] == f"{scores.previous[1, 0]:.2f}"
    assert row["first-token sink"] == f"{scores.first[1, 0]:.2f}"
    assert row["entropy (nats)"] == f"{scores.entropy[1, 0]:.3f}"


def test_article_vs_gpt_differ_only_by_the_mask(tiny_trace: Trace) -> None:
    article, gpt = fa.article_vs_gpt(
        la.unmasked_pattern(tiny_trace, 1, 1),
        la.raw_scores(tiny_trace, 1, 1),
        tiny_trace.get("attn.hook_pattern", 1)[1],
        tiny_trace.get("attn.hook_attn_scores", 1)[1],
        tiny_trace.token_strs,
    )
    a = np.array(article.data[0].z, dtype=float)
    g = np.array(gpt.data[0].z, dtype=float)
    np.testing.assert_array_equal(g, tiny_trace.get("attn.hook_pattern", 1)[1])
    assert np.triu(a, 1).sum() > 0
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-9)
    assert "no mask" in article.layout.title.text and "causal mask" in gpt.layout.title.text
