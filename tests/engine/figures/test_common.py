"""engine.figures.common: escaping, labels, windows and the shared heatmap."""

from __future__ import annotations

import numpy as np

from engine.figures import common


def test_plotly_text_escapes_html_and_guards_latex() -> None:
    assert common.plotly_text("<E4>") == "&lt;E4&gt;"
    assert common.plotly_text("a&b") == "a&amp;b"
    assert common.plotly_text("$x$") == "\u200b$x$"
    assert common.plotly_text("␣the") == "␣the"


def test_token_labels_are_unique_and_safe() -> None:
    labels = common.token_labels(["a", "a", "<br>"])
    assert labels == ["0:a", "1:a", "2:&lt;br&gt;"]
    assert len(set(labels)) == 3
    assert common.token_labels(["x", "y", "z"], 1, 3) == ["1:y", "2:z"]


def test_window_is_clamped_and_at_most_max_axis() -> None:
    assert common.window(10, 5, size=4) == slice(5, 9)
    assert common.window(10, 9, size=4) == slice(6, 10)
    assert common.window(10, -3, size=4) == slice(0, 4)
    assert common.window(3, 2, size=4) == slice(0, 3)
    assert common.window(1000, 0) == slice(0, common.MAX_AXIS)


def test_heatmap_turns_masked_scores_into_none() -> None:
    z = np.array([[1.0, -np.inf], [0.5, 2.0]])
    fig = common.heatmap(
        z, ["a", "b"], ["c", "d"], "t", signed=True, x_title="", y_title="", hovertemplate=""
    )
    assert fig.data[0].z[0][1] is None
    assert fig.data[0].z[1][1] == 2.0
    assert fig.data[0].zmin == -2.0 and fig.data[0].zmax == 2.0
