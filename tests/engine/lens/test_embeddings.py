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
