"""Stage 7: dropout. This page runs the model again, through the engine, with a seeded mask."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.dropout_demo import MAX_P
from engine.figures import dropout as fig_drop
from engine.lens.logit_lens import final_probs
from engine.sampling import top_candidates
from ui.cache import get_dropout_trace, get_layer_mask_stats, get_mask_average
from ui.frame import frame
from ui.i18n import _
from ui.text import markdown_literal
from ui.widgets import (
    axis_window,
    bounded_input,
    chart,
    lazy_section,
    next_stage,
    pair,
    table,
)

MAX_MASK_CELLS = 50_000_000  # masks x pattern cells drawn for the averaging figure


view = frame("dropout")
if view is None:
    st.stop()

trace, cfg, layer, head, pos = view.trace, view.trace.config, view.layer, view.head, view.pos
T = trace.n_tokens

st.title(_("7 · Dropout · layer {layer}").format(layer=layer))
trained_with = (
    _("this model was trained with p = {p}.").format(p=f"{cfg.dropout:g}")
    if cfg.dropout > 0
    else _(
        "this model was trained without it (p = 0; GPT-2 small used 0.1), so the masks below "
        "show what dropout would do to it in training."
    )
)
st.markdown(
    _(
        "Dropout is a training trick against memorising: on every training step, each number "
        "it touches is set to 0 with probability p, and the survivors are multiplied by "
        "1/(1 − p) so that on average nothing changes. When the model is used (evaluation), "
        "dropout does nothing at all. GPT-2 applies it to the embeddings, to the attention "
        "weights and to the output of every sub-block; {trained_with}"
    ).format(trained_with=trained_with)
)
training, evaluation = _("training:"), _("evaluation:")  # words in the formula: translated
st.latex(  # three rows: a display formula does not wrap (about 500 px at 1024 px)
    r"\begin{gathered}\text{" + training + r" } \hat{x} = \frac{m \odot x}{1 - p},\; "
    r"m_j \sim \mathrm{Bernoulli}(1-p)"
    r"\\[4pt] \Rightarrow\; \mathbb{E}[\hat{x}] = x \\[8pt] \text{" + evaluation + r" } \hat{x} = x"
    r"\end{gathered}"
)

left, right = st.columns(2)
p = bounded_input(
    "slider",
    _("Dropout probability p"),
    0.05,
    MAX_P,
    float(cfg.dropout),
    step=0.05,
    key="dropout_p",
    where=left,
)
seed = int(
    bounded_input(
        "number",
        _("Mask seed (the same seed gives the same mask)"),
        0,
        2**31 - 1,
        0,
        key="dropout_seed",
        where=right,
    )
)
dropped_trace = get_dropout_trace(view, float(p), seed, layer)

eval_pattern = trace.get("attn.hook_pattern", layer)[head]
pass_pattern = dropped_trace.get("attn.hook_pattern", layer)[head]
dropped = dropped_trace.get("attn.hook_pattern_dropped", layer)[head]

st.subheader(
    _("Layer {layer}, head {head}: attention weights with and without dropout").format(
        layer=layer, head=head
    )
)
st.markdown(
    _(
        "Left: evaluation mode, what the model uses when it reads your text (dropout is the "
        "identity). Middle and right: one training-mode pass of the real model with this seed. "
        "Dropout everywhere before this layer already changed its input, so even before the "
        "mask the weights differ a little; then the mask zeroes cells and the survivors are "
        "scaled up."
    )
)
if T > fig_drop.PANEL_AXIS and "dropout_tokens" not in st.session_state:
    # first visit: open the window on the selected position
    st.session_state["dropout_tokens"] = max(
        0, min(T - fig_drop.PANEL_AXIS, pos - fig_drop.PANEL_AXIS // 2)
    )
start = axis_window(T, _("Tokens"), key="dropout_tokens", size=fig_drop.PANEL_AXIS)
chart(
    fig_drop.patterns_figure(trace.token_strs, eval_pattern, pass_pattern, dropped, p, start),
    key="dropout_patterns",
)

token = markdown_literal(trace.token_strs[pos])
chart(
    fig_drop.query_row_figure(
        trace.token_strs, pos, eval_pattern[pos], pass_pattern[pos], dropped[pos], p
    ),
    key="dropout_row",
)
mask = get_layer_mask_stats(view, float(p), seed, layer)
eval_top = top_candidates(final_probs(trace, pos), 5)
pass_top = top_candidates(final_probs(dropped_trace, pos), 5)
display = view.loaded.tokenizer.display
left, right, _width = pair()  # side by side where both fit, else one under the other
with left:
    st.markdown(
        _("**This pass, layer {layer}, all {n_head} heads**").format(layer=layer, n_head=cfg.n_head)
    )
    table(
        pd.DataFrame(
            {
                "": [
                    _("attention weights that could be dropped"),
                    _("share dropped"),
                    _("dropout probability p"),
                    _("survivors multiplied by"),
                    "1 / (1 − p)",
                    _("row sums after dropout (min … max)"),
                ],
                _("value"): [
                    f"{mask.cells:,}",
                    f"{mask.share_dropped:.1%}",
                    f"{p:.1%}",  # one format a kind: percentages 1 decimal, ratios 4
                    f"{mask.survivor_ratio:.4f}"
                    if mask.survivor_ratio is not None
                    else _("none kept"),
                    f"{1 / (1 - p):.4f}",
                    f"{mask.row_sum_min:.4f} … {mask.row_sum_max:.4f}",
                ],
            }
        ),
        key="dropout_stats",
    )
    st.caption(
        _(
            "Each row of weights summed to 1 before the mask; after it, a row sums to 1 only on "
            "average, which is the point: the expected output stays the same."
        )
    )
with right:
    st.markdown(
        _("**What the model predicts after “{token}” (position {pos})**").format(
            token=token, pos=pos
        )
    )
    eval_probs, pass_probs = final_probs(trace, pos), final_probs(dropped_trace, pos)
    table(
        pd.DataFrame(
            {
                _("rank"): list(range(1, 6)),
                _("evaluation"): [f"{display(int(i))}  {eval_probs[i]:.4f}" for i in eval_top],
                _("with dropout p = {p}").format(p=f"{p:g}"): [
                    f"{display(int(i))}  {pass_probs[i]:.4f}" for i in pass_top
                ],
            }
        ),
        key="dropout_prediction",
    )
    st.caption(
        _(
            "A training step sees a different, noisier network every time; evaluation always "
            "uses the whole network, so the same text always gives the same prediction."
        )
    )


def _averaging_masks() -> None:
    """Many seeded masks averaged on this head's evaluation weights: inverted dropout converges
    to them, unscaled masks to (1 − p)·x."""
    max_n = int(max(10, min(1000, MAX_MASK_CELLS // max(1, T * T))))
    n_masks = int(
        bounded_input("slider", _("Masks to average"), 10, max_n, 200, step=10, key="dropout_n")
    )
    avg = get_mask_average(view, layer, head, float(p), n_masks, seed)
    left, right, width = pair(inset=True)  # their legends need more than 250 px
    chart(
        fig_drop.convergence_figure(avg),
        key="dropout_convergence",
        where=left,
        width_px=width,
    )
    chart(
        fig_drop.average_row_figure(trace.token_strs, pos, eval_pattern[pos], avg),
        key="dropout_average_row",
        where=right,
        width_px=width,
    )
    st.markdown(
        _(
            "Masks drawn with numpy from seed {seed} on this head's evaluation weights. After {n} "
            "masks the inverted-dropout average is on average **{err}** away from the evaluation "
            "weights (after one mask: {err_one}), and it keeps shrinking: the expectation *is* the "
            "evaluation output, so evaluation needs no correction. Without the rescaling, the "
            "average settles at (1 − p)·x and stays {err_plain} away from x."
        ).format(
            seed=seed,
            n=n_masks,
            err=f"{avg.err_inverted[-1]:.4f}",
            err_one=f"{avg.err_inverted[0]:.4f}",
            err_plain=f"{avg.err_plain[-1]:.4f}",
        )
    )


lazy_section(
    _("Why survivors are scaled by 1/(1 − p): averaging many masks"),
    "dropout_sec_average",
    _averaging_masks,
)


def _article_dropout() -> None:
    """The article's dropout code beside GPT-2's; its (1 − p)·x is the old test-time rule."""
    left, right = st.columns(2)
    with left:
        st.markdown(_("**The article**"))
        st.code(
            "mask = torch.rand(input_vector.shape) > dropout_rate\n"
            "return input_vector * mask       # no rescaling, also when the model is used",
            language="python",
            wrap_lines=True,
        )
        st.latex(r"\hat{x} = (1 - p)\,x")
    with right:
        st.markdown(_("**GPT-2** (this engine's `engine.model.dropout`)"))
        st.code(
            "if p == 0 (evaluation): return x\n"
            "keep = torch.rand(x.shape, generator=g) >= p\n"
            "return x * keep / (1 - p)",
            language="python",
            wrap_lines=True,
        )
    st.markdown(
        _(
            "The article's formula x̂ = (1 − p)·x is the **old, test-time** way: the first dropout "
            "papers trained with unscaled masks (whose average is (1 − p)·x, the dotted curve "
            "above) and then, when using the network, multiplied by (1 − p) to match. Modern code, "
            "GPT-2 included, uses *inverted* dropout instead: it scales by 1/(1 − p) during "
            "training, so using the model is plain identity. The article's code does neither: it "
            "drops values even when the model is used and never rescales, so its outputs are "
            "random and too small on average."
        )
    )


lazy_section(_("The article's dropout"), "dropout_sec_article", _article_dropout)

next_stage(view)
