"""Stage 4, the feed-forward block: `mlp_out = W2 gelu(W1 x + b1) + b2`, per token.

Builders take a Trace and a selection and return plotly Figures; the numbers they draw are
computed by the small functions next to them, which the tests compare with the Trace.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from engine.figures.common import (
    PALETTE,
    SCALE_WEIGHTS,
    base_layout,
    plotly_text,
    token_labels,
    window,
)
from engine.trace import Trace

TOP_NEURONS = 24
_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))


# --- numbers -----------------------------------------------------------------------------------


def gelu(x: np.ndarray) -> np.ndarray:
    """GPT-2's GELU ("gelu_new"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))


RANKINGS: dict[str, str] = {
    "selective": "most selective: peak minus median over the tokens",
    "peak": "largest activation on any token",
}


def top_neurons(post: np.ndarray, k: int = TOP_NEURONS, rank: str = "peak") -> np.ndarray:
    """Indices of k hidden units, strongest first (ties by index). `post` is [T, d_mlp], after
    GELU. rank "peak": the largest activation on any token; "selective": that peak minus the
    unit's median over the tokens, so units that are on for every token (common in trained
    models) give way to units that fire on some tokens only."""
    acts = np.asarray(post, dtype=np.float64)
    if rank not in RANKINGS:
        raise ValueError(f"unknown ranking {rank!r}: use one of {sorted(RANKINGS)}")
    score = acts.max(axis=0)
    if rank == "selective":
        score = score - np.median(acts, axis=0)
    k = max(1, min(int(k), score.size))
    order = np.lexsort((np.arange(score.size), -score))
    return order[:k]


def zero_white_scale(zmin: float, zmax: float) -> list[list]:
    """A colour scale for GELU outputs in [zmin, zmax]: white exactly at 0, red for active,
    and only a pale blue for the small negative values (GELU's minimum is -0.17: a unit there
    is "off", so it must not look as loud as a strongly active one)."""
    if zmax <= zmin:
        return [[0.0, "#f7f7f7"], [1.0, "#b2182b"]]
    if zmin >= 0:
        return [[0.0, "#f7f7f7"], [0.5, "#ef8a62"], [1.0, "#67001f"]]
    if zmax <= 0:
        return [[0.0, "#c6dbef"], [1.0, "#f7f7f7"]]
    mid = -zmin / (zmax - zmin)
    return [[0.0, "#c6dbef"], [mid, "#f7f7f7"], [(1 + mid) / 2, "#ef8a62"], [1.0, "#67001f"]]


def mlp_out_norms(trace: Trace) -> np.ndarray:
    """[n_layer, T]: the size (L2 norm) of what each layer's MLP adds to each token."""
    return np.stack(
        [
            np.linalg.norm(trace.get("hook_mlp_out", i).astype(np.float64), axis=-1)
            for i in range(trace.config.n_layer)
        ]
    )


def activation_summary(pre: np.ndarray) -> dict[str, float]:
    """How a token's hidden pre-activations fare under GELU, tanh and ReLU."""
    pre = np.asarray(pre, dtype=np.float64)
    g = gelu(pre)
    return {
        "units": float(pre.size),
        "share negative (GELU ≈ 0)": float((pre < 0).mean()),
        "share above 2 (tanh saturates)": float((pre > 2).mean()),
        "largest pre-activation": float(pre.max()),
        "largest GELU output": float(g.max()),
        "largest tanh output": float(np.tanh(pre).max()),
    }


# --- figures -----------------------------------------------------------------------------------


def neurons_heatmap(
    trace: Trace, layer: int, k: int = TOP_NEURONS, start: int = 0, rank: str = "peak"
) -> go.Figure:
    """k hidden units of `layer` (rows, ranked by `rank`) on every token (columns), after GELU."""
    post = trace.get("mlp.hook_post", layer)
    ids = top_neurons(post, k, rank)
    span = window(trace.n_tokens, start)
    lo, hi = span.start, span.stop
    z = post[lo:hi, ids].T.astype(np.float64)
    zmin, zmax = min(0.0, float(z.min())), max(0.0, float(z.max()))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=token_labels(trace.token_strs, lo, hi),
            y=[f"unit {i}" for i in ids],
            colorscale=zero_white_scale(zmin, zmax),
            zmin=zmin,
            zmax=zmax,
            colorbar={"title": {"text": "gelu"}},
            hovertemplate="token %{x}<br>%{y}<br>activation %{z:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", title_text="hidden unit", type="category")
    fig.update_xaxes(title_text="token", tickangle=-45, type="category")
    height = max(420, 26 * len(ids) + 200)
    which = "most selective" if rank == "selective" else "most active"
    return base_layout(
        fig, f"Layer {layer}: the {len(ids)} {which} of {post.shape[1]} hidden units", height
    )


def hidden_histogram(trace: Trace, layer: int, pos: int) -> go.Figure:
    """Every hidden unit of one token: its value before GELU and after it."""
    pre = trace.get("mlp.hook_pre", layer)[pos].astype(np.float64)
    post = trace.get("mlp.hook_post", layer)[pos].astype(np.float64)
    fig = go.Figure()
    fig.add_trace(
        go.Histogram(
            x=pre,
            name="before GELU (W1 x + b1)",
            nbinsx=60,
            marker_color=PALETTE[9],
            opacity=0.75,
            hovertemplate="value %{x}<br>%{y} units<extra>before GELU</extra>",
        )
    )
    fig.add_trace(
        go.Histogram(
            x=post,
            name="after GELU",
            nbinsx=60,
            marker_color=PALETTE[0],
            opacity=0.75,
            hovertemplate="value %{x}<br>%{y} units<extra>after GELU</extra>",
        )
    )
    fig.update_layout(barmode="overlay", legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text="activation")
    fig.update_yaxes(title_text="hidden units")
    token = plotly_text(trace.token_strs[pos])
    return base_layout(
        fig, f"Token {pos} “{token}”: its {pre.size} hidden units, layer {layer}", 440
    )


def activation_functions(trace: Trace, layer: int, pos: int) -> go.Figure:
    """GELU beside tanh (the article's) and ReLU, with this token's pre-activations on GELU."""
    pre_all = trace.get("mlp.hook_pre", layer).astype(np.float64)
    pre = pre_all[pos]
    low = min(-4.0, float(pre_all.min()))
    high = max(4.0, float(pre_all.max()))
    xs = np.linspace(low, high, 400)
    fig = go.Figure()
    curves = (
        ("GELU (GPT-2)", gelu(xs), PALETTE[0], "solid"),
        ("tanh (the article)", np.tanh(xs), PALETTE[1], "dash"),
        ("ReLU", np.maximum(xs, 0.0), PALETTE[2], "dot"),
    )
    for name, ys, colour, dash in curves:
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=name,
                line={"color": colour, "dash": dash, "width": 3},
                hovertemplate="x %{x:.2f}<br>f(x) %{y:.3f}<extra>" + name + "</extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=pre,
            y=gelu(pre),
            mode="markers",
            name=f"token {pos}'s {pre.size} units",
            marker={"color": PALETTE[3], "size": 7, "opacity": 0.6},
            hovertemplate="before GELU %{x:.3f}<br>after GELU %{y:.3f}<extra>this token</extra>",
        )
    )
    fig.update_xaxes(title_text="pre-activation  W1 x + b1")
    fig.update_yaxes(title_text="output", range=[-1.5, max(2.0, float(gelu(high)) * 1.05)])
    fig.update_layout(legend={"orientation": "h", "y": -0.22})
    return base_layout(fig, "Activation functions, with this text's values", 480)


def mlp_norms_heatmap(trace: Trace, start: int = 0) -> go.Figure:
    """How much each layer's MLP writes into each token's residual stream (L2 norm)."""
    norms = mlp_out_norms(trace)
    span = window(trace.n_tokens, start)
    lo, hi = span.start, span.stop
    fig = go.Figure(
        go.Heatmap(
            z=norms[:, lo:hi],
            x=token_labels(trace.token_strs, lo, hi),
            y=[f"layer {i}" for i in range(norms.shape[0])],
            colorscale=SCALE_WEIGHTS,
            zmin=0.0,
            colorbar={"title": {"text": "‖mlp_out‖"}},
            hovertemplate="token %{x}<br>%{y}<br>‖mlp_out‖ %{z:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="token", tickangle=-45)
    return base_layout(
        fig, "Size of each layer's feed-forward output, per token", 160 + 50 * norms.shape[0]
    )


def article_vs_gpt(trace: Trace, layer: int, pos: int) -> go.Figure:
    """The same hidden pre-activations through the article's tanh and GPT-2's GELU."""
    pre = trace.get("mlp.hook_pre", layer)[pos].astype(np.float64)
    fig = go.Figure()
    fig.add_trace(
        go.Histogram(
            x=np.tanh(pre),
            name="article: tanh(·), squashed into (-1, 1)",
            nbinsx=50,
            marker_color=PALETTE[1],
            opacity=0.75,
        )
    )
    fig.add_trace(
        go.Histogram(
            x=gelu(pre),
            name="GPT-2: gelu(·), large values pass",
            nbinsx=50,
            marker_color=PALETTE[0],
            opacity=0.75,
        )
    )
    fig.update_layout(barmode="overlay", legend={"orientation": "h", "y": -0.22})
    fig.update_xaxes(title_text="hidden unit value")
    fig.update_yaxes(title_text="hidden units")
    return base_layout(fig, f"Token {pos}, layer {layer}: tanh vs GELU on the same inputs", 440)


__all__ = [
    "RANKINGS",
    "TOP_NEURONS",
    "activation_functions",
    "activation_summary",
    "article_vs_gpt",
    "gelu",
    "hidden_histogram",
    "mlp_norms_heatmap",
    "mlp_out_norms",
    "neurons_heatmap",
    "top_neurons",
    "zero_white_scale",
]
