"""Stage 3, attention heads: per-head scores on the traced text and a role label for each head.

The scores read every layer's stored pattern `attn.hook_pattern` [H, T(query), T(key)]. The
previous-token and induction scores follow Olsson et al. 2022 ("In-context Learning and
Induction Heads", section "Key Concepts"): an induction head attends from a token that occurred
before to the token that followed that earlier occurrence ([A][B] ... [A] -> [B]). On random
tokens repeated twice, the bundled model's probe, this is TransformerLens's induction score
(`induction_stripe`): the mean attention from each token of the second copy to the token
after its occurrence in the first copy.

A score averaged over no query is not measurable: it is NaN in the arrays and the head gets no
label (`HeadScores.label` returns None); displays show "–" (`engine.figures.common.shown`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.trace import Trace

HEAD_LABELS = ("previous-token", "induction", "first-token sink", "self", "broad")
CONTEXT_MATCH = 16  # tokens of preceding context compared to pick the earlier occurrence


@dataclass(frozen=True)
class HeadScores:
    """Per-head scores [n_layer, n_head] on the traced text, each in [0, 1] except entropy;
    NaN where the average runs over no query (not measurable).

    previous: mean weight a query puts on the token just before it (queries 1..T-1).
    first: mean weight on position 0 (queries 1..T-1), the attention sink.
    self_: mean weight on the query itself (queries 1..T-1: query 0 can only attend to
        itself, so counting it would add 1/T to every head).
    entropy: mean entropy (nats) of the attention rows (queries 1..T-1).
    induction: mean weight from each repeated token to the token after its earlier
        occurrence (`induction_targets`; NaN when the text repeats no token).
    A one-token text has no query 1..T-1: previous, first, self_ and entropy are all NaN.
    """

    previous: np.ndarray
    first: np.ndarray
    self_: np.ndarray
    entropy: np.ndarray
    induction: np.ndarray

    def label(self, layer: int, head: int) -> str | None:
        """The role name (`head_label`) of head `head` in layer `layer`; None when its scores
        are not measurable (a one-token text)."""
        return head_label(
            self.previous[layer, head],
            self.induction[layer, head],
            self.first[layer, head],
            self.self_[layer, head],
        )


def head_label(previous: float, induction: float, first: float, self_: float) -> str | None:
    """A short role name for a head from its scores (one of HEAD_LABELS), or None when the
    previous-token, first-token or self score is NaN (measured over no query).

    Thresholds chosen for teaching: the strongest clear pattern wins (induction >= 0.3 and at
    least the previous-token score, then previous-token >= 0.4, first-token sink >= 0.5, self
    >= 0.4); otherwise the head attends broadly. A NaN induction score (no repeated token) never
    makes an induction head."""
    if np.isnan(previous) or np.isnan(first) or np.isnan(self_):
        return None
    if not np.isnan(induction) and induction >= 0.3 and induction >= previous:
        return "induction"
    if previous >= 0.4:
        return "previous-token"
    if first >= 0.5:
        return "first-token sink"
    if self_ >= 0.4:
        return "self"
    return "broad"


def _context_match(ids: np.ndarray, i: int, earlier: np.ndarray) -> np.ndarray:
    """For each earlier position m in `earlier`: how many of the CONTEXT_MATCH tokens before m
    equal the tokens before i, counted back from m - 1 until the first difference; an
    occurrence whose whole context back to the start of the text matches counts as a full
    match (CONTEXT_MATCH), as the first copy of a repeated sequence does."""
    length = np.zeros(len(earlier), dtype=np.int64)
    alive = np.ones(len(earlier), dtype=bool)
    for back in range(1, CONTEXT_MATCH + 1):
        at_start = alive & (earlier - back < 0)
        length[at_start] = CONTEXT_MATCH
        alive &= ~at_start
        alive[alive] &= ids[earlier[alive] - back] == ids[i - back]
        if not alive.any():
            break
        length += alive
    return length


def induction_targets(token_ids: np.ndarray, period: int = 0) -> list[tuple[int, int]]:
    """(query i, key j) pairs of the induction score (Olsson et al. 2022): a query i whose token
    occurred before at m, with m + 1 < i, and the key j = m + 1, the token after that earlier
    occurrence; pairs in increasing i, one per query. `token_ids` is [T] of ints.

    `period` > 0 says the text is a sequence repeated with that period (the probe's random
    tokens repeated twice): then only queries of the later copies count, and the earlier
    occurrence of query i is m = i - period, which is TransformerLens's `induction_stripe`.
    Otherwise, where the token occurred several times, m is the occurrence whose preceding
    tokens match those before i longest (`_context_match`), the latest of equals."""
    ids = np.asarray(token_ids, dtype=np.int64)
    if period > 0:
        return [(i, i - period + 1) for i in range(period, len(ids)) if i - period + 1 < i]
    seen: dict[int, list[int]] = {}
    out = []
    for i, tok in enumerate(ids.tolist()):
        earlier = np.array([m for m in seen.get(tok, []) if m + 1 < i], dtype=np.int64)
        if len(earlier):
            match = _context_match(ids, i, earlier)
            best = len(match) - 1 - int(np.argmax(match[::-1]))  # the latest of the longest
            out.append((i, int(earlier[best]) + 1))
        seen.setdefault(tok, []).append(i)
    return out


def _mean_row_entropy(pattern: np.ndarray, row_block: int = 128) -> np.ndarray:
    """Mean entropy (nats) over queries 1..T-1 of each head's attention rows; `pattern` is one
    layer's [H, T, T] with T >= 2. Works on blocks of query rows and only on the keys a block
    can see (the causal triangle), in float32 with float64 sums, so a long text needs no
    [H, T, T] float64 copy."""
    H, T, _ = pattern.shape
    total = np.zeros(H)
    for start in range(1, T, row_block):
        stop = min(T, start + row_block)
        # a writable float32 copy of the visible block (torch refuses read-only numpy memory)
        block = torch.from_numpy(np.array(pattern[:, start:stop, :stop], dtype=np.float32))
        total += torch.special.entr(block).sum(dim=(1, 2), dtype=torch.float64).numpy()
    return total / (T - 1)


def head_scores(trace: Trace, period: int = 0) -> HeadScores:
    """Scores of every head ([n_layer, n_head] each, float64), in one streaming pass over the
    layers: each layer's pattern is read (on a lazy Trace: computed without entering its
    cache, `Trace.get(..., keep=False)`), scored and dropped, so memory stays at one layer's
    pattern. With a single token, previous, first, self_ and entropy are NaN (no query to
    average over); induction is NaN when no token repeats (see HeadScores).
    `period`: the period of a text known to be a repeated sequence (the induction probe), 0 for
    any other text (see `induction_targets`)."""
    L, H, T = trace.config.n_layer, trace.config.n_head, trace.n_tokens
    previous, first, self_, entropy, induction = (np.full((L, H), np.nan) for _ in range(5))
    pairs = induction_targets(trace.token_ids, period)
    q = np.arange(1, T)
    for layer in range(L):
        pattern = trace.get("attn.hook_pattern", layer, keep=False)  # [H, T(query), T(key)]
        if T > 1:
            previous[layer] = pattern[:, q, q - 1].astype(np.float64).mean(-1)
            first[layer] = pattern[:, 1:, 0].astype(np.float64).mean(-1)
            self_[layer] = pattern[:, q, q].astype(np.float64).mean(-1)
            entropy[layer] = _mean_row_entropy(pattern)
        if pairs:
            rows, keys = (np.array(a) for a in zip(*pairs, strict=True))
            induction[layer] = pattern[:, rows, keys].astype(np.float64).mean(-1)
    return HeadScores(previous, first, self_, entropy, induction)


__all__ = [
    "CONTEXT_MATCH",
    "HEAD_LABELS",
    "HeadScores",
    "head_label",
    "head_scores",
    "induction_targets",
]
