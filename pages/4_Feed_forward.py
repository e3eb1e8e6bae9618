"""Stage 4: the feed-forward block (MLP) of the selected layer, token by token."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from engine.figures import feed_forward as fig_ff
from engine.figures.common import prose_number
from engine.lens import feed_forward as lens_ff
from ui.cache import get_layer_summary, get_top_neurons
from ui.frame import frame
from ui.i18n import N_, _
from ui.lecture import in_pickers
from ui.text import markdown_literal
from ui.widgets import axis_window, bounded_input, chart, formatted, lazy_section, next_stage

# engine.lens.feed_forward's RANKINGS and activation_summary rows, marked for the catalogue.
RANKING_NAMES = {
    "selective": N_("most selective: peak minus median over the tokens"),
    "peak": N_("largest activation on any token"),
}
SUMMARY_NAMES = {
    "units": N_("units"),
    "share negative (GELU ≈ 0)": N_("share negative (GELU ≈ 0)"),
    "share above 2 (tanh saturates)": N_("share above 2 (tanh saturates)"),
    "largest pre-activation": N_("largest pre-activation"),
    "largest GELU output": N_("largest GELU output"),
    "largest tanh output": N_("largest tanh output"),
}

view = frame("feed_forward")
if view is None:
    st.stop()

trace, cfg, layer, pos = view.trace, view.trace.config, view.layer, view.pos
token = markdown_literal(trace.token_strs[pos])  # shown as typed inside Markdown

st.title(_("4 · Feed-forward · layer {layer}").format(layer=layer))
st.markdown(
    _(
        "After attention has mixed information **between** tokens, the feed-forward block works "
        "on each token **alone**: it widens the token's {d} numbers to {d_mlp} hidden units, "
        "passes each through the GELU curve (negative values are mostly switched off, positive "
        "ones pass), and projects back to {d} numbers, which are added to the residual stream. "
        "Showing **layer {layer}**; change the layer {where}."
    ).format(d=cfg.d_model, d_mlp=cfg.d_mlp, layer=layer, where=in_pickers())
)
st.latex(  # two rows: a display formula does not wrap (about 500 px at 1024 px)
    r"\begin{gathered}\mathrm{mlp}(x) = W_2\,\mathrm{gelu}(W_1 x + b_1) + b_2 \\[4pt]"
    r"W_1 \in \mathbb{R}^{d \times 4d},\; W_2 \in \mathbb{R}^{4d \times d}\end{gathered}"
)
st.latex(
    r"\mathrm{gelu}(u) = \tfrac{1}{2}\,u\left(1 + \tanh\!\left[\sqrt{2/\pi}\,"
    r"(u + 0.044715\,u^3)\right]\right)"
)
st.caption(
    _(
        "In GPT-2 the input x is ln_2 of the residual stream (see 5 · Layer norm), and the "
        "output is added back: {formula}."
    ).format(formula="x ← x + mlp(ln_2(x))")
)

st.subheader(_("Which hidden units fire on your text"))
tok_start = axis_window(trace.n_tokens, _("Tokens"), key="feed_forward_tokens")
left, right = st.columns([3, 2])
if trace.n_tokens > 1:
    rank = right.radio(
        _("Rank the hidden units by"),
        list(lens_ff.RANKINGS),
        format_func=lambda r: _(RANKING_NAMES[r]),
        key="feed_forward_rank",
    )
else:  # selectivity compares a unit's tokens: with one token there is nothing to compare
    rank = "peak"
    right.caption(
        _(
            "Ranked by the largest activation. Selectivity (peak minus median over the tokens) "
            "is not measurable on a one-token text."
        )
    )
k = int(
    bounded_input(
        "slider",
        _("Hidden units shown"),
        min(4, cfg.d_mlp),
        min(64, cfg.d_mlp),
        min(lens_ff.TOP_NEURONS, cfg.d_mlp),
        key="feed_forward_k",
        where=left,
    )
)
post = trace.get("mlp.hook_post", layer)
chart(
    fig_ff.neurons_heatmap(
        post, get_top_neurons(view, layer, k, rank), trace.token_strs, layer, tok_start, rank
    ),
    key="feed_forward_map",
)
st.caption(
    _(
        "Each row is one hidden unit after GELU, each column a token; red = active on that "
        "token, white = off (GELU's output is 0 there). Trained models keep some units on for "
        "every token; ranking by selectivity shows the units that fire on some tokens only, "
        "which are often detectors for a word or a pattern."
    )
)

st.subheader(_("Inside one token: “{token}” (position {pos})").format(token=token, pos=pos))
# one under the other, each the page's width: side by side at 1024 px (a projector) each was
# about 245 px wide, its title cut and its legend over the curves
chart(
    fig_ff.hidden_histogram(
        trace.get("mlp.hook_pre", layer)[pos], post[pos], trace.token_strs[pos], layer, pos
    ),
    key="feed_forward_hist",
)
chart(
    fig_ff.activation_functions(trace.get("mlp.hook_pre", layer), pos),
    key="feed_forward_curves",
)
summary = lens_ff.activation_summary(trace.get("mlp.hook_pre", layer)[pos])
st.dataframe(
    pd.DataFrame(
        {
            "": [_(SUMMARY_NAMES[name]) for name in summary],
            _("value"): [
                f"{v:.0f}" if name == "units" else f"{v:.1%}" if "share" in name else f"{v:.3f}"
                for name, v in summary.items()
            ],
        }
    ),
    hide_index=True,
    width="content",
    key="feed_forward_summary",
)
st.caption(
    _(
        "Before GELU the hidden values spread on both sides of 0; after GELU the negative ones "
        "are squeezed to about 0 (the smallest GELU output is −0.17) and the positive ones pass "
        "almost unchanged. The vermilion dots are this token's units placed on the GELU curve."
    )
)


def _layer_norms() -> None:
    """How much each layer's feed-forward block adds, per token (‖mlp_out‖ from the per-layer
    summary)."""
    norms = get_layer_summary(view).mlp_out_norms
    chart(
        fig_ff.mlp_norms_heatmap(norms, trace.token_strs, start=tok_start), key="feed_forward_norms"
    )
    table = pd.DataFrame(
        norms.T,
        columns=[_("layer {i}").format(i=i) for i in range(cfg.n_layer)],
        index=pd.Index([f"{i}: {s}" for i, s in enumerate(trace.token_strs)], name=_("token")),
    )
    st.caption(_("The numbers: {norm} for every token and layer").format(norm="‖mlp_out‖"))
    st.dataframe(
        formatted(table, dict.fromkeys(table.columns, "{:.3f}")), key="feed_forward_norm_table"
    )


lazy_section(
    _("How much each layer's feed-forward block adds, per token"),
    "feed_forward_sec_norms",
    _layer_norms,
)


def _article_vs_gpt() -> None:
    """The article's one-layer tanh block beside GPT-2's two layers with GELU, on this token's
    hidden inputs."""
    left, right = st.columns(2)
    with left:
        st.markdown(
            _("**The article** ({code} in its code, {maths} in its maths)").format(
                code="`tanh(x W₁ + W₂)`", maths="`tanh(W₁x + b₁)`"
            )
        )
        st.code(
            "hidden = torch.tanh(torch.matmul(input_vector, weights_1) + weights_2)\nreturn hidden",
            language="python",
            wrap_lines=True,
        )
        st.markdown(
            _(
                "- one layer only: its output has **{d_mlp}** numbers (the hidden width), but the "
                "residual stream has **{d}**, so it cannot be added back;\n- the code adds the "
                "matrix W₂ ({d_mlp} × {d}) where a bias vector belongs, which does not even have "
                "the right shape;\n- tanh squashes every value into (−1, 1): a strongly active "
                "unit looks the same as a mildly active one."
            ).format(d_mlp=cfg.d_mlp, d=cfg.d_model)
        )
    with right:
        st.markdown(_("**GPT-2** (what this model runs)"))
        st.code(
            "h = gelu(x @ W1 + b1)     # [T, 4d]\nout = h @ W2 + b2         # [T, d], added to x",
            language="python",
            wrap_lines=True,
        )
        st.markdown(
            _(
                "- two layers: widen to {d_mlp}, then project back to {d};\n"
                "- GELU lets large positive values through, so a unit can say *how strongly* it "
                "fires;\n"
                "- the output is added to the residual stream, never replacing it."
            ).format(d_mlp=cfg.d_mlp, d=cfg.d_model)
        )
    pre = trace.get("mlp.hook_pre", layer)[pos].astype(np.float64)
    chart(fig_ff.article_vs_gpt(pre, layer, pos), key="feed_forward_article")
    st.caption(
        _(
            "The same {n} hidden inputs of “{token}”: under tanh, {share} of them are pinned near "
            "±1; under GELU the largest keeps its size ({largest})."
        ).format(
            n=pre.size,
            token=token,
            share=f"{float((np.abs(np.tanh(pre)) > 0.95).mean()):.0%}",
            largest=prose_number(float(lens_ff.gelu(pre).max())),
        )
    )


lazy_section(
    _("The article's feed-forward beside GPT-2's"), "feed_forward_sec_article", _article_vs_gpt
)

next_stage(view)
