"""The seed article's formulas and code, computed as written on a Trace, beside what GPT does
(issue 15; the article's errors are listed in `shared/seed/SUMMARY.md`). Numbers only: pure
functions of a Trace's stored activations (the model never runs).

- Its attention formula, alpha_ij = e_i^T Q / sqrt(d_k) (section 4.4.2): no key and no softmax,
  so "alpha_ij" is a vector of d_head numbers that does not depend on j.
- Its head split, `torch.reshape(query, [-1, num_heads, head_size])` followed by
  `torch.matmul(query, key.transpose(1, 2))` (section 5.2): without the transpose to
  [heads, tokens, head_size], the matmul runs over the heads of one token, so each token's heads
  attend to each other instead of tokens to tokens.
- Its numpy example (section 4.5): `np.softmax` does not exist; with a softmax written out, a
  (1, 2) weight row cannot multiply the (1, 5) embeddings. The corrected version is
  `corrected_attention`.
- Pre-training (its glossary: "training on a specific task"): GPT is pre-trained on next-token
  prediction over broad text; `next_token_loss` is that objective on the user's text.
"""

from __future__ import annotations

import math

import numpy as np

from engine.sampling import softmax
from engine.trace import Trace


def article_alpha(trace: Trace, layer: int, head: int, pos: int) -> np.ndarray:
    """[T, d_head] float64: the article's alpha_{pos, j} = e_pos^T Q / sqrt(d_k) for every key
    j, as written: e_pos^T Q is the query vector of token `pos` (the Trace's `attn.hook_q`, the
    learned W_Q applied to ln_1 of the stream, with its bias), divided by sqrt(d_head). It has no
    key and no softmax, so every row (every j) is the same vector. Raises IndexError for a
    position outside the text."""
    q = trace.get("attn.hook_q", layer)[pos, head, :].astype(np.float64)
    alpha = q / math.sqrt(q.shape[-1])
    return np.tile(alpha, (trace.n_tokens, 1))


def article_head_split(trace: Trace, layer: int, pos: int) -> np.ndarray:
    """[H, H] float64, rows sum to 1: what the article's code computes for token `pos`. Its
    `reshape(query, [-1, num_heads, head_size])` gives [T, H, d_head] and
    `softmax(matmul(query, key.transpose(1, 2)) / sqrt(head_size), dim=2)` then scores the H
    heads of one token against each other: row g is head g's weights over heads h of the same
    token. GPT transposes to [H, T, d_head] first, so each head scores tokens
    (`attn.hook_pattern`)."""
    q = trace.get("attn.hook_q", layer)[pos].astype(np.float64)  # [H, d_head]
    k = trace.get("attn.hook_k", layer)[pos].astype(np.float64)
    return softmax(q @ k.T / math.sqrt(q.shape[-1]))


def corrected_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One causal attention head in plain numpy, the runnable form of the article's example:
    q, k, v [T, d_head] -> (weights [T, T], rows sum to 1, zero above the diagonal;
    output [T, d_head] = weights @ v). Softmax is written out (numpy has no `np.softmax`).
    Raises ValueError when the shapes differ."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    if not q.shape == k.shape == v.shape or q.ndim != 2:
        raise ValueError(f"q, k, v must share one [T, d_head] shape: {q.shape} {k.shape} {v.shape}")
    scores = q @ k.T / np.sqrt(q.shape[1])  # [T, T]
    scores[np.triu_indices(len(q), k=1)] = -np.inf  # causal mask: no future keys
    scores -= scores.max(axis=1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights, weights @ v  # [T, T], [T, d_head]


CORRECTED_SOURCE = """import numpy as np

def attention(q, k, v):                      # q, k, v: [T, d_head]
    scores = q @ k.T / np.sqrt(q.shape[1])   # [T, T]
    scores[np.triu_indices(len(q), k=1)] = -np.inf   # causal mask
    scores -= scores.max(axis=1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=1, keepdims=True)    # softmax, row by row
    return weights @ v                       # [T, d_head]
"""


def article_example_outcome() -> list[tuple[str, str]]:
    """What the article's numpy example (section 4.5) does, step by step, run here with numpy:
    [(the line, what happens)]. The result text is numpy's own message."""
    out: list[tuple[str, str]] = []
    embeddings = np.array([[1, 2, 3, 4, 5]])
    q = np.random.default_rng(0).random((embeddings.shape[1], 2))
    scores = np.dot(embeddings, q) / np.sqrt(2)
    out.append(
        ("alpha_scores = np.dot(embeddings, Q) / np.sqrt(head_size)", f"shape {scores.shape}")
    )
    if hasattr(np, "softmax"):  # not in numpy 1.x or 2.x
        out.append(("alpha_weights = np.softmax(alpha_scores)", "runs"))
    else:
        out.append(
            (
                "alpha_weights = np.softmax(alpha_scores)",
                "AttributeError: module 'numpy' has no attribute 'softmax'",
            )
        )
    weights = softmax(scores)  # as if a softmax existed
    try:
        result = np.dot(weights, embeddings)
        out.append(("alpha_outputs = np.dot(alpha_weights, embeddings)", f"shape {result.shape}"))
    except ValueError as err:
        out.append(("alpha_outputs = np.dot(alpha_weights, embeddings)", f"ValueError: {err}"))
    return out


def next_token_loss(trace: Trace, chunk: int = 64) -> np.ndarray:
    """[T - 1] float64, nats: -log p(token_{i+1} | tokens <= i) for every position that has a
    next token, from the Trace's logits over the tokenizer's ids (padding rows and gap ids left
    out, as everywhere in the app): the pre-training objective (its mean is the cross-entropy
    loss a GPT is trained to lower; the same as `torch.nn.functional.cross_entropy` with
    reduction "none", tested). Empty for a one-token text.

    Computed as log-sum-exp minus the target's logit, in float64, `chunk` rows at a time: at
    T=1,024 on GPT-2 small a float64 softmax of every row held 400 MB; this holds 26 MB."""
    ids = np.asarray(trace.token_ids)
    if len(ids) < 2:
        return np.zeros(0)
    logits = trace.logits  # [T, V_padded] float32
    gaps = list(trace.gap_ids)  # ids that name no token
    out = np.empty(len(ids) - 1)
    for lo in range(0, len(ids) - 1, chunk):
        hi = min(lo + chunk, len(ids) - 1)
        x = np.array(logits[lo:hi, : trace.n_valid_ids], dtype=np.float64)
        x[:, gaps] = -np.inf
        m = x.max(axis=1)
        lse = m + np.log(np.exp(x - m[:, None]).sum(axis=1))
        out[lo:hi] = lse - x[np.arange(hi - lo), ids[lo + 1 : hi + 1]]
    return out
