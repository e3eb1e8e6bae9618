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
        if layer < n_layer and (site in BLOCK_SITES or site in DROPOUT_SITES):
            return site
    return None


@dataclass(frozen=True, eq=False)
class Trace:
    """One forward pass over one text.

    Fields:
        prompt: the text as given (before any truncation).
        token_ids: int64 [T], the tokens that were run (at most the model's context).
        token_strs: T display strings (`engine.tokenizer.display_token`), for axis labels.
        config: the model's `GPTConfig`.
        acts: canonical name -> read-only float array, batch dimension removed:
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
        T = len(self.token_ids)
        if T < 1:
            raise ValueError("a Trace needs at least one token")
        if len(self.token_strs) != T:
            raise ValueError(f"{len(self.token_strs)} token strings for {T} token ids")
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
        for name, arr in self.acts.items():
            site = _site_of(name, cfg.n_layer)
            if site is None:
                raise ValueError(f"unknown activation name {name!r} in Trace")
            expected = tuple(sizes[s] for s in _SHAPES[site])
            if tuple(arr.shape) != expected:
                raise ValueError(
                    f"activation {name!r} has shape {tuple(arr.shape)}, expected {expected} "
                    f"for {T} tokens"
                )
        if LOGITS not in self.acts:
            raise ValueError("a Trace must hold the logits")

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
