"""Figure builders and numbers of stages 4-9: every drawn value equals the Trace's (or the
engine's) value, labels are the text's tokens, long texts are windowed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.checkpoints import LoadedModel
from engine.config import GPTConfig
from engine.dropout_demo import (
    causal_cells,
    check_p,
    dropout_pass,
    kept_mask,
    mask_average,
)
from engine.figures import dropout as fdrop
from engine.figures import feed_forward as ff
from engine.figures import layer_norm as fln
from engine.figures import output as fout
from engine.figures import residual as fres
from engine.figures.common import MAX_AXIS, plotly_text, unique_labels
from engine.figures.output import cell_word
from engine.lens import feed_forward as lff
from engine.lens import layer_norm as lln
from engine.lens import residual as lres
from engine.lens.layer_norm import all_ln_stats, ln_input, ln_stats
from engine.lens.logit_lens import final_probs, lens_distribution, logit_lens
from engine.lens.residual import residual_norms
from engine.sampling import SamplingSettings, next_token_distribution, sample_next
from engine.trace import Trace
from ui.text import markdown_literal


def labels_of(trace: Trace, lo: int = 0, hi: int | None = None) -> list[str]:
    return [plotly_text(s) for s in unique_labels(trace.token_strs)][lo:hi]


def synthetic_trace(T: int, config: GPTConfig, sites: tuple[str, ...], seed: int = 0) -> Trace:
    """A Trace of random arrays with the real shapes (only for layout and size checks)."""
    rng = np.random.default_rng(seed)
    shapes = {
        "hook_embed": (T, config.d_model),
        "hook_pos_embed": (T, config.d_model),
        "hook_resid_pre": (T, config.d_model),
        "hook_resid_mid": (T, config.d_model),
        "hook_resid_post": (T, config.d_model),
        "hook_attn_out": (T, config.d_model),
        "hook_mlp_out": (T, config.d_model),
        "mlp.hook_pre": (T, config.d_mlp),
        "mlp.hook_post": (T, config.d_mlp),
        "ln1.hook_scale": (T, 1),
        "ln2.hook_scale": (T, 1),
    }
    acts = {"logits": rng.standard_normal((T, config.vocab_size)).astype(np.float32)}
    for layer in range(config.n_layer):
        for site in sites:
            if site.startswith("hook_") and "embed" in site:
                continue
            acts[f"blocks.{layer}.{site}"] = rng.standard_normal(shapes[site]).astype(np.float32)
    for name in ("hook_embed", "hook_pos_embed"):
        if name in sites:
            acts[name] = rng.standard_normal(shapes[name]).astype(np.float32)
    if "ln1.hook_scale" in sites:
        acts["ln_final.hook_scale"] = rng.standard_normal((T, 1)).astype(np.float32)
    return Trace(
        prompt="x" * T,
        token_ids=np.arange(T) % 200,
        token_strs=tuple(f"t{i % 7}" for i in range(T)),
        config=config,
        acts=acts,
    )


GPT2_SHAPE = GPTConfig(n_layer=12, n_head=12, d_model=768, n_ctx=1024, vocab_size=1000)


# --- shared helpers ----------------------------------------------------------------------------


def test_markdown_literal_shows_tokens_as_typed() -> None:
    assert markdown_literal("*_$x$_*") == "\\*\\_\\$x\\$\\_\\*"
    assert markdown_literal("<b>") == "\\<b\\>"
    assert markdown_literal("你好") == "你好"


def test_markdown_literal_escapes_both_former_sets_and_line_starts() -> None:
    # the union of app._md's and figures.common's sets: inline markup always ...
    assert markdown_literal(":red[x] &amp; {a}(b)!|~`") == (
        "\\:red\\[x\\] \\&amp; \\{a\\}\\(b\\)\\!\\|\\~\\`"
    )
    # ... and lists and headings only where a line starts (a value is quoted mid-sentence)
    assert markdown_literal("-3 ../x #1 +2") == "-3 ../x #1 +2"
    assert markdown_literal("a\n- b\r\n  12. c\n# d\n+ e") == "a\n\\- b\r\n  12\\. c\n\\# d\n\\+ e"


# --- feed-forward ------------------------------------------------------------------------------


def test_gelu_reproduces_the_stored_mlp_activations(tiny_trace: Trace) -> None:
    for layer in range(tiny_trace.config.n_layer):
        pre = tiny_trace.get("mlp.hook_pre", layer)
        post = tiny_trace.get("mlp.hook_post", layer)
        np.testing.assert_allclose(lff.gelu(pre), post, atol=1e-5)


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


def test_selective_ranking_prefers_units_that_fire_on_some_tokens_only() -> None:
    post = np.zeros((5, 4))
    post[:, 0] = 6.0  # always on: the largest peak, but no selectivity
    post[2, 1] = 3.0  # fires on one token
    post[:, 2] = -0.1
    post[4, 3] = 1.0
    assert lff.top_neurons(post, 2, "peak").tolist() == [0, 1]
    assert lff.top_neurons(post, 2, "selective").tolist() == [1, 3]
    with pytest.raises(ValueError, match="unknown ranking"):
        lff.top_neurons(post, 2, "loudest")


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


def test_mlp_norm_heatmap_is_the_norm_of_each_layers_mlp_output(tiny_trace: Trace) -> None:
    fig = ff.mlp_norms_heatmap(lff.mlp_out_norms(tiny_trace), tiny_trace.token_strs)
    expected = [
        np.linalg.norm(tiny_trace.get("hook_mlp_out", i), axis=-1)
        for i in range(tiny_trace.config.n_layer)
    ]
    np.testing.assert_allclose(np.array(fig.data[0].z), expected, rtol=1e-5)
    assert list(fig.data[0].y) == ["layer 0", "layer 1"]


def test_article_vs_gpt_passes_the_same_inputs_through_tanh_and_gelu(tiny_trace: Trace) -> None:
    pre = tiny_trace.get("mlp.hook_pre", 0)[1].astype(np.float64)
    fig = ff.article_vs_gpt(tiny_trace.get("mlp.hook_pre", 0)[1], 0, 1)
    np.testing.assert_allclose(fig.data[0].x, np.tanh(pre))
    np.testing.assert_allclose(fig.data[1].x, lff.gelu(pre))
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


# --- layer norm --------------------------------------------------------------------------------


@pytest.mark.parametrize(("which", "layer"), [("ln1", 0), ("ln2", 0), ("ln1", 1), ("ln2", 1)])
def test_per_token_normalisation_reproduces_the_stored_layer_norm(
    tiny_trace: Trace, which: str, layer: int
) -> None:
    x = ln_input(tiny_trace, which, layer)
    eps = tiny_trace.config.layer_norm_eps
    np.testing.assert_allclose(
        lln.gpt_normalize(x, eps), tiny_trace.get(f"{which}.hook_normalized", layer), atol=2e-5
    )


def test_token_stats_figure_draws_numpys_mean_and_std(tiny_trace: Trace) -> None:
    stats = ln_stats(tiny_trace, "ln2", 1)
    fig = fln.token_stats_figure(stats, tiny_trace.token_strs, "ln_2 of layer 1")
    x = tiny_trace.get("hook_resid_mid", 1).astype(np.float64)
    np.testing.assert_allclose(fig.data[0].y, x.mean(-1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fig.data[1].y, x.std(-1), rtol=1e-6)
    assert list(fig.data[0].x) == labels_of(tiny_trace)


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


def test_gamma_beta_figure_draws_the_learned_parameters() -> None:
    gamma, beta = np.array([1.0, 0.5, 2.0]), np.array([0.0, -0.1, 0.3])
    fig = fln.gamma_beta_figure(gamma, beta, "ln")
    np.testing.assert_array_equal(fig.data[0].y, gamma)
    np.testing.assert_array_equal(fig.data[1].y, beta)


def test_scale_growth_follows_every_layer_norm_in_forward_order(tiny_trace: Trace) -> None:
    stats = all_ln_stats(tiny_trace)
    fig = fln.scale_growth_figure(stats, 2, tiny_trace.token_strs[2], highlight="1·ln_2")
    assert list(fig.data[2].x) == ["0·ln_1", "0·ln_2", "1·ln_1", "1·ln_2", "ln_f"]
    np.testing.assert_allclose(fig.data[2].y, [np.median(s.std) for s in stats])
    np.testing.assert_allclose(fig.data[3].y, [s.std[2] for s in stats])
    final = tiny_trace.get("hook_resid_post", 1).astype(np.float64)
    assert fig.data[3].y[-1] == pytest.approx(final[2].std())


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


def test_the_articles_whole_tensor_statistics_let_a_later_token_change_earlier_outputs(
    tiny_trace: Trace,
) -> None:
    x = tiny_trace.get("hook_resid_mid", 0)
    article_change, gpt_change = lln.future_leak(x, tiny_trace.config.layer_norm_eps)
    assert gpt_change == 0.0
    assert article_change > 1e-3
    assert lln.future_leak(x[:1], 1e-5) == (0.0, 0.0)


# --- residual stream ---------------------------------------------------------------------------


def test_the_parts_written_into_the_stream_add_up_to_the_final_residual(
    tiny_trace: Trace,
) -> None:
    pos = 5
    c = lres.contributions(tiny_trace, pos)
    final = tiny_trace.get("hook_resid_post", 1)[pos]
    np.testing.assert_allclose(c.vectors.sum(0), final, atol=1e-4)
    assert c.along_final.sum() == pytest.approx(c.final_norm, rel=1e-4)
    assert c.names[:4] == ("token embedding", "position embedding", "attention 0", "MLP 0")
    np.testing.assert_allclose(
        c.sizes[2], np.linalg.norm(tiny_trace.get("hook_attn_out", 0)[pos]), rtol=1e-5
    )
    fig = fres.contributions_figure(c, pos, tiny_trace.token_strs[pos])
    np.testing.assert_allclose(fig.data[0].x, c.sizes)
    np.testing.assert_allclose(fig.data[1].x, c.along_final)


def test_the_log_colour_norm_heatmap_keeps_the_sizes_in_its_hover(tiny_trace: Trace) -> None:
    fig = fres.norms_heatmap(residual_norms(tiny_trace), tiny_trace.token_strs, log=True)
    norms = residual_norms(tiny_trace)
    np.testing.assert_allclose(np.array(fig.data[0].z), np.log10(norms), rtol=1e-6)
    np.testing.assert_allclose(np.array(fig.data[0].customdata), norms, rtol=1e-6)


def test_residual_norm_heatmap_equals_the_stored_residuals_norms(tiny_trace: Trace) -> None:
    fig = fres.norms_heatmap(residual_norms(tiny_trace), tiny_trace.token_strs)
    expected = [np.linalg.norm(tiny_trace.get("hook_resid_pre", 0), axis=-1)] + [
        np.linalg.norm(tiny_trace.get("hook_resid_post", i), axis=-1) for i in range(2)
    ]
    np.testing.assert_allclose(np.array(fig.data[0].z), expected, rtol=1e-5)
    np.testing.assert_allclose(residual_norms(tiny_trace), expected, rtol=1e-5)
    assert list(fig.data[0].y) == ["after embeddings", "after block 0", "after block 1"]


def test_cosine_to_final_is_one_on_the_last_row(tiny_trace: Trace) -> None:
    cos = lres.cosine_to_final(tiny_trace)
    np.testing.assert_allclose(cos[-1], 1.0, atol=1e-6)
    a = tiny_trace.get("hook_resid_pre", 0)[3].astype(np.float64)
    b = tiny_trace.get("hook_resid_post", 1)[3].astype(np.float64)
    assert cos[0, 3] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-5)
    fig = fres.cosine_figure(cos, 3, tiny_trace.token_strs[3])
    np.testing.assert_allclose(fig.data[1].y, cos[:, 3])
    np.testing.assert_allclose(fig.data[0].y, cos.mean(1))


def test_each_residual_step_is_x_plus_f_of_x(tiny_trace: Trace) -> None:
    steps = lres.residual_steps(tiny_trace, 2)
    assert [s.label for s in steps] == [
        "layer 0 attention",
        "layer 0 MLP",
        "layer 1 attention",
        "layer 1 MLP",
    ]
    x = tiny_trace.get("hook_resid_mid", 1)[2].astype(np.float64)
    f = tiny_trace.get("hook_mlp_out", 1)[2].astype(np.float64)
    assert steps[3].after_norm == pytest.approx(np.linalg.norm(x + f), rel=1e-5)
    assert steps[3].cosine == pytest.approx(x @ f / np.linalg.norm(x) / np.linalg.norm(f))
    assert steps[1].after_norm == pytest.approx(steps[2].before_norm)


# --- dropout -----------------------------------------------------------------------------------


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


def test_dropout_panels_window_a_long_text() -> None:
    T = 300
    z = np.tril(np.full((T, T), 0.5))
    labels = tuple(f"w{i}" for i in range(T))
    fig = fdrop.patterns_figure(labels, z, z, z * 2, 0.5, start=100)
    assert len(fig.data[0].x) == fdrop.PANEL_AXIS
    assert fig.data[0].x[0] == "100:w100"
    assert len(fig.to_json()) < 2_000_000


# --- output and logit lens ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lens(tiny_trace: Trace, tiny_loaded: LoadedModel):
    return logit_lens(tiny_trace, tiny_loaded.model)


def test_the_lens_heatmaps_last_row_is_the_models_own_top_token(
    tiny_trace: Trace, tiny_loaded: LoadedModel, tiny_lens
) -> None:
    display = tiny_loaded.tokenizer.display
    fig = fout.lens_heatmap(tiny_lens, tiny_trace.token_strs, display, size=tiny_trace.n_tokens)
    last_words = list(fig.data[0].text[-1])
    last_probs = np.array(fig.data[0].z[-1])
    for pos in range(tiny_trace.n_tokens):
        probs = final_probs(tiny_trace, pos)
        assert last_words[pos] == plotly_text(cell_word(display(int(np.argmax(probs)))))
        assert last_probs[pos] == pytest.approx(probs.max(), abs=1e-4)
    assert list(fig.data[0].y) == ["embed", "block 0", "block 1"]
    assert list(fig.data[0].x) == labels_of(tiny_trace)
    hover = fig.data[0].customdata[-1][0]
    assert hover.count("<br>") == fout.HOVER_TOP - 1
    assert hover.startswith("1. " + plotly_text(display(int(tiny_lens.top_ids[-1, 0, 0]))))


def test_the_lens_window_shows_a_slice_of_positions(tiny_trace: Trace, tiny_loaded, tiny_lens):
    fig = fout.lens_heatmap(
        tiny_lens, tiny_trace.token_strs, tiny_loaded.tokenizer.display, start=4, size=5
    )
    assert list(fig.data[0].x) == labels_of(tiny_trace, 4, 9)
    np.testing.assert_allclose(np.array(fig.data[0].z), np.round(tiny_lens.top_probs[:, 4:9, 0], 4))


def test_top_tokens_figure_applies_temperature_top_k_and_top_p_to_the_stored_logits(
    tiny_trace: Trace, tiny_loaded: LoadedModel
) -> None:
    pos = 4
    logits = tiny_trace.logits[pos]
    shaped = next_token_distribution(logits, SamplingSettings(temperature=0.7, top_k=5))
    model = next_token_distribution(logits, SamplingSettings())
    fig = fout.top_tokens_figure(model, shaped, tiny_loaded.tokenizer.display, k=8)
    order = np.argsort(-model)[:8]
    np.testing.assert_allclose(fig.data[0].x, model[order])
    np.testing.assert_allclose(fig.data[1].x, shaped[order])
    assert np.count_nonzero(fig.data[1].x) == 5
    assert fig.data[0].y[0].endswith(f"(id {order[0]})")


def test_next_and_target_token_figures_follow_the_lens(
    tiny_trace: Trace, tiny_loaded: LoadedModel, tiny_lens
) -> None:
    pos = 3
    fig = fout.next_token_figure(tiny_lens, pos, tiny_trace.token_strs[pos + 1])
    np.testing.assert_allclose(fig.data[0].y, tiny_lens.next_prob[:, pos])
    np.testing.assert_array_equal(fig.data[1].y, tiny_lens.next_rank[:, pos])
    target = int(tiny_trace.token_ids[pos + 1])
    probs = [
        lens_distribution(tiny_trace, tiny_loaded.model, r, pos)[target]
        for r in range(tiny_trace.config.n_layer + 1)
    ]
    np.testing.assert_allclose(probs, tiny_lens.next_prob[:, pos], rtol=1e-4)
    tfig = fout.target_figure(np.array(probs), tiny_lens.layer_labels, "x")
    np.testing.assert_allclose(tfig.data[0].y, probs)


def test_sample_figure_marks_the_chosen_token(tiny_loaded: LoadedModel) -> None:
    tok = tiny_loaded.tokenizer
    step = sample_next(
        tiny_loaded.model, tok, tok.encode("Hello"), SamplingSettings(top_k=10), seed=2
    )
    fig = fout.sample_figure(step, tok.display, k=20)
    labels = list(fig.data[1].y)
    assert len(labels) == 10  # top-k cut the rest
    chosen = labels.index(f"{plotly_text(tok.display(step.token_id))}  (id {step.token_id})")
    assert fig.data[1].text[chosen] == "◀ chosen"
    assert fig.data[1].marker.color[chosen] != fig.data[1].marker.color[(chosen + 1) % 10]
    assert sum(fig.data[1].x) == pytest.approx(1.0)


def test_lens_cells_cut_long_words_and_probability_axes_fit_flat_distributions() -> None:
    assert fout.cell_word("short") == "short"
    assert fout.cell_word("␣questionable") == "␣ques…"
    assert len(fout.cell_word("x" * 30)) == fout.CELL_CHARS
    flat = np.full(100, 0.01)
    assert fout.probability_range(flat) == [0.0, 0.02]
    assert fout.probability_range(np.array([0.9, 0.1])) == [0.0, 1.035]
    assert fout.probability_range(np.array([1.0])) == [0.0, 1.05]


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
