"""The dropout page's numbers: a seeded dropout pass through the real model, and the average of
many masks on a stored attention pattern (pure numpy).

Inverted dropout (what GPT-2 does in training): keep each value with probability 1 - p and divide
the survivors by 1 - p, so the expected value is the value itself and evaluation mode needs
nothing (identity). The article's version keeps survivors as they are, so its expectation is
(1 - p) x, which is why its formula `x_hat = (1 - p) x` is the old, test-time way to match it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from engine.capture import run_with_trace
from engine.model import GPT
from engine.names import act_name
from engine.tokenizer import Tokenizer
from engine.trace import Trace

MAX_P = 0.9


def check_p(p: float) -> float:
    p = float(p)
    if not 0.0 < p <= MAX_P:
        raise ValueError(f"the dropout probability must be in (0, {MAX_P}], got {p!r}")
    return p


def dropout_pass(
    model: GPT,
    tokenizer: Tokenizer,
    ids: list[int],
    p: float,
    seed: int,
    model_name: str = "",
    layers: Iterable[int] | None = None,
) -> Trace:
    """One forward pass with dropout p everywhere GPT-2 applies it (embeddings, attention weights,
    both residual branches), masks drawn from `seed`. The shared model stays in evaluation mode;
    the Trace also holds each layer's `attn.hook_pattern_dropped`.

    `layers`: keep only these layers' attention patterns before and after the mask
    (`attn.hook_pattern`, `attn.hook_pattern_dropped`) and the logits, what the Dropout page
    draws; the masks and every number are the same as in the full pass (the whole pass runs).
    A full dropout pass cannot be lazy (its masks come from one generator in forward order):
    at 1,024 tokens on GPT-2 small it holds 2.6 GiB, one layer's patterns and the logits
    292 MiB. None keeps every activation."""
    sites = None
    if layers is not None:
        sites = [
            act_name(site, layer)
            for layer in layers
            for site in ("attn.hook_pattern", "attn.hook_pattern_dropped")
        ]
    return run_with_trace(
        model,
        tokenizer,
        list(ids),
        dropout_p=check_p(p),
        seed=int(seed),
        model_name=model_name,
        sites=sites,
    )


def causal_cells(n: int) -> np.ndarray:
    """[n, n] bool: the cells a causal attention pattern may fill (key <= query)."""
    return np.tril(np.ones((n, n), dtype=bool))


def kept_mask(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Which cells survived the mask: a cell that had weight and still has it. (A cell whose
    weight was exactly 0 cannot show whether it was kept; it is reported as kept.)"""
    before = np.asarray(before)
    after = np.asarray(after)
    return (after != 0) | (before == 0)


@dataclass(frozen=True)
class LayerMaskStats:
    """What one dropout mask did to a layer's attention weights (every head), from the weights
    before the mask and after it (the pass's `attn.hook_pattern` and `hook_pattern_dropped`).

    cells: how many weights could be dropped (the causal cells of every head: H T (T + 1) / 2).
    share_dropped: the share of those the mask zeroed (`kept_mask`).
    survivor_ratio: mean of after / before over the kept cells with a weight > 0 (1 / (1 - p)
        up to rounding); None when no such cell was kept.
    row_sum_min, row_sum_max: the smallest and largest row sum after the mask (1 before it).
    """

    cells: int
    share_dropped: float
    survivor_ratio: float | None
    row_sum_min: float
    row_sum_max: float


def layer_mask_stats(before: np.ndarray, after: np.ndarray) -> LayerMaskStats:
    """`LayerMaskStats` of one layer's weights `before` and `after` the mask, each
    [H, T, T] (queries by keys, causal). At T=1,024 on GPT-2 small this reads 12.6 million
    weights twice (150-160 ms measured here), so the Dropout page caches it per pass and layer."""
    before, after = np.asarray(before), np.asarray(after)
    cells = np.broadcast_to(causal_cells(before.shape[-1]), before.shape)
    kept = kept_mask(before, after)
    weighted = kept & cells & (before > 0)
    ratio = after[weighted] / before[weighted]
    row_sums = after.sum(-1)
    return LayerMaskStats(
        cells=int(cells.sum()),
        share_dropped=float(1 - kept[cells].mean()),
        survivor_ratio=float(ratio.mean()) if ratio.size else None,
        row_sum_min=float(row_sums.min()),
        row_sum_max=float(row_sums.max()),
    )


@dataclass(frozen=True)
class MaskAverage:
    """Running averages over n independent masks of one array `x`.

    counts: [k] numbers of masks at which the errors were measured (1 .. n).
    err_inverted: [k] mean |average of inverted-dropout outputs - x| (goes to 0).
    err_plain: [k] mean |average of the article's unscaled outputs - x| (stays near p·mean|x|).
    err_plain_scaled: [k] mean |average of the unscaled outputs - (1 - p) x| (goes to 0).
    avg_inverted, avg_plain: the averages after all n masks, shaped like x.
    """

    p: float
    n: int
    counts: np.ndarray
    err_inverted: np.ndarray
    err_plain: np.ndarray
    err_plain_scaled: np.ndarray
    avg_inverted: np.ndarray
    avg_plain: np.ndarray


def mask_average(
    x: np.ndarray, p: float, n: int, seed: int, where: np.ndarray | None = None
) -> MaskAverage:
    """Draw n masks (numpy, seeded) over `x`; track how the averages approach x and (1 - p) x.

    `where` limits the error to some cells (e.g. the causal cells of a pattern)."""
    p = check_p(p)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    x = np.asarray(x, dtype=np.float64)
    sel = np.ones(x.shape, dtype=bool) if where is None else np.asarray(where, dtype=bool)
    rng = np.random.default_rng(int(seed))
    total_kept = np.zeros_like(x)
    errs = np.empty((n, 3))
    for i in range(n):
        total_kept += (rng.random(x.shape) >= p) * x
        plain = total_kept / (i + 1)
        inverted = plain / (1.0 - p)
        errs[i] = (
            np.abs(inverted - x)[sel].mean(),
            np.abs(plain - x)[sel].mean(),
            np.abs(plain - (1.0 - p) * x)[sel].mean(),
        )
    plain = total_kept / n
    return MaskAverage(
        p=p,
        n=n,
        counts=np.arange(1, n + 1),
        err_inverted=errs[:, 0],
        err_plain=errs[:, 1],
        err_plain_scaled=errs[:, 2],
        avg_inverted=plain / (1.0 - p),
        avg_plain=plain,
    )


__all__ = [
    "MAX_P",
    "LayerMaskStats",
    "MaskAverage",
    "causal_cells",
    "check_p",
    "dropout_pass",
    "kept_mask",
    "layer_mask_stats",
    "mask_average",
]
