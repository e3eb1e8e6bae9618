"""Texts: the lecture presets, cleaning what a user typed or a link carried, and the one Markdown
escaper (every quoted token, link value or error message goes through `markdown_literal`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from ui.i18n import N_, _, ngettext
from ui.settings import MAX_TEXT_CHARS, URL_TEXT_MAX_CHARS


@dataclass(frozen=True)
class Preset:
    """A prepared text in the sidebar's "Lecture presets" box, and what it shows. `name` and
    `why` are msgids (marked N_, translated where shown); `text` is what the model reads. `why` is
    the preset's claim in one line: what the bundled model does on this text, checked on the
    shipped model by tests/assets/test_presets.py (a claim the model cannot meet is dropped,
    not softened)."""

    name: str
    text: str
    why: str


PRESETS_TEXT: tuple[Preset, ...] = (
    Preset(
        N_("Plain sentence"),
        "The children walked to school in the morning and played in the park.",
        N_("head 0.3 is a previous-token head: each token attends to the one just before it"),
    ),
    Preset(
        N_("Repeated line (induction)"),
        "The little dog ran to the river and drank some cold water.\n"
        "The little dog ran to the river and drank some cold water.",
        N_(
            "heads 1.0 and 1.1 are induction heads: on the second line each token attends to the "
            "token after its first occurrence, and the model's top guess for the next token is "
            "right at 14 of 16 places"
        ),
    ),
    Preset(
        N_("Repeated line in Chinese (induction)"),
        "我们在学习大型语言模型是如何理解文字的。\n我们在学习大型语言模型是如何理解文字的。",
        N_(
            "heads 1.0 and 1.1 are induction heads here too: on the second line the model's top "
            "guess for the next token is right at 48 of 53 places"
        ),
    ),
    Preset(
        N_("Who is who (name tracking)"),
        "When Romeo met Juliet in the garden, Juliet gave a rose to Romeo",
        N_(
            "heads 1.0 and 1.1 are induction heads: the second Juliet and Romeo attend to what "
            "followed their first mention; the model does not guess that Romeo comes back "
            "(p of “␣R” below 0.01) but, given “␣R”, completes “Romeo”"
        ),
    ),
    Preset(
        N_("Chinese sentence"),
        "我们在学习大型语言模型是如何理解文字的。",
        N_(
            "20 characters become 54 byte-level tokens; head 0.3 is a previous-token head on "
            "Chinese as well"
        ),
    ),
    Preset(
        N_("Long paragraph"),
        "Friends, Romans, countrymen, lend me your ears; I come to bury Caesar, not to praise "
        "him. The evil that men do lives after them; the good is oft interred with their "
        "bones; so let it be with Caesar. The noble Brutus hath told you Caesar was "
        "ambitious: if it were so, it was a grievous fault, and grievously hath Caesar "
        "answer'd it. Here, under leave of Brutus and the rest, for Brutus is an honourable "
        "man; so are they all, all honourable men, come I to speak in Caesar's funeral. He "
        "was my friend, faithful and just to me: but Brutus says he was ambitious; and Brutus "
        "is an honourable man. He hath brought many captives home to Rome whose ransoms did "
        "the general coffers fill: did this in Caesar seem ambitious? When that the poor have "
        "cried, Caesar hath wept: ambition should be made of sterner stuff: yet Brutus says "
        "he was ambitious; and Brutus is an honourable man. You all did see that on the "
        "Lupercal I thrice presented him a kingly crown, which he did thrice refuse: was this "
        "ambition? Yet Brutus says he was ambitious; and, sure, he is an honourable man.",
        N_(
            "348 tokens, longer than the model's 256-token context: the app keeps the first "
            "256 and says so"
        ),
    ),
    Preset(
        N_("Mixed English and Chinese"),
        "The cat sat on the mat. 你好，世界! The cat sat",
        N_(
            'heads 1.0 and 1.1 are induction heads: the second "The cat" attends to what '
            'followed the first, and the model predicts "␣sat" after it'
        ),
    ),
)
DEFAULT_TEXT = PRESETS_TEXT[0].text

SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(raw: str) -> tuple[str, list[str]]:
    """The text the app runs on, and a sentence for each thing that had to change: cut to
    MAX_TEXT_CHARS characters (before anything tokenizes it), and unpaired UTF-16 surrogates
    (which are not characters and cannot be encoded as UTF-8, URLs or JSON) replaced by U+FFFD.
    Everything else, control characters and special-token strings included, is kept as typed."""
    text, notes = raw, []
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
        notes.append(
            _(
                "Your text has {n} characters; only the first {kept} are kept (the model reads "
                "at most a few hundred tokens of them anyway)."
            ).format(n=f"{len(raw):,}", kept=f"{MAX_TEXT_CHARS:,}")
        )
    if SURROGATE.search(text):
        before = text.count("\ufffd")
        # A pair of surrogates becomes its character again; a lone one becomes U+FFFD.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        n = text.count("\ufffd") - before
        notes.append(
            ngettext(
                "Your text contained {n} unpaired surrogate code point (half of an emoji or "
                "other character, not a character by itself); shown as U+FFFD (<U+FFFD> in "
                "token labels).",
                "Your text contained {n} unpaired surrogate code points (half of an emoji or "
                "other character, not a character by itself); shown as U+FFFD (<U+FFFD> in "
                "token labels).",
                n,
            ).format(n=n)
            if n
            else _(
                "Your text contained characters written as UTF-16 surrogate pairs; they were "
                "joined into the characters they encode."
            )
        )
    return text, notes


def text_fits_url(text: str) -> bool:
    """Whether the text is short enough to travel in the page address (URL_TEXT_MAX_CHARS)."""
    return len(text) <= URL_TEXT_MAX_CHARS and len(quote(text, safe="")) <= URL_TEXT_MAX_CHARS


# Characters that start Markdown (CommonMark + GitHub's tables and strikethrough), HTML (tags,
# entities), LaTeX ($) or a Streamlit directive (:red[...], :emoji:) anywhere in a line.
_MD_INLINE = frozenset("\\`*_{}[]()<>$~|&:!")
# Characters that mean something only where they begin a line: a heading (#), a list item
# (- +) or an ordered list item ("12."). Escaped only there, so "-3" and "../x" stay as typed
# inside a sentence; together with _MD_INLINE this is the union of the two escapers that came
# before this one (the app's and engine/figures/common's).
_MD_LINE_START = re.compile(r"^([ \t]*(?:\d+(?=\.))?)([#+\-.])")
_LINE_BREAK = re.compile(r"(\r\n?|\n)")


def markdown_literal(text: str) -> str:
    """`text` escaped for st.markdown, st.caption and notices, quoted inside a sentence: every
    character that Markdown, LaTeX (`$`), HTML or Streamlit would read as markup gets a
    backslash, so a token such as `*_$x$_*` or a link value such as `<img ...>` shows as typed.
    Line-start markup (# - + "1.") is escaped at the start of every line after the first; the
    text itself is assumed to stand mid-sentence."""
    parts = _LINE_BREAK.split(text)
    for k in range(0, len(parts), 2):  # even entries are lines, odd ones the line breaks
        line = "".join("\\" + ch if ch in _MD_INLINE else ch for ch in parts[k])
        parts[k] = _MD_LINE_START.sub(r"\1\\\2", line) if k else line
    return "".join(parts)


def quoted(raw: str, limit: int | None = None) -> str:
    """Text from a user, a link or a file, cleaned (`clean_text`), cut to `limit` characters
    with "…" when longer, and escaped (`markdown_literal`) to quote inside a notice."""
    if limit is None:
        return markdown_literal(clean_text(raw)[0])
    text = clean_text(raw[: limit + 1])[0]
    return markdown_literal(clean_text(text if len(text) <= limit else text[:limit] + "…")[0])
