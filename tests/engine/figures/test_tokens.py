"""engine.figures.tokens: token chips, the token table, bytes per token and BPE merge steps."""

from __future__ import annotations

from engine.checkpoints import LoadedModel
from engine.figures import common
from engine.figures import tokens as ft
from engine.trace import Trace
from tests.support import assert_validates_unchanged


def _groups(tiny_loaded: LoadedModel, trace: Trace) -> list:
    return tiny_loaded.tokenizer.group_characters([int(i) for i in trace.token_ids])


def test_token_chips_escape_user_html(tiny_loaded: LoadedModel) -> None:
    tok = tiny_loaded.tokenizer
    ids = tok.encode("<script>alert(1)</script>")
    strs = [tok.display(i) for i in ids]
    html_text = ft.token_chips_html(strs, ids, tok.group_characters(ids))
    assert "<script>" not in html_text
    assert "&lt;" in html_text
    for i in ids:
        assert f">{i}</span>" in html_text


def test_token_chips_bracket_a_chinese_character_split_into_bytes(
    tiny_loaded: LoadedModel,
) -> None:
    tok = tiny_loaded.tokenizer
    ids = tok.encode("界")
    assert len(ids) > 1, "the 4096-rank vocabulary has no single token for 界"
    html_text = ft.token_chips_html([tok.display(i) for i in ids], ids, tok.group_characters(ids))
    assert html_text.count("dashed") == 1
    assert ">界</span>" in html_text


def test_token_table_lists_every_token_with_its_bytes(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    tok = tiny_loaded.tokenizer
    ids = [int(i) for i in tiny_trace.token_ids]
    data = [tok.token_bytes(i) for i in ids]
    table = ft.token_table(ids, tiny_trace.token_strs, data, _groups(tiny_loaded, tiny_trace))
    assert list(table["id"]) == ids
    assert list(table["token"]) == list(tiny_trace.token_strs)
    assert list(table["n bytes"]) == [len(b) for b in data]
    assert table["bytes"][0] == " ".join(f"{b:02X}" for b in data[0])
    split_rows = table[table["characters covered"].str.startswith("part of")]
    assert len(split_rows) > 0  # the Chinese characters of MIXED_TEXT
    assert "“你”" in " ".join(split_rows["characters covered"])


def test_split_characters_names_each_multi_token_character(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    split = ft.split_characters(_groups(tiny_loaded, tiny_trace))
    assert "你" in list(split["characters"])
    row = split[split["characters"] == "你"].iloc[0]
    assert row["Unicode name"] == "CJK UNIFIED IDEOGRAPH-4F60"
    assert row["number of tokens"] >= 2


def test_bytes_per_token_bars_equal_byte_lengths(
    tiny_loaded: LoadedModel, tiny_trace: Trace
) -> None:
    tok = tiny_loaded.tokenizer
    data = [tok.token_bytes(int(i)) for i in tiny_trace.token_ids]
    fig = ft.bytes_per_token_figure(tiny_trace.token_strs, data)
    assert list(fig.data[0].y) == [len(b) for b in data]
    assert list(fig.data[0].x) == common.token_labels(tiny_trace.token_strs)
    assert_validates_unchanged(fig)  # built without validation (spec_figure)


def test_bpe_steps_figure_has_one_row_per_merge_and_ends_with_the_tokens(
    tiny_loaded: LoadedModel,
) -> None:
    tok = tiny_loaded.tokenizer
    word = tok.encode_with_steps(" together").pre_tokens[0]
    fig = ft.bpe_steps_figure(word)
    bar = fig.data[0]
    rows = ["bytes"] + [f"merge {k}" for k in range(1, len(word.merges) + 1)]
    assert list(dict.fromkeys(bar.y)) == rows
    last = [t for t, y in zip(bar.text, bar.y, strict=True) if y == rows[-1]]
    assert last == [tok.display(i) for i in word.ids]
    first = [t for t, y in zip(bar.text, bar.y, strict=True) if y == "bytes"]
    assert len(first) == len(b" together")
    # every row covers all the bytes of the word
    for row in rows:
        widths = [x for x, y in zip(bar.x, bar.y, strict=True) if y == row]
        assert sum(widths) == len(b" together")
    assert_validates_unchanged(fig)  # built without validation (spec_figure)
