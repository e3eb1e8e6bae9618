"""engine.lens.feed_forward: GELU and the ranking of hidden units."""

from __future__ import annotations

import numpy as np
import pytest

from engine.lens import feed_forward as lff
from engine.trace import Trace


def test_gelu_reproduces_the_stored_mlp_activations(tiny_trace: Trace) -> None:
    for layer in range(tiny_trace.config.n_layer):
        pre = tiny_trace.get("mlp.hook_pre", layer)
        post = tiny_trace.get("mlp.hook_post", layer)
        np.testing.assert_allclose(lff.gelu(pre), post, atol=1e-5)


def test_selective_ranking_prefers_units_that_fire_on_some_tokens_only() -> None:
    post = np.zeros((5, 4))
    post[:, 0] = 6.0  # always on: the largest peak, but no selectivity
    post[2, 1] = 3.0  # fires on one token
    post[:, 2] = -0.1
    post[4, 3] = 1.0
    assert lff.top_neurons(post, 2, "peak").tolist() == [0, 1]
    assert lff.top_neurons(post, 2, "selective").tolist() == [1, 3]
    with pytest.raises(ValueError, match="unknown ranking"):
        lff.top_neurons(post, 2, "loudest")
