"""The lazy Trace (`run_with_trace(..., lazy=True)`, the default): every activation bitwise equal
to the full capture's, memory bounded, one computation per block however many threads ask,
pickled as a full Trace."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pytest

from engine.capture import ATTN, FINAL, MLP, lazy_trace_nbytes, run_with_trace, trace_nbytes
from engine.checkpoints import LoadedModel, load
from engine.interventions import Ablation
from engine.lens.heads import head_scores
from engine.names import act_name, canonical_names
from engine.trace import LazyActs, Trace, UnitCache
from tests.conftest import MIXED_TEXT

TEXTS = [MIXED_TEXT, "a", "x" * 300]  # the last one is cut to the context


def _assert_bitwise_equal(lazy: Trace, full: Trace) -> None:
    assert lazy.is_lazy and not full.is_lazy
    assert list(lazy.acts) == list(full.acts) == canonical_names(full.config.n_layer)
    for name in full.acts:
        a, b = lazy[name], full[name]
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert np.array_equal(a, b, equal_nan=True), name
        assert not a.flags.writeable, name
    np.testing.assert_array_equal(lazy.token_ids, full.token_ids)
    assert lazy.nbytes() == full.nbytes()


@pytest.mark.parametrize("text", TEXTS)
def test_every_activation_of_a_lazy_trace_is_bitwise_the_full_capture(
    tiny_loaded: LoadedModel, text: str
) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    lazy = run_with_trace(model, tok, text)
    full = run_with_trace(model, tok, text, lazy=False)
    # read in reverse order too: a unit must not depend on which was computed before it
    for name in reversed(list(full.acts)):
        assert np.array_equal(lazy[name], full[name], equal_nan=True), name
    _assert_bitwise_equal(lazy, full)
    for layer in range(full.config.n_layer):
        for site in ("attn.hook_pattern", "mlp.hook_post", "ln2.hook_scale"):
            assert np.array_equal(lazy.get(site, layer), full.get(site, layer))


def test_large_dtype_float16_lazy_equals_full(tiny_loaded: LoadedModel) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    lazy = run_with_trace(model, tok, MIXED_TEXT, large_dtype=np.float16)
    full = run_with_trace(model, tok, MIXED_TEXT, large_dtype=np.float16, lazy=False)
    assert lazy.get("attn.hook_pattern", 1).dtype == np.float16
    _assert_bitwise_equal(lazy, full)


def test_an_edited_run_is_recomputed_with_its_editor(tiny_loaded: LoadedModel) -> None:
    """An ablation's lazy Trace recomputes each block with the ablation (z of head 0.1 zeroed,
    MLP 1 mean-ablated) and equals the full capture of the ablated run."""
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    ablation = Ablation(heads=frozenset({(0, 1)}), mlps=frozenset({1}), mode="mean")
    lazy = run_with_trace(model, tok, MIXED_TEXT, editor=ablation.editor())
    full = run_with_trace(model, tok, MIXED_TEXT, editor=ablation.editor(), lazy=False)
    _assert_bitwise_equal(lazy, full)
    plain = run_with_trace(model, tok, MIXED_TEXT, lazy=False)
    assert not np.array_equal(lazy.get("attn.hook_z", 0), plain.get("attn.hook_z", 0))


def test_an_editor_that_edits_the_residual_stream_is_applied_once(
    tiny_loaded: LoadedModel,
) -> None:
    """An editor that adds to resid_pre (not idempotent): the stored resid_pre is the edited
    one, so recomputing the block must not add again."""
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    target = act_name("hook_resid_pre", 1)

    def shift(name, tensor):
        return tensor + 1.0 if name == target else tensor

    lazy = run_with_trace(model, tok, MIXED_TEXT, editor=shift)
    full = run_with_trace(model, tok, MIXED_TEXT, editor=shift, lazy=False)
    _assert_bitwise_equal(lazy, full)
    # the edit separates block 0's resid_post from block 1's resid_pre
    assert not np.array_equal(full.get("hook_resid_post", 0), full.get("hook_resid_pre", 1))


def test_the_bundled_model_lazy_trace_is_bitwise_the_full_capture() -> None:
    loaded = load("bundled")
    text = "To be, or not to be, that is the question: whether 'tis nobler in the mind"
    lazy = run_with_trace(loaded.model, loaded.tokenizer, text)
    full = run_with_trace(loaded.model, loaded.tokenizer, text, lazy=False)
    _assert_bitwise_equal(lazy, full)


def test_a_dropout_pass_and_a_float16_trace_are_captured_in_full(
    tiny_loaded: LoadedModel,
) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    assert not run_with_trace(model, tok, MIXED_TEXT, dropout_p=0.1, seed=1).is_lazy
    assert not run_with_trace(model, tok, MIXED_TEXT, dtype=np.float16).is_lazy


# --- memory ----------------------------------------------------------------------------------


def test_a_lazy_trace_holds_the_residual_stream_and_a_bounded_cache(
    tiny_loaded: LoadedModel,
) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    trace = run_with_trace(model, tok, MIXED_TEXT, max_units=2)
    cfg, T = trace.config, trace.n_tokens
    # stored: two embeddings and n_layer + 1 residual arrays [T, d] (float32), the token ids
    stored = 4 * (cfg.n_layer + 3) * T * cfg.d_model + 8 * T
    assert trace.resident_nbytes() == stored
    assert trace.nbytes() == trace_nbytes(cfg, T)  # what the full capture holds
    assert trace.max_resident_nbytes() == lazy_trace_nbytes(cfg, T, max_units=2)
    trace.get("attn.hook_pattern", 0)
    block0 = trace.resident_nbytes() - stored
    assert block0 > 0
    for unit in (1, FINAL, 0):
        if unit == FINAL:
            trace.logits  # noqa: B018
        else:
            trace.get("attn.hook_q", unit)
    assert isinstance(trace.acts, LazyActs)
    a0, a1 = (0, ATTN), (1, ATTN)
    assert trace.acts.computations == {a0: 2, a1: 1, FINAL: 1}  # block 0 dropped, then again
    # an MLP site: its half runs from the resid_mid its attention half recorded
    trace.get("mlp.hook_post", 1)
    assert trace.acts.computations == {a0: 2, a1: 2, (1, MLP): 1, FINAL: 1}
    assert trace.resident_nbytes() <= trace.max_resident_nbytes()
    assert trace.acts.max_units == 2


def test_head_scores_stream_without_filling_the_cache(tiny_loaded: LoadedModel) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    lazy = run_with_trace(model, tok, MIXED_TEXT)
    full = run_with_trace(model, tok, MIXED_TEXT, lazy=False)
    before = lazy.resident_nbytes()
    a, b = head_scores(lazy), head_scores(full)
    for field in ("previous", "first", "self_", "entropy", "induction"):
        assert np.array_equal(getattr(a, field), getattr(b, field), equal_nan=True), field
    assert lazy.resident_nbytes() == before
    assert isinstance(lazy.acts, LazyActs)
    assert sum(lazy.acts.computations.values()) == lazy.config.n_layer  # one pass


# --- threads and pickling ----------------------------------------------------------------------


def test_threads_asking_for_the_same_layer_compute_it_once(tiny_loaded: LoadedModel) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    trace = run_with_trace(model, tok, MIXED_TEXT)
    full = run_with_trace(model, tok, MIXED_TEXT, lazy=False)
    acts = trace.acts
    assert isinstance(acts, LazyActs)
    compute = acts._compute

    def slow(unit, fetch):  # widen the window in which a second computation could start
        time.sleep(0.05)
        return compute(unit, fetch)

    acts._compute = slow
    n = 8
    results: list[np.ndarray] = []
    mlp: list[np.ndarray] = []

    def ask() -> None:
        barrier.wait()
        results.append(trace.get("attn.hook_pattern", 1))

    def ask_mlp() -> None:  # needs the same attention half (its resid_mid) first
        barrier.wait()
        mlp.append(trace.get("mlp.hook_post", 1))

    threads = [threading.Thread(target=ask if i % 2 else ask_mlp) for i in range(2 * n)]
    barrier = threading.Barrier(2 * n)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == n
    assert acts.computations[(1, ATTN)] == 1 and acts.computations[(1, MLP)] == 1
    assert len(mlp) == n and all(m is mlp[0] for m in mlp)
    assert np.array_equal(mlp[0], full.get("mlp.hook_post", 1))
    assert all(r is results[0] for r in results)  # one array shared, not n copies
    assert np.array_equal(results[0], full.get("attn.hook_pattern", 1))


def test_a_pickled_lazy_trace_is_a_full_trace_without_the_model(
    tiny_loaded: LoadedModel,
) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    lazy = run_with_trace(model, tok, MIXED_TEXT)
    full = run_with_trace(model, tok, MIXED_TEXT, lazy=False)
    data = pickle.dumps(lazy)
    assert b"engine.model" not in data  # no model (GPT, Block) inside
    copy = pickle.loads(data)
    assert not copy.is_lazy
    assert list(copy.acts) == list(full.acts)
    for name in full.acts:
        assert np.array_equal(copy[name], full[name]), name
        assert not copy[name].flags.writeable, name
    assert lazy.resident_nbytes() == lazy.acts.resident_nbytes() + 8 * lazy.n_tokens  # type: ignore[union-attr]


def test_all_acts_exports_every_activation_and_leaves_the_cache(tiny_loaded: LoadedModel) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    lazy = run_with_trace(model, tok, MIXED_TEXT)
    full = run_with_trace(model, tok, MIXED_TEXT, lazy=False)
    before = lazy.resident_nbytes()
    arrays = lazy.all_acts()
    assert list(arrays) == list(full.acts)
    assert all(np.array_equal(arrays[n], full[n]) for n in full.acts)
    assert lazy.resident_nbytes() == before
    assert full.all_acts().keys() == arrays.keys()


def test_the_residual_stream_and_logits_are_bitwise_the_plain_forward(
    tiny_loaded: LoadedModel,
) -> None:
    """Recording runs beside the fused kernels, never instead of them: a lazy capture (fused
    blocks), a full capture and the plain forward give one residual stream and one set of
    logits, bit for bit."""
    import torch

    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    ids = tok.encode(MIXED_TEXT)
    with torch.inference_mode():
        plain = model(torch.tensor([ids]))[0].numpy()
    lazy = run_with_trace(model, tok, ids)
    full = run_with_trace(model, tok, ids, lazy=False)
    assert np.array_equal(lazy.logits, plain) and np.array_equal(full.logits, plain)
    last = act_name("hook_resid_post", model.config.n_layer - 1)
    assert np.array_equal(lazy.acts.stored[last], full[last])  # type: ignore[union-attr]


def test_lazy_traces_can_share_one_byte_bounded_unit_cache(tiny_loaded: LoadedModel) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    probe = run_with_trace(model, tok, MIXED_TEXT)
    probe.get("attn.hook_pattern", 0)
    block = probe.resident_nbytes() - run_with_trace(model, tok, MIXED_TEXT).resident_nbytes()
    shared = UnitCache(max_bytes=block * 3 // 2)  # room for one block of this text, not two
    a = run_with_trace(model, tok, MIXED_TEXT, unit_cache=shared)
    b = run_with_trace(model, tok, MIXED_TEXT, unit_cache=shared)
    stored = a.resident_nbytes()
    assert a.max_resident_nbytes() == stored  # the units count in the shared cache's budget
    full = run_with_trace(model, tok, MIXED_TEXT, lazy=False)
    assert np.array_equal(a.get("attn.hook_pattern", 0), full.get("attn.hook_pattern", 0))
    assert shared.stats() == (1, block) and a.resident_nbytes() == stored + block
    assert np.array_equal(b.get("attn.hook_k", 0), full.get("attn.hook_k", 0))
    assert shared.stats() == (1, block)  # a's block made room for b's
    assert a.resident_nbytes() == stored and b.resident_nbytes() == stored + block
    a.get("attn.hook_pattern", 0)
    assert isinstance(a.acts, LazyActs) and a.acts.computations[(0, ATTN)] == 2
    b.acts.clear()  # type: ignore[union-attr]  # forgets b's units in the shared cache only
    assert shared.stats() == (1, block) and a.resident_nbytes() == stored + block
