"""Stage 2, embeddings: token vectors, position vectors, their sum, a 2-D PCA map, cosine
similarity between positions and a token's nearest neighbours in the vocabulary.
Pure builders: no Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from engine.figures.common import (
    MAX_AXIS,
    PALETTE,
    base_layout,
    heatmap,
    plotly_text,
    token_labels,
    window,
)
from engine.trace import Trace

# Which vectors a page can look at, and how each is read from a Trace.
SOURCES = ("token + position", "token", "position")


def embedding_vectors(trace: Trace, source: str) -> np.ndarray:
    """[T, d]: the token embeddings, the position embeddings, or their sum (what enters block 0;
    in evaluation mode embedding dropout is the identity)."""
    if source == "token":
        return trace["hook_embed"]
    if source == "position":
        return trace["hook_pos_embed"]
    if source == "token + position":
        return (
            trace["hook_embed"].astype(np.float64) + trace["hook_pos_embed"].astype(np.float64)
        ).astype(np.float32)
    raise ValueError(f"unknown embedding source {source!r}; use one of {SOURCES}")


def embedding_heatmap(
    vectors: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    title: str,
    *,
    dim_start: int = 0,
    token_start: int = 0,
    zmax: float | None = None,
) -> go.Figure:
    """Tokens down, embedding dimensions across (a window of at most MAX_AXIS each way)."""
    T, d = vectors.shape
    rows, cols = window(T, token_start), window(d, dim_start)
    z = np.asarray(vectors)[rows, cols]
    return heatmap(
        z,
        [f"d{j}" for j in range(cols.start, cols.stop)],
        token_labels(token_strs, rows.start, rows.stop),
        title,
        signed=True,
        zmax=zmax,
        x_title=f"dimension {cols.start}–{cols.stop - 1} of {d}",
        y_title="token",
        hovertemplate="token %{y}<br>dimension %{x}<br>value %{z:.4f}",
        height=max(320, min(900, 90 + 22 * (rows.stop - rows.start))),
    )


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto their first two principal components.

    Returns (coords [T, 2], explained [2]: the share of the variance along each component).
    Signs are fixed so that the largest-magnitude loading of each component is positive."""
    x = np.asarray(vectors, dtype=np.float64)
    centred = x - x.mean(axis=0, keepdims=True)
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], 2)), np.zeros(2)
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
    explained = var[:2] / total if total > 0 else np.zeros(2)
    if explained.shape[0] < 2:
        explained = np.pad(explained, (0, 2 - explained.shape[0]))
    return coords, explained


def pca_figure(
    coords: np.ndarray,
    explained: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    title: str,
    selected: int | None = None,
) -> go.Figure:
    """Each token as a labelled point; a faint line joins them in text order."""
    labels = token_labels(token_strs)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(labels))]
    sizes = [22 if i == selected else 12 for i in range(len(labels))]
    fig = go.Figure(
        [
            go.Scatter(
                x=coords[:, 0],
                y=coords[:, 1],
                mode="lines",
                line={"color": "#cccccc", "width": 1},
                hoverinfo="skip",
                name="text order",
            ),
            go.Scatter(
                x=coords[:, 0],
                y=coords[:, 1],
                mode="markers+text",
                text=labels,
                textposition="top center",
                marker={"size": sizes, "color": colours, "line": {"color": "#333", "width": 1}},
                hovertemplate="%{text}<br>PC1 %{x:.3f}<br>PC2 %{y:.3f}<extra></extra>",
                name="tokens",
            ),
        ]
    )
    base_layout(fig, title, height=560)
    fig.update_xaxes(title_text=f"PC1 ({100 * explained[0]:.0f}% of the variance)")
    fig.update_yaxes(title_text=f"PC2 ({100 * explained[1]:.0f}% of the variance)")
    fig.update_layout(showlegend=False)
    return fig


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """[T, T] cosine similarity between rows (a zero vector has similarity 0 with everything)."""
    x = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return unit @ unit.T


def cosine_heatmap(
    sims: np.ndarray, token_strs: list[str] | tuple[str, ...], title: str, token_start: int = 0
) -> go.Figure:
    rows = window(sims.shape[0], token_start)
    labels = token_labels(token_strs, rows.start, rows.stop)
    return heatmap(
        sims[rows, rows],
        labels,
        labels,
        title,
        signed=True,
        zmax=1.0,
        x_title="token",
        y_title="token",
        hovertemplate="%{y} · %{x}<br>cosine %{z:.3f}",
        height=max(360, min(800, 120 + 20 * (rows.stop - rows.start))),
        colorbar_title="cosine",
    )


def nearest_neighbours(
    table: np.ndarray, token_id: int, k: int = 10, n_valid: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `table` ([V, d], e.g. the token embedding) closest to row `token_id` by
    cosine similarity, the token itself excluded. Only the first `n_valid` rows are searched
    (rows past the tokenizer's vocabulary are padding). Returns (ids, similarities), best first."""
    w = np.asarray(table, dtype=np.float32)  # no copy of a float32 table (GPT-2: 154 MB)
    if n_valid is not None:
        w = w[:n_valid]
    norms = np.sqrt(np.einsum("ij,ij->i", w, w, dtype=np.float64))
    query = w[token_id].astype(np.float64)
    denom = norms * max(float(np.linalg.norm(query)), 1e-12)
    dots = (w @ w[token_id]).astype(np.float64)
    sims = np.divide(dots, denom, out=np.zeros(len(w)), where=denom > 0)
    sims[token_id] = -np.inf
    k = max(0, min(k, len(w) - 1))
    ids = np.argsort(-sims, kind="stable")[:k]
    return ids, sims[ids]


def neighbours_figure(
    ids: np.ndarray, sims: np.ndarray, labels: list[str], query_label: str
) -> go.Figure:
    """Horizontal bars: the nearest vocabulary tokens and their cosine similarity."""
    shown = [f"{plotly_text(lab)} (id {int(i)})" for lab, i in zip(labels, ids, strict=True)]
    fig = go.Figure(
        go.Bar(
            x=sims,
            y=shown,
            orientation="h",
            marker_color=PALETTE[0],
            text=[f"{s:.3f}" for s in sims],
            textposition="auto",
            hovertemplate="%{y}<br>cosine %{x:.3f}<extra></extra>",
        )
    )
    base_layout(
        fig,
        f"Nearest tokens to “{plotly_text(query_label)}” in the embedding table",
        height=max(320, 80 + 34 * len(ids)),
    )
    fig.update_yaxes(autorange="reversed", type="category", automargin=True)
    fig.update_xaxes(
        title_text="cosine similarity", range=[min(0.0, float(np.min(sims, initial=0))), 1]
    )
    return fig


__all__ = [
    "MAX_AXIS",
    "SOURCES",
    "cosine_heatmap",
    "cosine_matrix",
    "embedding_heatmap",
    "embedding_vectors",
    "nearest_neighbours",
    "neighbours_figure",
    "pca_2d",
    "pca_figure",
]
