"""Stage 2, embeddings: token and position vectors, a 2-D PCA map, cosine similarities and a
token's nearest neighbours in the embedding table.

GPT-2 adds a learned token embedding (`hook_embed` [T, d], a row of W_E) and a learned position
embedding (`hook_pos_embed` [T, d], a row of W_P); their sum enters block 0.
"""

from __future__ import annotations

import numpy as np

from engine.trace import Trace

# Which vectors a page can look at, and how each is read from a Trace.
SOURCES = ("token + position", "token", "position")


def embedding_vectors(trace: Trace, source: str) -> np.ndarray:
    """[T, d] float32: the token embeddings ("token"), the position embeddings ("position"), or
    their sum ("token + position", added in float64: what enters block 0; in evaluation mode
    embedding dropout is the identity). Raises ValueError for a source not in SOURCES."""
    if source == "token":
        return trace["hook_embed"]
    if source == "position":
        return trace["hook_pos_embed"]
    if source == "token + position":
        return (
            trace["hook_embed"].astype(np.float64) + trace["hook_pos_embed"].astype(np.float64)
        ).astype(np.float32)
    raise ValueError(f"unknown embedding source {source!r}; use one of {SOURCES}")


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project the rows of `vectors` [T, d] onto their first two principal components (PCA by
    the SVD of the centred rows, float64).

    Returns (coords [T, 2], explained [2]: the share of the variance along each component).
    Signs are fixed so that the largest-magnitude loading of each component is positive. A
    component that does not exist is not measurable: its coordinates are 0 and its share NaN
    (one point has no spread at all; two points, or one dimension, have one direction only;
    identical points have none)."""
    x = np.asarray(vectors, dtype=np.float64)
    centred = x - x.mean(axis=0, keepdims=True)
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], 2)), np.full(2, np.nan)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:2]
    for k in range(comps.shape[0]):
        if comps[k, np.argmax(np.abs(comps[k]))] < 0:
            comps[k] = -comps[k]
    coords = centred @ comps.T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    var = s**2
    total = var.sum()
    explained = np.full(2, np.nan)
    n_directions = min(x.shape[0] - 1, x.shape[1], 2)  # centring removes one of T directions
    if total > 0:
        explained[:n_directions] = var[:n_directions] / total
    return coords, explained


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """[T, T] float64 cosine similarity between the rows of `vectors` [T, d] (a zero vector has
    similarity 0 with everything)."""
    x = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return unit @ unit.T


def nearest_neighbours(
    table: np.ndarray,
    token_id: int,
    k: int = 10,
    n_valid: int | None = None,
    gaps: tuple[int, ...] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `table` ([V, d], e.g. the token embedding) closest to row `token_id` by
    cosine similarity, the token itself excluded. Only the first `n_valid` rows are searched
    (rows past the tokenizer's vocabulary are padding), the `gaps` (ids that name no token)
    left out too. Returns (ids, similarities), best first."""
    w = np.asarray(table, dtype=np.float32)  # no copy of a float32 table (GPT-2: 154 MB)
    if n_valid is not None:
        w = w[:n_valid]
    norms = np.sqrt(np.einsum("ij,ij->i", w, w, dtype=np.float64))
    query = w[token_id].astype(np.float64)
    denom = norms * max(float(np.linalg.norm(query)), 1e-12)
    dots = (w @ w[token_id]).astype(np.float64)
    sims = np.divide(dots, denom, out=np.zeros(len(w)), where=denom > 0)
    sims[token_id] = -np.inf
    sims[list(gaps)] = -np.inf
    k = max(0, min(k, len(w) - 1 - len(gaps)))
    ids = np.argsort(-sims, kind="stable")[:k]
    return ids, sims[ids]


__all__ = ["SOURCES", "cosine_matrix", "embedding_vectors", "nearest_neighbours", "pca_2d"]
