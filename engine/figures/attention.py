"""Stage 3, multi-head self-attention: every head's pattern, one head in detail, the steps for
one query token (scores, mask, softmax, value contributions), all heads' scores, and the
article's unmasked version beside GPT's. Pure builders: arrays in, plotly figures (or a pandas
table) out; the numbers come from `engine.lens.attention` and `engine.lens.heads`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.figures.common import (
    FONT_SIZE,
    NOT_MEASURABLE,
    PALETTE,
    SCALE_WEIGHTS,
    colorscale,
    heatmap,
    plotly_text,
    shown,
    spec_figure,
    subplots_spec,
    token_labels,
    update_axes,
    window,
)
from engine.figures.text import N_, _
from engine.lens.attention import QuerySteps
from engine.lens.heads import HEAD_LABELS, HeadScores

# Largest number of tokens along an axis of the small per-head maps (the big map shows more).
GRID_AXIS = 48
# The role labels of engine.lens.heads.HEAD_LABELS, marked for the catalogue (shown through `_`).
HEAD_ROLE_NAMES = (
    N_("previous-token"),
    N_("induction"),
    N_("first-token sink"),
    N_("self"),
    N_("broad"),
)
if HEAD_ROLE_NAMES != HEAD_LABELS:  # a role added to engine.lens.heads must be marked here too
    raise RuntimeError("engine.figures.attention.HEAD_ROLE_NAMES differs from HEAD_LABELS")


def role_name(label: str | None) -> str:
    """A head's role label (`HeadScores.label`) in the reader's language; NOT_MEASURABLE ("–")
    for None."""
    return NOT_MEASURABLE if label is None else _(label)


def pattern_heatmap(
    pattern: np.ndarray,
    scores: np.ndarray | None,
    token_strs: list[str] | tuple[str, ...],
    title: str,
    *,
    start: int = 0,
    height: int | None = None,
) -> go.Figure:
    """One head's attention: queries down, keys across, weight as colour (0 to 1); hover shows
    query, key, weight and, given `scores`, the score q·k/√d_head before the mask. pattern:
    [T, T] weights; scores: [T, T] raw scores before the causal mask, the future keys' too
    (`engine.lens.attention.raw_scores`), or None for no scores in the hover. At most MAX_AXIS
    rows and columns from `start`.

    The scores travel as a float32 array, not as a formatted string per cell (at 256 tokens
    that is 65,536 strings fewer to format, copy and send), and every number a figure carries is
    finite: a masked key's score is the one it had before the mask set it to −∞, and its weight
    (0) says that it was masked. Raises ValueError for a non-finite score (the scores after the
    mask, `attn.hook_attn_scores`, are not what this takes)."""
    T = pattern.shape[0]
    rows = window(T, start)
    labels = token_labels(token_strs, rows.start, rows.stop)
    n = rows.stop - rows.start
    custom = None
    if scores is not None:
        custom = np.ascontiguousarray(np.asarray(scores)[rows, rows], dtype=np.float32)
        if not np.isfinite(custom).all():
            raise ValueError(
                "pattern_heatmap takes the raw scores before the causal mask (finite), not the "
                "masked scores with −inf"
            )
    return heatmap(
        np.asarray(pattern)[rows, rows],
        labels,
        labels,
        title,
        signed=False,
        zmax=1.0,
        x_title=_("key (the token looked at)"),
        y_title=_("query (the token looking)"),
        hovertemplate=_(
            "query %{y}<br>key %{x}<br>weight %{z:.3f}<br>score before the mask %{customdata:.3f}"
        )
        if custom is not None
        else _("query %{y}<br>key %{x}<br>weight %{z:.3f}"),
        customdata=custom,
        height=height or max(420, min(820, 160 + 22 * n)),
        colorbar_title=_("weight"),
    )


def head_panel(z: np.ndarray, labels: list[str], head_name: str, show_scale: bool) -> dict:
    """One head's attention pattern z [T, T] (weights 0 to 1, queries down, keys across) as a
    heatmap trace (plotly's dict: `spec_figure`) on the shared weight scale, for a panel of a
    grid of heads; the hover names the head (`head_name`, e.g. "2" or "1.0"). `labels`: T
    unique tick labels."""
    return {
        "type": "heatmap",
        "z": z,
        "x": labels,
        "y": labels,
        "zmin": 0,
        "zmax": 1,
        "colorscale": colorscale(SCALE_WEIGHTS),
        "showscale": show_scale,
        "colorbar": {"title": {"text": _("weight")}},
        "hovertemplate": _("head {h}<br>query %{y}<br>key %{x}<br>weight %{z:.3f}").replace(
            "{h}", head_name
        )
        + "<extra></extra>",
    }


def grid_window(n_tokens: int, pos: int, size: int = GRID_AXIS) -> slice:
    """The tokens the small maps show: all of them, or `size` ending at the selected query."""
    return window(n_tokens, pos - size + 1, size)


def head_grid(
    patterns: np.ndarray,
    head_labels: list[str | None],
    token_strs: list[str] | tuple[str, ...],
    selected: int,
    pos: int,
    title: str,
) -> go.Figure:
    """Every head of one layer as a small heatmap titled with its number and role label
    (NOT_MEASURABLE, "–", for a label of None: nothing to measure); the selected head's title is
    marked. patterns: [H, T, T]. Written as one dict and built once (`spec_figure`)."""
    H, T, _width = patterns.shape
    cols = min(H, 4)
    nrows = math.ceil(H / cols)
    rows = grid_window(T, pos)
    titles = [
        ("▶ " if h == selected else "")
        + _("head {h}<br>{role}").format(h=h, role=plotly_text(role_name(head_labels[h])))
        for h in range(H)
    ]
    spec, ref = subplots_spec(
        titles,
        rows=nrows,
        cols=cols,
        horizontal_spacing=0.04,
        vertical_spacing=0.12 if nrows > 1 else 0.05,
    )
    labels = token_labels(token_strs, rows.start, rows.stop)
    spec["data"] = [
        {
            **head_panel(patterns[h][rows, rows], labels, str(h), show_scale=h == 0),
            **ref[h // cols][h % cols][0].trace_kwargs,
        }
        for h in range(H)
    ]
    layout = spec["layout"]
    # panel titles on two lines (number, role): a panel is ~95 px wide at 1024 px with the
    # sidebar open, too narrow for "head 0: previous-token" or its Chinese on one line
    layout["margin"] = {"t": 110}
    for a in layout["annotations"]:
        marked = a["text"].startswith("▶")
        a["font"] = {"size": FONT_SIZE} | ({"color": "#d62728"} if marked else {})
    hidden = {"type": "category", "showticklabels": False}
    update_axes(layout, x=hidden, y={**hidden, "autorange": "reversed"})
    return spec_figure(spec, title, max(300, 300 * nrows + 60))


_QUERY_STEP_TITLES = (
    N_("① raw scores q·k / √d_head (every key, the future too)"),
    N_("② causal mask: keys after the query become −∞"),
    N_("③ softmax: the weights (they sum to 1)"),
    N_("④ what each value adds to the output: ‖weight × v‖"),
)


def _minus_infinity_marks(labels: list[str], future: np.ndarray) -> dict:
    """ "−∞" written at the masked (future) keys of the second row (plotly's dict)."""
    return {
        "type": "scatter",
        "x": [lab for lab, f in zip(labels, future, strict=True) if f],
        "y": [0.0] * int(future.sum()),
        "mode": "text",
        "text": ["−∞"] * int(future.sum()),
        "textfont": {"size": FONT_SIZE + 2, "color": "#d62728"},
        "hovertemplate": _("key %{x}<br>masked: −∞") + "<extra></extra>",
        "name": _("masked"),
    }


def query_steps_figure(
    steps: QuerySteps, token_strs: list[str] | tuple[str, ...], pos: int, title: str
) -> go.Figure:
    """For query `pos`, four rows of bars over the keys: (1) raw scores q·k/√d_head for every
    key, (2) after the causal mask (future keys are −∞, drawn as a grey stub), (3) softmax
    weights, (4) the length of each weight × value vector, what each key adds to the output.
    At most 64 keys are drawn, ending at the query when the text is longer. Written as one
    dict and built once (`spec_figure`)."""
    cols = window(len(steps.raw), pos - 63, 64)  # at most 64 keys, ending at the query
    labels = token_labels(token_strs, cols.start, cols.stop)
    future = np.arange(cols.start, cols.stop) > pos
    spec, ref = subplots_spec(
        [_(t) for t in _QUERY_STEP_TITLES],
        rows=4,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
    )
    masked = [None if not np.isfinite(m) else float(m) for m in steps.masked[cols]]
    rows = (
        (steps.raw[cols], ["#BAB0AC" if f else PALETTE[0] for f in future], _("raw score"), None),
        (masked, PALETTE[0], _("score"), _("masked score")),
        (steps.weights[cols], PALETTE[2], _("weight"), None),
        (steps.contributions[cols], PALETTE[1], "‖weight × v‖", _("contribution")),
    )
    for row, (y, colour, quantity, name) in enumerate(rows):
        axes = ref[row][0][0].trace_kwargs
        spec["data"].append(
            {
                "type": "bar",
                "x": labels,
                "y": y,
                "marker": {"color": colour},
                "hovertemplate": _("key %{x}<br>{quantity} %{y:.3f}").replace(
                    "{quantity}", quantity
                )
                + "<extra></extra>",
                "name": name or quantity,
                **axes,
            }
        )
        if row == 1 and future.any():
            spec["data"].append({**_minus_infinity_marks(labels, future), **axes})
    layout = spec["layout"]
    layout.update(showlegend=False, bargap=0.15)
    update_axes(layout, x={"type": "category", "tickangle": -60})
    for row in (2, 3):
        layout[ref[row][0][0].layout_keys[1]]["rangemode"] = "tozero"
    for annotation in layout["annotations"]:
        annotation["font"] = {"size": FONT_SIZE}
    return spec_figure(spec, title, 900)


def head_scores_table(scores: HeadScores) -> pd.DataFrame:
    """Every head of every layer: its role label and the scores the label comes from, as text
    (two decimals; entropy in nats, three). A score measured over no query (a one-token text,
    induction on a text with no repeat) and the label of such a head are NOT_MEASURABLE ("–")."""
    L, H = scores.previous.shape
    rows = []
    for layer in range(L):
        for head in range(H):
            label = scores.label(layer, head)
            rows.append(
                {
                    "layer": layer,
                    "head": head,
                    "label": role_name(label),
                    "previous-token": shown(scores.previous[layer, head]),
                    "induction": shown(scores.induction[layer, head]),
                    "first-token sink": shown(scores.first[layer, head]),
                    "self": shown(scores.self_[layer, head]),
                    "entropy (nats)": shown(scores.entropy[layer, head], "{:.3f}"),
                }
            )
    headers = {
        "layer": _("layer"),
        "head": _("head"),
        "label": _("label"),
        "previous-token": _("previous-token"),
        "induction": _("induction"),
        "first-token sink": _("first-token sink"),
        "self": _("self"),
        "entropy (nats)": _("entropy (nats)"),
    }
    return pd.DataFrame(rows).rename(columns=headers)


def head_table_short_headers() -> dict[str, str]:
    """The shorter headers the head table (`head_scores_table`) is shown with, by its column
    names (both in the reader's language): its eight columns fit a 500 px page body (1024 px
    with the sidebar open) only so; the full names stay the columns' help, and the caption
    under the table explains each score."""
    return {
        _("previous-token"): _("prev."),
        _("induction"): _("induct."),
        _("first-token sink"): _("sink"),
        _("entropy (nats)"): _("entropy"),
    }


def article_vs_gpt(
    unmasked: np.ndarray,
    raw: np.ndarray,
    pattern: np.ndarray,
    scores: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    start: int = 0,
) -> tuple[go.Figure, go.Figure]:
    """The same head twice: the article's softmax over every token (`unmasked`) and GPT's causal
    `pattern`, each [T, T]; hover: query, key and weight. The raw scores (`raw`, and GPT's
    masked `scores`) are not sent with them: the head's own map above the section hovers them,
    and the two maps' 2 x 0.35 MB of scores at 256 tokens kept the Attention page over 2 MB of
    figure data with every section open."""
    article = pattern_heatmap(
        unmasked,
        None,
        token_strs,
        _("The article: no mask (sees the future)"),
        start=start,
    )
    gpt = pattern_heatmap(
        pattern,
        None,
        token_strs,
        _("GPT: causal mask (sees only the past)"),
        start=start,
    )
    return article, gpt
