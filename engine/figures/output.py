"""Stages 8 and 9: next-token probabilities, the logit lens, and the distribution a generated
token was drawn from.

The logit lens reads every layer's residual through the model's own final LayerNorm (`ln_f`,
with that residual's statistics) and unembedding (`engine.lens.logit_lens.logit_lens`); lenses
that skip `ln_f` read a differently scaled vector than the one the model's output sees. Pure
builders: arrays and labels in, plotly Figures out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.figures.common import (
    PALETTE,
    SCALE_WEIGHTS,
    colorscale,
    curve_spec,
    panels_spec,
    plotly_text,
    spec_figure,
    token_labels,
    update_axes,
    window,
)
from engine.figures.text import _
from engine.lens.logit_lens import LogitLens
from engine.sampling import SampleStep, top_candidates

Display = Callable[[int], str]


def layer_names(lens: LogitLens) -> list[str]:
    """`LogitLens.layer_labels` ("embed", "block 0", ...) in the reader's language."""
    return [_("embed")] + [_("block {i}").format(i=i) for i in range(len(lens.layer_labels) - 1)]


def lens_table(lens: LogitLens, col: int, display: Display) -> tuple[pd.DataFrame, dict[str, str]]:
    """The logit lens at one position as a table, a row per lens row (`layer_names`), with its
    column names in the reader's language: the residual the row reads, its top guess
    (`display`ed), that guess's p, the real next token's p, its rank (0 = top) and the entropy
    (nats). `col` is the position's column in `lens` (`LogitLens.column`). The four number
    columns stay float64 (NaN where not measurable: the last token has no real next token) so
    a table keeps them numbers; the second value is each one's display format (a `str.format`
    template, for `ui.widgets.table`'s `formats`)."""
    ranks = lens.next_rank[:, col].astype(np.float64)
    numbers = {
        _("its p"): (lens.top_probs[:, col, 0], "{:.4f}"),
        _("real next token's p"): (lens.next_prob[:, col], "{:.4f}"),
        _("its rank (0 = top)"): (np.where(ranks >= 0, ranks, np.nan), "{:.0f}"),
        _("entropy (nats)"): (lens.entropy[:, col], "{:.3f}"),
    }
    df = pd.DataFrame(
        {
            _("residual after"): layer_names(lens),
            _("top guess"): [display(int(i)) for i in lens.top_ids[:, col, 0]],
            **{name: np.asarray(v, dtype=np.float64) for name, (v, _f) in numbers.items()},
        }
    )
    return df, {name: fmt for name, (_v, fmt) in numbers.items()}


def lens_table_short_headers() -> dict[str, str]:
    """The shorter headers the lens table (`lens_table`) is shown with, by its column names
    (both in the reader's language): with its full headers it was 117 px (English) and 170 px
    (Chinese) wider than the 505 px table box at 1024 px with the sidebar open (measured in
    Chromium) and scrolled sideways; the full names stay the columns' help."""
    return {
        _("real next token's p"): _("real next p"),
        _("its rank (0 = top)"): _("its rank"),
        _("entropy (nats)"): _("entropy"),
    }


# Positions per lens window: each cell carries a word. At 1,024 px with the sidebar open the
# heatmap's plot is about 310 px wide: 16 positions left 19 px a cell for a 16 px word, and the
# words ran into each other; 8 leave about 39 px, a word of CELL_CHARS (hover shows it whole).
LENS_AXIS = 8
CELL_CHARS = 5  # longer words are cut in the cell
HOVER_TOP = 5


def lens_window_start(n_tokens: int, pos: int, size: int = LENS_AXIS) -> int:
    """Where the lens window opens on a first visit: on the selected position `pos`, about
    centred, clamped to the text."""
    return max(0, min(n_tokens - size, pos - size // 2))


def lens_positions(n_tokens: int, start: int, pos: int, size: int = LENS_AXIS) -> list[int]:
    """The positions the Output page reads from the logit lens: the window of `size` starting
    at `start` (clamped as `lens_heatmap` clamps it) and the selected position `pos` (its
    next-token curves and table). At T=1,024 that is 8 or 9 of 1,024 positions."""
    span = window(n_tokens, start, size)
    return sorted({*range(span.start, span.stop), int(pos)})


def _model_bars(labels: list[str], probs: np.ndarray) -> dict:
    """The model's own probabilities (temperature 1) of the listed tokens, as horizontal bars
    (grey, beside the distribution actually sampled from); plotly's dict (`spec_figure`)."""
    return {
        "type": "bar",
        "y": labels,
        "x": probs,
        "orientation": "h",
        "name": _("model (temperature 1)"),
        "marker": {"color": PALETTE[9]},
        "hovertemplate": _("%{y}<br>p = %{x:.4f}<extra>model</extra>"),
    }


def top_tokens_figure(
    model_probs: np.ndarray,
    shaped_probs: np.ndarray,
    display: Display,
    k: int = 15,
    title: str | None = None,
) -> go.Figure:
    """The k most probable next tokens: the model's own probability (temperature 1) beside the
    probability after temperature, top-k and top-p (these keep the order, so one ranking).
    Written as one dict and built once (`spec_figure`)."""
    title = _("Next token") if title is None else title
    ids = top_candidates(model_probs, k)
    labels = [f"{plotly_text(display(int(i)))}  (id {int(i)})" for i in ids]
    data = [
        _model_bars(labels, np.asarray(model_probs, dtype=np.float64)[ids]),
        {
            "type": "bar",
            "y": labels,
            "x": np.asarray(shaped_probs, dtype=np.float64)[ids],
            "orientation": "h",
            "name": _("after temperature / top-k / top-p"),
            "marker": {"color": PALETTE[0]},
            "hovertemplate": _("%{y}<br>p = %{x:.4f}<extra>sampled from</extra>"),
        },
    ]
    layout = {
        "yaxis": {"autorange": "reversed"},
        "xaxis": {
            "title": {"text": _("probability")},
            "range": probability_range(np.asarray(model_probs)[ids], np.asarray(shaped_probs)[ids]),
        },
        "barmode": "group",
        "legend": {"orientation": "h", "y": -0.15},
    }
    return spec_figure({"data": data, "layout": layout}, title, 160 + 44 * len(ids))


def cell_word(word: str) -> str:
    """A token as written inside a lens cell: at most CELL_CHARS characters."""
    return word if len(word) <= CELL_CHARS else word[: CELL_CHARS - 1] + "…"


def probability_range(*arrays: np.ndarray) -> list[float]:
    """An x range from 0 that shows small probabilities (a flat distribution) and large ones."""
    top = max(float(np.max(a)) for a in arrays)
    return [0.0, min(1.05, max(0.02, 1.15 * top))]


def lens_hover(lens: LogitLens, display: Display, lo: int, hi: int) -> np.ndarray:
    """[rows, hi - lo] hover strings: the top 5 tokens of each lens cell with probabilities,
    for Trace positions lo..hi-1."""
    k = min(HOVER_TOP, lens.top_ids.shape[-1])
    rows = lens.top_ids.shape[0]
    out = np.empty((rows, hi - lo), dtype=object)
    for r in range(rows):
        for c, t in enumerate(lens.columns(range(lo, hi))):
            out[r, c] = "<br>".join(
                f"{j + 1}. {plotly_text(display(int(lens.top_ids[r, t, j])))}  "
                f"{lens.top_probs[r, t, j]:.3f}"
                for j in range(k)
            )
    return out


def lens_heatmap(
    lens: LogitLens,
    token_strs: tuple[str, ...],
    display: Display,
    start: int = 0,
    size: int = LENS_AXIS,
) -> go.Figure:
    """Layers (rows) x positions (columns): each cell names the lens's top next token and is
    coloured by its probability; hover lists the top 5. The window of `size` positions from
    `start` (of `len(token_strs)`) must be among the positions `lens` holds (ValueError).
    Written as one dict and built once (`spec_figure`)."""
    T = len(token_strs)
    span = window(T, start, size)
    lo, hi = span.start, span.stop
    cols = lens.columns(range(lo, hi))  # the lens may hold only some positions
    top = lens.top_probs[:, cols, 0].astype(np.float64)
    words = np.vectorize(lambda i: plotly_text(cell_word(display(int(i)))), otypes=[object])(
        lens.top_ids[:, cols, 0]
    )
    trace = {
        "type": "heatmap",
        "z": np.round(top, 4),
        "x": token_labels(token_strs, lo, hi),
        "y": layer_names(lens),
        "text": words,
        "texttemplate": "%{text}",
        "textfont": {"size": 12},
        "customdata": lens_hover(lens, display, lo, hi),
        "colorscale": colorscale(SCALE_WEIGHTS),
        "zmin": 0.0,
        "zmax": 1.0,
        "colorbar": {"title": {"text": _("p(top)")}},
        "hovertemplate": _("reading %{x}<br>%{y}<br>%{customdata}<extra></extra>"),
    }
    layout = {
        "yaxis": {"autorange": "reversed", "title": {"text": _("residual read after")}},
        "xaxis": {"title": {"text": _("position (the token it has just read)")}, "tickangle": -45},
    }
    return spec_figure(
        {"data": [trace], "layout": layout},
        _("Logit lens: each layer's best guess of the next token (ln_f applied per layer)"),
        220 + 52 * len(lens.layer_labels),
    )


def next_token_figure(lens: LogitLens, pos: int, next_label: str) -> go.Figure:
    """Probability and rank (0 = top) of the token that really comes next, layer by layer, at
    Trace position `pos` (one the lens holds: ValueError otherwise). Written as one dict and
    built once (`spec_figure`)."""
    labels = layer_names(lens)
    col = lens.column(pos)
    lines = (
        curve_spec(
            labels,
            lens.next_prob[:, col],
            _("probability"),
            PALETTE[0],
            "%{x}<br>p = %{y:.4f}<extra></extra>",
        ),
        curve_spec(
            labels,
            lens.next_rank[:, col],
            _("rank"),
            PALETTE[1],
            _("%{x}<br>rank %{y}<extra></extra>"),
        ),
    )
    spec, _ref = panels_spec(
        lines, (_("probability"), _("rank (0 = the top guess)")), cols=2, spacing=0.12
    )
    layout = spec["layout"]
    update_axes(layout, x={"tickangle": -30}, y={"rangemode": "tozero"})
    layout["showlegend"] = False
    return spec_figure(
        spec,
        _("The real next token “{token}” after position {pos}").format(
            token=plotly_text(next_label), pos=pos
        ),
        440,
    )


def target_figure(probs: np.ndarray, layer_labels: list[str], target_label: str) -> go.Figure:
    """One chosen token's probability at the selected position, layer by layer. Written as one
    dict and built once (`spec_figure`)."""
    line = curve_spec(
        layer_labels,
        np.asarray(probs, dtype=np.float64),
        target_label,
        PALETTE[2],
        "%{x}<br>p = %{y:.5f}<extra></extra>",
    )
    layout = {
        "yaxis": {"title": {"text": _("probability")}, "rangemode": "tozero"},
        "xaxis": {"tickangle": -30},
    }
    title = _("p(“{token}”) through the layers").format(token=plotly_text(target_label))
    return spec_figure({"data": [line], "layout": layout}, title, 420)


def sample_figure(step: SampleStep, display: Display, k: int = 20) -> go.Figure:
    """The distribution a token was drawn from (top k, plus the chosen token if it is not among
    them), the chosen token marked; the model's own probabilities beside it. Written as one dict
    and built once (`spec_figure`)."""
    ids = [int(i) for i in top_candidates(step.probs, k) if step.probs[int(i)] > 0]
    if step.token_id not in ids:
        ids.append(step.token_id)
    labels = [f"{plotly_text(display(i))}  (id {i})" for i in ids]
    colours = [PALETTE[3] if i == step.token_id else PALETTE[0] for i in ids]
    data = [
        _model_bars(labels, step.model_probs[ids]),
        {
            "type": "bar",
            "y": labels,
            "x": step.probs[ids],
            "orientation": "h",
            "name": _("drawn from (chosen in red)"),
            "marker": {"color": colours},
            "text": [_("◀ chosen") if i == step.token_id else "" for i in ids],
            "textposition": "outside",
            "cliponaxis": False,
            "hovertemplate": _("%{y}<br>p = %{x:.4f}<extra>sampled from</extra>"),
        },
    ]
    layout = {
        "yaxis": {"autorange": "reversed"},
        "xaxis": {
            "title": {"text": _("probability")},
            "range": probability_range(step.probs[ids], step.model_probs[ids]),
        },
        "barmode": "group",
        "legend": {"orientation": "h", "y": -0.12},
    }
    chosen = plotly_text(display(step.token_id))
    title = _("Chose “{token}” (p = {p}) from {n} candidates").format(
        token=chosen, p=f"{step.prob:.3f}", n=step.n_candidates
    )
    return spec_figure({"data": data, "layout": layout}, title, 200 + 40 * len(ids))


__all__ = [
    "HOVER_TOP",
    "LENS_AXIS",
    "cell_word",
    "lens_heatmap",
    "lens_hover",
    "lens_positions",
    "lens_window_start",
    "next_token_figure",
    "sample_figure",
    "target_figure",
    "top_tokens_figure",
]
