"""Page 10, cause and effect: knock-out (probabilities and loss before and after an ablation),
activation patching heatmaps and direct logit attribution (`engine.interventions`).

Pure builders: arrays and labels in, plotly Figures out. Titles are passed in by the page
(translated there); the axis words below are marked with `N_` and translated where drawn
(`engine.figures.text`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import plotly.graph_objects as go

from engine.figures.common import (
    PALETTE,
    base_layout,
    heatmap,
    plotly_text,
    signed_range,
    token_labels,
    window,
)
from engine.figures.text import N_, _

Display = Callable[[int], str]

# Figure words, English msgids translated where drawn (`_`); BEFORE / AFTER are the default legend
# names (the page passes its own, translated).
BEFORE = N_("before")
AFTER = N_("after")
HEAD_TICK = N_("head {head}")
LAYER_TICK = N_("layer {layer}")
AXIS_HEAD = N_("head")
AXIS_LAYER = N_("layer")
AXIS_POSITION = N_("position (clean token)")
AXIS_RESIDUAL = N_("residual stream entering")
NATS = N_("nats")


def top_ids_before_after(p_before: np.ndarray, p_after: np.ndarray, k: int) -> np.ndarray:
    """The ids shown side by side: the k most probable before, then those of the k most probable
    after that are not among them (stable order, ties by id)."""
    first = np.argsort(-p_before, kind="stable")[:k]
    extra = [i for i in np.argsort(-p_after, kind="stable")[:k] if i not in set(first)]
    return np.array([*first, *extra], dtype=np.int64)


def before_after_figure(
    ids: np.ndarray,
    p_before: np.ndarray,
    p_after: np.ndarray,
    display: Display,
    title: str,
    names: tuple[str, str] | None = None,
) -> go.Figure:
    """Horizontal bars of the probabilities of `ids` before and after an intervention, one pair
    per token (the first at the top). `p_before`, `p_after`: [V] distributions."""
    labels = [f"{plotly_text(display(int(i)))}  (id {int(i)})" for i in ids]
    names = names or (_(BEFORE), _(AFTER))
    fig = go.Figure()
    for probs, name, colour in ((p_before, names[0], PALETTE[9]), (p_after, names[1], PALETTE[0])):
        fig.add_trace(
            go.Bar(
                y=labels,
                x=np.asarray(probs[ids], dtype=np.float64),
                orientation="h",
                name=name,
                marker_color=colour,
                hovertemplate="%{y}<br>p = %{x:.4f}<extra>" + plotly_text(name) + "</extra>",
            )
        )
    base_layout(fig, title, height=max(360, 26 * len(ids) + 140))
    fig.update_layout(barmode="group")
    fig.update_yaxes(autorange="reversed", type="category", automargin=True)
    fig.update_xaxes(title_text="p", rangemode="tozero")
    return fig


def loss_figure(
    loss_before: np.ndarray,
    loss_after: np.ndarray,
    token_strs: Sequence[str],
    title: str,
    y_title: str,
    names: tuple[str, str] | None = None,
    start: int = 0,
) -> go.Figure:
    """The loss (nats) of each real next token before and after, by position: position t
    predicts token t + 1 (x labels: the token read, t). At most `MAX_AXIS` positions from
    `start`."""
    n = len(loss_before)
    cut = window(n, start)
    x = token_labels(list(token_strs)[:n], cut.start, cut.stop)
    names = names or (_(BEFORE), _(AFTER))
    fig = go.Figure()
    for loss, name, colour in (
        (loss_before, names[0], PALETTE[9]),
        (loss_after, names[1], PALETTE[0]),
    ):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.asarray(loss[cut], dtype=np.float64),
                mode="lines+markers",
                name=name,
                line={"color": colour},
                hovertemplate="%{x}<br>%{y:.3f} "
                + _(NATS)
                + "<extra>"
                + plotly_text(name)
                + "</extra>",
            )
        )
    base_layout(fig, title, height=420)
    fig.update_xaxes(type="category", tickangle=-60, automargin=True)
    fig.update_yaxes(title_text=y_title, rangemode="tozero")
    return fig


def head_grid_figure(
    values: np.ndarray,
    title: str,
    colorbar_title: str,
    hover: np.ndarray | None = None,
    zmax: float | None = None,
) -> go.Figure:
    """A layer x head heatmap of signed `values` [L, H] (rows: layers, top to bottom), coloured
    around 0 (from -zmax to zmax; default the data's largest magnitude); `hover` [L, H] strings
    add to each cell's hover."""
    L, H = values.shape
    custom = np.empty((L, H), dtype=object)
    custom[:] = "" if hover is None else hover
    fig = heatmap(
        np.asarray(values, dtype=np.float64),
        [_(HEAD_TICK).format(head=h) for h in range(H)],
        [_(LAYER_TICK).format(layer=layer) for layer in range(L)],
        title,
        signed=True,
        x_title=_(AXIS_HEAD),
        y_title=_(AXIS_LAYER),
        hovertemplate="%{y}, %{x}: %{z:.3f}%{customdata}",
        customdata=custom,
        height=max(320, 40 * L + 200),
        zmax=zmax,
        colorbar_title=colorbar_title,
    )
    fig.update_xaxes(tickangle=0)
    return fig


def patching_figure(
    values: np.ndarray,
    token_strs: Sequence[str],
    title: str,
    colorbar_title: str,
    start: int = 0,
    zmax: float | None = None,
) -> go.Figure:
    """A layer x position heatmap of `values` [L, T] (patching the residual stream entering
    block l at position t), coloured around 0; at most `MAX_AXIS` positions from `start`."""
    L, T = values.shape
    cut = window(T, start)
    return heatmap(
        np.asarray(values[:, cut], dtype=np.float64),
        token_labels(list(token_strs), cut.start, cut.stop),
        [_(LAYER_TICK).format(layer=layer) for layer in range(L)],
        title,
        signed=True,
        x_title=_(AXIS_POSITION),
        y_title=_(AXIS_RESIDUAL),
        hovertemplate="%{y}, %{x}: %{z:.3f}",
        height=max(320, 40 * L + 220),
        zmax=zmax,
        colorbar_title=colorbar_title,
    )


def component_bars(
    names: Sequence[str],
    values: np.ndarray,
    title: str,
    x_title: str,
    hover: Sequence[str] = (),
    xmax: float | None = None,
) -> go.Figure:
    """Horizontal bars of signed `values`, one per component in `names` (first at the top),
    positive red, negative blue as in the heatmaps; `hover` adds to each bar's hover. The axis
    spans -xmax..xmax (default the values' largest magnitude): pass a heatmap's zmax to share
    its scale."""
    vals = np.asarray(values, dtype=np.float64)
    colours = [PALETTE[3] if v >= 0 else PALETTE[0] for v in vals]
    fig = go.Figure(
        go.Bar(
            y=[plotly_text(n) for n in names],
            x=vals,
            orientation="h",
            marker_color=colours,
            customdata=list(hover) if hover else [""] * len(vals),
            hovertemplate="%{y}: %{x:.3f}%{customdata}<extra></extra>",
        )
    )
    base_layout(fig, title, height=max(300, 24 * len(vals) + 140))
    r = signed_range(vals) if xmax is None else xmax
    fig.update_xaxes(title_text=x_title, range=[-1.05 * r, 1.05 * r])
    fig.update_yaxes(autorange="reversed", type="category", automargin=True)
    return fig
