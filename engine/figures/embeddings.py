"""Stage 2, embeddings: token vectors, position vectors, their sum, a 2-D PCA map, cosine
similarity between positions and a token's nearest neighbours in the vocabulary.
Pure builders: arrays and labels in, plotly Figures out; the numbers come from
`engine.lens.embeddings`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from engine.figures.common import (
    MAX_AXIS,
    PALETTE,
    heatmap,
    plotly_text,
    prose_number,
    spec_figure,
    text_width_px,
    token_labels,
    window,
)
from engine.figures.text import _


def embedding_heatmap(
    vectors: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    title: str,
    *,
    dim_start: int = 0,
    token_start: int = 0,
    zmax: float | None = None,
) -> go.Figure:
    """Tokens down, embedding dimensions across (a window of at most MAX_AXIS each way)."""
    T, d = vectors.shape
    rows, cols = window(T, token_start), window(d, dim_start)
    z = np.asarray(vectors)[rows, cols]
    return heatmap(
        z,
        [f"d{j}" for j in range(cols.start, cols.stop)],
        token_labels(token_strs, rows.start, rows.stop),
        title,
        signed=True,
        zmax=zmax,
        x_title=_("dimension {first}–{last} of {d}").format(
            first=cols.start, last=cols.stop - 1, d=d
        ),
        y_title=_("token"),
        hovertemplate=_("token %{y}<br>dimension %{x}<br>value %{z:.4f}"),
        height=max(320, min(900, 90 + 22 * (rows.stop - rows.start))),
    )


# Label placement on the PCA map: the plot area (pixels) and label font of the map as the stage's
# main figure in lecture mode (the default; 1024 x 768, cut to LECTURE_MAIN_HEIGHT; the 820 x 440
# assumed before placed labels that overlapped there), and of the map on the page at 1024 px with
# the sidebar open, the narrowest it is drawn (both measured in Chromium, with the legend row of
# hollow points; in the 3:2 column it had before it was 200 px wide, and of the repeated line's
# 34 tokens 15 had no label, at this width 10); then the places tried around a point, in order
# (plotly textposition, offset of the label's centre in units of its half width / half height,
# plus a gap).
PCA_AREA_PX = (883.0, 280.0)
PCA_FONT_PX = 20.0
PCA_PAGE_PX = (414.0, 373.0)
PCA_PAGE_FONT_PX = 16.0
_LABEL_PLACES = (
    ("top center", 0.0, 1.0),
    ("bottom center", 0.0, -1.0),
    ("middle right", 1.0, 0.0),
    ("middle left", -1.0, 0.0),
    ("top right", 1.0, 1.0),
    ("top left", -1.0, 1.0),
    ("bottom right", 1.0, -1.0),
    ("bottom left", -1.0, -1.0),
)
_GAP_PX = 8.0
_MARKER_PX = 7.0  # half the largest marker, pixels


def place_labels(
    x: np.ndarray,
    y: np.ndarray,
    labels: list[str],
    first: int | None = None,
    area_px: tuple[float, float] = PCA_AREA_PX,
    font_px: float = PCA_FONT_PX,
) -> tuple[list[str], list[str]]:
    """Greedy placement of point labels without overlaps (the approach of matplotlib's
    adjustText, with a fixed set of places): point `first` (the selected token) first, then in
    order, each label goes to the first place in `_LABEL_PLACES` whose box lies inside the plot
    area and overlaps no label placed so far and no point's marker; a label with no free place
    is left out of the drawing (it stays in the hover), except `first`'s, drawn above its point
    whatever it covers.
    `x`, `y` [N] in data units, scaled to `area_px`. Returns (text per point, "" where left out;
    textposition per point)."""
    boxes, ok = label_candidates(x, y, labels, area_px, font_px)
    return _choose_places(labels, first, boxes, ok)


def label_candidates(
    x: np.ndarray,
    y: np.ndarray,
    labels: list[str] | tuple[str, ...],
    area_px: tuple[float, float] = PCA_AREA_PX,
    font_px: float = PCA_FONT_PX,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """The part of `place_labels` that does not depend on which point goes first: every
    label's box at every place (x0, y0, x1, y1 [N, places] px) and which of them lie inside the
    plot area and cover no other point's marker ([N, places] bool). At 1,024 points this is
    most of the placement's time (the marker test compares 8 places with 1,024 markers)."""
    n = len(labels)
    w_px, h_px = area_px
    px, py = _scaled(x, w_px, n), _scaled(y, h_px, n)
    boxes = _candidate_boxes(px, py, list(labels), font_px)
    return boxes, _clear_of_markers(px, py, boxes, area_px)


def _scaled(v: np.ndarray, size: float, n: int) -> np.ndarray:
    """Coordinates `v` [n] stretched onto [0, `size`] pixels (all at `size` / 2 if equal)."""
    v = np.asarray(v, dtype=np.float64)
    span = float(v.max() - v.min()) if n else 0.0
    return (v - v.min()) / span * size if span > 0 else np.full(n, size / 2)


def _candidate_boxes(
    px: np.ndarray, py: np.ndarray, labels: list[str], font_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every label's box at every place of `_LABEL_PLACES`: x0, y0, x1, y1 [n, places] px."""
    n = len(labels)
    half_w = np.array([text_width_px(s, font_px) / 2 for s in labels]).reshape(n, 1)
    half_h = 0.6 * font_px
    dx = np.array([p[1] for p in _LABEL_PLACES])
    dy = np.array([p[2] for p in _LABEL_PLACES])
    cx = px[:, None] + dx * (half_w + _MARKER_PX + _GAP_PX / 2)
    cy = py[:, None] + dy * (half_h + _MARKER_PX + _GAP_PX / 2)
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


def _clear_of_markers(
    px: np.ndarray,
    py: np.ndarray,
    boxes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    area_px: tuple[float, float],
) -> np.ndarray:
    """Which candidate boxes [n, places] lie inside the plot and cover no other point's marker."""
    # one vectorised test over every (candidate, marker) pair, in slices of points (the greedy
    # pass of `_choose_places` then checks only the labels placed so far, a handful: at 1,024
    # tokens this took 0.45 s as one Python loop over every box)
    x0, y0, x1, y1 = boxes
    w_px, h_px = area_px
    n = len(px)
    ok = (x0 >= 0) & (x1 <= w_px) & (y0 >= 0) & (y1 <= h_px)
    m0x, m1x = px - _MARKER_PX, px + _MARKER_PX
    m0y, m1y = py - _MARKER_PX, py + _MARKER_PX
    step = max(1, 2**20 // max(1, n * len(_LABEL_PLACES)))
    for s in range(0, n, step):
        sl = slice(s, min(n, s + step))
        hit = (
            (x1[sl, :, None] > m0x)
            & (m1x > x0[sl, :, None])
            & (y1[sl, :, None] > m0y)
            & (m1y > y0[sl, :, None])
        )
        own = np.arange(sl.start, sl.stop)
        hit[own - s, :, own] = False  # a label may cover its own point's marker
        ok[sl] &= ~hit.any(axis=2)
    return ok


def _choose_places(
    labels: list[str],
    first: int | None,
    boxes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ok: np.ndarray,
) -> tuple[list[str], list[str]]:
    """The greedy pass of `place_labels`: (text per point, textposition per point)."""
    x0, y0, x1, y1 = boxes
    n = len(labels)
    placed = np.empty((n, 4))
    n_placed = 0
    text, where = [""] * n, ["top center"] * n
    order = ([first] if first is not None and 0 <= first < n else []) + [
        i for i in range(n) if i != first
    ]
    for i in order:
        k = _first_free(i, boxes, ok, placed[:n_placed])
        if k is None:
            if i != first:
                continue
            k = 0  # the selected token is always labelled: above it, over the crowd
        placed[n_placed] = (x0[i, k], y0[i, k], x1[i, k], y1[i, k])
        n_placed += 1
        text[i], where[i] = labels[i], _LABEL_PLACES[k][0]
    return text, where


def _first_free(
    i: int,
    boxes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ok: np.ndarray,
    placed: np.ndarray,
) -> int | None:
    """Label `i`'s first candidate clear of markers and of the `placed` boxes [m, 4], or None."""
    x0, y0, x1, y1 = boxes
    for k in range(len(_LABEL_PLACES)):
        if not ok[i, k]:
            continue
        hit = (x1[i, k] > placed[:, 0]) & (placed[:, 2] > x0[i, k])
        if not np.any(hit & (y1[i, k] > placed[:, 1]) & (placed[:, 3] > y0[i, k])):
            return k
    return None


def same_place_groups(x: np.ndarray, y: np.ndarray) -> list[list[int]]:
    """The points drawn at one place, as groups of indices in text order (groups ordered by
    their first index): points whose coordinates differ by at most 1e-9 of the larger span of
    `x` and `y` [N] (a token that occurs twice has one token vector, drawn twice at one spot;
    PCA's arithmetic can leave its two copies 1e-16 apart)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    if n == 0:
        return []
    tol = 1e-9 * max(float(np.ptp(x)), float(np.ptp(y)))
    close = (np.abs(x[:, None] - x[None, :]) <= tol) & (np.abs(y[:, None] - y[None, :]) <= tol)
    leader = close.argmax(axis=1)  # each point's first close point
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(int(leader[i]), []).append(i)
    return list(groups.values())


def _group_label(group: list[int], token_strs: list[str] | tuple[str, ...]) -> str:
    """One label for the points of `group` drawn at one place: "3,20:␣r" when they are one
    token, else their own labels ("3:a, 5:b"); plotly-safe."""
    texts = {token_strs[i] for i in group}
    if len(texts) == 1:
        return plotly_text(",".join(str(i) for i in group) + ":" + token_strs[group[0]])
    return ", ".join(plotly_text(f"{i}:{token_strs[i]}") for i in group)


@dataclass(frozen=True)
class PcaLabels:
    """What the PCA map's labels need that does not depend on the selected token, computed once
    per (text, vectors, plot area, font) by `pca_labels`: the points drawn at one place
    (`same_place_groups`) as groups, each group's label and first point, and the candidate
    boxes of the group labels (`label_candidates`) with which of them are free of markers.

    group_of: [N] int, each point's group. reps: [G] each group's first point. labels: [G].
    boxes: x0, y0, x1, y1 [G, places] px. ok: [G, places] bool."""

    group_of: np.ndarray
    reps: tuple[int, ...]
    labels: tuple[str, ...]
    boxes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    ok: np.ndarray


def pca_labels(
    coords: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    area_px: tuple[float, float] = PCA_AREA_PX,
    font_px: float = PCA_FONT_PX,
) -> PcaLabels:
    """`PcaLabels` of the points `coords` [N, 2] named by `token_strs` [N], for a plot area of
    `area_px` pixels and labels of `font_px` (`pca_figure`'s arguments)."""
    n = len(token_strs)
    groups = same_place_groups(coords[:, 0], coords[:, 1])
    group_of = np.zeros(n, dtype=int)
    for k, g in enumerate(groups):
        group_of[g] = k
    reps = tuple(g[0] for g in groups)
    labels = tuple(_group_label(g, token_strs) for g in groups)
    at = coords[list(reps)]
    boxes, ok = label_candidates(at[:, 0], at[:, 1], labels, area_px, font_px)
    return PcaLabels(group_of=group_of, reps=reps, labels=labels, boxes=boxes, ok=ok)


def pca_figure(
    coords: np.ndarray,
    explained: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    title: str,
    selected: int | None = None,
    area_px: tuple[float, float] = PCA_AREA_PX,
    font_px: float = PCA_FONT_PX,
    labels: PcaLabels | None = None,
) -> go.Figure:
    """Each token as a labelled point; a faint line joins them in text order. `explained` [2]
    (NaN for a component that does not exist: the axis says "not measurable here"). Points
    drawn at one place (`same_place_groups`: a repeated token's token vectors) share one label
    that names all their positions ("3,20:␣r"). Labels that would overlap another label or a
    point are left out of the drawing (`place_labels`, for a plot area of `area_px` pixels and
    labels of `font_px`): their points are drawn hollow, and a legend entry above the plot says
    so and how many; every point's hover names its token(s). Written as one dict and built once
    (`spec_figure`). `labels`: `pca_labels(coords, token_strs, area_px, font_px)` computed
    before (a page caches it per text: at 1,024 tokens it is most of the map's time); None
    computes it here."""
    n = len(token_strs)
    if labels is None:
        labels = pca_labels(coords, token_strs, area_px, font_px)
    shown, where, labelled = _placed_labels(labels, selected, n)
    data = [
        {
            "type": "scatter",
            "x": coords[:, 0],
            "y": coords[:, 1],
            "mode": "lines",
            "line": {"color": "#cccccc", "width": 1},
            "hoverinfo": "skip",
            "name": _("text order"),
            "showlegend": False,
        },
        {
            "type": "scatter",
            "x": coords[:, 0],
            "y": coords[:, 1],
            "mode": "markers+text",
            "text": shown,
            "textposition": where,
            "customdata": [labels.labels[k] for k in labels.group_of],
            "cliponaxis": False,  # the selected token's label may reach past the axes
            "marker": {
                "size": [22 if i == selected else 12 for i in range(n)],
                "color": [PALETTE[i % len(PALETTE)] for i in range(n)],
                "symbol": ["circle" if on else "circle-open" for on in labelled],
                "line": {"color": "#333", "width": [1 if on else 2 for on in labelled]},
            },
            "hovertemplate": _("%{customdata}<br>PC1 %{x:.3f}<br>PC2 %{y:.3f}") + "<extra></extra>",
            "name": _("tokens"),
            "showlegend": False,
        },
    ]
    layout: dict = {"showlegend": False}
    unlabelled = int((~labelled).sum())
    if unlabelled:  # say on the chart which points have no label, and why
        data.append(_hollow_key(unlabelled, n))
        layout.update(showlegend=True, legend={"orientation": "h", "y": -0.2})
    for axis, k in (("xaxis", 0), ("yaxis", 1)):
        layout[axis] = {"title": {"text": _pc_axis_title(explained, k)}}
    return spec_figure({"data": data, "layout": layout}, title, 560)


def _placed_labels(
    labels: PcaLabels, selected: int | None, n: int
) -> tuple[list[str], list[str], np.ndarray]:
    """The greedy pass of `place_labels` over the groups of `labels`, the selected token's
    group first: (text per point, "" where none; textposition per point; [n] bool, the point's
    group got a label). A group's label sits on its first point, the selected token's on the
    selected point itself (its larger marker)."""
    group_of = labels.group_of
    reps = list(labels.reps)
    first = None if selected is None or not 0 <= selected < n else int(group_of[selected])
    if first is not None:
        reps[first] = selected
    texts, places = _choose_places(list(labels.labels), first, labels.boxes, labels.ok)
    shown, where = [""] * n, ["top center"] * n
    for k, rep in enumerate(reps):
        shown[rep], where[rep] = texts[k], places[k]
    labelled = np.array([bool(texts[group_of[i]]) for i in range(n)], dtype=bool)
    return shown, where, labelled


def _hollow_key(unlabelled: int, n: int) -> dict:
    """The legend entry that says why `unlabelled` of the `n` points are hollow: a trace with no
    point (x and y None), only its legend key."""
    return {
        "type": "scatter",
        "x": [None],
        "y": [None],
        "mode": "markers",
        "marker": {"size": 12, "color": PALETTE[8], "symbol": "circle-open", "line": {"width": 2}},
        "name": _("hollow: no room for its label ({n} of {total} tokens); hover it").format(
            n=unlabelled, total=n
        ),
        "hoverinfo": "skip",
    }


def _pc_axis_title(explained: np.ndarray, k: int) -> str:
    """The title of principal component k's axis: its share of the variance, or "not
    measurable here" where it does not exist (NaN)."""
    share = (
        _("{share}% of the variance").format(share=f"{100 * explained[k]:.0f}")
        if np.isfinite(explained[k])
        else _("not measurable here")
    )
    return f"PC{k + 1} ({share})"


def cosine_heatmap(
    sims: np.ndarray, token_strs: list[str] | tuple[str, ...], title: str, token_start: int = 0
) -> go.Figure:
    """Cosine similarities `sims` [T, T] between tokens (a window from `token_start`), on the
    signed scale from -1 to 1."""
    rows = window(sims.shape[0], token_start)
    labels = token_labels(token_strs, rows.start, rows.stop)
    return heatmap(
        sims[rows, rows],
        labels,
        labels,
        title,
        signed=True,
        zmax=1.0,
        x_title=_("token"),
        y_title=_("token"),
        hovertemplate=_("%{y} · %{x}<br>cosine %{z:.3f}"),
        height=max(360, min(800, 120 + 20 * (rows.stop - rows.start))),
        colorbar_title=_("cosine"),
    )


def neighbours_figure(
    ids: np.ndarray, sims: np.ndarray, labels: list[str], query_label: str
) -> go.Figure:
    """Horizontal bars: the nearest vocabulary tokens and their cosine similarity. Written as
    one dict and built once (`spec_figure`)."""
    shown = [f"{plotly_text(lab)} (id {int(i)})" for lab, i in zip(labels, ids, strict=True)]
    bars = {
        "type": "bar",
        "x": sims,
        "y": shown,
        "orientation": "h",
        "marker": {"color": PALETTE[0]},
        "text": [prose_number(s, "{:.3f}") for s in sims],
        "textposition": "auto",
        "hovertemplate": _("%{y}<br>cosine %{x:.3f}<extra></extra>"),
    }
    layout = {
        "yaxis": {"autorange": "reversed", "type": "category", "automargin": True},
        "xaxis": {
            "title": {"text": _("cosine similarity")},
            "range": [min(0.0, float(np.min(sims, initial=0))), 1],
        },
    }
    return spec_figure(
        {"data": [bars], "layout": layout},
        _("Nearest tokens to “{token}” in the embedding table").format(
            token=plotly_text(query_label)
        ),
        max(320, 80 + 34 * len(ids)),
    )


__all__ = [
    "MAX_AXIS",
    "cosine_heatmap",
    "embedding_heatmap",
    "neighbours_figure",
    "pca_figure",
]
