"""engine.lens.article: the next-token loss on the user's text is the cross-entropy a GPT is
trained to lower."""

from __future__ import annotations

import numpy as np
import torch

from engine.lens import article
from engine.trace import Trace


def test_next_token_loss_is_torch_cross_entropy_whatever_the_chunk(tiny_trace: Trace) -> None:
    T = tiny_trace.n_tokens
    logits = torch.from_numpy(
        np.array(tiny_trace.logits[:-1, : tiny_trace.n_valid_ids], dtype=np.float64)
    )
    logits[:, list(tiny_trace.gap_ids)] = -torch.inf
    targets = torch.tensor(np.asarray(tiny_trace.token_ids[1:], dtype=np.int64))
    expected = torch.nn.functional.cross_entropy(logits, targets, reduction="none").numpy()
    for chunk in (1, 3, T):  # one row at a time, chunks that do not divide T - 1, all at once
        loss = article.next_token_loss(tiny_trace, chunk=chunk)
        assert loss.shape == (T - 1,)
        np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-12)
