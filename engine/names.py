"""Activation names: TransformerLens's canonical hook names, built in exactly one place.

Pages, figures and tests call `act_name(site, layer)`; nobody writes these strings by hand.
"""

from __future__ import annotations

# Sites inside block i, in the order the forward pass reaches them.
BLOCK_SITES: tuple[str, ...] = (
    "hook_resid_pre",  # [T, d]   the residual entering the block
    "ln1.hook_scale",  # [T, 1]   sqrt(var + eps) of each token entering ln_1
    "ln1.hook_normalized",  # [T, d]   (x - mean) / scale, before gamma and beta
    "attn.hook_q",  # [T, H, dh]
    "attn.hook_k",  # [T, H, dh]
    "attn.hook_v",  # [T, H, dh]
    "attn.hook_attn_scores",  # [H, T, T] q.k / sqrt(dh), future positions masked to -inf
    "attn.hook_pattern",  # [H, T, T] softmax of the scores: each row sums to 1
    "attn.hook_z",  # [T, H, dh] the pattern-weighted values, per head
    "hook_attn_out",  # [T, d]   the attention block's output (after c_proj)
    "hook_resid_mid",  # [T, d]   resid_pre + attn_out
    "ln2.hook_scale",  # [T, 1]
    "ln2.hook_normalized",  # [T, d]
    "mlp.hook_pre",  # [T, 4d]  c_fc output, before GELU
    "mlp.hook_post",  # [T, 4d]  after GELU
    "hook_mlp_out",  # [T, d]   the MLP block's output (after c_proj)
    "hook_resid_post",  # [T, d]   resid_mid + mlp_out
)

# Recorded only in a pass that applies dropout (the dropout demo): the pattern after the mask
# and the 1 / (1 - p) rescaling. Not part of an evaluation-mode Trace.
DROPOUT_SITES: tuple[str, ...] = ("attn.hook_pattern_dropped",)

# Sites outside the blocks.
EMBED = "hook_embed"  # [T, d] token embeddings
POS_EMBED = "hook_pos_embed"  # [T, d] position embeddings
LN_FINAL_SCALE = "ln_final.hook_scale"  # [T, 1]
LN_FINAL_NORMALIZED = "ln_final.hook_normalized"  # [T, d]
LOGITS = "logits"  # [T, V]


def act_name(site: str, layer: int | None = None) -> str:
    """Canonical name of an activation: `act_name("attn.hook_pattern", 2)` ->
    `"blocks.2.attn.hook_pattern"`; sites outside the blocks take no layer."""
    if site in BLOCK_SITES or site in DROPOUT_SITES:
        if layer is None or layer < 0:
            raise ValueError(f"site {site!r} lives inside a block: give a layer index >= 0")
        return f"blocks.{layer}.{site}"
    if site in (EMBED, POS_EMBED, LN_FINAL_SCALE, LN_FINAL_NORMALIZED, LOGITS):
        if layer is not None:
            raise ValueError(f"site {site!r} is outside the blocks: it takes no layer")
        return site
    raise KeyError(f"unknown activation site {site!r}")


def canonical_names(n_layer: int) -> list[str]:
    """Every activation an evaluation-mode forward pass records, in the order it records them."""
    names = [EMBED, POS_EMBED]
    for layer in range(n_layer):
        names.extend(act_name(site, layer) for site in BLOCK_SITES)
    names.extend([LN_FINAL_SCALE, LN_FINAL_NORMALIZED, LOGITS])
    return names
