"""engine.lens.logit_lens: every layer's residual read through ln_f and the unembedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.checkpoints import LoadedModel, random_model
from engine.config import GPTConfig
from engine.lens.logit_lens import LogitLens, final_probs, lens_distribution, logit_lens
from engine.trace import Trace


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


@pytest.mark.parametrize(("vocab", "scale"), [(4097, 10.0), (50257, 1.0), (50257, 3.0)])
def test_lens_entropy_is_within_1e5_nats_of_float64_on_a_full_chunk(
    vocab: int, scale: float
) -> None:
    """384 rows at once (a chunk of the lens): the float32 entropy stays within 1e-5 nats of
    a float64 reference (the batched matrix product used before was off by up to 1.7e-4),
    and a masked -inf logit counts as probability 0 (no nan)."""
    from engine.lens.logit_lens import _lens_rows

    logits = torch.randn(384, vocab, generator=torch.Generator().manual_seed(0)) * scale
    logits[:, -3:] = float("-inf")
    ref = logits.double()
    p64 = torch.softmax(ref, -1)
    expected = -(p64 * torch.log_softmax(ref, -1)).nan_to_num().sum(-1)  # 0 log 0 = 0
    got = _lens_rows(logits.clone(), torch.full((384,), -1), 5)[4]
    assert torch.isfinite(got).all()
    assert (got.double() - expected).abs().max().item() < 1e-5


# --- positions, blocks, one cell on demand, bounded memory (issue 19, item 2) -----------------


@pytest.mark.parametrize("positions", [[0], [3, 4, 5], [28, 0, 7, 7], list(range(16, 29))])
def test_a_lens_of_some_positions_equals_the_full_lens_at_those_positions(
    tiny_trace: Trace, tiny_loaded: LoadedModel, lens: LogitLens, positions: list[int]
) -> None:
    """Every number of a cell is the same (bit for bit) whichever other positions are computed
    with it: the page's blocks agree with the lens of the whole text."""
    part = logit_lens(tiny_trace, tiny_loaded.model, k=10, positions=positions)
    want = sorted(set(positions))
    assert part.position_list.tolist() == want
    assert part.top_ids.shape == (3, len(want), 10)
    np.testing.assert_array_equal(part.top_ids, lens.top_ids[:, want])
    np.testing.assert_array_equal(part.top_probs, lens.top_probs[:, want])
    np.testing.assert_array_equal(part.next_prob, lens.next_prob[:, want])
    np.testing.assert_array_equal(part.next_rank, lens.next_rank[:, want])
    np.testing.assert_array_equal(part.entropy, lens.entropy[:, want])
    assert [part.column(p) for p in want] == list(range(len(want)))


def test_a_lens_names_a_position_it_did_not_compute(
    tiny_trace: Trace, tiny_loaded: LoadedModel
) -> None:
    part = logit_lens(tiny_trace, tiny_loaded.model, positions=[2, 5])
    with pytest.raises(ValueError, match="not at position 3"):
        part.column(3)
    with pytest.raises(ValueError, match=r"position 29 is outside the text's positions 0..28"):
        logit_lens(tiny_trace, tiny_loaded.model, positions=[1, 29])


def test_blocks_cover_the_positions_asked_for_and_merge_into_the_full_lens(
    tiny_trace: Trace, tiny_loaded: LoadedModel, lens: LogitLens
) -> None:
    from engine.lens.logit_lens import lens_blocks, merge_lenses

    T = tiny_trace.n_tokens  # 29
    assert lens_blocks([3, 17], T, size=16) == [range(0, 16), range(16, 29)]
    assert lens_blocks([20, 21], T, size=8) == [range(16, 24)]
    parts = [
        logit_lens(tiny_trace, tiny_loaded.model, k=10, positions=b)
        for b in lens_blocks(range(T), T, size=8)
    ]
    merged = merge_lenses(parts[::-1])  # any order
    assert merged.position_list.tolist() == list(range(T))
    for name in ("top_ids", "top_probs", "next_prob", "next_rank", "entropy"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(lens, name), err_msg=name)


def test_one_cells_full_distribution_sums_to_1_and_its_top_k_is_the_lens_row(
    tiny_trace: Trace, tiny_loaded: LoadedModel, lens: LogitLens
) -> None:
    from engine.lens.logit_lens import lens_distributions

    model = tiny_loaded.model
    for pos in (0, 11, tiny_trace.n_tokens - 1):
        every = lens_distributions(tiny_trace, model, pos)
        assert every.shape == (3, tiny_trace.config.vocab_size)
        for row in range(3):
            dist = lens_distribution(tiny_trace, model, row, pos)
            np.testing.assert_array_equal(dist, every[row])  # one product or several: same
            assert abs(float(dist.astype(np.float64).sum()) - 1.0) < 1e-5
            order = np.argsort(-dist, kind="stable")[:10]
            np.testing.assert_array_equal(order, lens.top_ids[row, pos])
            np.testing.assert_allclose(dist[order], lens.top_probs[row, pos], rtol=1e-5)


def test_the_lens_never_holds_more_than_a_chunk_of_logits(
    tiny_trace: Trace, tiny_loaded: LoadedModel
) -> None:
    """The largest single allocation during the lens is bounded by chunk_rows x tile (the top-k
    candidates' int64 ids at most), not by rows x vocabulary: measured with the profiler's
    memory events, and a plain product of all rows shows the probe would see [rows, V]."""
    from torch.profiler import ProfilerActivity, profile

    def largest(fn) -> int:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        return max(e.cpu_memory_usage for e in prof.events())

    model = tiny_loaded.model
    rows, V = 3 * tiny_trace.n_tokens, tiny_trace.config.vocab_size
    chunk, tile, k = 16, 256, 10
    bound = chunk * max(tile, k * 64) * 8
    got = largest(lambda: logit_lens(tiny_trace, model, k=k, chunk_rows=chunk, tile=tile))
    assert 0 < got <= bound
    everything = largest(lambda: model.unembed(torch.zeros(rows, model.config.d_model)))
    assert everything >= rows * V * 4 > 10 * bound


def test_a_tokens_probability_in_every_row_is_its_full_distributions_column(
    tiny_trace: Trace, tiny_loaded: LoadedModel, lens: LogitLens
) -> None:
    """lens_token_probs (the followed token, from the cell's stored log-sum-exp) equals the
    full distributions' column, and the top token's probability the lens's own."""
    from engine.lens.logit_lens import lens_distributions, lens_token_probs

    model = tiny_loaded.model
    part = logit_lens(tiny_trace, model, positions=[7])
    for pos, where in ((7, part), (20, lens)):
        every = lens_distributions(tiny_trace, model, pos)
        for token in (0, int(tiny_trace.token_ids[pos]), 4095, int(lens.top_ids[1, pos, 0])):
            got = lens_token_probs(tiny_trace, model, where, pos, token)
            np.testing.assert_allclose(got, every[:, token], rtol=1e-5, atol=1e-9)
        top = lens_token_probs(tiny_trace, model, lens, pos, int(lens.top_ids[2, pos, 0]))
        np.testing.assert_allclose(top[2], lens.top_probs[2, pos, 0], rtol=1e-6)
    with pytest.raises(ValueError, match="not at position 3"):
        lens_token_probs(tiny_trace, model, part, 3, 0)
