"""Stage 8, the logit lens: what each layer's residual would predict as the next token.

The logit lens (nostalgebraist 2020, "interpreting GPT: the logit lens") reads the residual
after the embeddings and after every block through the model's own final LayerNorm `ln_f`
(with that residual's own statistics) and its unembedding (`GPT.unembed`, the one place
that does both: the token embedding when tied, as in GPT-2, else the model's own `lm_head`), then
a softmax. Lenses that skip `ln_f` read a differently scaled vector than
the one the model's output sees. Nothing here runs the model's blocks again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.model import GPT
from engine.sampling import padding_masked, softmax
from engine.trace import Trace

# Sizes of the lens's work (measured on GPT-2 small, T=1,024: README, "Performance"). The
# unembedding runs one tile of TILE vocabulary columns at a time and every statistic is read from
# the tile while it is still in cache, instead of writing [rows, V] logits to memory and reading
# them back once per statistic: on an AMD EPYC (1 thread) a [512, 50,257] product ran at about
# 65 GFLOP/s, the same product in [512, 2,048] tiles at 92-97 (the machine's large-matmul rate),
# and each pass over the written logits cost another ~1-2 ns per logit. On an Intel Xeon
# ("Intel(R) Xeon(R) Processor", 2 cores) a [1,024, 2,048] tile runs at the rate of the
# 1,024 x 768 x 3,072 product that defines the lens's ideal (0.99-1.01 of it at 1 and 2 threads),
# a [512, 2,048] tile at 0.94 (1 thread) and 0.90 (2 threads): hence 1,024 rows per chunk.
# Between the statistics' passes the tiles ran at 1.03 of it (1 thread) and 1.19 (2 threads:
# torch.profiler of the whole lens); at 2 threads the whole lens with 2,048 rows per chunk, or
# with 1,024-column tiles, took 6-7% longer (medians of 4 alternating pairs, machine busy).
TILE = 2048  # vocabulary columns per matmul tile (rounded so tiles are about equal)
# default (position, layer) rows per chunk: work memory ~ CHUNK_ROWS x TILE x 16 B
CHUNK_ROWS = 1024
LENS_BLOCK = 16  # positions per cached block of the lens (`lens_blocks`; the Output page)
_TOPK_BLOCK = 64  # the top k are sought in the k blocks of this many columns with top maxima
_SLAB = 1 << 17  # logits (512 KiB, in L2) each statistic reads in turn on one thread
# On MKL, a float32 product with fewer than 4 rows, or fewer than 16 columns, takes another
# kernel that rounds differently (measured here): every product is given at least these, so
# a logit has the same bits whichever chunk, subset of positions or tile computes it.
_MIN_ROWS, _MIN_COLS = 8, 64


@dataclass(frozen=True)
class LogitLens:
    """The logit lens over every layer and some or all positions, top-k only (never
    [layers, T, vocab]).

    Row 0 reads the residual after the embeddings, row i the residual after block i - 1; the
    last row is the model's own output distribution. Each row applies `ln_f` with that
    residual's own statistics, then the unembedding (`GPT.lm_head_weight`), then softmax over
    the tokenizer's ids only (`Trace.n_valid_ids`: the padding rows of a padded vocabulary are
    left out, so every id here names a token and the probabilities sum to 1 over real tokens).

    Column j holds Trace position `positions[j]` (`column(pos)` finds it); a lens of every
    position has positions 0..T-1, so column = position.

    top_ids, top_probs: [rows, P, k]
    next_prob, next_rank: [rows, P] probability and rank (0 = top: how many tokens have a
        strictly larger logit) of the token that actually comes next; NaN / -1 at the Trace's
        last position.
    entropy: [rows, P] in nats.
    log_norm: [rows, P] float64, log of each cell's softmax denominator over the vocabulary
        (its log-sum-exp): p(token) = exp(logit - log_norm) for any token
        (`lens_token_probs`); None in a lens built without it.
    positions: [P] int64, increasing; None means 0..P-1.
    """

    top_ids: np.ndarray
    top_probs: np.ndarray
    next_prob: np.ndarray
    next_rank: np.ndarray
    entropy: np.ndarray
    sublayers: bool = False  # rows after each attention and each MLP (`sublayer_stack`)
    positions: np.ndarray | None = None
    log_norm: np.ndarray | None = None

    @property
    def layer_labels(self) -> list[str]:
        """Row names: "embed", then "block 0" .. "block n_layer-1" (the residual read after it);
        with `sublayers`, "block 0 attn", "block 0 mlp", ... (after its attention, its MLP)."""
        if self.sublayers:
            n_layer = (self.top_ids.shape[0] - 1) // 2
            return ["embed"] + [f"block {i} {p}" for i in range(n_layer) for p in ("attn", "mlp")]
        return ["embed"] + [f"block {i}" for i in range(self.top_ids.shape[0] - 1)]

    @property
    def position_list(self) -> np.ndarray:
        """[P] the Trace positions of the columns (0..P-1 when `positions` is None)."""
        if self.positions is None:
            return np.arange(self.top_ids.shape[1], dtype=np.int64)
        return self.positions

    def columns(self, positions: Iterable[int]) -> np.ndarray:
        """The column index of each Trace position in `positions` ([n] int64). Raises
        ValueError naming a position this lens did not compute."""
        have = self.position_list
        want = np.asarray(list(positions), dtype=np.int64).reshape(-1)
        idx = np.searchsorted(have, want)
        ok = (idx < len(have)) & (have[np.minimum(idx, len(have) - 1)] == want) if len(have) else []
        if not np.all(ok):
            missing = [int(p) for p, good in zip(want, ok, strict=False) if not good] or want
            raise ValueError(
                f"the logit lens was computed at {len(have)} positions, not at position "
                f"{int(missing[0])}: ask logit_lens for the positions it should read"
            )
        return idx.astype(np.int64)

    def column(self, pos: int) -> int:
        """The column index of Trace position `pos` (ValueError if it was not computed)."""
        return int(self.columns([pos])[0])

    def nbytes(self) -> int:
        """Bytes of its arrays."""
        arrays = (self.top_ids, self.top_probs, self.next_prob, self.next_rank, self.entropy)
        extra = (self.positions, self.log_norm)
        return int(sum(a.nbytes for a in arrays) + sum(a.nbytes for a in extra if a is not None))


def sublayer_stack(trace: Trace) -> np.ndarray:
    """[2 n_layer + 1, T, d] float32: the residual after the embeddings, then after each block's
    attention (`blocks.i.hook_resid_mid`) and after its MLP (`blocks.i.hook_resid_post`)."""
    return np.stack(_residual_sites(trace, True)).astype(np.float32)


def _residual_sites(trace: Trace, sublayers: bool) -> list[np.ndarray]:
    """The stored [T, d] residuals the lens reads, in row order (no copies)."""
    rows = [trace.get("hook_resid_pre", 0)]
    for i in range(trace.config.n_layer):
        if sublayers:
            rows.append(trace.get("hook_resid_mid", i))
        rows.append(trace.get("hook_resid_post", i))
    return rows


class _RowStats:
    """Statistics of a chunk's rows of logits, fed one vocabulary tile at a time and each read
    while the tile is in cache:

    - the top k: the k blocks of _TOPK_BLOCK columns with the largest maxima seen so far, kept
      with their values (every one of a row's k largest logits lies in one of its k best
      blocks, and a block that leaves the k best never returns); one top-k over those k blocks
      at the end. Only rows whose best block in the tile beats their k-th best are merged,
      and only the blocks that enter are copied, into the slots of the blocks they evict. On
      the Intel Xeon of the README (1 thread, 1,024 rows) the merges take ~0.5 ns a logit of
      the ~2 all the statistics take (merging every row's k blocks with each tile, as before,
      took ~1); a top-k pass over every tile cost ~2 on the AMD EPYC.
    - log-sum-exp and entropy from each tile's own maximum m_j: S_j = sum exp(l - m_j) and
      Q_j = sum exp(l - m_j)(l - m_j), float32 within a tile, combined in float64.
    - the rank of a threshold logit (the target's): how many logits are strictly above it,
      one comparison into a float buffer and its sum (exact: counts below 2^24)."""

    def __init__(
        self,
        k: int,
        threshold: torch.Tensor | None,
        targets: torch.Tensor,
        dtype: torch.dtype = torch.float32,
        finite: bool = False,
    ) -> None:
        """`dtype`: the logits'; `finite`: no logit is -inf (or +inf), so no shift is clamped."""
        self.k, self.t, self.targets, self.finite = k, threshold, targets, finite
        R, dev = len(targets), targets.device
        self.maxes: list[torch.Tensor] = []
        self.sums: list[torch.Tensor] = []
        self.dots: list[torch.Tensor] = []
        self.rank: torch.Tensor | None = None
        if threshold is not None:
            self.rank = torch.zeros(R, dtype=torch.float32, device=dev)
        # the k best blocks of each row: their maxima, first column's id and logits (-inf: none)
        self.best_max = torch.full((R, k), -torch.inf, dtype=dtype, device=dev)
        self.best_start = torch.zeros(R, k, dtype=torch.long, device=dev)
        self.best_vals = torch.full((R, k, _TOPK_BLOCK), -torch.inf, dtype=dtype, device=dev)
        self.work: torch.Tensor | None = None  # the passes' buffers (`_work`)

    def add(self, tile: torch.Tensor, v0: int) -> None:
        """Fold in logits `tile` [R, n] of vocabulary ids v0..v0+n-1 (contiguous; overwritten
        where more than one thread runs)."""
        R, n = tile.shape
        B = _TOPK_BLOCK
        nb = -(-n // B)
        dtype, dev = tile.dtype, tile.device
        blocks = tile  # [R, nb B]: the last tile is padded with -inf (never chosen over a logit)
        if nb * B != n:
            blocks = torch.full((R, nb * B), -torch.inf, dtype=dtype, device=dev)
            blocks[:, :n] = tile
        sums, dots, above = torch.empty(3, R, dtype=dtype, device=dev)
        # On one CPU thread, a slab of rows at a time, read from memory once (by its block
        # maxima) and from cache by every later pass; the tile is kept for the top-k merge.
        # With more threads, or on another device, the whole tile at once, merged first and
        # then shifted in place: there each op's fork and join cost more than the cache saves.
        one = tile.device.type == "cpu" and torch.get_num_threads() == 1
        step = min(R, max(1, _SLAB // n)) if one else R
        t = self.t[:, None] if self.t is not None else None
        if step < R:
            block_max = torch.empty(R, nb, dtype=dtype, device=dev)
            m = torch.empty(R, 1, dtype=dtype, device=dev)
            work = self._work(2 * step * n, tile)
            w_s, w_e = work[: step * n].view(step, n), work[step * n : 2 * step * n].view(step, n)
            slabs = zip(
                tile.split(step),
                blocks.view(R, nb, B).split(step),
                block_max.split(step),
                m.split(step),
                t.split(step) if t is not None else [None] * -(-R // step),
                above.split(step),
                sums.split(step),
                dots.split(step),
                strict=True,
            )
            for part, blk, bm, mj, tj, a_out, s_out, d_out in slabs:
                r = part.shape[0]
                torch.amax(torch.amax(blk, -1, out=bm), -1, keepdim=True, out=mj)
                shifted, e = (w_s, w_e) if r == step else (w_s[:r], w_e[:r])
                self._pass(part, mj, tj, shifted, e, a_out, s_out, d_out)
            self._merge(blocks, block_max, m[:, 0], v0)
            self._own(tile, v0)
        else:
            block_max = blocks.view(R, nb, B).amax(-1)
            m = block_max.amax(-1, keepdim=True)
            self._merge(blocks, block_max, m[:, 0], v0)
            self._own(tile, v0)  # before the tile is shifted
            e = self._work(R * n, tile)[: R * n].view(R, n)
            self._pass(tile, m, t, tile, e, above, sums, dots)
        if self.rank is not None:
            self.rank += above
        self.maxes.append(m[:, 0])
        self.sums.append(sums)
        self.dots.append(dots)

    def _pass(
        self,
        part: torch.Tensor,
        m: torch.Tensor,
        t: torch.Tensor | None,
        shifted: torch.Tensor,
        e: torch.Tensor,
        above: torch.Tensor,
        sums: torch.Tensor,
        dots: torch.Tensor,
    ) -> None:
        """Rows' logits `part` [r, n], their tile's maximum `m` [r, 1] and threshold `t` [r, 1]:
        the count above `t` into `above`, S_j into `sums`, Q_j into `dots` ([r] each);
        `shifted` (may be `part`: in place) and `e` are work space."""
        lowest = None if self.finite else torch.finfo(part.dtype).min
        if lowest is not None:  # a tile of -inf (masked) logits shifts by the lowest float
            m.clamp_(min=lowest)
        if t is not None:
            torch.sum(torch.gt(part, t, out=e), -1, out=above)
        # every exponential <= 1 (where a logit may be -inf it becomes the lowest float, whose
        # exponential is 0 and 0 x it is 0, not nan)
        torch.sub(part, m, out=shifted)
        if lowest is not None:
            shifted.clamp_(min=lowest)
        torch.exp(shifted, out=e)
        torch.sum(e, -1, out=sums)
        torch.sum(shifted.mul_(e), -1, out=dots)  # sum p' (l - m_j), float32

    def _own(self, tile: torch.Tensor, v0: int) -> None:
        """The target's own column, if its logit came out above the threshold computed
        elsewhere (one rounding apart), is not a token above the target."""
        if self.t is not None and self.rank is not None:
            inside = (self.targets >= v0) & (self.targets < v0 + tile.shape[1])
            rows = inside.nonzero()[:, 0]
            if len(rows):
                own = tile[rows, self.targets[rows] - v0]
                self.rank[rows] -= (own > self.t[rows]).float()

    def _work(self, size: int, like: torch.Tensor) -> torch.Tensor:
        """A flat float buffer of at least `size` elements, kept for the next tiles."""
        if self.work is None or self.work.numel() < size:
            self.work = torch.empty(size, dtype=like.dtype, device=like.device)
        return self.work

    def _merge(
        self, blocks: torch.Tensor, block_max: torch.Tensor, top: torch.Tensor, v0: int
    ) -> None:
        """Merge a tile's blocks (`blocks` [R, nb B] logits, `block_max` [R, nb] their maxima,
        `top` [R] the largest) into the k best blocks of each row."""
        B, k = _TOPK_BLOCK, self.k
        nb = block_max.shape[1]
        # rows where the tile's best block beats the k-th best kept so far
        rows = (top > self.best_max.amin(-1)).nonzero()[:, 0]
        r = len(rows)
        if not r:
            return
        every = r == len(top)
        kept = self.best_max if every else self.best_max.index_select(0, rows)
        new = block_max if every else block_max.index_select(0, rows)
        pick = torch.cat([kept, new], 1).topk(k, dim=-1, sorted=False).indices  # [r, k]
        # per row, as many tile blocks enter (picks >= k) as kept blocks leave (slots < k not
        # picked): pair them in order
        entering = (pick >= k).nonzero()
        block = pick.view(-1).index_select(0, entering[:, 0] * k + entering[:, 1]) - k
        stays = torch.zeros(r, k + 1, dtype=torch.bool, device=pick.device)
        leaving = (~stays.scatter_(1, pick.clamp(max=k), True)[:, :k]).nonzero()
        r_in, r_out = entering[:, 0], leaving[:, 0]
        if not every:
            r_in, r_out = rows.index_select(0, r_in), rows.index_select(0, r_out)
        slot = r_out * k + leaving[:, 1]
        src = r_in * nb + block
        self.best_max.view(-1).index_copy_(0, slot, block_max.view(-1).index_select(0, src))
        self.best_start.view(-1).index_copy_(0, slot, block * B + v0)
        self.best_vals.view(-1, B).index_copy_(0, slot, blocks.view(-1, B).index_select(0, src))

    def finish(self) -> tuple[torch.Tensor, ...]:
        """(top ids [R, k], top probabilities [R, k], p(threshold) [R], rank [R] int64 (zeros
        without a threshold), entropy [R] nats, log-sum-exp [R] float64), all on the CPU."""
        # float64 for the few numbers per row and tile (the MPS backend has none: CPU)
        mx = torch.stack(self.maxes, 1).cpu().double()  # [R, tiles]
        s = torch.stack(self.sums, 1).cpu().double()
        q = torch.stack(self.dots, 1).cpu().double()
        top = mx.amax(-1, keepdim=True)
        scale = torch.exp(mx - top)  # each tile's exponentials rescaled to the row's maximum
        total = (scale * s).sum(-1)
        # sum p'(l - top) = sum over tiles of scale * (Q_j + (m_j - top) S_j); entropy =
        # log S - that / S (nats), lse = top + log S
        dot = (scale * (q + (mx - top) * s)).sum(-1)
        log_s = torch.log(total)
        lse = top[:, 0] + log_s
        entropy = (log_s - dot / total).float()
        R, _kept, B = self.best_vals.shape
        offsets = torch.arange(B, device=self.best_vals.device)
        ids = (self.best_start[:, :, None] + offsets).reshape(R, -1)
        best, where = self.best_vals.reshape(R, -1).topk(self.k, dim=-1)
        top_ids = ids.gather(1, where).cpu()
        top_probs = (best.cpu().double() - lse[:, None]).exp().float()
        if self.t is None or self.rank is None:
            p_next = torch.full_like(entropy, float("nan"))
            rank = torch.zeros(R, dtype=torch.long)
        else:
            p_next = (self.t.cpu().double() - lse).exp().float()
            rank = self.rank.cpu().long()  # counts below 2^24 are exact in float32
        return top_ids, top_probs, p_next, rank, entropy, lse


def _lens_rows(
    logits: torch.Tensor, targets: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For logits [n, V] already computed: top-k ids and probabilities, the probability and
    rank of each row's target (targets < 0 give junk there, masked by the caller), and the
    entropy in nats (within 1e-5 nats of float64). The same statistics as `logit_lens`, read in
    tiles of TILE columns. `logits` may be overwritten."""
    t = logits.gather(1, targets.clamp(min=0)[:, None])[:, 0].clone()
    stats = _RowStats(k, t, targets, logits.dtype)
    for v0 in range(0, logits.shape[1], TILE):
        stats.add(logits[:, v0 : v0 + TILE].contiguous(), v0)
    return stats.finish()[:5]


def vocab_tiles(n_valid: int, tile: int = TILE) -> list[tuple[int, int]]:
    """(start, stop) of about equal tiles of at most `tile` columns (a multiple of the top-k
    block where it can be) covering ids 0..n_valid-1: the vocabulary tiles in which
    `logit_lens` computes and reduces the unembedding (the benchmark times the same products)."""
    n = -(-n_valid // tile)
    width = -(-n_valid // n)
    width = min(tile, -(-width // _TOPK_BLOCK) * _TOPK_BLOCK)
    return [(s, min(n_valid, s + width)) for s in range(0, n_valid, width)]


def _lens_chunk(
    model: GPT, rows: torch.Tensor, targets: torch.Tensor, k: int, trace: Trace, tile: int
) -> tuple[torch.Tensor, ...]:
    """`_RowStats.finish` of residuals `rows` [R, d] read through ln_f and the unembedding,
    one vocabulary tile at a time; targets [R] (< 0: none). Padding ids are never computed;
    gap ids (no token) get a huge negative logit (probability 0)."""
    n_rows = rows.shape[0]
    if n_rows < _MIN_ROWS:  # repeat the first row: the same kernel as a full chunk
        rows = torch.cat([rows, rows[:1].expand(_MIN_ROWS - n_rows, -1)])
        targets = torch.cat([targets, targets[:1].expand(_MIN_ROWS - n_rows)])
    weight = model.lm_head_weight
    x = model.transformer.ln_f(rows.to(weight.dtype))  # what GPT.unembed does before W_U
    n_valid = trace.n_valid_ids or model.config.vocab_size
    gap_logit = torch.finfo(weight.dtype).min / 4  # finite: p * logit stays 0, not nan
    gaps = torch.tensor(trace.gap_ids, dtype=torch.long, device=x.device)
    # The target's logit first, from a product of the chunk's distinct targets (padded to
    # _MIN_COLS columns so it rounds as the tiles do): the threshold of the rank's count.
    want = targets.clamp(min=0)
    distinct, which = torch.unique(want, return_inverse=True)
    cols = torch.cat([distinct, distinct[:1].expand(max(0, _MIN_COLS - len(distinct)))])
    t = torch.mm(x, weight[cols].t()).gather(1, which[:, None])[:, 0]
    if len(gaps):
        t = torch.where(torch.isin(want, gaps), gap_logit, t)
    stats = _RowStats(k, t, targets, x.dtype, finite=True)
    spans = vocab_tiles(n_valid, tile)
    width = spans[0][1] - spans[0][0]
    buf = torch.empty(x.shape[0], width, dtype=x.dtype, device=x.device)
    for v0, v1 in spans:
        full = v1 - v0 == width
        logits = buf if full else torch.empty(x.shape[0], v1 - v0, dtype=x.dtype, device=x.device)
        torch.mm(x, weight[v0:v1].t(), out=logits)
        if len(gaps):
            inside = gaps[(gaps >= v0) & (gaps < v1)]
            if len(inside):
                logits[:, inside - v0] = gap_logit
        stats.add(logits, v0)
    return tuple(a[:n_rows] for a in stats.finish())


def logit_lens(
    trace: Trace,
    model: GPT,
    k: int = 10,
    chunk_rows: int = 0,
    sublayers: bool = False,
    positions: Iterable[int] | None = None,
    tile: int = TILE,
) -> LogitLens:
    """The logit lens (nostalgebraist 2020, "interpreting GPT: the logit lens") of every layer
    of `trace` at `positions` (default: every position), read through `model`'s `ln_f` and
    unembedding: a LogitLens with the top `k` tokens (k is cut to the vocabulary size) of each
    of the [n_layer + 1, P] cells, the probability and rank of the real next token, and the
    entropy. Only ids below the Trace's `n_valid_ids` are read: a padded vocabulary's padding
    rows never appear and take no probability.

    positions: Trace positions to compute, any order (computed once each, returned
        increasing: `LogitLens.positions`); a cell's numbers do not depend on which other
        positions are computed with it (the Output page computes only what it shows).
    chunk_rows: (layer, position) cells per chunk (default 0: CHUNK_ROWS). Each chunk's logits
        are computed `tile` vocabulary columns at a time and reduced while in cache, so work
        memory is about chunk_rows x tile x 16 bytes whatever the vocabulary or T; nothing of
        size [cells, V] is ever made.
    sublayers: read the residual after each attention block as well as after each MLP
        (`sublayer_stack`: 2 n_layer + 1 rows).

    Cost: 2 d V multiply-adds per cell (its FLOP ideal) plus a few cheap passes over each tile
    (README, "Performance"). Raises ValueError when `model`'s width or vocabulary differ from
    the Trace's, or for a position outside 0..T-1."""
    _check_lens_model(trace, model)
    T = trace.n_tokens
    pos = _positions(positions, T)
    sites = _residual_sites(trace, sublayers)
    L1, P, d = len(sites), len(pos), trace.config.d_model
    # rows position-major ([P, L1]): a chunk's rows share few targets (the next tokens)
    stack = np.stack([np.asarray(s)[pos] for s in sites], axis=1).astype(np.float32, copy=False)
    rows = torch.from_numpy(np.ascontiguousarray(stack).reshape(P * L1, d))
    ids = np.asarray(trace.token_ids, dtype=np.int64)
    nxt = np.where(pos + 1 < T, ids[np.minimum(pos + 1, T - 1)], -1)
    targets = torch.from_numpy(np.repeat(nxt, L1))
    V = trace.n_valid_ids or model.config.vocab_size
    k = min(k, V)
    chunk = max(1, chunk_rows or CHUNK_ROWS)
    n = P * L1
    top_ids = torch.empty(n, k, dtype=torch.long)
    top_probs = torch.empty(n, k)
    next_prob = torch.full((n,), float("nan"))
    next_rank = torch.full((n,), -1, dtype=torch.long)
    entropy = torch.empty(n)
    log_norm = torch.empty(n, dtype=torch.float64)
    with torch.inference_mode():
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            tgt = targets[s:e]
            ids_c, probs, p_next, rank, ent, lse = _lens_chunk(
                model, rows[s:e].to(model.device), tgt.to(model.device), k, trace, tile
            )
            top_ids[s:e], top_probs[s:e], entropy[s:e], log_norm[s:e] = ids_c, probs, ent, lse
            has = tgt >= 0
            next_prob[s:e] = torch.where(has, p_next, float("nan"))
            next_rank[s:e] = torch.where(has, rank.long(), -1)

    def cells(a: torch.Tensor) -> np.ndarray:  # [P * L1, ...] -> [L1, P, ...]
        return np.ascontiguousarray(a.reshape(P, L1, *a.shape[1:]).transpose(0, 1).numpy())

    return LogitLens(
        top_ids=cells(top_ids),
        top_probs=cells(top_probs),
        next_prob=cells(next_prob),
        next_rank=cells(next_rank),
        entropy=cells(entropy),
        log_norm=cells(log_norm),
        sublayers=sublayers,
        positions=pos,
    )


def _positions(positions: Iterable[int] | None, n_tokens: int) -> np.ndarray:
    """[P] int64: `positions` sorted and once each (default 0..n_tokens-1); ValueError for
    one outside 0..n_tokens-1."""
    if positions is None:
        return np.arange(n_tokens, dtype=np.int64)
    pos = np.unique(np.asarray(list(positions), dtype=np.int64).reshape(-1))
    if len(pos) and (pos[0] < 0 or pos[-1] >= n_tokens):
        bad = int(pos[0] if pos[0] < 0 else pos[-1])
        raise ValueError(f"position {bad} is outside the text's positions 0..{n_tokens - 1}")
    return pos


def lens_blocks(positions: Iterable[int], n_tokens: int, size: int = LENS_BLOCK) -> list[range]:
    """The aligned blocks of `size` positions (0..size-1, size..2 size-1, ...; the last cut at
    n_tokens) that hold `positions`, in order: the units in which the app computes and caches
    the lens (`ui.cache.get_logit_lens`). ValueError for a position outside 0..n_tokens-1."""
    starts = sorted({int(p) // size * size for p in _positions(positions, n_tokens)})
    return [range(s, min(n_tokens, s + size)) for s in starts]


def merge_lenses(parts: Sequence[LogitLens]) -> LogitLens:
    """One LogitLens of the columns of `parts` (lenses of one Trace, same rows and k), ordered
    by position, a position in two parts kept once. ValueError for parts that do not fit."""
    if not parts:
        raise ValueError("merge_lenses needs at least one lens")
    first = parts[0]
    if len(parts) == 1:
        return first
    shape = (first.top_ids.shape[0], first.top_ids.shape[2], first.sublayers)
    if any((p.top_ids.shape[0], p.top_ids.shape[2], p.sublayers) != shape for p in parts):
        raise ValueError("these lenses have different rows or k: they cannot be merged")
    pos = np.concatenate([p.position_list for p in parts])
    pos, keep = np.unique(pos, return_index=True)

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts], axis=1)[:, keep]

    return LogitLens(
        top_ids=joined("top_ids"),
        top_probs=joined("top_probs"),
        next_prob=joined("next_prob"),
        next_rank=joined("next_rank"),
        entropy=joined("entropy"),
        sublayers=first.sublayers,
        positions=pos.astype(np.int64),
        log_norm=None if any(p.log_norm is None for p in parts) else joined("log_norm"),
    )


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
    """The full next-token distribution [V] (float32, sums to 1) of one lens cell: row `row`
    (0 = after the embeddings, i = after block i - 1) at position `pos`, computed on demand
    from the one stored residual (`lens_distributions`). Its logits have the same bits as the
    ones `logit_lens` ranks, so its top k are the lens's (up to ties). Raises ValueError for a
    row or position out of range, or a `model` whose width or vocabulary differ from the
    Trace's."""
    L = trace.config.n_layer
    if not 0 <= row <= L:
        raise ValueError(
            f"lens row {row}, position {pos} is outside rows 0..{L} and positions "
            f"0..{trace.n_tokens - 1}"
        )
    return lens_distributions(trace, model, pos, rows=[row])[0]


def lens_distributions(
    trace: Trace,
    model: GPT,
    pos: int,
    rows: Sequence[int] | None = None,
    sublayers: bool = False,
) -> np.ndarray:
    """The full next-token distributions [len(rows), V] (float32, each sums to 1) of lens rows
    `rows` (default: all, as `logit_lens` numbers them; `sublayers` as there) at position
    `pos`, in one product with the unembedding (the Output page follows a token through every
    layer with one call instead of one per layer: the [V, d] matrix is read once). Padding ids
    (>= the Trace's `n_valid_ids`) and gap ids get probability 0. Raises ValueError for a row
    or position out of range, or a `model` whose width or vocabulary differ from the Trace's."""
    _check_lens_model(trace, model)
    T = trace.n_tokens
    sites = _residual_sites(trace, sublayers)
    wanted = list(range(len(sites))) if rows is None else [int(r) for r in rows]
    bad = [r for r in wanted if not 0 <= r < len(sites)]
    if bad or not 0 <= pos < T:
        raise ValueError(
            f"lens row {bad[0] if bad else wanted[0]}, position {pos} is outside rows "
            f"0..{len(sites) - 1} and positions 0..{T - 1}"
        )
    # only the vectors asked for, each one row of a product of at least _MIN_ROWS rows (the
    # kernel that computes the lens's own logits)
    picked = [np.asarray(sites[r][pos], dtype=np.float32) for r in wanted]
    picked += [picked[0]] * max(0, _MIN_ROWS - len(picked))
    resid = torch.from_numpy(np.stack(picked)).to(model.device)
    with torch.inference_mode():
        logits = model.unembed(resid)
        logits[:, trace.n_valid_ids or logits.shape[-1] :] = -torch.inf
        if trace.gap_ids:
            logits[:, list(trace.gap_ids)] = -torch.inf
        return torch.softmax(logits[: len(wanted)], dim=-1).cpu().numpy()


def lens_token_probs(trace: Trace, model: GPT, lens: LogitLens, pos: int, token: int) -> np.ndarray:
    """[rows] float64: the probability of token id `token` in every row of `lens` at Trace
    position `pos` (one `lens` holds), from the token's logit and the cell's stored
    `log_norm`: one [rows, d] x [d, 64] product instead of the full distributions (the Output
    page's "follow a token" chart). Equals `lens_distributions(...)[:, token]` up to float32
    rounding. A padding or gap id gets 0. Raises ValueError for a position the lens does not
    hold, a lens without `log_norm`, a token outside the vocabulary, or another model."""
    _check_lens_model(trace, model)
    if lens.log_norm is None:
        raise ValueError("this lens has no log_norm: compute it with logit_lens")
    col = lens.column(pos)
    V = model.config.vocab_size
    if not 0 <= token < V:
        raise ValueError(f"token id {token} is outside the vocabulary 0..{V - 1}")
    n_valid = trace.n_valid_ids or V
    sites = _residual_sites(trace, lens.sublayers)
    if len(sites) != lens.top_ids.shape[0]:
        raise ValueError("this lens has another number of rows than the Trace's layers")
    if token >= n_valid or token in trace.gap_ids:
        return np.zeros(len(sites))
    picked = [np.asarray(s[pos], dtype=np.float32) for s in sites]
    picked += [picked[0]] * max(0, _MIN_ROWS - len(picked))
    weight = model.lm_head_weight
    cols = torch.tensor([token] + [0] * (_MIN_COLS - 1), device=weight.device)
    with torch.inference_mode():
        x = model.transformer.ln_f(torch.from_numpy(np.stack(picked)).to(weight.device))
        logit = torch.mm(x, weight[cols].t())[: len(sites), 0].cpu().double().numpy()
    return np.exp(logit - lens.log_norm[:, col])


def final_probs(trace: Trace, pos: int) -> np.ndarray:
    """The model's own next-token distribution [V] (float64) at position `pos`: the softmax of
    the stored logits (no model needed); padding ids (>= the Trace's `n_valid_ids`) get
    probability 0, so no top-k of it names one."""
    n_valid = trace.n_valid_ids or trace.config.vocab_size
    return softmax(padding_masked(trace.logits[pos], n_valid, trace.gap_ids))


__all__ = [
    "CHUNK_ROWS",
    "LENS_BLOCK",
    "TILE",
    "LogitLens",
    "final_probs",
    "lens_blocks",
    "lens_distribution",
    "lens_distributions",
    "lens_token_probs",
    "logit_lens",
    "merge_lenses",
    "sublayer_stack",
    "vocab_tiles",
]
