"""Stage 2: every token id becomes a vector (token embedding) plus a vector for its position."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from engine.figures import embeddings as fig_emb
from engine.lens import embeddings as lens_emb
from ui.cache import get_embedding_pca, get_pca_labels
from ui.frame import frame
from ui.i18n import N_, _
from ui.lecture import lecture_mode
from ui.models import embedding_table
from ui.widgets import axis_window, chart, formatted, lazy_section, next_stage, shared_picker

# engine.lens.embeddings.SOURCES, marked for the catalogue and shown through `_`.
SOURCE_NAMES = {
    "token + position": N_("token + position"),
    "token": N_("token"),
    "position": N_("position"),
}

view = frame("embeddings")
if view is None:
    st.stop()

trace, cfg = view.trace, view.trace.config
token_emb = trace["hook_embed"]
pos_emb = trace["hook_pos_embed"]
summed = lens_emb.embedding_vectors(trace, "token + position")

st.title(_("2 · Embeddings"))
st.markdown(
    _(
        "Each token id picks one row of the **token embedding** table W_E ({rows} rows × {d} "
        "numbers), and each position picks one row of the **position embedding** table W_P "
        "({n_ctx} rows). Their sum is the vector that enters the first block; from here on, the "
        "model only ever works on such vectors."
    ).format(rows=f"{cfg.vocab_size:,}", d=cfg.d_model, n_ctx=cfg.n_ctx)
)
st.latex(r"x_i^{(0)} = W_E[t_i] + W_P[i], \qquad x_i^{(0)} \in \mathbb{R}^{d_{model}}")

st.subheader(_("Token, position and their sum, for your text"))
st.caption(
    _(
        "Rows are the tokens of your text, columns the embedding dimensions; red is positive, "
        "blue negative, white zero. Hover a cell for its value."
    )
)
dim_start = axis_window(cfg.d_model, _("Embedding dimensions"), key="embeddings_dims")
tok_start = axis_window(trace.n_tokens, _("Tokens"), key="embeddings_tokens")
zmax = float(max(np.abs(token_emb).max(), np.abs(pos_emb).max(), np.abs(summed).max(), 1e-6))
tabs = st.tabs(
    [
        _("Token embedding {w}").format(w="W_E[t]"),
        _("Position embedding {w}").format(w="W_P[i]"),
        _("Sum: what enters block 0"),
    ],
    key="embeddings_which",
    on_change="rerun",  # lazy: only the open tab's heatmap is built and sent
)
for tab, (chart_id, name, vectors) in zip(
    tabs,
    (
        ("Token embedding W_E[t]", _("Token embedding {w}").format(w="W_E[t]"), token_emb),
        ("Position embedding W_P[i]", _("Position embedding {w}").format(w="W_P[i]"), pos_emb),
        ("token + position = input of block 0", _("token + position = input of block 0"), summed),
    ),
    strict=True,
):
    if not tab.open:
        continue
    with tab:
        chart(
            fig_emb.embedding_heatmap(
                vectors,
                trace.token_strs,
                name,
                dim_start=dim_start,
                token_start=tok_start,
                zmax=zmax,
            ),
            key=f"embeddings_heatmap_{chart_id}",
        )

st.subheader(_("A map of the vectors (PCA)"))
source = st.radio(
    _("Vectors"),
    lens_emb.SOURCES,
    format_func=lambda s: _(SOURCE_NAMES[s]),
    horizontal=True,
    key="embeddings_source",
    index=0,
)
source_name = _(SOURCE_NAMES[source])
coords, explained = get_embedding_pca(view, source)
# the plot area the labels are placed in: the lecture figure's (the stage's main figure), else
# the page's at 1024 px with the sidebar open (the narrowest)
area_px, font_px = (
    (fig_emb.PCA_AREA_PX, fig_emb.PCA_FONT_PX)
    if lecture_mode()
    else (fig_emb.PCA_PAGE_PX, fig_emb.PCA_PAGE_FONT_PX)
)
# the map takes the page's width, its explanation under it: room for twice the labels
chart(
    fig_emb.pca_figure(
        coords,
        explained,
        trace.token_strs,
        _("{source}: the two directions of largest spread").format(source=source_name),
        selected=view.pos,
        area_px=area_px,
        font_px=font_px,
        labels=get_pca_labels(view, source, area_px, font_px),
    ),
    key="embeddings_pca_chart",
)
n_dirs = int(np.isfinite(explained).sum())
held = (
    _("Together they hold **{share}%** of the spread.").format(
        share=f"{100 * np.nansum(explained):.0f}"
    )
    if n_dirs == 2
    else _(
        "Here all the spread lies along one direction (PC1, {share}%): there is no second "
        "one to measure."
    ).format(share=f"{100 * explained[0]:.0f}")
    if n_dirs == 1
    else _(
        "Here the vectors do not differ at all (one token, or identical vectors): there is "
        "no spread to map."
    )
)
st.markdown(
    _(
        "The vectors have {d} dimensions; this map keeps the two directions along which "
        "your text's vectors differ most (principal component analysis). {held} Tokens that "
        "land close together have similar vectors. Position vectors change smoothly with "
        "position in a trained model, so 'position' often draws a curve; in the untrained "
        "model they are random."
    ).format(d=cfg.d_model, held=held)
)


def _cosine_similarity() -> None:
    """Cosine similarity of every pair of the chosen vectors (the PCA's source)."""
    # the vectors only while this section is open (the map reads its cached PCA)
    sims = lens_emb.cosine_matrix(lens_emb.embedding_vectors(trace, source))
    st.latex(r"\cos(x_i, x_j) = \frac{x_i \cdot x_j}{\lVert x_i \rVert \, \lVert x_j \rVert}")
    chart(
        fig_emb.cosine_heatmap(
            sims,
            trace.token_strs,
            _("Cosine similarity: {source}").format(source=source_name),
            tok_start,
        ),
        key="embeddings_cosine_chart",
    )


lazy_section(
    _("How similar are the positions' vectors? (cosine similarity)"),
    "embeddings_sec_cosine",
    _cosine_similarity,
)


def _nearest_tokens() -> None:
    """The rows of W_E nearest to the selected token's (cosine), with their own token picker."""
    tokenizer = view.loaded.tokenizer
    ids = [int(i) for i in trace.token_ids]
    # the template translated once, not once per token (a thousand at T=1,024)
    token_option = _("{i}: {token} (id {id})")
    pos = shared_picker(
        "pos",
        _("Token"),
        list(range(trace.n_tokens)),
        key="embeddings_pos",
        format_func=lambda i: token_option.format(i=i, token=trace.token_strs[i], id=ids[i]),
    )
    table = embedding_table(view.loaded)
    n_valid = trace.n_valid_ids  # rows past it are a padded vocabulary's padding
    nb_ids, nb_sims = lens_emb.nearest_neighbours(
        table, ids[pos], k=12, n_valid=n_valid, gaps=trace.gap_ids
    )
    nb_labels = [tokenizer.display(int(i)) for i in nb_ids]
    left, right = st.columns([3, 2])
    with left:
        chart(
            fig_emb.neighbours_figure(nb_ids, nb_sims, nb_labels, trace.token_strs[pos]),
            key="embeddings_neighbours_chart",
            where=left,
        )
    with right:
        cosine = _("cosine")
        st.dataframe(  # three decimals, as the bars beside it
            formatted(
                pd.DataFrame({"id": nb_ids, _("token"): nb_labels, cosine: nb_sims}),
                {cosine: "{:.3f}"},
            ),
            hide_index=True,
            width="stretch",
        )
        st.caption(
            _(
                "Searched over all rows of W_E. In a trained model, neighbours share meaning or "
                "form (the same word with and without a leading space, with a capital letter); in "
                "the untrained model they are random."
            )
        )


lazy_section(_("Nearest tokens in the vocabulary"), "embeddings_sec_neighbours", _nearest_tokens)


def _article_vs_gpt() -> None:
    """The article's word vectors alone beside GPT's token + position vectors (cosine maps)."""
    left, right = st.columns(2)
    article_sims = lens_emb.cosine_matrix(token_emb)
    with left:
        st.markdown(
            _(
                "**The article**: only a word vector, {formula}, no position. The same token gets "
                "the same vector wherever it stands, so 'dog bites man' and 'man bites dog' hold "
                "the same vectors and attention, which compares vectors, cannot tell the orders "
                "apart."
            ).format(formula="`e_i = W_e w_i`")
        )
        chart(
            fig_emb.cosine_heatmap(
                article_sims, trace.token_strs, _("Article: token vectors only"), tok_start
            ),
            key="embeddings_article_chart",
            where=left,
        )
    with right:
        st.markdown(
            _(
                "**A real GPT** adds a learned position vector. A repeated token now gets a "
                "different vector at each place, so the model knows where each token stands."
            )
        )
        chart(
            fig_emb.cosine_heatmap(
                lens_emb.cosine_matrix(summed),
                trace.token_strs,
                _("GPT: token + position"),
                tok_start,
            ),
            key="embeddings_gpt_chart",
            where=right,
        )


lazy_section(_("The article's version beside GPT's"), "embeddings_sec_article", _article_vs_gpt)

next_stage(view)
