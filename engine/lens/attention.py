"""Stage 3, multi-head self-attention: one head's scores, mask, weights and value contributions,
recomputed from the Trace's stored q, k, v and pattern (the model never runs).

Scaled dot-product attention with a causal mask (Vaswani et al. 2017, "Attention Is All You
Need"; GPT-2: Radford et al. 2019): weight_ij = softmax_j(q_i · k_j / sqrt(d_head)) over the keys
j <= i, and the head's output z_i = sum_j weight_ij v_j. The softmax is the engine's one numpy
softmax, `engine.sampling.softmax`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.sampling import softmax
from engine.trace import Trace


def raw_scores(trace: Trace, layer: int, head: int) -> np.ndarray:
    """[T, T] float64: q_i · k_j / sqrt(d_head) for every (query i, key j) pair of one head, the
    future included (before the mask)."""
    q = trace.get("attn.hook_q", layer)[:, head, :].astype(np.float64)
    k = trace.get("attn.hook_k", layer)[:, head, :].astype(np.float64)
    return q @ k.T / math.sqrt(q.shape[-1])


def causal_mask(scores: np.ndarray) -> np.ndarray:
    """A float64 copy of square scores [T, T] with every future key (j > i) set to -inf: what
    GPT's softmax sees."""
    out = np.array(scores, dtype=np.float64, copy=True)
    out[np.triu_indices(out.shape[0], k=1)] = -np.inf
    return out


def unmasked_pattern(trace: Trace, layer: int, head: int) -> np.ndarray:
    """[T, T] float64, rows sum to 1: the article's version of one head, the softmax of the raw
    scores without the causal mask, so every token also attends to the tokens after it (a GPT
    must not: it would see the answer)."""
    return softmax(raw_scores(trace, layer, head))


def value_contributions(trace: Trace, layer: int, head: int, pos: int) -> np.ndarray:
    """[T] float64: the length ‖weight_j v_j‖ for query `pos`, i.e. how much each key's value
    vector adds to the head's output z_pos = sum_j weight_j v_j (0 for future keys)."""
    w = trace.get("attn.hook_pattern", layer)[head, pos].astype(np.float64)
    v = trace.get("attn.hook_v", layer)[:, head, :].astype(np.float64)
    return np.linalg.norm(w[:, None] * v, axis=-1)


def future_weight(pattern: np.ndarray) -> np.ndarray:
    """[T] float64: for each query (row of a [T, T] pattern), the total weight it puts on keys
    after itself (0 for any causal pattern)."""
    p = np.asarray(pattern, dtype=np.float64)
    return np.triu(p, k=1).sum(axis=-1)


@dataclass(frozen=True)
class QuerySteps:
    """One query's way through one head, each a float64 vector over the T keys.

    raw: q·k / sqrt(d_head) for every key, the future included.
    masked: the same with future keys (j > pos) at -inf.
    weights: the stored softmax weights (`attn.hook_pattern`'s row); they sum to 1.
    contributions: ‖weight_j v_j‖, what each key's value adds to the head's output.
    """

    raw: np.ndarray
    masked: np.ndarray
    weights: np.ndarray
    contributions: np.ndarray


def query_steps(trace: Trace, layer: int, head: int, pos: int) -> QuerySteps:
    """The steps of query `pos` in head `head` of layer `layer`: scores, mask, softmax weights,
    value contributions (see QuerySteps)."""
    raw = raw_scores(trace, layer, head)[pos]
    masked = raw.copy()
    masked[pos + 1 :] = -np.inf
    return QuerySteps(
        raw=raw,
        masked=masked,
        weights=trace.get("attn.hook_pattern", layer)[head, pos].astype(np.float64),
        contributions=value_contributions(trace, layer, head, pos),
    )


__all__ = [
    "QuerySteps",
    "causal_mask",
    "future_weight",
    "query_steps",
    "raw_scores",
    "unmasked_pattern",
    "value_contributions",
]
