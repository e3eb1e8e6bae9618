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
in the repository). One command keeps them in step with the code (configuration in
`babel.cfg`):

    .venv/bin/python -m ui.i18n            # extract, update every catalogue, list what is left

It runs Babel's extractor into `assets/locales/messages.pot` (sorted, no line numbers, so the
file only changes when a string does), merges that template into every language's
`messages.po` (new msgids get an empty msgstr, removed ones become obsolete `#~` entries) and
prints every msgid that still has no translation; `--check` changes nothing and exits 1 when
the template is out of date or a translation is missing (tests/ui/test_i18n.py asserts both).
The same steps with Babel's command line:

    pybabel extract -F babel.cfg -o assets/locales/messages.pot \
        --no-location --omit-header --sort-output .
    pybabel update -i assets/locales/messages.pot -d assets/locales \
        --no-fuzzy-matching --omit-header

Figures: engine/figures must not import this module (the engine imports no Streamlit), so it has
its own `_` (`engine.figures.text`), which calls the translator installed here at import:
this module's `_`, per session like everything else.

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

from engine.figures import text as figure_text

LOCALES_DIR = Path(__file__).resolve().parent.parent / "assets" / "locales"
DOMAIN = "messages"
SOURCE_LANGUAGE = "en"
LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}  # code -> its own name
LANG_KEY = "lang"  # session_state key (shared, mirrored in the `lang` query parameter)
POT_FILE = LOCALES_DIR / f"{DOMAIN}.pot"
BABEL_CFG = LOCALES_DIR.parent.parent / "babel.cfg"

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


def _adopt_language(widget_key: str) -> None:
    import streamlit as st

    chosen = st.session_state.get(widget_key)
    if chosen in LANGUAGES:  # clicking the chosen language again deselects it: keep it
        st.session_state[LANG_KEY] = chosen


def language_control(where, widget_key: str, short: bool = False) -> None:
    """The interface language switch (a segmented control) in `where` (the sidebar, or a
    column of the lecture-mode bar), bound to the session's `lang`; its label, hidden, is in
    both languages. short: "EN" / "中文" instead of each language's full name."""
    import streamlit as st

    st.session_state[widget_key] = st.session_state[LANG_KEY]
    names = {"en": "EN", "zh": "中文"} if short else LANGUAGES
    where.segmented_control(
        "Language · 语言",
        list(LANGUAGES),
        key=widget_key,
        format_func=lambda code: names.get(code, LANGUAGES[code]),
        on_change=_adopt_language,
        args=(widget_key,),
        label_visibility="collapsed",
    )


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


figure_text.set_translator(_)  # engine/figures' `_` looks up the caller's session, like ours


def browser_language() -> str | None:
    """The supported language of the visitor's browser (`st.context.locale`, navigator.language,
    Streamlit >= 1.46), or None (unsupported, not sent, outside a session)."""
    try:
        import streamlit as st

        return normalize_language(getattr(st.context, "locale", None))
    except Exception:  # no session or an older Streamlit: no browser language
        return None


def po_path(lang: str) -> Path:
    """The PO catalogue file of `lang`."""
    return LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def extract_template():
    """A fresh Babel `Catalog` of every msgid in the code, as `pybabel extract -F babel.cfg`
    finds them (keywords `_`, `N_`, `ngettext`, `gettext`; `engine.figures.text._` included)."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    root = BABEL_CFG.parent
    with BABEL_CFG.open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    catalog = Catalog(project="inside-gpt", charset="utf-8")
    for _path, _lineno, message, comments, context in extract_from_dir(
        str(root), method_map, options_map, strip_comment_tags=True
    ):
        catalog.add(message, None, auto_comments=comments, context=context)
    return catalog


def _pot_text(catalog) -> bytes:
    from babel.messages.pofile import write_po

    buf = io.BytesIO()
    write_po(buf, catalog, omit_header=True, no_location=True, sort_output=True, width=100)
    return buf.getvalue()


def missing_translations(lang: str, template=None) -> list[str]:
    """The msgids of the template (default: a fresh extraction) that `lang`'s catalogue does not
    translate (absent, empty or fuzzy; for a plural, any empty form)."""
    from babel.messages.pofile import read_po

    template = template if template is not None else extract_template()
    with po_path(lang).open("rb") as f:
        catalog = read_po(f, locale=lang)
    missing = []
    for message in template:
        if not message.id:
            continue
        entry = catalog.get(message.id, context=message.context)
        strings = entry.string if entry is not None else ""
        strings = strings if isinstance(strings, (list, tuple)) else (strings,)
        if entry is None or entry.fuzzy or not all(strings):
            missing.append(message.id if isinstance(message.id, str) else message.id[0])
    return missing


def update_catalogues(check: bool = False) -> int:
    """Extract, merge into every language's catalogue and report (`python -m ui.i18n`). With
    `check`, write nothing: exit status 1 when the template or a catalogue is out of date or a
    translation is missing. Returns the exit status."""
    from babel.messages.pofile import read_po, write_po

    template = extract_template()
    fresh = _pot_text(template)
    status = 0
    stale = not POT_FILE.is_file() or POT_FILE.read_bytes() != fresh
    if stale and check:
        print(f"{POT_FILE.name} is out of date: run `python -m ui.i18n`")
        status = 1
    elif stale:
        POT_FILE.write_bytes(fresh)
        print(f"wrote {POT_FILE}")
    for lang in LANGUAGES:
        if lang == SOURCE_LANGUAGE:
            continue
        path = po_path(lang)
        with path.open("rb") as f:
            catalog = read_po(f, locale=lang)
        created = catalog.creation_date
        catalog.update(template, no_fuzzy_matching=True)
        catalog.creation_date = created  # the merge alone is no new version of the file
        buf = io.BytesIO()
        write_po(
            buf, catalog, no_location=True, sort_output=True, width=100, include_previous=False
        )
        if buf.getvalue() != path.read_bytes():
            if check:
                print(f"{path} is out of date: run `python -m ui.i18n`")
                status = 1
            else:
                path.write_bytes(buf.getvalue())
                print(f"updated {path}")
        missing = missing_translations(lang, template)
        for msgid in missing:
            print(f"{lang}: untranslated: {msgid!r}")
        print(f"{lang}: {len(template) - len(missing)} of {len(template)} messages translated")
        if missing and check:
            status = 1
    return status


if __name__ == "__main__":
    import sys

    sys.exit(update_catalogues(check="--check" in sys.argv[1:]))
