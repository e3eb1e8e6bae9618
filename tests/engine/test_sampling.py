"""Temperature, top-k, top-p and sampling through the engine (engine.sampling)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.checkpoints import LoadedModel
from engine.lens.logit_lens import final_probs
from engine.sampling import (
    SamplingSettings,
    generate,
    last_logits,
    next_token_distribution,
    sample_next,
    softmax,
    top_candidates,
)
from engine.trace import Trace

LOGITS = np.log(np.array([0.5, 0.3, 0.15, 0.05]))


def test_temperature_one_with_nothing_cut_is_the_plain_softmax() -> None:
    probs = next_token_distribution(LOGITS, SamplingSettings())
    np.testing.assert_allclose(probs, [0.5, 0.3, 0.15, 0.05], rtol=1e-12)


def test_temperature_divides_the_logits_before_the_softmax() -> None:
    probs = next_token_distribution(LOGITS, SamplingSettings(temperature=2.0))
    expected = np.sqrt([0.5, 0.3, 0.15, 0.05])
    np.testing.assert_allclose(probs, expected / expected.sum(), rtol=1e-12)
    # a low temperature sharpens: the top token gains
    cold = next_token_distribution(LOGITS, SamplingSettings(temperature=0.5))
    assert cold[0] > 0.5 > probs[0]


def test_top_k_keeps_the_k_most_probable_tokens_and_renormalises() -> None:
    probs = next_token_distribution(LOGITS, SamplingSettings(top_k=2))
    np.testing.assert_allclose(probs, [0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0], rtol=1e-12)


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = next_token_distribution(LOGITS, SamplingSettings(top_p=0.8))
    np.testing.assert_allclose(probs, [0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0], rtol=1e-12)
    probs = next_token_distribution(LOGITS, SamplingSettings(top_p=0.81))
    np.testing.assert_allclose(probs, np.array([0.5, 0.3, 0.15, 0.0]) / 0.95, rtol=1e-12)
    only_top = next_token_distribution(LOGITS, SamplingSettings(top_p=0.1))
    np.testing.assert_allclose(only_top, [1.0, 0.0, 0.0, 0.0])


def test_greedy_puts_all_mass_on_the_argmax() -> None:
    probs = next_token_distribution(LOGITS[::-1], SamplingSettings(greedy=True, temperature=3.0))
    np.testing.assert_array_equal(probs, [0.0, 0.0, 0.0, 1.0])


def test_ids_beyond_the_tokenizer_are_never_chosen() -> None:
    logits = np.array([0.0, 1.0, 50.0])
    probs = next_token_distribution(logits, SamplingSettings(), allowed=2)
    assert probs[2] == 0.0
    np.testing.assert_allclose(probs[:2], softmax(logits[:2]))


def test_the_one_softmax_works_row_by_row_and_masks_minus_infinity() -> None:
    scores = np.array([[1.0, -np.inf, -np.inf], [0.5, 2.0, -np.inf], [3.0, -1.0, 1000.0]])
    rows = softmax(scores)
    for row, probs in zip(scores, rows, strict=True):
        np.testing.assert_array_equal(probs, softmax(row))  # each row on its own, bit for bit
    np.testing.assert_allclose(rows.sum(-1), 1.0, rtol=1e-15)
    assert rows[0, 0] == 1.0 and rows[1, 2] == 0.0
    np.testing.assert_allclose(softmax(scores.T, axis=0), rows.T)
    with pytest.raises(ValueError, match="every logit is -inf"):
        softmax(np.array([[0.0, 1.0], [-np.inf, -np.inf]]))


@pytest.mark.parametrize(
    "kwargs",
    [{"temperature": 0.0}, {"temperature": -1.0}, {"top_k": -1}, {"top_p": 0.0}, {"top_p": 1.5}],
)
def test_invalid_settings_are_refused_with_a_message(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="must be"):
        SamplingSettings(**kwargs)


@settings(max_examples=60, deadline=None)
@given(
    logits=st.lists(st.floats(-20, 20), min_size=1, max_size=40),
    temperature=st.floats(0.05, 5.0),
    top_k=st.integers(0, 50),
    top_p=st.floats(0.01, 1.0),
)
# two logits whose probabilities are equal in float64: the larger logit must still be kept
@example(logits=[-2.4251033226456578e-234, 0.0], temperature=1.0, top_k=0, top_p=0.5)
def test_every_setting_gives_a_distribution_that_keeps_the_top_token(
    logits: list[float], temperature: float, top_k: int, top_p: float
) -> None:
    x = np.array(logits)
    probs = next_token_distribution(x, SamplingSettings(temperature, top_k, top_p))
    assert probs.min() >= 0.0
    assert probs.sum() == pytest.approx(1.0)
    assert probs[int(np.argmax(x))] > 0.0
    if top_k:
        assert np.count_nonzero(probs) <= top_k
    # the kept tokens are the most probable ones: nothing dropped is more probable than a kept one
    kept = probs > 0
    if (~kept).any():
        assert x[~kept].max() <= x[kept].min()


def test_top_candidates_are_sorted_by_probability_then_id() -> None:
    probs = np.array([0.1, 0.4, 0.1, 0.4])
    assert top_candidates(probs, 3).tolist() == [1, 3, 0]


def test_the_models_own_distribution_equals_the_traces_final_softmax(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    ids = tiny_trace.token_ids.tolist()
    logits = last_logits(tiny_loaded.model, ids)
    np.testing.assert_allclose(softmax(logits), final_probs(tiny_trace, len(ids) - 1), atol=1e-5)


def test_sampling_with_a_fixed_seed_is_deterministic(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    ids = tiny_trace.token_ids.tolist()
    hot = SamplingSettings(temperature=3.0)
    first = [sample_next(tiny_loaded.model, tiny_loaded.tokenizer, ids, hot, s) for s in range(8)]
    again = [sample_next(tiny_loaded.model, tiny_loaded.tokenizer, ids, hot, s) for s in range(8)]
    assert [s.token_id for s in first] == [s.token_id for s in again]
    # a hot random model spreads its mass: different seeds do not all give one token
    assert len({s.token_id for s in first}) > 1
    assert all(s.probs[s.token_id] > 0 for s in first)


def test_greedy_sampling_equals_the_argmax_of_the_final_logits(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    ids = tiny_trace.token_ids.tolist()
    step = sample_next(
        tiny_loaded.model, tiny_loaded.tokenizer, ids, SamplingSettings(greedy=True), seed=123
    )
    assert step.token_id == int(np.argmax(tiny_trace.logits[-1]))
    assert step.prob == 1.0
    assert step.token_str == tiny_loaded.tokenizer.display(step.token_id)


def test_generate_n_equals_n_single_steps_with_consecutive_seeds(
    tiny_loaded: LoadedModel,
) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    ids = tok.encode("To be or not")
    hot = SamplingSettings(temperature=1.5, top_k=50)
    seen: list[tuple[int, int]] = []
    steps = generate(model, tok, ids, 5, hot, seed=7, callback=lambda d, n, s: seen.append((d, n)))
    context = list(ids)
    for i, step in enumerate(steps):
        single = sample_next(model, tok, context, hot, 7 + i)
        assert single.token_id == step.token_id
        context.append(single.token_id)
    assert seen == [(i + 1, 5) for i in range(len(steps))]
    assert all(s.n_candidates <= 50 for s in steps)


def test_one_stream_draws_every_token_from_one_generator_seeded_once(
    tiny_loaded: LoadedModel,
) -> None:
    """The model card's protocol: one torch.Generator seeded with `seed` for the whole text."""
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    ids = tok.encode("To be or not")
    hot = SamplingSettings(temperature=1.5, top_k=50)
    steps = generate(model, tok, ids, 6, hot, seed=3, one_stream=True)
    stream = torch.Generator().manual_seed(3)
    context = list(ids)
    for step in steps:
        single = sample_next(model, tok, context, hot, 0, generator=stream)
        assert single.token_id == step.token_id
        context.append(single.token_id)
    per_step = generate(model, tok, ids, 6, hot, seed=3)
    assert per_step[0].token_id == steps[0].token_id  # the first draw is the same either way


def test_suppress_eot_never_chooses_endoftext_but_reports_the_models_own_probability(
    tiny_loaded: LoadedModel,
) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    ids = tok.encode("The end.")
    step = sample_next(model, tok, ids, SamplingSettings(greedy=True), 0, suppress_eot=True)
    assert step.probs[tok.eot_id] == 0.0
    assert step.model_probs[tok.eot_id] > 0.0
    steps = generate(model, tok, ids, 8, SamplingSettings(temperature=5.0), 0, suppress_eot=True)
    assert len(steps) == 8 and all(s.token_id != tok.eot_id for s in steps)


def test_a_long_text_is_continued_from_its_last_n_ctx_tokens(tiny_loaded: LoadedModel) -> None:
    model = tiny_loaded.model
    n_ctx = model.config.n_ctx
    ids = [(7 * i) % 3000 for i in range(n_ctx + 9)]
    np.testing.assert_allclose(last_logits(model, ids), last_logits(model, ids[-n_ctx:]))
    step = sample_next(model, tiny_loaded.tokenizer, ids, SamplingSettings(), 0)
    assert step.context_len == n_ctx


def test_sampling_from_many_threads_gives_each_seed_its_own_token(
    tiny_loaded: LoadedModel,
) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    ids = tok.encode("Hello there")
    hot = SamplingSettings(temperature=2.0)
    expected = {s: sample_next(model, tok, ids, hot, s).token_id for s in range(6)}
    got: dict[int, int] = {}

    def work(seed: int) -> None:
        got[seed] = sample_next(model, tok, ids, hot, seed).token_id

    threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def test_an_empty_text_cannot_be_continued(tiny_loaded: LoadedModel) -> None:
    with pytest.raises(ValueError, match="no text"):
        last_logits(tiny_loaded.model, [])
