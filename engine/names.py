"""THE table of activation sites: every point a forward pass records, one record per site.

Names are TransformerLens's canonical hook names (`HookedTransformer`'s `hook_points`, e.g.
`blocks.2.attn.hook_pattern`) with the batch dimension removed, so a reader of that library reads
ours and parity can be checked key for key. Everything that needs a site's name, shape or size
reads `SITES`: `act_name`, `canonical_names`, `Trace`'s validation and docstring table, the
float16 "large" set of `engine.capture.run_with_trace` and `engine.capture.trace_nbytes`.

Shape symbols: T tokens, d model width, m MLP width (4d in GPT-2), H heads, h head width (d / H),
V vocabulary size, 1 a literal 1. Size class: "large" sites grow with T * T or T * m (the
attention maps and the MLP's hidden activations: what `large_dtype` stores in float16), "small"
sites with T * d or less (and the logits, T * V).

Pages, figures and tests call `act_name(site, layer)`; nobody writes these strings by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.config import GPTConfig

SizeClass = Literal["small", "large"]


@dataclass(frozen=True)
class Site:
    """One activation site.

    name: the site's canonical name without its block prefix ("attn.hook_pattern").
    in_block: True for a site inside every block (its full name is `blocks.{i}.{name}`).
    shape: the array's shape in symbols, batch dimension removed, e.g. ("H", "T", "T").
    size: "large" if it grows with T * T or T * m, else "small".
    meaning: one line: what the array holds.
    dropout_only: recorded only in a pass that applies dropout (not in an evaluation Trace).
    """

    name: str
    in_block: bool
    shape: tuple[str, ...]
    size: SizeClass
    meaning: str
    dropout_only: bool = False

    def full_name(self, layer: int | None = None) -> str:
        """`blocks.{layer}.{name}` for a block site, `name` for a site outside the blocks."""
        return act_name(self.name, layer)

    def dims(self, sizes: dict[str, int]) -> tuple[int, ...]:
        """The shape in numbers, given each symbol's size (`symbol_sizes`)."""
        return tuple(sizes[s] for s in self.shape)


def _outer(name: str, shape: str, size: SizeClass, meaning: str) -> Site:
    return Site(name, False, tuple(shape.split()), size, meaning)


def _block(
    name: str, shape: str, size: SizeClass, meaning: str, dropout_only: bool = False
) -> Site:
    return Site(name, True, tuple(shape.split()), size, meaning, dropout_only)


# Every site, in the order a forward pass records it (the block sites once per block).
SITES: tuple[Site, ...] = (
    _outer("hook_embed", "T d", "small", "token embeddings: rows of W_E"),
    _outer("hook_pos_embed", "T d", "small", "position embeddings: rows of W_pos"),
    _block("hook_resid_pre", "T d", "small", "the residual stream entering the block"),
    _block("ln1.hook_scale", "T 1", "small", "sqrt(var + eps) of each token entering ln_1"),
    _block("ln1.hook_normalized", "T d", "small", "(x - mean) / scale, before gamma, beta"),
    _block("attn.hook_q", "T H h", "small", "queries, per head"),
    _block("attn.hook_k", "T H h", "small", "keys, per head"),
    _block("attn.hook_v", "T H h", "small", "values, per head"),
    _block("attn.hook_attn_scores", "H T T", "large", "q.k / sqrt(h); future keys are -inf"),
    _block("attn.hook_pattern", "H T T", "large", "softmax of the scores: rows sum to 1"),
    _block(
        "attn.hook_pattern_dropped",
        "H T T",
        "large",
        "the pattern after dropout (dropout pass only)",
        dropout_only=True,
    ),
    _block("attn.hook_z", "T H h", "small", "pattern-weighted values, per head"),
    _block("hook_attn_out", "T d", "small", "the attention block's output (after c_proj)"),
    _block("hook_resid_mid", "T d", "small", "resid_pre + attn_out"),
    _block("ln2.hook_scale", "T 1", "small", "sqrt(var + eps) of each token entering ln_2"),
    _block("ln2.hook_normalized", "T d", "small", "(x - mean) / scale, before gamma, beta"),
    _block("mlp.hook_pre", "T m", "large", "c_fc output, before GELU"),
    _block("mlp.hook_post", "T m", "large", "after GELU (GPT-2's tanh approximation)"),
    _block("hook_mlp_out", "T d", "small", "the MLP block's output (after c_proj)"),
    _block("hook_resid_post", "T d", "small", "resid_mid + mlp_out"),
    _outer("ln_final.hook_scale", "T 1", "small", "sqrt(var + eps) of each token entering ln_f"),
    _outer("ln_final.hook_normalized", "T d", "small", "(x - mean) / scale, before gamma, beta"),
    _outer("logits", "T V", "small", "ln_f(resid_post of the last block) @ W_E^T"),
)

SITE: dict[str, Site] = {s.name: s for s in SITES}

# Derived views of the table (never written by hand).
BLOCK_SITES: tuple[str, ...] = tuple(s.name for s in SITES if s.in_block and not s.dropout_only)
DROPOUT_SITES: tuple[str, ...] = tuple(s.name for s in SITES if s.dropout_only)

EMBED = SITE["hook_embed"].name
POS_EMBED = SITE["hook_pos_embed"].name
LN_FINAL_SCALE = SITE["ln_final.hook_scale"].name
LN_FINAL_NORMALIZED = SITE["ln_final.hook_normalized"].name
LOGITS = SITE["logits"].name


def act_name(site: str, layer: int | None = None) -> str:
    """Canonical name of an activation: `act_name("attn.hook_pattern", 2)` ->
    `"blocks.2.attn.hook_pattern"`; sites outside the blocks take no layer.

    Raises KeyError for a site not in `SITES`, ValueError for a block site without a layer
    index >= 0 or an outside site given one."""
    record = SITE.get(site)
    if record is None:
        raise KeyError(f"unknown activation site {site!r}")
    if record.in_block:
        if layer is None or layer < 0:
            raise ValueError(f"site {site!r} lives inside a block: give a layer index >= 0")
        return f"blocks.{layer}.{site}"
    if layer is not None:
        raise ValueError(f"site {site!r} is outside the blocks: it takes no layer")
    return site


def canonical_names(n_layer: int, dropout: bool = False) -> list[str]:
    """Every activation a forward pass records, in the order it records them: `SITES` with the
    block sites repeated for blocks 0 .. n_layer - 1. `dropout` adds the sites only a dropout
    pass records."""
    names: list[str] = []
    block = [s for s in SITES if s.in_block and (dropout or not s.dropout_only)]
    for site in SITES:
        if not site.in_block:
            names.append(site.name)
        elif site is block[0]:
            names.extend(act_name(s.name, i) for i in range(n_layer) for s in block)
    return names


def parse_name(name: str, n_layer: int) -> tuple[Site, int | None] | None:
    """The site and layer of a canonical name (`"blocks.2.attn.hook_pattern"` ->
    (SITE["attn.hook_pattern"], 2)), or None if it is not one for a model of `n_layer` blocks
    ("blocks.02..." is not canonical)."""
    if name in SITE and not SITE[name].in_block:
        return SITE[name], None
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit():
        layer, site = int(parts[1]), SITE.get(parts[2])
        if site is not None and site.in_block and str(layer) == parts[1] and layer < n_layer:
            return site, layer
    return None


def symbol_sizes(config: GPTConfig, n_tokens: int) -> dict[str, int]:
    """Each shape symbol's size for `config` and `n_tokens` tokens (see the module docstring)."""
    return {
        "T": n_tokens,
        "d": config.d_model,
        "m": config.d_mlp,
        "H": config.n_head,
        "h": config.d_head,
        "V": config.vocab_size,
        "1": 1,
    }


def site_table() -> str:
    """The table as text, one line per site (`Trace`'s docstring holds it; a test checks)."""
    lines = []
    for s in SITES:
        name = ("blocks.i." if s.in_block else "") + s.name
        shape = "[" + ", ".join(s.shape) + "]"
        lines.append(f"{name:<35}{shape:<10}{s.size:<6}{s.meaning}")
    return "\n".join(lines)
