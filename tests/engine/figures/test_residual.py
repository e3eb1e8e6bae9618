"""engine.figures.residual: norms, contributions and cosines drawn equal the stored residuals."""

from __future__ import annotations

import numpy as np
import pytest

from engine.figures import residual as fres
from engine.lens import residual as lres
from engine.lens.residual import residual_norms
from engine.trace import Trace
from tests.support import assert_validates_unchanged


def test_the_parts_written_into_the_stream_add_up_to_the_final_residual(
    tiny_trace: Trace,
) -> None:
    pos = 5
    c = lres.contributions(tiny_trace, pos)
    final = tiny_trace.get("hook_resid_post", 1)[pos]
    parts = [tiny_trace["hook_embed"][pos], tiny_trace["hook_pos_embed"][pos]]
    parts += [
        tiny_trace.get(s, i)[pos] for i in range(2) for s in ("hook_attn_out", "hook_mlp_out")
    ]
    np.testing.assert_allclose(np.sum(parts, axis=0), final, atol=1e-4)  # what the parts are
    np.testing.assert_allclose(c.sizes, np.linalg.norm(parts, axis=-1), rtol=1e-6)
    assert c.final_norm == pytest.approx(np.linalg.norm(final), rel=1e-6)
    assert c.along_final.sum() == pytest.approx(c.final_norm, rel=1e-4)
    assert c.names[:4] == ("token embedding", "position embedding", "attention 0", "MLP 0")
    np.testing.assert_allclose(
        c.sizes[2], np.linalg.norm(tiny_trace.get("hook_attn_out", 0)[pos]), rtol=1e-5
    )
    fig = fres.contributions_figure(c, pos, tiny_trace.token_strs[pos])
    np.testing.assert_allclose(fig.data[0].x, c.sizes)
    np.testing.assert_allclose(fig.data[1].x, c.along_final)
    assert_validates_unchanged(fig)  # built without validation (spec_figure)


def test_the_log_colour_norm_heatmap_keeps_the_sizes_in_its_hover(tiny_trace: Trace) -> None:
    fig = fres.norms_heatmap(residual_norms(tiny_trace), tiny_trace.token_strs, log=True)
    norms = residual_norms(tiny_trace)
    np.testing.assert_allclose(np.array(fig.data[0].z), np.log10(norms), rtol=1e-6)
    np.testing.assert_allclose(np.array(fig.data[0].customdata), norms, rtol=1e-6)
    assert fig.data[0].zmin is None  # the log colour starts at its data's minimum
    assert_validates_unchanged(fig)


def test_residual_norm_heatmap_equals_the_stored_residuals_norms(tiny_trace: Trace) -> None:
    fig = fres.norms_heatmap(residual_norms(tiny_trace), tiny_trace.token_strs)
    expected = [np.linalg.norm(tiny_trace.get("hook_resid_pre", 0), axis=-1)] + [
        np.linalg.norm(tiny_trace.get("hook_resid_post", i), axis=-1) for i in range(2)
    ]
    np.testing.assert_allclose(np.array(fig.data[0].z), expected, rtol=1e-5)
    np.testing.assert_allclose(residual_norms(tiny_trace), expected, rtol=1e-5)
    assert list(fig.data[0].y) == ["after embeddings", "after block 0", "after block 1"]
    assert_validates_unchanged(fig)


def test_cosine_to_final_is_one_on_the_last_row(tiny_trace: Trace) -> None:
    cos = lres.cosine_to_final(tiny_trace)
    np.testing.assert_allclose(cos[-1], 1.0, atol=1e-6)
    a = tiny_trace.get("hook_resid_pre", 0)[3].astype(np.float64)
    b = tiny_trace.get("hook_resid_post", 1)[3].astype(np.float64)
    assert cos[0, 3] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-5)
    fig = fres.cosine_figure(cos, 3, tiny_trace.token_strs[3])
    np.testing.assert_allclose(fig.data[1].y, cos[:, 3])
    np.testing.assert_allclose(fig.data[0].y, cos.mean(1))
    assert_validates_unchanged(fig)
    heat = fres.cosine_heatmap(cos, tiny_trace.token_strs, start=2)
    np.testing.assert_allclose(np.array(heat.data[0].z), cos)
    assert_validates_unchanged(heat)
