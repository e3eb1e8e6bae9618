"""Page 2 (embeddings) in AppTest: heatmaps equal the Trace, PCA source, nearest neighbours."""

from __future__ import annotations

import numpy as np

from engine.checkpoints import LoadedModel
from engine.figures import common
from engine.figures import embeddings as fe
from engine.lens import embeddings as le
from tests.support import MIXED, chart, values, z_of

open_page, trace_of, TEXT = MIXED.open, MIXED.trace, MIXED.text


def test_embedding_heatmaps_equal_the_trace(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/2_Embeddings.py", sections=("embeddings_sec_cosine",))
    trace = trace_of(tiny_loaded)
    labels = common.token_labels(trace.token_strs)
    token = chart(at, "embeddings_heatmap_Token embedding")
    # the tabs are lazy: only the open one's heatmap is sent
    assert len([c for c in at.get("plotly_chart") if "embeddings_heatmap_" in c.proto.id]) == 1
    at.session_state["embeddings_which"] = "Position embedding W_P[i]"
    position = chart(at.run(), "embeddings_heatmap_Position embedding")
    at.session_state["embeddings_which"] = "Sum: what enters block 0"
    summed = chart(at.run(), "embeddings_heatmap_token + position")
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
    at = open_page("pages/2_Embeddings.py", pos="1", sections=("embeddings_sec_neighbours",))
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


def test_the_pca_map_takes_the_page_width_and_marks_every_point_it_leaves_unlabelled(
    tiny_loaded: LoadedModel,
) -> None:
    """Drawn in a 3:2 column the map had a 200 px plot at 1024 px and left half of a repeated
    line's points without a label, silently. Now it has the page's width (labels placed for
    PCA_PAGE_PX), and a point without a label is hollow and counted in the legend."""
    line = "The little dog ran to the river and drank some cold water."
    text = f"{line}\n{line}"
    at = open_page("pages/2_Embeddings.py", text=text, pos="5")
    for column in at.columns:
        assert all("embeddings_pca_chart" not in c.proto.id for c in column.get("plotly_chart"))
    spec = chart(at, "embeddings_pca_chart")
    trace = trace_of(tiny_loaded, text=text)
    coords, explained = le.pca_2d(le.embedding_vectors(trace, "token + position"))
    # the page's labels are the figure's for the page-wide plot area at 16 px
    expected = fe.pca_figure(
        coords, explained, trace.token_strs, "t", 5, area_px=fe.PCA_PAGE_PX, font_px=16.0
    )
    tokens = spec["data"][1]
    assert tokens["text"] == list(expected.data[1].text)
    hollow = [i for i, s in enumerate(tokens["marker"]["symbol"]) if s == "circle-open"]
    assert hollow == [i for i, t in enumerate(tokens["text"]) if not t]
    if hollow:
        assert f"({len(hollow)} of {trace.n_tokens} tokens)" in spec["data"][2]["name"]
        assert spec["layout"]["showlegend"] is True
