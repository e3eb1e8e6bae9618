"""Controls a page places in its main area: pickers bound to a shared value, windows over a long
axis, and the Previous / Next walk at the bottom of a page."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine.figures.common import (
    BODY_PX,
    LECTURE_BODY_PX,
    MAX_AXIS,
    sent_figure,
    shown,
)
from ui.exports import png_config, svg_button
from ui.i18n import _
from ui.lecture import LECTURE_MAIN_HEIGHT, keyboard, lecture_mode, main_slot, walk_order
from ui.stages import SECTION_KEYS, STAGES, step_label, walk_neighbours
from ui.state import View, nav_params

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler


# The width of each box of `pair` (measured in Chromium): one holds the dropout page's widest
# table (415 px), and two fit side by side, with Streamlit's 16 px gap, in the 875 px page body
# at 1400 px with the sidebar open; in lecture mode's 988 px body at 1024 px, wider ones (its
# 20 px legends need them). Inside an expander, whose padding takes 38 px, narrower ones.
PAIR_PX = {(False, False): 430, (False, True): 400, (True, False): 480, (True, True): 460}


def pair(inset: bool = False) -> tuple[Any, Any, int]:
    """Two boxes (Streamlit containers) for two charts or tables that belong together, and
    their width in pixels (PAIR_PX; `inset`: inside an expander): side by side where the page
    body holds both (in lecture mode; at 1400 px with the sidebar open), one under the other
    where it does not (at 1024 px with the sidebar open the body is about 500 px: a half of it
    cut a chart's legend and made a table scroll sideways). A horizontal container that wraps
    its boxes onto a second row: the browser decides, the server does not know the window's
    width. Draw a chart in a box with `chart(..., where=box, width_px=width)`."""
    width = PAIR_PX[(lecture_mode(), inset)]
    row = st.container(horizontal=True, gap="small")
    return row.container(width=width), row.container(width=width), width


def chart(fig: go.Figure, *, key: str, where: Any = None, width_px: float | None = None) -> None:
    """Draw a plotly figure in the one figure style (`engine.figures.common.readable`: larger
    type in lecture mode) with Streamlit's chart theme off (`theme=None`: Streamlit's theme
    would otherwise shrink the tick labels to 13.5 px and turn them grey), in `where` (a column;
    default the page body). `key` is the chart's element key. `width_px`: the narrowest the
    chart is drawn, when `where` is a box of known width (`pair`'s PAIR_PX); by default the
    page body's narrowest, or half of it in a column. The figure goes to Streamlit as its
    finished dict (`engine.figures.common.sent_figure`), built and copied once."""
    lecture = lecture_mode()
    # sized for the narrowest page (1024 px with the sidebar open; in lecture mode with it
    # collapsed), a chart put in a column for half of it: titles wrapped, x labels thinned
    body = LECTURE_BODY_PX if lecture else BODY_PX
    width = width_px if width_px is not None else body if where is None else body / 2
    where = where or st
    slot = main_slot(key) if lecture else None
    if slot is not None:  # the stage's main figure, right under the lecture bar
        where = slot
    cap = LECTURE_MAIN_HEIGHT if slot is not None else None
    fig = sent_figure(fig, lecture=lecture, width_px=width, max_height=cap)
    where.plotly_chart(fig, theme=None, key=key, config=png_config(fig, key))
    svg_button(fig, key, where)


# Widths of characters in Streamlit's table font (Source Sans at 14 px), rounded up from
# Chromium's measurements (canvas measureText in the app): the thin ones at most 4.9 px, most
# lower-case letters and digits 5.9-7.8, capitals up to 9.3, m w M W % @ 10-12, a wide (CJK)
# character 14. A cell needs its text plus 8 px of padding on each side; a header 20 px more,
# for the sort arrow and the column menu.
_THIN_CHARS = frozenset(" |ijlIf!'.,:;·()[]{}-tr/\\")
_BROAD_CHARS = frozenset("mwMW%@—…")
_PX_THIN, _PX_NARROW, _PX_CAPITAL, _PX_BROAD, _PX_WIDE = 5, 8, 9, 12, 14
_CELL_PAD_PX, _HEADER_PAD_PX = 16, 36


@functools.lru_cache(maxsize=4096)
def _char_px(c: str) -> int:
    """One character's pixels for `text_px` (kept per character: a long table measures the
    same few characters thousands of times on every rerun)."""
    if unicodedata.east_asian_width(c) in "WF":
        return _PX_WIDE
    if c in _THIN_CHARS:
        return _PX_THIN
    if c in _BROAD_CHARS:
        return _PX_BROAD
    return _PX_CAPITAL if c.isupper() else _PX_NARROW


def text_px(text: str) -> int:
    """The pixels `text` takes in a table cell's font (an upper estimate from its characters:
    East Asian wide ones by `unicodedata.east_asian_width`, the others by shape)."""
    return sum(map(_char_px, text))


def header_px(text: str, pad_px: int = _HEADER_PAD_PX) -> int:
    """The pixels a dataframe header `text` needs to be shown whole: its text and `pad_px` (by
    default the cell padding, the sort arrow and the column menu)."""
    return text_px(text) + pad_px


def column_widths(
    df: pd.DataFrame,
    headers: dict[str, str] | None = None,
    formats: dict[str, str] | None = None,
) -> dict[str, int]:
    """Each column's width in pixels for `table`: as wide as its header (`header_px`) or its
    widest cell (its text and the padding), whichever is wider. Keys are the column names as
    strings. `headers`: shorter headers drawn instead of some column names (`table`); with it,
    every header gets only the cell padding, no room for a sort arrow: a compact table.
    `formats` ({column: `str.format` template}, as for `formatted`): those columns' cells are
    measured as `formatted` writes them ("0.4766", "–"), the others as `str` of their values."""
    pad = _HEADER_PAD_PX if headers is None else _CELL_PAD_PX
    drawn = headers or {}
    fmts = formats or {}

    def cell(col: Any, value: Any) -> str:
        return shown(value, fmts[col]) if col in fmts else str(value)

    return {
        str(col): max(
            header_px(drawn.get(str(col), str(col)), pad),
            max(
                (text_px(t) + _CELL_PAD_PX for t in {cell(col, v) for v in df[col].tolist()}),
                default=0,
            ),
        )
        for col in df.columns
    }


def formatted(df: pd.DataFrame, formats: dict[str, str]) -> Styler:
    """`df` for `st.dataframe` with each number column written in one format: `formats` maps a
    column to a `str.format` template ("{:.3f}", "{:+.1%}"), applied through
    `engine.figures.common.shown` (NaN and infinities read "–", a tiny negative never "-0.000").
    The cells stay numbers, so a click on a header still sorts by value. A float column left to
    Streamlit is written with up to four decimals and its trailing zeros cut (0.258 beside
    0.1944 in one column), so every float column of `df` must have a format: raises ValueError
    naming those that have none, and KeyError for a format of a column `df` does not have.
    A missing cell (NaN) is sent as +inf (written "–" too, sorted after every number):
    Streamlit's grid draws NaN as "None" whatever the Styler writes."""
    missing = [c for c in df.columns if pd.api.types.is_float_dtype(df[c]) and c not in formats]
    if missing:
        raise ValueError(f"float columns without a format: {missing}")
    unknown = [c for c in formats if c not in df.columns]
    if unknown:
        raise KeyError(f"formats for columns the table does not have: {unknown}")
    # Streamlit's table draws a missing cell (NaN) as "None" whatever the Styler writes for it
    # (streamlit/streamlit#11123; seen in Chromium on the Output page's last position), but
    # it shows the Styler's text for an infinite one: NaN is sent as +inf, which `shown`
    # writes "–" as well, and which sorts after every number
    gaps = [c for c in formats if pd.api.types.is_float_dtype(df[c]) and df[c].isna().any()]
    if gaps:
        df = df.copy()
        for c in gaps:
            df[c] = df[c].fillna(np.inf)
    return df.style.format({c: functools.partial(shown, fmt=f) for c, f in formats.items()})


def table(
    df: pd.DataFrame,
    *,
    key: str | None = None,
    where: Any = None,
    short_headers: dict[str, str] | None = None,
    formats: dict[str, str] | None = None,
) -> None:
    """`st.dataframe` of `df` (no index, full width) with every column at least as wide as its
    header (`column_widths`), so that no header is cut ("entrop…"): Streamlit sizes columns by
    their cells. The estimate is kept tight because columns wider than the table's box make it
    scroll sideways, which cuts the last header at the box's edge ("entropy (na").
    `short_headers` ({column name: shorter header}) makes a compact table, for one with many
    columns: those columns show the shorter header, with the full name as their help (shown
    on hover), and no column keeps room for a sort arrow (a sorted column's arrow shortens its
    header; measured in Chromium, the headers are whole otherwise): the attention page's head
    table (8 columns) fits the 500 px page body at 1024 px with the sidebar open so.
    `formats` ({column: `str.format` template}): number columns shown through `formatted`
    (the cells stay numbers, right-aligned and sorted by value; "–" where not measurable) and
    measured as it writes them; raises as `formatted` does (a float column without a format, a
    format for a column `df` does not have)."""
    drawn = short_headers or {}
    widths = column_widths(df, short_headers, formats)
    config = {
        col: st.column_config.Column(
            label=drawn.get(col), help=col if drawn.get(col, col) != col else None, width=width
        )
        for col, width in widths.items()
    }
    data = df if formats is None else formatted(df, formats)
    (where or st).dataframe(data, hide_index=True, width="stretch", column_config=config, key=key)


def shared_picker(
    shared_key: str,
    label: str,
    options: list[int],
    key: str,
    format_func: Any = str,
    help: str | None = None,
) -> int:
    """A selectbox in the page body bound to a shared value ("layer", "head" or "pos"): it shows
    the shared value and writes changes back, so the sidebar and the URL follow."""
    ss = st.session_state
    if ss.get(shared_key) not in options:
        ss[shared_key] = options[0]
    ss[key] = ss[shared_key]
    st.selectbox(
        label,
        options,
        key=key,
        format_func=format_func,
        on_change=_copy_widget,
        args=(key, shared_key),
        help=help,
    )
    return int(ss[shared_key])


def _copy_widget(widget_key: str, shared_key: str) -> None:
    st.session_state[shared_key] = st.session_state[widget_key]


def bounded_input(
    kind: str,
    label: str,
    min_value: float,
    max_value: float,
    value: float | None = None,
    *,
    key: str,
    step: float = 1,
    where: Any = None,
    fmt: str = "{:g}",
    **kwargs: Any,
) -> float:
    """Every slider ("slider") and number input ("number") whose bounds come from a model or a
    text: the one place that handles a range of one value. When `max_value` <= `min_value` no
    control is drawn, a caption says the only value instead (Streamlit refuses a slider with
    min == max, and a control with nothing to choose is noise) and `min_value` is returned.
    Otherwise the control, in `where` (a column; default the page body), starting at `value`
    (clamped; default `min_value`); a value kept in session state from a wider range is clamped
    too. Returns the chosen value (an int when every bound and the step are ints)."""
    where = where or st
    if max_value <= min_value:
        where.caption(
            _("{label}: {value} (the only possible value here)").format(
                label=label, value=fmt.format(min_value)
            )
        )
        return min_value
    ss = st.session_state
    widget = where.slider if kind == "slider" else where.number_input
    if key in ss:  # clamp a value kept from a wider range; no `value` beside session state
        if ss[key] is not None:
            ss[key] = type(ss[key])(min(max(ss[key], min_value), max_value))
        return widget(label, min_value=min_value, max_value=max_value, step=step, key=key, **kwargs)
    start = min_value if value is None else min(max(value, min_value), max_value)
    return widget(
        label,
        min_value=min_value,
        max_value=max_value,
        value=start,
        step=step,
        key=key,
        **kwargs,
    )


def axis_window(n: int, label: str, key: str, size: int = MAX_AXIS) -> int:
    """Where a long axis's window starts. Draws a slider (through `bounded_input`) only when `n`
    is longer than `size` (heatmaps send at most `size` cells along an axis); returns 0
    otherwise."""
    if n <= size:
        return 0
    step = max(1, min(size // 2, n - size))  # the last window must stay reachable
    return int(
        bounded_input(
            "slider",
            _("{label}: first of the {size} shown (of {n})").format(label=label, size=size, n=n),
            0,
            n - size,
            key=key,
            step=step,
        )
    )


def lazy_section(label: str, key: str, draw: Callable[[], None]) -> bool:
    """A section of a page that is computed only while it is open: an expander titled `label`
    (collapsed at first; element and session-state key `key`, True while open) whose content,
    `draw()`, runs only when it is open. Opening or closing it reruns the page (Streamlit's
    lazy expander, `st.expander(on_change="rerun")`). A closed section costs nothing on a
    rerun: no figure is built, serialised or sent, which is what keeps a page's rerun short
    (issue 19) and its first screen short on a projector. Returns whether it is open.
    `key` must be one of the stage table's section keys (`ui.stages.Stage.sections`: the
    link's `open=` names them, `ui.state.open_params`); raises ValueError otherwise."""
    if key not in SECTION_KEYS:
        raise ValueError(
            f"lazy section {key!r} is not in the stage table: add its short id to the page's "
            "Stage(sections=...) in ui/stages.py"
        )
    box = st.expander(label, key=key, on_change="rerun")
    if box.open:
        with box:
            draw()
    return bool(box.open)


def next_stage(view: View) -> None:
    """The Previous / Next controls at the bottom of a stage page (element keys
    "<stage>_prev" and "<stage>_next"), also stepped from the keyboard or a clicker
    (`ui.lecture.keyboard`). Moving to another layer updates the shared layer; the new page's
    URL carries stage and layer."""
    prev, nxt = walk_neighbours(view.stage, view.layer, view.trace.config.n_layer, walk_order())
    st.divider()
    left, right = st.columns(2)
    keys: dict[str, str | None] = {"prev": None, "next": None}
    for col, step, arrow, kind in ((left, prev, "←", "prev"), (right, nxt, "→", "next")):
        if step is None or not step[0].exists():
            continue
        keys[kind] = f"{view.stage}_{kind}"
        if kind == "prev":
            label = f"{arrow} {step_label(step)}"
        else:
            label = _("Next: {step} →").format(step=step_label(step))
        if col.button(
            label, key=f"{view.stage}_{kind}", type="primary" if kind == "next" else "secondary"
        ):
            stage, layer = step
            st.session_state["layer"] = layer
            st.switch_page(stage.path, query_params=nav_params(layer))
    if nxt is None:
        right.page_link(STAGES[0].path, label=_("Start the walk again"), icon="🔁")
    keyboard(keys["prev"], keys["next"])
