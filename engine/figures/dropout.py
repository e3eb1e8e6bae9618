"""Stage 7, dropout: one head's attention pattern in evaluation mode (dropout is the identity)
and in a seeded training-mode pass (cells zeroed with probability p, survivors x 1/(1 - p))."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from engine.dropout_demo import MaskAverage, kept_mask
from engine.figures.common import (
    PALETTE,
    SCALE_WEIGHTS,
    base_layout,
    subplots,
    token_labels,
    window,
)
from engine.figures.text import _

# Three patterns side by side: fewer tokens per panel than a full-width heatmap.
PANEL_AXIS = 64


def _rounded(z: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(z, dtype=np.float64), 4)


def patterns_figure(
    token_strs: tuple[str, ...],
    eval_pattern: np.ndarray,
    pass_pattern: np.ndarray,
    dropped: np.ndarray,
    p: float,
    start: int = 0,
) -> go.Figure:
    """Evaluation mode | the dropout pass before its mask | after the mask and the rescaling.

    Each argument is one head's [T, T] pattern (query rows, key columns)."""
    T = len(token_strs)
    span = window(T, start, PANEL_AXIS)
    lo, hi = span.start, span.stop
    labels = token_labels(token_strs, lo, hi)
    scale = 1.0 / (1.0 - p)
    fig = subplots(
        rows=1,
        cols=3,
        shared_yaxes=True,
        horizontal_spacing=0.03,
        titles=(
            _("evaluation: dropout = identity"),
            _("training pass: before the mask"),
            _("after the mask, survivors × {scale}").format(scale=f"{scale:.3g}"),
        ),
    )
    panels = (eval_pattern, pass_pattern, dropped)
    zmax = float(max(np.max(z[lo:hi, lo:hi]) for z in panels)) or 1.0
    for col, z in enumerate(panels, start=1):
        fig.add_trace(
            go.Heatmap(
                z=_rounded(z[lo:hi, lo:hi]),
                x=labels,
                y=labels,
                colorscale=SCALE_WEIGHTS,
                zmin=0.0,
                zmax=zmax,
                showscale=col == 3,
                colorbar={"title": {"text": _("weight")}},
                hovertemplate=_("query %{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>"),
            ),
            row=1,
            col=col,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(title_text=_("query token"), row=1, col=1)
    fig.update_xaxes(tickangle=-60)
    return base_layout(
        fig, _("One head's attention weights, dropout p = {p}").format(p=f"{p:g}"), 560
    )


def query_row_figure(
    token_strs: tuple[str, ...],
    pos: int,
    eval_row: np.ndarray,
    pass_row: np.ndarray,
    dropped_row: np.ndarray,
    p: float,
) -> go.Figure:
    """The selected query's weights over its keys 0..pos: evaluation, the pass before and after
    its mask; dropped keys are marked."""
    keys = slice(0, pos + 1)
    labels = token_labels(token_strs, 0, pos + 1)
    kept = kept_mask(pass_row[keys], dropped_row[keys])
    fig = go.Figure()
    for name, row, colour in (
        (_("evaluation (identity)"), eval_row, PALETTE[9]),
        (_("training pass, before the mask"), pass_row, PALETTE[0]),
        (_("after the mask, × {factor}").format(factor=f"1/(1 − {p:g})"), dropped_row, PALETTE[1]),
    ):
        fig.add_trace(
            go.Bar(
                x=labels,
                y=_rounded(row[keys]),
                name=name,
                marker_color=colour,
                hovertemplate=_("key %{x}<br>weight %{y:.4f}<extra>") + name + "</extra>",
            )
        )
    dropped_at = [labels[i] for i in np.flatnonzero(~kept)]
    if dropped_at:
        fig.add_trace(
            go.Scatter(
                x=dropped_at,
                y=[0.0] * len(dropped_at),
                mode="markers",
                name=_("dropped by the mask"),
                marker={"symbol": "x", "size": 14, "color": PALETTE[3]},
                hovertemplate=_("key %{x}: dropped<extra></extra>"),
            )
        )
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.3})
    fig.update_xaxes(title_text=_("key token"), tickangle=-45)
    fig.update_yaxes(title_text=_("attention weight"))
    title = _("Query token {pos}: its weights, with and without dropout").format(pos=pos)
    return base_layout(fig, title, 480)


def convergence_figure(avg: MaskAverage) -> go.Figure:
    """How the average over many masks approaches the evaluation output (inverted dropout) or
    only (1 - p) times it (the article's unscaled mask)."""
    fig = go.Figure()
    for name, ys, colour, dash in (
        (
            _("inverted dropout (GPT-2): {formula}").format(formula="avg − x"),
            avg.err_inverted,
            PALETTE[0],
            "solid",
        ),
        (
            _("article's mask, no rescaling: {formula}").format(formula="avg − x"),
            avg.err_plain,
            PALETTE[1],
            "dash",
        ),
        (
            _("article's mask: {formula}").format(formula="avg − (1 − p)·x"),
            avg.err_plain_scaled,
            PALETTE[2],
            "dot",
        ),
    ):
        fig.add_trace(
            go.Scatter(
                x=avg.counts,
                y=ys,
                mode="lines",
                name=name,
                line={"color": colour, "dash": dash, "width": 3},
                hovertemplate=_("%{x} masks<br>mean |difference| %{y:.5f}<extra></extra>"),
            )
        )
    fig.update_xaxes(type="log", title_text=_("number of masks averaged"))
    fig.update_yaxes(title_text=_("mean |difference| per weight"), rangemode="tozero")
    fig.update_layout(legend={"orientation": "h", "y": -0.3})
    title = _("Averages of {n} masks, p = {p}").format(n=avg.n, p=f"{avg.p:g}")
    return base_layout(fig, title, 480)


def average_row_figure(
    token_strs: tuple[str, ...], pos: int, x_row: np.ndarray, avg: MaskAverage
) -> go.Figure:
    """The selected query's weights: evaluation, the average of the inverted-dropout outputs, the
    average of the unscaled outputs, and (1 - p) x."""
    keys = slice(0, pos + 1)
    labels = token_labels(token_strs, 0, pos + 1)
    fig = go.Figure()
    for name, row, colour in (
        (_("evaluation x"), x_row[keys], PALETTE[9]),
        (
            _("average of {n} inverted-dropout outputs").format(n=avg.n),
            avg.avg_inverted[pos, keys],
            PALETTE[0],
        ),
        (
            _("average of {n} unscaled outputs").format(n=avg.n),
            avg.avg_plain[pos, keys],
            PALETTE[1],
        ),
        (
            _("{formula}, the article's formula").format(formula="(1 − p)·x"),
            (1.0 - avg.p) * x_row[keys],
            PALETTE[2],
        ),
    ):
        fig.add_trace(
            go.Bar(
                x=labels,
                y=_rounded(row),
                name=name,
                marker_color=colour,
                hovertemplate=_("key %{x}<br>%{y:.4f}<extra>") + name + "</extra>",
            )
        )
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.3})
    fig.update_xaxes(title_text=_("key token"), tickangle=-45)
    fig.update_yaxes(title_text=_("attention weight"))
    return base_layout(fig, _("Query token {pos}: what the masks average to").format(pos=pos), 480)


__all__ = [
    "PANEL_AXIS",
    "average_row_figure",
    "convergence_figure",
    "patterns_figure",
    "query_row_figure",
]
