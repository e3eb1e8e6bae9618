"""n-gram baselines for the model card: add-one unigram, and interpolated Kneser-Ney bigram and
trigram with absolute discounting (Chen & Goodman 1998, section 3.5; one discount per order,
D = n1 / (n1 + 2 n2)), fitted on the training split with the model's tokenizer and scored on
exactly the validation targets `engine.training.train.estimate_loss` scores.
"""

from __future__ import annotations

import numpy as np

from engine.card import Baselines


def _discount(counts: np.ndarray) -> float:
    """Absolute discount D = n1 / (n1 + 2 n2) from the counts-of-counts (Ney et al. 1994), kept
    inside [0.05, 0.95] so that neither the counts nor the lower order ever get all the mass
    (only tiny or degenerate data reach the limits; on the corpus D lies in 0.4-0.8)."""
    n1 = int(np.sum(counts == 1))
    n2 = int(np.sum(counts == 2))
    if n1 + 2 * n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[k] where keys[k] == query (keys sorted and unique), else 0."""
    if len(keys) == 0:
        return np.zeros(len(query), dtype=np.float64)
    idx = np.searchsorted(keys, query)
    idx = np.minimum(idx, len(keys) - 1)
    found = keys[idx] == query
    return np.where(found, values[idx], 0).astype(np.float64)


def _grouped(codes: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unique codes and, per code, the number of entries (or the sum of `weights`)."""
    keys, inverse = np.unique(codes, return_inverse=True)
    sums = np.bincount(inverse, weights=weights, minlength=len(keys))
    return keys, sums.astype(np.float64)


class KneserNey:
    """Interpolated Kneser-Ney n-gram model (order 1, 2 or 3) over token ids `0..V-1`.

    The highest order uses raw counts, the lower orders continuation counts (in how many distinct
    contexts a token follows), and the unigram level interpolates with the uniform distribution,
    so every token has a non-zero probability and each conditional distribution sums to 1.
    Order 1 is plain add-one (Laplace) smoothing of unigram counts.
    """

    def __init__(self, train_ids: np.ndarray, vocab_size: int, order: int) -> None:
        if order not in (1, 2, 3):
            raise ValueError(f"order must be 1, 2 or 3, got {order}")
        ids = np.asarray(train_ids, dtype=np.int64)
        if ids.size < order + 1:
            raise ValueError("too few training tokens for this order")
        if ids.min() < 0 or ids.max() >= vocab_size:
            raise ValueError("training ids outside the vocabulary")
        V = self.V = int(vocab_size)
        self.order = order
        self.discounts: tuple[float, ...] = ()
        self.unigram_counts = np.bincount(ids, minlength=V).astype(np.float64)
        if order == 1:
            return
        # Bigram level.
        bigram_keys, bigram_counts = _grouped(ids[:-1] * V + ids[1:])
        if order == 2:
            # Highest order: raw counts c(v w); below it the continuation unigram.
            self._top_keys, self._top_counts = bigram_keys, bigram_counts
            self._top_ctx_keys, self._top_ctx_total = _grouped(bigram_keys // V, bigram_counts)
            _, self._top_ctx_types = _grouped(bigram_keys // V)
            self._d_top = _discount(bigram_counts)
            cont_unigram_source = bigram_keys % V  # N1+(. w): one entry per distinct (v, w)
            self.discounts = (self._d_top,)
        else:
            trigram_keys, trigram_counts = _grouped((ids[:-2] * V + ids[1:-1]) * V + ids[2:])
            self._top_keys, self._top_counts = trigram_keys, trigram_counts
            self._top_ctx_keys, self._top_ctx_total = _grouped(trigram_keys // V, trigram_counts)
            _, self._top_ctx_types = _grouped(trigram_keys // V)
            self._d_top = _discount(trigram_counts)
            # Middle order (bigram) with continuation counts N1+(. v w).
            mid_keys, mid_counts = _grouped(trigram_keys % (V * V))
            self._mid_keys, self._mid_counts = mid_keys, mid_counts
            self._mid_ctx_keys, self._mid_ctx_total = _grouped(mid_keys // V, mid_counts)
            _, self._mid_ctx_types = _grouped(mid_keys // V)
            self._d_mid = _discount(mid_counts)
            cont_unigram_source = mid_keys % V  # N1+(. w) over distinct (v, w) of the middle order
            self.discounts = (self._d_top, self._d_mid)
        cont = np.bincount(cont_unigram_source, minlength=V).astype(np.float64)
        self._d_uni = _discount(cont[cont > 0])
        self.discounts = (*self.discounts, self._d_uni)
        total = cont.sum()
        seen_types = float(np.sum(cont > 0))
        self._p_uni = (
            np.maximum(cont - self._d_uni, 0.0) / total + self._d_uni * seen_types / total / V
        )

    def _p_unigram(self, w: np.ndarray) -> np.ndarray:
        if self.order == 1:
            return (self.unigram_counts[w] + 1.0) / (self.unigram_counts.sum() + self.V)
        return self._p_uni[w]

    def _level(
        self,
        keys: np.ndarray,
        counts: np.ndarray,
        ctx_keys: np.ndarray,
        ctx_total: np.ndarray,
        ctx_types: np.ndarray,
        d: float,
        ctx: np.ndarray,
        w: np.ndarray,
        lower: np.ndarray,
    ) -> np.ndarray:
        c = _lookup(keys, counts, ctx * self.V + w)
        total = _lookup(ctx_keys, ctx_total, ctx)
        types = _lookup(ctx_keys, ctx_types, ctx)
        safe = np.maximum(total, 1.0)
        interpolated = np.maximum(c - d, 0.0) / safe + d * types / safe * lower
        return np.where(total > 0, interpolated, lower)

    def prob(self, history: np.ndarray | None, w: np.ndarray) -> np.ndarray:
        """P(w | history) for arrays of targets `w` [N] and histories [N, order - 1] (the
        preceding tokens, oldest first; None for order 1)."""
        w = np.asarray(w, dtype=np.int64)
        p = self._p_unigram(w)
        if self.order == 1:
            return p
        history = np.asarray(history, dtype=np.int64).reshape(len(w), self.order - 1)
        if self.order == 2:
            return self._level(
                self._top_keys,
                self._top_counts,
                self._top_ctx_keys,
                self._top_ctx_total,
                self._top_ctx_types,
                self._d_top,
                history[:, 0],
                w,
                p,
            )
        p_mid = self._level(
            self._mid_keys,
            self._mid_counts,
            self._mid_ctx_keys,
            self._mid_ctx_total,
            self._mid_ctx_types,
            self._d_mid,
            history[:, 1],
            w,
            p,
        )
        return self._level(
            self._top_keys,
            self._top_counts,
            self._top_ctx_keys,
            self._top_ctx_total,
            self._top_ctx_types,
            self._d_top,
            history[:, 0] * self.V + history[:, 1],
            w,
            p_mid,
        )

    def loss(self, ids: np.ndarray, first_target: int = 1, last_target: int | None = None) -> float:
        """Mean negative log-likelihood (nats) of `ids[first_target:last_target + 1]`, each given
        the tokens before it (the first target needs `order - 1` tokens of history)."""
        ids = np.asarray(ids, dtype=np.int64)
        last = len(ids) - 1 if last_target is None else last_target
        first = max(first_target, self.order - 1)
        pos = np.arange(first, last + 1)
        lags = range(self.order - 1, 0, -1)  # oldest first
        history = np.stack([ids[pos - k] for k in lags], axis=1) if self.order > 1 else None
        p = self.prob(history, ids[pos])
        return float(-np.mean(np.log(p)))


def ngram_baselines(
    train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int, seq_len: int
) -> Baselines:
    """Score the n-gram models on the same targets `estimate_loss(model, val_ids, seq_len)` scores:
    positions 1 .. n * seq_len of the validation split, n = (len - 1) // seq_len windows. An
    n-gram model's history may reach back across a window boundary (the transformer's may not);
    that favours the baselines slightly."""
    n_windows = (len(val_ids) - 1) // seq_len
    last = n_windows * seq_len
    # The trigram's first target is position 2; score position 1 with the bigram so all three
    # baselines average over exactly the same targets.
    uni = KneserNey(train_ids, vocab_size, 1)
    bi = KneserNey(train_ids, vocab_size, 2)
    tri = KneserNey(train_ids, vocab_size, 3)
    n = last
    tri_sum = tri.loss(val_ids, 2, last) * (n - 1) + bi.loss(val_ids, 1, 1)
    return Baselines(
        unigram=uni.loss(val_ids, 1, last),
        bigram_kn=bi.loss(val_ids, 1, last),
        trigram_kn=tri_sum / n,
        discounts_bigram=bi.discounts,
        discounts_trigram=tri.discounts,
        n_train_tokens=len(train_ids),
        n_val_targets=n,
    )
