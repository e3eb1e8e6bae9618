"""Figure builders of stages 1-3 (tokens, embeddings, attention), checked on their data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.checkpoints import LoadedModel
from engine.figures import attention as fa
from engine.figures import common
from engine.figures import embeddings as fe
from engine.figures import tokens as ft
from engine.lens import attention as la
from engine.lens import embeddings as le
from engine.lens import tokens as lt
from engine.lens.heads import head_scores
from engine.sampling import softmax
from engine.trace import Trace

# --- common --------------------------------------------------------------------------------


def test_plotly_text_escapes_html_and_guards_latex() -> None:
    assert common.plotly_text("<E4>") == "&lt;E4&gt;"
    assert common.plotly_text("a&b") == "a&amp;b"
    assert common.plotly_text("$x$") == "\u200b$x$"
    assert common.plotly_text("␣the") == "␣the"


def test_token_labels_are_unique_and_safe() -> None:
    labels = common.token_labels(["a", "a", "<br>"])
    assert labels == ["0:a", "1:a", "2:&lt;br&gt;"]
    assert len(set(labels)) == 3
    assert common.token_labels(["x", "y", "z"], 1, 3) == ["1:y", "2:z"]


def test_window_is_clamped_and_at_most_max_axis() -> None:
    assert common.window(10, 5, size=4) == slice(5, 9)
    assert common.window(10, 9, size=4) == slice(6, 10)
    assert common.window(10, -3, size=4) == slice(0, 4)
    assert common.window(3, 2, size=4) == slice(0, 3)
    assert common.window(1000, 0) == slice(0, common.MAX_AXIS)


def test_heatmap_turns_masked_scores_into_none() -> None:
    z = np.array([[1.0, -np.inf], [0.5, 2.0]])
    fig = common.heatmap(
        z, ["a", "b"], ["c", "d"], "t", signed=True, x_title="", y_title="", hovertemplate=""
    )
    assert fig.data[0].z[0][1] is None
    assert fig.data[0].z[1][1] == 2.0
    assert fig.data[0].zmin == -2.0 and fig.data[0].zmax == 2.0


# --- tokens --------------------------------------------------------------------------------


def _groups(tiny_loaded: LoadedModel, trace: Trace) -> list:
    return tiny_loaded.tokenizer.group_characters([int(i) for i in trace.token_ids])


def test_token_chips_escape_user_html(tiny_loaded: LoadedModel) -> None:
    tok = tiny_loaded.tokenizer
    ids = tok.encode("<script>alert(1)</script>")
    strs = [tok.display(i) for i in ids]
    html_text = ft.token_chips_html(strs, ids, tok.group_characters(ids))
    assert "<script>" not in html_text
    assert "&lt;" in html_text
    for i in ids:
        assert f">{i}</span>" in html_text


def test_token_chips_bracket_a_chinese_character_split_into_bytes(
    tiny_loaded: LoadedModel,
) -> None:
    tok = tiny_loaded.tokenizer
    ids = tok.encode("界")
    assert len(ids) > 1, "the 4096-rank vocabulary has no single token for 界"
    html_text = ft.token_chips_html([tok.display(i) for i in ids], ids, tok.group_characters(ids))
    assert html_text.count("dashed") == 1
    assert ">界</span>" in html_text


def test_token_table_lists_every_token_with_its_bytes(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    tok = tiny_loaded.tokenizer
    ids = [int(i) for i in tiny_trace.token_ids]
    data = [tok.token_bytes(i) for i in ids]
    table = ft.token_table(ids, tiny_trace.token_strs, data, _groups(tiny_loaded, tiny_trace))
    assert list(table["id"]) == ids
    assert list(table["token"]) == list(tiny_trace.token_strs)
    assert list(table["n bytes"]) == [len(b) for b in data]
    assert table["bytes"][0] == " ".join(f"{b:02X}" for b in data[0])
    split_rows = table[table["characters covered"].str.startswith("part of")]
    assert len(split_rows) > 0  # the Chinese characters of MIXED_TEXT
    assert "“你”" in " ".join(split_rows["characters covered"])


def test_split_characters_names_each_multi_token_character(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    split = ft.split_characters(_groups(tiny_loaded, tiny_trace))
    assert "你" in list(split["characters"])
    row = split[split["characters"] == "你"].iloc[0]
    assert row["Unicode name"] == "CJK UNIFIED IDEOGRAPH-4F60"
    assert row["number of tokens"] >= 2


def test_characters_per_token() -> None:
    assert lt.characters_per_token("abcdef", 3) == 2.0
    assert lt.characters_per_token("", 0) == 0.0


def test_bytes_per_token_bars_equal_byte_lengths(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    tok = tiny_loaded.tokenizer
    data = [tok.token_bytes(int(i)) for i in tiny_trace.token_ids]
    fig = ft.bytes_per_token_figure(tiny_trace.token_strs, data)
    assert list(fig.data[0].y) == [len(b) for b in data]
    assert list(fig.data[0].x) == common.token_labels(tiny_trace.token_strs)


def test_bpe_steps_figure_has_one_row_per_merge_and_ends_with_the_tokens(
    tiny_loaded: LoadedModel,
) -> None:
    tok = tiny_loaded.tokenizer
    word = tok.encode_with_steps(" together").pre_tokens[0]
    fig = ft.bpe_steps_figure(word)
    bar = fig.data[0]
    rows = ["bytes"] + [f"merge {k}" for k in range(1, len(word.merges) + 1)]
    assert list(dict.fromkeys(bar.y)) == rows
    last = [t for t, y in zip(bar.text, bar.y, strict=True) if y == rows[-1]]
    assert last == [tok.display(i) for i in word.ids]
    first = [t for t, y in zip(bar.text, bar.y, strict=True) if y == "bytes"]
    assert len(first) == len(b" together")
    # every row covers all the bytes of the word
    for row in rows:
        widths = [x for x, y in zip(bar.x, bar.y, strict=True) if y == row]
        assert sum(widths) == len(b" together")


# --- embeddings ----------------------------------------------------------------------------


def test_embedding_sum_is_the_input_of_block_zero(tiny_trace: Trace) -> None:
    summed = le.embedding_vectors(tiny_trace, "token + position")
    np.testing.assert_allclose(summed, tiny_trace.get("hook_resid_pre", 0), atol=1e-6)
    with pytest.raises(ValueError, match="unknown embedding source"):
        le.embedding_vectors(tiny_trace, "nonsense")


def test_embedding_heatmap_shows_the_trace_values(tiny_trace: Trace) -> None:
    fig = fe.embedding_heatmap(tiny_trace["hook_embed"], tiny_trace.token_strs, "Token")
    heat = fig.data[0]
    np.testing.assert_allclose(np.array(heat.z, dtype=float), tiny_trace["hook_embed"])
    assert list(heat.y) == common.token_labels(tiny_trace.token_strs)
    assert list(heat.x)[:2] == ["d0", "d1"]
    assert fig.layout.title.text == "Token"


def test_embedding_heatmap_windows_a_wide_matrix() -> None:
    wide = np.arange(3 * 600, dtype=np.float32).reshape(3, 600)
    fig = fe.embedding_heatmap(wide, ["a", "b", "c"], "W", dim_start=300)
    z = np.array(fig.data[0].z, dtype=float)
    assert z.shape == (3, common.MAX_AXIS)
    assert fig.data[0].x[0] == "d300"
    np.testing.assert_array_equal(z, wide[:, 300 : 300 + common.MAX_AXIS])


def test_pca_recovers_a_line_and_reports_explained_variance() -> None:
    t = np.linspace(-1, 1, 9)
    direction = np.array([3.0, 4.0, 0.0]) / 5.0
    points = t[:, None] * direction[None, :]
    coords, explained = le.pca_2d(points)
    np.testing.assert_allclose(np.abs(coords[:, 0]), np.abs(t), atol=1e-9)
    np.testing.assert_allclose(coords[:, 1], 0, atol=1e-9)
    assert explained[0] == pytest.approx(1.0)
    fig = fe.pca_figure(coords, explained, [str(i) for i in range(9)], "P")
    np.testing.assert_allclose(fig.data[1].x, coords[:, 0])
    assert "100%" in fig.layout.xaxis.title.text


def test_cosine_matrix_matches_definition(tiny_trace: Trace) -> None:
    x = tiny_trace["hook_embed"].astype(np.float64)
    sims = le.cosine_matrix(x)
    i, j = 1, 4
    expected = x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
    assert sims[i, j] == pytest.approx(expected)
    np.testing.assert_allclose(np.diag(sims), 1.0)
    fig = fe.cosine_heatmap(sims, tiny_trace.token_strs, "C")
    np.testing.assert_allclose(np.array(fig.data[0].z, dtype=float), sims)
    assert fig.data[0].zmin == -1.0 and fig.data[0].zmax == 1.0


def test_token_embeddings_of_a_repeated_token_are_identical_without_position(
    tiny_trace: Trace,
) -> None:
    ids = list(tiny_trace.token_ids)
    first = next(k for k, t in enumerate(ids) if ids.count(t) > 1)
    second = ids.index(ids[first], first + 1)
    article = le.cosine_matrix(tiny_trace["hook_embed"])
    gpt = le.cosine_matrix(le.embedding_vectors(tiny_trace, "token + position"))
    assert article[first, second] == pytest.approx(1.0)
    assert gpt[first, second] < 0.999


def test_nearest_neighbours_finds_the_closest_rows() -> None:
    table = np.array(
        [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0], [0.7, 0.7]], dtype=np.float32
    )
    ids, sims = le.nearest_neighbours(table, 0, k=3)
    assert list(ids) == [1, 4, 2]
    assert sims[0] == pytest.approx(0.9 / math.hypot(0.9, 0.1))
    ids_valid, _ = le.nearest_neighbours(table, 0, k=3, n_valid=3)
    assert list(ids_valid) == [1, 2]
    fig = fe.neighbours_figure(ids, sims, ["b", "e", "c"], "a")
    np.testing.assert_allclose(fig.data[0].x, sims)
    assert fig.data[0].y[0] == "b (id 1)"


# --- attention -----------------------------------------------------------------------------


def test_raw_scores_with_the_mask_equal_the_recorded_scores(tiny_trace: Trace) -> None:
    for layer in range(tiny_trace.config.n_layer):
        for head in range(tiny_trace.config.n_head):
            masked = la.causal_mask(la.raw_scores(tiny_trace, layer, head))
            recorded = tiny_trace.get("attn.hook_attn_scores", layer)[head].astype(np.float64)
            lower = np.tril_indices(tiny_trace.n_tokens)
            np.testing.assert_allclose(masked[lower], recorded[lower], rtol=1e-4, atol=1e-5)
            assert np.all(np.isneginf(masked[np.triu_indices(tiny_trace.n_tokens, 1)]))
            np.testing.assert_allclose(
                softmax(masked),
                tiny_trace.get("attn.hook_pattern", layer)[head],
                atol=1e-5,
            )


def test_unmasked_pattern_puts_weight_on_the_future_and_rows_sum_to_one(
    tiny_trace: Trace,
) -> None:
    article = la.unmasked_pattern(tiny_trace, 0, 0)
    np.testing.assert_allclose(article.sum(-1), 1.0, atol=1e-9)
    future = la.future_weight(article)
    assert future[0] > 0.5  # the first token sees only the future without a mask
    assert future[-1] == 0.0
    real = la.future_weight(tiny_trace.get("attn.hook_pattern", 0)[0])
    np.testing.assert_allclose(real, 0.0, atol=1e-7)


def test_value_contributions_are_norms_of_weighted_values(tiny_trace: Trace) -> None:
    layer, head, pos = 1, 1, 7
    contrib = la.value_contributions(tiny_trace, layer, head, pos)
    w = tiny_trace.get("attn.hook_pattern", layer)[head, pos]
    v = tiny_trace.get("attn.hook_v", layer)[:, head, :]
    assert contrib[3] == pytest.approx(float(np.linalg.norm(w[3] * v[3])), rel=1e-5)
    np.testing.assert_allclose(contrib[pos + 1 :], 0.0)
    z = tiny_trace.get("attn.hook_z", layer)[pos, head]
    np.testing.assert_allclose((w[:, None] * v).sum(0), z, atol=1e-5)


def test_pattern_heatmap_equals_the_trace_and_hovers_raw_scores(tiny_trace: Trace) -> None:
    layer, head = 1, 0
    pattern = tiny_trace.get("attn.hook_pattern", layer)[head]
    scores = tiny_trace.get("attn.hook_attn_scores", layer)[head]
    fig = fa.pattern_heatmap(pattern, scores, tiny_trace.token_strs, "Layer 1, head 0")
    heat = fig.data[0]
    z = np.array(heat.z, dtype=float)
    np.testing.assert_array_equal(z, pattern)
    np.testing.assert_allclose(z.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(z, 1) == 0)
    assert list(heat.x) == common.token_labels(tiny_trace.token_strs)
    assert list(heat.y) == list(heat.x)
    assert heat.customdata[0][1] == "masked (−∞)"
    assert heat.customdata[2][1] == f"{scores[2, 1]:.3f}"
    assert "raw score" in heat.hovertemplate and "weight" in heat.hovertemplate
    assert fig.layout.title.text == "Layer 1, head 0"
    assert fig.layout.yaxis.autorange == "reversed"


def test_head_grid_has_one_map_per_head_titled_with_its_label(tiny_trace: Trace) -> None:
    patterns = tiny_trace.get("attn.hook_pattern", 0)
    labels = ["previous-token", "broad"]
    fig = fa.head_grid(patterns, labels, tiny_trace.token_strs, selected=1, pos=5, title="L0")
    assert len(fig.data) == tiny_trace.config.n_head
    rows = fa.grid_window(tiny_trace.n_tokens, 5)
    for h in range(tiny_trace.config.n_head):
        np.testing.assert_array_equal(np.array(fig.data[h].z), patterns[h][rows, rows])
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["head 0: previous-token", "▶ head 1: broad"]


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
    assert raw.x == tuple(common.token_labels(tiny_trace.token_strs))


def test_head_scores_table_lists_every_head_with_its_label(tiny_trace: Trace) -> None:
    scores = head_scores(tiny_trace)
    table = fa.head_scores_table(scores)
    cfg = tiny_trace.config
    assert len(table) == cfg.n_layer * cfg.n_head
    row = table[(table["layer"] == 1) & (table["head"] == 0)].iloc[0]
    assert row["label"] == scores.label(1, 0)
    assert row["previous-token"] == pytest.approx(scores.previous[1, 0])
    assert row["first-token sink"] == pytest.approx(scores.first[1, 0])


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
