"""Stage 2, embeddings: token vectors, position vectors, their sum, a 2-D PCA map, cosine
similarity between positions and a token's nearest neighbours in the vocabulary.
Pure builders: arrays and labels in, plotly Figures out; the numbers come from
`engine.lens.embeddings`.
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
from engine.figures.text import _


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
        x_title=_("dimension {first}–{last} of {d}").format(
            first=cols.start, last=cols.stop - 1, d=d
        ),
        y_title=_("token"),
        hovertemplate=_("token %{y}<br>dimension %{x}<br>value %{z:.4f}"),
        height=max(320, min(900, 90 + 22 * (rows.stop - rows.start))),
    )


def pca_figure(
    coords: np.ndarray,
    explained: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    title: str,
    selected: int | None = None,
) -> go.Figure:
    """Each token as a labelled point; a faint line joins them in text order. `explained` [2]
    (NaN for a component that does not exist: the axis says "not measurable here")."""
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
                name=_("text order"),
            ),
            go.Scatter(
                x=coords[:, 0],
                y=coords[:, 1],
                mode="markers+text",
                text=labels,
                textposition="top center",
                marker={"size": sizes, "color": colours, "line": {"color": "#333", "width": 1}},
                hovertemplate=_("%{text}<br>PC1 %{x:.3f}<br>PC2 %{y:.3f}<extra></extra>"),
                name=_("tokens"),
            ),
        ]
    )
    base_layout(fig, title, height=560)
    for axis, k in ((fig.update_xaxes, 0), (fig.update_yaxes, 1)):
        share = (
            _("{share}% of the variance").format(share=f"{100 * explained[k]:.0f}")
            if np.isfinite(explained[k])
            else _("not measurable here")
        )
        axis(title_text=f"PC{k + 1} ({share})")
    fig.update_layout(showlegend=False)
    return fig


def cosine_heatmap(
    sims: np.ndarray, token_strs: list[str] | tuple[str, ...], title: str, token_start: int = 0
) -> go.Figure:
    """Cosine similarities `sims` [T, T] between tokens (a window from `token_start`), on the
    signed scale from -1 to 1."""
    rows = window(sims.shape[0], token_start)
    labels = token_labels(token_strs, rows.start, rows.stop)
    return heatmap(
        sims[rows, rows],
        labels,
        labels,
        title,
        signed=True,
        zmax=1.0,
        x_title=_("token"),
        y_title=_("token"),
        hovertemplate=_("%{y} · %{x}<br>cosine %{z:.3f}"),
        height=max(360, min(800, 120 + 20 * (rows.stop - rows.start))),
        colorbar_title=_("cosine"),
    )


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
            hovertemplate=_("%{y}<br>cosine %{x:.3f}<extra></extra>"),
        )
    )
    base_layout(
        fig,
        _("Nearest tokens to “{token}” in the embedding table").format(
            token=plotly_text(query_label)
        ),
        height=max(320, 80 + 34 * len(ids)),
    )
    fig.update_yaxes(autorange="reversed", type="category", automargin=True)
    fig.update_xaxes(
        title_text=_("cosine similarity"), range=[min(0.0, float(np.min(sims, initial=0))), 1]
    )
    return fig


__all__ = [
    "MAX_AXIS",
    "cosine_heatmap",
    "embedding_heatmap",
    "neighbours_figure",
    "pca_figure",
]
