"""engine.figures.layer_norm: token statistics, feature steps, gamma/beta, scale growth and
the article's whole-tensor normalisation, on their data; sizes at GPT-2's shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel, load
from engine.figures import layer_norm as fln
from engine.figures import residual as fres
from engine.figures.common import BODY_PX, readable
from engine.lens import layer_norm as lln
from engine.lens import residual as lres
from engine.lens.layer_norm import all_ln_stats, ln_input, ln_stats
from engine.lens.residual import residual_norms
from engine.trace import Trace
from tests.support import (
    GPT2_SHAPE,
    assert_validates_unchanged,
    labels_of,
    synthetic_trace,
    values,
)


def test_token_stats_figure_draws_numpys_mean_and_std(tiny_trace: Trace) -> None:
    stats = ln_stats(tiny_trace, "ln2", 1)
    fig = fln.token_stats_figure(stats, tiny_trace.token_strs, "ln_2 of layer 1")
    x = tiny_trace.get("hook_resid_mid", 1).astype(np.float64)
    np.testing.assert_allclose(fig.data[0].y, x.mean(-1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fig.data[1].y, x.std(-1), rtol=1e-6)
    assert list(fig.data[0].x) == labels_of(tiny_trace)
    assert_validates_unchanged(fig)  # built without validation (spec_figure)
    assert_validates_unchanged(fln.token_stats_figure(stats, tiny_trace.token_strs, "t", start=3))


def test_feature_steps_end_at_what_the_models_layer_norm_computes(
    tiny_trace: Trace, tiny_loaded: LoadedModel
) -> None:
    ln = tiny_loaded.model.transformer.h[1].ln_1
    gamma, beta = ln.weight.detach().numpy(), ln.bias.detach().numpy()
    x = tiny_trace.get("hook_resid_pre", 1)[4]
    normalized = tiny_trace.get("ln1.hook_normalized", 1)[4]
    fig = fln.feature_steps_figure(x, normalized, lln.ln_affine(normalized, gamma, beta), "t")
    expected = torch.nn.functional.layer_norm(
        torch.from_numpy(x.copy()), (x.size,), ln.weight, ln.bias, ln.eps
    ).detach()
    np.testing.assert_allclose(fig.data[2].y, expected.numpy(), atol=2e-5)
    np.testing.assert_allclose(fig.data[0].y, x)
    np.testing.assert_array_equal(fig.data[1].x, np.arange(x.size))
    # eps keeps the std just under 1 when the residual is small (a random model's is)
    assert f"std {normalized.astype(np.float64).std():.3f}" in fig.layout.annotations[1].text
    assert normalized.std() == pytest.approx(1.0, abs=0.01)
    assert_validates_unchanged(fig)


def test_gamma_beta_figure_draws_the_learned_parameters() -> None:
    gamma, beta = np.array([1.0, 0.5, 2.0]), np.array([0.0, -0.1, 0.3])
    fig = fln.gamma_beta_figure(gamma, beta, "ln")
    np.testing.assert_array_equal(fig.data[0].y, gamma)
    np.testing.assert_array_equal(fig.data[1].y, beta)
    assert_validates_unchanged(fig)


def test_scale_growth_follows_every_layer_norm_in_forward_order(tiny_trace: Trace) -> None:
    stats = all_ln_stats(tiny_trace)
    fig = fln.scale_growth_figure(stats, 2, tiny_trace.token_strs[2], highlight="1·ln_2")
    assert list(fig.data[2].x) == ["0·ln_1", "0·ln_2", "1·ln_1", "1·ln_2", "ln_f"]
    np.testing.assert_allclose(fig.data[2].y, [np.median(s.std) for s in stats])
    np.testing.assert_allclose(fig.data[3].y, [s.std[2] for s in stats])
    final = tiny_trace.get("hook_resid_post", 1).astype(np.float64)
    assert fig.data[3].y[-1] == pytest.approx(final[2].std())
    assert_validates_unchanged(fig)  # with the highlight's line, and without
    assert fig.layout.shapes[0].x0 == 3
    assert_validates_unchanged(fln.scale_growth_figure(stats, 0, "<b>", highlight=None))


@pytest.mark.parametrize(
    "text",
    [
        "The little dog ran to the river and drank some cold water.\n"
        "The little dog ran to the river and drank some cold water.",
        "我们在学习大型语言模型是如何理解文字的。\n我们在学习大型语言模型是如何理解文字的。",
        "Friends, Romans, countrymen, lend me your ears; I come to bury Caesar, not to praise him.",
    ],
    ids=["repeated line", "Chinese", "Caesar"],
)
def test_scale_growth_log_axis_has_a_label_below_and_above_every_point_of_the_bundled_model(
    text: str,
) -> None:
    """The growth chart as a page draws it (`readable`): on the bundled model the smallest std
    entering a LayerNorm is about 0.2, which used to lie under the lowest label (0.5)."""
    loaded = load("bundled")
    trace = run_with_trace(loaded.model, loaded.tokenizer, text)
    stats = all_ln_stats(trace)
    fig = readable(fln.scale_growth_figure(stats, 1, trace.token_strs[1]), width_px=BODY_PX)
    stds = np.stack([s.std for s in stats])
    drawn = np.concatenate([values(t.to_plotly_json()["y"]) for t in fig.data])
    assert drawn.min() == pytest.approx(stds.min()) and drawn.max() == pytest.approx(stds.max())
    axis = fig.layout.yaxis
    ticks = [float(v) for v in axis.tickvals]
    assert [float(t) for t in axis.ticktext] == ticks
    assert ticks[0] <= drawn.min() < ticks[1] and ticks[-2] < drawn.max() <= ticks[-1]
    low, high = axis.range  # log10 units: the outer ticks are inside what plotly draws
    assert low < np.log10(ticks[0]) and np.log10(ticks[-1]) < high
    assert_validates_unchanged(fig)


def test_article_normalises_the_whole_tensor_so_tokens_keep_different_scales(
    tiny_trace: Trace,
) -> None:
    x = tiny_trace.get("hook_resid_mid", 1)
    article = lln.article_normalize(x)
    assert article.mean() == pytest.approx(0.0, abs=1e-9)
    assert article.std(ddof=1) == pytest.approx(1.0, rel=1e-4)
    gpt = lln.gpt_normalize(x, tiny_trace.config.layer_norm_eps)
    fig = fln.article_vs_gpt_figure(gpt, article, tiny_trace.token_strs)
    gpt_std, article_std = np.array(fig.data[2].y), np.array(fig.data[3].y)
    var = x.astype(np.float64).var(-1)
    eps = tiny_trace.config.layer_norm_eps
    np.testing.assert_allclose(gpt_std, np.sqrt(var / (var + eps)), rtol=1e-6)  # 1 up to eps
    assert gpt_std.min() > 0.95
    np.testing.assert_allclose(article_std, article.std(-1))
    assert article_std.max() / article_std.min() > 1.5  # scales differ token by token
    assert_validates_unchanged(fig)


def test_layer_norm_and_residual_figures_stay_small_for_gpt2_at_256_tokens() -> None:
    sites = (
        "hook_embed",
        "hook_pos_embed",
        "hook_resid_pre",
        "hook_resid_mid",
        "hook_resid_post",
        "hook_attn_out",
        "hook_mlp_out",
        "ln1.hook_scale",
        "ln2.hook_scale",
    )
    trace = synthetic_trace(256, GPT2_SHAPE, sites)
    stats = all_ln_stats(trace)
    x = ln_input(trace, "ln2", 11)
    cos = lres.cosine_to_final(trace)
    figures = (
        fln.token_stats_figure(stats[5], trace.token_strs, "t"),
        fln.scale_growth_figure(stats, 255, "t"),
        fln.article_vs_gpt_figure(
            lln.gpt_normalize(x, 1e-5), lln.article_normalize(x), trace.token_strs
        ),
        fres.norms_heatmap(residual_norms(trace), trace.token_strs, log=True),
        fres.cosine_heatmap(cos, trace.token_strs),
        fres.cosine_figure(cos, 255, "t"),
        fres.contributions_figure(lres.contributions(trace, 255), 255, "t"),
    )
    for figure in figures:
        assert len(figure.to_json()) < 2_000_000
    assert len(figures[3].data[0].x) == 256
