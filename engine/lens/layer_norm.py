"""Stage 5, layer norm: statistics of the vectors that enter each LayerNorm.

LayerNorm (Ba, Kiros & Hinton 2016, "Layer Normalization") maps each token's vector x to
`(x - mean) / sqrt(var + eps) * gamma + beta`, the mean and the (population) variance taken over
that token's features. GPT-2 has two per block (`ln_1` before attention, `ln_2` before the MLP)
and a final `ln_f`; their inputs are the residual stream (`hook_resid_pre`, `hook_resid_mid`,
the last `hook_resid_post`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.trace import Trace


@dataclass(frozen=True)
class LNStats:
    """Statistics of the vectors entering one LayerNorm, per token."""

    name: str  # "blocks.i.ln1", "blocks.i.ln2" or "ln_final"
    mean: np.ndarray  # [T]
    std: np.ndarray  # [T] population standard deviation over the features
    scale: np.ndarray  # [T] sqrt(var + eps), what the LayerNorm divides by


def ln_input(trace: Trace, which: str, layer: int | None = None) -> np.ndarray:
    """The residual [T, d] that enters `ln1` / `ln2` of block `layer`, or `ln_final`.

    `which` is "ln1" (reads `hook_resid_pre`), "ln2" (`hook_resid_mid`) or "ln_final" (the last
    block's `hook_resid_post`; `layer` is ignored). Raises ValueError for any other `which`."""
    if which == "ln1":
        return trace.get("hook_resid_pre", layer)
    if which == "ln2":
        return trace.get("hook_resid_mid", layer)
    if which == "ln_final":
        return trace.get("hook_resid_post", trace.config.n_layer - 1)
    raise ValueError(f"unknown LayerNorm {which!r}: use ln1, ln2 or ln_final")


def ln_stats(trace: Trace, which: str, layer: int | None = None) -> LNStats:
    """Mean, population standard deviation (float64, over the d features) and the stored divisor
    `hook_scale` of each token's vector entering one LayerNorm (see `ln_input` for `which`).
    Raises ValueError for an unknown `which`."""
    x = ln_input(trace, which, layer).astype(np.float64)
    scale_site = "ln_final.hook_scale" if which == "ln_final" else f"{which}.hook_scale"
    scale = trace.acts[scale_site] if which == "ln_final" else trace.get(scale_site, layer)
    name = "ln_final" if which == "ln_final" else f"blocks.{layer}.{which}"
    return LNStats(name=name, mean=x.mean(-1), std=x.std(-1), scale=scale[:, 0].astype(np.float64))


def all_ln_stats(trace: Trace) -> list[LNStats]:
    """Every LayerNorm in forward order: ln1, ln2 of each block, then ln_final
    (2 * n_layer + 1 entries)."""
    out = []
    for layer in range(trace.config.n_layer):
        out.append(ln_stats(trace, "ln1", layer))
        out.append(ln_stats(trace, "ln2", layer))
    out.append(ln_stats(trace, "ln_final"))
    return out


__all__ = ["LNStats", "all_ln_stats", "ln_input", "ln_stats"]
