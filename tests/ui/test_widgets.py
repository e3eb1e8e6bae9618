"""ui.widgets.next_stage: from stage 3 of layer 0 the "Next" button visits stages 3-7 of every
layer in turn, then the output page, then Generate; the URL carries stage and layer."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from engine.config import PRESETS
from engine.trace import Trace
from tests.support import ROOT, new_app
from ui.stages import LAYER_STAGES, STAGE_BY_ID, STAGES, walk_neighbours


def stage_of(at: AppTest) -> str:
    """The stage id of the page on screen, read from its title ("5 · Layer norm")."""
    number = int(at.title[0].value.split(" · ", 1)[0])
    return STAGES[number - 1].id


def click(at: AppTest, key: str) -> AppTest:
    """Click a button on the page on screen. AppTest keeps requesting the page given to its own
    `switch_page` on every later run (even after the script switched pages), so tell it which
    page is on screen first; the click itself then runs as in a browser."""
    at.switch_page(STAGE_BY_ID[stage_of(at)].path)
    at.button(key=key).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_next_from_attention_of_layer_0_visits_every_layer_and_ends_on_the_output() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["text"] = "To be, or not to be: to be."
    at.query_params["layer"] = "0"
    at.switch_page("pages/3_Attention.py")
    at.run()
    n_layer = PRESETS["tiny"].n_layer
    visited = [(stage_of(at), at.session_state["layer"])]
    while stage_of(at) != "output":
        assert len(visited) < 50, visited
        click(at, f"{stage_of(at)}_next")
        visited.append((stage_of(at), at.session_state["layer"]))
        assert at.query_params["layer"] == str(at.session_state["layer"])
    expected = [(s, layer) for layer in range(n_layer) for s in LAYER_STAGES]
    assert visited == [*expected, ("output", n_layer - 1)]
    click(at, "output_next")
    assert stage_of(at) == "generate"
    click(at, "generate_next")
    assert stage_of(at) == "intervene"
    click(at, "intervene_next")
    assert stage_of(at) == "learning"  # page 11 (issue 18)
    assert "learning_next" not in {b.key for b in at.button}  # the walk ends here


def test_previous_walks_back_from_the_output_to_the_last_layers_dropout() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["text"] = "hello world"
    at.switch_page("pages/8_Output.py")
    at.run()
    click(at, "output_prev")
    assert stage_of(at) == "dropout"
    assert at.session_state["layer"] == PRESETS["tiny"].n_layer - 1
    click(at, "dropout_prev")
    assert stage_of(at) == "residual"


def test_next_button_opens_the_following_stage() -> None:
    at = new_app({"text": "hello world"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    at.button(key="tokens_next").click().run()
    assert not at.exception
    assert at.title[0].value == "2 · Embeddings"


def test_previous_from_attention_in_layer_one_goes_to_dropout_of_layer_zero() -> None:
    prev, _ = walk_neighbours("attention", 1, 2)
    assert prev is not None and prev[0].id == "dropout" and prev[1] == 0
    at = new_app({"text": "hello world", "layer": "1"})
    at.switch_page("pages/3_Attention.py")
    at.run()
    labels = [b.label for b in at.button]
    if (ROOT / "pages/7_Dropout.py").is_file():
        assert "← 7 · Dropout (layer 0)" in labels
    assert (
        any(label.startswith("Next: 4 · Feed-forward (layer 1)") for label in labels)
        or not (ROOT / "pages/4_Feed_forward.py").is_file()
    )


# Widths Chromium measured for these texts in Streamlit's table font (Source Sans, 14 px;
# canvas measureText in the running app), in pixels.
MEASURED_PX = {
    "entropy (nats)": 82.2,
    "first-token sink": 86.4,
    "previous-token": 88.1,
    "induction": 56.2,
    "layer": 28.9,
    "head": 29.2,
    "self": 20.5,
    "validation loss": 84.0,
    "熵（奈特）": 70.0,
    "首词元汇点": 70.0,
    "注意力头": 56.0,
    "abcdefghijklmnopqrstuvwxyz": 171.7,
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ": 206.1,
    "0123456789": 69.6,
    "mmmmmmmmmm": 116.1,
    "WWWWWWWWWW": 110.0,
}


def test_text_px_is_at_least_the_measured_width_and_at_most_30_percent_more() -> None:
    """The estimate never cuts a header, and is not so generous that the head table outgrows
    its box (8 px for every character was 36-56 % over on its headers)."""
    from ui.widgets import text_px

    for text, px in MEASURED_PX.items():
        assert px <= text_px(text) <= 1.3 * px, (text, text_px(text), px)


# The width of a full-width table's box, measured in Chromium: the page body at 1400 px with the
# sidebar open (881 px) and at 1024 px in lecture mode, the sidebar collapsed (986 px).
BOX_PX = {"laptop": 881, "lecture": 986}


def test_the_head_table_fits_a_laptop_page_and_the_lecture_view(tiny_trace: Trace) -> None:
    """The attention page's head table, with the widest role name in its label column, is no
    wider than its box at 1400 px in English and at 1024 px in lecture mode in both languages:
    wider, the table scrolls sideways and its last header is cut ("entropy (na")."""
    import pandas as pd

    from engine.figures.attention import HEAD_ROLE_NAMES, head_scores_table
    from engine.lens.heads import head_scores
    from ui.i18n import _, use_language
    from ui.widgets import column_widths

    scores = head_scores(tiny_trace)
    for lang, boxes in (("en", ("laptop", "lecture")), ("zh", ("lecture",))):
        with use_language(lang):
            df = head_scores_table(scores)
            roles = [_(r) for r in HEAD_ROLE_NAMES]
            rows = pd.concat([df.iloc[[0]]] * len(roles), ignore_index=True)
            rows[df.columns[2]] = roles  # the label column: every role name
            widths = column_widths(pd.concat([df, rows], ignore_index=True))
        entropy = {"en": "entropy (nats)", "zh": "熵（奈特）"}[lang]
        assert list(widths) == [str(c) for c in df.columns] and entropy in widths
        assert widths[entropy] >= MEASURED_PX[entropy] + 36  # the header whole, and its icons
        for box in boxes:
            assert sum(widths.values()) <= BOX_PX[box], (lang, box, widths)


def test_the_head_table_fits_the_page_at_1024_px_with_the_sidebar_open(tiny_trace: Trace) -> None:
    """At 1024 px with the sidebar open the table's box is 505 px (measured in Chromium); the
    eight columns with their full headers and room for a sort arrow took 825 px in English and
    660 in Chinese, and the table scrolled sideways. Shown compact, with shorter headers (the
    full names as the columns' help), every column is kept and the table fits, with the widest
    role name in its label column."""
    import pandas as pd

    from engine.figures.attention import (
        HEAD_ROLE_NAMES,
        head_scores_table,
        head_table_short_headers,
    )
    from engine.lens.heads import head_scores
    from ui.i18n import _, use_language
    from ui.widgets import column_widths, text_px

    scores = head_scores(tiny_trace)
    for lang in ("en", "zh"):
        with use_language(lang):
            df = head_scores_table(scores)
            short = head_table_short_headers()
            roles = [_(r) for r in HEAD_ROLE_NAMES]
        assert set(short) <= set(df.columns)  # the full names, in the reader's language
        rows = pd.concat([df.iloc[[0]]] * len(roles), ignore_index=True)
        rows[df.columns[2]] = roles
        rows[df.columns[0]] = rows[df.columns[1]] = 11  # GPT-2 small's two-digit layers and heads
        wide = pd.concat([df, rows], ignore_index=True)
        widths = column_widths(wide, short)
        assert list(widths) == [str(c) for c in df.columns]  # every column kept
        assert sum(widths.values()) <= 505, (lang, widths)
        assert sum(column_widths(wide).values()) > 505  # the full headers did not fit
        for col, width in widths.items():  # every header and cell whole while unsorted
            assert width >= text_px(short.get(col, col)) + 16
            assert width >= max(text_px(str(v)) + 16 for v in wide[col])


def test_column_widths_measure_formatted_cells_as_the_table_shows_them() -> None:
    """With `formats`, a number column is measured as `formatted` writes it ("0.1235", "–"),
    not as Python writes the float (0.123456789 is 11 characters, 6 on screen)."""
    import pandas as pd

    from ui.widgets import column_widths, text_px

    df = pd.DataFrame({"p": [0.123456789, float("nan")], "word": ["a", "bb"]})
    plain = column_widths(df, {})
    shown = column_widths(df, {}, {"p": "{:.4f}"})
    assert plain["p"] == text_px("0.123456789") + 16
    assert shown["p"] == text_px("0.1235") + 16 < plain["p"]
    assert shown["word"] == plain["word"] == text_px("word") + 16
    assert column_widths(pd.DataFrame({"p": [float("nan")]}), {}, {"p": "{:.4f}"})["p"] == (
        text_px("p") + 16  # "–" is narrower than its header
    )


def test_the_lens_table_fits_the_page_at_1024_px_with_the_sidebar_open(tiny_trace: Trace) -> None:
    """The Output page's lens table in the 505 px table box (1024 px, sidebar open), with
    GPT-2 small's rows ("block 11"), a five-digit rank, a two-digit entropy and a long token
    as top guess: compact with its short headers it fits in both languages; with its full
    headers (and room for sort arrows) it did not."""
    import numpy as np

    from engine.figures import output as fout
    from engine.lens.logit_lens import LogitLens
    from ui.i18n import use_language
    from ui.widgets import column_widths, text_px

    rows = 13  # GPT-2 small: the embeddings and 12 blocks
    lens = LogitLens(
        top_ids=np.zeros((rows, 1, 5), dtype=np.int64),
        top_probs=np.full((rows, 1, 5), 0.4766, dtype=np.float32),
        next_prob=np.full((rows, 1), 0.0001, dtype=np.float32),
        next_rank=np.full((rows, 1), 50256, dtype=np.int64),
        entropy=np.full((rows, 1), 10.825, dtype=np.float32),
    )
    for lang in ("en", "zh"):
        with use_language(lang):
            df, formats = fout.lens_table(lens, 0, lambda _i: "␣between")
            short = fout.lens_table_short_headers()
        assert set(short) <= set(df.columns) and len(df) == rows
        widths = column_widths(df, short, formats)
        assert list(widths) == [str(c) for c in df.columns]
        assert sum(widths.values()) <= 505, (lang, widths)
        assert sum(column_widths(df, None, formats).values()) > 505, lang
        assert widths[df.columns[4]] >= text_px("50256") + 16
        assert widths[df.columns[0]] >= text_px(str(df.iloc[-1, 0])) + 16  # "block 11"
