"""engine.lens.residual: norms of the residual stream."""

from __future__ import annotations

import numpy as np
import pytest

from engine.lens import residual as lres
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


def test_each_residual_step_is_x_plus_f_of_x(tiny_trace: Trace) -> None:
    steps = lres.residual_steps(tiny_trace, 2)
    assert [s.label for s in steps] == [
        "layer 0 attention",
        "layer 0 MLP",
        "layer 1 attention",
        "layer 1 MLP",
    ]
    x = tiny_trace.get("hook_resid_mid", 1)[2].astype(np.float64)
    f = tiny_trace.get("hook_mlp_out", 1)[2].astype(np.float64)
    assert steps[3].after_norm == pytest.approx(np.linalg.norm(x + f), rel=1e-5)
    assert steps[3].cosine == pytest.approx(x @ f / np.linalg.norm(x) / np.linalg.norm(f))
    assert steps[1].after_norm == pytest.approx(steps[2].before_norm)
