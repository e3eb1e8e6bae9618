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


def residual_norms(trace: Trace) -> np.ndarray:
    """[n_layer + 1, T] float64: L2 norm of each token's residual after the embeddings and after
    each block (the rows of `residual_stack`)."""
    return np.linalg.norm(residual_stack(trace).astype(np.float64), axis=-1)


@dataclass(frozen=True)
class Contributions:
    """What each part wrote into one token's residual stream.

    names: "token embedding", "position embedding", "attention 0", "MLP 0", ...
    vectors: [parts, d]; they add up to the final residual (before ln_f).
    sizes: [parts] L2 norm of each part.
    along_final: [parts] each part's component along the final residual's direction; these add
        up to the final residual's norm.
    final_norm: norm of the final residual.
    """

    names: tuple[str, ...]
    vectors: np.ndarray
    sizes: np.ndarray
    along_final: np.ndarray
    final_norm: float


def contributions(trace: Trace, pos: int) -> Contributions:
    """Split token `pos`'s final residual (the last `hook_resid_post`) into the 2 + 2 * n_layer
    parts that wrote it: the two embeddings, then each layer's attention and MLP output
    (float64). A zero final residual gives along_final = 0."""
    names = ["token embedding", "position embedding"]
    parts = [trace["hook_embed"][pos], trace["hook_pos_embed"][pos]]
    for i in range(trace.config.n_layer):
        names += [f"attention {i}", f"MLP {i}"]
        parts += [trace.get("hook_attn_out", i)[pos], trace.get("hook_mlp_out", i)[pos]]
    vectors = np.stack(parts).astype(np.float64)
    final = trace.get("hook_resid_post", trace.config.n_layer - 1)[pos].astype(np.float64)
    final_norm = float(np.linalg.norm(final))
    unit = final / final_norm if final_norm > 0 else final
    return Contributions(
        names=tuple(names),
        vectors=vectors,
        sizes=np.linalg.norm(vectors, axis=-1),
        along_final=vectors @ unit,
        final_norm=final_norm,
    )


def cosine_to_final(trace: Trace) -> np.ndarray:
    """[n_layer + 1, T] float64: cosine similarity of each row of `residual_stack` with the final
    residual of the same token (the last row is 1; 0 where either vector is zero)."""
    stack = residual_stack(trace).astype(np.float64)
    final = stack[-1]
    dots = (stack * final[None]).sum(-1)
    norms = np.linalg.norm(stack, axis=-1) * np.linalg.norm(final, axis=-1)[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, dots / norms, 0.0)


@dataclass(frozen=True)
class ResidualStep:
    """One `x + f(x)` for one token: the stream before, the branch output, the stream after."""

    label: str
    before_norm: float
    branch_norm: float
    after_norm: float
    cosine: float  # between x and f(x): 1 reinforces, 0 adds a new direction, -1 erases


def residual_steps(trace: Trace, pos: int) -> list[ResidualStep]:
    """Every residual addition for token `pos`, in forward order (attention, MLP, per layer):
    2 * n_layer steps with the L2 norms of x, f(x) and x + f(x) and their cosine (0 when either
    is zero)."""
    steps = []
    for i in range(trace.config.n_layer):
        for label, before, branch, after in (
            (f"layer {i} attention", "hook_resid_pre", "hook_attn_out", "hook_resid_mid"),
            (f"layer {i} MLP", "hook_resid_mid", "hook_mlp_out", "hook_resid_post"),
        ):
            x = trace.get(before, i)[pos].astype(np.float64)
            f = trace.get(branch, i)[pos].astype(np.float64)
            y = trace.get(after, i)[pos].astype(np.float64)
            nx, nf = float(np.linalg.norm(x)), float(np.linalg.norm(f))
            cos = float(x @ f / (nx * nf)) if nx > 0 and nf > 0 else 0.0
            steps.append(ResidualStep(label, nx, nf, float(np.linalg.norm(y)), cos))
    return steps


__all__ = [
    "Contributions",
    "ResidualStep",
    "contributions",
    "cosine_to_final",
    "residual_norms",
    "residual_stack",
    "residual_steps",
]
