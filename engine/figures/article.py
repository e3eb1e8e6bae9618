"""The seed article's attention as written beside GPT's, on the user's text (numbers from
`engine.lens.article`). Pure builders: arrays and labels in, plotly Figures out. Titles and axis
names are English templates through `engine.figures.text._` (the reader's language)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from engine.figures.common import (
    MAX_AXIS,
    PALETTE,
    heatmap,
    heatmap_spec,
    plotly_text,
    spec_figure,
    token_labels,
    window,
)
from engine.figures.text import _


def alpha_figure(alpha: np.ndarray, token_strs: list[str] | tuple[str, ...], pos: int) -> go.Figure:
    """The article's alpha_{pos, j} = e_pos^T Q / sqrt(d_k) for every key j ([T, d_head]): every
    row the same vector, since the formula has no key (rows: keys j, at most MAX_AXIS of them
    in a window around `pos`; columns: the d_head components). Written as one dict and built
    once (`spec_figure`)."""
    rows = window(alpha.shape[0], pos - MAX_AXIS // 2)
    keys = token_labels(token_strs, rows.start, rows.stop)
    spec = heatmap_spec(
        alpha[rows],
        list(range(alpha.shape[1])),  # components are numbers: plain ticks
        keys,
        signed=True,
        x_title=_("component of α (a vector, not one weight)"),
        y_title=_("key j"),
        hovertemplate=_("key %{y}<br>component %{x}: %{z:.3f}"),
        colorbar_title="α",
    )
    spec["layout"]["xaxis"].update(type="linear", tickangle=0)
    return spec_figure(
        spec, _("The article: α for query {pos} and every key j").format(pos=pos), 380
    )


def gpt_row_figure(
    weights: np.ndarray, token_strs: list[str] | tuple[str, ...], pos: int
) -> go.Figure:
    """GPT's weights of query `pos` over the keys j <= pos (one row of `attn.hook_pattern`): one
    number per key, summing to 1. Written as one dict and built once (`spec_figure`)."""
    labels = token_labels(token_strs, 0, pos + 1)
    bars = {
        "type": "bar",
        "y": labels,
        "x": np.asarray(weights[: pos + 1], dtype=np.float64),
        "orientation": "h",
        "marker": {"color": PALETTE[0]},
        "hovertemplate": _("key %{y}<br>weight %{x:.3f}") + "<extra></extra>",
    }
    layout = {
        "yaxis": {"autorange": "reversed", "title": {"text": _("key j ≤ i")}},
        "xaxis": {"title": {"text": _("weight (softmax of q·k / √d_head)")}, "range": [0, 1]},
    }
    return spec_figure(
        {"data": [bars], "layout": layout},
        _("GPT: query {pos}, one weight per key").format(pos=pos),
        380,
    )


def head_split_figures(
    article: np.ndarray,
    gpt_rows: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    pos: int,
) -> tuple[go.Figure, go.Figure]:
    """(the article's [H, H] weights of token `pos`'s heads over each other, GPT's [H, pos + 1]
    weights of each head of token `pos` over the tokens, of which the last MAX_AXIS are drawn):
    the same rows (heads), different columns (heads in the article, tokens in GPT)."""
    cols = window(gpt_rows.shape[1], gpt_rows.shape[1] - MAX_AXIS)
    heads = [_("head {head}").format(head=h) for h in range(article.shape[0])]
    left = heatmap(
        article,
        heads,
        heads,
        _("The article: token {pos}'s heads attend to each other").format(pos=pos),
        signed=False,
        zmax=1.0,
        x_title=_("looked at: a head of the same token"),
        y_title=_("head"),
        hovertemplate=_("%{y} → %{x}<br>weight %{z:.3f}"),
        height=360,
        colorbar_title=_("weight"),
    )
    right = heatmap(
        gpt_rows[:, cols],
        token_labels(token_strs, cols.start, cols.stop),
        heads,
        _("GPT: each head of token {pos} attends to earlier tokens").format(
            pos=plotly_text(str(pos))
        ),
        signed=False,
        zmax=1.0,
        x_title=_("looked at: an earlier token"),
        y_title=_("head"),
        hovertemplate=_("%{y} → %{x}<br>weight %{z:.3f}"),
        height=360,
        colorbar_title=_("weight"),
    )
    return left, right
