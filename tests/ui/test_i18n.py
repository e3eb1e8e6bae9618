"""ui.i18n: per-caller catalogues (no process-wide gettext.install)."""

from __future__ import annotations

import re
import threading

import pytest
from babel.messages.pofile import read_po

from engine.figures import text as figure_text
from ui.i18n import (
    LANGUAGES,
    SOURCE_LANGUAGE,
    _,
    extract_template,
    language,
    missing_translations,
    normalize_language,
    po_path,
    translations,
    update_catalogues,
    use_language,
)


def test_english_is_the_source_and_chinese_comes_from_the_catalogue():
    assert language() == "en"
    assert _("Attention") == "Attention"
    with use_language("zh"):
        assert _("Attention") == "注意力"
        assert _("a string nobody translated") == "a string nobody translated"
    assert _("Attention") == "Attention"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("zh-CN", "zh"),
        ("zh_Hans_CN", "zh"),
        ("EN-us", "en"),
        ("fr", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_language(raw, code):
    assert normalize_language(raw) == code


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="unsupported language"):
        translations("xx")
    with pytest.raises(ValueError, match="unsupported language"), use_language("xx"):
        pass


def test_two_threads_in_two_languages_at_once():
    barrier = threading.Barrier(2)
    seen: dict[str, list[str]] = {}

    def worker(lang: str) -> None:
        with use_language(lang):
            out = []
            for _i in range(200):
                barrier.wait()  # both threads inside their block at the same moment
                out.append(_("Attention"))
            seen[lang] = out

    threads = [threading.Thread(target=worker, args=(lang,)) for lang in ("en", "zh")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(seen["en"]) == {"Attention"}
    assert set(seen["zh"]) == {"注意力"}


# --- the catalogue --------------------------------------------------------------------------

FIELD = re.compile(r"(?<!%)\{([A-Za-z_]\w*)[^}]*\}")  # str.format fields, not plotly's %{x}
PLOTLY = re.compile(r"%\{[^}]*\}")
TAG = re.compile(r"</?[a-z]+>")  # <br>, <extra>, </extra>


@pytest.fixture(scope="module")
def template():
    return extract_template()


def test_extraction_is_up_to_date(capsys) -> None:
    """Running the extractor and the merge changes nothing: messages.pot and every PO file
    are what `python -m ui.i18n` would write (run it after changing a string)."""
    status = update_catalogues(check=True)
    assert status == 0, capsys.readouterr().out


@pytest.mark.parametrize("lang", [code for code in LANGUAGES if code != SOURCE_LANGUAGE])
def test_every_extracted_msgid_has_a_translation(template, lang: str) -> None:
    assert len(template) > 400  # the extractor found the app's strings (and the figures')
    assert "Logit lens: each layer's best guess of the next token (ln_f applied per layer)" in [
        m.id for m in template
    ]  # a string that only engine/figures holds
    missing = missing_translations(lang, template)
    assert not missing, (
        f"{len(missing)} msgid(s) without a {lang} translation (run `python -m ui.i18n`, then "
        f"translate in {po_path(lang)}):\n" + "\n".join(repr(m) for m in missing)
    )


@pytest.mark.parametrize("lang", [code for code in LANGUAGES if code != SOURCE_LANGUAGE])
def test_translations_keep_every_placeholder(lang: str) -> None:
    """A translation with a {field} the code does not fill would raise KeyError on the page; a
    lost %{y} or <extra> breaks a hover. Each must keep the msgid's fields, placeholders and
    tags."""
    with po_path(lang).open("rb") as f:
        catalog = read_po(f, locale=lang)
    bad = []
    for message in catalog:
        if not message.id or not message.string:
            continue
        source = message.id if isinstance(message.id, str) else message.id[-1]
        targets = message.string if isinstance(message.string, tuple) else (message.string,)
        for target in targets:
            for rx in (FIELD, PLOTLY, TAG):
                if sorted(set(rx.findall(source))) != sorted(set(rx.findall(target))):
                    bad.append(f"{source!r} -> {target!r}")
    assert not bad, "\n".join(bad)


def test_figures_translate_through_the_installed_translator() -> None:
    """engine/figures imports no Streamlit: its `_` calls the translator ui.i18n installs,
    which answers in the caller's language (and English without a translator)."""
    assert figure_text._translator is _
    with use_language("zh"):
        assert figure_text._("Bytes per token") == "每个词元的字节数"
    assert figure_text._("Bytes per token") == "Bytes per token"
    figure_text.set_translator(None)
    try:
        with use_language("zh"):
            assert figure_text._("Bytes per token") == "Bytes per token"
    finally:
        figure_text.set_translator(_)


def test_a_figure_is_drawn_in_the_callers_language(tiny_trace) -> None:
    from engine.figures.tokens import bytes_per_token_figure

    strs, data = tiny_trace.token_strs, [s.encode() for s in tiny_trace.token_strs]
    english = bytes_per_token_figure(strs, data)
    with use_language("zh"):
        chinese = bytes_per_token_figure(strs, data)
    assert english.layout.title.text == "Bytes per token"
    assert chinese.layout.title.text == "每个词元的字节数"
    assert chinese.layout.yaxis.title.text == "UTF-8 字节数"
    assert "Noto Sans CJK SC" in chinese.layout.font.family
    assert chinese.data[0].x == english.data[0].x  # token text is never translated
