"""Hostile texts through every page (AppTest, tiny test model): empty, a megabyte paste,
special-token strings, control characters, a lone surrogate, right-to-left marks, emoji
sequences, four scripts, HTML, Markdown and LaTeX. Each run must end without an exception, with
the text kept (in session state and in the text box), with a notice for anything the app had to
change, and without user text ever becoming markup (HTML tags, plotly tags, LaTeX).

The helpers here (`HOSTILE`, `markup_problems`) are reused by the fuzz and browser tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.checkpoints import LoadedModel
from engine.config import PRESETS
from tests import support
from ui.settings import MAX_TEXT_CHARS
from ui.stages import STAGES
from ui.text import clean_text

# The app on the tiny test model with no operator settings (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("tiny_app")

ROOT = Path(__file__).resolve().parents[2]
N_CTX = PRESETS["tiny"].n_ctx
PAGES = ["app.py", *[s.path for s in STAGES if (ROOT / s.path).is_file()]]

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|endofprompt|>",
)
# (name, text): at least 25 hostile inputs. Texts meant to exercise token labels in Markdown end
# with the hostile token, because the pages quote the selected token, which follows the last one.
HOSTILE: tuple[tuple[str, str], ...] = (
    ("empty", ""),
    ("whitespace only", "   \n\t \u3000\u00a0 \n"),
    ("one character", "a"),
    ("a megabyte paste", ("The quick brown fox jumps over the lazy dog. " * 22_300)[:1_000_000]),
    ("longer than the context", "word " * 200),
    *((f"special token {tok}", f"before {tok} after {tok}") for tok in SPECIAL_TOKENS),
    ("all special tokens", "".join(SPECIAL_TOKENS)),
    ("NUL and control characters", "a\x00b\x01c\x07d\x08e\x0bf\x0cg\x7fh\x85i\x9bj"),
    ("ANSI escapes", "\x1b[31mred\x1b[0m \x1b[2J\x1b[H\x1b]0;title\x07 \x1b[1;32mgreen"),
    ("lone surrogates", "high \ud800 and low \udc00 alone"),
    ("right-to-left marks", "abc \u202eevil.exe\u202c \u200f\u200e \u2067isolate\u2069 \u061c"),
    ("zero-width joiners", "a\u200db\u200cc\u200bd\ufeffe\u2060f"),
    ("combining marks", "e\u0301 n\u0303 Z\u0351\u0352\u0353\u0354\u0355\u0356\u0357\u0358"),
    ("emoji ZWJ sequences", "👨‍👩‍👧‍👦 🏳️‍🌈 👍🏽 🧑🏿‍🚀 ❤️‍🔥"),
    ("Chinese", "我们在学习大型语言模型是如何理解文字的。"),
    ("Japanese", "こんにちは、世界。カタカナとひらがな。"),
    ("Arabic", "مرحبا بالعالم، هذا نص عربي."),
    ("Hindi", "नमस्ते दुनिया, यह हिंदी है।"),
    ("CRLF and tabs", "line one\r\nline two\r\n\tindented\ttab\r\n\r\n"),
    ("line and paragraph separators", "one\u2028two\u2029three\x1cfour\x1dfive"),
    ("a 10,000-character word", ("supercalifragilistic" * 500)[:10_000]),
    ("HTML", "<b>bold</b> <i>it</i> <a href='javascript:alert(1)'>link</a> <br> &amp; &lt;"),
    ("script tag", "<script>alert('x')</script> after the script</"),
    ("img onerror", '<img src=x onerror=alert(1)> <svg onload=alert(2)> <iframe src="x">'),
    ("Markdown", "**bold** _it_ `code` [link](http://example.com) # h\n> q\n- item **"),
    ("LaTeX", r"$x^2$ and $$\int_0^1 f$$ \(a\) costs $5 and $"),
    ("byte-like labels", "<E4> <U+FFFD> \ufffd <br> <extra></extra> %{x} {0}"),
)


# --- what may reach the page as markup ------------------------------------------------------

# Tags the app itself writes into unsafe_allow_html / st.html bodies (token chips, the flowchart
# CSS, Generate's highlighted text); anything else there came from a user.
APP_HTML_TAGS = {"div", "span", "style", "mark"}
APP_HTML_ATTRS = {"style", "title"}
# Tags the app's plotly strings use (hover templates, titles); plotly renders these as markup.
APP_PLOTLY_TAGS = {"br", "extra", "/extra", "b", "/b", "i", "/i", "sup", "/sup", "sub", "/sub"}
_PLOTLY_TAG = re.compile(r"<([^<>]*)>")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))

    handle_startendtag = handle_starttag


def html_problems(body: str) -> list[str]:
    """Tags and attributes in an HTML body that the app does not write itself."""
    parser = _Tags()
    parser.feed(body)
    parser.close()
    problems = []
    for tag, attrs in parser.found:
        if tag not in APP_HTML_TAGS:
            problems.append(f"tag <{tag}>")
        for name, value in attrs:
            lowered = (value or "").lower()
            if name not in APP_HTML_ATTRS or "javascript:" in lowered or "url(" in lowered:
                problems.append(f"attribute {name}={value!r} on <{tag}>")
    return problems


def strings_in(obj: object) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if key != "bdata":
                yield from strings_in(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from strings_in(value)


def _drawn_strings(spec: dict) -> Iterator[str]:
    """Every string of a plotly spec that the browser can draw. A trace's `name` is drawn only
    in a legend or in the hover box's "extra" part: a lone trace without a legend whose hover
    template hides the extra (`<extra></extra>`) never shows it."""
    data = spec.get("data", [])
    legend = spec.get("layout", {}).get("showlegend")
    for trace in data:
        hidden_name = (
            len(data) == 1
            and legend is not True
            and "<extra></extra>" in str(trace.get("hovertemplate", ""))
        )
        for key, value in trace.items():
            if not (key == "name" and hidden_name):
                yield from strings_in(value)
    yield from strings_in({k: v for k, v in spec.items() if k != "data"})


def plotly_problems(spec: dict) -> list[str]:
    """Plotly reads `<...>` in any text as a tag and `$...$` as LaTeX: user text must arrive
    escaped (`engine.figures.common.plotly_text`)."""
    problems = []
    for s in _drawn_strings(spec):
        for match in _PLOTLY_TAG.finditer(s):
            if match.group(1).strip().lower() not in APP_PLOTLY_TAGS:
                problems.append(f"plotly tag {match.group(0)!r} in {s[:120]!r}")
        if len(s) >= 2 and s.startswith("$") and s.endswith("$"):
            problems.append(f"plotly LaTeX {s[:120]!r}")
    return problems


def markup_problems(at: AppTest) -> list[str]:
    """Everything on the page (main area and sidebar) where user text became markup."""
    problems = []
    for el in at.get("html"):
        problems += [f"st.html: {p}" for p in html_problems(el.proto.body)]
    markdown_like = [*at.get("markdown"), *at.get("caption")]
    markdown_like += [*at.warning, *at.info, *at.error, *at.get("success")]
    for el in markdown_like:
        body = el.proto.body
        if getattr(el.proto, "allow_html", False):
            problems += [f"unsafe_allow_html: {p}" for p in html_problems(body)]
        elif _UNESCAPED_DOLLAR.search(body):  # the app's own prose never uses $: LaTeX
            problems.append(f"unescaped $ (LaTeX) in Markdown: {body[:160]!r}")
    for chart in at.get("plotly_chart"):
        problems += plotly_problems(json.loads(chart.proto.spec))
    return problems


# --- running the pages ----------------------------------------------------------------------


def open_app(page: str, text: str = "hello world") -> AppTest:
    return support.open_page(page, text, timeout=120)


def enter_text(at: AppTest, text: str) -> None:
    """Type `text` into the sidebar box and run. A text that is not valid UTF-8 (a lone
    surrogate) cannot travel through a widget or a link (both are UTF-8: a browser's
    `%ED%A0%80` arrives as U+FFFD, see the browser test); code can still set it (as Generate
    sets texts), so it goes into session state."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        at.session_state["text"] = text
        at.run()
        return
    at.text_area(key="_w_text").input(text).run()


def check_run(at: AppTest, text: str, loaded: LoadedModel, where: str) -> None:
    """One run after `text` was entered: no exception, text kept, notices, no markup."""
    assert not at.exception, (where, [e.value for e in at.exception])
    expected, notes = clean_text(text)
    assert at.session_state["text"] == expected, where
    assert at.text_area(key="_w_text").value == expected, where
    warnings = [w.value for w in at.warning]
    for note in notes:
        assert note in warnings, (where, note, warnings)
    n_tokens = len(loaded.tokenizer.encode(expected))
    if not expected.strip():
        assert any("Type a text" in i.value for i in at.info), where
    elif n_tokens > N_CTX:
        cut = [w for w in warnings if f"Your text has {n_tokens} tokens" in w]
        assert cut and f"first {N_CTX} are shown" in cut[0], (where, warnings)
        assert f"last {n_tokens - N_CTX} are left out" in cut[0], (where, warnings)
        assert at.session_state["_n_tokens"] == N_CTX, where
    else:
        assert at.session_state["_n_tokens"] == n_tokens, where
    if not notes and n_tokens <= N_CTX:
        assert not warnings, (where, warnings)  # nothing changed: no notice either
    assert not at.error, (where, [e.value for e in at.error])
    problems = markup_problems(at)
    assert not problems, (where, problems)


def test_there_are_at_least_25_hostile_texts() -> None:
    assert len(HOSTILE) >= 25
    assert len({name for name, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_hostile_text_on_every_page(page: str, tiny_loaded: LoadedModel) -> None:
    at = open_app(page)
    for name, text in HOSTILE:
        enter_text(at, text)
        check_run(at, text, tiny_loaded, f"{page}: {name}")


# --- the cleaning itself --------------------------------------------------------------------


def test_clean_text_cuts_long_texts_and_says_so() -> None:
    text, notes = clean_text("ab" * MAX_TEXT_CHARS)
    assert text == ("ab" * MAX_TEXT_CHARS)[:MAX_TEXT_CHARS]
    assert notes == [
        f"Your text has {2 * MAX_TEXT_CHARS:,} characters; only the first "
        f"{MAX_TEXT_CHARS:,} are kept (the model reads at most a few hundred tokens of them "
        "anyway)."
    ]


def test_clean_text_replaces_lone_surrogates_and_rejoins_pairs() -> None:
    text, notes = clean_text("a\ud83d\ude00b\ud800c\udfffd\ufffd")
    assert text == "a😀b\ufffdc\ufffdd\ufffd"
    assert len(notes) == 1 and notes[0].startswith("Your text contained 2 unpaired surrogate")
    text.encode("utf-8")  # encodable now (URLs, JSON, protobuf)


def test_clean_text_keeps_everything_else_unchanged() -> None:
    for name, text in HOSTILE:
        if name in ("a megabyte paste", "lone surrogates"):
            continue
        assert clean_text(text) == (text, []), name


def test_a_script_tag_in_generated_history_is_escaped(tiny_loaded: LoadedModel) -> None:
    """Generate's highlighted history is the one st.html body that holds the user's text."""
    text = "<script>alert(1)</script><img src=x onerror=alert(1)>"
    at = open_app("pages/9_Generate.py", text)
    at.button(key="generate_sample").click().run()
    assert not at.exception, [e.value for e in at.exception]
    bodies = [el.proto.body for el in at.get("html")]
    history = [b for b in bodies if "<mark>" in b]
    assert history, bodies
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in history[0]
    assert not markup_problems(at)
    assert at.session_state["text"].startswith(text)


def test_a_long_pasted_word_gets_a_message_not_a_huge_merge_figure() -> None:
    """A 241-byte pre-token (with its space) has 131 merges: drawn, it was 23,000 boxes and
    6,400 pixels tall."""
    word = "supercalifragilistic" * 12
    at = open_app("pages/1_Tokens.py", f"a {word} cat")
    words = at.selectbox(key="tokens_word")
    assert not words.value or "supercali" not in words.format_func(words.value)  # a short word
    long_word = next(k for k, label in enumerate(words.options) if "supercali" in label)
    words.set_value(long_word).run()
    assert not at.exception
    assert any("241 bytes long, too long to draw" in i.value for i in at.info), at.info
    assert not [c for c in at.get("plotly_chart") if c.key == "tokens_bpe_chart"]
