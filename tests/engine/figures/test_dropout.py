"""engine.figures.dropout: the three patterns and the convergence of the mask average, windowed."""

from __future__ import annotations

import numpy as np

from engine.checkpoints import LoadedModel
from engine.dropout_demo import (
    causal_cells,
    dropout_pass,
    kept_mask,
    mask_average,
)
from engine.figures import dropout as fdrop
from engine.trace import Trace
from tests.support import assert_validates_unchanged, labels_of


def test_dropout_figures_draw_the_patterns_and_the_convergence(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    p, head, layer, pos = 0.4, 1, 0, 6
    d = dropout_pass(
        tiny_loaded.model, tiny_loaded.tokenizer, tiny_trace.token_ids.tolist(), p, seed=1
    )
    ev = tiny_trace.get("attn.hook_pattern", layer)[head]
    before = d.get("attn.hook_pattern", layer)[head]
    after = d.get("attn.hook_pattern_dropped", layer)[head]
    fig = fdrop.patterns_figure(tiny_trace.token_strs, ev, before, after, p)
    for trace_i, z in enumerate((ev, before, after)):
        np.testing.assert_allclose(np.array(fig.data[trace_i].z), np.round(z, 4))
    assert list(fig.data[0].x) == labels_of(tiny_trace)
    assert "1.67" in fig.layout.annotations[2].text
    row = fdrop.query_row_figure(tiny_trace.token_strs, pos, ev[pos], before[pos], after[pos], p)
    np.testing.assert_allclose(row.data[2].y, np.round(after[pos, : pos + 1], 4))
    n_dropped = int((~kept_mask(before[pos, : pos + 1], after[pos, : pos + 1])).sum())
    assert (len(row.data[3].x) if len(row.data) > 3 else 0) == n_dropped
    avg = mask_average(ev, p, 50, seed=0, where=causal_cells(ev.shape[0]))
    conv = fdrop.convergence_figure(avg)
    np.testing.assert_allclose(conv.data[0].y, avg.err_inverted)
    assert list(conv.data[0].x) == list(range(1, 51))
    bars = fdrop.average_row_figure(tiny_trace.token_strs, pos, ev[pos], avg)
    np.testing.assert_allclose(bars.data[3].y, np.round((1 - p) * ev[pos, : pos + 1], 4))
    for built in (fig, row, conv, bars):  # built without validation (spec_figure)
        assert_validates_unchanged(built)
    kept = fdrop.query_row_figure(tiny_trace.token_strs, pos, ev[pos], ev[pos], ev[pos], p)
    assert len(kept.data) == 3  # nothing dropped: no marks
    assert_validates_unchanged(kept)


def test_dropout_panels_window_a_long_text() -> None:
    T = 300
    z = np.tril(np.full((T, T), 0.5))
    labels = tuple(f"w{i}" for i in range(T))
    fig = fdrop.patterns_figure(labels, z, z, z * 2, 0.5, start=100)
    assert len(fig.data[0].x) == fdrop.PANEL_AXIS
    assert fig.data[0].x[0] == "100:w100"
    assert len(fig.to_json()) < 2_000_000
