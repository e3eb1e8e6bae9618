"""Stage 6, the residual stream: the running sum that every block reads from and adds to.

GPT-2's blocks are pre-norm residual blocks, `x = x + attn(ln_1(x))`, `x = x + mlp(ln_2(x))`,
so the final vector is exactly the embeddings plus everything each sub-block wrote.
"""

from __future__ import annotations

import numpy as np

from engine.trace import Trace


def residual_stack(trace: Trace) -> np.ndarray:
    """[n_layer + 1, T, d] float32: the residual after the embeddings (`blocks.0.hook_resid_pre`),
    then after every block (`blocks.i.hook_resid_post`)."""
    first = trace.get("hook_resid_pre", 0)
    rest = [trace.get("hook_resid_post", i) for i in range(trace.config.n_layer)]
    return np.stack([first, *rest]).astype(np.float32)


def residual_norms(trace: Trace) -> np.ndarray:
    """[n_layer + 1, T] float64: L2 norm of each token's residual after the embeddings and after
    each block (the rows of `residual_stack`)."""
    return np.linalg.norm(residual_stack(trace).astype(np.float64), axis=-1)


__all__ = ["residual_norms", "residual_stack"]
