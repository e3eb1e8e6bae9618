"""engine.figures.feed_forward: neuron heatmaps, histograms, activation curves and MLP norms
equal the Trace's values; long texts are windowed."""

from __future__ import annotations

import numpy as np
import pytest

from engine.figures import feed_forward as ff
from engine.figures.common import MAX_AXIS
from engine.lens import feed_forward as lff
from engine.trace import Trace
from tests.support import GPT2_SHAPE, assert_validates_unchanged, labels_of, synthetic_trace


def test_neuron_heatmap_shows_the_most_active_units_on_every_token(tiny_trace: Trace) -> None:
    post = tiny_trace.get("mlp.hook_post", 1)
    ids = lff.top_neurons(post, 10)
    peaks = post.max(axis=0)
    assert peaks[ids[0]] == peaks.max()
    assert np.all(np.diff(peaks[ids]) <= 0)
    assert set(np.flatnonzero(peaks > peaks[ids[-1]])) <= set(ids.tolist())
    fig = ff.neurons_heatmap(post, ids, tiny_trace.token_strs, 1)
    np.testing.assert_allclose(np.array(fig.data[0].z), post[:, ids].T, rtol=1e-6)
    assert list(fig.data[0].x) == labels_of(tiny_trace)
    assert list(fig.data[0].y) == [f"unit {i}" for i in ids]
    assert "Layer 1" in fig.layout.title.text
    assert_validates_unchanged(fig)  # built without validation (spec_figure)
    assert_validates_unchanged(
        ff.neurons_heatmap(-np.abs(post), ids[:3], tiny_trace.token_strs, 1, 2, "selective")
    )


def test_the_neuron_colour_scale_is_white_at_zero() -> None:
    scale = ff.zero_white_scale(-0.17, 0.51)
    assert scale[1] == [pytest.approx(0.25), "#f7f7f7"]
    assert ff.zero_white_scale(0.0, 2.0)[0] == [0.0, "#f7f7f7"]


def test_hidden_histogram_holds_the_selected_tokens_units(tiny_trace: Trace) -> None:
    fig = ff.hidden_histogram(
        tiny_trace.get("mlp.hook_pre", 0)[3],
        tiny_trace.get("mlp.hook_post", 0)[3],
        tiny_trace.token_strs[3],
        0,
        3,
    )
    np.testing.assert_allclose(fig.data[0].x, tiny_trace.get("mlp.hook_pre", 0)[3], rtol=1e-6)
    np.testing.assert_allclose(fig.data[1].x, tiny_trace.get("mlp.hook_post", 0)[3], rtol=1e-6)
    assert tiny_trace.token_strs[3] in fig.layout.title.text
    assert_validates_unchanged(fig)


def test_activation_curves_overlay_this_tokens_pre_activations(tiny_trace: Trace) -> None:
    fig = ff.activation_functions(tiny_trace.get("mlp.hook_pre", 1), 2)
    names = [d.name for d in fig.data]
    assert names[:3] == ["GELU (GPT-2)", "tanh (the article)", "ReLU"]
    xs = np.array(fig.data[1].x)
    np.testing.assert_allclose(fig.data[1].y, np.tanh(xs))
    np.testing.assert_allclose(fig.data[2].y, np.maximum(xs, 0))
    pre = tiny_trace.get("mlp.hook_pre", 1)[2]
    np.testing.assert_allclose(fig.data[3].x, pre, rtol=1e-6)
    np.testing.assert_allclose(fig.data[3].y, tiny_trace.get("mlp.hook_post", 1)[2], atol=1e-5)
    assert xs.min() <= tiny_trace.get("mlp.hook_pre", 1).min()
    assert_validates_unchanged(fig)


def test_mlp_norm_heatmap_is_the_norm_of_each_layers_mlp_output(tiny_trace: Trace) -> None:
    fig = ff.mlp_norms_heatmap(lff.mlp_out_norms(tiny_trace), tiny_trace.token_strs)
    expected = [
        np.linalg.norm(tiny_trace.get("hook_mlp_out", i), axis=-1)
        for i in range(tiny_trace.config.n_layer)
    ]
    np.testing.assert_allclose(np.array(fig.data[0].z), expected, rtol=1e-5)
    assert list(fig.data[0].y) == ["layer 0", "layer 1"]
    assert_validates_unchanged(fig)
    assert isinstance(fig.data[0].colorscale[0][1], str)  # the resolved list, not "Blues"


def test_article_vs_gpt_passes_the_same_inputs_through_tanh_and_gelu(tiny_trace: Trace) -> None:
    pre = tiny_trace.get("mlp.hook_pre", 0)[1].astype(np.float64)
    fig = ff.article_vs_gpt(tiny_trace.get("mlp.hook_pre", 0)[1], 0, 1)
    np.testing.assert_allclose(fig.data[0].x, np.tanh(pre))
    np.testing.assert_allclose(fig.data[1].x, lff.gelu(pre))
    assert_validates_unchanged(fig)
    summary = lff.activation_summary(pre)
    assert summary["share negative (GELU ≈ 0)"] == pytest.approx((pre < 0).mean())
    assert summary["largest tanh output"] < 1.0


def test_feed_forward_figures_window_a_long_text_and_stay_small() -> None:
    sites = ("mlp.hook_pre", "mlp.hook_post", "hook_mlp_out")
    trace = synthetic_trace(300, GPT2_SHAPE, sites)
    post = trace.get("mlp.hook_post", 3)
    fig = ff.neurons_heatmap(post, lff.top_neurons(post), trace.token_strs, 3, start=40)
    assert len(fig.data[0].x) == MAX_AXIS
    assert fig.data[0].x[0] == "40:t5"
    np.testing.assert_allclose(
        np.array(fig.data[0].z)[:, 0],
        trace.get("mlp.hook_post", 3)[40, lff.top_neurons(trace.get("mlp.hook_post", 3))],
        rtol=1e-6,
    )
    long = synthetic_trace(256, GPT2_SHAPE, sites)
    pre, post = long.get("mlp.hook_pre", 0), long.get("mlp.hook_post", 0)
    for figure in (
        ff.neurons_heatmap(post, lff.top_neurons(post), long.token_strs, 0),
        ff.hidden_histogram(pre[255], post[255], long.token_strs[255], 0, 255),
        ff.activation_functions(pre, 255),
        ff.mlp_norms_heatmap(lff.mlp_out_norms(long), long.token_strs),
    ):
        assert len(figure.to_json()) < 2_000_000
