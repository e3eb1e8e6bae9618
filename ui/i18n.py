"""The interface language: GNU gettext catalogues looked up per session (never process-wide).

Every user-visible string in `ui/`, `pages/` and `app.py` goes through `_()` (or `ngettext()`):

    from ui.i18n import _, N_
    st.header(_("Attention"))
    st.caption(_("Layer {layer}, head {head}").format(layer=view.layer, head=view.head))

Translate the template, then fill it: `_("Layer {layer}").format(layer=3)`, never
`_(f"Layer {layer}")` (the catalogue holds templates, and the extractor cannot read f-strings).
Strings defined at import time (tables of stages, presets, column names) are marked with
`N_()`, which returns them unchanged so that the extractor finds them, and are translated where
they are shown: `_(stage.title)`.

Why not `gettext.install()`: it binds one language for the whole process, so under Streamlit
(one process, many sessions) every visitor would see the language of whoever set it last, the
known pitfall. `_()` here asks `language()` for the running session's choice, so two sessions in
two languages are served at once (tested).

Catalogues: `assets/locales/<lang>/LC_MESSAGES/messages.po` (GNU gettext PO, English msgids),
read with Babel and compiled in memory to a `gettext.GNUTranslations` (no `.mo` file to go stale
in the repository). Extract and update with Babel's command line (configuration in
`babel.cfg`):

    pybabel extract -F babel.cfg -o assets/locales/messages.pot \
        --no-location --omit-header --sort-output .
    pybabel update -i assets/locales/messages.pot -d assets/locales \
        --no-fuzzy-matching --omit-header

Code outside a Streamlit session (tests, the command line) gets English unless `use_language`
is given a language.
"""

from __future__ import annotations

import gettext
import io
import threading
from contextlib import contextmanager
from functools import cache
from pathlib import Path

LOCALES_DIR = Path(__file__).resolve().parent.parent / "assets" / "locales"
DOMAIN = "messages"
SOURCE_LANGUAGE = "en"
LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}  # code -> its own name
LANG_KEY = "lang"  # session_state key (shared, mirrored in the `lang` query parameter)

_local = threading.local()  # `use_language` outside Streamlit (tests, scripts)


def normalize_language(raw: object) -> str | None:
    """The supported language code for `raw` ("zh-CN", "zh_Hans", "en-US", "ZH" ...), or None.

    Matches on the primary subtag (BCP 47 / POSIX locale names); None for anything unsupported,
    empty or not a string."""
    if not isinstance(raw, str):
        return None
    primary = raw.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in LANGUAGES else None


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of `lang` (a `gettext.GNUTranslations`), cached per process.

    English, and any language without a catalogue file, get `NullTranslations` (msgid returned).
    Raises ValueError for a code not in LANGUAGES. Fuzzy entries are not used (gettext's rule)."""
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}; known: {', '.join(LANGUAGES)}")
    po = LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if lang == SOURCE_LANGUAGE or not po.is_file():
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def _session_language() -> str | None:
    """The running Streamlit session's language, or None outside a session."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        if get_script_run_ctx(suppress_warning=True) is None:
            return None
        import streamlit as st

        return normalize_language(st.session_state.get(LANG_KEY))
    except Exception:  # no Streamlit runtime (bare import in a script): English
        return None


def language() -> str:
    """The language of the caller: `use_language`'s if one is active in this thread, else the
    Streamlit session's `lang` key, else English."""
    return getattr(_local, "lang", None) or _session_language() or SOURCE_LANGUAGE


@contextmanager
def use_language(lang: str):
    """Within the block, this thread's `_()` uses `lang` (for tests and the command line)."""
    code = normalize_language(lang)
    if code is None:
        raise ValueError(f"unsupported language {lang!r}; known: {', '.join(LANGUAGES)}")
    previous = getattr(_local, "lang", None)
    _local.lang = code
    try:
        yield
    finally:
        _local.lang = previous


def _(message: str) -> str:
    """`message` (an English msgid) in the caller's language; itself when not translated."""
    return translations(language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of `singular`/`plural` for the count `n` in the caller's language."""
    return translations(language()).ngettext(singular, plural, n)


def N_(message: str) -> str:  # noqa: N802 (gettext's conventional name)
    """Mark `message` for extraction without translating it now (translate where shown)."""
    return message
