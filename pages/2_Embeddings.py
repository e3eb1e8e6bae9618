"""Stage 2: every token id becomes a vector (token embedding) plus a vector for its position."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from engine.figures import embeddings as fig_emb
from engine.lens import embeddings as lens_emb
from ui.frame import frame
from ui.models import embedding_table
from ui.widgets import axis_window, chart, next_stage, shared_picker

view = frame("embeddings")
if view is None:
    st.stop()

trace, cfg = view.trace, view.trace.config
token_emb = trace["hook_embed"]
pos_emb = trace["hook_pos_embed"]
summed = lens_emb.embedding_vectors(trace, "token + position")

st.title("2 · Embeddings")
st.markdown(
    f"Each token id picks one row of the **token embedding** table W_E ({cfg.vocab_size:,} rows "
    f"× {cfg.d_model} numbers), and each position picks one row of the **position embedding** "
    f"table W_P ({cfg.n_ctx} rows). Their sum is the vector that enters the first block; from "
    "here on, the model only ever works on such vectors."
)
st.latex(r"x_i^{(0)} = W_E[t_i] + W_P[i], \qquad x_i^{(0)} \in \mathbb{R}^{d_{model}}")

st.subheader("Token, position and their sum, for your text")
st.caption(
    "Rows are the tokens of your text, columns the embedding dimensions; red is positive, blue "
    "negative, white zero. Hover a cell for its value."
)
dim_start = axis_window(cfg.d_model, "Embedding dimensions", key="embeddings_dims")
tok_start = axis_window(trace.n_tokens, "Tokens", key="embeddings_tokens")
zmax = float(max(np.abs(token_emb).max(), np.abs(pos_emb).max(), np.abs(summed).max(), 1e-6))
tabs = st.tabs(["Token embedding W_E[t]", "Position embedding W_P[i]", "Sum: what enters block 0"])
for tab, (name, vectors) in zip(
    tabs,
    (
        ("Token embedding W_E[t]", token_emb),
        ("Position embedding W_P[i]", pos_emb),
        ("token + position = input of block 0", summed),
    ),
    strict=True,
):
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
            key=f"embeddings_heatmap_{name}",
        )

st.subheader("A map of the vectors (PCA)")
source = st.radio("Vectors", lens_emb.SOURCES, horizontal=True, key="embeddings_source", index=0)
vectors = lens_emb.embedding_vectors(trace, source)
coords, explained = lens_emb.pca_2d(vectors)
left, right = st.columns([3, 2])
with left:
    chart(
        fig_emb.pca_figure(
            coords,
            explained,
            trace.token_strs,
            f"{source}: the two directions of largest spread",
            selected=view.pos,
        ),
        key="embeddings_pca_chart",
    )
with right:
    n_dirs = int(np.isfinite(explained).sum())
    held = (
        f"Together they hold **{100 * np.nansum(explained):.0f}%** of the spread."
        if n_dirs == 2
        else f"Here all the spread lies along one direction (PC1, "
        f"{100 * explained[0]:.0f}%): there is no second one to measure."
        if n_dirs == 1
        else "Here the vectors do not differ at all (one token, or identical vectors): there "
        "is no spread to map."
    )
    st.markdown(
        f"The vectors have {cfg.d_model} dimensions; this map keeps the two directions along "
        f"which your text's vectors differ most (principal component analysis). {held} "
        "Tokens that land close together "
        "have similar vectors. Position vectors change smoothly with position in a trained "
        "model, so 'position' often draws a curve; in the untrained model they are random."
    )

st.subheader("How similar are the positions' vectors? (cosine similarity)")
sims = lens_emb.cosine_matrix(vectors)
st.latex(r"\cos(x_i, x_j) = \frac{x_i \cdot x_j}{\lVert x_i \rVert \, \lVert x_j \rVert}")
chart(
    fig_emb.cosine_heatmap(sims, trace.token_strs, f"Cosine similarity: {source}", tok_start),
    key="embeddings_cosine_chart",
)

st.subheader("Nearest tokens in the vocabulary")
tokenizer = view.loaded.tokenizer
ids = [int(i) for i in trace.token_ids]
pos = shared_picker(
    "pos",
    "Token",
    list(range(trace.n_tokens)),
    key="embeddings_pos",
    format_func=lambda i: f"{i}: {trace.token_strs[i]} (id {ids[i]})",
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
    )
with right:
    st.dataframe(
        pd.DataFrame({"id": nb_ids, "token": nb_labels, "cosine": nb_sims}),
        hide_index=True,
        width="stretch",
    )
    st.caption(
        "Searched over all rows of W_E. In a trained model, neighbours share meaning or form "
        "(the same word with and without a leading space, with a capital letter); in the "
        "untrained model they are random."
    )

st.subheader("The article's version beside GPT's")
left, right = st.columns(2)
article_sims = lens_emb.cosine_matrix(token_emb)
with left:
    st.markdown(
        "**The article**: only a word vector, `e_i = W_e w_i`, no position. The same token "
        "gets the same vector wherever it stands, so 'dog bites man' and 'man bites dog' hold "
        "the same vectors and attention, which compares vectors, cannot tell the orders apart."
    )
    chart(
        fig_emb.cosine_heatmap(
            article_sims, trace.token_strs, "Article: token vectors only", tok_start
        ),
        key="embeddings_article_chart",
    )
with right:
    st.markdown(
        "**A real GPT** adds a learned position vector. A repeated token now gets a different "
        "vector at each place, so the model knows where each token stands."
    )
    chart(
        fig_emb.cosine_heatmap(
            lens_emb.cosine_matrix(summed), trace.token_strs, "GPT: token + position", tok_start
        ),
        key="embeddings_gpt_chart",
    )

next_stage(view)
