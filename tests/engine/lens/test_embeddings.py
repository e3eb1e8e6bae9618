"""engine.lens.embeddings: the embedding vectors and their similarities."""

from __future__ import annotations

import numpy as np
import pytest

from engine.lens import embeddings as le
from engine.trace import Trace


def test_embedding_sum_is_the_input_of_block_zero(tiny_trace: Trace) -> None:
    summed = le.embedding_vectors(tiny_trace, "token + position")
    np.testing.assert_allclose(summed, tiny_trace.get("hook_resid_pre", 0), atol=1e-6)
    with pytest.raises(ValueError, match="unknown embedding source"):
        le.embedding_vectors(tiny_trace, "nonsense")


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


def test_pca_shares_of_components_that_do_not_exist_are_not_measurable() -> None:
    """One point has no spread; two points (or one dimension) have one direction only; the
    missing shares are NaN (shown as "not measurable here"), never 0% or 100% of nothing."""
    from engine.lens.embeddings import pca_2d

    rng = np.random.default_rng(0)
    coords, explained = pca_2d(rng.normal(size=(1, 5)))
    assert coords.shape == (1, 2) and np.isnan(explained).all()
    coords, explained = pca_2d(rng.normal(size=(2, 5)))
    assert explained[0] == pytest.approx(1.0) and np.isnan(explained[1])
    _, explained = pca_2d(rng.normal(size=(6, 1)))
    assert explained[0] == pytest.approx(1.0) and np.isnan(explained[1])
    _, explained = pca_2d(np.ones((4, 3)))  # identical vectors: no spread
    assert np.isnan(explained).all()
    _, explained = pca_2d(rng.normal(size=(6, 4)))
    assert np.isfinite(explained).all() and explained.sum() <= 1 + 1e-12
