"""Page 8 (output probabilities and logit lens) in AppTest: lens cells, sampling knobs applied
to the stored logits, the lens window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from engine.checkpoints import LoadedModel
from engine.figures import output as fout
from engine.figures.common import plotly_text, token_labels
from engine.figures.output import cell_word
from engine.lens.logit_lens import final_probs, lens_distribution, logit_lens
from engine.model import GPT
from engine.sampling import SamplingSettings, next_token_distribution
from tests.support import PLAIN, charts, in_boxes, shown_cells

open_page, trace_of, TEXT = PLAIN.open, PLAIN.trace, PLAIN.text


def test_the_lens_cell_of_the_last_layer_is_the_final_softmaxs_top_token(
    tiny_loaded: LoadedModel,
) -> None:
    at = open_page("pages/8_Output.py", pos="4")
    assert at.title[0].value == "8 · Output probabilities & logit lens"
    ref = trace_of(tiny_loaded)
    lens = charts(at)["output_lens"]["data"][0]
    display = tiny_loaded.tokenizer.display
    shown = [int(label.split(":", 1)[0]) for label in lens["x"]]
    assert shown == list(range(min(fout.LENS_AXIS, ref.n_tokens)))  # the window from 0
    for col, pos in enumerate(shown):
        probs = final_probs(ref, pos)
        assert lens["text"][-1][col] == plotly_text(cell_word(display(int(np.argmax(probs)))))
        assert lens["z"][-1][col] == pytest.approx(probs.max(), abs=2e-4)
    assert lens["y"] == ["embed", "block 0", "block 1"]
    expected = logit_lens(ref, tiny_loaded.model)
    nxt = charts(at)["output_next_token"]["data"]
    np.testing.assert_allclose(nxt[0]["y"], expected.next_prob[:, 4], rtol=1e-4)
    target = at.selectbox(key="output_target").value
    probs = [lens_distribution(ref, tiny_loaded.model, r, 4)[target] for r in range(3)]
    np.testing.assert_allclose(charts(at)["output_target_chart"]["data"][0]["y"], probs, rtol=1e-4)


def test_temperature_top_k_and_top_p_reshape_the_stored_logits_without_a_rerun(
    tiny_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page("pages/8_Output.py", pos="6")
    ref = trace_of(tiny_loaded)
    before = charts(at)["output_top_tokens"]["data"]
    model_p = next_token_distribution(ref.logits[6], SamplingSettings())
    order = np.argsort(-model_p)[:15]
    np.testing.assert_allclose(before[1]["x"], model_p[order], rtol=1e-4)
    calls: list[int] = []
    real_forward = GPT.forward

    def counting_forward(self: GPT, *args: object, **kwargs: object) -> object:
        calls.append(1)
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(GPT, "forward", counting_forward)
    at.slider(key="output_temperature").set_value(2.0).run()
    at.number_input(key="output_top_k").set_value(5).run()
    at.slider(key="output_top_p").set_value(0.9).run()
    assert not at.exception
    after = charts(at)["output_top_tokens"]["data"]
    shaped = next_token_distribution(ref.logits[6], SamplingSettings(2.0, 5, 0.9))
    np.testing.assert_allclose(after[1]["x"], shaped[order], rtol=1e-4, atol=1e-9)
    assert 0 < np.count_nonzero(after[1]["x"]) <= 5
    np.testing.assert_allclose(after[0]["x"], before[0]["x"])  # the model's own: unchanged
    assert calls == []


def test_the_lens_window_moves_along_a_long_text(tiny_loaded: LoadedModel) -> None:
    text = "To be, or not to be, that is the question: whether tis nobler in the mind"
    at = open_page("pages/8_Output.py", text=text)
    ref = trace_of(tiny_loaded, text=text)
    size = fout.LENS_AXIS
    assert ref.n_tokens > size
    # the window opens on the selected position (the last token by default)
    assert charts(at)["output_lens"]["data"][0]["x"][-1] == token_labels(ref.token_strs)[-1]
    at.slider(key="output_lens_window").set_value(0).run()
    assert charts(at)["output_lens"]["data"][0]["x"] == token_labels(ref.token_strs, 0, size)
    last = ref.n_tokens - size  # the last window: it ends on the text's last token
    at.slider(key="output_lens_window").set_value(last).run()
    assert not at.exception
    lens = charts(at)["output_lens"]["data"][0]
    assert lens["x"] == token_labels(ref.token_strs, last, ref.n_tokens)
    top = logit_lens(ref, tiny_loaded.model).top_probs[:, last:, 0]
    np.testing.assert_allclose(np.array(lens["z"], dtype=float), np.round(top, 4), atol=2e-4)


def test_the_page_opens_on_the_last_position_with_a_next_token(tiny_loaded: LoadedModel) -> None:
    """Opened without a position it shows the last position that has a real next token (the
    last token has none), and the lens table shows – there instead of None / nan."""
    at = open_page("pages/8_Output.py")
    ref = trace_of(tiny_loaded)
    assert at.session_state["pos"] == ref.n_tokens - 2
    assert "output_next_token" in charts(at)
    table = _lens_table(at)
    assert list(table["its rank (0 = top)"]) == [
        str(int(r)) for r in logit_lens(ref, tiny_loaded.model).next_rank[:, ref.n_tokens - 2]
    ]
    # choosing the last token on the page is kept; the lens row then has nothing to measure
    at.selectbox(key="_w_pos").set_value(ref.n_tokens - 1).run()
    assert at.session_state["pos"] == ref.n_tokens - 1
    table = _lens_table(at)
    assert set(table["its rank (0 = top)"]) == {"–"}
    assert set(table["real next token's p"]) == {"–"}
    assert all("None" not in str(v) and "nan" not in str(v) for v in table.to_numpy().ravel())


def _lens_table(at: object) -> object:
    """The lens table as the browser shows it (every cell as text)."""
    frame = next(d for d in at.dataframe if "its rank (0 = top)" in d.value.columns)
    return shown_cells(frame)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_lens_tables_numbers_are_numbers_so_they_are_right_aligned(
    tiny_loaded: LoadedModel, lang: str
) -> None:
    """The lens table wrote its p, rank and entropy as strings, which Streamlit aligns left;
    numbers are aligned right. Its four number columns now hold floats (– where nothing is
    measured, written by the Styler), in both languages."""
    at = open_page("pages/8_Output.py", lang=lang)
    frame = next(d for d in at.dataframe if d.value.shape[1] == 6 and "id" not in d.value.columns)
    value = frame.value
    numbers = list(value.columns[2:])
    assert all(pd.api.types.is_float_dtype(value[c]) for c in numbers), value.dtypes
    assert not pd.api.types.is_float_dtype(value[value.columns[1]])  # the tokens stay text
    lens = logit_lens(trace_of(tiny_loaded), tiny_loaded.model)
    pos = trace_of(tiny_loaded).n_tokens - 2
    np.testing.assert_allclose(value[numbers[0]], lens.top_probs[:, pos, 0], rtol=1e-6)
    cells = shown_cells(frame)
    assert list(cells[numbers[0]]) == [f"{p:.4f}" for p in lens.top_probs[:, pos, 0]]
    assert list(cells[numbers[2]]) == [str(int(r)) for r in lens.next_rank[:, pos]]


def test_the_page_computes_the_lens_only_for_the_blocks_it_shows(
    tiny_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a long text the page reads the lens at its window and the selected position only:
    the blocks of 16 positions holding them are computed (once), not the whole text."""
    import ui.cache

    computed: list[list[int]] = []
    real = ui.cache.logit_lens

    def recording(trace, model, *args, positions=None, **kwargs):
        computed.append(list(positions) if positions is not None else list(range(trace.n_tokens)))
        return real(trace, model, *args, positions=positions, **kwargs)

    monkeypatch.setattr(ui.cache, "logit_lens", recording)
    text = " ".join(f"word{i} and line{i * 7}" for i in range(12))  # only this test's text
    at = open_page("pages/8_Output.py", text=text)
    ref = trace_of(tiny_loaded, text=text)
    T = ref.n_tokens
    assert T == 32  # the tiny model's context: two blocks
    # the window opens on the selected position (T - 2): its positions lie in one block, 16..31
    assert computed == [list(range(16, 32))]
    lens = charts(at)["output_lens"]["data"][0]
    top = logit_lens(ref, tiny_loaded.model).top_probs[:, T - fout.LENS_AXIS :, 0]
    np.testing.assert_allclose(np.array(lens["z"], dtype=float), np.round(top, 4), atol=2e-4)
    at.slider(key="output_lens_window").set_value(0).run()  # block 0 computed, block 1 kept
    at.slider(key="output_lens_window").set_value(16).run()  # both kept
    assert not at.exception
    assert computed == [list(range(16, 32)), list(range(0, 16))]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_pages_tables_are_compact_with_short_headers_and_fit_1024_px(
    tiny_loaded: LoadedModel, lang: str
) -> None:
    """The lens table and the next-token table scrolled sideways at 1024 px with the sidebar
    open (by 117 and 0 px in English, 170 and 26 px in Chinese; measured in Chromium). Both
    are drawn through `ui.widgets.table`: their long headers are shown short, with the full
    name as the column's help; every column has a width, and the widths add up to no more
    than the 505 px table box. The cells stay numbers, written by the formats."""
    import json

    at = open_page("pages/8_Output.py", lang=lang)
    assert not at.exception
    short = {
        "en": {
            "real next token's p": "real next p",
            "its rank (0 = top)": "its rank",
            "entropy (nats)": "entropy",
            "p after τ / top-k / top-p": "adjusted p",
        },
        "zh": {
            "真实下一个词元的 p": "真实下一个 p",
            "它的排名（0 = 第一）": "它的排名",
            "熵（奈特）": "熵",
            "经过 τ / top-k / top-p 之后的 p": "调整后 p",
        },
    }[lang]
    lens_frame = next(f for f in at.dataframe if f.value.shape[1] == 6 and "id" not in f.value)
    top_frame = next(f for f in at.dataframe if "id" in f.value.columns)
    for frame, n_short in ((lens_frame, 3), (top_frame, 1)):
        config = json.loads(frame.proto.columns)
        columns = [str(c) for c in frame.value.columns]
        assert set(config) - {"_index"} == set(columns)  # (_index: the hidden index)
        labelled = {c: config[c]["label"] for c in columns if config[c].get("label")}
        assert len(labelled) == n_short and all(short[c] == v for c, v in labelled.items())
        for c in columns:  # the full name is the help of a shortened column, and only there
            assert config[c].get("help") == (c if c in labelled else None), (c, config[c])
        assert sum(config[c]["width"] for c in columns) <= 505, (lang, config)
        numbers = [c for c in columns if pd.api.types.is_float_dtype(frame.value[c])]
        assert len(numbers) == (4 if frame is lens_frame else 3)
    cells = shown_cells(lens_frame)
    ref = trace_of(tiny_loaded)
    lens = logit_lens(ref, tiny_loaded.model)
    p_col = lens_frame.value.columns[2]
    assert list(cells[p_col]) == [f"{p:.4f}" for p in lens.top_probs[:, ref.n_tokens - 2, 0]]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_pretraining_table_is_compact_and_its_numbers_are_the_losses(
    tiny_loaded: LoadedModel, lang: str
) -> None:
    """The pre-training section's table (one row per position with a next token) scrolled
    sideways in Chinese at 1024 px with the sidebar open: its two number columns are headed
    "p" and "−log p" (the full names as their help), and its columns fit the ~470 px the
    section leaves for it. Its cells are the measured losses, written by the formats."""
    import json

    at = open_page("pages/8_Output.py", sections=("output_sec_pretraining",), lang=lang)
    assert not at.exception
    frame = next(f for f in at.dataframe if f.value.shape[1] == 4)
    config = json.loads(frame.proto.columns)
    columns = [str(c) for c in frame.value.columns]
    labelled = {c: config[c]["label"] for c in columns if config[c].get("label")}
    assert sorted(labelled.values()) == ["p", "−log p"]
    assert all(config[c].get("help") == c for c in labelled)
    assert sum(config[c]["width"] for c in columns) <= 470, (lang, config)
    ref = trace_of(tiny_loaded)
    cells = shown_cells(frame)
    p_col, loss_col = columns[2], columns[3]
    assert len(cells) == ref.n_tokens - 1
    with torch.inference_mode():
        logits = torch.from_numpy(np.asarray(ref.logits[:-1], dtype=np.float64))
    ids = torch.tensor(ref.token_ids[1:])
    n_valid = ref.n_valid_ids or logits.shape[-1]
    want = torch.nn.functional.cross_entropy(logits[:, :n_valid], ids, reduction="none")
    assert list(cells[loss_col]) == [f"{x:.3f}" for x in want.tolist()]
    assert list(cells[p_col]) == [f"{np.exp(-x):.4f}" for x in want.tolist()]


def test_the_real_next_token_and_follow_a_token_charts_sit_in_a_pair_of_boxes() -> None:
    """At 1,024 px with the sidebar open, half the page body squeezed the real next token's
    probability and rank panels into each other (tick labels on the other panel's line, x
    labels run together): both charts now sit in `ui.widgets.pair` boxes (side by side where
    two fit, else one under the other) and are drawn for that box's width."""
    from ui.widgets import PAIR_PX

    at = open_page("pages/8_Output.py")
    assert not at.exception
    placed = {
        e.key: box for e, box in in_boxes(at.main) if getattr(e, "type", "") == "plotly_chart"
    }
    box = PAIR_PX[(False, False)]
    assert placed["output_next_token"] == box and placed["output_target_chart"] == box
