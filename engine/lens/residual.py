"""Stage 6, the residual stream: the running sum that every block reads from and adds to.

GPT-2's blocks are pre-norm residual blocks, `x = x + attn(ln_1(x))`, `x = x + mlp(ln_2(x))`,
so the final vector is exactly the embeddings plus everything each sub-block wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.trace import Trace


def residual_stack(trace: Trace) -> np.ndarray:
    """[n_layer + 1, T, d] float32: the residual after the embeddings (`blocks.0.hook_resid_pre`),
    then after every block (`blocks.i.hook_resid_post`)."""
    first = trace.get("hook_resid_pre", 0)
    rest = [trace.get("hook_resid_post", i) for i in range(trace.config.n_layer)]
    return np.stack([first, *rest]).astype(np.float32)


def row_norms(x: np.ndarray) -> np.ndarray:
    """L2 norms over the last axis, float64: x [..., d] -> [...]. Each row is summed on its own
    (numpy's pairwise sum along the row), so a token's norm has the same bits whether it is
    computed for that token alone, for one layer's [T, d] or for a stack of layers: the
    per-layer summaries (`engine.lens.summary`) equal these functions exactly."""
    return np.linalg.norm(np.asarray(x, dtype=np.float64), axis=-1)


def row_cosines(
    a: np.ndarray, b: np.ndarray, a_norms: np.ndarray, b_norms: np.ndarray
) -> np.ndarray:
    """Cosine similarity of the rows of a and b ([..., d], broadcast; float64), given their
    `row_norms`: the row-wise dot product (summed along the row, like `row_norms`) over the
    product of the norms; 0 where either row is zero."""
    dots = (np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)).sum(-1)
    norms = a_norms * b_norms
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, dots / norms, 0.0)


def residual_norms(trace: Trace) -> np.ndarray:
    """[n_layer + 1, T] float64: L2 norm of each token's residual after the embeddings and after
    each block (the rows of `residual_stack`)."""
    return row_norms(residual_stack(trace))


@dataclass(frozen=True)
class Contributions:
    """What each part wrote into one token's residual stream.

    names: "token embedding", "position embedding", "attention 0", "MLP 0", ... (`part_names`);
        the parts' vectors add up to the final residual (before ln_f).
    sizes: [parts] float64, L2 norm of each part (`row_norms`).
    along_final: [parts] float64, each part's component along the final residual's direction
        (its dot product with the final residual's unit vector, summed along the row); these
        add up to the final residual's norm.
    final_norm: norm of the final residual (`row_norms`).
    """

    names: tuple[str, ...]
    sizes: np.ndarray
    along_final: np.ndarray
    final_norm: float


def part_names(n_layer: int) -> tuple[str, ...]:
    """The 2 + 2 * n_layer parts that write the residual stream, in forward order: "token
    embedding", "position embedding", "attention 0", "MLP 0", "attention 1", ..."""
    names = ["token embedding", "position embedding"]
    for i in range(n_layer):
        names += [f"attention {i}", f"MLP {i}"]
    return tuple(names)


def final_units(final: np.ndarray, final_norms: np.ndarray) -> np.ndarray:
    """The final residual's direction, float64: `final` [..., d] divided by its `row_norms`
    [...] row by row; a zero row stays zero."""
    final = np.asarray(final, dtype=np.float64)
    norms = np.asarray(final_norms)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, final / norms, final)


def contributions(trace: Trace, pos: int) -> Contributions:
    """Split token `pos`'s final residual (the last `hook_resid_post`) into the 2 + 2 * n_layer
    parts that wrote it (`part_names`): the two embeddings, then each layer's attention and MLP
    output (float64). A zero final residual gives along_final = 0. Reads every layer's
    attn_out and mlp_out (on a lazy Trace: every half block); the app reads the same numbers
    from `engine.lens.summary.LayerSummary.contributions`, computed once per text."""
    parts = [trace["hook_embed"][pos], trace["hook_pos_embed"][pos]]
    for i in range(trace.config.n_layer):
        parts += [trace.get("hook_attn_out", i)[pos], trace.get("hook_mlp_out", i)[pos]]
    vectors = np.stack(parts).astype(np.float64)
    final = trace.get("hook_resid_post", trace.config.n_layer - 1)[pos]
    final_norm = row_norms(final)
    return Contributions(
        names=part_names(trace.config.n_layer),
        sizes=row_norms(vectors),
        along_final=(vectors * final_units(final, final_norm)).sum(-1),
        final_norm=float(final_norm),
    )


def cosine_to_final(trace: Trace) -> np.ndarray:
    """[n_layer + 1, T] float64: cosine similarity of each row of `residual_stack` with the final
    residual of the same token (the last row is 1; 0 where either vector is zero)."""
    stack = residual_stack(trace).astype(np.float64)
    final = stack[-1]
    return row_cosines(stack, final[None], row_norms(stack), row_norms(final)[None])


@dataclass(frozen=True)
class ResidualStep:
    """One `x + f(x)` for one token: the stream before, the branch output, the stream after."""

    label: str
    before_norm: float
    branch_norm: float
    after_norm: float
    cosine: float  # between x and f(x): 1 reinforces, 0 adds a new direction, -1 erases


# The two residual additions of a block: (label, x, f(x), x + f(x)) as sites of that block.
STEP_SITES = (
    ("attention", "hook_resid_pre", "hook_attn_out", "hook_resid_mid"),
    ("MLP", "hook_resid_mid", "hook_mlp_out", "hook_resid_post"),
)


def residual_steps(trace: Trace, pos: int) -> list[ResidualStep]:
    """Every residual addition for token `pos`, in forward order (attention, MLP, per layer):
    2 * n_layer steps with the L2 norms of x, f(x) and x + f(x) (`row_norms`) and their cosine
    (`row_cosines`: 0 when either is zero). Reads every layer's two halves on a lazy Trace; the
    app reads the same numbers from `engine.lens.summary.LayerSummary.residual_steps`."""
    steps = []
    for i in range(trace.config.n_layer):
        for part, before, branch, after in STEP_SITES:
            x, f, y = (trace.get(site, i)[pos] for site in (before, branch, after))
            nx, nf, ny = row_norms(x), row_norms(f), row_norms(y)
            cos = row_cosines(x, f, nx, nf)
            label = f"layer {i} {part}"
            steps.append(ResidualStep(label, float(nx), float(nf), float(ny), float(cos)))
    return steps


__all__ = [
    "STEP_SITES",
    "Contributions",
    "ResidualStep",
    "contributions",
    "cosine_to_final",
    "final_units",
    "part_names",
    "residual_norms",
    "residual_stack",
    "residual_steps",
    "row_cosines",
    "row_norms",
]
