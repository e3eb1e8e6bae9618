"""run_with_trace: side-effect-free capture, truncation, id input, dtype, seeded dropout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.capture import prepare_ids, run_with_trace, trace_nbytes
from engine.checkpoints import LoadedModel
from engine.names import SITE, act_name, canonical_names, parse_name
from engine.trace import Trace

DROPOUT_TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind"


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_trace_logits_equal_the_plain_forward_pass(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    ids = torch.tensor([tiny_loaded.tokenizer.encode(tiny_trace.prompt)])
    with torch.no_grad():
        plain = tiny_loaded.model(ids)[0].numpy()
    np.testing.assert_allclose(tiny_trace.logits, plain, atol=1e-5, rtol=0)


def test_capture_leaves_the_model_untouched(tiny_loaded: LoadedModel) -> None:
    model = tiny_loaded.model
    before = _state(model)
    rng = torch.get_rng_state()
    run_with_trace(model, tiny_loaded.tokenizer, "Side effects?")
    run_with_trace(model, tiny_loaded.tokenizer, "Side effects?", dropout_p=0.5, seed=3)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training
    assert torch.equal(torch.get_rng_state(), rng)  # the dropout pass used its own generator
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_trace_records_the_tokens_and_their_display_strings(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    tok = tiny_loaded.tokenizer
    ids = tok.encode(tiny_trace.prompt)
    assert tiny_trace.token_ids.tolist() == ids
    assert tiny_trace.token_strs == tuple(tok.labels(ids))
    assert tiny_trace.prompt == "The cat sat on the mat. 你好，世界! The cat sat"
    assert tiny_trace.model_name == "tiny"
    assert tiny_trace.n_tokens_dropped == 0
    assert tiny_trace.dropout_p == 0.0


def test_ids_input_gives_the_same_trace_as_the_text(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    ids = tiny_loaded.tokenizer.encode(tiny_trace.prompt)
    from_ids = run_with_trace(tiny_loaded.model, tiny_loaded.tokenizer, np.array(ids))
    assert list(from_ids.acts) == list(tiny_trace.acts)
    for name, arr in tiny_trace.acts.items():
        np.testing.assert_array_equal(from_ids[name], arr, err_msg=name)
    assert from_ids.prompt == tiny_trace.prompt


def test_text_longer_than_the_context_keeps_the_first_tokens(tiny_loaded: LoadedModel) -> None:
    tok, n_ctx = tiny_loaded.tokenizer, tiny_loaded.config.n_ctx
    text = "All the world's a stage, and all the men and women merely players. " * 4
    ids = tok.encode(text)
    assert len(ids) > n_ctx
    trace = run_with_trace(tiny_loaded.model, tok, text)
    assert trace.n_tokens == n_ctx
    assert trace.n_tokens_dropped == len(ids) - n_ctx
    assert trace.token_ids.tolist() == ids[:n_ctx]
    assert trace.prompt == text


def test_prepare_ids_reports_how_many_tokens_were_dropped(tiny_loaded: LoadedModel) -> None:
    assert prepare_ids(tiny_loaded.tokenizer, [5, 6, 7, 8, 9], 3) == ([5, 6, 7], 2)
    assert prepare_ids(tiny_loaded.tokenizer, [5, 6], 3) == ([5, 6], 0)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "the text is empty"),
        ([], "the text is empty"),
        ([1, 4097], r"token id 4097 is outside the vocabulary \(0..4096\)"),
        ([-1], "token id -1 is outside the vocabulary"),
        ([1.5, 2], "token ids must be integers"),
    ],
)
def test_bad_input_raises_a_readable_value_error(
    tiny_loaded: LoadedModel, source: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        run_with_trace(tiny_loaded.model, tiny_loaded.tokenizer, source)  # type: ignore[arg-type]


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_a_dropout_probability_outside_zero_one_is_refused(
    tiny_loaded: LoadedModel, p: float
) -> None:
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\)"):
        run_with_trace(tiny_loaded.model, tiny_loaded.tokenizer, "hi", dropout_p=p)


def test_float16_traces_store_half_precision_close_to_float32(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    half = run_with_trace(
        tiny_loaded.model, tiny_loaded.tokenizer, tiny_trace.prompt, dtype=np.float16
    )
    assert all(arr.dtype == np.float16 for arr in half.acts.values())
    assert half.nbytes() < 0.6 * tiny_trace.nbytes()
    np.testing.assert_allclose(half.logits, tiny_trace.logits, atol=2e-3, rtol=2e-3)
    pattern = half.get("attn.hook_pattern", 1).astype(np.float32)
    np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=5e-3)


def test_large_dtype_applies_to_the_large_sites_only(tiny_loaded: LoadedModel) -> None:
    trace = run_with_trace(
        tiny_loaded.model, tiny_loaded.tokenizer, "A mixed trace.", large_dtype=np.float16
    )
    for name, arr in trace.acts.items():
        site = parse_name(name, trace.config.n_layer)[0]
        assert arr.dtype == (np.float16 if site.size == "large" else np.float32), name
    assert {SITE[s].size for s in ("attn.hook_pattern", "mlp.hook_post")} == {"large"}


@pytest.mark.parametrize(
    ("dtype", "large_dtype"),
    [(np.float32, None), (np.float16, None), (np.float32, np.float16)],
)
def test_trace_nbytes_is_the_traces_own_count_before_the_run(
    tiny_loaded: LoadedModel, dtype: type, large_dtype: type | None
) -> None:
    for text in ("Hi", "A longer text, to vary the number of tokens a little."):
        trace = run_with_trace(
            tiny_loaded.model, tiny_loaded.tokenizer, text, dtype=dtype, large_dtype=large_dtype
        )
        expected = trace_nbytes(trace.config, trace.n_tokens, dtype, large_dtype)
        assert trace.nbytes() == expected, (text, dtype, large_dtype)


# --- the dropout pass -----------------------------------------------------------------------------


def _dropout_trace(loaded: LoadedModel, seed: int, p: float = 0.3) -> Trace:
    return run_with_trace(loaded.model, loaded.tokenizer, DROPOUT_TEXT, dropout_p=p, seed=seed)


def test_dropout_pass_is_reproducible_for_a_seed(tiny_loaded: LoadedModel) -> None:
    a, b = _dropout_trace(tiny_loaded, seed=11), _dropout_trace(tiny_loaded, seed=11)
    assert list(a.acts) == list(b.acts)
    for name in a.acts:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert a.dropout_p == 0.3


def test_dropout_pass_differs_between_seeds(tiny_loaded: LoadedModel) -> None:
    a, b = _dropout_trace(tiny_loaded, seed=11), _dropout_trace(tiny_loaded, seed=12)
    dropped = act_name("attn.hook_pattern_dropped", 0)
    assert not np.array_equal(a[dropped], b[dropped])
    assert not np.array_equal(a.logits, b.logits)


def test_dropout_pass_differs_from_the_evaluation_pass(tiny_loaded: LoadedModel) -> None:
    noisy = _dropout_trace(tiny_loaded, seed=0)
    clean = run_with_trace(tiny_loaded.model, tiny_loaded.tokenizer, DROPOUT_TEXT)
    assert not np.allclose(noisy.logits, clean.logits, atol=1e-3)
    # Embedding dropout: the residual entering block 0 is a masked, rescaled embedding sum.
    emb = clean.get("hook_resid_pre", 0)
    resid = noisy.get("hook_resid_pre", 0)
    kept = resid != 0
    np.testing.assert_allclose(resid[kept], emb[kept] / 0.7, rtol=1e-5)


def test_dropped_pattern_keeps_entries_scaled_by_one_over_one_minus_p(
    tiny_loaded: LoadedModel,
) -> None:
    p = 0.3
    trace = _dropout_trace(tiny_loaded, seed=5, p=p)
    T = trace.n_tokens
    causal = np.tril(np.ones((T, T), dtype=bool))
    n_causal = n_zeroed = 0
    for layer in range(trace.config.n_layer):
        pattern = trace.get("attn.hook_pattern", layer)
        dropped = trace.get("attn.hook_pattern_dropped", layer)
        np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=1e-6)  # before the mask
        kept = dropped != 0
        np.testing.assert_allclose(dropped[kept], pattern[kept] / (1 - p), rtol=1e-6)
        assert not kept[:, ~causal].any()  # the future stays masked
        n_causal += int(causal.sum()) * trace.config.n_head
        n_zeroed += int((~kept[:, causal]).sum())
    assert 0.2 < n_zeroed / n_causal < 0.4  # about p of the entries are dropped


def test_only_a_dropout_pass_records_the_dropped_patterns(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    trace = _dropout_trace(tiny_loaded, seed=1)
    expected = []
    for name in canonical_names(2):
        expected.append(name)
        if name.endswith("attn.hook_pattern"):
            expected.append(name + "_dropped")
    assert list(trace.acts) == expected
    assert canonical_names(2, dropout=True) == expected
    assert not any(k.endswith("_dropped") for k in tiny_trace.acts)
