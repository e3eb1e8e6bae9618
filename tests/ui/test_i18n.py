"""ui.i18n: per-caller catalogues (no process-wide gettext.install)."""

from __future__ import annotations

import threading

import pytest

from ui.i18n import _, language, normalize_language, translations, use_language


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
