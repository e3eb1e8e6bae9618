"""Stage 8: next-token probabilities (from the stored logits) and the logit lens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from engine.figures import output as fig_out
from engine.lens.logit_lens import lens_token_probs
from engine.sampling import (
    MAX_TEMPERATURE,
    SamplingSettings,
    next_token_distribution,
    top_candidates,
)
from ui.cache import get_logit_lens, get_next_token_loss
from ui.frame import frame
from ui.i18n import _
from ui.lecture import in_pickers
from ui.models import encode_text
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

view = frame("output")
if view is None:
    st.stop()

trace, cfg, pos = view.trace, view.trace.config, view.pos
tokenizer, model = view.loaded.tokenizer, view.loaded.model
display = tokenizer.display
token = markdown_literal(trace.token_strs[pos])
allowed = trace.n_valid_ids  # ids past it are a padded vocabulary's padding rows

st.title(_("8 · Output probabilities & logit lens"))
if cfg.tie_word_embeddings:
    st.markdown(
        _(
            "After the last block, each token's residual vector goes through one more layer norm "
            "(ln_f) and is multiplied by the token-embedding table again (GPT-2 ties the two), "
            "giving one score, a **logit**, for each of the {n} tokens of the vocabulary. Softmax "
            "turns the scores into probabilities for the **next** token. Every position predicts "
            "the token after it, all at once."
        ).format(n=f"{cfg.vocab_size:,}")
    )
    st.latex(r"\text{logits}_i = \mathrm{ln_f}(x_i)\, W_E^{\top}")  # two lines: fits at 1024 px
else:
    st.markdown(
        _(
            "After the last block, each token's residual vector goes through one more layer norm "
            "(ln_f) and is multiplied by the **unembedding** W_U (lm_head), giving one score, a "
            "**logit**, for each of the {n} tokens of the vocabulary. This model keeps W_U "
            "separate from its token-embedding table W_E (GPT-2 ties the two: W_U = W_Eᵀ). "
            "Softmax turns the scores into probabilities for the **next** token. Every position "
            "predicts the token after it, all at once."
        ).format(n=f"{cfg.vocab_size:,}")
    )
    st.latex(r"\text{logits}_i = \mathrm{ln_f}(x_i)\, W_U")
st.latex(
    r"p(t \mid \text{tokens} \le i) = \frac{e^{\text{logit}_{i,t}/\tau}}"
    r"{\sum_{t'} e^{\text{logit}_{i,t'}/\tau}}"
)

st.subheader(_("What comes after “{token}” (position {pos})?").format(token=token, pos=pos))
c1, c2, c3, c4 = st.columns(4)
temperature = bounded_input(
    "slider",
    _("Temperature τ"),
    0.1,
    float(MAX_TEMPERATURE),
    1.0,
    step=0.05,
    key="output_temperature",
    where=c1,
    help=_("Divides the logits: below 1 sharpens the distribution, above 1 flattens it."),
)
top_k = int(
    bounded_input(
        "number",
        _("Top-k (0 = all)"),
        0,
        allowed,
        0,
        key="output_top_k",
        where=c2,
        help=_("Keep only the k most probable tokens and renormalise."),
    )
)
top_p = bounded_input(
    "slider",
    _("Top-p (nucleus)"),
    0.05,
    1.0,
    1.0,
    step=0.05,
    key="output_top_p",
    where=c3,
    help=_("Keep the most probable tokens until their probabilities add up to p."),
)
shown = int(c4.number_input(_("Tokens shown"), 5, 40, 15, step=5, key="output_shown"))
settings = SamplingSettings(temperature=float(temperature), top_k=top_k, top_p=float(top_p))
logits = trace.logits[pos]
model_probs = next_token_distribution(
    logits, SamplingSettings(), allowed=allowed, gaps=trace.gap_ids
)
shaped = next_token_distribution(logits, settings, allowed=allowed, gaps=trace.gap_ids)
chart(
    fig_out.top_tokens_figure(
        model_probs,
        shaped,
        display,
        k=shown,
        title=_("Next token after position {pos}").format(pos=pos),
    ),
    key="output_top_tokens",
)
ids = top_candidates(model_probs, shown)
model_p_col, shaped_col = _("model p"), _("p after τ / top-k / top-p")
table(  # compact, the last header short: in Chinese it scrolled sideways at 1024 px
    pd.DataFrame(
        {
            _("rank"): np.arange(1, len(ids) + 1),
            _("token"): [display(int(i)) for i in ids],
            "id": ids,
            "logit": logits[ids].astype(np.float64),
            model_p_col: model_probs[ids],
            shaped_col: shaped[ids],
        }
    ),
    key="output_table",
    short_headers={shaped_col: _("adjusted p")},
    formats={"logit": "{:.3f}", model_p_col: "{:.4f}", shaped_col: "{:.4f}"},
)
next_md = markdown_literal(trace.token_strs[pos + 1]) if pos + 1 < trace.n_tokens else ""
real_next = (
    _("The token that really comes next in your text is “{token}” (model p = {p}).").format(
        token=next_md, p=f"{model_probs[int(trace.token_ids[pos + 1])]:.4f}"
    )
    if pos + 1 < trace.n_tokens
    else _("This is the last token of your text: its prediction is what Generate (page 9) samples.")
)
drawable = _(
    "{n} tokens can still be drawn after temperature, top-k and top-p. These come from the "
    "logits stored when the model read your text: changing the settings does not run the "
    "model again."
).format(n=f"{int(np.count_nonzero(shaped)):,}")
st.caption(f"{drawable} {real_next}")


def _article_output_step() -> None:
    """The article's argmax over the hidden vector (a feature index) beside the greedy token."""
    hidden = trace["ln_final.hook_normalized"][pos]
    greedy_md = markdown_literal(display(int(top_candidates(model_probs, 1)[0])))
    st.markdown(
        _(
            "The article takes the argmax of the last hidden vector and calls it the "
            "translation. On your text that picks **feature {feature}** of the {d} hidden "
            "features: an index into the vector, not a word. A GPT first projects the vector "
            "onto the vocabulary (the logits above) and then chooses a token; even the greedy "
            "choice, argmax of the logits, is the token “{greedy}” here, and real text "
            "generation samples with temperature, top-k and top-p."
        ).format(feature=int(np.argmax(hidden)), d=cfg.d_model, greedy=greedy_md)
    )


lazy_section(
    _("The article's output step: {code}").format(code="`output.argmax(dim=-1)`"),
    "output_sec_article",
    _article_output_step,
)

st.subheader(_("The logit lens: what each layer would predict"))
st.markdown(
    _(
        "Stop the model after any layer, send that layer's residual through the final layer "
        "norm and the unembedding, and read the prediction. Each cell names the top next token "
        "for one position after one layer; the colour is its probability; hover for the top 5. "
        "The bottom row is the model's real output. **This lens applies ln_f, with each "
        "residual's own mean and variance, to every layer**, exactly as the output layer does; "
        "lenses that skip ln_f (Ecco's, for example) read vectors of the wrong scale and show "
        "distorted probabilities for the early layers."
    )
)
if not cfg.tie_word_embeddings:
    st.info(
        _(
            "This model has its own output matrix (lm_head), separate from its token embedding: "
            "the logits, the lens and every table on this page use that output matrix, not the "
            "embedding table of page 2."
        )
    )
if trace.n_tokens > fig_out.LENS_AXIS and "output_lens_window" not in st.session_state:
    # first visit: open the window on the selected position
    st.session_state["output_lens_window"] = fig_out.lens_window_start(trace.n_tokens, pos)
lens_start = axis_window(
    trace.n_tokens, _("Positions"), key="output_lens_window", size=fig_out.LENS_AXIS
)
# only the positions this page shows: the window and the selected position (8 or 9 of
# 1,024 at T=1,024), computed and cached in blocks of 16 positions (ui.cache.get_logit_lens)
lens = get_logit_lens(view, fig_out.lens_positions(trace.n_tokens, lens_start, pos))
col = lens.column(pos)
chart(
    fig_out.lens_heatmap(lens, trace.token_strs, display, start=lens_start),
    key="output_lens",
)

# side by side where both fit, else one under the other (at 1,024 px with the sidebar open,
# half the body squeezed the probability and rank panels into each other)
left, right, pair_px = pair()
with left:
    if pos + 1 < trace.n_tokens:
        chart(
            fig_out.next_token_figure(lens, pos, trace.token_strs[pos + 1]),
            key="output_next_token",
            where=left,
            width_px=pair_px,
        )
    else:
        st.info(
            _(
                "The selected position is the last token, so there is no real next token to "
                "follow through the layers."
            )
            + (
                " " + _("Choose an earlier position {where}.").format(where=in_pickers())
                if trace.n_tokens > 1
                else ""
            )
        )
with right:
    rows = cfg.n_layer + 1
    candidates: list[int] = []
    for r in range(rows - 1, -1, -1):
        for i in lens.top_ids[r, col, :5]:
            if int(i) not in candidates:
                candidates.append(int(i))
    if pos + 1 < trace.n_tokens and int(trace.token_ids[pos + 1]) not in candidates:
        candidates.insert(0, int(trace.token_ids[pos + 1]))
    target = st.selectbox(
        _("Follow a token through the layers"),
        candidates,
        format_func=lambda i: f"{display(i)}  (id {i})",
        key="output_target",
    )
    typed = st.text_input(
        _("…or type one (its first token is used)"), key="output_target_text", max_chars=50
    )
    if typed:
        typed_ids = encode_text(view.loaded, typed)
        if typed_ids and typed_ids[0] < cfg.vocab_size:
            target = typed_ids[0]
            if len(typed_ids) > 1:
                st.caption(
                    _("“{typed}” is {n} tokens; following the first, “{first}”.").format(
                        typed=markdown_literal(typed),
                        n=len(typed_ids),
                        first=markdown_literal(display(target)),
                    )
                )
    # the token's logit in every layer over each cell's stored log-sum-exp (no full
    # distribution needed)
    target_probs = lens_token_probs(trace, model, lens, pos, target)
    chart(
        fig_out.target_figure(target_probs, fig_out.layer_names(lens), display(target)),
        key="output_target_chart",
        where=right,
        width_px=pair_px,
    )

# numbers stay numbers (right-aligned, sorted by value), written by `formatted`: "–" where
# nothing is measurable (the last token has no real next token: NaN p, rank -1); compact, with
# short headers, to fit the page body at 1024 px with the sidebar open
lens_df, lens_formats = fig_out.lens_table(lens, col, display)
table(
    lens_df,
    key="output_lens_table",
    short_headers=fig_out.lens_table_short_headers(),
    formats=lens_formats,
)
if pos + 1 >= trace.n_tokens:
    st.caption(_("The last token has no real next token: its p and rank are not measurable (–)."))


def _pretraining() -> None:
    """The next-token loss on the user's text (what pre-training minimises), and what the
    article gets wrong about pre-training and fine-tuning."""
    st.markdown(
        _(
            "The article defines pre-training as “training the model on a specific task”. It is "
            "the opposite: a GPT is **pre-trained** on broad text with one objective, predicting "
            "every next token, which is exactly what this page shows: the loss is the average of "
            "−log p(the real next token). **Fine-tuning** then continues training the pre-trained "
            "weights on a smaller, task-specific set (instructions, dialogues, a domain), often "
            "with the same next-token loss on the task's answers."
        )
    )
    st.latex(
        r"\mathcal{L} = -\frac{1}{T-1}\sum_{i=1}^{T-1}"
        r"\log p\left(t_{i+1} \mid t_1, \dots, t_i\right)"
    )
    losses = get_next_token_loss(view)
    if losses.size:
        p_col, loss_col = _("p(real next token)"), _("−log p (nats)")
        # p as in the page's other tables, nats as the entropy and the mean below; compact, with
        # the two number columns' headers short: with full headers it was about 100 px wider than
        # its box at 1024 px with the sidebar open (Chinese) and scrolled sideways
        table(
            pd.DataFrame(
                {
                    _("after"): [f"{i}: {trace.token_strs[i]}" for i in range(len(losses))],
                    _("real next token"): [trace.token_strs[i + 1] for i in range(len(losses))],
                    p_col: [float(np.exp(-x)) for x in losses],
                    loss_col: [float(x) for x in losses],
                }
            ),
            key="output_pretraining_table",
            short_headers={p_col: _("p"), loss_col: _("−log p")},
            formats={p_col: "{:.4f}", loss_col: "{:.3f}"},
        )
        st.markdown(
            _(
                "The pre-training loss of this model on your text: **{loss:.3f} nats per token** "
                "(a model that guessed uniformly among its {n:,} tokens would score "
                "{uniform:.3f}). Training lowers this number over billions of tokens; fine-tuning "
                "lowers it on the task's own examples."
            ).format(
                loss=float(losses.mean()),
                n=trace.n_valid_ids - len(trace.gap_ids),
                uniform=float(np.log(trace.n_valid_ids - len(trace.gap_ids))),
            )
        )
    else:
        st.caption(_("With one token there is no next token to score: type a longer text."))


lazy_section(
    _("Pre-training and fine-tuning: what the article gets wrong"),
    "output_sec_pretraining",
    _pretraining,
)

next_stage(view)
