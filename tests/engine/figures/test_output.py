"""engine.figures.output: the logit-lens heatmap, top tokens, next/target token and sample
figures follow the lens and the stored logits."""

from __future__ import annotations

import numpy as np
import pytest

from engine.checkpoints import LoadedModel
from engine.figures import output as fout
from engine.figures.common import plotly_text
from engine.figures.output import cell_word
from engine.lens.logit_lens import final_probs, lens_distribution, logit_lens
from engine.sampling import SamplingSettings, next_token_distribution, sample_next
from engine.trace import Trace
from tests.support import assert_validates_unchanged, labels_of


@pytest.fixture(scope="module")
def tiny_lens(tiny_trace: Trace, tiny_loaded: LoadedModel):
    return logit_lens(tiny_trace, tiny_loaded.model)


def test_the_lens_heatmaps_last_row_is_the_models_own_top_token(
    tiny_trace: Trace, tiny_loaded: LoadedModel, tiny_lens
) -> None:
    display = tiny_loaded.tokenizer.display
    fig = fout.lens_heatmap(tiny_lens, tiny_trace.token_strs, display, size=tiny_trace.n_tokens)
    last_words = list(fig.data[0].text[-1])
    last_probs = np.array(fig.data[0].z[-1])
    for pos in range(tiny_trace.n_tokens):
        probs = final_probs(tiny_trace, pos)
        assert last_words[pos] == plotly_text(cell_word(display(int(np.argmax(probs)))))
        assert last_probs[pos] == pytest.approx(probs.max(), abs=1e-4)
    assert list(fig.data[0].y) == ["embed", "block 0", "block 1"]
    assert list(fig.data[0].x) == labels_of(tiny_trace)
    hover = fig.data[0].customdata[-1][0]
    assert hover.count("<br>") == fout.HOVER_TOP - 1
    assert hover.startswith("1. " + plotly_text(display(int(tiny_lens.top_ids[-1, 0, 0]))))
    assert_validates_unchanged(fig)  # built without validation (spec_figure)
    assert isinstance(fig.data[0].colorscale[0][1], str)  # the resolved list, not "Blues"


def test_the_lens_window_shows_a_slice_of_positions(tiny_trace: Trace, tiny_loaded, tiny_lens):
    fig = fout.lens_heatmap(
        tiny_lens, tiny_trace.token_strs, tiny_loaded.tokenizer.display, start=4, size=5
    )
    assert list(fig.data[0].x) == labels_of(tiny_trace, 4, 9)
    np.testing.assert_allclose(np.array(fig.data[0].z), np.round(tiny_lens.top_probs[:, 4:9, 0], 4))
    assert_validates_unchanged(fig)


def test_top_tokens_figure_applies_temperature_top_k_and_top_p_to_the_stored_logits(
    tiny_trace: Trace, tiny_loaded: LoadedModel
) -> None:
    pos = 4
    logits = tiny_trace.logits[pos]
    shaped = next_token_distribution(logits, SamplingSettings(temperature=0.7, top_k=5))
    model = next_token_distribution(logits, SamplingSettings())
    fig = fout.top_tokens_figure(model, shaped, tiny_loaded.tokenizer.display, k=8)
    order = np.argsort(-model)[:8]
    np.testing.assert_allclose(fig.data[0].x, model[order])
    np.testing.assert_allclose(fig.data[1].x, shaped[order])
    assert np.count_nonzero(fig.data[1].x) == 5
    assert fig.data[0].y[0].endswith(f"(id {order[0]})")
    assert_validates_unchanged(fig)
    assert_validates_unchanged(fout.top_tokens_figure(model, model, tiny_loaded.tokenizer.display))


def test_next_and_target_token_figures_follow_the_lens(
    tiny_trace: Trace, tiny_loaded: LoadedModel, tiny_lens
) -> None:
    pos = 3
    fig = fout.next_token_figure(tiny_lens, pos, tiny_trace.token_strs[pos + 1])
    np.testing.assert_allclose(fig.data[0].y, tiny_lens.next_prob[:, pos])
    np.testing.assert_array_equal(fig.data[1].y, tiny_lens.next_rank[:, pos])
    assert_validates_unchanged(fig)
    target = int(tiny_trace.token_ids[pos + 1])
    probs = [
        lens_distribution(tiny_trace, tiny_loaded.model, r, pos)[target]
        for r in range(tiny_trace.config.n_layer + 1)
    ]
    np.testing.assert_allclose(probs, tiny_lens.next_prob[:, pos], rtol=1e-4)
    tfig = fout.target_figure(np.array(probs), tiny_lens.layer_labels, "x")
    np.testing.assert_allclose(tfig.data[0].y, probs)
    assert_validates_unchanged(tfig)


def test_sample_figure_marks_the_chosen_token(tiny_loaded: LoadedModel) -> None:
    tok = tiny_loaded.tokenizer
    step = sample_next(
        tiny_loaded.model, tok, tok.encode("Hello"), SamplingSettings(top_k=10), seed=2
    )
    fig = fout.sample_figure(step, tok.display, k=20)
    labels = list(fig.data[1].y)
    assert len(labels) == 10  # top-k cut the rest
    chosen = labels.index(f"{plotly_text(tok.display(step.token_id))}  (id {step.token_id})")
    assert fig.data[1].text[chosen] == "◀ chosen"
    assert fig.data[1].marker.color[chosen] != fig.data[1].marker.color[(chosen + 1) % 10]
    assert sum(fig.data[1].x) == pytest.approx(1.0)
    assert_validates_unchanged(fig)


def test_lens_cells_cut_long_words_and_probability_axes_fit_flat_distributions() -> None:
    assert fout.cell_word("short") == "short"
    assert fout.cell_word("␣questionable") == "␣que…"
    assert len(fout.cell_word("x" * 30)) == fout.CELL_CHARS
    flat = np.full(100, 0.01)
    assert fout.probability_range(flat) == [0.0, 0.02]
    assert fout.probability_range(np.array([0.9, 0.1])) == [0.0, 1.035]
    assert fout.probability_range(np.array([1.0])) == [0.0, 1.05]
