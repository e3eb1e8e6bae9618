"""Stage 4, the feed-forward block: `mlp_out = W2 gelu(W1 x + b1) + b2`, per token.

Pure builders: arrays and labels in, plotly Figures out. The numbers (GELU, the ranking of the
hidden units, the size of each layer's output) come from `engine.lens.feed_forward`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from engine.figures.common import (
    PALETTE,
    SCALE_WEIGHTS,
    base_layout,
    plotly_text,
    token_labels,
    window,
)
from engine.figures.text import _
from engine.lens.feed_forward import gelu


def zero_white_scale(zmin: float, zmax: float) -> list[list]:
    """A colour scale for GELU outputs in [zmin, zmax]: white exactly at 0, red for active,
    and only a pale blue for the small negative values (GELU's minimum is -0.17: a unit there
    is "off", so it must not look as loud as a strongly active one)."""
    if zmax <= zmin:
        return [[0.0, "#f7f7f7"], [1.0, "#b2182b"]]
    if zmin >= 0:
        return [[0.0, "#f7f7f7"], [0.5, "#ef8a62"], [1.0, "#67001f"]]
    if zmax <= 0:
        return [[0.0, "#c6dbef"], [1.0, "#f7f7f7"]]
    mid = -zmin / (zmax - zmin)
    return [[0.0, "#c6dbef"], [mid, "#f7f7f7"], [(1 + mid) / 2, "#ef8a62"], [1.0, "#67001f"]]


def neurons_heatmap(
    post: np.ndarray,
    ids: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    layer: int,
    start: int = 0,
    rank: str = "peak",
) -> go.Figure:
    """The hidden units `ids` (rows, in that order, e.g. from `top_neurons`) of layer `layer`
    on every token (columns, a window from `start`), after GELU; `post` is [T, d_mlp]. `rank`
    only names the ranking in the title."""
    span = window(post.shape[0], start)
    lo, hi = span.start, span.stop
    z = post[lo:hi, ids].T.astype(np.float64)
    zmin, zmax = min(0.0, float(z.min())), max(0.0, float(z.max()))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=token_labels(token_strs, lo, hi),
            y=[_("unit {i}").format(i=i) for i in ids],
            colorscale=zero_white_scale(zmin, zmax),
            zmin=zmin,
            zmax=zmax,
            colorbar={"title": {"text": "gelu"}},
            hovertemplate=_("token %{x}<br>%{y}<br>activation %{z:.3f}<extra></extra>"),
        )
    )
    fig.update_yaxes(autorange="reversed", title_text=_("hidden unit"), type="category")
    fig.update_xaxes(title_text=_("token"), tickangle=-45, type="category")
    height = max(420, 26 * len(ids) + 200)
    title = (
        _("Layer {layer}: the {k} most selective of {n} hidden units")
        if rank == "selective"
        else _("Layer {layer}: the {k} most active of {n} hidden units")
    )
    return base_layout(fig, title.format(layer=layer, k=len(ids), n=post.shape[1]), height)


def hidden_histogram(
    pre: np.ndarray, post: np.ndarray, token_str: str, layer: int, pos: int
) -> go.Figure:
    """Every hidden unit of one token (`pre`, `post`: its [d_mlp] values before and after GELU;
    `token_str` the token as displayed), as two overlaid histograms."""
    pre = np.asarray(pre, dtype=np.float64)
    post = np.asarray(post, dtype=np.float64)
    fig = go.Figure()
    fig.add_trace(
        go.Histogram(
            x=pre,
            name=_("before GELU (W1 x + b1)"),
            nbinsx=60,
            marker_color=PALETTE[9],
            opacity=0.75,
            hovertemplate=_("value %{x}<br>%{y} units<extra>before GELU</extra>"),
        )
    )
    fig.add_trace(
        go.Histogram(
            x=post,
            name=_("after GELU"),
            nbinsx=60,
            marker_color=PALETTE[0],
            opacity=0.75,
            hovertemplate=_("value %{x}<br>%{y} units<extra>after GELU</extra>"),
        )
    )
    fig.update_layout(barmode="overlay", legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text=_("activation"))
    fig.update_yaxes(title_text=_("hidden units"))
    token = plotly_text(token_str)
    return base_layout(
        fig,
        _("Token {pos} “{token}”: its {n} hidden units, layer {layer}").format(
            pos=pos, token=token, n=pre.size, layer=layer
        ),
        440,
    )


def activation_functions(pre_all: np.ndarray, pos: int) -> go.Figure:
    """GELU beside tanh (the article's) and ReLU, with token `pos`'s pre-activations on GELU;
    `pre_all` is one layer's [T, d_mlp] pre-activations (they set the x range)."""
    pre_all = np.asarray(pre_all, dtype=np.float64)
    pre = pre_all[pos]
    low = min(-4.0, float(pre_all.min()))
    high = max(4.0, float(pre_all.max()))
    xs = np.linspace(low, high, 400)
    fig = go.Figure()
    curves = (
        ("GELU (GPT-2)", gelu(xs), PALETTE[0], "solid"),
        (_("tanh (the article)"), np.tanh(xs), PALETTE[1], "dash"),
        ("ReLU", np.maximum(xs, 0.0), PALETTE[2], "dot"),
    )
    for name, ys, colour, dash in curves:
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=name,
                line={"color": colour, "dash": dash, "width": 3},
                hovertemplate=_("x %{x:.2f}<br>f(x) %{y:.3f}<extra>") + name + "</extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=pre,
            y=gelu(pre),
            mode="markers",
            name=_("token {pos}'s {n} units").format(pos=pos, n=pre.size),
            marker={"color": PALETTE[3], "size": 7, "opacity": 0.6},
            hovertemplate=_("before GELU %{x:.3f}<br>after GELU %{y:.3f}<extra>this token</extra>"),
        )
    )
    fig.update_xaxes(title_text=_("pre-activation  W1 x + b1"))
    fig.update_yaxes(title_text=_("output"), range=[-1.5, max(2.0, float(gelu(high)) * 1.05)])
    fig.update_layout(legend={"orientation": "h", "y": -0.22})
    return base_layout(fig, _("Activation functions, with this text's values"), 480)


def mlp_norms_heatmap(
    norms: np.ndarray, token_strs: list[str] | tuple[str, ...], start: int = 0
) -> go.Figure:
    """How much each layer's MLP writes into each token's residual stream: `norms` is
    [n_layer, T] (`engine.lens.feed_forward.mlp_out_norms`), a window of tokens from `start`."""
    span = window(norms.shape[1], start)
    lo, hi = span.start, span.stop
    fig = go.Figure(
        go.Heatmap(
            z=norms[:, lo:hi],
            x=token_labels(token_strs, lo, hi),
            y=[_("layer {i}").format(i=i) for i in range(norms.shape[0])],
            colorscale=SCALE_WEIGHTS,
            zmin=0.0,
            colorbar={"title": {"text": "‖mlp_out‖"}},
            hovertemplate=_("token %{x}<br>%{y}<br>‖mlp_out‖ %{z:.3f}<extra></extra>"),
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text=_("token"), tickangle=-45)
    return base_layout(
        fig, _("Size of each layer's feed-forward output, per token"), 160 + 50 * norms.shape[0]
    )


def article_vs_gpt(pre: np.ndarray, layer: int, pos: int) -> go.Figure:
    """The same hidden pre-activations `pre` [d_mlp] of token `pos` in layer `layer` through the
    article's tanh and GPT-2's GELU, as two overlaid histograms."""
    pre = np.asarray(pre, dtype=np.float64)
    fig = go.Figure()
    fig.add_trace(
        go.Histogram(
            x=np.tanh(pre),
            name=_("article: tanh(·), squashed into (-1, 1)"),
            nbinsx=50,
            marker_color=PALETTE[1],
            opacity=0.75,
        )
    )
    fig.add_trace(
        go.Histogram(
            x=gelu(pre),
            name=_("GPT-2: gelu(·), large values pass"),
            nbinsx=50,
            marker_color=PALETTE[0],
            opacity=0.75,
        )
    )
    fig.update_layout(barmode="overlay", legend={"orientation": "h", "y": -0.22})
    fig.update_xaxes(title_text=_("hidden unit value"))
    fig.update_yaxes(title_text=_("hidden units"))
    title = _("Token {pos}, layer {layer}: tanh vs GELU on the same inputs")
    return base_layout(fig, title.format(pos=pos, layer=layer), 440)


__all__ = [
    "activation_functions",
    "article_vs_gpt",
    "hidden_histogram",
    "mlp_norms_heatmap",
    "neurons_heatmap",
    "zero_white_scale",
]
