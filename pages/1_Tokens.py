"""Stage 1: the text becomes tokens (byte-level BPE), then token ids."""

from __future__ import annotations

import streamlit as st

from engine.figures import tokens as fig_tokens
from engine.lens import tokens as lens_tok
from engine.tokenizer import display_token
from ui.cache import get_encode_steps, get_token_groups
from ui.frame import frame
from ui.i18n import _, ngettext
from ui.models import special_tokens_sentence, token_ranks
from ui.text import markdown_literal
from ui.widgets import chart, next_stage, shared_picker

BPE_FIGURE_MAX_BYTES = fig_tokens.BPE_FIGURE_MAX_BYTES


def _short(label: str, limit: int = 40) -> str:
    """A pre-token label for the picker (a pasted 10,000-character word stays one line)."""
    if len(label) <= limit:
        return label
    return _("{start}… ({n} characters)").format(start=label[:limit], n=f"{len(label):,}")


view = frame("tokens")
if view is None:
    st.stop()

trace, tokenizer = view.trace, view.loaded.tokenizer
ids = [int(i) for i in trace.token_ids]
token_bytes = [tokenizer.token_bytes(i) for i in ids]
groups = get_token_groups(view)

st.title(_("1 · Input & tokens"))
st.markdown(
    _(
        "A GPT never sees letters. It cuts the text into **tokens**, pieces that were frequent "
        "in its training text, and replaces each by its number (**id**) in a fixed vocabulary. "
        "The cutting is **byte-pair encoding (BPE)**: write the text as UTF-8 bytes, then merge "
        "the pair of neighbours that was merged earliest in training, again and again, until no "
        "known merge is left."
    )
)
st.latex(  # two rows: a display formula does not wrap (about 500 px at 1024 px)
    r"\begin{gathered}\text{text} \;\to\; \text{UTF-8 bytes} \;\xrightarrow{\text{BPE merges}}\; "
    r"(t_0, t_1, \dots, t_{T-1}) \\[4pt] t_i \in \{0, \dots, V-1\}\end{gathered}"
)

if tokenizer.name.startswith("cl100k_base"):
    n_ranks = tokenizer.vocab_size - 1  # the last id is <|endoftext|>
    st.info(
        _(
            "This model uses GPT-3.5's own tokenizer, **cl100k_base**, cut to its first "
            "**{n_ranks}** entries: the 256 single bytes and the first {n_merges} merges "
            "(the full tokenizer has 100,256), plus `<|endoftext|>` as id {eot}. "
            "A small model needs a small vocabulary; any text still encodes, in more pieces."
        ).format(n_ranks=f"{n_ranks:,}", n_merges=f"{n_ranks - 256:,}", eot=tokenizer.eot_id)
    )
else:
    st.info(
        _(
            "This model uses its own byte-level BPE ({n} tokens, `{name}`), read from the "
            "checkpoint's tokenizer files."
        ).format(n=f"{tokenizer.vocab_size:,}", name=markdown_literal(tokenizer.name))
        + " "
        + special_tokens_sentence(tokenizer.special_tokens)
    )

st.subheader(_("Your text as tokens"))
st.caption(
    _(
        "One chip per token: the token's text (␣ is a space, ↵ a new line, 注 1/3 the first of "
        "three tokens that together make the character 注, <E4> a byte that never becomes a "
        "character) and its id underneath. A dashed box holds tokens that only together make a "
        "character."
    )
)
# the template translated once, not once per token (a thousand at T=1,024)
token_option = _("{i}: {token} (id {id})")
shared_picker(
    "pos",
    _("Selected token (outlined in red below; the next pages use it too)"),
    list(range(trace.n_tokens)),
    key="tokens_pos",
    format_func=lambda i: token_option.format(i=i, token=trace.token_strs[i], id=ids[i]),
)
st.markdown(
    fig_tokens.token_chips_html(trace.token_strs, ids, groups, selected=view.pos),
    unsafe_allow_html=True,
)

c1, c2, c3, c4 = st.columns(4)
c1.metric(_("Characters"), len(trace.prompt))
c2.metric(_("Tokens"), trace.n_tokens + trace.n_tokens_dropped)
c3.metric(
    _("Characters per token"),
    f"{lens_tok.characters_per_token(trace.prompt, trace.n_tokens + trace.n_tokens_dropped):.2f}",
)
c4.metric(_("UTF-8 bytes"), len(trace.prompt.encode("utf-8", errors="surrogatepass")))

st.subheader(_("Every token"))
st.dataframe(
    fig_tokens.token_table(ids, trace.token_strs, token_bytes, groups),
    hide_index=True,
    width="stretch",
    height=min(600, 38 + 35 * trace.n_tokens),
)

split = fig_tokens.split_characters(groups)
st.subheader(_("Characters that need several tokens"))
if split.empty:
    st.markdown(
        _(
            "None in this text: every character sits inside one token. Try the Chinese preset, "
            "or an emoji such as 🦜."
        )
    )
else:
    st.markdown(
        ngettext(
            "{n} character group is cut into byte tokens: the vocabulary holds no token for it, "
            "so the model reads its UTF-8 bytes (a Chinese character is 3 bytes, most emoji 4) "
            "and must learn which byte sequences belong together.",
            "{n} character groups are cut into byte tokens: the vocabulary holds no token for "
            "them, so the model reads their UTF-8 bytes (a Chinese character is 3 bytes, most "
            "emoji 4) and must learn which byte sequences belong together.",
            len(split),
        ).format(n=len(split))
    )
    st.dataframe(split, hide_index=True, width="stretch")

chart(
    fig_tokens.bytes_per_token_figure(trace.token_strs, token_bytes),
    key="tokens_bytes_chart",
)

st.subheader(_("Byte-pair encoding, step by step"))
steps = get_encode_steps(view)
words = list(steps.pre_tokens)
if words:
    st.markdown(
        _(
            "First a regular expression splits the text into **pre-tokens** (roughly: words "
            "with their leading space, numbers, punctuation). BPE then works inside each one. "
            "Choose one:"
        )
    )
    drawable = [k for k in range(len(words)) if len(words[k].bytes_) <= BPE_FIGURE_MAX_BYTES]
    default = max(drawable or range(len(words)), key=lambda k: (len(words[k].merges), -k))
    if st.session_state.get("tokens_word") not in range(len(words)):
        st.session_state["tokens_word"] = default
    # "{n} tokens" translated once per count, not once per pre-token (hundreds in a long text)
    counts = {
        n: ngettext("{n} token", "{n} tokens", n).format(n=n) for n in {len(w.ids) for w in words}
    }
    choice = st.selectbox(
        _("Pre-token"),
        list(range(len(words))),
        key="tokens_word",
        format_func=lambda k: "{k}: {word}  ({count})".format(
            k=k,
            word=_short(display_token(words[k].text.encode("utf-8"))),
            count=counts[len(words[k].ids)],
        ),
    )
    word = words[choice]
    rank_of = token_ranks(
        view.loaded, (part for parts in (word.bytes_, *word.merges) for part in parts)
    )
    if not word.merges_listed or len(word.bytes_) > BPE_FIGURE_MAX_BYTES:
        st.info(
            _(
                "This pre-token is {n_bytes} bytes long, too long to draw merge by merge (the "
                "figure shows words of up to {max_bytes} bytes); it becomes {n_ids} token(s). "
                "Choose a shorter word."
            ).format(
                n_bytes=f"{len(word.bytes_):,}",
                max_bytes=BPE_FIGURE_MAX_BYTES,
                n_ids=f"{len(word.ids):,}",
            )
        )
    else:
        chart(fig_tokens.bpe_steps_figure(word, rank_of), key="tokens_bpe_chart")
    st.caption(
        _(
            "{n_bytes} byte(s), {n_merges} merge(s), result: ids {ids}. Each merge joins the "
            "neighbouring pair whose joined bytes have the lowest id (the merge learned "
            "earliest)."
        ).format(
            n_bytes=len(word.bytes_),
            n_merges=len(word.merges),
            ids=", ".join(str(i) for i in word.ids),
        )
    )

st.subheader(_("The article's version beside GPT's"))
left, right = st.columns(2)
article_words = lens_tok.article_words(trace.prompt)
with left:
    st.markdown(
        _(
            "**The article**: one vector per *word* from a Word2Vec or GloVe table. Split on "
            "spaces, this text has **{n}** words; any word missing from the table (a name, a "
            "typo, a new word) has no vector at all, and Chinese, written without spaces, would "
            "be a single 'word'."
        ).format(n=len(article_words))
    )
with right:
    st.markdown(
        _(
            "**A real GPT**: byte-level BPE. This text is **{n}** tokens; every possible text "
            "encodes (in the worst case byte by byte), so there is never an unknown word, and "
            "the embedding table is learned together with the model."
        ).format(n=trace.n_tokens + trace.n_tokens_dropped)
    )

next_stage(view)
