"""Derived views of a Trace, computed once here and read by pages, tests and benchmarks.

Pure functions of a `Trace` (and, for the logit lens, the model's final LayerNorm and
unembedding). Nothing here runs the model's blocks again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.model import GPT
from engine.names import act_name
from engine.trace import Trace

# --- layer norm and residual stream ------------------------------------------------------------


@dataclass(frozen=True)
class LNStats:
    """Statistics of the vectors entering one LayerNorm, per token."""

    name: str  # "blocks.i.ln1", "blocks.i.ln2" or "ln_final"
    mean: np.ndarray  # [T]
    std: np.ndarray  # [T] population standard deviation over the features
    scale: np.ndarray  # [T] sqrt(var + eps), what the LayerNorm divides by


def ln_input(trace: Trace, which: str, layer: int | None = None) -> np.ndarray:
    """The residual that enters `ln1`/`ln2` of `layer`, or `ln_final` ([T, d])."""
    if which == "ln1":
        return trace.get("hook_resid_pre", layer)
    if which == "ln2":
        return trace.get("hook_resid_mid", layer)
    if which == "ln_final":
        return trace.get("hook_resid_post", trace.config.n_layer - 1)
    raise ValueError(f"unknown LayerNorm {which!r}: use ln1, ln2 or ln_final")


def ln_stats(trace: Trace, which: str, layer: int | None = None) -> LNStats:
    x = ln_input(trace, which, layer).astype(np.float64)
    scale_site = "ln_final.hook_scale" if which == "ln_final" else f"{which}.hook_scale"
    scale = trace.acts[scale_site] if which == "ln_final" else trace.get(scale_site, layer)
    name = "ln_final" if which == "ln_final" else f"blocks.{layer}.{which}"
    return LNStats(name=name, mean=x.mean(-1), std=x.std(-1), scale=scale[:, 0].astype(np.float64))


def all_ln_stats(trace: Trace) -> list[LNStats]:
    """Every LayerNorm in forward order: ln1, ln2 of each block, then ln_final."""
    out = []
    for layer in range(trace.config.n_layer):
        out.append(ln_stats(trace, "ln1", layer))
        out.append(ln_stats(trace, "ln2", layer))
    out.append(ln_stats(trace, "ln_final"))
    return out


def residual_stack(trace: Trace) -> np.ndarray:
    """[n_layer + 1, T, d]: the residual after the embeddings, then after every block."""
    first = trace.get("hook_resid_pre", 0)
    rest = [trace.get("hook_resid_post", i) for i in range(trace.config.n_layer)]
    return np.stack([first, *rest]).astype(np.float32)


def residual_norms(trace: Trace) -> np.ndarray:
    """[n_layer + 1, T]: L2 norm of each token's residual after embeddings and each block."""
    return np.linalg.norm(residual_stack(trace).astype(np.float64), axis=-1)


# --- heads -------------------------------------------------------------------------------------

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
        return head_label(
            self.previous[layer, head],
            self.induction[layer, head],
            self.first[layer, head],
            self.self_[layer, head],
        )


def head_label(previous: float, induction: float, first: float, self_: float) -> str:
    """A short role name for a head from its scores (thresholds chosen for teaching: the
    strongest clear pattern wins; otherwise the head attends broadly)."""
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
    occurrence m of token_ids[i]. Only queries with at least one target are listed."""
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
    """Scores of every head, one layer at a time (memory stays at one layer's pattern)."""
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


# --- logit lens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogitLens:
    """The logit lens over every layer and position, top-k only (never [layers, T, vocab]).

    Row 0 reads the residual after the embeddings, row i the residual after block i - 1; the
    last row is the model's own output distribution. Each row applies `ln_f` with that
    residual's own statistics, then the tied unembedding, then softmax.

    top_ids, top_probs: [n_layer + 1, T, k]
    next_prob, next_rank: [n_layer + 1, T] probability and rank (0 = top) of the token that
        actually comes next; NaN / -1 at the last position.
    entropy: [n_layer + 1, T] in nats.
    """

    top_ids: np.ndarray
    top_probs: np.ndarray
    next_prob: np.ndarray
    next_rank: np.ndarray
    entropy: np.ndarray

    @property
    def layer_labels(self) -> list[str]:
        return ["embed"] + [f"block {i}" for i in range(self.top_ids.shape[0] - 1)]


def _lens_logits(model: GPT, resid: torch.Tensor) -> torch.Tensor:
    ln_f = model.transformer.ln_f
    x = torch.nn.functional.layer_norm(resid, (resid.shape[-1],), ln_f.weight, ln_f.bias, ln_f.eps)
    return x @ model.lm_head_weight.T


def _lens_rows(
    logits: torch.Tensor, targets: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For logits [n, V]: top-k ids and probabilities, the probability and rank of each row's
    target (targets < 0 give junk there, masked by the caller), and the entropy in nats.

    Memory-bound work on [n, V] is kept to a few passes: top-k and the rank are read from the
    logits (softmax keeps their order), one in-place shift, one softmax, one batched dot
    product. `logits` is overwritten."""
    vals, ids = logits.topk(k, dim=-1)  # the largest logits are the most probable tokens
    t_logit = logits.gather(1, targets.clamp(min=0)[:, None])  # [n, 1]
    # tokens strictly more probable than the target (an int32 sum: a bool sum first casts the
    # whole [n, V] comparison to int64)
    rank = (logits > t_logit).sum(-1, dtype=torch.int32)
    # Shift each row so its top logit is 0 (in place; softmax is unchanged): the sums below
    # then add small numbers, so the entropy keeps its precision when the logits are large.
    top = vals[:, :1].clone()
    shifted = logits.sub_(top)
    probs = torch.softmax(shifted, dim=-1)
    # log-sum-exp of the shifted row from the top token: log p_top = 0 - lse, p_top >= 1/V
    lse = -torch.log(probs.gather(1, ids[:, :1]))  # [n, 1]
    # entropy = -sum p log p = lse - sum p * shifted logit
    entropy = lse[:, 0] - (probs[:, None, :] @ shifted[:, :, None])[:, 0, 0]
    lse = lse + top  # the row's own log-sum-exp
    return ids, (vals - lse).exp(), (t_logit[:, 0] - lse[:, 0]).exp(), rank, entropy


def logit_lens(trace: Trace, model: GPT, k: int = 10, chunk_rows: int = 0) -> LogitLens:
    """Compute the lens in chunks of (layer, position) rows so memory stays bounded: each chunk
    holds at most `chunk_rows` x vocabulary floats (default: about 64 MB)."""
    _check_lens_model(trace, model)
    stack = torch.from_numpy(residual_stack(trace))  # [L+1, T, d]
    L1, T, d = stack.shape
    V = model.config.vocab_size
    k = min(k, V)
    rows = stack.reshape(L1 * T, d)
    targets = torch.full((L1 * T,), -1, dtype=torch.long)
    if T > 1:
        nxt = torch.tensor(np.asarray(trace.token_ids[1:]), dtype=torch.long)
        targets.view(L1, T)[:, :-1] = nxt
    chunk = chunk_rows or max(1, (64 * 1024 * 1024) // (4 * V))
    top_ids = torch.empty(L1 * T, k, dtype=torch.long)
    top_probs = torch.empty(L1 * T, k)
    next_prob = torch.full((L1 * T,), float("nan"))
    next_rank = torch.full((L1 * T,), -1, dtype=torch.long)
    entropy = torch.empty(L1 * T)
    with torch.inference_mode():
        for s in range(0, L1 * T, chunk):
            e = min(L1 * T, s + chunk)
            tgt = targets[s:e]
            ids, probs, p_next, rank, ent = _lens_rows(_lens_logits(model, rows[s:e]), tgt, k)
            top_ids[s:e], top_probs[s:e], entropy[s:e] = ids, probs, ent
            has = tgt >= 0
            next_prob[s:e] = torch.where(has, p_next, float("nan"))
            next_rank[s:e] = torch.where(has, rank, -1)
    shape = (L1, T)
    return LogitLens(
        top_ids=top_ids.reshape(*shape, k).numpy(),
        top_probs=top_probs.reshape(*shape, k).numpy(),
        next_prob=next_prob.reshape(shape).numpy(),
        next_rank=next_rank.reshape(shape).numpy(),
        entropy=entropy.reshape(shape).numpy(),
    )


def _check_lens_model(trace: Trace, model: GPT) -> None:
    """The lens unembeds the Trace's residuals with `model`'s ln_f and wte: they must match."""
    ours, theirs = trace.config, model.config
    if (ours.d_model, ours.vocab_size) != (theirs.d_model, theirs.vocab_size):
        raise ValueError(
            f"this Trace comes from a model of width {ours.d_model} with {ours.vocab_size} "
            f"tokens, but the lens was given one of width {theirs.d_model} with "
            f"{theirs.vocab_size} tokens: use the model that made the Trace"
        )


def lens_distribution(trace: Trace, model: GPT, row: int, pos: int) -> np.ndarray:
    """The full next-token distribution [V] of lens row `row` (0 = embeddings) at `pos`."""
    _check_lens_model(trace, model)
    L, T = trace.config.n_layer, trace.n_tokens
    if not (0 <= row <= L and 0 <= pos < T):
        raise ValueError(
            f"lens row {row}, position {pos} is outside rows 0..{L} and positions 0..{T - 1}"
        )
    # Only the one vector (residual_stack would copy every layer's residual first).
    stored = trace.get("hook_resid_pre", 0) if row == 0 else trace.get("hook_resid_post", row - 1)
    resid = torch.from_numpy(np.array(stored[pos][None], dtype=np.float32))
    with torch.inference_mode():
        return torch.softmax(_lens_logits(model, resid), dim=-1)[0].numpy()


def final_probs(trace: Trace, pos: int) -> np.ndarray:
    """The model's own next-token distribution at `pos`, from the stored logits."""
    logits = trace.logits[pos].astype(np.float64)
    p = np.exp(logits - logits.max())
    return p / p.sum()


__all__ = [
    "HEAD_LABELS",
    "HeadScores",
    "LNStats",
    "LogitLens",
    "act_name",
    "all_ln_stats",
    "final_probs",
    "head_label",
    "head_scores",
    "induction_targets",
    "lens_distribution",
    "ln_input",
    "ln_stats",
    "logit_lens",
    "residual_norms",
    "residual_stack",
]
