"""Page 7 (dropout) in AppTest: seeded masks match the engine, the training note, the average
over masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.checkpoints import LoadedModel
from engine.dropout_demo import dropout_pass, layer_mask_stats
from tests import support
from tests.support import PLAIN, charts, in_boxes, z_of

open_page, trace_of, TEXT = PLAIN.open, PLAIN.trace, PLAIN.text


def _dropout_panels(at: AppTest) -> list[np.ndarray]:
    spec = charts(at)["dropout_patterns"]
    return [z_of(spec, i) for i in range(3)]


def test_dropout_page_is_reproducible_for_a_seed_and_matches_the_engine(
    tiny_loaded: LoadedModel,
) -> None:
    query = {"layer": "1", "head": "1", "pos": "8"}
    first = open_page("pages/7_Dropout.py", **query)
    first.slider(key="dropout_p").set_value(0.5).run()
    first.number_input(key="dropout_seed").set_value(7).run()
    assert not first.exception
    second = open_page("pages/7_Dropout.py", **query)
    second.slider(key="dropout_p").set_value(0.5).run()
    second.number_input(key="dropout_seed").set_value(7).run()
    a, b = _dropout_panels(first), _dropout_panels(second)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    ref = trace_of(tiny_loaded)
    direct = dropout_pass(tiny_loaded.model, tiny_loaded.tokenizer, ref.token_ids.tolist(), 0.5, 7)
    np.testing.assert_allclose(a[0], np.round(ref.get("attn.hook_pattern", 1)[1], 4), atol=1e-6)
    np.testing.assert_allclose(
        a[2], np.round(direct.get("attn.hook_pattern_dropped", 1)[1], 4), atol=1e-6
    )
    # the table of this pass: the share the mask dropped, the survivors' scale, the row sums
    stats = layer_mask_stats(
        direct.get("attn.hook_pattern", 1), direct.get("attn.hook_pattern_dropped", 1)
    )
    table = next(df.value for df in first.dataframe if df.value.shape == (6, 2))
    shown = dict(zip(table.iloc[:, 0], table.iloc[:, 1], strict=True))
    assert shown["share dropped"] == f"{stats.share_dropped:.1%}"
    assert shown["survivors multiplied by"] == f"{stats.survivor_ratio:.4f}"
    assert shown["row sums after dropout (min … max)"] == (
        f"{stats.row_sum_min:.4f} … {stats.row_sum_max:.4f}"
    )
    assert shown["dropout probability p"] == "50.0%"  # percentages with one decimal each
    assert 0.3 < stats.share_dropped < 0.7 and stats.survivor_ratio == pytest.approx(2, rel=1e-5)
    first.number_input(key="dropout_seed").set_value(8).run()
    assert not np.array_equal(_dropout_panels(first)[2], a[2])
    assert not tiny_loaded.model.training


@pytest.mark.parametrize("p", [0.0, 0.1])
def test_dropout_page_says_how_the_model_was_trained(
    p: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundled model is trained without dropout: the page must not claim a p it never used."""
    import dataclasses

    from engine.checkpoints import random_model, save_checkpoint
    from engine.config import PRESETS

    config = dataclasses.replace(PRESETS["tiny"], dropout=p)
    save_checkpoint(random_model(config, seed=3), tmp_path / "m", n_ranks=config.vocab_size - 1)
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(tmp_path))
    at = AppTest.from_file(str(support.ROOT / "app.py"), default_timeout=120)
    at.query_params["model"] = "m"
    at.query_params["text"] = TEXT
    at.run()
    at.switch_page("pages/7_Dropout.py").run()
    assert not at.exception and not at.error
    text = " ".join(m.value for m in at.markdown)
    if p == 0.0:
        assert "trained without it (p = 0" in text
        assert "trained with p =" not in text
    else:
        assert "this model was trained with p = 0.1." in text
    assert at.slider(key="dropout_p").value == pytest.approx(0.1 if p else 0.05)


def test_the_dropout_pages_average_over_masks_approaches_the_evaluation_output() -> None:
    at = open_page("pages/7_Dropout.py", layer="0", head="0", sections=("dropout_sec_average",))
    at.slider(key="dropout_p").set_value(0.3).run()
    at.slider(key="dropout_n").set_value(400).run()
    inverted, plain, plain_scaled = (
        np.array(t["y"]) for t in charts(at)["dropout_convergence"]["data"]
    )
    assert len(inverted) == 400
    assert inverted[-1] < 0.25 * inverted[0]
    assert plain_scaled[-1] < 0.25 * plain_scaled[0]
    assert plain[-1] > 3 * inverted[-1]  # without rescaling the average stays off by p·x
    # cached: a rerun (any other click) draws the same masks without computing them again
    from ui.cache import MASK_AVERAGES

    entries = MASK_AVERAGES.stats()[0]
    at.run()
    assert MASK_AVERAGES.stats()[0] == entries
    again = np.array(charts(at)["dropout_convergence"]["data"][0]["y"])
    np.testing.assert_array_equal(again, inverted)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_dropout_pages_tables_and_averaging_charts_fit_their_boxes(lang: str) -> None:
    """At 1024 px with the sidebar open the page body is about 500 px: in two columns the
    statistics table scrolled sideways (170 px) and cut its value column, the prediction table
    too (74-87 px), and the averaging charts cut their legends. Both pairs now sit in boxes of
    `ui.widgets.pair` (wrapped one under the other when two do not fit), every table column is
    sized (`ui.widgets.table`) and the columns together are no wider than their box."""
    import json

    from ui.text import PRESETS_TEXT
    from ui.widgets import PAIR_PX

    text = next(p.text for p in PRESETS_TEXT if p.name == "Repeated line (induction)")
    at = open_page("pages/7_Dropout.py", text=text, lang=lang, sections=("dropout_sec_average",))
    placed = in_boxes(at.main)
    tables = [(e, box) for e, box in placed if type(e).__name__ == "Dataframe"]
    assert len(tables) == 2
    for frame, box in tables:
        assert box == PAIR_PX[(False, False)]
        widths = json.loads(frame.proto.columns)
        shown = [str(c) for c in frame.value.columns]
        assert all(widths.get(c, {}).get("width") for c in shown), widths
        assert sum(widths[c]["width"] for c in shown) <= box, (shown, widths)
    charts_in = {e.key: box for e, box in placed if getattr(e, "type", "") == "plotly_chart"}
    assert {k: charts_in.get(k) for k in ("dropout_convergence", "dropout_average_row")} == {
        "dropout_convergence": PAIR_PX[(False, True)],
        "dropout_average_row": PAIR_PX[(False, True)],
    }
