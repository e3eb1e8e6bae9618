"""Edge inputs by kind (issue 13), every page in AppTest on the smallest legal models and the
shortest and longest texts:

1. statistics over an empty set: a one-token text measures no head (no role label, "–"), and
   no page shows None / nan / inf anywhere a user reads (tables, titles, captions, options);
2. controls sized from odd shapes: one layer, one head, width 1 and 2, n_inner 1-5, context
   1-4, a 257-token vocabulary, and the longest text the operator cap allows, raise nothing.

The models are random GPT-2 checkpoints written to a temporary models folder, as
tests/reliability/test_models.py does; hypothesis draws shape, text and page (derandomized,
few examples, so the suite stays fast)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from engine.checkpoints import LoadedModel, random_model, save_checkpoint
from engine.config import GPTConfig
from engine.figures.common import NOT_MEASURABLE
from engine.lens.heads import HEAD_LABELS
from tests import support
from ui.models import encode_text
from ui.stages import STAGES

pytestmark = pytest.mark.usefixtures("tiny_app")

PAGES = ("app.py", *(stage.path for stage in STAGES))
# (name, width, n_inner, context); one layer and one head each, vocabulary 257 (the 256 bytes
# and <|endoftext|>)
SHAPES = {
    "w1": (1, 0, 4),  # n_inner 4 (GPT-2's 4 x width): Feed-forward's slider had min = max = 4
    "w2i1c1": (2, 1, 1),  # context 1: every text is one token
    "w2i2c2": (2, 2, 2),
    "w1i3c3": (1, 3, 3),
    "w2i5c4": (2, 5, 4),
}
LONG = "long"  # width 2, context 2,300: a text past the ~2,236 tokens that broke Dropout
LONG_TOKENS = 2300
BAD = re.compile(r"\b(None|nan|NaN|inf|Infinity|<NA>)\b")
# in prose, "None" opening a sentence is English ("None in this text: ...")
BAD_PROSE = re.compile(r"(?<!^)(?<![.!?] )\bNone\b|\b(nan|NaN|inf|Infinity|<NA>)\b")


@pytest.fixture(scope="module")
def models_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("edge") / "models"
    for name, (width, inner, ctx) in SHAPES.items():
        cfg = GPTConfig(n_layer=1, n_head=1, d_model=width, d_mlp=inner, n_ctx=ctx, vocab_size=257)
        save_checkpoint(random_model(cfg, seed=5), folder / name, n_ranks=256)
    cfg = GPTConfig(n_layer=1, n_head=1, d_model=2, n_ctx=LONG_TOKENS, vocab_size=257)
    save_checkpoint(random_model(cfg, seed=6), folder / LONG, n_ranks=256)
    yield folder


@pytest.fixture
def edge_models(models_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(models_folder))
    return models_folder


def _open(page: str, text: str, model: str, sections: tuple[str, ...] = ()) -> AppTest:
    return support.open_page(page, text, timeout=180, sections=sections, model=model)


def _chart_texts(spec: dict) -> list[str]:
    layout = spec.get("layout", {})
    out = [a.get("text", "") for a in layout.get("annotations", [])]
    for value in layout.values():
        if isinstance(value, dict) and "title" in value:
            title = value["title"]
            out.append(title.get("text", "") if isinstance(title, dict) else str(title))
    title = layout.get("title")
    out.append(title.get("text", "") if isinstance(title, dict) else str(title or ""))
    return out


def shown_texts(at: AppTest) -> tuple[list[str], list[str]]:
    """Every piece of text a user reads on the page: prose (titles, markdown, captions,
    notices) and values (the options of every selectbox, every table cell, every chart's
    titles)."""
    prose: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning"):
        prose += [str(e.value) for e in at.get(kind)]
    prose += [str(e.value) for e in at.error]
    values: list[str] = []
    for box in at.selectbox:
        values += [str(o) for o in box.options]
    for frame in at.dataframe:
        table = frame.value
        if isinstance(table, pd.DataFrame):
            # what the browser shows: a Styler's text (`ui.widgets.formatted` writes "–" for a
            # value that is not finite, a number column such as the Output page's lens table
            # keeps NaN there), else Streamlit's own (an empty cell for NaN: not allowed)
            cells = support.shown_cells(frame).to_numpy().ravel()
            for value, text in zip(table.to_numpy().ravel(), cells, strict=True):
                if isinstance(value, float | np.floating) and not np.isfinite(value):
                    assert text == NOT_MEASURABLE, f"a table shows {value} as {text!r}"
                values.append(str(text))
    for chart in at.get("plotly_chart"):
        values += _chart_texts(json.loads(chart.proto.spec))
    return prose, values


def assert_nothing_unmeasured(at: AppTest, where: str) -> None:
    assert not at.exception, (where, [e.value for e in at.exception])
    prose, values = shown_texts(at)
    bad = [t for t in prose if BAD_PROSE.search(t)] + [t for t in values if BAD.search(t)]
    assert not bad, (where, bad[:5])


def assert_no_head_labelled(at: AppTest) -> None:
    texts = [str(o) for box in at.selectbox for o in box.options]
    for chart in at.get("plotly_chart"):
        texts += _chart_texts(json.loads(chart.proto.spec))
    labelled = [t for t in texts if any(f": {label}" in t for label in HEAD_LABELS)]
    assert not labelled, labelled
    table = support.table_with(at, "label")
    assert set(table["label"]) == {"–"}


# -- kind 1: statistics over nothing ----------------------------------------------------------


def test_a_one_token_text_labels_no_head_on_the_bundled_shape() -> None:
    """The tiny test model (2 layers, 2 heads): text "a" is one token; every head was
    "first-token sink" with sink 1.0, self 1.0, entropy 0.0."""
    at = support.open_page("pages/3_Attention.py", "a")
    assert_nothing_unmeasured(at, "attention, one token")
    assert_no_head_labelled(at)
    table = support.table_with(at, "label")
    for column in ("previous-token", "induction", "first-token sink", "self", "entropy (nats)"):
        assert set(table[column]) == {"–"}, column


@pytest.mark.parametrize("page", PAGES)
def test_every_page_on_a_one_token_text_shows_no_none_nan_or_inf(page: str) -> None:
    assert_nothing_unmeasured(support.open_page(page, "a"), page)


def test_a_one_token_text_maps_and_ranks_nothing() -> None:
    """PCA of one point has no spread (the axes said 0% of the variance) and selectivity over
    one token compares nothing (every unit scored 0): both say "not measurable"."""
    at = support.open_page("pages/2_Embeddings.py", "a")
    spec = support.chart(at, "embeddings_pca_chart")
    assert spec["layout"]["xaxis"]["title"]["text"] == "PC1 (not measurable here)"
    assert spec["layout"]["yaxis"]["title"]["text"] == "PC2 (not measurable here)"
    assert any("no spread to map" in m.value for m in at.markdown)
    at = support.open_page("pages/4_Feed_forward.py", "a")
    assert not [r for r in at.radio if r.key == "feed_forward_rank"]
    assert any("not measurable on a one-token text" in c.value for c in at.caption)
    at = support.open_page("pages/2_Embeddings.py", "a b")
    spec = support.chart(at, "embeddings_pca_chart")
    assert spec["layout"]["xaxis"]["title"]["text"] == "PC1 (100% of the variance)"
    assert spec["layout"]["yaxis"]["title"]["text"] == "PC2 (not measurable here)"


# -- kind 2: controls sized from odd shapes ---------------------------------------------------


@pytest.mark.parametrize("model", list(SHAPES))
def test_the_feed_forward_and_layer_norm_pages_on_the_smallest_shapes(
    edge_models: Path, model: str
) -> None:
    """n_inner 4 made Feed-forward's slider min = max = 4 (StreamlitInvalidMinMaxError); a
    one-feature LayerNorm leaves every token at 0, which the page must say, not "std 1"."""
    at = _open("pages/4_Feed_forward.py", "abc", model)
    assert_nothing_unmeasured(at, f"feed-forward on {model}")
    width = SHAPES[model][0]
    at = _open("pages/5_Layer_norm.py", "abc", model)
    assert_nothing_unmeasured(at, f"layer norm on {model}")
    captions = " ".join(str(c.value) for c in at.caption)
    if width == 1:
        assert "leaves as 0 (standard deviation 0)" in captions
        assert "standard deviation 1" not in captions
    else:
        assert "leaves with mean 0 and standard deviation" in captions


@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    model=st.sampled_from(sorted(SHAPES)),
    text=st.text(alphabet="abcxyz.,!?-'", min_size=1, max_size=3),
    page=st.sampled_from(PAGES),
)
def test_property_every_page_on_tiny_shapes_and_short_texts(
    edge_models: Path, model: str, text: str, page: str
) -> None:
    """Any page, any of the smallest shapes, a text of 1-3 tokens (one byte each): nothing
    raised, no None / nan / inf shown; a one-token text (or a context of 1) labels no head."""
    at = _open(page, text, model)
    assert_nothing_unmeasured(at, f"{page} on {model} with {text!r}")
    one_token = len(text) == 1 or SHAPES[model][2] == 1
    if page == "pages/3_Attention.py" and one_token:
        assert_no_head_labelled(at)


@pytest.mark.slow
def test_dropout_and_attention_on_the_longest_text_the_cap_allows(
    edge_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,300 tokens (the operator cap raised to the model's context): the Dropout page's
    "Masks to average" slider had min = max = 10 past about 2,236 tokens."""
    monkeypatch.setenv("INSIDE_GPT_MAX_TOKENS", str(LONG_TOKENS))
    text = "ab" * (LONG_TOKENS // 2)
    at = _open("pages/7_Dropout.py", text, LONG, ("dropout_sec_average",))
    assert_nothing_unmeasured(at, "dropout, long")
    assert "Masks to average: 10 (the only possible value here)" in [c.value for c in at.caption]
    assert os.environ["INSIDE_GPT_MAX_TOKENS"] == str(LONG_TOKENS)


# -- kind 3: generated tokens keep their ids --------------------------------------------------


def _ids_ending_in_a_lone_lead_byte(loaded: LoadedModel) -> list[int]:
    """ "The cat" and then the lead byte of a three-byte character, alone (U+FFFD as text)."""
    return [*encode_text(loaded, "The cat"), loaded.tokenizer.encoding.encode_single_token(b"\xe4")]


def test_a_link_with_ids_analyses_those_tokens_not_the_text_re_read(
    tiny_loaded: LoadedModel,
) -> None:
    ids = _ids_ending_in_a_lone_lead_byte(tiny_loaded)
    text = tiny_loaded.tokenizer.decode(ids)
    assert text.endswith("\ufffd") and encode_text(tiny_loaded, text) != ids
    at = support.open_page("pages/1_Tokens.py", text, ids=",".join(map(str, ids)))
    assert at.session_state["_n_tokens"] == len(ids)
    assert any("ends inside a character" in w.value for w in at.warning)
    assert at.query_params["ids"] in (",".join(map(str, ids)), [",".join(map(str, ids))])
    # the same link on another page (the ids travel with the text)
    at = support.open_page("pages/3_Attention.py", text, ids=",".join(map(str, ids)))
    assert at.session_state["_n_tokens"] == len(ids)
    # editing the text drops the ids: the new text is encoded as usual
    at.text_area(key="_w_text").set_value("The cat sat").run()
    assert not at.exception
    assert at.session_state["ids"] is None
    assert at.session_state["_n_tokens"] == len(encode_text(tiny_loaded, "The cat sat"))


def test_ids_that_do_not_decode_to_the_text_are_ignored(tiny_loaded: LoadedModel) -> None:
    ids = encode_text(tiny_loaded, "The dog")
    at = support.open_page("pages/1_Tokens.py", "The cat", ids=",".join(map(str, ids)))
    assert at.session_state["_n_tokens"] == len(encode_text(tiny_loaded, "The cat"))
    assert at.session_state["ids"] is None
    for bad in ("1,x", "99999999", "-1"):
        at = support.open_page("pages/1_Tokens.py", "The cat", ids=bad)
        assert at.session_state["ids"] is None and not at.error


def test_generate_keeps_a_sampled_lone_byte_for_every_page(
    tiny_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sampler draws a lone lead byte: the shared text shows U+FFFD, and the next page
    analyses the byte itself (it used to read <EF><BF><BD>, three other tokens)."""
    import engine.sampling

    lead = tiny_loaded.tokenizer.encoding.encode_single_token(b"\xe4")
    real = engine.sampling.sample_next

    def lead_byte(*args: object, **kwargs: object) -> engine.sampling.SampleStep:
        step = real(*args, **kwargs)
        return dataclasses.replace(step, token_id=lead)

    monkeypatch.setattr(engine.sampling, "sample_next", lead_byte)
    at = support.open_page("pages/9_Generate.py", "The cat")
    at.button(key="generate_sample").click().run()
    assert not at.exception
    want = [*encode_text(tiny_loaded, "The cat"), lead]
    assert at.session_state["ids"] == ",".join(map(str, want))
    assert at.session_state["text"] == tiny_loaded.tokenizer.decode(want)
    at.switch_page("pages/1_Tokens.py").run()
    assert not at.exception
    assert at.session_state["_n_tokens"] == len(want)


def test_generate_continues_and_undoes_with_the_ids_of_a_link(
    tiny_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload (a link with text and ids) continues from the lone byte itself, and Undo
    restores the ids of the text before the step."""
    import engine.sampling

    ids = _ids_ending_in_a_lone_lead_byte(tiny_loaded)
    text = tiny_loaded.tokenizer.decode(ids)
    seen: list[list[int]] = []
    real = engine.sampling.sample_next

    def recording(model: object, tokenizer: object, context: list[int], *a: object) -> object:
        seen.append(list(context))
        return real(model, tokenizer, context, *a)

    monkeypatch.setattr(engine.sampling, "sample_next", recording)
    at = support.open_page("pages/9_Generate.py", text, ids=",".join(map(str, ids)))
    at.button(key="generate_sample").click().run()
    assert not at.exception
    assert seen == [ids]
    at.button(key="generate_undo").click().run()
    assert at.session_state["ids"] == ",".join(map(str, ids))
    assert at.session_state["text"] == text
