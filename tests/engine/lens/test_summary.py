"""engine.lens.summary: every layer's per-token numbers, computed in one streaming pass over a
lazy Trace, equal bit for bit what the lens functions compute on a full capture."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.capture import ATTN, MLP, run_with_trace
from engine.checkpoints import LoadedModel, random_model
from engine.config import PRESETS
from engine.lens import feed_forward as lff
from engine.lens import residual as lres
from engine.lens.layer_norm import all_ln_stats
from engine.lens.summary import LayerSummary, layer_summary
from engine.tokenizer import cl100k_truncated
from engine.trace import LazyActs, Trace, UnitCache
from tests.conftest import MIXED_TEXT

# GPT-2 small's width and heads (rows of 768 features: numpy's pairwise sums run in blocks of
# 128, which the tiny model's 32 features never reach), 2 layers, a short context
WIDE = dataclasses.replace(PRESETS["gpt2"], n_layer=2, n_ctx=64, vocab_size=4097)


def assert_summary_equals_the_lens_functions(summary: LayerSummary, full: Trace) -> None:
    """Every number of `summary` is what the lens functions compute on the full capture `full`,
    exactly (np.array_equal; == for floats)."""
    assert not full.is_lazy
    L, T = full.config.n_layer, full.n_tokens
    assert summary.n_layer == L
    assert np.array_equal(summary.residual_norms, lres.residual_norms(full))
    assert np.array_equal(summary.cosine_to_final, lres.cosine_to_final(full))
    assert np.array_equal(summary.mlp_out_norms, lff.mlp_out_norms(full))
    reference = all_ln_stats(full)
    assert len(reference) == 2 * L + 1
    for got, want in zip(summary.ln_stats(), reference[:-1], strict=True):
        assert got.name == want.name
        for field in ("mean", "std", "scale"):
            assert np.array_equal(getattr(got, field), getattr(want, field)), (want.name, field)
    for pos in range(T):
        got, want = summary.contributions(pos), lres.contributions(full, pos)
        assert got.names == want.names
        assert np.array_equal(got.sizes, want.sizes), pos
        assert np.array_equal(got.along_final, want.along_final), pos
        assert got.final_norm == want.final_norm, pos
        assert summary.residual_steps(pos) == lres.residual_steps(full, pos), pos
    assert summary.part_sizes.shape == summary.part_along_final.shape == (2 + 2 * L, T)
    for name in ("step_before", "step_after", "step_cosine", "ln_mean", "ln_std", "ln_scale"):
        assert getattr(summary, name).shape == (2 * L, T), name
        assert getattr(summary, name).dtype == np.float64, name


@pytest.mark.parametrize("text", [MIXED_TEXT, "a"])
def test_the_summary_of_a_lazy_trace_equals_the_lens_functions_on_a_full_capture(
    tiny_loaded: LoadedModel, text: str
) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    lazy = run_with_trace(model, tok, text)
    full = run_with_trace(model, tok, text, lazy=False)
    assert_summary_equals_the_lens_functions(layer_summary(lazy), full)
    assert_summary_equals_the_lens_functions(layer_summary(full), full)


def test_the_summary_is_exact_at_gpt2_width() -> None:
    model = random_model(WIDE, seed=3)
    tok = cl100k_truncated(WIDE.vocab_size - 1)
    text = "The residual stream of a wide model, read one layer at a time. " * 4
    lazy = run_with_trace(model, tok, text)
    full = run_with_trace(model, tok, text, lazy=False)
    assert lazy.n_tokens == WIDE.n_ctx
    assert_summary_equals_the_lens_functions(layer_summary(lazy), full)


def test_one_pass_computes_each_half_block_once_and_keeps_nothing(
    tiny_loaded: LoadedModel,
) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    units = UnitCache(2**30)
    lazy = run_with_trace(model, tok, MIXED_TEXT, unit_cache=units)
    lazy.get("mlp.hook_post", 1)  # a page's read of layer 1, kept
    acts = lazy.acts
    assert isinstance(acts, LazyActs)
    kept = units.stats()
    layer_summary(lazy)
    assert units.stats() == kept  # nothing added, nothing evicted
    L = lazy.config.n_layer
    # layer 1's halves were there already; layer 0's were computed once each
    assert acts.computations == {(i, half): 1 for i in range(L) for half in (ATTN, MLP)}


def test_get_layer_reads_several_sites_with_each_half_computed_once(
    tiny_loaded: LoadedModel,
) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    lazy = run_with_trace(model, tok, MIXED_TEXT)
    full = run_with_trace(model, tok, MIXED_TEXT, lazy=False)
    sites = ["hook_mlp_out", "attn.hook_pattern", "hook_resid_pre", "ln2.hook_scale"]
    got = lazy.get_layer(1, sites, keep=False)
    assert list(got) == sites
    for site in sites:
        assert np.array_equal(got[site], full.get(site, 1)), site
        assert not got[site].flags.writeable
    assert isinstance(lazy.acts, LazyActs)
    # the MLP half was asked for first: it computed the attention half once, for both
    assert lazy.acts.computations == {(1, ATTN): 1, (1, MLP): 1}
    assert not lazy.acts._cache  # keep=False: nothing entered the Trace's own cache
    got = lazy.get_layer(0, ["hook_attn_out", "hook_resid_mid"])  # keep=True: one unit kept
    assert list(lazy.acts._cache) == [(0, ATTN)]
    assert got["hook_attn_out"] is lazy.get("hook_attn_out", 0)
    assert full.get_layer(0, ["hook_attn_out"])["hook_attn_out"] is full["blocks.0.hook_attn_out"]
    with pytest.raises(KeyError):
        lazy.get_layer(0, ["attn.hook_pattern_dropped"])
