"""Numbers derived from a Trace (and, where needed, the model's weights): one module per stage.

Pure numpy / torch functions; nothing here draws, runs the model's blocks again, imports
Streamlit or imports `engine.figures` (figures import lens, never the reverse). Import from the
stage module; this package re-exports nothing.

    tokens.py        1 · characters per token, which character group each token belongs to
    embeddings.py    2 · token / position vectors, 2-D PCA, cosine similarity, nearest tokens
    attention.py     3 · one head's raw scores, causal mask, unmasked pattern, one query's steps
    heads.py         3 · per-head scores (previous-token, induction, sink, self, entropy), labels
    feed_forward.py  4 · GELU, the strongest hidden units, the size of each MLP's output
    layer_norm.py    5 · statistics entering each LayerNorm, GPT-2's and the article's normalisation
    residual.py      6 · the residual stack and its norms, what each part wrote, x + f(x) steps
    logit_lens.py    8 · the logit lens (top-k per layer and position), one full lens
                         distribution, the model's own next-token distribution

The one numpy softmax they use is `engine.sampling.softmax`.
"""
