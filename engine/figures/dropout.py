"""Stage 7, dropout: one head's attention pattern in evaluation mode (dropout is the identity)
and in a seeded training-mode pass (cells zeroed with probability p, survivors x 1/(1 - p))."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from engine.dropout_demo import MaskAverage, kept_mask
from engine.figures.common import (
    PALETTE,
    SCALE_WEIGHTS,
    bar_spec,
    colorscale,
    spec_figure,
    subplots_spec,
    token_labels,
    update_axes,
    window,
)
from engine.figures.text import _

# Three patterns side by side: fewer tokens per panel than a full-width heatmap.
PANEL_AXIS = 64


def _rounded(z: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(z, dtype=np.float64), 4)


def _rows_layout() -> dict:
    """The layout of the grouped bars over the keys (`query_row_figure`, `average_row_figure`)."""
    return {
        "barmode": "group",
        "legend": {"orientation": "h", "y": -0.3},
        "xaxis": {"title": {"text": _("key token")}, "tickangle": -45},
        "yaxis": {"title": {"text": _("attention weight")}},
    }


def patterns_figure(
    token_strs: tuple[str, ...],
    eval_pattern: np.ndarray,
    pass_pattern: np.ndarray,
    dropped: np.ndarray,
    p: float,
    start: int = 0,
) -> go.Figure:
    """Evaluation mode | the dropout pass before its mask | after the mask and the rescaling.

    Each argument is one head's [T, T] pattern (query rows, key columns). Written as one dict
    and built once (`spec_figure`)."""
    T = len(token_strs)
    span = window(T, start, PANEL_AXIS)
    lo, hi = span.start, span.stop
    labels = token_labels(token_strs, lo, hi)
    scale = 1.0 / (1.0 - p)
    # short panel titles: a panel is about 90 px wide at 1024 px with the sidebar open (titles
    # are wrapped to it, `readable`); the text above the figure says what each panel is
    spec, ref = subplots_spec(
        (
            _("evaluation: identity"),
            _("training, pre-mask"),
            _("post-mask, ×{scale}").format(scale=f"{scale:.3g}"),
        ),
        rows=1,
        cols=3,
        shared_yaxes=True,
        horizontal_spacing=0.03,
    )
    panels = (eval_pattern, pass_pattern, dropped)
    zmax = float(max(np.max(z[lo:hi, lo:hi]) for z in panels)) or 1.0
    spec["data"] = [
        {
            "type": "heatmap",
            "z": _rounded(z[lo:hi, lo:hi]),
            "x": labels,
            "y": labels,
            "colorscale": colorscale(SCALE_WEIGHTS),
            "zmin": 0.0,
            "zmax": zmax,
            "showscale": col == 2,
            "colorbar": {"title": {"text": _("weight")}},
            "hovertemplate": _("query %{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>"),
            **ref[0][col][0].trace_kwargs,
        }
        for col, z in enumerate(panels)
    ]
    layout = spec["layout"]
    update_axes(layout, x={"tickangle": -60}, y={"autorange": "reversed"})
    layout[ref[0][0][0].layout_keys[1]]["title"] = {"text": _("query token")}
    return spec_figure(
        spec, _("One head's attention weights, dropout p = {p}").format(p=f"{p:g}"), 560
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
    its mask; dropped keys are marked. Written as one dict and built once (`spec_figure`)."""
    keys = slice(0, pos + 1)
    labels = token_labels(token_strs, 0, pos + 1)
    kept = kept_mask(pass_row[keys], dropped_row[keys])
    data = [
        bar_spec(
            labels,
            _rounded(row[keys]),
            name,
            colour,
            _("key %{x}<br>weight %{y:.4f}<extra>") + name + "</extra>",
        )
        for name, row, colour in (
            (_("evaluation (identity)"), eval_row, PALETTE[9]),
            (_("training pass, before the mask"), pass_row, PALETTE[0]),
            (
                _("after the mask, × {factor}").format(factor=f"1/(1 − {p:g})"),
                dropped_row,
                PALETTE[1],
            ),
        )
    ]
    dropped_at = [labels[i] for i in np.flatnonzero(~kept)]
    if dropped_at:
        data.append(
            {
                "type": "scatter",
                "x": dropped_at,
                "y": [0.0] * len(dropped_at),
                "mode": "markers",
                "name": _("dropped by the mask"),
                "marker": {"symbol": "x", "size": 14, "color": PALETTE[3]},
                "hovertemplate": _("key %{x}: dropped<extra></extra>"),
            }
        )
    title = _("Query token {pos}: its weights, with and without dropout").format(pos=pos)
    return spec_figure({"data": data, "layout": _rows_layout()}, title, 480)


def convergence_figure(avg: MaskAverage) -> go.Figure:
    """How the average over many masks approaches the evaluation output (inverted dropout) or
    only (1 - p) times it (the article's unscaled mask). Written as one dict and built once
    (`spec_figure`)."""
    data = []
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
        data.append(
            {
                "type": "scatter",
                "x": avg.counts,
                "y": ys,
                "mode": "lines",
                "name": name,
                "line": {"color": colour, "dash": dash, "width": 3},
                "hovertemplate": _("%{x} masks<br>mean |difference| %{y:.5f}<extra></extra>"),
            }
        )
    layout = {
        "xaxis": {"type": "log", "title": {"text": _("number of masks averaged")}},
        "yaxis": {"title": {"text": _("mean |difference| per weight")}, "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": -0.3},
    }
    title = _("Averages of {n} masks, p = {p}").format(n=avg.n, p=f"{avg.p:g}")
    return spec_figure({"data": data, "layout": layout}, title, 480)


def average_row_figure(
    token_strs: tuple[str, ...], pos: int, x_row: np.ndarray, avg: MaskAverage
) -> go.Figure:
    """The selected query's weights: evaluation, the average of the inverted-dropout outputs, the
    average of the unscaled outputs, and (1 - p) x. Written as one dict and built once
    (`spec_figure`)."""
    keys = slice(0, pos + 1)
    labels = token_labels(token_strs, 0, pos + 1)
    data = []
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
        data.append(
            bar_spec(
                labels,
                _rounded(row),
                name,
                colour,
                _("key %{x}<br>%{y:.4f}<extra>") + name + "</extra>",
            )
        )
    return spec_figure(
        {"data": data, "layout": _rows_layout()},
        _("Query token {pos}: what the masks average to").format(pos=pos),
        480,
    )


__all__ = [
    "PANEL_AXIS",
    "average_row_figure",
    "convergence_figure",
    "patterns_figure",
    "query_row_figure",
]
