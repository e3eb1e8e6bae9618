"""Stage 4, the feed-forward block: `mlp_out = W2 gelu(W1 x + b1) + b2`, per token.

The Trace stores the hidden pre-activations `mlp.hook_pre` [T, d_mlp], the GELU outputs
`mlp.hook_post` [T, d_mlp] and the block's output `hook_mlp_out` [T, d]. GELU is the Gaussian
Error Linear Unit of Hendrycks & Gimpel 2016 ("Gaussian Error Linear Units (GELUs)") in its tanh
approximation, which GPT-2 uses (Hugging Face's "gelu_new").
"""

from __future__ import annotations

import numpy as np

from engine.trace import Trace

TOP_NEURONS = 24  # hidden units `top_neurons` returns by default
_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))

RANKINGS: dict[str, str] = {
    "selective": "most selective: peak minus median over the tokens",
    "peak": "largest activation on any token",
}


def gelu(x: np.ndarray) -> np.ndarray:
    """GPT-2's GELU, the tanh approximation of Hendrycks & Gimpel 2016 ("gelu_new"):
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), elementwise, float64, any shape."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))


def top_neurons(post: np.ndarray, k: int = TOP_NEURONS, rank: str = "peak") -> np.ndarray:
    """Indices [k] of k hidden units, strongest first (ties by index); `post` is [T, d_mlp],
    after GELU, and k is clipped to 1..d_mlp.

    rank "peak": the largest activation on any token; "selective": that peak minus the unit's
    median over the tokens, so units that are on for every token (common in trained models)
    give way to units that fire on some tokens only. Raises ValueError for another `rank`
    (see RANKINGS)."""
    if rank not in RANKINGS:
        raise ValueError(f"unknown ranking {rank!r}: use one of {sorted(RANKINGS)}")
    # the maximum in the activations' own dtype, then float64: the same number (a maximum is
    # one of the values), without a float64 copy of [T, d_mlp] (25 MB at GPT-2 small, T=1,024)
    score = np.asarray(post).max(axis=0).astype(np.float64)
    if rank == "selective":
        score = score - np.median(np.asarray(post, dtype=np.float64), axis=0)
    k = max(1, min(int(k), score.size))
    order = np.lexsort((np.arange(score.size), -score))
    return order[:k]


def mlp_out_norms(trace: Trace) -> np.ndarray:
    """[n_layer, T] float64: the size (L2 norm) of what each layer's MLP adds to each token
    (`hook_mlp_out`)."""
    return np.stack(
        [
            np.linalg.norm(trace.get("hook_mlp_out", i).astype(np.float64), axis=-1)
            for i in range(trace.config.n_layer)
        ]
    )


def activation_summary(pre: np.ndarray) -> dict[str, float]:
    """How one token's hidden pre-activations `pre` [d_mlp] fare under GELU, tanh and ReLU: the
    number of units, the shares below 0 and above 2, and the largest pre-activation, GELU output
    and tanh output."""
    pre = np.asarray(pre, dtype=np.float64)
    g = gelu(pre)
    return {
        "units": float(pre.size),
        "share negative (GELU ≈ 0)": float((pre < 0).mean()),
        "share above 2 (tanh saturates)": float((pre > 2).mean()),
        "largest pre-activation": float(pre.max()),
        "largest GELU output": float(g.max()),
        "largest tanh output": float(np.tanh(pre).max()),
    }


__all__ = [
    "RANKINGS",
    "TOP_NEURONS",
    "activation_summary",
    "gelu",
    "mlp_out_norms",
    "top_neurons",
]
