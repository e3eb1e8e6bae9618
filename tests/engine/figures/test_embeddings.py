"""engine.figures.embeddings: embedding heatmaps, PCA, cosine maps and neighbours, on their data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.figures import common
from engine.figures import embeddings as fe
from engine.lens import embeddings as le
from engine.trace import Trace
from tests.support import assert_validates_unchanged


def test_embedding_heatmap_shows_the_trace_values(tiny_trace: Trace) -> None:
    fig = fe.embedding_heatmap(tiny_trace["hook_embed"], tiny_trace.token_strs, "Token")
    heat = fig.data[0]
    np.testing.assert_allclose(np.array(heat.z, dtype=float), tiny_trace["hook_embed"])
    assert list(heat.y) == common.token_labels(tiny_trace.token_strs)
    assert list(heat.x)[:2] == ["d0", "d1"]
    assert fig.layout.title.text == "Token"


def test_embedding_heatmap_windows_a_wide_matrix() -> None:
    wide = np.arange(3 * 600, dtype=np.float32).reshape(3, 600)
    fig = fe.embedding_heatmap(wide, ["a", "b", "c"], "W", dim_start=300)
    z = np.array(fig.data[0].z, dtype=float)
    assert z.shape == (3, common.MAX_AXIS)
    assert fig.data[0].x[0] == "d300"
    np.testing.assert_array_equal(z, wide[:, 300 : 300 + common.MAX_AXIS])


def test_pca_recovers_a_line_and_reports_explained_variance() -> None:
    t = np.linspace(-1, 1, 9)
    direction = np.array([3.0, 4.0, 0.0]) / 5.0
    points = t[:, None] * direction[None, :]
    coords, explained = le.pca_2d(points)
    np.testing.assert_allclose(np.abs(coords[:, 0]), np.abs(t), atol=1e-9)
    np.testing.assert_allclose(coords[:, 1], 0, atol=1e-9)
    assert explained[0] == pytest.approx(1.0)
    fig = fe.pca_figure(coords, explained, [str(i) for i in range(9)], "P")
    np.testing.assert_allclose(fig.data[1].x, coords[:, 0])
    assert "100%" in fig.layout.xaxis.title.text
    assert_validates_unchanged(fig)  # built without validation (spec_figure)
    one = fe.pca_figure(coords, np.array([1.0, np.nan]), ["<b>"] * 9, "P", selected=4)
    assert one.layout.yaxis.title.text == "PC2 (not measurable here)"
    assert_validates_unchanged(one)


def test_cosine_matrix_matches_definition(tiny_trace: Trace) -> None:
    x = tiny_trace["hook_embed"].astype(np.float64)
    sims = le.cosine_matrix(x)
    i, j = 1, 4
    expected = x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
    assert sims[i, j] == pytest.approx(expected)
    np.testing.assert_allclose(np.diag(sims), 1.0)
    fig = fe.cosine_heatmap(sims, tiny_trace.token_strs, "C")
    np.testing.assert_allclose(np.array(fig.data[0].z, dtype=float), sims)
    assert fig.data[0].zmin == -1.0 and fig.data[0].zmax == 1.0


def test_nearest_neighbours_finds_the_closest_rows() -> None:
    table = np.array(
        [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0], [0.7, 0.7]], dtype=np.float32
    )
    ids, sims = le.nearest_neighbours(table, 0, k=3)
    assert list(ids) == [1, 4, 2]
    assert sims[0] == pytest.approx(0.9 / math.hypot(0.9, 0.1))
    ids_valid, _ = le.nearest_neighbours(table, 0, k=3, n_valid=3)
    assert list(ids_valid) == [1, 2]
    fig = fe.neighbours_figure(ids, sims, ["b", "e", "c"], "a")
    np.testing.assert_allclose(fig.data[0].x, sims)
    assert fig.data[0].y[0] == "b (id 1)"
    assert_validates_unchanged(fig)


def _boxes(fig, font_px: float = fe.PCA_FONT_PX) -> list[tuple[float, float, float, float]]:
    """The drawn labels' boxes in the pixels `place_labels` works in (recomputed from the
    figure's own x, y, text and textposition)."""
    trace = fig.data[1]
    x, y = np.asarray(trace.x, float), np.asarray(trace.y, float)
    w, h = fe.PCA_AREA_PX
    px = (x - x.min()) / (x.max() - x.min()) * w
    py = (y - y.min()) / (y.max() - y.min()) * h
    offsets = {place: (dx, dy) for place, dx, dy in fe._LABEL_PLACES}
    out = []
    for i, (text, place) in enumerate(zip(trace.text, trace.textposition, strict=True)):
        if not text:
            continue
        half_w, half_h = common.text_width_px(text, font_px) / 2, 0.6 * font_px
        dx, dy = offsets[place]
        cx = px[i] + dx * (half_w + 7 + fe._GAP_PX / 2)
        cy = py[i] + dy * (half_h + 7 + fe._GAP_PX / 2)
        out.append((cx - half_w, cy - half_h, cx + half_w, cy + half_h))
    return out


def test_pca_labels_never_overlap_and_every_point_keeps_its_label_in_the_hover() -> None:
    """A crowded map (60 tokens, 40 of them in one small cluster): the drawn labels' boxes are
    pairwise disjoint, the selected token's label is drawn, the labels left out are the crowded
    ones, and every point's hover still carries its own label."""
    rng = np.random.default_rng(0)
    coords = np.concatenate([rng.normal(0, 0.02, (40, 2)), rng.uniform(-1, 1, (20, 2))])
    tokens = [f"tok{i}" for i in range(60)]
    fig = fe.pca_figure(coords, np.array([0.6, 0.3]), tokens, "P", selected=5)
    boxes = _boxes(fig)
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            (a0, b0, a1, b1), (c0, d0, c1, d1) = boxes[a], boxes[b]
            assert a1 <= c0 or c1 <= a0 or b1 <= d0 or d1 <= b0, (a, b)
    text = list(fig.data[1].text)
    assert text[5] == fe.token_labels(tokens)[5]
    assert 0 < sum(bool(t) for t in text[:40]) < 40  # the cluster: some drawn, some left out
    assert list(fig.data[1].customdata) == fe.token_labels(tokens)
    assert "%{customdata}" in fig.data[1].hovertemplate


def test_pca_labels_of_well_separated_points_are_all_drawn_inside_the_plot() -> None:
    """Four corners: every label drawn, towards the inside of the plot (the corner places), each
    box inside the plot area."""
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    fig = fe.pca_figure(coords, np.array([0.5, 0.5]), ["a", "b", "c", "d"], "P")
    assert list(fig.data[1].text) == fe.token_labels(["a", "b", "c", "d"])
    places = ["top right", "top left", "bottom right", "bottom left"]
    assert list(fig.data[1].textposition) == places
    w, h = fe.PCA_AREA_PX
    assert all(0 <= x0 and x1 <= w and 0 <= y0 and y1 <= h for x0, y0, x1, y1 in _boxes(fig))


def _reference_placement(x, y, labels, first, area_px, font_px):  # type: ignore[no-untyped-def]
    """The greedy placement `place_labels` documents, box by box in plain Python (the function
    as it was before it was vectorised): the oracle for its result."""
    n, (w_px, h_px) = len(labels), area_px

    def scaled(v: np.ndarray, size: float) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        span = float(v.max() - v.min()) if n else 0.0
        return (v - v.min()) / span * size if span > 0 else np.full(n, size / 2)

    px, py, marker, gap = scaled(x, w_px), scaled(y, h_px), 7.0, fe._GAP_PX
    boxes = [(px[i] - marker, py[i] - marker, px[i] + marker, py[i] + marker) for i in range(n)]
    placed: list[tuple[float, float, float, float]] = []
    text, where = [""] * n, ["top center"] * n

    def free(box: tuple[float, float, float, float], owner: int) -> bool:
        x0, y0, x1, y1 = box
        if x0 < 0 or x1 > w_px or y0 < 0 or y1 > h_px:
            return False
        others = placed + [b for j, b in enumerate(boxes) if j != owner]
        return all(x1 <= a0 or a1 <= x0 or y1 <= b0 or b1 <= y0 for a0, b0, a1, b1 in others)

    order = ([first] if first is not None else []) + [i for i in range(n) if i != first]
    for i in order:
        half_w, half_h = common.text_width_px(labels[i], font_px) / 2, 0.6 * font_px
        for place, dx, dy in fe._LABEL_PLACES:
            cx = px[i] + dx * (half_w + marker + gap / 2)
            cy = py[i] + dy * (half_h + marker + gap / 2)
            box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
            if free(box, i) or (i == first and place == fe._LABEL_PLACES[-1][0]):
                if i == first and not free(box, i):
                    place, cx = fe._LABEL_PLACES[0][0], px[i]
                    cy = py[i] + half_h + marker + gap / 2
                    box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
                placed.append(box)
                text[i], where[i] = labels[i], place
                break
    return text, where


@pytest.mark.parametrize("n", [0, 1, 2, 7, 40, 200])
def test_pca_label_placement_equals_the_box_by_box_greedy_rule(n: int) -> None:
    rng = np.random.default_rng(n)
    words = ["the", " cat", "猫", " sat", "，", " extraordinary", " 你好", "a"]
    for trial in range(6):
        x, y = rng.normal(size=n) * (1 + 9 * (trial % 2)), rng.normal(size=n)
        if trial == 5 and n:
            x[:] = 3.0  # no spread along x
        labels = [str(rng.choice(words)) for _ in range(n)]
        first = int(rng.integers(n)) if n and trial % 3 else None
        area = ((300.0, 200.0), (700.0, 560.0), (1400.0, 560.0))[trial % 3]
        got = fe.place_labels(x, y, labels, first, area_px=area, font_px=16.0)
        assert got == _reference_placement(x, y, labels, first, area, 16.0)


def _point_state(fig) -> tuple[list[str], list[str], list[str]]:  # type: ignore[no-untyped-def]
    """The PCA map's tokens trace: drawn text, marker symbol and hover label of every point."""
    trace = fig.data[1]
    return list(trace.text), list(trace.marker.symbol), list(trace.customdata)


def test_a_repeated_tokens_points_share_one_label_naming_every_position() -> None:
    """Token vectors of a token that occurs twice are one vector: its two points lie on each
    other (PCA leaves them 1e-16 apart), and one label names both positions."""
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1e-17, 1e-17], [1.0, 1.0]])
    tokens = ["␣r", "an", "to", "␣r", "an"]
    assert fe.same_place_groups(coords[:, 0], coords[:, 1]) == [[0, 3], [1], [2], [4]]
    fig = fe.pca_figure(coords, np.array([0.5, 0.5]), tokens, "P", selected=3)
    text, symbols, hover = _point_state(fig)
    assert text == ["", "1:an", "2:to", "0,3:␣r", "4:an"]  # on the selected copy's marker
    assert hover == ["0,3:␣r", "1:an", "2:to", "0,3:␣r", "4:an"]
    assert symbols == ["circle"] * 5 and len(fig.data) == 2  # all labelled: no legend note
    assert not fig.layout.showlegend
    assert_validates_unchanged(fig)


def test_every_point_of_a_crowded_map_is_labelled_or_drawn_hollow_and_counted() -> None:
    rng = np.random.default_rng(0)
    coords = np.concatenate([rng.normal(0, 0.02, (40, 2)), rng.uniform(-1, 1, (20, 2))])
    fig = fe.pca_figure(coords, np.array([0.6, 0.3]), [f"t{i}" for i in range(60)], "P")
    text, symbols, _hover = _point_state(fig)
    hollow = [i for i, s in enumerate(symbols) if s == "circle-open"]
    assert hollow == [i for i, t in enumerate(text) if not t]  # hollow exactly where unlabelled
    assert 0 < len(hollow) < 40
    note = fig.data[2]
    assert note.name == f"hollow: no room for its label ({len(hollow)} of 60 tokens); hover it"
    assert note.marker.symbol == "circle-open" and list(note.x) == [None]
    assert fig.layout.showlegend and not fig.data[0].showlegend and not fig.data[1].showlegend
    assert_validates_unchanged(fig)


@pytest.mark.parametrize("source", le.SOURCES)
def test_the_bundled_models_map_of_the_repeated_line_labels_or_marks_every_token(
    source: str,
) -> None:
    """The lecture preset's repeated line on the bundled model, in the plot area of the page at
    1024 px: the tokens of the "token" map lie on their twins and are labelled once each
    with both positions; every unlabelled point is hollow, and the legend counts them."""
    from engine.capture import run_with_trace
    from engine.checkpoints import load

    loaded = load("bundled")
    line = "The little dog ran to the river and drank some cold water."
    trace = run_with_trace(loaded.model, loaded.tokenizer, f"{line}\n{line}")
    coords, explained = le.pca_2d(le.embedding_vectors(trace, source))
    fig = fe.pca_figure(
        coords, explained, trace.token_strs, "P", 33, area_px=fe.PCA_PAGE_PX, font_px=16
    )
    text, symbols, hover = _point_state(fig)
    groups = fe.same_place_groups(coords[:, 0], coords[:, 1])
    ids = trace.token_ids.tolist()
    if source == "token":  # a vector per token id: the second line lies on the first
        by_id: dict[int, list[int]] = {}
        for i, token_id in enumerate(ids):
            by_id.setdefault(token_id, []).append(i)
        assert groups == list(by_id.values())  # "␣r" four times; 16:".↵" and 33:"." differ
        assert hover[1] == hover[18] == "1,18:␣little"
    else:  # positions make every vector its own
        assert len(groups) == 34
    labelled = {i for g in groups if any(text[j] for j in g) for i in g}
    assert sum(bool(t) for t in text) == len({min(g) for g in groups if labelled & set(g)})
    hollow = [i for i, s in enumerate(symbols) if s == "circle-open"]
    assert hollow == sorted(set(range(34)) - labelled)
    assert text[33] == hover[33] and "33:." in text[33]  # the selected token is labelled
    if hollow:
        assert f"({len(hollow)} of 34 tokens)" in fig.data[2].name
    assert_validates_unchanged(fig)


def test_a_labels_box_is_as_wide_as_the_text_plotly_draws_not_its_html_entities() -> None:
    """Labels are plotly-safe (`plotly_text`: "<E4>" written "&lt;E4&gt;"); their boxes are
    measured as plotly draws them (`common.text_width_px` decodes the entities): "5:<E4>" is
    six characters wide, not the eleven of its escaped form."""
    labels = [common.plotly_text("5:<E4>"), "3:␣the", "4:猫"]
    (x0, _y0, x1, _y1), _ok = fe.label_candidates(
        np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 0.5]), labels, font_px=14.0
    )
    widths = (x1 - x0)[:, 0]
    np.testing.assert_allclose(widths, [14 * 0.6 * 6, 14 * 0.6 * 6, 14 * (1 + 0.6 * 2)])
