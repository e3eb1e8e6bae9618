"""Stage 5, layer norm: `(x - mean) / sqrt(var + eps) * gamma + beta`, per token over its features.

GPT-2 has two LayerNorms per block (`ln_1` before attention, `ln_2` before the MLP) and a final
`ln_f`. Their inputs are the residual stream (`hook_resid_pre`, `hook_resid_mid`, the last
`hook_resid_post`). Pure builders: arrays and labels in, plotly Figures out; the statistics and
both normalisations come from `engine.lens.layer_norm`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from engine.figures.common import (
    PALETTE,
    base_layout,
    curve,
    panels,
    plotly_text,
    subplots,
    token_labels,
    window,
)
from engine.figures.text import _
from engine.lens.layer_norm import LNStats


def ln_label(which: str, layer: int | None) -> str:
    """Readable name of one LayerNorm ("ln_1 of layer 2", "ln_f (final)")."""
    if which == "ln_final":
        return _("ln_f (final)")
    return _("{ln} of layer {layer}").format(ln="ln_1" if which == "ln1" else "ln_2", layer=layer)


def stats_label(stats: LNStats) -> str:
    """`LNStats.name` ("blocks.2.ln1", "ln_final") as a short axis label ("2·ln_1", "ln_f")."""
    if stats.name == "ln_final":
        return "ln_f"
    _blocks, layer, which = stats.name.split(".")
    return f"{layer}·{'ln_1' if which == 'ln1' else 'ln_2'}"


def token_stats_figure(
    stats: LNStats, token_strs: list[str] | tuple[str, ...], title: str, start: int = 0
) -> go.Figure:
    """Per-token mean and standard deviation of the vector entering one LayerNorm (a window of
    tokens from `start`)."""
    span = window(len(stats.mean), start)
    lo, hi = span.start, span.stop
    x = token_labels(token_strs, lo, hi)
    bars = [
        go.Bar(
            x=x,
            y=values[lo:hi],
            name=name,
            marker_color=PALETTE[i],
            hovertemplate=hover + "<extra></extra>",
        )
        for i, (values, name, hover) in enumerate(
            (
                (stats.mean, _("mean"), _("token %{x}<br>mean %{y:.4f}")),
                (stats.std, _("standard deviation"), _("token %{x}<br>std %{y:.4f}")),
            )
        )
    ]
    fig = panels(
        bars,
        (_("mean over the features"), _("standard deviation over the features")),
        spacing=0.08,
    )
    fig.update_xaxes(tickangle=-45, row=2, col=1)
    fig.update_layout(showlegend=False)
    return base_layout(fig, title, 560)


def feature_steps_figure(
    x: np.ndarray, normalized: np.ndarray, out: np.ndarray, title: str
) -> go.Figure:
    """One token's features ([d] each) as strips (one bar per feature): as they enter (`x`),
    after normalising (`normalized`), after gamma and beta (`out`, `ln_affine`); each strip
    titled with its mean and standard deviation. Strips keep the feature order, so a few huge
    features (common in trained models) stay recognisable."""
    x = np.asarray(x, dtype=np.float64)
    normalized = np.asarray(normalized, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    steps = (
        (_("1. entering: {formula}").format(formula="x"), x, PALETTE[9]),
        (
            _("2. normalised: {formula}").format(formula="(x − mean) / sqrt(var + eps)"),
            normalized,
            PALETTE[0],
        ),
        (
            _("3. after gamma and beta: {formula}").format(formula="y = gamma · x̂ + beta"),
            out,
            PALETTE[2],
        ),
    )
    fig = subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        titles=[
            _("{name}  (mean {mean}, std {std})").format(
                name=name, mean=f"{v.mean():.3f}", std=f"{v.std():.3f}"
            )
            for name, v, _colour in steps
        ],
    )
    idx = np.arange(x.size)
    for row, (name, values, colour) in enumerate(steps, start=1):
        fig.add_trace(
            go.Bar(
                x=idx,
                y=values,
                name=name,
                marker_color=colour,
                hovertemplate=_("feature %{x}<br>value %{y:.4f}<extra></extra>"),
            ),
            row=row,
            col=1,
        )
    fig.update_xaxes(title_text=_("feature"), row=3, col=1)
    fig.update_layout(showlegend=False, bargap=0.0)
    return base_layout(fig, title, 640)


def gamma_beta_figure(gamma: np.ndarray, beta: np.ndarray, title: str) -> go.Figure:
    """The learned gain (gamma) and bias (beta) of one LayerNorm, feature by feature."""
    gamma = np.asarray(gamma, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    idx = np.arange(gamma.size)
    bars = [
        go.Bar(
            x=idx,
            y=values,
            name=name,
            marker_color=PALETTE[i],
            hovertemplate=_("feature %{x}<br>{name} %{y:.4f}").replace("{name}", name)
            + "<extra></extra>",
        )
        for i, (values, name) in enumerate(((gamma, "gamma"), (beta, "beta")))
    ]
    fig = panels(bars, (_("gamma (gain; 1 = unchanged)"), _("beta (bias; 0 = unchanged)")))
    fig.update_xaxes(title_text=_("feature"), row=2, col=1)
    fig.update_layout(showlegend=False, bargap=0.0)
    return base_layout(fig, title, 520)


def scale_growth_figure(
    all_stats: list[LNStats], pos: int, token_label: str, highlight: str | None = None
) -> go.Figure:
    """The standard deviation of the residual entering every LayerNorm, in forward order: the
    median over tokens, the smallest and largest token, and the selected token."""
    labels = [stats_label(s) for s in all_stats]
    stds = np.stack([s.std for s in all_stats])  # [n_ln, T]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=stds.max(axis=1),
            mode="lines",
            line={"width": 0},
            name=_("largest token"),
            showlegend=False,
            hovertemplate=_("%{x}<br>largest std %{y:.3f}<extra></extra>"),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=stds.min(axis=1),
            mode="lines",
            line={"width": 0},
            fill="tonexty",
            fillcolor="rgba(76,120,168,0.2)",
            name=_("smallest to largest token"),
            hovertemplate=_("%{x}<br>smallest std %{y:.3f}<extra></extra>"),
        )
    )
    fig.add_trace(
        curve(
            labels,
            np.median(stds, axis=1),
            _("median token"),
            PALETTE[0],
            _("%{x}<br>median std %{y:.3f}<extra></extra>"),
        )
    )
    fig.add_trace(
        curve(
            labels,
            stds[:, pos],
            _("token {pos} “{token}”").format(pos=pos, token=plotly_text(token_label)),
            PALETTE[3],
            _("%{x}<br>this token's std %{y:.3f}<extra></extra>"),
            dash=True,
        )
    )
    if highlight is not None and highlight in labels:
        fig.add_vline(x=labels.index(highlight), line_dash="dot", line_color="grey")
    fig.update_xaxes(title_text=_("LayerNorm, in the order the model reaches them"))
    fig.update_yaxes(title_text=_("std of the residual entering it (log scale)"), type="log")
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return base_layout(fig, _("How the residual stream's scale grows through the layers"), 480)


def article_vs_gpt_figure(
    gpt: np.ndarray,
    article: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    start: int = 0,
) -> go.Figure:
    """Each token's mean and standard deviation after GPT-2's per-token normalisation (`gpt`,
    [T, d]: std always 1) and after the article's whole-tensor normalisation (`article`,
    [T, d]: whatever the token had, only rescaled)."""
    span = window(gpt.shape[0], start)
    lo, hi = span.start, span.stop
    labels = token_labels(token_strs, lo, hi)
    fig = subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.08,
        titles=(_("mean of each token after"), _("std of each token after")),
    )
    for col, reduce in ((1, np.mean), (2, np.std)):
        for name, values, colour in (
            (_("GPT-2: per token"), gpt, PALETTE[0]),
            (_("article: whole tensor"), article, PALETTE[1]),
        ):
            fig.add_trace(
                go.Bar(
                    x=labels,
                    y=reduce(values[lo:hi], axis=-1),
                    name=name,
                    marker_color=colour,
                    showlegend=col == 1,
                    legendgroup=name,
                    hovertemplate=_("token %{x}<br>%{y:.4f}<extra>") + name + "</extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(tickangle=-45)
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.35})
    return base_layout(fig, _("The same vectors, normalised both ways"), 500)


__all__ = [
    "article_vs_gpt_figure",
    "feature_steps_figure",
    "gamma_beta_figure",
    "ln_label",
    "scale_growth_figure",
    "stats_label",
    "token_stats_figure",
]
