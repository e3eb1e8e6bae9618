"""engine.figures.learning: the loss and head-score figures carry the arrays they are given,
mark the phase change and the chosen step, and make the chosen head stand out."""

from __future__ import annotations

import numpy as np

from engine.figures.learning import head_score_curves, loss_curves
from tests.support import assert_validates_unchanged


def test_loss_curves_draw_each_language_and_its_estimate() -> None:
    steps, est = np.array([0.0, 100, 200]), np.array([50.0, 150])
    loss = {"en": np.array([9.0, 5.0, 4.0]), "zh": np.array([8.0, 3.0, 2.0])}
    val = {"en": np.array([6.0, 4.5])}
    fig = loss_curves(steps, loss, est, val, {"en": "English"}, "t", band=(100, 150), step=200)
    names = [t.name for t in fig.data]
    assert names == [
        "English: snapshot evaluation",
        "English: estimate during training",
        "zh: snapshot evaluation",
    ]
    np.testing.assert_array_equal(fig.data[0].y, loss["en"])
    np.testing.assert_array_equal(fig.data[1].x, est)
    shapes = fig.layout.shapes
    assert (shapes[0].x0, shapes[0].x1) == (100, 150)
    assert shapes[-1].x0 == shapes[-1].x1 == 200  # the chosen step's line
    assert_validates_unchanged(fig)  # built without validation (spec_figure)


def test_head_score_curves_one_line_per_head_per_panel_the_chosen_one_thick() -> None:
    steps = np.array([0.0, 1, 2])
    a = np.random.default_rng(0).random((3, 2, 3))
    b = np.random.default_rng(1).random((3, 2, 3))
    fig = head_score_curves(steps, [("A", a), ("B", b)], (1, 2), "t", band=(1, 2), step=None)
    assert len(fig.data) == 2 * 2 * 3
    chosen = [t for t in fig.data if t.line.width == 4]
    assert [t.name for t in chosen] == ["head 1.2", "head 1.2"]
    np.testing.assert_array_equal(chosen[0].y, a[:, 1, 2])
    np.testing.assert_array_equal(chosen[1].y, b[:, 1, 2])
    assert sum(t.showlegend for t in fig.data) == 6  # one legend entry per head


def test_head_score_curves_built_without_validation_is_what_plotly_validates() -> None:
    steps = np.array([0.0, 100, 200])
    scores = np.random.default_rng(2).random((3, 2, 2))
    for band, step in (((100, 150), 200), (None, None)):
        fig = head_score_curves(
            steps, [("A", scores), ("B", scores)], (0, 1), "t", band=band, step=step
        )
        assert_validates_unchanged(fig)
    assert fig.layout.xaxis2.title.text == "training step"  # the bottom panel's axis
    assert list(fig.layout.yaxis.range) == [0, 1.02]
