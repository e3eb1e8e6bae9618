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

ARTICLE_EPS = 1e-8  # the article's `torch.sqrt(variance + 1e-8)`


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
    x = ln_input(trace, which, layer)
    scale_site = "ln_final.hook_scale" if which == "ln_final" else f"{which}.hook_scale"
    scale = trace.acts[scale_site] if which == "ln_final" else trace.get(scale_site, layer)
    name = "ln_final" if which == "ln_final" else f"blocks.{layer}.{which}"
    return stats_of(name, x, scale)


def stats_of(name: str, x: np.ndarray, scale: np.ndarray) -> LNStats:
    """The `LNStats` named `name` of the residual x [T, d] entering a LayerNorm and its
    recorded divisor `hook_scale` [T, 1]: the mean and population standard deviation of each
    row in float64 (what `ln_stats` and `engine.lens.summary` both compute)."""
    x = np.asarray(x, dtype=np.float64)
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


def gpt_normalize(x: np.ndarray, eps: float) -> np.ndarray:
    """GPT-2's normalisation without gamma and beta (Ba et al. 2016): each token (row of x, any
    [..., d]) over its own features, `(x - mean) / sqrt(var + eps)` with the population
    variance; float64, the shape of x."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def ln_affine(normalized: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """The LayerNorm's learned step, `gamma * x̂ + beta` feature by feature (float64; x̂ is
    [..., d], gamma and beta are [d])."""
    return np.asarray(normalized, dtype=np.float64) * np.asarray(
        gamma, dtype=np.float64
    ) + np.asarray(beta, dtype=np.float64)


def article_normalize(x: np.ndarray) -> np.ndarray:
    """The article's `layer_normalization`: `torch.mean` and `torch.var` over the whole tensor
    (every token and feature at once; torch.var is the unbiased estimate), eps ARTICLE_EPS =
    1e-8. float64, the shape of x."""
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / np.sqrt(x.var(ddof=1) + ARTICLE_EPS)


def future_leak(x: np.ndarray, eps: float) -> tuple[float, float]:
    """(article, gpt): the largest change of the outputs for tokens 0..T-2 of x [T, d] when the
    last token is added, under the article's whole-tensor normalisation and under GPT-2's
    per-token one (always 0): the article's version lets every token see the future through
    the shared statistics. (0.0, 0.0) for fewer than two tokens."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < 2:
        return 0.0, 0.0
    article = np.abs(article_normalize(x)[:-1] - article_normalize(x[:-1])).max()
    gpt = np.abs(gpt_normalize(x, eps)[:-1] - gpt_normalize(x[:-1], eps)).max()
    return float(article), float(gpt)


__all__ = [
    "ARTICLE_EPS",
    "LNStats",
    "all_ln_stats",
    "article_normalize",
    "future_leak",
    "gpt_normalize",
    "ln_affine",
    "ln_input",
    "ln_stats",
    "stats_of",
]
