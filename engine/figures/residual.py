"""Stage 6, the residual stream: every block adds to it, `x = x + attn(ln_1(x))`,
`x = x + mlp(ln_2(x))`, so the final vector is exactly the sum of everything written into it.

Pure builders: arrays and labels in, plotly Figures out; the numbers come from
`engine.lens.residual`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from engine.figures.common import (
    PALETTE,
    SCALE_SIGNED,
    SCALE_WEIGHTS,
    colorscale,
    curve_spec,
    plotly_text,
    spec_figure,
    token_labels,
    window,
)
from engine.figures.text import _
from engine.lens.residual import Contributions


def stack_labels(n_layer: int) -> list[str]:
    """Row names of `engine.lens.residual.residual_stack` (n_layer + 1): after the embeddings,
    then after each block."""
    return [_("after embeddings")] + [_("after block {i}").format(i=i) for i in range(n_layer)]


def part_name(name: str) -> str:
    """A part of `Contributions.names` ("token embedding", "attention 3", "MLP 3") in the
    reader's language."""
    if name == "token embedding":
        return _("token embedding")
    if name == "position embedding":
        return _("position embedding")
    kind, _space, layer = name.partition(" ")
    if kind == "attention":
        return _("attention {layer}").format(layer=layer)
    return _("MLP {layer}").format(layer=layer)


def norms_heatmap(
    norms: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    start: int = 0,
    log: bool = False,
) -> go.Figure:
    """The residual's size (L2 norm) for every token after the embeddings and after every block:
    `norms` is [n_layer + 1, T] (`engine.lens.residual.residual_norms`), a window of tokens from
    `start`. With `log`, the colour is log10 of the size (trained models grow by orders of
    magnitude); the hover always shows the size itself. Written as one dict and built once
    (`spec_figure`)."""
    span = window(norms.shape[1], start)
    lo, hi = span.start, span.stop
    shown = norms[:, lo:hi]
    colour = np.log10(np.maximum(shown, 1e-12)) if log else shown
    trace = {
        "type": "heatmap",
        "z": colour,
        "customdata": shown,
        "x": token_labels(token_strs, lo, hi),
        "y": stack_labels(norms.shape[0] - 1),
        "colorscale": colorscale(SCALE_WEIGHTS),
        **({} if log else {"zmin": 0.0}),
        "colorbar": {"title": {"text": "log₁₀ ‖x‖" if log else "‖x‖"}},
        "hovertemplate": _("token %{x}<br>%{y}<br>‖x‖ %{customdata:.3f}<extra></extra>"),
    }
    layout = {
        "yaxis": {"autorange": "reversed", "type": "category"},
        "xaxis": {"title": {"text": _("token")}, "tickangle": -45, "type": "category"},
    }
    title = (
        _("Size of the residual stream, token by token (log colour)")
        if log
        else _("Size of the residual stream, token by token")
    )
    return spec_figure({"data": [trace], "layout": layout}, title, 200 + 45 * norms.shape[0])


def contributions_figure(contrib: Contributions, pos: int, token_label: str) -> go.Figure:
    """For one token: each part's size, and how much of it points along the final residual.
    Written as one dict and built once (`spec_figure`)."""
    colours = [
        PALETTE[4] if n.endswith("embedding") else PALETTE[0] if n.startswith("att") else PALETTE[1]
        for n in contrib.names
    ]
    names = [part_name(n) for n in contrib.names]
    data = [
        {
            "type": "bar",
            "y": names,
            "x": contrib.sizes,
            "orientation": "h",
            "name": _("size ‖part‖"),
            "marker": {"color": colours},
            "hovertemplate": _("%{y}<br>size %{x:.3f}<extra></extra>"),
        },
        {
            "type": "bar",
            "y": names,
            "x": contrib.along_final,
            "orientation": "h",
            "name": _("along the final direction"),
            "marker": {"color": "rgba(0,0,0,0.55)"},
            "hovertemplate": _("%{y}<br>along the final residual %{x:.3f}<extra></extra>"),
        },
    ]
    layout = {
        "yaxis": {"autorange": "reversed"},
        "xaxis": {"title": {"text": _("size (L2 norm) / signed component")}},
        "barmode": "group",
        "legend": {"orientation": "h", "y": -0.18},
    }
    title = _("Token {pos} “{token}”: what each part wrote (final size {size})").format(
        pos=pos, token=plotly_text(token_label), size=f"{contrib.final_norm:.2f}"
    )
    return spec_figure({"data": data, "layout": layout}, title, 180 + 34 * len(names))


def cosine_figure(cos: np.ndarray, pos: int, token_label: str) -> go.Figure:
    """Cosine similarity of each layer's residual with the final one: the selected token and
    the mean over tokens. Written as one dict and built once (`spec_figure`)."""
    labels = stack_labels(cos.shape[0] - 1)
    spec = {
        "data": [
            curve_spec(
                labels,
                cos.mean(axis=1),
                _("mean over tokens"),
                PALETTE[0],
                _("%{x}<br>mean cosine %{y:.3f}<extra></extra>"),
            ),
            curve_spec(
                labels,
                cos[:, pos],
                _("token {pos} “{token}”").format(pos=pos, token=plotly_text(token_label)),
                PALETTE[3],
                _("%{x}<br>cosine %{y:.3f}<extra>this token</extra>"),
                dash=True,
            ),
        ],
        "layout": {
            "yaxis": {
                "title": {"text": _("cosine with the final residual")},
                "range": [-0.1, 1.05],
            },
            "legend": {"orientation": "h", "y": -0.25},
        },
    }
    return spec_figure(spec, _("Cosine with the final residual"), 440)


def cosine_heatmap(
    cos: np.ndarray, token_strs: list[str] | tuple[str, ...], start: int = 0
) -> go.Figure:
    """The cosine similarities `cos` [n_layer + 1, T] with the final residual for every token
    (layers x a window of tokens from `start`). Written as one dict and built once
    (`spec_figure`)."""
    span = window(cos.shape[1], start)
    lo, hi = span.start, span.stop
    trace = {
        "type": "heatmap",
        "z": cos[:, lo:hi],
        "x": token_labels(token_strs, lo, hi),
        "y": stack_labels(cos.shape[0] - 1),
        "colorscale": colorscale(SCALE_SIGNED),
        "zmin": -1.0,
        "zmax": 1.0,
        "zmid": 0.0,
        "colorbar": {"title": {"text": "cos"}},
        "hovertemplate": _("token %{x}<br>%{y}<br>cosine %{z:.3f}<extra></extra>"),
    }
    layout = {"yaxis": {"autorange": "reversed"}, "xaxis": {"tickangle": -45}}
    return spec_figure(
        {"data": [trace], "layout": layout},
        _("Cosine with the final residual, every token"),
        200 + 45 * cos.shape[0],
    )


__all__ = [
    "contributions_figure",
    "cosine_figure",
    "cosine_heatmap",
    "norms_heatmap",
    "stack_labels",
]
