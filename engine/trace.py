"""`Trace`: everything one forward pass computed for one text, as plain read-only numpy arrays.

A Trace holds no model reference, so it pickles, can be saved to disk and serves as a test
fixture; the app shares one Trace per text between sessions (`ui.cache`), never a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.config import GPTConfig
from engine.names import LOGITS, act_name, parse_name, symbol_sizes

__all__ = ["Trace"]


def _read_only(arr: np.ndarray) -> np.ndarray:
    """`arr` itself if it is already read-only, else a read-only copy (the caller keeps a
    writable original that no longer aliases the Trace)."""
    if arr.flags.writeable:
        arr = arr.copy()
        arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Trace:
    """One forward pass over one text.

    Fields:
        prompt: the text as given (before any truncation).
        token_ids: int64 [T], the tokens that were run (at most the model's context).
        token_strs: T display strings (`engine.tokenizer.token_labels`: `display_token`, and a
            character split over tokens as "注 1/3"), for axis labels, hovers, tables, pickers.
        config: the model's `GPTConfig`.
        acts: canonical name -> read-only float array, batch dimension removed (writable arrays
            given to the constructor are copied; every array stays read-only, also after
            unpickling); any subset of the activation sites below, the logits required.
        model_name: which model produced it ("bundled", "random", a directory name).
        n_tokens_dropped: tokens cut off because the text was longer than the context.
        dropout_p: the dropout probability of the pass (0 for evaluation mode).
        n_valid_ids: how many of the V output rows are tokens of the model's tokenizer (ids
            0..n_valid_ids - 1); the rest are padding rows (a vocabulary padded to a multiple
            of 64, as nanoGPT does) that name no token. None (the default) means all V; it is
            stored as V. Every place that names a token from the output masks the padding out
            (`engine.lens.logit_lens`, `engine.sampling`).
        gap_ids: ids below n_valid_ids that name no token either (a tokenizer whose ids have
            gaps), ascending; masked out the same way.

    Activation sites, in forward order: `engine.names.site_table()`, copied here (a test checks
    the copy). Shapes in symbols: T tokens, d width, m MLP width, H heads, h head width (d / H),
    V vocabulary. "large" sites are what `run_with_trace(..., large_dtype=...)` applies to.
    hook_embed                         [T, d]    small token embeddings: rows of W_E
    hook_pos_embed                     [T, d]    small position embeddings: rows of W_pos
    blocks.i.hook_resid_pre            [T, d]    small the residual stream entering the block
    blocks.i.ln1.hook_scale            [T, 1]    small sqrt(var + eps) of each token entering ln_1
    blocks.i.ln1.hook_normalized       [T, d]    small (x - mean) / scale, before gamma, beta
    blocks.i.attn.hook_q               [T, H, h] small queries, per head
    blocks.i.attn.hook_k               [T, H, h] small keys, per head
    blocks.i.attn.hook_v               [T, H, h] small values, per head
    blocks.i.attn.hook_attn_scores     [H, T, T] large q.k / sqrt(h); future keys are -inf
    blocks.i.attn.hook_pattern         [H, T, T] large softmax of the scores: rows sum to 1
    blocks.i.attn.hook_pattern_dropped [H, T, T] large the pattern after dropout (dropout pass only)
    blocks.i.attn.hook_z               [T, H, h] small pattern-weighted values, per head
    blocks.i.hook_attn_out             [T, d]    small the attention block's output (after c_proj)
    blocks.i.hook_resid_mid            [T, d]    small resid_pre + attn_out
    blocks.i.ln2.hook_scale            [T, 1]    small sqrt(var + eps) of each token entering ln_2
    blocks.i.ln2.hook_normalized       [T, d]    small (x - mean) / scale, before gamma, beta
    blocks.i.mlp.hook_pre              [T, m]    large c_fc output, before GELU
    blocks.i.mlp.hook_post             [T, m]    large after GELU (GPT-2's tanh approximation)
    blocks.i.hook_mlp_out              [T, d]    small the MLP block's output (after c_proj)
    blocks.i.hook_resid_post           [T, d]    small resid_mid + mlp_out
    ln_final.hook_scale                [T, 1]    small sqrt(var + eps) of each token entering ln_f
    ln_final.hook_normalized           [T, d]    small (x - mean) / scale, before gamma, beta
    logits                             [T, V]    small ln_f(resid_post of the last block) @ W_E^T
    """

    prompt: str
    token_ids: np.ndarray
    token_strs: tuple[str, ...]
    config: GPTConfig
    acts: dict[str, np.ndarray] = field(repr=False)
    model_name: str = ""
    n_tokens_dropped: int = 0
    dropout_p: float = 0.0
    n_valid_ids: int | None = None
    gap_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        token_ids = np.asarray(self.token_ids)
        if token_ids.ndim != 1 or not np.issubdtype(token_ids.dtype, np.integer):
            raise ValueError(
                f"token_ids must be a 1-D array of integers, got shape {token_ids.shape} "
                f"and dtype {token_ids.dtype}"
            )
        T = len(token_ids)
        if T < 1:
            raise ValueError("a Trace needs at least one token")
        if len(self.token_strs) != T:
            raise ValueError(f"{len(self.token_strs)} token strings for {T} token ids")
        if not isinstance(self.acts, dict):
            raise ValueError(f"acts must be a dict of arrays, got {type(self.acts).__name__}")
        sizes = symbol_sizes(self.config, T)
        n_layer = self.config.n_layer
        acts: dict[str, np.ndarray] = {}
        for name, value in self.acts.items():
            parsed = parse_name(name, n_layer) if isinstance(name, str) else None
            if parsed is None:
                raise ValueError(
                    f"unknown activation name {name!r} in Trace (canonical names are built by "
                    f"engine.names.act_name; this model has {n_layer} layers)"
                )
            arr = np.asarray(value)
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"activation {name!r} must hold floats, got dtype {arr.dtype}")
            expected = parsed[0].dims(sizes)
            if tuple(arr.shape) != expected:
                raise ValueError(
                    f"activation {name!r} has shape {tuple(arr.shape)}, expected {expected} "
                    f"for {T} tokens"
                )
            acts[name] = _read_only(arr)
        if LOGITS not in acts:
            raise ValueError("a Trace must hold the logits")
        V = self.config.vocab_size
        n_valid = V if self.n_valid_ids is None else self.n_valid_ids
        if isinstance(n_valid, bool) or not isinstance(n_valid, int | np.integer):
            raise ValueError(f"n_valid_ids must be a whole number, got {n_valid!r}")
        if not 1 <= n_valid <= V:
            raise ValueError(f"n_valid_ids must be in 1..{V} (the vocabulary), got {n_valid}")
        object.__setattr__(self, "n_valid_ids", int(n_valid))
        gaps = tuple(sorted({int(i) for i in self.gap_ids}))
        if gaps and not (0 <= gaps[0] and gaps[-1] < n_valid):
            raise ValueError(f"gap_ids must lie in 0..{n_valid - 1}, got {gaps[0]}..{gaps[-1]}")
        object.__setattr__(self, "gap_ids", gaps)
        # Frozen dataclass: normalise the fields once, here. Every array is read-only.
        object.__setattr__(self, "token_ids", _read_only(token_ids.astype(np.int64, copy=False)))
        object.__setattr__(self, "token_strs", tuple(self.token_strs))
        object.__setattr__(self, "acts", acts)

    def __setstate__(self, state: dict[str, object]) -> None:
        """Unpickling gives numpy arrays that are writable again; make them read-only as on
        construction."""
        for key, value in state.items():
            object.__setattr__(self, key, value)
        self.token_ids.flags.writeable = False
        for arr in self.acts.values():
            arr.flags.writeable = False

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def n_padding_ids(self) -> int:
        """Output rows that are padding, not tokens (0 unless the vocabulary is padded)."""
        return self.config.vocab_size - int(self.n_valid_ids or self.config.vocab_size)

    @property
    def logits(self) -> np.ndarray:
        return self.acts[LOGITS]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.acts[name]

    def get(self, site: str, layer: int | None = None) -> np.ndarray:
        """`trace.get("attn.hook_pattern", 2)` is `trace["blocks.2.attn.hook_pattern"]`."""
        return self.acts[act_name(site, layer)]

    def nbytes(self) -> int:
        """Bytes of every array, counted once per name (block i's resid_post and block i+1's
        resid_pre share one array but count twice), plus the token ids; what
        `engine.capture.trace_nbytes` predicts before the run."""
        return int(sum(a.nbytes for a in self.acts.values()) + self.token_ids.nbytes)
