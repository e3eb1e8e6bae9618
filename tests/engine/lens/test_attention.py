"""engine.lens.attention: raw scores, the unmasked pattern and value contributions."""

from __future__ import annotations

import numpy as np
import pytest

from engine.lens import attention as la
from engine.sampling import softmax
from engine.trace import Trace


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
