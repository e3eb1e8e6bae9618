"""A model whose vocab_size is larger than its tokenizer (nanoGPT pads to a multiple of 64): the
padding rows are masked out of everything that names a token from the output (the logit lens,
the top-k tables, sampling, the article's argmax box, the dropout tables), with one notice.

The checkpoint's padding rows of W_E are scaled up so that, unmasked, they win the top of every
distribution: a test that forgot a place would name (or crash on) a padding id."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from engine.capture import run_with_trace
from engine.checkpoints import random_model, save_checkpoint
from engine.config import PRESETS
from engine.lens.article import next_token_loss
from engine.lens.embeddings import nearest_neighbours
from engine.lens.logit_lens import final_probs, lens_distribution, logit_lens
from engine.sampling import SamplingSettings, generate, top_candidates
from engine.tokenizer import Tokenizer, cl100k_truncated
from tests import support
from ui.cache import load_model
from ui.frame import padding_notice

pytestmark = pytest.mark.usefixtures("tiny_app")

ROOT = Path(__file__).resolve().parents[2]
N_RANKS = 256  # cl100k_base's 256 byte tokens + <|endoftext|>: 257 tokens
N_VALID = N_RANKS + 1
PADDED = dataclasses.replace(PRESETS["tiny"], vocab_size=320)  # padded to a multiple of 64
TEXT = "the cat sat on the mat, and the dog"
PAGES = ["app.py", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))]


@pytest.fixture
def padded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A models folder with "padded": 320 output rows, a tokenizer of 257 tokens."""
    model = random_model(PADDED, seed=21)
    with torch.no_grad():
        model.embedding_weight()[N_VALID:] *= 8.0  # padding rows: the largest logits
    save_checkpoint(model, tmp_path / "models" / "padded", n_ranks=N_RANKS)
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(tmp_path / "models"))
    return "padded"


def test_the_engine_masks_padding_ids_everywhere(padded: str) -> None:
    loaded = load_model(padded)
    assert loaded.tokenizer.vocab_size == N_VALID and loaded.config.vocab_size == 320
    trace = run_with_trace(loaded.model, loaded.tokenizer, TEXT)
    assert trace.n_valid_ids == N_VALID and trace.n_padding_ids == 320 - N_VALID
    # unmasked, the padding rows win: the masking below is what keeps them out
    assert (trace.logits.argmax(-1) >= N_VALID).all()
    lens = logit_lens(trace, loaded.model)
    assert lens.top_ids.max() < N_VALID
    for pos in range(trace.n_tokens):
        probs = final_probs(trace, pos)
        assert probs[N_VALID:].sum() == 0 and abs(probs.sum() - 1) < 1e-9
        assert top_candidates(probs, 10).max() < N_VALID
        # the lens's last row is the model's own (masked) distribution
        np.testing.assert_allclose(lens.top_probs[-1, pos], np.sort(probs)[::-1][:10], atol=1e-5)
        dist = lens_distribution(trace, loaded.model, 0, pos)
        assert dist[N_VALID:].sum() == 0 and abs(dist.sum() - 1) < 1e-5
    ids = loaded.tokenizer.encode(TEXT)
    steps = generate(loaded.model, loaded.tokenizer, ids, 8, SamplingSettings(), seed=3)
    assert all(s.token_id < N_VALID and s.probs[N_VALID:].sum() == 0 for s in steps)


def _id_in(label: str) -> int:
    """N in a label "token  (id N)"."""
    return int(label.rsplit("(id ", 1)[1].rstrip(")"))


def _open(page: str, **query: str) -> AppTest:
    """The page on TEXT with the padded model and every lazy section open (all it can show)."""
    sections = tuple(support.lazy_section_keys(page)) if page != "app.py" else ()
    return support.open_page(page, TEXT, timeout=120, sections=sections, model="padded", **query)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_with_one_padding_notice(padded: str, page: str) -> None:
    at = _open(page)
    assert at.session_state["model_id"] == "padded" and not at.error
    notices = [i.value for i in at.info if "padding" in i.value]
    assert len(notices) == 1, notices
    assert f"only {N_VALID:,} tokens" in notices[0] and f"last {320 - N_VALID} rows" in notices[0]


@pytest.mark.slow
def test_no_output_table_or_figure_names_a_padding_id(padded: str) -> None:
    loaded = load_model(padded)
    trace = run_with_trace(loaded.model, loaded.tokenizer, TEXT)
    valid_names = {loaded.tokenizer.display(i) for i in range(N_VALID)}
    at = _open("pages/8_Output.py")
    table = support.table_with(at, "model p")
    pos = at.session_state["pos"]  # the selected position
    assert table["id"].max() < N_VALID
    np.testing.assert_allclose(table["model p"], np.sort(final_probs(trace, pos))[::-1][:15])
    options = at.selectbox(key="output_target").options  # "token  (id N)"
    assert all(_id_in(o) < N_VALID for o in options), options
    lens_table = support.table_with(at, "top guess")
    assert set(lens_table["top guess"]) <= valid_names
    charts = support.charts(at)
    bars = charts["output_top_tokens"]["data"][0]["y"]  # "token  (id N)"
    assert len(bars) == 15 and all(_id_in(b) < N_VALID for b in bars), bars
    expander = " ".join(m.value for m in at.markdown if "argmax of the logits" in m.value)
    best = loaded.tokenizer.display(int(top_candidates(final_probs(trace, pos), 1)[0]))
    assert best.strip() in expander.replace("\\", "")

    at = _open("pages/7_Dropout.py")
    table = support.table_with(at, "evaluation")
    for column in table.columns[1:]:
        for cell in table[column]:
            assert cell.rsplit("  ", 1)[0] in valid_names, cell

    at = _open("pages/9_Generate.py")
    preview = support.charts(at)["generate_preview"]["data"][0]["y"]
    assert len(preview) == 20 and all(_id_in(b) < N_VALID for b in preview), preview
    at.button(key="generate_many").click().run()
    assert not at.exception, [e.value for e in at.exception]
    history = support.table_with(at, "p when drawn")
    assert len(history) >= 1 and history["id"].max() < N_VALID
    drawn = support.charts(at)["generate_distribution"]["data"][0]["y"]
    assert drawn and all(_id_in(b) < N_VALID for b in drawn), drawn


def test_ids_a_tokenizer_skips_are_masked_like_padding() -> None:
    """A tokenizer whose ids have gaps (100..104 name no token here) on a padded model: the
    gaps take no probability and are never named, in the lens, the distributions, sampling and
    the nearest-neighbour search, and the notice counts them."""
    base = cl100k_truncated(N_RANKS)
    to_id = [r if r < 100 else r + 5 for r in range(N_VALID)]  # ranks -> ids 0..99, 105..261
    gappy = Tokenizer("gappy", base.encoding, base._ranks, to_id=to_id)
    gaps = tuple(range(100, 105))
    assert gappy.gap_ids == gaps and gappy.vocab_size == N_VALID + 5
    config = dataclasses.replace(PRESETS["tiny"], vocab_size=320)
    model = random_model(config, seed=22)
    with torch.no_grad():
        model.embedding_weight()[list(gaps)] *= 8.0  # unmasked, the gaps would win
    trace = run_with_trace(model, gappy, TEXT)
    assert trace.gap_ids == gaps and trace.n_valid_ids == N_VALID + 5
    assert np.isin(trace.logits.argmax(-1), gaps).all()
    lens = logit_lens(trace, model)
    assert not np.isin(lens.top_ids, gaps).any() and lens.top_ids.max() < trace.n_valid_ids
    assert np.isfinite(lens.entropy).all()
    for pos in range(trace.n_tokens):
        probs = final_probs(trace, pos)
        assert probs[list(gaps)].sum() == 0 and abs(probs.sum() - 1) < 1e-9
        dist = lens_distribution(trace, model, 2, pos)
        assert dist[list(gaps)].sum() == 0
        np.testing.assert_allclose(lens.top_probs[-1, pos], np.sort(probs)[::-1][:10], atol=1e-5)
    real_next = [final_probs(trace, p)[trace.token_ids[p + 1]] for p in range(trace.n_tokens - 1)]
    np.testing.assert_allclose(next_token_loss(trace, chunk=2), -np.log(real_next), rtol=1e-6)
    steps = generate(model, gappy, gappy.encode(TEXT), 8, SamplingSettings(), seed=4)
    assert all(s.token_id not in gaps and s.probs[list(gaps)].sum() == 0 for s in steps)
    table = model.embedding_weight().numpy()
    ids, _ = nearest_neighbours(table, 100 - 1, k=40, n_valid=trace.n_valid_ids, gaps=gaps)
    assert not np.isin(ids, gaps).any()
    notice = padding_notice(trace)
    assert f"only {N_VALID:,} tokens" in notice and "5 ids (the first is 100)" in notice
