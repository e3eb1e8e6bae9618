"""Stage 3: multi-head self-attention in the selected layer: each token gathers information from
the tokens before it, in several heads at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from engine.figures import article as fig_article
from engine.figures import attention as fig_att
from engine.figures.common import plotly_text
from engine.lens import article as lens_article
from engine.lens import attention as lens_att
from ui.cache import get_head_scores
from ui.frame import frame
from ui.i18n import _
from ui.lecture import in_sidebar
from ui.text import markdown_literal
from ui.widgets import (
    axis_window,
    chart,
    formatted,
    lazy_section,
    next_stage,
    shared_picker,
    table,
)

view = frame("attention")
if view is None:
    st.stop()

trace, cfg = view.trace, view.trace.config
layer, head = view.layer, view.head
scores = get_head_scores(view)
labels = [scores.label(layer, h) for h in range(cfg.n_head)]  # None: not measurable


def _head_name(h: int) -> str:
    """ "head h: role", or "head h" alone when nothing can be measured (a one-token text)."""
    if labels[h]:
        return _("head {h}: {role}").format(h=h, role=_(labels[h]))
    return _("head {h}").format(h=h)


st.title(_("3 · Multi-head self-attention · layer {layer}").format(layer=layer))
st.markdown(
    _(
        "Every token asks a question (its **query** q), offers a description of itself (its "
        "**key** k) and a message (its **value** v); all three are learned projections of its "
        "vector after layer norm. Query i scores every key j ≤ i, softmax turns the scores into "
        "weights that sum to 1, and the token receives the weighted sum of the values. This "
        "layer has **{n_head} heads** doing this side by side with {d_head} numbers each; their "
        "outputs are concatenated and projected back by W_O."
    ).format(n_head=cfg.n_head, d_head=cfg.d_head)
)
# one statement a row: a display formula does not wrap, and at 1024 px with the sidebar open
# the page body is about 500 px (one KaTeX block: one typesetting pass)
st.latex(
    r"\begin{gathered}"
    r"\mathrm{head}_h = \mathrm{softmax}\!\left(\frac{Q_h K_h^{\top}}{\sqrt{d_{head}}} + M\right)"
    r"V_h \\[4pt] M_{ij} = \begin{cases} 0 & j \le i \\ -\infty & j > i \end{cases} \\[4pt]"
    r"Q_h = \mathrm{LN}_1(x)\,W_Q^h,\quad K_h = \mathrm{LN}_1(x)\,W_K^h \\[4pt]"
    r"V_h = \mathrm{LN}_1(x)\,W_V^h,\quad"
    r"\mathrm{out} = [\mathrm{head}_1; \dots; \mathrm{head}_H]\, W_O"
    r"\end{gathered}"
)

st.subheader(_("All {n_head} heads of layer {layer}").format(n_head=cfg.n_head, layer=layer))
st.caption(
    _(
        "Each small map: queries down, keys across, darker = more weight. The label says what "
        "the head mostly does on this text (previous-token, induction, first-token sink, self, "
        "broad); the table at the bottom has the numbers. ▶ marks the selected head."
    )
)
chart(
    fig_att.head_grid(
        trace.get("attn.hook_pattern", layer),
        labels,
        trace.token_strs,
        head,
        view.pos,
        _("Layer {layer}: every head").format(layer=layer),
    ),
    key="attention_grid_chart",
)
window = fig_att.grid_window(trace.n_tokens, view.pos)
if window.stop - window.start < trace.n_tokens:
    st.caption(
        _("The small maps show tokens {first}–{last}.").format(
            first=window.start, last=window.stop - 1
        )
    )

head = shared_picker(
    "head",
    _("Head to look at closely"),
    list(range(cfg.n_head)),
    key="attention_head",
    format_func=_head_name,
)
start = axis_window(trace.n_tokens, _("Tokens"), key="attention_tokens")
# the map takes the page's width: beside the table, in a 3:2 column, its plot area was about
# 75 px wide at 1024 px with the sidebar open (a projector's size), its key labels piled up
chart(
    fig_att.pattern_heatmap(
        trace.get("attn.hook_pattern", layer)[head],
        lens_att.raw_scores(trace, layer, head),
        trace.token_strs,
        _("Layer {layer}, {head}: attention weights").format(layer=layer, head=_head_name(head)),
        start=start,
    ),
    key="attention_head_chart",
)
left, right = st.columns(2)
with left:
    row = trace.get("attn.hook_pattern", layer)[head, view.pos]
    top = np.argsort(-row, kind="stable")[:5]
    st.markdown(
        _(
            "**Read a row** to see where one token looks. The selected token "
            "**{pos}: “{token}”** puts most weight on:"
        ).format(pos=view.pos, token=markdown_literal(trace.token_strs[view.pos]))
    )
    weight = _("weight")
    st.dataframe(  # three decimals, as the map's hover
        formatted(
            pd.DataFrame(
                {
                    _("key"): [f"{int(j)}: {trace.token_strs[int(j)]}" for j in top],
                    weight: [float(row[j]) for j in top],
                }
            ),
            {weight: "{:.3f}"},
        ),
        hide_index=True,
        width="stretch",
    )
with right:
    st.markdown(
        _(
            "The upper-right triangle is empty: a token never looks at tokens after it (the "
            "causal mask). Many heads pour weight onto the first token when they have nothing "
            "better to do (an *attention sink*)."
        )
    )


def _query_steps() -> None:
    """One query's scores, weights and output, step by step (its own query picker)."""
    pos = shared_picker(
        "pos",
        _("Query token"),
        list(range(trace.n_tokens)),
        key="attention_pos",
        format_func=lambda i: f"{i}: {trace.token_strs[i]}",
    )
    chart(
        fig_att.query_steps_figure(
            lens_att.query_steps(trace, layer, head, pos),
            trace.token_strs,
            pos,
            _("Query {pos}: “{token}”, layer {layer}, head {head}").format(
                pos=pos, token=plotly_text(trace.token_strs[pos]), layer=layer, head=head
            ),
        ),
        key="attention_steps_chart",
    )
    z = trace.get("attn.hook_z", layer)[pos, head]
    st.caption(
        _(
            "The head's output for this token is {formula}, a vector of {d_head} numbers (length "
            "{length}); grey bars in ① are future keys, which the mask removes before the softmax."
        ).format(
            formula="z = Σ_j weight_j · v_j",
            d_head=cfg.d_head,
            length=f"{float(np.linalg.norm(z)):.3f}",
        )
    )


lazy_section(_("One query, step by step"), "attention_sec_steps", _query_steps)


def _article_vs_gpt() -> None:
    """The same head without the causal mask (the article's attention) beside GPT's."""
    st.markdown(
        _(
            "The article's attention has **no causal mask**: every token also attends to the "
            "tokens after it. Left, the same head recomputed from the same q and k without the "
            "mask; right, what GPT computes. Trained to predict the next token, a model that could "
            "look ahead would simply copy it: the mask is what makes the task a prediction."
        )
    )
    unmasked = lens_att.unmasked_pattern(trace, layer, head)
    article, gpt = fig_att.article_vs_gpt(
        unmasked,
        lens_att.raw_scores(trace, layer, head),
        trace.get("attn.hook_pattern", layer)[head],
        trace.get("attn.hook_attn_scores", layer)[head],
        trace.token_strs,
        start=start,
    )
    left, right = st.columns(2)
    chart(article, key="attention_article_chart", where=left)
    chart(gpt, key="attention_gpt_chart", where=right)
    peek = lens_att.future_weight(unmasked)
    future = (
        _(
            "Without the mask, the tokens of your text would put on average **{share}%** of this "
            "head's weight on the future."
        ).format(share=f"{100 * float(peek[:-1].mean()):.0f}")
        if trace.n_tokens > 1
        else _("With one token there is no future to look at, so the two maps are the same here.")
    )
    article_note = _(
        "The article also takes q, k and v as slices of the embedding itself; GPT learns separate "
        "projections W_Q, W_K, W_V and adds the output projection W_O."
    )
    st.caption(f"{future} {article_note}")


lazy_section(_("The article's version beside GPT's"), "attention_sec_mask", _article_vs_gpt)


def _article_formula() -> None:
    """The article's α_ij = e_iᵀQ / √d_k computed as written, beside GPT's weights."""
    st.markdown(
        _(
            "The article writes α_ij = e_iᵀQ / √d_k: the query of token i alone, with **no key** "
            "and **no softmax**. So its “weight” does not depend on j at all, and it is not even "
            "one number but a vector of {d_head} numbers, so Σ_j α_ij e_j is undefined. GPT "
            "scores query i against every key j and turns the scores into weights that sum to 1."
        ).format(d_head=cfg.d_head)
    )
    st.latex(r"\text{article: } \alpha_{ij} = \frac{e_i^{\top} Q}{\sqrt{d_k}}")
    st.latex(
        r"\text{GPT: } \alpha_{ij} = \mathrm{softmax}_j\!\left("
        r"\frac{q_i \cdot k_j}{\sqrt{d_{head}}}\right),\ j \le i"
    )
    chart(
        fig_article.alpha_figure(
            lens_article.article_alpha(trace, layer, head, view.pos), trace.token_strs, view.pos
        ),
        key="attention_article_alpha",
    )
    chart(
        fig_article.gpt_row_figure(
            trace.get("attn.hook_pattern", layer)[head, view.pos], trace.token_strs, view.pos
        ),
        key="attention_gpt_alpha",
    )
    st.caption(
        _(
            "First map: e_iᵀQ is token {pos}'s query q (layer {layer}, head {head}) divided by "
            "√{d_head}; every row is the same. The bars: what the model computed for the same "
            "query."
        ).format(pos=view.pos, layer=layer, head=head, d_head=cfg.d_head)
    )


lazy_section(
    _("The article's attention formula, computed as written"),
    "attention_sec_formula",
    _article_formula,
)


def _head_split() -> None:
    """The article's reshape (heads attend to heads) beside GPT's split (tokens to tokens)."""
    st.markdown(
        _(
            "The article splits with `reshape(query, [-1, num_heads, head_size])`, giving [tokens, "
            "heads, head_size], and multiplies `query @ key.transpose(1, 2)` straight away. The "
            "matrix product then runs over the **heads of one token**: each token's {n_head} heads "
            "attend to each other and never to another token. GPT transposes to [heads, tokens, "
            "head_size] first, so each head attends over the tokens."
        ).format(n_head=cfg.n_head)
    )
    st.code(
        "q = q.reshape(T, n_heads, d_head)            # both: [T, H, d_head]\n"
        "article = softmax(q @ k.transpose(1, 2))     # [T, H, H]: heads x heads, per token\n"
        "q = q.transpose(0, 1)                         # GPT: [H, T, d_head]\n"
        "gpt = softmax(mask(q @ k.transpose(1, 2)))    # [H, T, T]: tokens x tokens, per head",
        language="python",
    )
    split_left, split_right = fig_article.head_split_figures(
        lens_article.article_head_split(trace, layer, view.pos),
        trace.get("attn.hook_pattern", layer)[:, view.pos, : view.pos + 1],
        trace.token_strs,
        view.pos,
    )
    chart(split_left, key="attention_article_split")
    chart(split_right, key="attention_gpt_split")


lazy_section(_("Splitting into heads: the article's reshape"), "attention_sec_split", _head_split)


def _numpy_example() -> None:
    """The article's numpy example run line by line, and a corrected version on this head."""
    st.markdown(
        _(
            "The article's example claims a 1×5 embedding gives a 3×2 output. Run with numpy, it "
            "stops at its second line, and even with a softmax written out the shapes do not fit:"
        )
    )
    st.dataframe(
        {
            _("line of the article"): [
                line for line, _outcome in lens_article.article_example_outcome()
            ],
            _("what numpy does"): [
                outcome for _line, outcome in lens_article.article_example_outcome()
            ],
        },
        hide_index=True,
        width="stretch",
    )
    st.markdown(
        _("A corrected version, with its shapes, run here on head {head} of layer {layer}:").format(
            head=head, layer=layer
        )
    )
    st.code(lens_article.CORRECTED_SOURCE, language="python")
    q_h, k_h, v_h = (trace.get(f"attn.hook_{n}", layer)[:, head, :] for n in ("q", "k", "v"))
    _weights, out_np = lens_article.corrected_attention(q_h, k_h, v_h)
    gap = float(np.abs(out_np - trace.get("attn.hook_z", layer)[:, head, :]).max())
    st.caption(
        _(
            "On your text: q, k, v are [{T}, {d_head}], the weights [{T}, {T}], the output "
            "[{T}, {d_head}]; it matches the model's own head output (attn.hook_z) to within "
            "{gap:.1e}."
        ).format(T=trace.n_tokens, d_head=cfg.d_head, gap=gap)
    )


lazy_section(_("The article's numpy example, run"), "attention_sec_numpy", _numpy_example)

st.subheader(_("Every head in every layer"))
table(
    fig_att.head_scores_table(scores),
    key="attention_head_table",
    short_headers=fig_att.head_table_short_headers(),
)
if trace.n_tokens < 2:
    st.caption(
        _(
            "With one token there is no query that could look back, so no head score is "
            "measurable here (–) and no head gets a role. Type a longer text {where}."
        ).format(where=in_sidebar())
    )
st.caption(
    _(
        "previous-token: mean weight on the token just before; induction: mean weight from a "
        "repeated token to the token that followed its earlier occurrence (Olsson et al. 2022; "
        "– when nothing repeats); first-token sink: mean weight on position 0; self: weight on "
        "itself; entropy: how spread out the rows are. All are averaged over tokens 1 onwards "
        "(token 0 can only look at itself). Labels use the strongest clear pattern."
    )
)

next_stage(view)
