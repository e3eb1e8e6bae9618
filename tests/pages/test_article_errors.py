"""The article's errors shown on their pages (issue 15): the figures' numbers equal the
article's formula or code applied to the Trace, beside GPT's own numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ui.cache
from engine.checkpoints import LoadedModel
from engine.lens import article
from engine.sampling import softmax
from tests.support import MIXED, chart, values, z_of

open_page, trace_of = MIXED.open, MIXED.trace


def test_article_attention_formula_and_head_split_on_the_users_text(
    tiny_loaded: LoadedModel,
) -> None:
    at = open_page(
        "pages/3_Attention.py",
        layer="1",
        head="1",
        pos="4",
        sections=("attention_sec_formula", "attention_sec_split"),
    )
    assert not at.exception, [e.value for e in at.exception]
    trace = trace_of(tiny_loaded)
    q, k = trace.get("attn.hook_q", 1), trace.get("attn.hook_k", 1)
    d_head = q.shape[-1]
    # alpha_ij = e_i^T Q / sqrt(d_k) as written: the query of token 4, the same for every j
    alpha = z_of(chart(at, "attention_article_alpha"))
    expected = np.tile(q[4, 1] / math.sqrt(d_head), (trace.n_tokens, 1))
    np.testing.assert_allclose(alpha, expected, rtol=1e-5, atol=1e-6)
    assert np.all(alpha == alpha[0])  # no key: j changes nothing
    gpt = chart(at, "attention_gpt_alpha")["data"][0]["x"]
    np.testing.assert_allclose(values(gpt), trace.get("attn.hook_pattern", 1)[1, 4, :5], atol=1e-6)
    # reshape without transpose: token 4's heads score each other
    split = z_of(chart(at, "attention_article_split"))
    np.testing.assert_allclose(
        split, softmax(q[4].astype(float) @ k[4].astype(float).T / math.sqrt(d_head)), atol=1e-6
    )
    assert split.shape == (trace.config.n_head, trace.config.n_head)
    np.testing.assert_allclose(
        z_of(chart(at, "attention_gpt_split")),
        trace.get("attn.hook_pattern", 1)[:, 4, :5],
        atol=1e-6,
    )


def test_numpy_example_fails_as_numpy_says_and_the_corrected_one_matches_the_model(
    tiny_loaded: LoadedModel,
) -> None:
    at = open_page("pages/3_Attention.py", layer="0", head="1", sections=("attention_sec_numpy",))
    outcome = dict(article.article_example_outcome())
    assert outcome["alpha_weights = np.softmax(alpha_scores)"].startswith("AttributeError")
    assert "not aligned" in outcome["alpha_outputs = np.dot(alpha_weights, embeddings)"]
    frames = [df.value for df in at.dataframe]
    assert any("what numpy does" in f.columns for f in frames)
    trace = trace_of(tiny_loaded)
    q, k, v = (trace.get(f"attn.hook_{n}", 0)[:, 1, :] for n in "qkv")
    weights, out = article.corrected_attention(q, k, v)
    np.testing.assert_allclose(weights, trace.get("attn.hook_pattern", 0)[1], atol=1e-5)
    np.testing.assert_allclose(out, trace.get("attn.hook_z", 0)[:, 1, :], atol=1e-5)
    namespace: dict = {}
    exec(article.CORRECTED_SOURCE, namespace)  # the code shown on the page runs as shown
    np.testing.assert_allclose(namespace["attention"](q, k, v), out, atol=1e-6)
    assert any("match" in c.value and "[" in c.value for c in at.caption)


def test_pretraining_loss_on_the_output_page_is_the_next_token_cross_entropy(
    tiny_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page("pages/8_Output.py", sections=("output_sec_pretraining",))
    assert not at.exception, [e.value for e in at.exception]
    trace = trace_of(tiny_loaded)
    table = next(df.value for df in at.dataframe if "−log p (nats)" in df.value.columns)
    logits = trace.logits[:-1, : trace.n_valid_ids].astype(float)
    ids = np.asarray(trace.token_ids)
    expected = -np.log(softmax(logits)[np.arange(len(ids) - 1), ids[1:]])
    np.testing.assert_allclose(table["−log p (nats)"].to_numpy(), expected, rtol=1e-6)
    text = " ".join(m.value for m in at.markdown)
    assert f"{expected.mean():.3f} nats per token" in text
    # cached per text: a rerun reads the loss without computing it again
    calls: list[object] = []
    for module in (ui.cache, article):  # through the cache, or directly
        monkeypatch.setattr(module, "next_token_loss", lambda trace: calls.append(trace))
    at.run()
    assert not at.exception and calls == []
    table = next(df.value for df in at.dataframe if "−log p (nats)" in df.value.columns)
    np.testing.assert_allclose(table["−log p (nats)"].to_numpy(), expected, rtol=1e-6)
