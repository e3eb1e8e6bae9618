"""engine.training.baselines: interpolated Kneser-Ney n-gram baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.training.baselines import KneserNey, ngram_baselines


def _skewed_ids(n: int, vocab: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, vocab, n) % rng.integers(1, vocab, n)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_kneser_ney_distributions_sum_to_one_in_seen_and_unseen_contexts(order: int) -> None:
    V = 40
    ids = _skewed_ids(3000, V)
    model = KneserNey(ids, V, order)
    contexts = [(int(ids[10]), int(ids[11])), (3, 4), (39, 38)]  # seen, and probably unseen
    for ctx in contexts:
        history = None if order == 1 else np.tile(np.array(ctx[2 - (order - 1) :]), (V, 1))
        p = model.prob(history, np.arange(V))
        assert (p > 0).all()
        assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_kneser_ney_bigram_matches_a_hand_computed_probability() -> None:
    # "a b a b a c": bigram counts ab=2, ba=2, ac=1 -> D = n1 / (n1 + 2 n2) = 1 / 5.
    # Every token follows exactly one distinct token, so the continuation unigram is uniform.
    # P(b | a) = (2 - 0.2) / 3 + 0.2 * 2 / 3 * 1 / 3
    ids = np.array([0, 1, 0, 1, 0, 2])
    model = KneserNey(ids, 3, 2)
    assert model.discounts[0] == pytest.approx(0.2)
    p = model.prob(np.array([[0]]), np.array([1]))[0]
    assert p == pytest.approx(1.8 / 3 + 0.4 / 9)
    # An unseen context falls back to the continuation unigram.
    assert model.prob(np.array([[2]]), np.array([1]))[0] == pytest.approx(1 / 3)


def test_kneser_ney_loss_is_the_mean_negative_log_probability_of_each_target() -> None:
    V = 30
    ids = _skewed_ids(2000, V, seed=1)
    model = KneserNey(ids[:1500], V, 3)
    held = ids[1500:]
    manual = -np.mean(
        [np.log(model.prob(held[i - 2 : i][None], held[i : i + 1])[0]) for i in range(2, len(held))]
    )
    assert model.loss(held, 2) == pytest.approx(manual, rel=1e-12)


def test_higher_order_baselines_win_on_text_with_local_structure() -> None:
    # A source where the previous token narrows the next one to two choices and the token
    # before it picks one of them (with noise): bigram < unigram, trigram < bigram.
    rng = np.random.default_rng(0)
    V, n = 64, 60_000
    ids = np.zeros(n, dtype=np.int64)
    ids[:2] = [1, 2]
    for i in range(2, n):
        ids[i] = (ids[i - 1] * 7 + ids[i - 2] % 2) % V if rng.random() < 0.8 else rng.integers(V)
    b = ngram_baselines(ids[:50_000], ids[50_000:], V, seq_len=100)
    assert b.unigram == pytest.approx(math.log(V), abs=0.05)  # the marginal is nearly uniform
    assert b.trigram_kn < b.bigram_kn < b.unigram
    assert b.n_val_targets == ((10_000 - 1) // 100) * 100
