"""`Trace`: everything one forward pass computed for one text, as plain read-only numpy arrays.

A Trace holds no model reference, so it pickles (Streamlit's `st.cache_data`, session state),
can be saved to disk and serves as a test fixture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.config import GPTConfig
from engine.names import (
    BLOCK_SITES,
    DROPOUT_SITES,
    EMBED,
    LN_FINAL_NORMALIZED,
    LN_FINAL_SCALE,
    LOGITS,
    POS_EMBED,
    act_name,
    canonical_names,
)

__all__ = ["SITES", "Trace", "act_name", "canonical_names"]

SITES = BLOCK_SITES

# Expected shape of each site, in symbols: T tokens, d width, m MLP width, H heads, h head width.
_SHAPES: dict[str, tuple[str, ...]] = {
    EMBED: ("T", "d"),
    POS_EMBED: ("T", "d"),
    LN_FINAL_SCALE: ("T", "1"),
    LN_FINAL_NORMALIZED: ("T", "d"),
    LOGITS: ("T", "V"),
    "hook_resid_pre": ("T", "d"),
    "ln1.hook_scale": ("T", "1"),
    "ln1.hook_normalized": ("T", "d"),
    "attn.hook_q": ("T", "H", "h"),
    "attn.hook_k": ("T", "H", "h"),
    "attn.hook_v": ("T", "H", "h"),
    "attn.hook_attn_scores": ("H", "T", "T"),
    "attn.hook_pattern": ("H", "T", "T"),
    "attn.hook_pattern_dropped": ("H", "T", "T"),
    "attn.hook_z": ("T", "H", "h"),
    "hook_attn_out": ("T", "d"),
    "hook_resid_mid": ("T", "d"),
    "ln2.hook_scale": ("T", "1"),
    "ln2.hook_normalized": ("T", "d"),
    "mlp.hook_pre": ("T", "m"),
    "mlp.hook_post": ("T", "m"),
    "hook_mlp_out": ("T", "d"),
    "hook_resid_post": ("T", "d"),
}


def _site_of(name: str, n_layer: int) -> str | None:
    if name in (EMBED, POS_EMBED, LN_FINAL_SCALE, LN_FINAL_NORMALIZED, LOGITS):
        return name
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit():
        layer, site = int(parts[1]), parts[2]
        canonical = str(layer) == parts[1]  # "blocks.01..." is not a canonical name
        if canonical and layer < n_layer and (site in BLOCK_SITES or site in DROPOUT_SITES):
            return site
    return None


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
        token_strs: T display strings (`engine.tokenizer.display_token`), for axis labels.
        config: the model's `GPTConfig`.
        acts: canonical name -> read-only float array, batch dimension removed (writable arrays
            given to the constructor are copied; every array stays read-only, also after
            unpickling):
            hook_embed, hook_pos_embed                     [T, d]
            blocks.i.hook_resid_pre / resid_mid / resid_post  [T, d]
            blocks.i.ln1.hook_scale, ln2.hook_scale         [T, 1]  sqrt(var + eps)
            blocks.i.ln1.hook_normalized, ln2.hook_normalized [T, d]
            blocks.i.attn.hook_q / hook_k / hook_v / hook_z   [T, H, d_head]
            blocks.i.attn.hook_attn_scores                 [H, T, T] masked entries are -inf
            blocks.i.attn.hook_pattern                     [H, T, T] rows sum to 1
            blocks.i.attn.hook_pattern_dropped             [H, T, T] only in a dropout pass
            blocks.i.hook_attn_out, hook_mlp_out           [T, d]
            blocks.i.mlp.hook_pre, mlp.hook_post           [T, d_mlp]
            ln_final.hook_scale [T, 1], ln_final.hook_normalized [T, d], logits [T, V]
        model_name: which model produced it ("bundled", "random", a directory name).
        n_tokens_dropped: tokens cut off because the text was longer than the context.
        dropout_p: the dropout probability of the pass (0 for evaluation mode).
    """

    prompt: str
    token_ids: np.ndarray
    token_strs: tuple[str, ...]
    config: GPTConfig
    acts: dict[str, np.ndarray] = field(repr=False)
    model_name: str = ""
    n_tokens_dropped: int = 0
    dropout_p: float = 0.0

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
        cfg = self.config
        sizes = {
            "T": T,
            "d": cfg.d_model,
            "m": cfg.d_mlp,
            "H": cfg.n_head,
            "h": cfg.d_head,
            "V": cfg.vocab_size,
            "1": 1,
        }
        acts: dict[str, np.ndarray] = {}
        for name, value in self.acts.items():
            site = _site_of(name, cfg.n_layer) if isinstance(name, str) else None
            if site is None:
                raise ValueError(
                    f"unknown activation name {name!r} in Trace (canonical names are built by "
                    f"engine.names.act_name; this model has {cfg.n_layer} layers)"
                )
            arr = np.asarray(value)
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"activation {name!r} must hold floats, got dtype {arr.dtype}")
            expected = tuple(sizes[s] for s in _SHAPES[site])
            if tuple(arr.shape) != expected:
                raise ValueError(
                    f"activation {name!r} has shape {tuple(arr.shape)}, expected {expected} "
                    f"for {T} tokens"
                )
            acts[name] = _read_only(arr)
        if LOGITS not in acts:
            raise ValueError("a Trace must hold the logits")
        # Frozen dataclass: normalise the fields once, here. Every array is read-only.
        object.__setattr__(self, "token_ids", _read_only(token_ids.astype(np.int64, copy=False)))
        object.__setattr__(self, "token_strs", tuple(self.token_strs))
        object.__setattr__(self, "acts", acts)

    def __setstate__(self, state: dict[str, object]) -> None:
        """Unpickling (st.cache_data, session state) gives numpy arrays that are writable
        again; make them read-only as on construction."""
        for key, value in state.items():
            object.__setattr__(self, key, value)
        self.token_ids.flags.writeable = False
        for arr in self.acts.values():
            arr.flags.writeable = False

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def logits(self) -> np.ndarray:
        return self.acts[LOGITS]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.acts[name]

    def get(self, site: str, layer: int | None = None) -> np.ndarray:
        """`trace.get("attn.hook_pattern", 2)` is `trace["blocks.2.attn.hook_pattern"]`."""
        return self.acts[act_name(site, layer)]

    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.acts.values()) + self.token_ids.nbytes)
