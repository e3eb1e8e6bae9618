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
    bar_spec,
    curve_spec,
    panels_spec,
    plotly_text,
    prose_number,
    spec_figure,
    subplots_spec,
    token_labels,
    update_axes,
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
    tokens from `start`). Written as one dict and built once (`spec_figure`)."""
    span = window(len(stats.mean), start)
    lo, hi = span.start, span.stop
    x = token_labels(token_strs, lo, hi)
    bars = [
        bar_spec(x, values[lo:hi], name, PALETTE[i], hover + "<extra></extra>")
        for i, (values, name, hover) in enumerate(
            (
                (stats.mean, _("mean"), _("token %{x}<br>mean %{y:.4f}")),
                (stats.std, _("standard deviation"), _("token %{x}<br>std %{y:.4f}")),
            )
        )
    ]
    spec, ref = panels_spec(
        bars,
        (_("mean over the features"), _("standard deviation over the features")),
        spacing=0.12,  # the lower panel's title (lecture type, 20 px) sits in the gap
    )
    layout = spec["layout"]
    layout[ref[1][0][0].layout_keys[0]]["tickangle"] = -45
    layout["showlegend"] = False
    return spec_figure(spec, title, 560)


def feature_steps_figure(
    x: np.ndarray, normalized: np.ndarray, out: np.ndarray, title: str
) -> go.Figure:
    """One token's features ([d] each) as strips (one bar per feature): as they enter (`x`),
    after normalising (`normalized`), after gamma and beta (`out`, `ln_affine`); each strip
    titled with its mean and standard deviation. Strips keep the feature order, so a few huge
    features (common in trained models) stay recognisable. Written as one dict and built once
    (`spec_figure`)."""
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
    spec, ref = subplots_spec(
        [
            _("{name}  (mean {mean}, std {std})").format(
                name=name,
                mean=prose_number(v.mean(), "{:.3f}"),
                std=prose_number(v.std(), "{:.3f}"),
            )
            for name, v, _colour in steps
        ],
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.14,  # room for a panel title wrapped onto two lines
    )
    idx = np.arange(x.size)
    spec["data"] = [
        bar_spec(
            idx,
            values,
            name,
            colour,
            _("feature %{x}<br>value %{y:.4f}<extra></extra>"),
            **ref[row][0][0].trace_kwargs,
        )
        for row, (name, values, colour) in enumerate(steps)
    ]
    layout = spec["layout"]
    layout[ref[2][0][0].layout_keys[0]]["title"] = {"text": _("feature")}
    layout.update(showlegend=False, bargap=0.0)
    return spec_figure(spec, title, 640)


def gamma_beta_figure(gamma: np.ndarray, beta: np.ndarray, title: str) -> go.Figure:
    """The learned gain (gamma) and bias (beta) of one LayerNorm, feature by feature. Written
    as one dict and built once (`spec_figure`)."""
    gamma = np.asarray(gamma, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    idx = np.arange(gamma.size)
    bars = [
        bar_spec(
            idx,
            values,
            name,
            PALETTE[i],
            _("feature %{x}<br>{name} %{y:.4f}").replace("{name}", name) + "<extra></extra>",
        )
        for i, (values, name) in enumerate(((gamma, "gamma"), (beta, "beta")))
    ]
    spec, ref = panels_spec(  # room for the lower panel's title wrapped onto two lines
        bars, (_("gamma (gain; 1 = unchanged)"), _("beta (bias; 0 = unchanged)")), spacing=0.18
    )
    layout = spec["layout"]
    layout[ref[1][0][0].layout_keys[0]]["title"] = {"text": _("feature")}
    layout.update(showlegend=False, bargap=0.0)
    return spec_figure(spec, title, 520)


def scale_growth_figure(
    all_stats: list[LNStats], pos: int, token_label: str, highlight: str | None = None
) -> go.Figure:
    """The standard deviation of the residual entering every LayerNorm, in forward order: the
    median over tokens, the smallest and largest token, and the selected token. Written as one
    dict and built once (`spec_figure`)."""
    labels = [stats_label(s) for s in all_stats]
    stds = np.stack([s.std for s in all_stats])  # [n_ln, T]
    data = [
        {
            "type": "scatter",
            "x": labels,
            "y": stds.max(axis=1),
            "mode": "lines",
            "line": {"width": 0},
            "name": _("largest token"),
            "showlegend": False,
            "hovertemplate": _("%{x}<br>largest std %{y:.3f}<extra></extra>"),
        },
        {
            "type": "scatter",
            "x": labels,
            "y": stds.min(axis=1),
            "mode": "lines",
            "line": {"width": 0},
            "fill": "tonexty",
            "fillcolor": "rgba(76,120,168,0.2)",
            "name": _("smallest to largest token"),
            "hovertemplate": _("%{x}<br>smallest std %{y:.3f}<extra></extra>"),
        },
        curve_spec(
            labels,
            np.median(stds, axis=1),
            _("median token"),
            PALETTE[0],
            _("%{x}<br>median std %{y:.3f}<extra></extra>"),
        ),
        curve_spec(
            labels,
            stds[:, pos],
            _("token {pos} “{token}”").format(pos=pos, token=plotly_text(token_label)),
            PALETTE[3],
            _("%{x}<br>this token's std %{y:.3f}<extra></extra>"),
            dash=True,
        ),
    ]
    layout: dict = {
        "xaxis": {"title": {"text": _("LayerNorm, in the order the model reaches them")}},
        "yaxis": {
            "title": {"text": _("std of the residual entering it (log scale)")},
            "type": "log",
        },
        "legend": {"orientation": "h", "y": -0.25},
    }
    if highlight is not None and highlight in labels:
        at = labels.index(highlight)
        layout["shapes"] = [
            {
                "type": "line",
                "xref": "x",
                "yref": "y domain",
                "x0": at,
                "x1": at,
                "y0": 0,
                "y1": 1,
                "line": {"color": "grey", "dash": "dot"},
            }
        ]
    return spec_figure(
        {"data": data, "layout": layout},
        _("How the residual stream's scale grows through the layers"),
        480,
    )


def article_vs_gpt_figure(
    gpt: np.ndarray,
    article: np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    start: int = 0,
) -> go.Figure:
    """Each token's mean and standard deviation after GPT-2's per-token normalisation (`gpt`,
    [T, d]: std always 1) and after the article's whole-tensor normalisation (`article`,
    [T, d]: whatever the token had, only rescaled). Written as one dict and built once
    (`spec_figure`)."""
    span = window(gpt.shape[0], start)
    lo, hi = span.start, span.stop
    labels = token_labels(token_strs, lo, hi)
    spec, ref = subplots_spec(
        (_("mean of each token after"), _("std of each token after")),
        rows=1,
        cols=2,
        horizontal_spacing=0.08,
    )
    for col, reduce in ((1, np.mean), (2, np.std)):
        for name, values, colour in (
            (_("GPT-2: per token"), gpt, PALETTE[0]),
            (_("article: whole tensor"), article, PALETTE[1]),
        ):
            spec["data"].append(
                bar_spec(
                    labels,
                    reduce(values[lo:hi], axis=-1),
                    name,
                    colour,
                    _("token %{x}<br>%{y:.4f}<extra>") + name + "</extra>",
                    showlegend=col == 1,
                    legendgroup=name,
                    **ref[0][col - 1][0].trace_kwargs,
                )
            )
    layout = spec["layout"]
    update_axes(layout, x={"tickangle": -45})
    layout.update(barmode="group", legend={"orientation": "h", "y": -0.35})
    return spec_figure(spec, _("The same vectors, normalised both ways"), 500)


__all__ = [
    "article_vs_gpt_figure",
    "feature_steps_figure",
    "gamma_beta_figure",
    "ln_label",
    "scale_growth_figure",
    "stats_label",
    "token_stats_figure",
]
