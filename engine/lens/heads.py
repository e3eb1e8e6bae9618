"""Stage 3, attention heads: per-head scores on the traced text and a role label for each head.

The scores read every layer's stored pattern `attn.hook_pattern` [H, T(query), T(key)]. The
previous-token and induction scores follow Olsson et al. 2022 ("In-context Learning and
Induction Heads"): an induction head attends from a token to the token that followed an earlier
occurrence of the same token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.trace import Trace

HEAD_LABELS = ("previous-token", "induction", "first-token sink", "self", "broad")


@dataclass(frozen=True)
class HeadScores:
    """Per-head scores [n_layer, n_head] on the traced text, each in [0, 1] except entropy.

    previous: mean weight a query puts on the token just before it (queries 1..T-1).
    first: mean weight on position 0 (queries 1..T-1), the attention sink.
    self_: mean weight on the query itself (queries 1..T-1: query 0 can only attend to
        itself, so counting it would add 1/T to every head).
    entropy: mean entropy (nats) of the attention rows (queries 1..T-1).
    induction: mean weight on the token after an earlier occurrence of the query's token
        (NaN when the text repeats no token).
    """

    previous: np.ndarray
    first: np.ndarray
    self_: np.ndarray
    entropy: np.ndarray
    induction: np.ndarray

    def label(self, layer: int, head: int) -> str:
        """The role name (`head_label`) of head `head` in layer `layer`."""
        return head_label(
            self.previous[layer, head],
            self.induction[layer, head],
            self.first[layer, head],
            self.self_[layer, head],
        )


def head_label(previous: float, induction: float, first: float, self_: float) -> str:
    """A short role name for a head from its scores (one of HEAD_LABELS).

    Thresholds chosen for teaching: the strongest clear pattern wins (induction >= 0.3 and at
    least the previous-token score, then previous-token >= 0.4, first-token sink >= 0.5, self
    >= 0.4); otherwise the head attends broadly. A NaN induction score (no repeated token) never
    makes an induction head."""
    if not np.isnan(induction) and induction >= 0.3 and induction >= previous:
        return "induction"
    if previous >= 0.4:
        return "previous-token"
    if first >= 0.5:
        return "first-token sink"
    if self_ >= 0.4:
        return "self"
    return "broad"


def induction_targets(token_ids: np.ndarray) -> list[tuple[int, list[int]]]:
    """For each query position i: the positions j = m + 1 (m + 1 < i) after each earlier
    occurrence m of token_ids[i] (Olsson et al. 2022). Only queries with at least one target
    are listed, in increasing i; `token_ids` is [T] of ints."""
    ids = np.asarray(token_ids)
    seen: dict[int, list[int]] = {}
    out = []
    for i, tok in enumerate(ids.tolist()):
        targets = [m + 1 for m in seen.get(tok, []) if m + 1 < i]
        if targets:
            out.append((i, targets))
        seen.setdefault(tok, []).append(i)
    return out


def _mean_row_entropy(pattern: np.ndarray, row_block: int = 128) -> np.ndarray:
    """Mean entropy (nats) over queries 1..T-1 of each head's attention rows; `pattern` is one
    layer's [H, T, T]. Works on blocks of query rows and only on the keys a block can see
    (the causal triangle), in float32 with float64 sums, so a long text needs no [H, T, T]
    float64 copy."""
    H, T, _ = pattern.shape
    total = np.zeros(H)
    for start in range(1, T, row_block):
        stop = min(T, start + row_block)
        # a writable float32 copy of the visible block (torch refuses read-only numpy memory)
        block = torch.from_numpy(np.array(pattern[:, start:stop, :stop], dtype=np.float32))
        total += torch.special.entr(block).sum(dim=(1, 2), dtype=torch.float64).numpy()
    return total / (T - 1)


def head_scores(trace: Trace) -> HeadScores:
    """Scores of every head ([n_layer, n_head] each, float64), one layer at a time (memory stays
    at one layer's pattern). With a single token, previous is 0, first and self_ are 1 and
    entropy is 0; induction is NaN when no token repeats (see HeadScores)."""
    L, H, T = trace.config.n_layer, trace.config.n_head, trace.n_tokens
    previous, first = np.zeros((L, H)), np.ones((L, H))
    self_, entropy = np.ones((L, H)), np.zeros((L, H))
    targets = induction_targets(trace.token_ids)
    induction = np.zeros((L, H)) if targets else np.full((L, H), np.nan)
    q = np.arange(1, T)
    for layer in range(L):
        pattern = trace.get("attn.hook_pattern", layer)  # [H, T(query), T(key)]
        if T > 1:
            previous[layer] = pattern[:, q, q - 1].astype(np.float64).mean(-1)
            first[layer] = pattern[:, 1:, 0].astype(np.float64).mean(-1)
            self_[layer] = pattern[:, q, q].astype(np.float64).mean(-1)
            entropy[layer] = _mean_row_entropy(pattern)
        else:
            previous[layer] = 0.0
        if targets:
            per_query = [pattern[:, i, js].astype(np.float64).sum(-1) for i, js in targets]
            induction[layer] = np.mean(per_query, axis=0)
    return HeadScores(previous, first, self_, entropy, induction)


__all__ = ["HEAD_LABELS", "HeadScores", "head_label", "head_scores", "induction_targets"]
