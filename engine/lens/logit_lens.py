"""Stage 8, the logit lens: what each layer's residual would predict as the next token.

The logit lens (nostalgebraist 2020, "interpreting GPT: the logit lens") reads the residual
after the embeddings and after every block through the model's own final LayerNorm `ln_f`
(with that residual's own statistics) and its unembedding (`GPT.unembed`, the one place
that does both: the token embedding when tied, as in GPT-2, else the model's own `lm_head`), then
a softmax. Lenses that skip `ln_f` read a differently scaled vector than
the one the model's output sees. Nothing here runs the model's blocks again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.lens.residual import residual_stack
from engine.model import GPT
from engine.sampling import padding_masked, softmax
from engine.trace import Trace


@dataclass(frozen=True)
class LogitLens:
    """The logit lens over every layer and position, top-k only (never [layers, T, vocab]).

    Row 0 reads the residual after the embeddings, row i the residual after block i - 1; the
    last row is the model's own output distribution. Each row applies `ln_f` with that
    residual's own statistics, then the unembedding (`GPT.lm_head_weight`), then softmax over
    the tokenizer's ids only (`Trace.n_valid_ids`: the padding rows of a padded vocabulary are
    left out, so every id here names a token and the probabilities sum to 1 over real tokens).

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
    sublayers: bool = False  # rows after each attention and each MLP (`sublayer_stack`)

    @property
    def layer_labels(self) -> list[str]:
        """Row names: "embed", then "block 0" .. "block n_layer-1" (the residual read after it);
        with `sublayers`, "block 0 attn", "block 0 mlp", ... (after its attention, its MLP)."""
        if self.sublayers:
            n_layer = (self.top_ids.shape[0] - 1) // 2
            return ["embed"] + [f"block {i} {p}" for i in range(n_layer) for p in ("attn", "mlp")]
        return ["embed"] + [f"block {i}" for i in range(self.top_ids.shape[0] - 1)]


def sublayer_stack(trace: Trace) -> np.ndarray:
    """[2 n_layer + 1, T, d] float32: the residual after the embeddings, then after each block's
    attention (`blocks.i.hook_resid_mid`) and after its MLP (`blocks.i.hook_resid_post`)."""
    rows = [trace.get("hook_resid_pre", 0)]
    for i in range(trace.config.n_layer):
        rows += [trace.get("hook_resid_mid", i), trace.get("hook_resid_post", i)]
    return np.stack(rows).astype(np.float32)


def _lens_rows(
    logits: torch.Tensor, targets: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For logits [n, V]: top-k ids and probabilities, the probability and rank of each row's
    target (targets < 0 give junk there, masked by the caller), and the entropy in nats.

    Memory-bound work on [n, V] is kept to a few passes: top-k and the rank are read from the
    logits (softmax keeps their order), one in-place shift, one log-sum-exp, one exp, one
    product summed per row (entropy within 1e-5 nats of float64). `logits` is overwritten."""
    vals, ids = logits.topk(k, dim=-1)  # the largest logits are the most probable tokens
    t_logit = logits.gather(1, targets.clamp(min=0)[:, None])  # [n, 1]
    # tokens strictly more probable than the target (an int32 sum: a bool sum first casts the
    # whole [n, V] comparison to int64)
    rank = (logits > t_logit).sum(-1, dtype=torch.int32)
    # Shift each row so its top logit is 0 (in place; softmax is unchanged): the sums below
    # then add small numbers, so the entropy keeps its precision when the logits are large.
    top = vals[:, :1].clone()
    # a masked (-inf) logit becomes the lowest float: its p is 0 and 0 x it is 0, not nan
    shifted = logits.sub_(top).clamp_(min=torch.finfo(logits.dtype).min)
    lse = torch.logsumexp(shifted, dim=-1, keepdim=True)  # [n, 1], of the shifted row
    probs = shifted.sub(lse).exp_()  # softmax; its float32 sum would lose 1e-5 nats at 50k
    # entropy = -sum p log p = lse - sum p * shifted logit, summed per row (a batched matrix
    # product accumulated in float32 lost up to 1e-4 nats at 384 rows of 50,257)
    entropy = lse[:, 0] - (probs * shifted).sum(-1, dtype=torch.float64).float()
    lse = lse + top  # the row's own log-sum-exp
    return ids, (vals - lse).exp(), (t_logit[:, 0] - lse[:, 0]).exp(), rank, entropy


def logit_lens(
    trace: Trace, model: GPT, k: int = 10, chunk_rows: int = 0, sublayers: bool = False
) -> LogitLens:
    """The logit lens (nostalgebraist 2020) of every layer and position of `trace`, read through
    `model`'s `ln_f` and unembedding: a LogitLens with the top `k` tokens (k is cut to the
    vocabulary size) of each of the [n_layer + 1, T] rows. Only ids below the Trace's
    `n_valid_ids` are read: a padded vocabulary's padding rows never appear and take no
    probability.

    Computed in chunks of (layer, position) rows so memory stays bounded: each chunk holds at
    most `chunk_rows` x vocabulary floats (default 0: about 64 MB). Raises ValueError when
    `model`'s width or vocabulary differ from the Trace's. `sublayers`: read the residual after
    each attention block as well as after each MLP (`sublayer_stack`: 2 n_layer + 1 rows)."""
    _check_lens_model(trace, model)
    stack = torch.from_numpy(sublayer_stack(trace) if sublayers else residual_stack(trace))
    L1, T, d = stack.shape
    V = trace.n_valid_ids or model.config.vocab_size  # the padding rows are never read
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
            logits = _unembed(model, rows[s:e].to(model.device), trace)
            if logits.device.type == "mps":  # no float64 there (the entropy's accumulator)
                logits = logits.cpu()
            ids, probs, p_next, rank, ent = (
                t.cpu() for t in _lens_rows(logits, tgt.to(logits.device), k)
            )
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
        sublayers=sublayers,
    )


def _unembed(model: GPT, rows: torch.Tensor, trace: Trace) -> torch.Tensor:
    """Logits [n, n_valid_ids] of `rows` [n, d]: the padding columns cut off, the gap ids (no
    token) pushed to a huge negative logit (probability 0; finite, so the entropy's p * logit
    sums stay 0 rather than NaN)."""
    logits = model.unembed(rows)[:, : trace.n_valid_ids or model.config.vocab_size]
    if trace.gap_ids:
        logits[:, list(trace.gap_ids)] = torch.finfo(logits.dtype).min / 4
    return logits


def _check_lens_model(trace: Trace, model: GPT) -> None:
    """The lens unembeds the Trace's residuals with `model`'s ln_f and unembedding: they must
    match."""
    ours, theirs = trace.config, model.config
    if (ours.d_model, ours.vocab_size) != (theirs.d_model, theirs.vocab_size):
        raise ValueError(
            f"this Trace comes from a model of width {ours.d_model} with {ours.vocab_size} "
            f"tokens, but the lens was given one of width {theirs.d_model} with "
            f"{theirs.vocab_size} tokens: use the model that made the Trace"
        )


def lens_distribution(trace: Trace, model: GPT, row: int, pos: int) -> np.ndarray:
    """The full next-token distribution [V] (float32, sums to 1) of lens row `row` (0 = after
    the embeddings, i = after block i - 1) at position `pos`, computed on demand from the one
    stored residual; padding ids (>= the Trace's `n_valid_ids`) get probability 0. Raises
    ValueError for a row or position out of range, or a `model` whose
    width or vocabulary differ from the Trace's."""
    _check_lens_model(trace, model)
    L, T = trace.config.n_layer, trace.n_tokens
    if not (0 <= row <= L and 0 <= pos < T):
        raise ValueError(
            f"lens row {row}, position {pos} is outside rows 0..{L} and positions 0..{T - 1}"
        )
    # Only the one vector (residual_stack would copy every layer's residual first).
    stored = trace.get("hook_resid_pre", 0) if row == 0 else trace.get("hook_resid_post", row - 1)
    resid = torch.from_numpy(np.array(stored[pos][None], dtype=np.float32)).to(model.device)
    with torch.inference_mode():
        logits = model.unembed(resid)
        logits[:, trace.n_valid_ids or logits.shape[-1] :] = -torch.inf
        if trace.gap_ids:
            logits[:, list(trace.gap_ids)] = -torch.inf
        return torch.softmax(logits, dim=-1)[0].cpu().numpy()


def final_probs(trace: Trace, pos: int) -> np.ndarray:
    """The model's own next-token distribution [V] (float64) at position `pos`: the softmax of
    the stored logits (no model needed); padding ids (>= the Trace's `n_valid_ids`) get
    probability 0, so no top-k of it names one."""
    n_valid = trace.n_valid_ids or trace.config.vocab_size
    return softmax(padding_masked(trace.logits[pos], n_valid, trace.gap_ids))


__all__ = ["LogitLens", "final_probs", "lens_distribution", "logit_lens", "sublayer_stack"]
