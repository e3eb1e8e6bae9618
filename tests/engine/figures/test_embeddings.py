"""engine.figures.embeddings: embedding heatmaps, PCA, cosine maps and neighbours, on their data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.figures import common
from engine.figures import embeddings as fe
from engine.lens import embeddings as le
from engine.trace import Trace


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
