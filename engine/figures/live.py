"""Live training (issue 18, item 3): the loss curves of a run and every head's attention on the
probe, redrawn while the tiny model trains. Pure builders: arrays in, plotly figures out; the
numbers come from `engine.training.live.LiveProgress` (the UI passes its arrays).
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from engine.figures.attention import head_panel, role_name
from engine.figures.common import (
    FONT_SIZE,
    PALETTE,
    base_layout,
    plotly_text,
    shown,
    subplots,
    unique_labels,
)
from engine.figures.text import _


def live_loss_figure(
    steps: np.ndarray,
    loss: np.ndarray,
    eval_steps: np.ndarray,
    copy_loss: np.ndarray,
    text_loss: np.ndarray,
    max_steps: int,
    title: str,
) -> go.Figure:
    """Loss (nats) against optimizer steps: every step's training loss [S] (thin, grey: the
    mixed batch), and at each evaluation [E] the loss on held-out copy rows (the repeat only)
    and on held-out text. Traces in that order: training, copy, text. The x axis spans the
    whole step budget, so the curve grows across a fixed frame."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=np.asarray(steps),
            y=np.asarray(loss, dtype=np.float32),
            mode="lines",
            line={"color": PALETTE[9], "width": 1},
            name=_("training batch"),
            hovertemplate=_("step %{x}<br>loss %{y:.3f} nats") + "<extra></extra>",
        )
    )
    for y, name, colour in (
        (copy_loss, _("held-out copy task"), PALETTE[0]),
        (text_loss, _("held-out text"), PALETTE[1]),
    ):
        fig.add_trace(
            go.Scatter(
                x=np.asarray(eval_steps),
                y=np.asarray(y, dtype=np.float32),
                mode="lines+markers",
                line={"color": colour, "width": 3},
                name=name,
                hovertemplate=_("step %{x}<br>loss %{y:.3f} nats") + "<extra></extra>",
            )
        )
    base_layout(fig, title, height=420)
    fig.update_xaxes(title_text=_("training step"), range=[0, max(1, max_steps)])
    fig.update_yaxes(title_text=_("loss (nats)"), rangemode="tozero")
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return fig


def live_heads_figure(
    patterns: np.ndarray,
    labels: tuple[tuple[str | None, ...], ...],
    induction: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    title: str,
) -> go.Figure:
    """Every head of every layer on the probe, one small heatmap each (a row per layer; queries
    down, keys across, weight 0 to 1), titled on three lines "layer.head", its role and its
    induction score in brackets (short enough for four panels side by side at 1024 px with the
    sidebar open; the figure's title names the score).
    patterns: [n_layer, n_head, T, T]; labels: [n_layer][n_head] role labels; induction:
    [n_layer, n_head]. Trace k is head (k // n_head, k % n_head)."""
    L, H = patterns.shape[:2]
    cols = min(H, 4)
    rows_per_layer = math.ceil(H / cols)
    titles = [
        _("head {layer}.{head}<br>{role}<br>({score})").format(
            layer=la,
            head=h,
            role=plotly_text(role_name(labels[la][h])),
            score=shown(induction[la, h]),
        )
        for la in range(L)
        for h in range(H)
    ]
    n_rows = L * rows_per_layer
    fig = subplots(
        rows=n_rows,
        cols=cols,
        titles=titles,
        horizontal_spacing=0.04,
        vertical_spacing=0.22 if n_rows > 1 else 0.05,
    )
    tick = unique_labels([plotly_text(s) for s in token_strs])
    for la in range(L):
        for h in range(H):
            k = la * H + h
            fig.add_trace(
                head_panel(
                    np.asarray(patterns[la, h], dtype=np.float32), tick, f"{la}.{h}", k == 0
                ),
                row=la * rows_per_layer + h // cols + 1,
                col=h % cols + 1,
            )
    base_layout(fig, title, height=max(340, 320 * n_rows + 100))
    # panel titles on three lines (number, role, score): a panel is about 120 px wide
    fig.update_layout(margin_t=140)
    fig.update_xaxes(type="category", showticklabels=False)
    fig.update_yaxes(type="category", autorange="reversed", showticklabels=False)
    for annotation in fig.layout.annotations:
        annotation.font = {"size": FONT_SIZE}
    return fig
