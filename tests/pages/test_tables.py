"""Every table the app shows writes each column's numbers in one format: the same number of
decimals down a column (0.258 beside 0.1944 was Streamlit's own formatting of a float column:
four decimals, trailing zeros cut), on the lecture presets' repeated line in English and in
Chinese, with every lazy section open."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.checkpoints import LoadedModel
from engine.lens import embeddings as le
from tests.support import (
    decimal_formats,
    lazy_section_keys,
    open_page,
    reference_trace,
    shown_cells,
    streamlit_number,
    unformatted_floats,
)
from ui.stages import STAGES
from ui.text import PRESETS_TEXT
from ui.widgets import formatted

REPEATED = next(p.text for p in PRESETS_TEXT if p.name == "Repeated line (induction)")
REPEATED_ZH = next(p.text for p in PRESETS_TEXT if p.name == "Repeated line in Chinese (induction)")


def test_streamlit_writes_a_float_column_with_up_to_four_decimals_which_is_why() -> None:
    """The helper that stands for Streamlit's own formatting, on the cells a user reported."""
    assert [streamlit_number(v) for v in (0.258, 0.19444, 4.596, 3e-05)] == [
        "0.258",
        "0.1944",
        "4.596",
        "0.00003",
    ]
    assert decimal_formats(["0.258", "0.1944"])["decimal"] == {3, 4}
    assert decimal_formats(["12: ␣the", "1,190", "4.8%", "5%"]) == {
        "decimal": set(),
        "percent": {0, 1},
    }


def test_formatted_writes_every_float_column_and_refuses_one_without_a_format() -> None:
    df = pd.DataFrame({"token": ["a", "b", "c"], "p": [0.258, 0.19444, np.nan], "id": [1, 2, 3]})
    styled = formatted(df, {"p": "{:.3f}"})
    # the cells stay numbers (a header click sorts by value); a missing one is sent as +inf,
    # because Streamlit's grid draws NaN as "None" whatever the Styler writes (an infinite
    # cell gets the Styler's "–"), and `df` itself is left alone
    assert styled.data["p"].tolist() == [0.258, 0.19444, np.inf] and np.isnan(df["p"][2])
    assert styled.data["id"].tolist() == [1, 2, 3]
    cells = styled.to_html()
    assert ">0.258<" in cells and ">0.194<" in cells and ">–<" in cells and "nan" not in cells
    whole = df.dropna()
    assert formatted(whole, {"p": "{:.3f}"}).data is whole  # nothing missing: no copy
    assert ">-0.000<" not in formatted(pd.DataFrame({"x": [-1e-9]}), {"x": "{:.3f}"}).to_html()
    with pytest.raises(ValueError, match="without a format: \\['p'\\]"):
        formatted(df, {})
    with pytest.raises(KeyError, match="'q'"):
        formatted(df, {"p": "{:.3f}", "q": "{:.1f}"})


@pytest.mark.parametrize("page", ["app.py", *(s.path for s in STAGES)])
@pytest.mark.parametrize(
    ("text", "lang"), [(REPEATED, "en"), (REPEATED_ZH, "zh")], ids=["English", "Chinese"]
)
def test_every_table_writes_each_columns_numbers_with_one_number_of_decimals(
    page: str, text: str, lang: str
) -> None:
    at = open_page(page, text, sections=tuple(lazy_section_keys(page)), lang=lang)
    if page.endswith("9_Generate.py") and lang == "en":  # its table lists the tokens drawn
        # (in lang=zh AppTest's click fails: it looks the walk-order radio's English value up
        # among its translated options)
        at.button(key="generate_sample").click().run()
        assert not at.exception, [e.value for e in at.exception]
    raw = {str(f.value.columns.tolist()): unformatted_floats(f) for f in at.dataframe}
    assert not any(raw.values()), f"float columns left to Streamlit's formatting: {raw}"
    tables = [shown_cells(frame) for frame in at.dataframe] + [t.value for t in at.table]
    assert tables or (page.endswith("9_Generate.py") and lang == "zh"), "no table on the page"
    mixed = {}
    for table in tables:
        for column in table.columns:
            for kind, decimals in decimal_formats(table[column].tolist()).items():
                if len(decimals) > 1:
                    mixed[(str(column), kind)] = table[column].tolist()[:6]
    assert not mixed, f"columns with numbers of several decimals on {page}: {mixed}"


def test_the_neighbours_table_shows_the_engines_cosines_to_three_decimals(
    tiny_loaded: LoadedModel,
) -> None:
    """Formatting changes the text, not the numbers: the table's cells are the engine's."""
    at = open_page("pages/2_Embeddings.py", REPEATED, sections=("embeddings_sec_neighbours",))
    frame = next(f for f in at.dataframe if "cosine" in f.value.columns)
    trace = reference_trace(tiny_loaded, REPEATED)
    table = tiny_loaded.model.embedding_weight()
    pos = int(at.session_state["pos"])
    ids, sims = le.nearest_neighbours(
        table, int(trace.token_ids[pos]), k=12, n_valid=trace.n_valid_ids, gaps=trace.gap_ids
    )
    assert frame.value["id"].tolist() == [int(i) for i in ids]
    np.testing.assert_allclose(frame.value["cosine"].to_numpy(), sims, rtol=1e-6)
    assert shown_cells(frame)["cosine"].tolist() == [f"{s:.3f}" for s in sims]
