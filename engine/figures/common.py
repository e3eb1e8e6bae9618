"""Colours, fonts and layout shared by every figure (sized for a projector), and `readable`, the
one figure style that the UI applies to every figure just before drawing it."""

from __future__ import annotations

import base64
import copy
import functools
import html
import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

# pandas first, fully: plotly's validators use pandas if it is in sys.modules, and a module
# still being imported by another thread is there half-initialised ("partially initialized
# module 'pandas' has no attribute 'Series'", seen when two sessions' first runs built the
# template below at once). An import statement waits for that other import to finish.
import pandas  # noqa: F401
import plotly.graph_objects as go
import plotly.io as pio
from _plotly_utils.basevalidators import is_homogeneous_array
from _plotly_utils.utils import is_skipped_key, to_typed_array_spec
from plotly.subplots import make_subplots

FONT_SIZE = 16
TITLE_SIZE = 20
LECTURE_FONT_SIZE = 20  # tick, legend and annotation text in lecture mode (a projector)
LECTURE_TITLE_SIZE = 24
TEXT_COLOUR = "#111111"  # near-black: 18.9:1 on white (plotly's own grey is 3.7:1)
# Streamlit's own face, then CJK fonts so that Chinese titles, ticks and hovers render in a CJK
# face instead of the browser's guess (Noto Sans CJK: what .ci/run and Debian's fonts-noto-cjk
# install).
FONT_FAMILY = "Source Sans Pro, Noto Sans, Noto Sans CJK SC, Arial, sans-serif"
# The narrowest page body a figure is drawn in: 1024 px (a projector) with the sidebar open
# leaves about 500 px (measured in Chromium); a chart in a column gets about half. Titles are
# wrapped to fit these (`wrap_text`): plotly does not wrap them, it cuts them at the edge.
BODY_PX = 500
COLUMN_PX = BODY_PX // 2
LECTURE_BODY_PX = 900  # lecture mode: the sidebar starts collapsed, the page 1024 px wide
# Sequential scale for weights in [0, 1] (attention, probabilities): one hue, light to dark, so
# order reads by lightness alone (colour-blind safe; ColorBrewer "Blues").
SCALE_WEIGHTS = "Blues"
# Diverging scale for signed activations, centred on 0 (ColorBrewer RdBu, marked colour-blind
# safe there: the two ends differ in lightness as well as hue).
SCALE_SIGNED = "RdBu_r"
# Qualitative colours for token chips and lines: Okabe & Ito (2008), "Color Universal Design",
# the palette made to stay distinct for the common colour-vision deficiencies; its yellow is left
# out (invisible on white through a washed-out projector) and a mid grey closes it as index 9,
# the "reference / baseline" colour the figures use.
PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#000000",  # black
    "#8C6D31",  # brown (not Okabe-Ito; distinct by lightness)
    "#5E5E5E",  # dark grey
    "#9E9E9E",  # grey: reference curves
)
HIGHLIGHT = "#D55E00"  # the selected item (vermillion)
MAX_LABELLED = 64  # every token label is drawn up to this many categories on an axis
LABEL_CHARS = 12  # an x tick label longer than this is cut with "…" (hover shows it whole)
LABEL_CHARS_Y = 24  # the same for y tick labels (written horizontally: more room)
# Largest number of cells along one axis that a heatmap sends to the browser; bigger arrays are
# shown as a window (pages offer a control to move it).
MAX_AXIS = 256


# The figures' template: plotly's "plotly_white" (white background, light grid, its colour
# cycle) cut to the trace types the figures draw. The whole template carries defaults for 24
# trace types, and plotly builds and validates all of them for every figure it is set on: about
# 9 ms a figure, 2 to 3 ms for this one.
TEMPLATE = "inside_gpt"
_TRACE_TYPES = ("bar", "heatmap", "histogram", "scatter")
pio.templates[TEMPLATE] = go.layout.Template(
    layout=pio.templates["plotly_white"].layout,
    data={t: pio.templates["plotly_white"].data[t] for t in _TRACE_TYPES},
)
# ... and the default for every figure made in this process (a figure built without
# `base_layout`, or rebuilt from its dict by `readable`, gets it too).
pio.templates.default = TEMPLATE


def base_layout(fig: go.Figure, title: str, height: int = 480) -> go.Figure:
    """Apply the shared title, font and margins to `fig` (in place; returns it). Its template is
    TEMPLATE, plotly's default here (set above), which every new figure already carries:
    setting it again cost about 20 ms a figure."""
    fig.update_layout(
        title={"text": title, "font": {"size": TITLE_SIZE}},
        font={"size": FONT_SIZE, "family": FONT_FAMILY},
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 60},
    )
    return fig


@functools.lru_cache(maxsize=64)
def _grid(n_titles: int, grid: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """make_subplots's figure for one grid, as a dict with its grid reference, the titles
    written as placeholders "\x00<i>" (`subplots` puts the real ones in)."""
    fig = make_subplots(subplot_titles=[f"\x00{i}" for i in range(n_titles)], **dict(grid))
    spec = fig.to_dict()
    spec["layout"].pop("template", None)  # the default template (TEMPLATE) is applied again
    return {**spec, "_grid_ref": fig._grid_ref, "_grid_str": fig._grid_str}


def subplots_spec(titles: Sequence[str] = (), **grid: Any) -> tuple[dict[str, Any], Any]:
    """make_subplots's figure as a plain dict ({"data": [], "layout": {...}}, a new copy each
    call) and its grid reference (`ref[row - 1][col - 1][0].trace_kwargs`: a panel's
    {"xaxis": "x2", "yaxis": "y2"}), for builders that write traces and layout as dicts and
    build the figure once (`spec_figure`). Same grid arguments as `subplots`."""
    cached = _grid(len(titles), tuple(sorted(grid.items())))
    spec = copy.deepcopy({k: v for k, v in cached.items() if not k.startswith("_grid")})
    for annotation in spec["layout"].get("annotations", ()):
        text = annotation.get("text", "")
        if text.startswith("\x00"):
            annotation["text"] = titles[int(text[1:])]
    return spec, cached["_grid_ref"]


def subplots(titles: Sequence[str] = (), **grid: Any) -> go.Figure:
    """`plotly.subplots.make_subplots(subplot_titles=titles, **grid)`, the same figure, with the
    grid's layout computed once per grid (rows, cols, spacing, ...; hashable values only) and
    only the titles written each time: make_subplots took 14-60 ms a call (a 3 x 4 grid of
    heads: 26-56 ms), this 2-5 ms. `add_trace(row=, col=)` works on it as on make_subplots's."""
    spec, ref = subplots_spec(titles, **grid)
    cached = _grid(len(titles), tuple(sorted(grid.items())))
    return go.Figure({**spec, "_grid_ref": ref, "_grid_str": cached["_grid_str"]})


@functools.lru_cache(maxsize=16)
def colorscale(name: str) -> tuple[tuple[float, str], ...]:
    """A named plotly colour scale ("Blues") as plotly.py resolves it, [(position, colour)]: a
    figure built from a dict without validation (`spec_figure`) must carry the list, since
    plotly.js has scales of the same names with other colours."""
    return tuple((float(p), str(c)) for p, c in go.Heatmap(colorscale=name).colorscale)


def spec_figure(spec: dict[str, Any], title: str, height: int) -> go.Figure:
    """A figure built once, without validation, from a dict its builder wrote with plotly's own
    property names and values (`colorscale` for named scales), with `base_layout`'s title, font,
    height and margins. Plotly validates and propagates every `update_*` and `add_traces` call
    on a figure: for the 3 x 4 grid of GPT-2's heads these took about 100 ms of a 116 ms build,
    this a few (measured here, one process). The tests validate what the pages send
    (`tests.support.chart`) and every builder that uses this (`tests/engine/figures`)."""
    layout = spec.setdefault("layout", {})
    _merge(layout, "title", {"text": title, "font": {"size": TITLE_SIZE}})
    _merge(layout, "font", {"size": FONT_SIZE, "family": FONT_FAMILY})
    layout["height"] = height
    layout["margin"] = {"l": 60, "r": 20, "t": 60, "b": 60, **layout.get("margin", {})}
    return SpecFigure(spec)


class SpecFigure(go.Figure):
    """`go.Figure(spec, _validate=False)`, built only when something reads or changes it.

    A page hands most figures straight to `ui.widgets.chart`, which needs only their dict
    (`figure_dict` copies `spec` itself); building plotly's objects for it cost 1 to 7 ms a
    figure even unvalidated (a 3 x 4 grid of heads: 7 ms), 10-15 ms of a rerun of the Attention
    page with every section open. Any attribute of the figure (`.data`, `.layout`,
    `update_layout`, ...) builds it first, and from then on it is that figure."""

    def __init__(self, spec: dict[str, Any]) -> None:
        object.__setattr__(self, "_unbuilt", spec)

    def __getattr__(self, name: str) -> Any:
        spec = self.__dict__.pop("_unbuilt", None)
        if spec is None:
            raise AttributeError(name)
        go.Figure.__init__(self, spec, _validate=False)
        return getattr(self, name)

    def __reduce__(self) -> Any:
        """Pickled (and copied) as the plain figure it stands for."""
        return (go.Figure, (self.to_dict(),))


def curve_spec(
    x: Sequence, y: np.ndarray, name: str, colour: str, hover: str, dash: bool = False
) -> dict[str, Any]:
    """A thick line with markers as plotly's dict, for a figure built once (`spec_figure`): the
    style of every layer-by-layer curve. `hover` is its hovertemplate; `dash` draws the selected
    token's curve dashed."""
    line = {"color": colour, "width": 3, **({"dash": "dash"} if dash else {})}
    return {
        "type": "scatter",
        "x": x,
        "y": y,
        "mode": "lines+markers",
        "line": line,
        "name": name,
        "hovertemplate": hover,
    }


def bar_spec(x: Any, y: Any, name: str, colour: Any, hover: str, **extra: Any) -> dict[str, Any]:
    """A bar trace as plotly's dict, for a figure built once (`spec_figure`): `colour` one
    colour or one per bar, `hover` its hovertemplate, `extra` any other bar property."""
    return {
        "type": "bar",
        "x": x,
        "y": y,
        "name": name,
        "marker": {"color": colour},
        "hovertemplate": hover,
        **extra,
    }


def update_axes(
    layout: dict[str, Any], x: dict[str, Any] | None = None, y: dict[str, Any] | None = None
) -> None:
    """Set the properties `x` on every x axis and `y` on every y axis of a figure dict's
    `layout` (every panel's): plotly's `update_xaxes` / `update_yaxes` for a dict."""
    for key, axis in layout.items():
        if x and key.startswith("xaxis"):
            axis.update(x)
        elif y and key.startswith("yaxis"):
            axis.update(y)


def panels_spec(
    traces: Sequence[dict[str, Any]],
    titles: Sequence[str],
    cols: int = 1,
    spacing: float = 0.1,
) -> tuple[dict[str, Any], Any]:
    """One panel per trace (plotly's dicts) as a figure dict and its grid reference
    (`subplots_spec`): in one column (sharing the x axis, `spacing` between rows) or, with
    `cols` = len(traces), in one row (`spacing` between columns); `titles` name the panels."""
    n = len(traces)
    grid = (
        {"rows": 1, "cols": cols, "horizontal_spacing": spacing}
        if cols > 1
        else {"rows": n, "cols": 1, "shared_xaxes": True, "vertical_spacing": spacing}
    )
    spec, ref = subplots_spec(tuple(titles), **grid)
    spec["data"] = [
        {**trace, **(ref[0][i] if cols > 1 else ref[i][0])[0].trace_kwargs}
        for i, trace in enumerate(traces)
    ]
    return spec, ref


NOT_MEASURABLE = "–"  # shown for a statistic averaged over nothing (or any non-finite value)


def shown(value: float | None, fmt: str = "{:.2f}") -> str:
    """`value` formatted with `fmt` for a table or a label, or NOT_MEASURABLE ("–") when it is
    None, NaN or infinite (a mean or maximum over an empty set, a missing next token); a user
    never sees None, nan or inf, nor a "-0.000" (a tiny negative rounded to zero: no sign)."""
    if value is None or not np.isfinite(float(value)):
        return NOT_MEASURABLE
    text = fmt.format(value)
    if text.startswith("-") and not any(c in "123456789" for c in text):
        return text[1:]
    return text


MINUS = "\u2212"  # the minus sign, as plotly writes negative numbers on axes and in hovers


def prose_number(value: float | None, fmt: str = "{:.2f}") -> str:
    """`value` for a sentence, a caption, a metric or a figure title, written as the charts
    beside it write numbers: `shown` (NOT_MEASURABLE for None, NaN or inf; never "-0.000") with
    the minus sign "−" (U+2212, plotly's) instead of a hyphen: "−0.240", "+0.12", "1.2e−05".
    Tables keep `shown`'s hyphen (their cells stay numbers, `ui.widgets.formatted`)."""
    return shown(value, fmt).replace("-", MINUS)


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


def heatmap_spec(
    z: np.ndarray,
    x_labels: list[str],
    y_labels: list[str],
    *,
    signed: bool,
    x_title: str,
    y_title: str,
    hovertemplate: str,
    customdata: np.ndarray | None = None,
    zmax: float | None = None,
    colorbar_title: str = "",
) -> dict[str, Any]:
    """`heatmap`'s figure as plotly's dict, without its title and height: for a builder that
    changes it before building it once (`spec_figure`)."""
    trace: dict[str, Any] = {
        "type": "heatmap",
        "z": finite_or_none(z),
        "x": list(x_labels),
        "y": list(y_labels),
        **({} if customdata is None else {"customdata": customdata}),
        "hovertemplate": hovertemplate + "<extra></extra>",
        "colorbar": {"title": {"text": colorbar_title}},
    }
    if signed:
        r = signed_range(z) if zmax is None else zmax
        trace.update(colorscale=colorscale(SCALE_SIGNED), zmin=-r, zmax=r, zmid=0)
    else:
        trace.update(colorscale=colorscale(SCALE_WEIGHTS), zmin=0)
        if zmax is not None:
            trace["zmax"] = zmax
    axis = {"type": "category", "automargin": True}
    layout = {
        "xaxis": {"title": {"text": x_title}, **axis, "tickangle": -60},
        "yaxis": {"title": {"text": y_title}, **axis, "autorange": "reversed"},
    }
    return {"data": [trace], "layout": layout}


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
    spec = heatmap_spec(
        z,
        x_labels,
        y_labels,
        signed=signed,
        x_title=x_title,
        y_title=y_title,
        hovertemplate=hovertemplate,
        customdata=customdata,
        zmax=zmax,
        colorbar_title=colorbar_title,
    )
    # one dict, built once (`spec_figure`): plotly's validation of the trace and of each
    # update took 11 ms for a 256 x 256 attention map, this 1 (measured here, one process)
    return spec_figure(spec, title, height)


# --- the one figure style --------------------------------------------------------------------


# Trace types drawn against cartesian axes, and those with a top-level colour bar or text font
# (the figures draw bar, heatmap, histogram and scatter; the others are there so that a figure
# of another kind is styled correctly too).
_CARTESIAN = {
    "bar",
    "box",
    "contour",
    "heatmap",
    "histogram",
    "histogram2d",
    "scatter",
    "scattergl",
}
_COLORBAR = {"contour", "heatmap", "histogram2d"}
_TEXTFONT = {"bar", "heatmap", "histogram", "scatter", "scattergl"}


def _plain_values(data: Any) -> Any:
    """The values of a data array in a figure dict: plotly writes a numpy array as a typed-array
    dict ({"dtype": "f4", "bdata": base64, "shape": ...}); that is decoded (flat), anything
    else returned as it is."""
    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
    return data


def _axis_names(spec: dict[str, Any]) -> list[str]:
    """The layout keys of every cartesian axis in a figure `spec` (`fig.to_dict()`):
    "xaxis", "yaxis2", ..."""
    names = {k for k in spec["layout"] if k.startswith(("xaxis", "yaxis"))}
    for trace in spec["data"]:
        if trace.get("type", "scatter") in _CARTESIAN:
            for letter in ("x", "y"):
                ref = trace.get(f"{letter}axis") or letter
                names.add(f"{letter}axis{ref[1:]}")
    return sorted(names)


def _on_axis(trace: dict[str, Any], letter: str, ref: str) -> bool:
    """Whether `trace` (a dict) is drawn against axis `ref` ("x", "y2", ...) of kind `letter`."""
    return (
        trace.get("type", "scatter") in _CARTESIAN and (trace.get(f"{letter}axis") or letter) == ref
    )


def _axis_categories(spec: dict[str, Any], name: str) -> list[str] | None:
    """The category labels drawn along axis `name` of a figure `spec`, in order of first
    appearance, when its data are strings (heatmap rows, bar labels); None for a numeric axis."""
    letter, suffix = name[0], name[5:]
    ref = letter + suffix
    seen: dict[str, None] = {}
    for trace in spec["data"]:
        if not _on_axis(trace, letter, ref):
            continue
        values = _plain_values(trace.get(letter))
        if values is None:
            continue
        if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
            return None  # numbers: not a category axis
        for v in values:
            if not isinstance(v, str):
                return None
            seen.setdefault(v, None)
    return list(seen) if seen else None


def _short(label: str, chars: int = LABEL_CHARS) -> str:
    """A tick label cut to `chars` characters with "…" (HTML entities count as one)."""
    plain = html.unescape(label)
    return label if len(plain) <= chars else html.escape(plain[: chars - 1] + "…", quote=False)


def category_ticks(
    labels: Sequence[str], limit: int = MAX_LABELLED, chars: int = LABEL_CHARS
) -> dict[str, Any]:
    """Axis settings that draw every category label up to `limit` labels (plotly's automatic
    ticks drop every second label past about 20), each cut to LABEL_CHARS characters, rotated
    to vertical past 16 labels; beyond `limit`, every k-th label with k = ceil(n / limit), so
    at most `limit` evenly spaced labels (position numbers keep them readable)."""
    n = len(labels)
    step = max(1, math.ceil(n / limit))
    shown_labels = list(labels)[::step]
    return {
        "tickmode": "array",
        "tickvals": shown_labels,
        "ticktext": [_short(s, chars) for s in shown_labels],
        "tickangle": 0 if n <= 4 else (-45 if n <= 16 else -90),
        "automargin": True,
    }


_LOG_MAX_TICKS = 10  # powers of ten on an axis of more decades are thinned to every k-th
_LOG_PAD = 0.03  # share of the ticks' span left beyond the outer ticks (markers stay whole)


def _nice_step(x: float) -> float:
    """The smallest of 1, 2 and 5 times a power of ten that is at least `x` (> 0)."""
    e = math.floor(math.log10(x))
    return next(m * 10.0**e for m in (1, 2, 5, 10) if m * 10.0**e >= x)


def _log_tick_values(lo: float, hi: float) -> list[float]:
    """The tick values of `log_ticks`, ascending: the first at or below `lo`, the last at or
    above `hi`, at least two."""
    e_lo, e_hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    # log10 is inexact near powers of ten (log10(1000) = 2.9999999999999996): compare powers
    while e_lo > -307 and 10.0**e_lo > lo:
        e_lo -= 1
    while 10.0 ** (e_lo + 1) <= lo:
        e_lo += 1
    while e_hi < 308 and 10.0**e_hi < hi:
        e_hi += 1
    while e_hi - 1 > e_lo and 10.0 ** (e_hi - 1) >= hi:
        e_hi -= 1
    if e_hi - e_lo > 4:  # powers of ten, every k-th, k itself 1, 2, 5, 10, ...
        k = max(1, round(_nice_step((e_hi - e_lo) / (_LOG_MAX_TICKS - 1))))
        exps = list(range((e_lo // k) * k, -(-e_hi // k) * k + 1, k))
        # past the float range (10.0**309 overflows): the data's own outer power instead
        if exps[0] < -307:
            exps[0] = e_lo
        if exps[-1] > 308:
            exps[-1] = e_hi
        return [10.0**e for e in exps]
    candidates = [m * 10.0**e for e in range(e_lo - 1, e_hi + 1) for m in (1, 2, 5)]
    candidates.append(10.0 ** (e_hi + 1))
    below = max(i for i, c in enumerate(candidates) if c <= lo)
    above = min(i for i, c in enumerate(candidates) if c >= hi)
    if below == above:  # lo == hi == a candidate: its neighbours too, so that the axis has a span
        below, above = below - 1, above + 1
    vals = candidates[below : above + 1]
    if len(vals) >= 4 or hi - lo < 1e-4 * hi:  # (on a span under 1e-4, evenly spaced labels
        return vals  # of six significant digits, "{:g}", would repeat one number)
    # about half a decade or less: evenly spaced numbers (a log axis this short is almost
    # linear), when they stay positive
    step = _nice_step((hi - lo) / 4)
    first, last = math.floor(lo / step), math.ceil(hi / step)
    even = [float(f"{k * step:.12g}") for k in range(first, last + 1)]
    while even[0] > lo:
        even.insert(0, float(f"{(first - 1) * step:.12g}"))
        first -= 1
    while even[-1] < hi:
        last += 1
        even.append(float(f"{last * step:.12g}"))
    return even if even[0] > 0 else vals


def log_ticks(lo: float, hi: float) -> dict[str, Any]:
    """Axis settings for a log axis whose data span [lo, hi] (0 < lo <= hi): plain tick labels
    ("0.02", "500") instead of plotly's small "2 3 4 ... 9" minor labels, and a range that
    shows every tick, so that no point lies beyond the outer labels. The ticks: 1, 2 and 5
    times each power of ten up to four decades (the first at or below `lo`, the last at or
    above `hi`); past four decades powers of ten only, every k-th (k = 1, 2, 5, 10, ...) so
    that about ten at most are drawn; under about half a decade, when 1-2-5 would give fewer
    than four, evenly spaced numbers (0.3, 0.35, ... 0.5; not for a span under 1e-4 of `hi`,
    which keeps its two 1-2-5 neighbours). The range (log10 units, as plotly
    wants for a log axis) runs from the first tick to the last plus _LOG_PAD of their span on
    each side, so markers on an outer tick are drawn whole. Raises ValueError unless
    0 < lo <= hi are finite; the ticks bracket the data for 1e-307 <= lo, hi <= 1e308."""
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"log_ticks needs 0 < lo <= hi, finite; got lo={lo!r}, hi={hi!r}")
    vals = _log_tick_values(lo, hi)
    a, b = math.log10(vals[0]), math.log10(vals[-1])
    pad = _LOG_PAD * (b - a)
    return {
        "tickmode": "array",
        "tickvals": vals,
        "ticktext": [f"{v:g}" for v in vals],
        "range": [a - pad, b + pad],
    }


def _log_extent(spec: dict[str, Any], name: str) -> tuple[float, float] | None:
    letter, ref = name[0], name[0] + name[5:]
    values: list[float] = []
    for trace in spec["data"]:
        if not _on_axis(trace, letter, ref):
            continue
        data = _plain_values(trace.get(letter))
        if data is not None:
            arr = np.asarray([v for v in data if v is not None], dtype=np.float64)
            values += [float(v) for v in arr[np.isfinite(arr) & (arr > 0)]]
    return (min(values), max(values)) if values else None


# a run of text to keep on one line: a tag, spaces, one CJK character with the closing
# punctuation after it, or a run of other characters (a word)
_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
_OPEN, _CLOSE = "（「『“‘", "，。：；、！？）」』”’"
_TAG_RE = r"</?(?:a|b|br|em|i|s|span|sub|sup|u)\b[^<>]*>"  # the tags plotly's text knows
_PIECE = re.compile(
    rf"{_TAG_RE}|\s+|[{_OPEN}]*(?:[^\s<{_CJK}]|<(?!{_TAG_RE[1:]}))+[{_CLOSE}]*"
    rf"|[{_OPEN}]*[{_CJK}][{_CLOSE}]*"
)
_TAG = re.compile(_TAG_RE)
_WIDE = ("W", "F")


def text_width_px(text: str, font_px: float) -> float:
    """Estimated width of `text` (HTML tags left out) in pixels at `font_px`: a wide (CJK)
    character is one em (`unicodedata.east_asian_width` W or F), any other 0.6 em (an upper
    estimate for Source Sans and Noto Sans: most lower-case letters are narrower)."""
    plain = html.unescape(_TAG.sub("", text))
    wide = sum(unicodedata.east_asian_width(c) in _WIDE for c in plain)
    return font_px * (wide + 0.6 * (len(plain) - wide))


def _breaks_before(line: list[tuple[str, float]], j: int) -> bool:
    """Whether a line may break before piece `j` of `line` ((piece, width) pairs) by preference:
    after a space or closing punctuation, or before opening punctuation."""
    before, piece = line[j - 1][0], line[j][0]
    return before.isspace() or before[-1] in _CLOSE or piece[0] in _OPEN


def wrap_text(text: str, max_px: float, font_px: float) -> str:
    """`text` with plotly line breaks ("<br>") so that no line is wider than `max_px` at
    `font_px` (`text_width_px`): breaks fall at spaces, or between two wide (CJK) characters
    (never before closing punctuation nor after opening punctuation); a word longer than a line
    stays whole. Where a line of CJK text would break inside a run of characters, it breaks
    instead at its last punctuation ("训练：" / "掩码前", not "训练：掩码" / "前") when that
    leaves the line at least a third full. Breaks already in `text` are kept."""
    out = []
    for part in re.split(r"<br\s*/?>", text):
        lines: list[str] = []
        line: list[tuple[str, float]] = []  # the pieces of the line being filled, with widths
        for piece in _PIECE.findall(part):
            w = text_width_px(piece, font_px)
            if piece.isspace():
                if line:
                    line.append((" ", w))
                continue
            width = sum(pw for _p, pw in line)
            if w > 0 and width > 0 and width + w > max_px:  # (a tag is never a line)
                with_piece = [*line, (piece, w)]
                cut = next(
                    (
                        j
                        for j in range(len(line), 0, -1)
                        if _breaks_before(with_piece, j)
                        and sum(pw for _p, pw in line[:j]) >= max_px / 3
                    ),
                    len(line),
                )
                lines.append("".join(p for p, _w in line[:cut]).rstrip())
                line = line[cut:]
                while line and line[0][0].isspace():
                    line.pop(0)
                if line and sum(pw for _p, pw in line) + w > max_px:
                    lines.append("".join(p for p, _w in line).rstrip())
                    line = []
            line.append((piece, w))
        out.append("<br>".join([*lines, "".join(p for p, _w in line).rstrip()]))
    return "<br>".join(out)


def _legend_rows(spec: dict[str, Any], width_px: float, size: int) -> int:
    """Rows a horizontal legend of `spec`'s named traces takes in a figure `width_px` wide: one
    when every entry (its text and about 50 px of symbol and gap) fits the plot's width, else
    as many entries a row as fit at the widest entry's width (plotly's layout when it wraps).
    An estimate, which the callers raise to at least two rows."""
    widths = [
        text_width_px(t["name"], size) + 50
        for t in spec["data"]
        if t.get("name") and t.get("showlegend", True) is not False
    ]
    room = width_px - 80
    if not widths or sum(widths) <= room:
        return 1
    per_row = max(1, int(room // max(widths)))
    return -(-len(widths) // per_row)


# Plotly's room around a plot (Chromium, Streamlit 1.67's plotly.js, measured on the dropout
# page's three panels at 16 px: 135 px left of them for "10:␣played" and the axis title, 70 px
# right of them for the colour bar): the gap between tick labels and the axis line or the axis
# title, and a colour bar's bar with its padding, beside its tick labels (about 1.8 em: "0.8").
_TICK_GAP_PX = 10
_COLORBAR_BAR_PX = 40


def _axis_title_text(axis: dict[str, Any]) -> str:
    title = axis.get("title")
    return (title.get("text") if isinstance(title, dict) else title) or ""


def _plot_px(spec: dict[str, Any], width_px: float, size: int) -> float:
    """Estimated width of the plotting area (every panel and the gaps between them) of the
    figure dict `spec` drawn `width_px` wide with ticks of `size` px: the width less the left
    margin, which the y tick labels of the leftmost panels and their axis title widen
    (plotly's automargin: `ticktext` as `_style_axes` wrote it, `text_width_px`), and less the
    right margin and a colour bar drawn beside the plot (its bar and padding, and its tick
    labels or its title, whichever is wider)."""
    layout = spec["layout"]
    margin = layout.get("margin", {})
    left = float(margin.get("l", 60))
    for name, axis in layout.items():
        if not re.fullmatch(r"yaxis\d*", name) or axis.get("showticklabels") is False:
            continue
        x_axis = layout.get("xaxis" + str(axis.get("anchor") or "x")[1:], {})
        if axis.get("side") == "right" or x_axis.get("domain", (0.0, 1.0))[0] > 0.0:
            continue  # not left of the plot
        labels = axis.get("ticktext") or ()
        title = _axis_title_text(axis)
        needed = max((text_width_px(str(s), size) for s in labels), default=0.0)
        needed += _TICK_GAP_PX + (1.3 * size + _TICK_GAP_PX if title else 0.0)
        left = max(left, needed)
    right = float(margin.get("r", 20))
    bars = [
        t
        for t in spec["data"]
        if t.get("type", "scatter") in _COLORBAR and t.get("showscale", True) is not False
    ]
    if bars:
        titles = [_axis_title_text(t.get("colorbar") or {}) for t in bars]
        right += _COLORBAR_BAR_PX + max(1.8 * size, *(text_width_px(s, size) - 30 for s in titles))
    return max(width_px - left - right, 4 * size)


def _panel_share(layout: dict[str, Any], x: float, y: Any) -> float | None:
    """The share of the plotting area's width taken by the panel whose subplot title sits at
    paper (`x`, `y`): the narrowest x axis domain holding `x` whose y axis's domain ends at `y`
    (make_subplots puts a panel's title at its top edge, centred). None when no panel does."""
    best = None
    for name, axis in layout.items():
        if not re.fullmatch(r"xaxis\d*", name) or not isinstance(y, int | float):
            continue
        lo, hi = axis.get("domain", (0.0, 1.0))
        y_axis = layout.get("yaxis" + str(axis.get("anchor") or "y")[1:], {})
        top = y_axis.get("domain", (0.0, 1.0))[1]
        if lo - 1e-6 <= x <= hi + 1e-6 and abs(top - y) < 1e-6:
            best = hi - lo if best is None else min(best, hi - lo)
    return best


def _wrap_titles(spec: dict[str, Any], width_px: float, title_size: int, size: int) -> None:
    """Wrap the title and the centred paper annotations (subplot titles) of the figure dict
    `spec` to a figure `width_px` wide, in place: a subplot title to its panel's width (its
    share of the plotting area, `_plot_px`: the room left of it for tick labels and right of
    it for a colour bar is not the panel's), another annotation to twice its distance from the
    nearer edge. When the title takes more than one line or the top row has subplot titles,
    the title is placed 8 px under the figure's top and the top margin grows to hold its
    lines, the top row's subplot titles (which grow upwards from their panel) and a legend
    above the plot: plotly's own place for a one-line title, in the middle of a 60 px top
    margin, is where a top-row subplot title ends (lecture mode's 24 px title drew over the
    dropout page's 20 px panel titles)."""
    layout = spec["layout"]
    margin = layout.setdefault("margin", {})
    plot_px = _plot_px(spec, width_px, size)
    top_lines = 0  # lines of the subplot titles that sit on the top edge of the plot
    for annotation in layout.get("annotations", ()):
        x, y = annotation.get("x"), annotation.get("y")
        if (
            annotation.get("showarrow") is False
            and annotation.get("xref", "paper") == "paper"
            and annotation.get("xanchor", "center") == "center"
            and isinstance(x, int | float)
            and annotation.get("text")
        ):
            share = _panel_share(layout, x, y)
            if share is None:
                share = 2 * min(max(x, 0.0), max(1 - x, 0.0))
            room = share * plot_px
            a_size = (annotation.get("font") or {}).get("size") or size
            annotation["text"] = wrap_text(annotation["text"], max(room, 4 * a_size), a_size)
            if isinstance(y, int | float) and y >= 0.98 and annotation.get("yanchor") == "bottom":
                top_lines = max(top_lines, annotation["text"].count("<br>") + 1)
    title = layout.get("title", {})
    if not title.get("text"):
        return
    title["text"] = wrap_text(title["text"], 0.9 * width_px - 10, title_size)
    title_lines = title["text"].count("<br>") + 1
    if title_lines == 1 and top_lines == 0:
        return
    line, title_line = round(1.3 * size), round(1.3 * title_size)
    legend = layout.get("legend", {})
    above = top_lines * line  # what sits between the plot and the title
    if legend.get("yanchor") == "bottom" and legend.get("y") == 1.0:  # a legend above the plot
        above += max(2, _legend_rows(spec, width_px, size)) * (size + 10)
    margin["t"] = max(margin.get("t", 60), 8 + title_lines * title_line + above + 12)
    # 8 px under the figure's top. Plotly (plotly.js in Streamlit 1.67, measured in Chromium)
    # places a title of several lines by its first line's baseline whatever its yanchor, and
    # ignores the title's pad.b; a one-line title by its top with yanchor "top". The figure's
    # height is known, the plot's is not (axis labels can grow the bottom margin): container y.
    height = layout.get("height") or 450  # plotly's default
    first = 12 if title_lines == 1 else 8 + round(0.9 * title_size)
    _merge(
        layout,
        "title",
        {"yref": "container", "y": 1 - first / height, "yanchor": "top", "pad": {"t": 0}},
    )


def readable(
    fig: go.Figure,
    lecture: bool = False,
    x_labels: int = MAX_LABELLED,
    width_px: float | None = None,
) -> go.Figure:
    """`fig` in the one figure style, as a new figure (`fig` is left as it is): every text
    near-black (TEXT_COLOUR), ticks, legend, colour bars, annotations and cell text at least
    FONT_SIZE px (LECTURE_FONT_SIZE in lecture mode), titles TITLE_SIZE (LECTURE_TITLE_SIZE),
    every category label drawn up to MAX_LABELLED (`category_ticks`; a figure with one y axis of
    categories grows tall enough for one label per row, while the panels of small multiples
    label only as many rows as their share of the height holds and a panel in a row of several
    its share of the x labels; along x, plotly still hides labels that overlap when the page is
    too narrow for them), log axes with plain labels from a tick at or below the smallest
    value to one at or above the largest (`log_ticks`).
    Sizes are written on every element, not only on `layout.font`, so that a chart theme that
    sets its own axis fonts cannot shrink them; the UI draws with Streamlit's theme off as well
    (`st.plotly_chart(theme=None)`). Colours an element already has (a red marker on the
    selected head) are kept; only their size is raised. `x_labels`: at most this many labels
    along a category x axis (a figure in a narrow column: half the page or less). `width_px`:
    the narrowest the figure is drawn (BODY_PX, COLUMN_PX): its title and subplot titles are
    wrapped onto several lines to fit it (`wrap_text`), and a category x axis labels at most
    as many categories as fit it upright side by side; None leaves them as they are.

    The style is written into the figure's plain dict (`fig.to_dict()`) and the figure built
    once from it: plotly validates and propagates every property set on a figure on its own,
    which cost 18 to 80 ms a figure, most of a page's rerun (issue 19); this costs a few.
    `fig` was validated as it was built, and `style_spec` writes only plotly properties, so the
    new figure is not validated again (plotly's `_validate=False`: 1 ms instead of 7-12 for a
    256 x 256 heatmap); the tests validate every chart a page draws (`tests.support.chart`)."""
    return go.Figure(_styled(fig, lecture, x_labels, width_px), _validate=False)


def _styled(fig: go.Figure, lecture: bool, x_labels: int, width_px: float | None) -> dict[str, Any]:
    """`fig`'s plain dict (a copy) with the style written in and without its template."""
    spec = figure_dict(fig)
    spec["layout"].pop("template", None)  # the default template (TEMPLATE) is applied again
    style_spec(spec, lecture=lecture, x_labels=x_labels, width_px=width_px)
    return spec


def figure_dict(fig: go.Figure) -> dict[str, Any]:
    """`fig.to_dict()`, equal to it: the dicts and lists copied, the values in them (numpy
    arrays, strings, numbers) not. `to_dict` deep-copies every array before it encodes it
    (`convert_to_base64`: a new base64 string put in the copy's place); nothing here writes
    into an array. On a built figure 0.6-0.7x `to_dict`'s time (a grid of 12 heads, an
    attention map and a PCA map at 128 tokens, measured here); a `SpecFigure` not yet built is
    read from its spec and stays unbuilt. Reads plotly 7's own property dicts (`_data`,
    `_layout`, the ones `to_dict` copies); a figure with frames goes through `to_dict`."""
    unbuilt = fig.__dict__.get("_unbuilt")  # a `SpecFigure` nothing has built yet
    if unbuilt is not None and "frames" not in unbuilt:
        spec = {"data": _copied(unbuilt.get("data", [])), "layout": _copied(unbuilt["layout"])}
        spec["layout"].setdefault("template", _template_dict(str(pio.templates.default)))
    elif fig.frames:
        return fig.to_dict()
    else:
        spec = {"data": _copied(fig._data), "layout": _copied(fig._layout)}
    encode_arrays(spec)
    return spec


_CONTAINERS = (dict, list, tuple)
_SCALARS = (str, int, float, bool, type(None))


def _copied(value: Any) -> Any:
    """`value` with every dict, list and tuple in it copied; anything else shared."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) if isinstance(v, _CONTAINERS) else v for v in value]
    if isinstance(value, tuple):
        return tuple(_copied(v) if isinstance(v, _CONTAINERS) else v for v in value)
    return value


def encode_arrays(spec: Any) -> None:
    """plotly's `convert_to_base64` (the last step of `to_dict`), in place, with the same
    result: every array that is a dict's value (outside the keys plotly skips) becomes its
    typed-array spec {"dtype", "bdata", "shape"}, numbers ones only (`to_typed_array_spec`).
    Plotly's walk calls itself on every element of every list (a list of 65,536 hover texts:
    65,536 calls); only what can hold a dict is entered here."""
    if isinstance(spec, dict):
        for key, value in spec.items():
            if isinstance(value, _SCALARS) or is_skipped_key(key):
                continue
            if is_homogeneous_array(value):
                spec[key] = to_typed_array_spec(value)
            elif isinstance(value, _CONTAINERS):
                encode_arrays(value)
    elif isinstance(spec, list | tuple):
        for value in spec:
            if isinstance(value, _CONTAINERS):
                encode_arrays(value)


class SentFigure(go.Figure):
    """A figure that is its finished plain dict: `to_dict()` returns `spec` itself, no copy.

    For `st.plotly_chart`: Streamlit 1.67 takes a figure's `to_dict()` (a deep copy of every
    value and a walk that encodes numpy arrays) and validates a plain dict it is given (slower
    still); both had been done already for a figure from `readable`, and building that figure
    again cost more (on the Attention page with every section open, 9 charts: 18 ms building and
    9 ms copying of a 120-140 ms rerun). `spec` must already be what plotly's `to_dict` gives:
    arrays encoded (`encode_arrays`), the template written in (`sent_figure` makes one).
    Only the height is a property of the figure object itself (read by `png_config` and the
    SVG export); the rest is in `spec` alone, which nothing may change after this."""

    def __init__(self, spec: dict[str, Any]) -> None:
        # an empty template: plotly would copy the default one into this figure's own layout
        layout = {"height": spec["layout"].get("height"), "template": {}}
        super().__init__(layout=layout, _validate=False)
        self._spec = spec

    def to_dict(self) -> dict[str, Any]:
        """The finished dict itself (not a copy)."""
        return self._spec


@functools.lru_cache(maxsize=4)
def _template_dict(name: str) -> dict[str, Any]:
    """The template `name` as `to_dict()` writes it into a figure's layout (read only)."""
    return go.Figure(layout={"template": name}).to_dict()["layout"]["template"]


def sent_figure(
    fig: go.Figure,
    lecture: bool = False,
    x_labels: int = MAX_LABELLED,
    width_px: float | None = None,
    max_height: int | None = None,
) -> SentFigure:
    """`readable(fig, lecture, x_labels, width_px)` (then `fit_height_spec(..., max_height,
    lecture)` when `max_height` is given) as a `SentFigure`, for `st.plotly_chart`: the same
    dict as that figure's `to_dict()` (tests/engine/figures/test_common.py compares them),
    without building the figure twice and copying its dict twice."""
    spec = _styled(fig, lecture, x_labels, width_px)
    if max_height is not None:
        fit_height_spec(spec, max_height, lecture)
    encode_arrays(spec)  # what `to_dict` does last: arrays the style added, encoded
    spec["layout"]["template"] = _template_dict(str(pio.templates.default))
    return SentFigure(spec)


def _merge(target: dict[str, Any], key: str, values: dict[str, Any]) -> None:
    """Merge `values` into the dict `target[key]` (created if missing), one level deep for
    nested dicts (a font inside a title)."""
    current = target.setdefault(key, {})
    for k, v in values.items():
        if isinstance(v, dict) and isinstance(current.get(k), dict):
            current[k] = {**current[k], **v}
        else:
            current[k] = v


def style_spec(
    spec: dict[str, Any],
    lecture: bool = False,
    x_labels: int = MAX_LABELLED,
    width_px: float | None = None,
) -> None:
    """Write the one figure style (see `readable`) into a figure's plain dict `spec` (the
    `{"data": [...], "layout": {...}}` of `fig.to_dict()`), in place."""
    size = LECTURE_FONT_SIZE if lecture else FONT_SIZE
    title_size = LECTURE_TITLE_SIZE if lecture else TITLE_SIZE
    font = {"size": size, "color": TEXT_COLOUR, "family": FONT_FAMILY}
    if width_px is not None:
        # a label turned upright takes 1.5 em along x, and the plot area of a heatmap with token
        # rows and a colour bar is about 0.62 of the chart's width (both measured in Chromium)
        x_labels = min(x_labels, max(6, int(0.62 * width_px / (1.5 * size))))
    layout = spec["layout"]
    layout["font"] = {**layout.get("font", {}), **font}
    _merge(layout, "title", {"font": {"size": title_size, "color": TEXT_COLOUR}})
    _merge(layout, "legend", {"font": font})
    _merge(layout, "hoverlabel", {"font": {"size": size}})
    layout["paper_bgcolor"] = layout["plot_bgcolor"] = "#ffffff"
    _style_axes(spec, font, size, x_labels)
    _legend_above(spec, width_px, size, title_size)
    _style_annotations(layout, size)
    if width_px is not None:
        _wrap_titles(spec, width_px, title_size, size)
    _style_traces(spec, font, size)


def _style_axes(spec: dict[str, Any], font: dict[str, Any], size: int, x_labels: int) -> None:
    """Style every axis (`_axis_settings`); a lone y axis of categories gets a row per label."""
    layout = spec["layout"]
    names = _axis_names(spec)
    single_y = not any(k.startswith("yaxis") and k != "yaxis" for k in names)
    single_x = not any(k.startswith("xaxis") and k != "xaxis" for k in names)
    for name in names:
        categories = _axis_categories(spec, name)
        y = name.startswith("yaxis")
        if y:  # a panel of small multiples labels only the rows its height has room for
            limit = MAX_LABELLED if single_y else _labels_fit(layout, name, size + 4, 170)
        else:  # a panel in a row of several has its share of the width
            limit = x_labels if single_x else max(2, int(x_labels * _domain_share(layout, name)))
        settings = _axis_settings(spec, name, categories, font, size, limit)
        _merge(layout, name, settings)
        if name == "yaxis" and categories is not None and layout.get("height") and single_y:
            # one label per row needs a row at least as tall as the text (one y axis only:
            # small multiples keep their size)
            rows = len(settings.get("tickvals", categories))
            layout["height"] = max(layout["height"], 170 + rows * (size + 4))


def _domain_share(layout: dict[str, Any], name: str) -> float:
    """The share of the plotting area that axis `name` spans (its `domain`; 1 without one)."""
    lo, hi = layout.get(name, {}).get("domain", (0.0, 1.0))
    return max(0.0, float(hi) - float(lo))


def _labels_fit(layout: dict[str, Any], name: str, row_px: float, chrome_px: float) -> int:
    """How many category labels y axis `name` can show, each a row of `row_px`: its share of
    the figure's height less `chrome_px` for the title and margins (at most MAX_LABELLED,
    at least 2)."""
    panel = ((layout.get("height") or 450) - chrome_px) * _domain_share(layout, name)
    return max(2, min(MAX_LABELLED, int(panel // row_px)))


def _axis_settings(
    spec: dict[str, Any],
    name: str,
    categories: list[str] | None,
    font: dict[str, Any],
    size: int,
    x_labels: int,
) -> dict[str, Any]:
    """The style merged into axis `name`: fonts, colours, and log or category ticks (at most
    `x_labels` category labels, along x or y)."""
    axis = spec["layout"].get(name, {})
    settings: dict[str, Any] = {
        "tickfont": font,
        "title": {"font": {"size": size, "color": TEXT_COLOUR}},
        "automargin": True,
        "linecolor": "#444444",
        "gridcolor": "#dddddd",
    }
    if axis.get("type") == "log":
        extent = _log_extent(spec, name)
        if extent is not None:
            ticks = log_ticks(*extent)
            if axis.get("range") is not None:  # a range the builder chose stays
                del ticks["range"]
            settings.update(ticks)
    elif categories is not None and axis.get("tickmode") != "array":
        y = name.startswith("yaxis")
        ticks = category_ticks(
            categories, limit=x_labels, chars=LABEL_CHARS_Y if y else LABEL_CHARS
        )
        if y:
            ticks["tickangle"] = 0
        elif axis.get("tickangle") is not None and len(categories) <= 16:
            ticks["tickangle"] = axis["tickangle"]
        settings.update(ticks)
    return settings


def _legend_above(spec: dict[str, Any], width_px: float | None, size: int, title_size: int) -> None:
    """Move a horizontal legend placed under the plot to above it, under the title."""
    layout = spec["layout"]
    legend = layout.get("legend", {})
    if legend.get("orientation") == "h" and legend.get("y") is not None and legend["y"] < 0:
        # a legend under the plot collides with the x axis title: put it above the plot, under
        # the title pinned to the top, with room for two rows of entries (a narrow column or a
        # long translated name wraps the horizontal legend onto a second row)
        _merge(layout, "legend", {"y": 1.0, "yanchor": "bottom", "x": 0, "xanchor": "left"})
        # the title's top 8 px under the figure's (plotly ignores the title's pad here)
        top = 1 - 12 / (layout.get("height") or 450)
        _merge(layout, "title", {"yref": "container", "y": top, "yanchor": "top"})
        rows = 2 if width_px is None else max(2, _legend_rows(spec, width_px, size))
        _merge(layout, "margin", {"t": title_size + 24 + rows * (size + 10)})


def _style_annotations(layout: dict[str, Any], size: int) -> None:
    """Raise every annotation's font to at least `size`, near-black unless coloured."""
    for annotation in layout.get("annotations", ()):
        a_font = annotation.setdefault("font", {})
        a_font["size"] = max(size, a_font.get("size") or 0)
        a_font.setdefault("color", TEXT_COLOUR)


def _style_traces(spec: dict[str, Any], font: dict[str, Any], size: int) -> None:
    """Style the traces' colour bars and their text drawn on the plot (at least `size`)."""
    for trace in spec["data"]:
        kind = trace.get("type", "scatter")
        if kind in _COLORBAR:
            _merge(trace, "colorbar", {"tickfont": font})
            _merge(trace["colorbar"], "title", {"font": {"size": size, "color": TEXT_COLOUR}})
        if kind in _TEXTFONT and (
            trace.get("text") is not None or trace.get("texttemplate") is not None
        ):
            text_font = trace.setdefault("textfont", {})
            text_font["size"] = max(size, text_font.get("size") or 0)
            if text_font.get("color") is None and kind != "heatmap":
                text_font["color"] = TEXT_COLOUR


def fit_height_spec(spec: dict[str, Any], height: int, lecture: bool = False) -> None:
    """Cap the height of the figure dict `spec` (plotly's `to_dict()` form) at `height` px, in
    place, and thin the labels of each y axis of categories to every k-th so that each drawn
    label still has a row at least as tall as its text (FONT_SIZE or LECTURE_FONT_SIZE + 2 px,
    in the axis's share of the height less 120 px for title and margins). A title of several
    lines (`_wrap_titles`) stays as far from the top in pixels."""
    size = LECTURE_FONT_SIZE if lecture else FONT_SIZE
    layout = spec["layout"]
    before = layout.get("height") or 450  # plotly's default
    layout["height"] = min(layout.get("height") or height, height)
    title = layout.get("title") or {}
    if title.get("yref") == "container" and title.get("y") is not None:
        # a title placed by `_wrap_titles` keeps its distance from the top in pixels
        title["y"] = 1 - (1 - title["y"]) * before / layout["height"]
    for name in (k for k in _axis_names(spec) if k.startswith("yaxis")):
        categories = _axis_categories(spec, name)
        if categories is None:
            continue
        fits = _labels_fit(layout, name, size + 2, 120)
        ticks = category_ticks(categories, limit=fits, chars=LABEL_CHARS_Y)
        _merge(layout, name, {"tickvals": ticks["tickvals"], "ticktext": ticks["ticktext"]})
