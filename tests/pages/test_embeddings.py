"""Page 2 (embeddings) in AppTest: heatmaps equal the Trace, PCA source, nearest neighbours."""

from __future__ import annotations

import numpy as np

from engine.checkpoints import LoadedModel
from engine.figures import common
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
