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
    colorscale,
    plotly_text,
    spec_figure,
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
    only names the ranking in the title. Written as one dict and built once (`spec_figure`)."""
    span = window(post.shape[0], start)
    lo, hi = span.start, span.stop
    z = post[lo:hi, ids].T.astype(np.float64)
    zmin, zmax = min(0.0, float(z.min())), max(0.0, float(z.max()))
    trace = {
        "type": "heatmap",
        "z": z,
        "x": token_labels(token_strs, lo, hi),
        "y": [_("unit {i}").format(i=i) for i in ids],
        "colorscale": zero_white_scale(zmin, zmax),
        "zmin": zmin,
        "zmax": zmax,
        "colorbar": {"title": {"text": "gelu"}},
        "hovertemplate": _("token %{x}<br>%{y}<br>activation %{z:.3f}<extra></extra>"),
    }
    layout = {
        "yaxis": {"autorange": "reversed", "title": {"text": _("hidden unit")}, "type": "category"},
        "xaxis": {"title": {"text": _("token")}, "tickangle": -45, "type": "category"},
    }
    height = max(420, 26 * len(ids) + 200)
    title = (
        _("Layer {layer}: the {k} most selective of {n} hidden units")
        if rank == "selective"
        else _("Layer {layer}: the {k} most active of {n} hidden units")
    )
    return spec_figure(
        {"data": [trace], "layout": layout},
        title.format(layer=layer, k=len(ids), n=post.shape[1]),
        height,
    )


def _histogram(x: np.ndarray, name: str, bins: int, colour: str, **extra: str) -> dict:
    """A histogram trace of `x` as plotly's dict (`spec_figure`), drawn translucent to overlay."""
    return {
        "type": "histogram",
        "x": x,
        "name": name,
        "nbinsx": bins,
        "marker": {"color": colour},
        "opacity": 0.75,
        **extra,
    }


def _overlay_layout(x_title: str, y_title: str, legend_y: float) -> dict:
    """The layout of overlaid histograms, the legend under the plot."""
    return {
        "barmode": "overlay",
        "legend": {"orientation": "h", "y": legend_y},
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}},
    }


def hidden_histogram(
    pre: np.ndarray, post: np.ndarray, token_str: str, layer: int, pos: int
) -> go.Figure:
    """Every hidden unit of one token (`pre`, `post`: its [d_mlp] values before and after GELU;
    `token_str` the token as displayed), as two overlaid histograms. Written as one dict and
    built once (`spec_figure`)."""
    pre = np.asarray(pre, dtype=np.float64)
    post = np.asarray(post, dtype=np.float64)
    data = [
        _histogram(
            pre,
            _("before GELU (W1 x + b1)"),
            60,
            PALETTE[9],
            hovertemplate=_("value %{x}<br>%{y} units<extra>before GELU</extra>"),
        ),
        _histogram(
            post,
            _("after GELU"),
            60,
            PALETTE[0],
            hovertemplate=_("value %{x}<br>%{y} units<extra>after GELU</extra>"),
        ),
    ]
    layout = _overlay_layout(_("activation"), _("hidden units"), -0.2)
    token = plotly_text(token_str)
    return spec_figure(
        {"data": data, "layout": layout},
        _("Token {pos} “{token}”: its {n} hidden units, layer {layer}").format(
            pos=pos, token=token, n=pre.size, layer=layer
        ),
        440,
    )


def activation_functions(pre_all: np.ndarray, pos: int) -> go.Figure:
    """GELU beside tanh (the article's) and ReLU, with token `pos`'s pre-activations on GELU;
    `pre_all` is one layer's [T, d_mlp] pre-activations (they set the x range). Written as one
    dict and built once (`spec_figure`)."""
    pre_all = np.asarray(pre_all)
    pre = np.asarray(pre_all[pos], dtype=np.float64)
    # the range in the stored dtype: the same numbers as in float64 (widening is exact), without
    # a float64 copy of the whole layer (25 MB for GPT-2 at 1,024 tokens)
    low = min(-4.0, float(pre_all.min()))
    high = max(4.0, float(pre_all.max()))
    xs = np.linspace(low, high, 400)
    curves = (
        ("GELU (GPT-2)", gelu(xs), PALETTE[0], "solid"),
        (_("tanh (the article)"), np.tanh(xs), PALETTE[1], "dash"),
        ("ReLU", np.maximum(xs, 0.0), PALETTE[2], "dot"),
    )
    data = [
        {
            "type": "scatter",
            "x": xs,
            "y": ys,
            "mode": "lines",
            "name": name,
            "line": {"color": colour, "dash": dash, "width": 3},
            "hovertemplate": _("x %{x:.2f}<br>f(x) %{y:.3f}<extra>") + name + "</extra>",
        }
        for name, ys, colour, dash in curves
    ]
    data.append(
        {
            "type": "scatter",
            "x": pre,
            "y": gelu(pre),
            "mode": "markers",
            "name": _("token {pos}'s {n} units").format(pos=pos, n=pre.size),
            "marker": {"color": PALETTE[3], "size": 7, "opacity": 0.6},
            "hovertemplate": _(
                "before GELU %{x:.3f}<br>after GELU %{y:.3f}<extra>this token</extra>"
            ),
        }
    )
    layout = {
        "xaxis": {"title": {"text": _("pre-activation  W1 x + b1")}},
        "yaxis": {
            "title": {"text": _("output")},
            "range": [-1.5, max(2.0, float(gelu(high)) * 1.05)],
        },
        "legend": {"orientation": "h", "y": -0.22},
    }
    return spec_figure(
        {"data": data, "layout": layout}, _("Activation functions, with this text's values"), 480
    )


def mlp_norms_heatmap(
    norms: np.ndarray, token_strs: list[str] | tuple[str, ...], start: int = 0
) -> go.Figure:
    """How much each layer's MLP writes into each token's residual stream: `norms` is
    [n_layer, T] (`engine.lens.feed_forward.mlp_out_norms`), a window of tokens from `start`.
    Written as one dict and built once (`spec_figure`)."""
    span = window(norms.shape[1], start)
    lo, hi = span.start, span.stop
    trace = {
        "type": "heatmap",
        "z": norms[:, lo:hi],
        "x": token_labels(token_strs, lo, hi),
        "y": [_("layer {i}").format(i=i) for i in range(norms.shape[0])],
        "colorscale": colorscale(SCALE_WEIGHTS),
        "zmin": 0.0,
        "colorbar": {"title": {"text": "‖mlp_out‖"}},
        "hovertemplate": _("token %{x}<br>%{y}<br>‖mlp_out‖ %{z:.3f}<extra></extra>"),
    }
    layout = {
        "yaxis": {"autorange": "reversed"},
        "xaxis": {"title": {"text": _("token")}, "tickangle": -45},
    }
    return spec_figure(
        {"data": [trace], "layout": layout},
        _("Size of each layer's feed-forward output, per token"),
        160 + 50 * norms.shape[0],
    )


def article_vs_gpt(pre: np.ndarray, layer: int, pos: int) -> go.Figure:
    """The same hidden pre-activations `pre` [d_mlp] of token `pos` in layer `layer` through the
    article's tanh and GPT-2's GELU, as two overlaid histograms. Written as one dict and built
    once (`spec_figure`)."""
    pre = np.asarray(pre, dtype=np.float64)
    data = [
        _histogram(np.tanh(pre), _("article: tanh(·), squashed into (-1, 1)"), 50, PALETTE[1]),
        _histogram(gelu(pre), _("GPT-2: gelu(·), large values pass"), 50, PALETTE[0]),
    ]
    layout = _overlay_layout(_("hidden unit value"), _("hidden units"), -0.22)
    title = _("Token {pos}, layer {layer}: tanh vs GELU on the same inputs")
    return spec_figure({"data": data, "layout": layout}, title.format(pos=pos, layer=layer), 440)


__all__ = [
    "activation_functions",
    "article_vs_gpt",
    "hidden_histogram",
    "mlp_norms_heatmap",
    "neurons_heatmap",
    "zero_white_scale",
]
