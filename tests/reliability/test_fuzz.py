"""Fuzzing with hypothesis (deterministic: derandomize, no example database): generated texts,
mixed with the fragments that break apps (special tokens, control characters, HTML, Markdown,
emoji sequences, CJK, lone surrogates), go through the app's text cleaning, the tokenizer,
`run_with_trace` and every figure builder of every page. No exception, the tokenizer's round
trip is exact, token labels are printable, and every number a figure sends is finite (None only
where a cell is masked). 540 examples in the default run: 500 through the text cleaning, the
tokenizer and the Trace; 40 more through those and every figure builder as well."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterator

import numpy as np
import plotly.graph_objects as go
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel
from engine.dropout_demo import causal_cells, dropout_pass, mask_average
from engine.figures import attention as fig_att
from engine.figures import dropout as fig_drop
from engine.figures import embeddings as fig_emb
from engine.figures import feed_forward as fig_ff
from engine.figures import layer_norm as fig_ln
from engine.figures import output as fig_out
from engine.figures import residual as fig_res
from engine.figures import tokens as fig_tok
from engine.lens import attention as lens_att
from engine.lens import embeddings as lens_emb
from engine.lens import feed_forward as lens_ff
from engine.lens import layer_norm as lens_ln
from engine.lens import residual as lens_res
from engine.lens.heads import head_scores
from engine.lens.layer_norm import all_ln_stats, ln_input, ln_stats
from engine.lens.logit_lens import lens_distribution, logit_lens
from engine.sampling import SamplingSettings, next_token_distribution, sample_next
from engine.trace import Trace
from ui.settings import MAX_TEXT_CHARS
from ui.text import clean_text

FRAGMENTS = (
    "<|endoftext|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|endofprompt|>",
    "\x00",
    "\x1b[31m",
    "\r\n",
    "\t",
    "\u202e",
    "\u200d",
    "e\u0301",
    "👨\u200d👩\u200d👧",
    "🏳️\u200d🌈",
    "我们",
    "こんにちは",
    "مرحبا",
    "नमस्ते",
    "<script>",
    "<img src=x onerror=alert(1)>",
    "**",
    "$x$",
    "<E4>",
    "\ufffd",
    "\ud800",
    "\udc00",
    " " * 300,
    "a" * 300,
)
TEXTS = st.lists(
    st.one_of(st.text(max_size=12), st.sampled_from(FRAGMENTS)), min_size=1, max_size=8
).map("".join)

FUZZ = dict(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Building every page's ~35 plotly figures takes about 0.4 s per text on 2 cores (plotly's
# validation), so the figure builders get fewer examples than the tokenizer and the Trace.
FIGURE_EXAMPLES = 40
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def numbers_in(obj: object) -> Iterator[float | None]:
    """Every number a plotly spec carries (arrays included), None for a missing value."""
    if obj is None:
        yield None
    elif isinstance(obj, bool | str):
        return
    elif isinstance(obj, int | float | np.integer | np.floating):
        yield float(obj)
    elif isinstance(obj, np.ndarray):
        if obj.dtype == object:
            for v in obj.ravel():
                yield from numbers_in(v)
        elif np.issubdtype(obj.dtype, np.number):
            yield from (float(v) for v in obj.ravel())
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from numbers_in(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            yield from numbers_in(value)


def check_figure(fig: go.Figure, where: str) -> None:
    """Numeric data of every trace is finite; None (a gap) only in z of heatmaps and y of bars,
    where a masked cell or score is drawn as missing, and in a legend key (a trace whose x and y
    are all None: it draws no point, only its legend entry, such as the PCA map's "hollow: no
    room for its label")."""
    assert isinstance(fig, go.Figure), where
    fig.to_json()  # serialisable, as st.plotly_chart will need
    for trace in fig.data:
        xy = [list(numbers_in(trace[n])) for n in ("x", "y") if trace[n] is not None]
        if trace.type == "scatter" and len(xy) == 2 and all(a and set(a) == {None} for a in xy):
            assert trace.showlegend is not False and trace.name, (where, trace.type)
            continue  # a legend key
        for name in ("x", "y", "z", "customdata", "base"):
            value = trace[name] if name in trace else None
            if value is None:  # not set on this trace
                continue
            for v in numbers_in(value):
                if v is None:
                    assert name in ("z", "y", "customdata"), (where, trace.type, name)
                else:
                    assert math.isfinite(v), (where, trace.type, name, v)


def check_trace(trace: Trace, ids: list[int]) -> None:
    T = trace.n_tokens
    assert list(trace.token_ids) == ids[:T]
    causal = causal_cells(T)
    for name, arr in trace.acts.items():
        if name.endswith("attn.hook_attn_scores"):
            assert np.isfinite(arr[:, causal]).all(), name
            assert np.isneginf(arr[:, ~causal]).all(), name
        else:
            assert np.isfinite(arr).all(), name
        if name.endswith("attn.hook_pattern"):
            np.testing.assert_allclose(arr.sum(-1), 1.0, atol=1e-5)
    for label in trace.token_strs:
        assert label and not any(unicodedata.category(ch) in _UNPRINTABLE for ch in label), label


@settings(max_examples=500, **FUZZ)
@given(raw=TEXTS)
def test_tokenizer_and_trace_on_generated_text(raw: str, tiny_loaded: LoadedModel) -> None:
    text, notes = clean_text(raw)
    text.encode("utf-8")  # cleaned: always valid UTF-8
    assert (text != raw) == bool(notes) or len(raw) > MAX_TEXT_CHARS
    tok = tiny_loaded.tokenizer
    ids = tok.encode(text)
    assert tok.decode(ids) == text  # exact round trip
    assert b"".join(tok.token_bytes(i) for i in ids) == text.encode("utf-8")
    steps = tok.encode_with_steps(text, max_pre_tokens=10_000)
    assert list(steps.ids) == ids
    if not ids:
        assert text == ""
        return
    trace = run_with_trace(tiny_loaded.model, tok, ids)
    check_trace(trace, ids)
    groups = tok.group_characters([int(i) for i in trace.token_ids])
    assert "".join(g.text for g in groups) == tok.decode([int(i) for i in trace.token_ids])


def every_figure(trace: Trace, loaded: LoadedModel) -> Iterator[tuple[str, object]]:
    """Every figure builder, called as the pages call it, at the last token and layer."""
    model, tok = loaded.model, loaded.tokenizer
    cfg, T = trace.config, trace.n_tokens
    layer, head, pos = cfg.n_layer - 1, cfg.n_head - 1, T - 1
    ids = [int(i) for i in trace.token_ids]
    label = trace.token_strs[pos]
    token_bytes = [tok.token_bytes(i) for i in ids]
    groups = tok.group_characters(ids)
    # 1 · tokens
    yield "chips", fig_tok.token_chips_html(trace.token_strs, ids, groups, selected=pos)
    yield "token table", fig_tok.token_table(ids, trace.token_strs, token_bytes, groups)
    yield "split", fig_tok.split_characters(groups)
    yield "bytes per token", fig_tok.bytes_per_token_figure(trace.token_strs, token_bytes)
    for word in tok.encode_with_steps(trace.prompt, max_pre_tokens=3).pre_tokens:
        if word.merges_listed and len(word.bytes_) <= fig_tok.BPE_FIGURE_MAX_BYTES:
            yield "bpe steps", fig_tok.bpe_steps_figure(word, {})
    # 2 · embeddings
    source = lens_emb.SOURCES[0]  # the sources differ in numbers only, not in labels
    vectors = lens_emb.embedding_vectors(trace, source)
    yield "embedding map", fig_emb.embedding_heatmap(vectors, trace.token_strs, source)
    coords, explained = lens_emb.pca_2d(vectors)
    yield "pca", fig_emb.pca_figure(coords, explained, trace.token_strs, source, pos)
    sims = lens_emb.cosine_matrix(vectors)
    yield "cosine", fig_emb.cosine_heatmap(sims, trace.token_strs, source)
    table = model.transformer.wte.weight.detach().numpy()
    nb_ids, nb_sims = lens_emb.nearest_neighbours(table, ids[pos], k=12, n_valid=tok.vocab_size)
    labels = [tok.display(int(i)) for i in nb_ids]
    yield "neighbours", fig_emb.neighbours_figure(nb_ids, nb_sims, labels, label)
    # 3 · attention
    scores = head_scores(trace)
    head_labels = [scores.label(layer, h) for h in range(cfg.n_head)]
    pattern = trace.get("attn.hook_pattern", layer)
    yield "head grid", fig_att.head_grid(pattern, head_labels, trace.token_strs, head, pos, "t")
    raw_scores = trace.get("attn.hook_attn_scores", layer)[head]
    before_mask = lens_att.raw_scores(trace, layer, head)
    yield "pattern", fig_att.pattern_heatmap(pattern[head], before_mask, trace.token_strs, "t")
    steps = lens_att.query_steps(trace, layer, head, pos)
    yield "query steps", fig_att.query_steps_figure(steps, trace.token_strs, pos, "t")
    yield "head table", fig_att.head_scores_table(scores)
    article = fig_att.article_vs_gpt(
        lens_att.unmasked_pattern(trace, layer, head),
        lens_att.raw_scores(trace, layer, head),
        pattern[head],
        raw_scores,
        trace.token_strs,
    )
    yield from (("article vs gpt", f) for f in article)
    # 4 · feed-forward
    pre, post = trace.get("mlp.hook_pre", layer), trace.get("mlp.hook_post", layer)
    for rank in lens_ff.RANKINGS:
        units = lens_ff.top_neurons(post, 8, rank)
        yield "neurons", fig_ff.neurons_heatmap(post, units, trace.token_strs, layer, rank=rank)
    yield "hidden histogram", fig_ff.hidden_histogram(pre[pos], post[pos], label, layer, pos)
    yield "activations", fig_ff.activation_functions(pre, pos)
    mlp_norms = lens_ff.mlp_out_norms(trace)
    yield "mlp norms", fig_ff.mlp_norms_heatmap(mlp_norms, trace.token_strs)
    yield "ff article", fig_ff.article_vs_gpt(pre[pos], layer, pos)
    # 5 · layer norm
    ln = model.transformer.h[layer].ln_1
    gamma, beta = ln.weight.detach().numpy(), ln.bias.detach().numpy()
    stats = ln_stats(trace, "ln1", layer)
    x_in = ln_input(trace, "ln1", layer)
    normalized = trace.get("ln1.hook_normalized", layer)
    yield "ln stats", fig_ln.token_stats_figure(stats, trace.token_strs, "t")
    out = lens_ln.ln_affine(normalized[pos], gamma, beta)
    yield "ln steps", fig_ln.feature_steps_figure(x_in[pos], normalized[pos], out, "t")
    yield "gamma beta", fig_ln.gamma_beta_figure(gamma, beta, "t")
    yield "ln growth", fig_ln.scale_growth_figure(all_ln_stats(trace), pos, label)
    gpt_ln = lens_ln.gpt_normalize(x_in, cfg.layer_norm_eps)
    article_ln = lens_ln.article_normalize(x_in)
    yield "ln article", fig_ln.article_vs_gpt_figure(gpt_ln, article_ln, trace.token_strs)
    # 6 · residual
    norms = lens_res.residual_norms(trace)
    yield "residual norms", fig_res.norms_heatmap(norms, trace.token_strs, log=True)
    contrib = lens_res.contributions(trace, pos)
    yield "contributions", fig_res.contributions_figure(contrib, pos, label)
    cos = lens_res.cosine_to_final(trace)
    yield "cosine to final", fig_res.cosine_figure(cos, pos, label)
    yield "cosine map", fig_res.cosine_heatmap(cos, trace.token_strs)
    # 7 · dropout
    dropped_trace = dropout_pass(model, tok, ids, 0.3, 1)
    eval_pattern = pattern[head]
    pass_pattern = dropped_trace.get("attn.hook_pattern", layer)[head]
    dropped = dropped_trace.get("attn.hook_pattern_dropped", layer)[head]
    yield (
        "dropout panels",
        fig_drop.patterns_figure(trace.token_strs, eval_pattern, pass_pattern, dropped, 0.3),
    )
    yield (
        "dropout row",
        fig_drop.query_row_figure(
            trace.token_strs, pos, eval_pattern[pos], pass_pattern[pos], dropped[pos], 0.3
        ),
    )
    avg = mask_average(eval_pattern, 0.3, 20, 1, where=causal_cells(T))
    yield "convergence", fig_drop.convergence_figure(avg)
    yield "average row", fig_drop.average_row_figure(trace.token_strs, pos, eval_pattern[pos], avg)
    # 8 · output
    allowed = min(tok.vocab_size, cfg.vocab_size)
    model_probs = next_token_distribution(trace.logits[pos], SamplingSettings(), allowed=allowed)
    shaped = next_token_distribution(
        trace.logits[pos], SamplingSettings(temperature=0.7, top_k=5, top_p=0.9), allowed=allowed
    )
    yield "top tokens", fig_out.top_tokens_figure(model_probs, shaped, tok.display)
    lens = logit_lens(trace, model)
    yield "lens", fig_out.lens_heatmap(lens, trace.token_strs, tok.display)
    if T > 1:
        yield "next token", fig_out.next_token_figure(lens, 0, trace.token_strs[1])
    target = int(np.argmax(model_probs))
    probs = np.array([lens_distribution(trace, model, r, pos)[target] for r in range(cfg.n_layer)])
    layer_labels = list(lens.layer_labels)[: len(probs)]
    yield "target", fig_out.target_figure(probs, layer_labels, tok.display(target))
    # 9 · generate
    step = sample_next(model, tok, ids, SamplingSettings(top_k=5), 7)
    yield "sample", fig_out.sample_figure(step, tok.display)


@settings(max_examples=FIGURE_EXAMPLES, **FUZZ)
@given(raw=TEXTS)
def test_every_figure_builder_on_generated_text(raw: str, tiny_loaded: LoadedModel) -> None:
    text = clean_text(raw)[0]
    ids = tiny_loaded.tokenizer.encode(text)
    if not ids:
        return
    trace = run_with_trace(tiny_loaded.model, tiny_loaded.tokenizer, ids[:12])
    trace = Trace(
        prompt=text,
        token_ids=trace.token_ids,
        token_strs=trace.token_strs,
        config=trace.config,
        acts=trace.acts,
    )
    for name, out in every_figure(trace, tiny_loaded):
        if isinstance(out, go.Figure):
            check_figure(out, name)
        elif isinstance(out, str):  # the one HTML builder: user text only escaped
            assert "<script" not in out and "<img" not in out, name
        else:  # tables
            assert len(out) >= 0, name
