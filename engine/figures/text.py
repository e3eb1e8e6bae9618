"""The words of a figure (titles, axis titles, hover templates, annotations, legend names) in the
reader's language, without Streamlit.

The figure modules write every such string as an English template through `_()` (or mark a
module-level constant with `N_()` and pass it through `_()` where it is drawn), exactly as the
pages do, so Babel's extractor (babel.cfg) finds them and the Chinese catalogue translates them:

    from engine.figures.text import _
    fig.update_xaxes(title_text=_("key position"))
    title = _("Layer {layer}: every head").format(layer=layer)

Who translates: the engine imports no Streamlit and knows no session, so `_` calls a translator
that the app installs once (`set_translator`; ui/i18n.py installs its own per-session `_`, which
looks up the running session's language on every call, so one process serves two sessions in
two languages). Until one is installed (the engine's own tests, the command line), `_` returns
the English template unchanged.

Never translated: formulas, code, token text and numbers (a token label goes in as data, never
through `_`).
"""

from __future__ import annotations

from collections.abc import Callable

_translator: Callable[[str], str] | None = None


def set_translator(translate: Callable[[str], str] | None) -> None:
    """Install `translate(msgid) -> text` for every figure of this process (None: English).
    It must be safe to call from any thread and pick the caller's language itself."""
    global _translator
    _translator = translate


def _(message: str) -> str:
    """`message` (an English template) in the reader's language; itself without a translator."""
    return message if _translator is None else _translator(message)


def N_(message: str) -> str:  # noqa: N802 (gettext's conventional name)
    """Mark `message` for extraction without translating it now (translate where drawn)."""
    return message


__all__ = ["N_", "_", "set_translator"]
