"""engine.lens.heads: per-head scores (previous-token, induction, first-token sink) and labels."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import GPTConfig
from engine.figures import attention as fa
from engine.lens.heads import head_label, head_scores, induction_targets
from engine.trace import Trace


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
    for i, target in induction_targets(np.array(ids)):
        induction[i] = 0.0
        induction[i, target] = 1.0
    trace = _pattern_trace([np.stack([induction, _previous_token(T)])], ids)
    s = head_scores(trace)
    np.testing.assert_allclose(s.induction, [[1.0, 0.0]])
    assert s.label(0, 0) == "induction"
    assert s.label(0, 1) == "previous-token"


def test_induction_targets_follow_earlier_occurrences() -> None:
    # one key per query: the token after the earlier occurrence whose context matches longest
    # (position 5: neither 0 nor 3 is preceded by 6, so the earliest, 0, and its next token 1)
    assert induction_targets(np.array([5, 6, 7, 5, 6, 5])) == [(3, 1), (4, 2), (5, 1)]
    # 5 at 6: the occurrence at 0 matches back to the start, the one at 3 only one token
    assert induction_targets(np.array([5, 6, 9, 5, 1, 9, 5])) == [(3, 1), (5, 3), (6, 1)]
    # 5 at 7: the occurrence at 4 is preceded by 1 9 like the query, the one at 1 is not
    assert induction_targets(np.array([0, 5, 2, 9, 5, 1, 9, 5]))[-1] == (7, 5)
    # an immediate repeat has no earlier "next token" to copy from yet
    assert induction_targets(np.array([7, 7, 7])) == [(2, 1)]
    assert induction_targets(np.array([1, 2, 3])) == []


@pytest.mark.parametrize("seed", range(5))
def test_induction_targets_on_a_repeated_random_sequence_are_transformerlens_stripe(
    seed: int,
) -> None:
    """On random tokens repeated twice (with ids that repeat inside a copy too) the pairs are
    exactly TransformerLens's induction stripe: second-copy query i attends to i - half + 1;
    no query of the first copy is scored."""
    half = 40
    seq = np.random.default_rng(seed).integers(0, 12, size=half)
    pairs = induction_targets(np.concatenate([seq, seq]), period=half)
    assert pairs == [(i, i - half + 1) for i in range(half, 2 * half)]


def test_the_induction_score_counts_one_key_per_second_copy_query() -> None:
    """The head puts weight 0.5 on the right key and 0.5 on another earlier occurrence's next
    token: the score is 0.5 (the earlier code summed every earlier occurrence: 1.0), and a
    first-copy query whose id repeats (position 2) is not counted."""
    ids = [3, 4, 3, 5, 3, 4, 3, 5]  # half 4; the first copy repeats id 3
    T, half = len(ids), 4
    pattern = np.eye(T)
    for i, j in induction_targets(np.array(ids), period=half):
        pattern[i] = 0.0
        pattern[i, j] = 0.5
        pattern[i, i] += 0.5
    pattern[6] = 0.0
    pattern[6, [1, 3]] = 0.5  # position 6 (id 3): the right key (3) and the other one (1)
    trace = _pattern_trace([pattern[None]], ids)
    assert head_scores(trace, period=half).induction[0, 0] == pytest.approx(0.5)


def test_head_scores_of_a_single_token_are_not_measurable() -> None:
    """One token: no query 1..T-1, so every score is NaN and no head gets a role label (it
    used to be "first-token sink" with sink 1.0, self 1.0, entropy 0.0)."""
    trace = _pattern_trace([np.ones((2, 1, 1))], [3])
    s = head_scores(trace)
    for arr in (s.previous, s.first, s.self_, s.entropy, s.induction):
        assert arr.shape == (1, 2)
        assert np.isnan(arr).all()
    assert [s.label(0, h) for h in range(2)] == [None, None]
    table = fa.head_scores_table(s)
    assert set(table["label"]) == {"–"}
    for column in ("previous-token", "induction", "first-token sink", "self", "entropy (nats)"):
        assert set(table[column]) == {"–"}


def test_two_tokens_are_measurable() -> None:
    trace = _pattern_trace([np.stack([_previous_token(2), _sink(2)])], [3, 4])
    s = head_scores(trace)
    assert s.label(0, 0) == "previous-token"
    assert s.first[0, 1] == 1.0 and s.entropy[0, 1] == 0.0


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
