"""Stage 5: layer norm (ln_1 and ln_2 of the selected layer, ln_f after the last one)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from engine.figures import layer_norm as fig_ln
from engine.figures.common import prose_number
from engine.lens.layer_norm import (
    article_normalize,
    future_leak,
    gpt_normalize,
    ln_affine,
    ln_input,
    ln_stats,
)
from ui.cache import get_all_ln_stats
from ui.frame import frame
from ui.i18n import _
from ui.lecture import in_pickers
from ui.models import layer_norm_params
from ui.text import markdown_literal
from ui.widgets import axis_window, chart, formatted, lazy_section, next_stage

view = frame("layer_norm")
if view is None:
    st.stop()

trace, cfg, layer, pos = view.trace, view.trace.config, view.layer, view.pos
last = cfg.n_layer - 1

st.title(_("5 · Layer norm · layer {layer}").format(layer=layer))
st.markdown(
    _(
        "Layer norm takes one token's vector and rescales it: subtract the vector's own mean, "
        "divide by its own standard deviation, then stretch and shift every feature by learned "
        "amounts (gamma and beta). Each token is normalised **on its own, over its features**, "
        "so a token with huge numbers and one with tiny numbers leave with the same scale."
    )
)
st.latex(  # two rows: a display formula does not wrap (about 500 px at 1024 px)
    r"\begin{gathered}"
    r"\mathrm{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}} + \beta \\[4pt]"
    r"\mu = \frac{1}{d}\sum_{j=1}^{d} x_j,\quad \sigma^2 = \frac{1}{d}\sum_{j=1}^{d}(x_j-\mu)^2"
    r"\end{gathered}"
)
st.info(
    _(
        "**Where GPT-2 puts layer norm:** *before* each sub-block, not after it. Every block "
        "computes {first}, then {second}, and after the last block one more, ln_f, comes before "
        "the output. The residual stream itself is never normalised, only the copy each "
        'sub-block reads ("pre-norm"). The article\'s flowchart draws attention → feed-forward '
        "→ layer norm → residual, i.e. layer norm *after* the sub-blocks (the original 2017 "
        'Transformer\'s "post-norm"); GPT-2 moved it in front because deep post-norm stacks '
        "train badly."
    ).format(first="x ← x + attn(ln_1(x))", second="x ← x + mlp(ln_2(x))")
)

options = ["ln1", "ln2"] + (["ln_final"] if layer == last else [])
names = {
    "ln1": _("ln_1 of layer {layer} (before attention)").format(layer=layer),
    "ln2": _("ln_2 of layer {layer} (before the feed-forward block)").format(layer=layer),
    "ln_final": _("ln_f (after the last block, before the output)"),
}
if st.session_state.get("layer_norm_which") not in options:
    st.session_state["layer_norm_which"] = "ln1"  # ln_f was chosen on the last layer
which = st.radio(
    _("Which layer norm"),
    options,
    format_func=names.__getitem__,
    horizontal=True,
    key="layer_norm_which",
)
if layer != last:
    st.caption(
        _("ln_f appears here when the layer chosen {where} is the last one ({last}).").format(
            where=in_pickers(), last=last
        )
    )
ln_layer = None if which == "ln_final" else layer
gamma, beta = layer_norm_params(view.loaded, which, ln_layer)
stats = ln_stats(trace, which, ln_layer)
x_in = ln_input(trace, which, ln_layer)
normalized_site = "ln_final.hook_normalized" if which == "ln_final" else f"{which}.hook_normalized"
normalized = trace[normalized_site] if which == "ln_final" else trace.get(normalized_site, ln_layer)
label = fig_ln.ln_label(which, ln_layer)


def _leaves_with(after: np.ndarray, who: str | None = None) -> str:
    """The sentence on the tokens' standard deviation after normalising, from the numbers
    `after` [T]: 1 for a wide model, a hair under 1 where σ² is near ε, 0 with one feature.
    `who`: the sentence's subject (default "Every token"), translated."""
    who = _("Every token") if who is None else who
    lo, hi = float(after.min()), float(after.max())
    if cfg.d_model == 1:
        return _(
            "{who} leaves as 0 (standard deviation 0): with a single feature, subtracting the "
            "token's own mean leaves nothing, so only β sets the output."
        ).format(who=who)
    if prose_number(lo, "{:.4f}") == prose_number(hi, "{:.4f}"):
        spread = prose_number(hi, "{:.4f}")
    else:
        spread = _("between {lo} and {hi}").format(
            lo=prose_number(lo, "{:.4f}"), hi=prose_number(hi, "{:.4f}")
        )
    near_eps = (
        _(" (under 1 where σ² is not much larger than ε = {eps})").format(
            eps=f"{cfg.layer_norm_eps:g}"
        )
        if lo < 0.9995
        else ""
    )
    return _("{who} leaves with mean 0 and standard deviation {spread}{near_eps}.").format(
        who=who, spread=spread, near_eps=near_eps
    )


st.subheader(_("What enters {label}: each token's mean and standard deviation").format(label=label))
tok_start = axis_window(trace.n_tokens, _("Tokens"), key="layer_norm_tokens")
chart(
    fig_ln.token_stats_figure(
        stats,
        trace.token_strs,
        _("The residual entering {label}").format(label=label),
        start=tok_start,
    ),
    key="layer_norm_stats",
)
after_std = normalized.astype(np.float64).std(-1)


def _numbers() -> None:
    """The statistics of every token as a table (mean, std, the divisor, std after)."""
    numbers = {
        _("mean μ"): stats.mean,
        _("std σ"): stats.std,
        _("divides by √(σ² + ε)"): stats.scale,
        _("std after normalising"): after_std,
    }
    st.dataframe(
        formatted(
            pd.DataFrame({_("token"): list(trace.token_strs), **numbers}),
            dict.fromkeys(numbers, "{:.4f}"),
        ),
        key="layer_norm_table",
    )


lazy_section(_("The numbers, token by token"), "layer_norm_sec_numbers", _numbers)
st.caption(_leaves_with(after_std))

token = markdown_literal(trace.token_strs[pos])
st.subheader(_("One token step by step: “{token}” (position {pos})").format(token=token, pos=pos))
# the three steps take the page's width (in a 3:2 column at 1024 px their panel titles, which
# carry the statistics, were cut); gamma and beta beside their description
chart(
    fig_ln.feature_steps_figure(
        x_in[pos],
        normalized[pos],
        ln_affine(normalized[pos], gamma, beta),
        _("Its {d} features in {label}").format(d=cfg.d_model, label=label),
    ),
    key="layer_norm_steps",
)
left, right = st.columns([3, 2])
with left:
    chart(
        fig_ln.gamma_beta_figure(gamma, beta, _("Learned gamma and beta")),
        key="layer_norm_gamma_beta",
        where=left,
    )
with right:
    st.markdown(
        _(
            "The gain and bias of {label}: gamma ranges from {g_lo} to {g_hi} and beta from "
            "{b_lo} to {b_hi}. They are the same for every token: after normalising, the model "
            "re-scales each feature to the size the next sub-block wants."
        ).format(
            label=label,
            g_lo=prose_number(gamma.min(), "{:.3f}"),
            g_hi=prose_number(gamma.max(), "{:.3f}"),
            b_lo=prose_number(beta.min(), "{:.3f}"),
            b_hi=prose_number(beta.max(), "{:.3f}"),
        )
    )


def _growth() -> None:
    """Every layer norm's input scale across the layers (the residual stream grows), the
    selected one marked."""
    all_stats = get_all_ln_stats(view)
    highlight = "ln_f" if which == "ln_final" else f"{layer}·{'ln_1' if which == 'ln1' else 'ln_2'}"
    chart(
        fig_ln.scale_growth_figure(all_stats, pos, trace.token_strs[pos], highlight=highlight),
        key="layer_norm_growth",
    )
    st.caption(
        _(
            "Every block adds its outputs to the residual stream, so its numbers tend to grow from "
            "layer to layer (and some tokens, often the first one, grow far more than others). "
            "Layer norm hands each sub-block a vector of the same scale, whatever the depth."
        )
    )


lazy_section(_("Why normalise: the residual stream grows"), "layer_norm_sec_growth", _growth)


def _article_vs_gpt() -> None:
    """The article's whole-tensor normalisation beside GPT-2's per-token one, on this text,
    and the future leak it causes."""
    left, right = st.columns(2)
    with left:
        st.markdown(_("**The article**: one mean and one variance for the whole tensor"))
        st.code(
            "mean = torch.mean(input_vector)      # over all tokens and features\n"
            "variance = torch.var(input_vector)\n"
            "output = (input_vector - mean) / torch.sqrt(variance + 1e-8)",
            language="python",
            wrap_lines=True,
        )
        st.caption(_("Its formula also calls σ the variance; it is the standard deviation."))
    with right:
        st.markdown(_("**GPT-2**: a mean and a variance per token, over its features"))
        st.code(
            "mean = x.mean(dim=-1, keepdim=True)                   # [T, 1]\n"
            "var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)    # [T, 1]\n"
            "out = (x - mean) / torch.sqrt(var + eps) * gamma + beta",
            language="python",
            wrap_lines=True,
        )
    article_normalized = article_normalize(x_in)
    chart(
        fig_ln.article_vs_gpt_figure(
            gpt_normalize(x_in, cfg.layer_norm_eps),
            article_normalized,
            trace.token_strs,
            start=tok_start,
        ),
        key="layer_norm_article",
    )
    article_std = article_normalized.std(-1)
    st.markdown(
        _(
            "On your text, after the article's whole-tensor version the tokens' standard "
            "deviations still range from **{lo}** to **{hi}**: a loud token stays loud."
        ).format(lo=prose_number(article_std.min()), hi=prose_number(article_std.max()))
        + " "
        + _leaves_with(after_std, _("After GPT-2's per-token version every token"))
    )
    article_change, gpt_change = future_leak(x_in, cfg.layer_norm_eps)
    if trace.n_tokens > 1:
        st.markdown(
            _(
                "Worse, the whole-tensor statistics mix all positions, so a later token changes "
                "the earlier tokens' outputs: the model could see the future. On your text, adding "
                "the last token changes the earlier tokens' normalised values by up to "
                "**{article}** under the article's version, and by **{gpt}** under GPT-2's."
            ).format(
                article=prose_number(article_change, "{:.4f}"),
                gpt=prose_number(gpt_change, "{:.4f}"),
            )
        )


lazy_section(
    _("The article's layer norm beside GPT-2's, on this text"),
    "layer_norm_sec_article",
    _article_vs_gpt,
)

next_stage(view)
