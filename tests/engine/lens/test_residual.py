"""engine.lens.residual: norms of the residual stream."""

from __future__ import annotations

import numpy as np

from engine.lens.residual import residual_norms, residual_stack
from engine.trace import Trace


def test_residual_norms_are_the_l2_norms_of_the_stored_residuals(tiny_trace: Trace) -> None:
    expected = [
        tiny_trace["blocks.0.hook_resid_pre"],
        tiny_trace["blocks.0.hook_resid_post"],
        tiny_trace["blocks.1.hook_resid_post"],
    ]
    stack = residual_stack(tiny_trace)
    assert stack.shape == (3, tiny_trace.n_tokens, 32)
    for row, resid in enumerate(expected):
        np.testing.assert_array_equal(stack[row], resid)
    norms = residual_norms(tiny_trace)
    np.testing.assert_allclose(
        norms, np.linalg.norm(np.stack(expected).astype(np.float64), axis=-1), rtol=1e-12
    )
