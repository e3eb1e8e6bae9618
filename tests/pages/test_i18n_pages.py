"""Every page in Chinese (lang=zh) on a Chinese text: the rendered element tree (markdown,
captions, titles, widget labels and help, table headers, notices, figure layout text) holds no
English sentence outside formulas, code and token text; two sessions in two languages at once;
the language control and the `lang` query parameter; token labels of a character split into
three byte tokens on every axis."""

from __future__ import annotations

import json
import re
import threading

import pytest

from tests.support import new_app, open_page
from ui.stages import STAGES

ZH_TEXT = "我们在学习大型语言模型是如何理解文字的。注意力头"
PAGES = ["app.py", *(s.path for s in STAGES)]

# Three or more English words in a row: a sentence or a phrase a reader has to understand.
ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'’]+(?:[ \-][A-Za-z][A-Za-z'’]+){2,}")
# What may stay English: formulas and code (`...`, $...$), plotly's placeholders and tags,
# quoted token text (“...”), a Python exception as a program printed it, proper names.
STRIP = [
    re.compile(r"`[^`]*`"),
    re.compile(r"\$[^$]*\$"),
    re.compile(r"%\{[^}]*\}"),
    re.compile(r"<[^>]*>"),
    re.compile(r"“[^”]*”"),
    # a program's own output, shown as run (numpy's error on the article's example line)
    re.compile(r"\b[A-Z]\w*(?:Error|Exception): .*"),
]
# A product, a citation, the test model's source field (data, as the card writes it).
NAMES = ("Hugging Face Hub", "tiny random model")
CITATION = re.compile(r"\b[A-Z][a-z]+ et al\b")  # "Olsson et al. 2022", in any language
UNICODE_NAME = re.compile(r"\b[A-Z][A-Z0-9 \-]+\b")  # Unicode's character names are English


def english_runs(text: str) -> list[str]:
    """The runs of three or more English words left in `text` once formulas, code, plotly
    placeholders, tags, quoted tokens and proper names are taken out."""
    for rx in STRIP:
        text = rx.sub(" ", text)
    for name in NAMES:
        text = text.replace(name, " ")
    text = CITATION.sub(" ", text)
    text = UNICODE_NAME.sub(" ", text)
    return ENGLISH_RUN.findall(text)


def _figure_text(spec: dict) -> list[str]:
    """Every piece of layout text of a plotly figure: titles, axis and colour-bar titles,
    annotations, trace names and hover templates."""
    out: list[str] = []
    layout = spec.get("layout", {})
    title = layout.get("title", {})
    out.append(title.get("text", "") if isinstance(title, dict) else str(title))
    for key, value in layout.items():
        if key.startswith(("xaxis", "yaxis")) and isinstance(value, dict):
            out.append((value.get("title") or {}).get("text", ""))
    out += [a.get("text", "") for a in layout.get("annotations", [])]
    for trace in spec.get("data", []):
        out += [str(trace.get("name", "")), str(trace.get("hovertemplate", ""))]
        out.append(((trace.get("colorbar") or {}).get("title") or {}).get("text", ""))
    return out


def rendered_text(at) -> list[str]:
    """The text a visitor reads on the page AppTest ran (formulas and code left out)."""
    out: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "info",
        "warning",
        "error",
        "success",
    ):
        out += [str(e.value) for e in getattr(at, kind)]
    for widget in (
        "selectbox",
        "radio",
        "slider",
        "number_input",
        "text_area",
        "text_input",
        "button",
        "toggle",
        "checkbox",
    ):
        for e in getattr(at, widget):
            out += [str(e.label), str(e.help or "")]
            if widget in ("selectbox", "radio"):
                out += [str(o) for o in e.options]
    out += [str(e.label) for e in at.metric]
    out += [str(e.label) for e in at.tabs]
    out += [str(e.label) for e in at.expander]
    out += [e.proto.label for e in at.get("page_link")]
    for frame in at.dataframe:
        value = frame.value
        data = value.data if hasattr(value, "data") else value  # a Styler or a DataFrame
        out += [str(c) for c in data.columns]
        for column in data.columns:
            out += [v for v in data[column].tolist() if isinstance(v, str)]
    for chart in at.get("plotly_chart"):
        out += _figure_text(json.loads(chart.proto.spec))
    return [t for t in out if t]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_in_chinese_has_no_english_sentence(page: str) -> None:
    at = open_page(page, ZH_TEXT, lang="zh")
    texts = rendered_text(at)
    assert any("词元" in t for t in texts)  # the page is in Chinese at all
    found = {run: t for t in texts for run in english_runs(t)}
    assert not found, "English left on the page in lang=zh:\n" + "\n".join(
        f"{run!r} in {t[:120]!r}" for run, t in found.items()
    )
    assert at.query_params["lang"] == "zh"


def test_the_detector_finds_an_english_sentence_and_spares_formulas_and_tokens() -> None:
    assert english_runs("Each token asks a question: its query") == ["Each token asks"]
    assert english_runs("公式 `x = x + attn(ln_1(x))` 与 $\\mathrm{softmax}$") == []
    assert english_runs("词元 “The cat sat”，%{x} 个掩码") == []


def test_the_language_control_switches_and_is_kept_in_the_link() -> None:
    at = new_app({"text": ZH_TEXT, "lang": "en"})
    at.run()
    assert at.title[0].value.endswith("Inside GPT")
    assert at.query_params["lang"] == "en"
    assert "The model" in [h.value for h in at.header]
    control = at.get("button_group")[0]  # the sidebar's language control
    assert control.label == "Language · 语言" and control.value == "en"
    control.set_value("zh").run()
    assert "模型" in [h.value for h in at.header]
    assert at.query_params["lang"] == "zh"


def test_an_unknown_language_in_a_link_gets_a_notice_and_english() -> None:
    at = open_page("app.py", ZH_TEXT, lang="xx")
    assert any("“xx”" in w.value for w in at.warning)
    assert at.query_params["lang"] == "en"


def test_two_sessions_in_two_languages_at_once(concurrent_apptest: None) -> None:
    """Two AppTest sessions run the Attention page at the same moment, one in each language:
    each sees only its own language (no process-wide gettext.install)."""
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(lang: str) -> None:
        try:
            at = new_app({"text": ZH_TEXT, "lang": lang})
            at.switch_page("pages/3_Attention.py")
            barrier.wait()
            at.run()
            results[lang] = [t.value for t in at.title] + [s.value for s in at.subheader]
        except BaseException as err:  # handed to the test's thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(lang,)) for lang in ("en", "zh")]
    for t in threads:  # AppTest runs at once: the `concurrent_apptest` fixture (tests/conftest.py)
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results["en"][0].startswith("3 · Multi-head self-attention")
    assert results["zh"][0].startswith("3 · 多头自注意力")
    assert not any("多头" in t or "注意力头" in t for t in results["en"])
    assert not any("attention" in t.lower() for t in results["zh"])


# --- token labels: a character split into byte tokens ------------------------------------------

SPLIT_TEXT = "注意 the cat"  # in the tiny model's tokenizer 注 and 意 are three byte tokens each
LABELS = ["注 1/3", "注 2/3", "注 3/3", "意 1/3", "意 2/3", "意 3/3"]
TOKEN_PAGES = [s.path for s in STAGES if s.id not in ("generate",)]


def _axes(spec: dict) -> list[list[str]]:
    """Every category axis of a figure that is a token axis: x or y arrays of strings that
    start with a position ("0:...")."""
    out = []
    for trace in spec.get("data", []):
        for key in ("x", "y"):
            values = trace.get(key)
            if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
                if any(v.startswith("0:") for v in values):
                    out.append(values)
    return out


@pytest.mark.parametrize(("lang", "pages"), [("zh", TOKEN_PAGES), ("en", ["pages/3_Attention.py"])])
def test_a_character_split_into_three_byte_tokens_is_named_on_every_axis(
    lang: str, pages: list[str]
) -> None:
    """Labels are language-neutral: every page in Chinese, one in English."""
    for page in pages:
        at = open_page(page, SPLIT_TEXT, lang=lang)
        axes = [
            axis
            for c in at.get("plotly_chart")
            if not c.proto.id.endswith("intervene_patch_resid")  # the two prompts' tokens
            for axis in _axes(json.loads(c.proto.spec))
        ]
        pickers = [
            [str(o) for o in s.options]
            for s in at.selectbox
            if s.key != "tokens_word"  # the pre-token picker lists words, not tokens
            and any(str(o).startswith("0:") for o in s.options)
        ]
        assert axes or pickers, page
        for labels in axes + pickers:
            shown = {int(v.split(":", 1)[0]): v.split(":", 1)[1] for v in labels if ":" in v}
            for pos in set(shown) & set(range(6)):
                assert shown[pos].strip().startswith(LABELS[pos]), (page, labels)
            assert not any("E6&gt;" in v or "<E6>" in v for v in labels), (page, labels)
    tokens_page = open_page("pages/1_Tokens.py", SPLIT_TEXT, lang=lang)
    table = tokens_page.dataframe[0].value
    assert list(table.iloc[:6, 2]) == LABELS  # the "token" column of "Every token"


def test_without_a_lang_in_the_link_the_browser_language_is_used(monkeypatch) -> None:
    """`st.context.locale` (navigator.language) picks the first language of a session; AppTest
    sends none, so the lookup is replaced here by what a Chinese browser reports."""
    import streamlit as st

    import ui.i18n

    real = st.context

    class Context:  # the real context, with the locale a Chinese browser sends
        locale = "zh-CN"

        def __getattr__(self, name: str):
            return getattr(real, name)

    monkeypatch.setattr(st, "context", Context())
    assert ui.i18n.browser_language() == "zh"
    at = open_page("app.py", ZH_TEXT)
    assert "模型" in [h.value for h in at.header]
    assert at.query_params["lang"] == "zh"
    monkeypatch.setattr(Context, "locale", "fr-FR")
    at = open_page("app.py", ZH_TEXT)
    assert "The model" in [h.value for h in at.header]
