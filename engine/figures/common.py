"""Colours, fonts and layout shared by every figure (sized for a projector)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

FONT_SIZE = 16
# Plotly's own default stack, then CJK fonts so that Chinese titles, ticks and hovers render in
# a CJK face instead of the browser's guess: Noto Sans CJK (what .ci/run and Debian's
# fonts-noto-cjk install), Source Han Sans (the same design under Adobe's name), then what
# macOS and Windows ship.
FONT_FAMILY = (
    '"Open Sans", verdana, arial, "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", '
    '"PingFang SC", "Microsoft YaHei", sans-serif'
)
TITLE_SIZE = 20
# Sequential scale for weights in [0, 1] (attention, probabilities).
SCALE_WEIGHTS = "Blues"
# Diverging scale for signed activations, centred on 0.
SCALE_SIGNED = "RdBu_r"
# Qualitative colours for token chips and lines.
PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#E45756",
    "#72B7B2",
    "#EECA3B",
    "#B279A2",
    "#FF9DA6",
    "#9D755D",
    "#BAB0AC",
)
# Largest number of cells along one axis that a heatmap sends to the browser; bigger arrays are
# shown as a window (pages offer a control to move it).
MAX_AXIS = 256


def base_layout(fig: go.Figure, title: str, height: int = 480) -> go.Figure:
    """Apply the shared title, font, margins and template to `fig` (in place; returns it)."""
    fig.update_layout(
        title={"text": title, "font": {"size": TITLE_SIZE}},
        font={"size": FONT_SIZE, "family": FONT_FAMILY},
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 60},
        template="plotly_white",
    )
    return fig


def curve(
    x: Sequence, y: np.ndarray, name: str, colour: str, hover: str, dash: bool = False
) -> go.Scatter:
    """A thick line with markers: the style of every layer-by-layer curve (a `go.Scatter`).
    `hover` is the trace's hovertemplate; `dash` draws the selected token's curve dashed."""
    line = {"color": colour, "width": 3, **({"dash": "dash"} if dash else {})}
    return go.Scatter(x=x, y=y, mode="lines+markers", line=line, name=name, hovertemplate=hover)


def panels(
    traces: Sequence[go.Bar | go.Scatter],
    titles: Sequence[str],
    cols: int = 1,
    spacing: float = 0.1,
) -> go.Figure:
    """One panel per trace, in one column (sharing the x axis, `spacing` between rows) or, with
    `cols` = len(traces), in one row (`spacing` between columns); `titles` name the panels."""
    n = len(traces)
    grid = (
        {"rows": 1, "cols": cols, "horizontal_spacing": spacing}
        if cols > 1
        else {"rows": n, "cols": 1, "shared_xaxes": True, "vertical_spacing": spacing}
    )
    fig = make_subplots(subplot_titles=tuple(titles), **grid)
    for i, trace in enumerate(traces):
        fig.add_trace(trace, row=1 if cols > 1 else i + 1, col=i + 1 if cols > 1 else 1)
    return fig


NOT_MEASURABLE = "–"  # shown for a statistic averaged over nothing (or any non-finite value)


def shown(value: float | None, fmt: str = "{:.2f}") -> str:
    """`value` formatted with `fmt` for a table or a label, or NOT_MEASURABLE ("–") when it is
    None, NaN or infinite (a mean or maximum over an empty set, a missing next token); a user
    never sees None, nan or inf."""
    if value is None or not np.isfinite(float(value)):
        return NOT_MEASURABLE
    return fmt.format(value)


def finite_or_none(values: np.ndarray) -> np.ndarray:
    """A float array for plotly. All finite: the values as a float32 array (their dtype in a
    Trace), which plotly sends as a base64 typed array, about 5 bytes a value instead of about
    20 as JSON text, with no rounding. Otherwise -inf / inf / nan (e.g. masked attention
    scores) become None, which plotly draws as a gap and JSON can carry (an object array)."""
    floats = np.asarray(values, dtype=np.float64)
    mask = ~np.isfinite(floats)
    if not mask.any():
        return np.ascontiguousarray(values, dtype=np.float32)
    out = np.asarray(values, dtype=object)
    out[mask] = None
    return out


def unique_labels(labels: list[str] | tuple[str, ...]) -> list[str]:
    """Plotly merges equal category labels on an axis; make each token label unique by
    prefixing its position ("3:␣the")."""
    return [f"{i}:{s}" for i, s in enumerate(labels)]


def plotly_text(s: str) -> str:
    """A string plotly draws literally. Plotly reads a subset of HTML in every text (axis ticks,
    hover, titles): a token such as `<E4>` or `<br>` would vanish or break the line, so `&`, `<`
    and `>` are written as entities, which plotly decodes back to the characters; a label
    wrapped in `$...$` gets a zero-width space in front so it is never typeset as LaTeX."""
    safe = html.escape(s, quote=False)
    if len(safe) >= 2 and safe.startswith("$") and safe.endswith("$"):
        safe = "\u200b" + safe
    return safe


def token_labels(
    token_strs: list[str] | tuple[str, ...], lo: int = 0, hi: int | None = None
) -> list[str]:
    """Axis labels for token positions lo..hi-1: unique ("3:␣the") and plotly-safe."""
    return [plotly_text(s) for s in unique_labels(list(token_strs))[lo:hi]]


def window_start(n: int, start: int, size: int = MAX_AXIS) -> int:
    """The first index of a window of `size` cells over an axis of `n`, clamped to be valid."""
    if n <= size:
        return 0
    return max(0, min(int(start), n - size))


def window(n: int, start: int, size: int = MAX_AXIS) -> slice:
    """The slice of an axis of `n` cells that a heatmap shows (all of it when n <= size)."""
    s = window_start(n, start, size)
    return slice(s, min(n, s + size))


def signed_range(values: np.ndarray) -> float:
    """Half-width of a colour range centred on 0 that covers the finite values (at least 1e-6)."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    return float(max(np.abs(finite).max(), 1e-6)) if finite.size else 1.0


def heatmap(
    z: np.ndarray,
    x_labels: list[str],
    y_labels: list[str],
    title: str,
    *,
    signed: bool,
    x_title: str,
    y_title: str,
    hovertemplate: str,
    customdata: np.ndarray | None = None,
    height: int = 480,
    zmax: float | None = None,
    colorbar_title: str = "",
) -> go.Figure:
    """One heatmap in the shared style: rows top to bottom, category axes with every label.

    `z` goes to plotly as it is (masked -inf become None). Signed data uses the diverging scale
    centred on 0; weights use the sequential scale from 0 to `zmax` (default: the data's max).
    """
    z_plot = finite_or_none(z)
    trace_kwargs: dict[str, object] = {}
    if signed:
        r = signed_range(z) if zmax is None else zmax
        trace_kwargs.update(colorscale=SCALE_SIGNED, zmin=-r, zmax=r, zmid=0)
    else:
        trace_kwargs.update(colorscale=SCALE_WEIGHTS, zmin=0)
        if zmax is not None:
            trace_kwargs["zmax"] = zmax
    fig = go.Figure(
        go.Heatmap(
            z=z_plot,
            x=list(x_labels),
            y=list(y_labels),
            customdata=customdata,
            hovertemplate=hovertemplate + "<extra></extra>",
            colorbar={"title": {"text": colorbar_title}},
            **trace_kwargs,
        )
    )
    base_layout(fig, title, height=height)
    fig.update_xaxes(title_text=x_title, type="category", tickangle=-60, automargin=True)
    fig.update_yaxes(title_text=y_title, type="category", autorange="reversed", automargin=True)
    return fig
