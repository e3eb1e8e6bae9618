"""Stage 6: the residual stream, the running sum every sub-block reads from and writes to."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.figures import residual as fig_res
from engine.figures.common import prose_number
from ui.cache import get_layer_summary
from ui.frame import frame
from ui.i18n import _
from ui.text import markdown_literal
from ui.widgets import axis_window, chart, formatted, lazy_section, next_stage

view = frame("residual")
if view is None:
    st.stop()

trace, cfg, layer, pos = view.trace, view.trace.config, view.layer, view.pos
token = markdown_literal(trace.token_strs[pos])

st.title(_("6 · Residual stream"))
st.markdown(
    _(
        "Each token carries one vector through the whole model: the **residual stream**. No "
        "block replaces it. Attention and the feed-forward block each read a normalised copy and "
        "**add** their output to it, so at the end the vector is the sum of the embeddings and "
        "of everything every block wrote. That sum is what the output layer reads."
    )
)
st.latex(  # two rows: a display formula does not wrap (about 500 px at 1024 px)
    r"\begin{gathered}x \leftarrow x + f(x) \\[4pt] "
    r"\text{for } f = \mathrm{attn}\circ\mathrm{ln}_1,\; "
    r"\mathrm{mlp}\circ\mathrm{ln}_2 \text{ in every layer}\end{gathered}"
)
st.latex(
    r"x^{\mathrm{final}}_i = \underbrace{W_E[t_i] + W_P[i]}_{\text{embeddings}}"
    r" + \sum_{\ell=0}^{L-1}\left(\mathrm{attn}_\ell + \mathrm{mlp}_\ell\right)_i"
)

st.subheader(_("How big the stream is, token by token and layer by layer"))
tok_start = axis_window(trace.n_tokens, _("Tokens"), key="residual_tokens")
log_colour = st.toggle(
    _("Logarithmic colour (sizes that differ a hundredfold stay visible)"),
    value=True,
    key="residual_log",
)
chart(
    fig_res.norms_heatmap(
        get_layer_summary(view).residual_norms, trace.token_strs, start=tok_start, log=log_colour
    ),
    key="residual_norms",
)
st.caption(
    _(
        "Each cell is the length ‖x‖ of one token's residual vector after the embeddings (top "
        "row) and after each block. Hover for the value."
    )
)

st.subheader(_("What each part wrote into “{token}” (position {pos})").format(token=token, pos=pos))
contrib = get_layer_summary(view).contributions(pos)
chart(
    fig_res.contributions_figure(contrib, pos, trace.token_strs[pos]),
    key="residual_contributions",
)
st.caption(
    _(
        "Coloured bars: the size of each part (sky blue: embeddings, blue: attention, orange: "
        "feed-forward). Dark bars: how much of that part points the way the final vector points."
    )
)
size_col, along_col, share_col = _("size"), _("along the final"), _("share")
left, right = st.columns([3, 2])
with left:
    st.dataframe(
        formatted(
            pd.DataFrame(
                {
                    _("part"): [fig_res.part_name(n) for n in contrib.names],
                    size_col: contrib.sizes,
                    along_col: contrib.along_final,
                    share_col: contrib.along_final / contrib.final_norm,
                }
            ),
            {size_col: "{:.3f}", along_col: "{:+.3f}", share_col: "{:+.1%}"},
        ),
        hide_index=True,
        key="residual_contrib_table",
    )
with right:
    st.markdown(
        _(
            "The parts add up, exactly, to the final vector (size **{size}**). Their components "
            "along the final direction add up to that size, so *share* says how much of the "
            "final vector each part built. A big part with a small share mostly wrote in a "
            "direction that later parts cancelled or that the output ignores."
        ).format(size=prose_number(contrib.final_norm, "{:.3f}"))
    )


def _step_name(label: str) -> str:
    """`ResidualStep.label` ("layer 3 attention", "layer 3 MLP") in the reader's language."""
    words = label.split()
    if words[-1] == "attention":
        return _("layer {i} attention").format(i=words[1])
    return _("layer {i} MLP").format(i=words[1])


def _x_plus_f() -> None:
    """Each sub-block's x + f(x) for the selected token: sizes before, added and after, and the
    cosine between x and f(x)."""
    steps = get_layer_summary(view).residual_steps(pos)
    numbers = {
        _("‖x‖ before"): [s.before_norm for s in steps],
        _("‖f(x)‖ added"): [s.branch_norm for s in steps],
        _("‖x + f(x)‖ after"): [s.after_norm for s in steps],
        "cosine(x, f(x))": [s.cosine for s in steps],
    }
    st.dataframe(
        formatted(
            pd.DataFrame({_("step"): [_step_name(s.label) for s in steps], **numbers}),
            dict.fromkeys(numbers, "{:.3f}"),
        ),
        hide_index=True,
        key="residual_steps",
    )
    attn_step, mlp_step = steps[2 * layer], steps[2 * layer + 1]
    st.markdown(
        _(
            "In **layer {layer}**, attention added a vector of size {branch} to a stream of size "
            "{before}; the result has size {after}, not {sum}, because the two point in different "
            "directions (cosine {cosine}: +1 would reinforce, 0 adds something new, −1 erases). "
            "Then the feed-forward block added {mlp_branch}, giving {mlp_after}. Because each "
            "block only adds, the gradient in training flows straight down the stream, which is "
            "what lets deep stacks learn."
        ).format(
            layer=layer,
            branch=prose_number(attn_step.branch_norm, "{:.3f}"),
            before=prose_number(attn_step.before_norm, "{:.3f}"),
            after=prose_number(attn_step.after_norm, "{:.3f}"),
            sum=prose_number(attn_step.before_norm + attn_step.branch_norm, "{:.3f}"),
            cosine=prose_number(attn_step.cosine, "{:+.2f}"),
            mlp_branch=prose_number(mlp_step.branch_norm, "{:.3f}"),
            mlp_after=prose_number(mlp_step.after_norm, "{:.3f}"),
        )
    )


lazy_section(
    _("{formula}, on this token's numbers").format(formula="x + f(x)"),
    "residual_sec_steps",
    _x_plus_f,
)


def _cosine_to_final() -> None:
    """How soon each token's residual points where it ends (cosine with the final residual), per
    layer."""
    cos = get_layer_summary(view).cosine_to_final
    chart(fig_res.cosine_figure(cos, pos, trace.token_strs[pos]), key="residual_cosine")
    chart(fig_res.cosine_heatmap(cos, trace.token_strs, start=tok_start), key="residual_cosine_map")
    st.caption(
        _(
            "Cosine similarity between each layer's residual and the final one (1 = same "
            "direction). Where it is already high, later layers only refine; the logit lens on "
            "page 8 shows what each layer's residual would predict."
        )
    )


lazy_section(_("How soon the stream points where it ends"), "residual_sec_cosine", _cosine_to_final)


def _article_residual() -> None:
    """The article's residual connection (the same addition, placed after the layer norm) beside
    GPT-2's."""
    st.markdown(
        _(
            "The article's {code} is the same addition. What differs is where it sits: its example "
            "adds a layer-normalised vector to a dropped-out copy of *itself* ({example}), after "
            "the layer norm. In GPT-2 the stream x itself is carried past each sub-block and the "
            "sub-block's output is added to it: {gpt}."
        ).format(
            code="`residual_connection(x, y) = x + y`",
            example="`residual_connection(normalized_output, dropout(normalized_output))`",
            gpt="`x = x + attn(ln_1(x))`",
        )
    )


lazy_section(_("The article's residual connection"), "residual_sec_article", _article_residual)

next_stage(view)
