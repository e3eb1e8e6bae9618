"""engine.figures.article: the article's α and GPT's row of weights draw their data."""

from __future__ import annotations

import numpy as np

from engine.figures import article as fart
from engine.figures.common import token_labels
from engine.lens.article import article_alpha
from engine.trace import Trace
from tests.support import assert_validates_unchanged


def test_alpha_figure_draws_one_row_per_key_with_numbered_components(tiny_trace: Trace) -> None:
    pos = 3
    alpha = article_alpha(tiny_trace, 0, 1, pos)
    fig = fart.alpha_figure(alpha, tiny_trace.token_strs, pos)
    np.testing.assert_allclose(np.array(fig.data[0].z, dtype=float), alpha, rtol=1e-6)
    assert list(fig.data[0].x) == list(range(alpha.shape[1]))
    assert list(fig.data[0].y) == token_labels(tiny_trace.token_strs)
    assert fig.layout.xaxis.type == "linear" and fig.layout.xaxis.tickangle == 0
    assert_validates_unchanged(fig)  # built without validation (spec_figure)


def test_gpt_row_figure_draws_the_weights_up_to_the_query(tiny_trace: Trace) -> None:
    pos = 4
    weights = tiny_trace.get("attn.hook_pattern", 1)[0, pos]
    fig = fart.gpt_row_figure(weights, tiny_trace.token_strs, pos)
    np.testing.assert_allclose(fig.data[0].x, weights[: pos + 1])
    assert list(fig.data[0].y) == token_labels(tiny_trace.token_strs, 0, pos + 1)
    assert_validates_unchanged(fig)
    assert_validates_unchanged(fart.gpt_row_figure(weights, tiny_trace.token_strs, 0))
