"""Stage 6, the residual stream: every block adds to it, `x = x + attn(ln_1(x))`,
`x = x + mlp(ln_2(x))`, so the final vector is exactly the sum of everything written into it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from engine.figures.common import (
    PALETTE,
    SCALE_SIGNED,
    SCALE_WEIGHTS,
    base_layout,
    plotly_text,
    token_labels,
    window,
)
from engine.lens.residual import residual_norms, residual_stack
from engine.trace import Trace

# --- numbers -----------------------------------------------------------------------------------


def stack_labels(n_layer: int) -> list[str]:
    """Row names of `engine.lens.residual_stack`: after the embeddings, then after each block."""
    return ["after embeddings"] + [f"after block {i}" for i in range(n_layer)]


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
    """Split token `pos`'s final residual into the parts that wrote it."""
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
    """[n_layer + 1, T]: cosine similarity of each row of the residual stack with the final
    residual of the same token (the last row is 1)."""
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
    """Every residual addition for token `pos`, in forward order (attention, MLP, per layer)."""
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


# --- figures -----------------------------------------------------------------------------------


def norms_heatmap(trace: Trace, start: int = 0, log: bool = False) -> go.Figure:
    """The residual's size (L2 norm) for every token after the embeddings and after every block.
    With `log`, the colour is log10 of the size (trained models grow by orders of magnitude);
    the hover always shows the size itself."""
    norms = residual_norms(trace)
    span = window(trace.n_tokens, start)
    lo, hi = span.start, span.stop
    shown = norms[:, lo:hi]
    colour = np.log10(np.maximum(shown, 1e-12)) if log else shown
    fig = go.Figure(
        go.Heatmap(
            z=colour,
            customdata=shown,
            x=token_labels(trace.token_strs, lo, hi),
            y=stack_labels(trace.config.n_layer),
            colorscale=SCALE_WEIGHTS,
            zmin=None if log else 0.0,
            colorbar={"title": {"text": "log₁₀ ‖x‖" if log else "‖x‖"}},
            hovertemplate="token %{x}<br>%{y}<br>‖x‖ %{customdata:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title_text="token", tickangle=-45, type="category")
    title = "Size of the residual stream, token by token" + (" (log colour)" if log else "")
    return base_layout(fig, title, 200 + 45 * norms.shape[0])


def contributions_figure(contrib: Contributions, pos: int, token_label: str) -> go.Figure:
    """For one token: each part's size, and how much of it points along the final residual."""
    names = list(contrib.names)
    colours = [
        PALETTE[4] if n.endswith("embedding") else PALETTE[0] if n.startswith("att") else PALETTE[1]
        for n in names
    ]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            y=names,
            x=contrib.sizes,
            orientation="h",
            name="size ‖part‖",
            marker_color=colours,
            hovertemplate="%{y}<br>size %{x:.3f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            y=names,
            x=contrib.along_final,
            orientation="h",
            name="along the final direction",
            marker_color="rgba(0,0,0,0.55)",
            hovertemplate="%{y}<br>along the final residual %{x:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="size (L2 norm) / signed component")
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.18})
    title = (
        f"Token {pos} “{plotly_text(token_label)}”: what each part wrote "
        f"(final size {contrib.final_norm:.2f})"
    )
    return base_layout(fig, title, 180 + 34 * len(names))


def cosine_figure(cos: np.ndarray, pos: int, token_label: str) -> go.Figure:
    """Cosine similarity of each layer's residual with the final one: the selected token and
    the mean over tokens."""
    labels = stack_labels(cos.shape[0] - 1)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=cos.mean(axis=1),
            mode="lines+markers",
            name="mean over tokens",
            line={"color": PALETTE[0], "width": 3},
            hovertemplate="%{x}<br>mean cosine %{y:.3f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=cos[:, pos],
            mode="lines+markers",
            name=f"token {pos} “{plotly_text(token_label)}”",
            line={"color": PALETTE[3], "width": 3, "dash": "dash"},
            hovertemplate="%{x}<br>cosine %{y:.3f}<extra>this token</extra>",
        )
    )
    fig.update_yaxes(title_text="cosine with the final residual", range=[-0.1, 1.05])
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return base_layout(fig, "Cosine with the final residual", 440)


def cosine_heatmap(trace: Trace, cos: np.ndarray, start: int = 0) -> go.Figure:
    """The cosine similarities for every token (layers x tokens)."""
    span = window(trace.n_tokens, start)
    lo, hi = span.start, span.stop
    fig = go.Figure(
        go.Heatmap(
            z=cos[:, lo:hi],
            x=token_labels(trace.token_strs, lo, hi),
            y=stack_labels(cos.shape[0] - 1),
            colorscale=SCALE_SIGNED,
            zmin=-1.0,
            zmax=1.0,
            zmid=0.0,
            colorbar={"title": {"text": "cos"}},
            hovertemplate="token %{x}<br>%{y}<br>cosine %{z:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-45)
    return base_layout(fig, "Cosine with the final residual, every token", 200 + 45 * cos.shape[0])


__all__ = [
    "Contributions",
    "ResidualStep",
    "contributions",
    "contributions_figure",
    "cosine_figure",
    "cosine_heatmap",
    "cosine_to_final",
    "norms_heatmap",
    "residual_steps",
    "stack_labels",
]
