"""Derived views: LayerNorm statistics, residual norms, head scores and the logit lens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.checkpoints import LoadedModel, random_model
from engine.config import GPTConfig
from engine.lens.heads import head_label, head_scores, induction_targets
from engine.lens.layer_norm import all_ln_stats, ln_input, ln_stats
from engine.lens.logit_lens import LogitLens, final_probs, lens_distribution, logit_lens
from engine.lens.residual import residual_norms, residual_stack
from engine.trace import Trace

# --- layer norm and residual stream ---------------------------------------------------------------


def test_ln_stats_are_the_numpy_mean_and_std_of_the_stored_residuals(tiny_trace: Trace) -> None:
    eps = tiny_trace.config.layer_norm_eps
    inputs = {
        "blocks.0.ln1": tiny_trace["blocks.0.hook_resid_pre"],
        "blocks.0.ln2": tiny_trace["blocks.0.hook_resid_mid"],
        "blocks.1.ln1": tiny_trace["blocks.1.hook_resid_pre"],
        "blocks.1.ln2": tiny_trace["blocks.1.hook_resid_mid"],
        "ln_final": tiny_trace["blocks.1.hook_resid_post"],
    }
    stats = all_ln_stats(tiny_trace)
    assert [s.name for s in stats] == list(inputs)
    for s in stats:
        x = inputs[s.name].astype(np.float64)
        np.testing.assert_allclose(s.mean, x.mean(-1), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(s.std, x.std(-1), rtol=1e-12)
        # the scale the model divided by (recorded in the forward pass) is sqrt(var + eps)
        np.testing.assert_allclose(s.scale, np.sqrt(x.var(-1) + eps), rtol=1e-5)
        assert s.mean.shape == s.std.shape == s.scale.shape == (tiny_trace.n_tokens,)


def test_ln_stats_of_one_layer_equal_the_entry_in_all_ln_stats(tiny_trace: Trace) -> None:
    one = ln_stats(tiny_trace, "ln2", 1)
    assert one.name == "blocks.1.ln2"
    np.testing.assert_array_equal(one.std, all_ln_stats(tiny_trace)[3].std)


def test_ln_input_rejects_an_unknown_layer_norm(tiny_trace: Trace) -> None:
    with pytest.raises(ValueError, match="unknown LayerNorm 'ln3'"):
        ln_input(tiny_trace, "ln3", 0)


def test_residual_norms_are_the_l2_norms_of_the_stored_residuals(tiny_trace: Trace) -> None:
    expected = [
        tiny_trace["blocks.0.hook_resid_pre"],
        tiny_trace["blocks.0.hook_resid_post"],
        tiny_trace["blocks.1.hook_resid_post"],
    ]
    stack = residual_stack(tiny_trace)
    assert stack.shape == (3, tiny_trace.n_tokens, 32)
    for row, resid in enumerate(expected):
        np.testing.assert_array_equal(stack[row], resid)
    norms = residual_norms(tiny_trace)
    np.testing.assert_allclose(
        norms, np.linalg.norm(np.stack(expected).astype(np.float64), axis=-1), rtol=1e-12
    )


# --- head scores on hand-built patterns ----------------------------------------------------------


def _pattern_trace(patterns: list[np.ndarray], token_ids: list[int]) -> Trace:
    """A Trace holding only the given attention patterns [H, T, T] (one per layer) and logits."""
    H, T, _ = patterns[0].shape
    cfg = GPTConfig(n_layer=len(patterns), n_head=H, d_model=4 * H, n_ctx=64, vocab_size=50)
    acts = {f"blocks.{i}.attn.hook_pattern": p.astype(np.float32) for i, p in enumerate(patterns)}
    acts["logits"] = np.zeros((T, 50), dtype=np.float32)
    return Trace(
        prompt="hand-built",
        token_ids=np.array(token_ids),
        token_strs=tuple(str(t) for t in token_ids),
        config=cfg,
        acts=acts,
    )


def _previous_token(T: int) -> np.ndarray:
    p = np.zeros((T, T))
    p[0, 0] = 1.0
    p[np.arange(1, T), np.arange(T - 1)] = 1.0
    return p


def _uniform(T: int) -> np.ndarray:
    p = np.tril(np.ones((T, T)))
    return p / p.sum(-1, keepdims=True)


def _sink(T: int) -> np.ndarray:
    p = np.zeros((T, T))
    p[:, 0] = 1.0
    return p


def test_head_scores_recognise_previous_token_uniform_and_sink_heads() -> None:
    T = 6
    trace = _pattern_trace(
        [np.stack([_previous_token(T), _uniform(T)]), np.stack([_sink(T), np.eye(T)])],
        [1, 2, 3, 4, 5, 6],
    )
    s = head_scores(trace)
    queries = np.arange(1, T)
    np.testing.assert_allclose(s.previous, [[1.0, np.mean(1 / (queries + 1))], [0.2, 0.0]])
    np.testing.assert_allclose(s.first, [[0.2, np.mean(1 / (queries + 1))], [1.0, 0.0]])
    np.testing.assert_allclose(s.self_, [[0.0, np.mean(1 / (queries + 1))], [0.0, 1.0]])
    np.testing.assert_allclose(s.entropy, [[0.0, np.mean(np.log(queries + 1))], [0.0, 0.0]])
    assert np.isnan(s.induction).all()  # no token repeats
    assert s.label(0, 0) == "previous-token"
    assert s.label(0, 1) == "broad"
    assert s.label(1, 0) == "first-token sink"
    assert s.label(1, 1) == "self"


def test_an_exact_induction_head_scores_one() -> None:
    ids = [7, 8, 9, 10, 7, 8, 9, 10]
    T = len(ids)
    induction = np.zeros((T, T))
    induction[np.arange(T), np.arange(T)] = 1.0  # queries without a target look at themselves
    for i, targets in induction_targets(np.array(ids)):
        induction[i] = 0.0
        induction[i, targets] = 1.0 / len(targets)
    trace = _pattern_trace([np.stack([induction, _previous_token(T)])], ids)
    s = head_scores(trace)
    np.testing.assert_allclose(s.induction, [[1.0, 0.0]])
    assert s.label(0, 0) == "induction"
    assert s.label(0, 1) == "previous-token"


def test_induction_targets_follow_earlier_occurrences() -> None:
    assert induction_targets(np.array([5, 6, 7, 5, 6, 5])) == [(3, [1]), (4, [2]), (5, [1, 4])]
    # an immediate repeat has no earlier "next token" to copy from yet
    assert induction_targets(np.array([7, 7, 7])) == [(2, [1])]
    assert induction_targets(np.array([1, 2, 3])) == []


def test_head_scores_of_a_single_token_are_defined() -> None:
    trace = _pattern_trace([np.ones((2, 1, 1))], [3])
    s = head_scores(trace)
    assert s.previous.shape == (1, 2)
    np.testing.assert_array_equal(s.first, np.ones((1, 2)))
    assert np.isnan(s.induction).all()


def test_head_scores_of_the_traced_model_are_in_range(tiny_trace: Trace) -> None:
    s = head_scores(tiny_trace)
    for arr in (s.previous, s.first, s.self_, s.induction):
        assert arr.shape == (2, 2)
        assert ((arr >= 0) & (arr <= 1 + 1e-6)).all()
    assert (s.entropy >= 0).all()
    # "The cat sat" repeats, so induction is defined
    assert not np.isnan(s.induction).any()


@pytest.mark.parametrize(
    ("scores", "label"),
    [
        ((0.5, 0.6, 0.0, 0.0), "induction"),
        ((0.7, 0.6, 0.0, 0.0), "previous-token"),
        ((0.1, float("nan"), 0.6, 0.0), "first-token sink"),
        ((0.1, 0.1, 0.1, 0.5), "self"),
        ((0.1, 0.1, 0.1, 0.1), "broad"),
    ],
)
def test_head_label_picks_the_strongest_clear_pattern(
    scores: tuple[float, float, float, float], label: str
) -> None:
    assert head_label(*scores) == label


# --- logit lens -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lens(tiny_trace: Trace, tiny_loaded: LoadedModel) -> LogitLens:
    return logit_lens(tiny_trace, tiny_loaded.model, k=10)


def test_last_lens_row_is_the_models_own_output(tiny_trace: Trace, lens: LogitLens) -> None:
    T, L = tiny_trace.n_tokens, tiny_trace.config.n_layer
    assert lens.top_ids.shape == (L + 1, T, 10)
    for pos in range(T):
        probs = final_probs(tiny_trace, pos)
        order = np.argsort(-probs, kind="stable")[:10]
        np.testing.assert_allclose(lens.top_probs[L, pos], probs[order], atol=1e-6)
        # top ids agree wherever the probabilities are not tied
        np.testing.assert_allclose(probs[lens.top_ids[L, pos]], probs[order], atol=1e-6)
        if pos + 1 < T:
            nxt = tiny_trace.token_ids[pos + 1]
            np.testing.assert_allclose(lens.next_prob[L, pos], probs[nxt], rtol=1e-4)
            assert lens.next_rank[L, pos] == int((probs > probs[nxt] + 1e-9).sum())
    assert np.isnan(lens.next_prob[:, -1]).all()
    assert (lens.next_rank[:, -1] == -1).all()


def test_lens_distribution_of_the_last_row_equals_final_probs(
    tiny_trace: Trace, tiny_loaded: LoadedModel
) -> None:
    L = tiny_trace.config.n_layer
    for pos in (0, 7, tiny_trace.n_tokens - 1):
        dist = lens_distribution(tiny_trace, tiny_loaded.model, L, pos)
        assert dist.shape == (tiny_trace.config.vocab_size,)
        np.testing.assert_allclose(dist, final_probs(tiny_trace, pos), atol=1e-6)


def test_lens_row_zero_unembeds_the_normalised_embeddings(
    tiny_trace: Trace, tiny_loaded: LoadedModel, lens: LogitLens
) -> None:
    model = tiny_loaded.model
    ln_f = model.transformer.ln_f
    x = torch.from_numpy(np.array(tiny_trace["blocks.0.hook_resid_pre"], dtype=np.float64))
    mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    normed = (x - mu) / torch.sqrt(var + ln_f.eps) * ln_f.weight.double() + ln_f.bias.double()
    probs = torch.softmax(normed @ model.transformer.wte.weight.double().T, dim=-1).numpy()
    pos = 4
    np.testing.assert_allclose(lens_distribution(tiny_trace, model, 0, pos), probs[pos], atol=1e-6)
    np.testing.assert_allclose(lens.top_probs[0, pos], np.sort(probs[pos])[::-1][:10], atol=1e-6)
    entropy = -(probs * np.log(probs)).sum(-1)
    np.testing.assert_allclose(lens.entropy[0], entropy, rtol=1e-4)


def test_lens_top_probs_are_sorted_and_consistent_with_next_rank(lens: LogitLens) -> None:
    assert (np.diff(lens.top_probs, axis=-1) <= 0).all()
    in_top = lens.next_rank[:, :-1] < 10
    # where the next token is in the top 10, its probability is the one listed at its rank
    rows, cols = np.nonzero(in_top)
    listed = lens.top_probs[rows, cols, lens.next_rank[rows, cols]]
    np.testing.assert_allclose(listed, lens.next_prob[rows, cols], rtol=1e-5)


def test_lens_distribution_of_every_row_agrees_with_the_lens_top_k(
    tiny_trace: Trace, tiny_loaded: LoadedModel, lens: LogitLens
) -> None:
    for row in range(tiny_trace.config.n_layer + 1):
        for pos in (0, tiny_trace.n_tokens - 1):
            dist = lens_distribution(tiny_trace, tiny_loaded.model, row, pos)
            np.testing.assert_allclose(dist.sum(), 1.0, atol=1e-5)
            np.testing.assert_allclose(
                dist[lens.top_ids[row, pos]], lens.top_probs[row, pos], atol=1e-6
            )


def test_lens_refuses_a_model_other_than_the_traces(tiny_trace: Trace) -> None:
    other = random_model(GPTConfig(n_layer=2, n_head=2, d_model=16, n_ctx=32, vocab_size=4097))
    with pytest.raises(ValueError, match=r"width 32 with 4097 tokens.*width 16 with 4097"):
        logit_lens(tiny_trace, other)
    with pytest.raises(ValueError, match="use the model that made the Trace"):
        lens_distribution(tiny_trace, other, 0, 0)


@pytest.mark.parametrize(("row", "pos"), [(3, 0), (-1, 0), (0, 29), (0, -1)])
def test_lens_distribution_names_a_row_or_position_out_of_range(
    tiny_trace: Trace, tiny_loaded: LoadedModel, row: int, pos: int
) -> None:
    assert tiny_trace.n_tokens == 29
    with pytest.raises(ValueError, match=r"outside rows 0..2 and positions 0..28"):
        lens_distribution(tiny_trace, tiny_loaded.model, row, pos)


def test_chunked_lens_equals_the_one_pass_lens(
    tiny_trace: Trace, tiny_loaded: LoadedModel, lens: LogitLens
) -> None:
    chunked = logit_lens(tiny_trace, tiny_loaded.model, k=10, chunk_rows=7)
    np.testing.assert_array_equal(chunked.top_ids, lens.top_ids)
    np.testing.assert_allclose(chunked.top_probs, lens.top_probs, rtol=1e-6)
    np.testing.assert_allclose(chunked.next_prob, lens.next_prob, rtol=1e-6)
    np.testing.assert_array_equal(chunked.next_rank, lens.next_rank)
    assert lens.layer_labels == ["embed", "block 0", "block 1"]
