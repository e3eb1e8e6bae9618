"""Page 4 (feed-forward) in AppTest: the selected layer's hidden units equal the Trace's."""

from __future__ import annotations

import numpy as np
import pytest

import ui.cache
from engine.checkpoints import LoadedModel
from engine.figures.common import token_labels
from engine.lens import feed_forward as lens_ff
from engine.lens.feed_forward import top_neurons
from tests.support import PLAIN, charts, z_of

open_page, trace_of, TEXT = PLAIN.open, PLAIN.trace, PLAIN.text


def test_feed_forward_page_draws_the_selected_layers_hidden_units(
    tiny_loaded: LoadedModel,
) -> None:
    at = open_page(
        "pages/4_Feed_forward.py", layer="1", pos="3", sections=("feed_forward_sec_norms",)
    )
    assert at.title[0].value == "4 · Feed-forward · layer 1"
    assert at.latex
    ref = trace_of(tiny_loaded)
    c = charts(at)
    post = ref.get("mlp.hook_post", 1)
    ids = top_neurons(post, 24, "selective")  # the page's default ranking
    np.testing.assert_allclose(z_of(c["feed_forward_map"]), post[:, ids].T, rtol=1e-5, atol=1e-6)
    assert c["feed_forward_map"]["data"][0]["x"] == token_labels(ref.token_strs)
    hist = c["feed_forward_hist"]["data"]
    np.testing.assert_allclose(hist[0]["x"], ref.get("mlp.hook_pre", 1)[3], rtol=1e-5)
    norms = [np.linalg.norm(ref.get("hook_mlp_out", i), axis=-1) for i in range(2)]
    np.testing.assert_allclose(z_of(c["feed_forward_norms"]), norms, rtol=1e-4)
    at.session_state["layer"] = 0
    at.run()
    np.testing.assert_allclose(
        z_of(charts(at)["feed_forward_map"]),
        ref.get("mlp.hook_post", 0)[:, top_neurons(ref.get("mlp.hook_post", 0), 24, "selective")].T,
        rtol=1e-5,
        atol=1e-6,
    )


def test_the_ranking_is_computed_once_per_layer_and_cut_to_the_slider(
    tiny_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page("pages/4_Feed_forward.py", layer="1")
    post = trace_of(tiny_loaded).get("mlp.hook_post", 1)
    calls: list[object] = []
    for module in (ui.cache, lens_ff):  # through the cache, or directly
        monkeypatch.setattr(module, "top_neurons", lambda *a, **k: calls.append(a))
    at.slider(key="feed_forward_k").set_value(8).run()  # fewer units: the same order, cut
    assert not at.exception and calls == []
    ids = top_neurons(post, 8, "selective")
    np.testing.assert_allclose(z_of(charts(at)["feed_forward_map"]), post[:, ids].T, rtol=1e-5)
