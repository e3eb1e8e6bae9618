"""engine.dropout_demo: seeded dropout passes and the average over many masks."""

from __future__ import annotations

import numpy as np
import pytest

from engine.checkpoints import LoadedModel
from engine.dropout_demo import (
    causal_cells,
    check_p,
    dropout_pass,
    kept_mask,
    layer_mask_stats,
    mask_average,
)
from engine.trace import Trace


def test_a_dropout_pass_is_reproducible_for_a_seed_and_rescales_survivors(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    ids = tiny_trace.token_ids.tolist()
    p = 0.5
    a = dropout_pass(tiny_loaded.model, tiny_loaded.tokenizer, ids, p, seed=3)
    b = dropout_pass(tiny_loaded.model, tiny_loaded.tokenizer, ids, p, seed=3)
    c = dropout_pass(tiny_loaded.model, tiny_loaded.tokenizer, ids, p, seed=4)
    dropped_a = a.get("attn.hook_pattern_dropped", 1)
    np.testing.assert_array_equal(dropped_a, b.get("attn.hook_pattern_dropped", 1))
    assert not np.array_equal(dropped_a, c.get("attn.hook_pattern_dropped", 1))
    before = a.get("attn.hook_pattern", 1)
    kept = kept_mask(before, dropped_a)
    np.testing.assert_allclose(dropped_a, before * kept / (1 - p), rtol=1e-5, atol=1e-7)
    cells = np.broadcast_to(causal_cells(a.n_tokens), before.shape)
    share_dropped = 1 - kept[cells].mean()
    assert 0.35 < share_dropped < 0.65
    # the shared model is still in evaluation mode and its plain pass is unchanged
    assert not tiny_loaded.model.training
    again = dropout_pass(tiny_loaded.model, tiny_loaded.tokenizer, ids, 0.1, seed=0)
    assert again.dropout_p == pytest.approx(0.1)


def test_layer_mask_stats_count_the_cells_the_mask_dropped() -> None:
    # one head, 3 tokens: 6 causal cells, of which the mask dropped (1, 0) and (2, 2)
    before = np.array([[[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]]])
    after = np.array([[[2.0, 0, 0], [0.0, 1.0, 0], [0.4, 0.6, 0.0]]])
    stats = layer_mask_stats(before, after)
    assert stats.cells == 6
    assert stats.share_dropped == pytest.approx(2 / 6)
    assert stats.survivor_ratio == pytest.approx(2.0)  # 1 / (1 - p) at p = 0.5
    assert (stats.row_sum_min, stats.row_sum_max) == (pytest.approx(1.0), pytest.approx(2.0))
    # nothing kept: no ratio to report (the page says "none kept")
    assert layer_mask_stats(before, np.zeros_like(before)).survivor_ratio is None


def test_the_dropout_probability_is_checked() -> None:
    for bad in (0.0, -0.1, 0.95, 1.0):
        with pytest.raises(ValueError, match="dropout probability"):
            check_p(bad)


def test_the_average_of_many_inverted_masks_approaches_the_evaluation_output(
    tiny_trace: Trace,
) -> None:
    x = tiny_trace.get("attn.hook_pattern", 0)[1]
    cells = causal_cells(x.shape[0])
    avg = mask_average(x, 0.3, 400, seed=0, where=cells)
    assert avg.err_inverted[-1] < 0.25 * avg.err_inverted[0]
    assert avg.err_plain_scaled[-1] < 0.25 * avg.err_plain_scaled[0]
    # unscaled masks average to (1 - p) x, so they stay p * mean|x| away from x
    assert avg.err_plain[-1] == pytest.approx(0.3 * np.abs(x[cells]).mean(), rel=0.15)
    np.testing.assert_allclose(avg.avg_inverted, avg.avg_plain / 0.7)
    again = mask_average(x, 0.3, 400, seed=0, where=cells)
    np.testing.assert_array_equal(avg.err_inverted, again.err_inverted)


def test_a_dropout_pass_of_one_layer_keeps_its_patterns_and_the_logits_bitwise(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    """What the Dropout page reads, from the same pass (the same masks), and nothing else."""
    ids = tiny_trace.token_ids.tolist()
    full = dropout_pass(tiny_loaded.model, tiny_loaded.tokenizer, ids, 0.3, seed=5)
    one = dropout_pass(tiny_loaded.model, tiny_loaded.tokenizer, ids, 0.3, seed=5, layers=[1])
    names = ["blocks.1.attn.hook_pattern", "blocks.1.attn.hook_pattern_dropped", "logits"]
    assert sorted(one.acts) == sorted(names)
    for name in names:
        assert np.array_equal(one[name], full[name]), name
    assert one.dropout_p == full.dropout_p == pytest.approx(0.3)
    assert one.nbytes() == sum(full[n].nbytes for n in names) + one.token_ids.nbytes
    with pytest.raises(ValueError, match="not an activation"):
        dropout_pass(tiny_loaded.model, tiny_loaded.tokenizer, ids, 0.3, seed=5, layers=[2])
