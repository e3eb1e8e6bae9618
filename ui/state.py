"""Shared state: the values every page shares (non-widget session_state keys), their mirror in
the query parameters (a URL reproduces a view), and `View`, what the frame hands a page.

Shared keys: "text", "ids", "model_id", "layer", "head", "pos" (SHARED_KEYS). Widgets use their
own keys (prefixed "_w_") and copy into the shared keys; session state holds only strings and
numbers there. "ids" is the token ids the text came from when the app made it from ids (Generate),
as "id,id,...": a token that ends inside a character decodes to U+FFFD, and re-encoding the text
would analyse other tokens, so pages analyse these ids while they still decode to the text
(`shared_ids`). "lang" is the interface language (`ui.i18n`). Query parameters: text, ids,
model, layer, head, pos, lang, and `open` (the page's open lazy sections: `open_params`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from engine.checkpoints import LoadedModel
from engine.trace import Trace
from ui.i18n import LANG_KEY, LANGUAGES, SOURCE_LANGUAGE, _, browser_language, normalize_language
from ui.lecture import present_params
from ui.models import SNAPSHOT_PREFIX, canonical_model_id, model_offered, snapshot_manifest
from ui.settings import MAX_TEXT_CHARS
from ui.stages import STAGE_BY_ID
from ui.text import DEFAULT_TEXT, SURROGATE, clean_text, quoted, text_fits_url

SHARED_KEYS = ("text", "ids", "model_id", "layer", "head", "pos", "lang")
_QP_NAMES = {
    "lang": "lang",  # first: notices about the other parameters come in the link's language
    "text": "text",
    "ids": "ids",
    "model_id": "model",
    "layer": "layer",
    "head": "head",
    "pos": "pos",
}
MAX_IDS_CHARS = 20_000  # an "ids" value longer than this is ignored
_QP_WRITTEN = "_qp_written"
_TEXT_NOTES = "_text_notes"  # {"text": the cleaned text, "notes": what cleaning changed}


@dataclass(frozen=True)
class View:
    """What a stage page draws: one Trace and the shared selection, clamped to valid ranges."""

    trace: Trace
    loaded: LoadedModel
    model_id: str
    stage: str
    layer: int
    head: int
    pos: int


def init_state() -> None:
    """The shared keys' first values in a new session (pos follows the text: set later)."""
    ss = st.session_state
    ss.setdefault("text", DEFAULT_TEXT)
    ss.setdefault("model_id", "bundled")
    ss.setdefault("layer", 0)
    ss.setdefault("head", 0)
    if normalize_language(ss.get(LANG_KEY)) is None:  # the browser's language, else English
        ss[LANG_KEY] = browser_language() or SOURCE_LANGUAGE


def clamp(value: Any, low: int, high: int, default: int) -> int:
    """`value` as an int within [low, high]; `default` (then clamped) when it is not a number."""
    try:
        v = int(value)
    except (TypeError, ValueError):
        v = default
    return max(low, min(high, v))


def _parse_int(raw: str | None) -> int | None:
    try:
        return int(str(raw).strip()) if raw is not None else None
    except ValueError:  # also digit strings too long for int() (over 4,300 digits)
        return None


# --- the shared text ------------------------------------------------------------------------


def _store_text(raw: str) -> None:
    """Set the shared text to `clean_text(raw)` and remember what changed, so every page shows
    the notice as long as this text stays."""
    ss = st.session_state
    text, notes = clean_text(raw)
    ss["text"] = text
    if notes:
        ss[_TEXT_NOTES] = {"text": text, "notes": notes}
    else:
        ss.pop(_TEXT_NOTES, None)


def text_notes() -> list[str]:
    """What cleaning changed in the shared text (cleans it first if code set it directly)."""
    ss = st.session_state
    if not isinstance(ss.get("text"), str):
        ss["text"] = ""
    if len(ss["text"]) > MAX_TEXT_CHARS or SURROGATE.search(ss["text"]):
        _store_text(ss["text"])  # set directly in session state (Generate, tests)
    stored = ss.get(_TEXT_NOTES)
    return list(stored["notes"]) if stored and stored["text"] == ss["text"] else []


def set_text(text: str, ids: list[int] | None = None) -> None:
    """Replace the shared text; every page follows on the next run (call `st.rerun()` after it,
    unless it runs inside a widget callback). A selected position on the last token keeps
    following the last token (Generate appends tokens). The text is cleaned (`clean_text`).
    `ids`: the token ids `text` was decoded from (Generate), kept beside it so pages analyse
    exactly those tokens (`shared_ids`); None forgets them."""
    ss = st.session_state
    if ss.get("pos") is not None and ss.get("pos") == ss.get("_n_tokens", 0) - 1:
        ss["pos"] = None
    _store_text(text)
    ss["ids"] = None if ids is None else ",".join(str(int(i)) for i in ids)


def shared_ids(loaded: LoadedModel) -> list[int] | None:
    """The shared "ids" as a list, when they are valid for `loaded` and still decode to the
    shared text (a text edited since, another model, or a hand-made link falls back to
    encoding the text: None; stale ids are dropped)."""
    ss = st.session_state
    raw = ss.get("ids")
    if not isinstance(raw, str) or not raw or len(raw) > MAX_IDS_CHARS:
        return None
    try:
        ids = [int(part) for part in raw.split(",")]
    except ValueError:
        ss["ids"] = None
        return None
    vocab = min(loaded.tokenizer.vocab_size, loaded.config.vocab_size)
    if any(not 0 <= i < vocab for i in ids) or loaded.tokenizer.decode(ids) != ss.get("text"):
        ss["ids"] = None
        return None
    return ids


# --- query parameters -----------------------------------------------------------------------


def adopt_query_params() -> tuple[list[str], dict[str, int]]:
    """Copy query parameters that differ from what the app last wrote into session state (a
    deep link, a shared URL, a link with a view in it). Returns notices for bad values and the
    numbers the link asked for (the frame says so when it has to clamp them)."""
    ss = st.session_state
    written: dict[str, str] = ss.get(_QP_WRITTEN, {})
    params = st.query_params.to_dict()
    notices: list[str] = []
    asked: dict[str, int] = {}
    for key, name in _QP_NAMES.items():
        if name not in params or params[name] == written.get(name):
            continue
        raw = params[name]
        if key == "lang":
            code = normalize_language(raw)
            if code is None:
                notices.append(
                    _(
                        "The link asks for the language “{value}”, which this app does not have; "
                        "it speaks {languages}."
                    ).format(value=quoted(raw, 60), languages=", ".join(LANGUAGES))
                )
            else:
                ss[LANG_KEY] = code
        elif key == "text":
            _store_text(raw)
        elif key == "ids":
            ss["ids"] = raw  # checked against the text and the model by `shared_ids`
        elif key == "model_id":
            raw = canonical_model_id(raw)  # "bundled@20000" is "bundled"
            if model_offered(raw):
                ss["model_id"] = raw
            elif raw.startswith(SNAPSHOT_PREFIX) and (manifest := snapshot_manifest()):
                notices.append(
                    _(
                        "The link asks for the bundled model at training step “{step}”, but this "
                        "server ships it only at steps {steps}; showing the current model instead."
                    ).format(
                        step=quoted(raw[len(SNAPSHOT_PREFIX) :], 20),
                        steps=", ".join(f"{step:,}" for step in manifest.steps),
                    )
                )
            else:
                notices.append(
                    _(
                        "The link asks for the model “{model}”, which is not available here; "
                        "showing the current model instead."
                    ).format(model=quoted(raw, 60))
                )
        else:
            value = _parse_int(raw)
            if value is None:
                notices.append(
                    _("The link's {name}='{value}' is not a whole number; ignored.").format(
                        name=name, value=quoted(raw, 60)
                    )
                )
            else:
                ss[key] = value
                asked[key] = value
    adopt_intervention_params(params, written)
    return notices, asked


def clamp_notices(asked: dict[str, int], cfg: Any, n_tokens: int) -> list[str]:
    """Notices for numbers from a link that the frame had to move into range."""
    ss = st.session_state
    messages = {
        "layer": _(
            "The link asks for layer {value}, but this model has layers 0 to {last}; "
            "showing layer {shown}."
        ),
        "head": _(
            "The link asks for head {value}, but each layer has heads 0 to {last}; "
            "showing head {shown}."
        ),
        "pos": _(
            "The link asks for token position {value}, but the text has positions 0 to {last}; "
            "showing token position {shown}."
        ),
    }
    lasts = {"layer": cfg.n_layer - 1, "head": cfg.n_head - 1, "pos": n_tokens - 1}
    notices = []
    for key, value in asked.items():
        if ss.get(key) != value:
            notices.append(
                messages[key].format(value=quoted(f"{value:,}", 60), last=lasts[key], shown=ss[key])
            )
    return notices


def view_params() -> dict[str, str]:
    """The shared view as query parameters (what a shared URL carries). A text too long for an
    address is left out: the session keeps it, a copied link carries the rest of the view."""
    ss = st.session_state
    out: dict[str, str] = {}
    for key, name in _QP_NAMES.items():
        if key in ss and ss[key] is not None:
            if key in ("text", "ids") and not text_fits_url(ss["text"]):
                continue
            if key == "ids" and (not ss[key] or len(ss[key]) > MAX_IDS_CHARS):
                continue
            out[name] = str(ss[key])
    out.update(intervention_params())
    out.update(present_params())  # lecture mode (ui.lecture, issue 15)
    out.update(open_params())  # the page's open sections; not carried to another page
    return out


# --- interventions (page 10): the ablated heads and the two prompts of activation patching ----
# Session keys of their own (not SHARED_KEYS: no sidebar control), in the address when set:
# ablate=1.2,0.3,mlp1 (read by ui.intervene.parse_ablation), ablate_mode=mean, clean=, corrupt=.
INTERVENTION_PARAMS = ("ablate", "ablate_mode", "clean", "corrupt")
_PROMPT_PARAMS = ("clean", "corrupt")


def adopt_intervention_params(params: dict[str, str], written: dict[str, str]) -> None:
    """Copy the interventions' query parameters that differ from what the app last wrote into
    session state (the prompts cleaned like the text; the ablation is checked by the page)."""
    ss = st.session_state
    for name in INTERVENTION_PARAMS:
        if name in params and params[name] != written.get(name):
            raw = params[name]
            ss[name] = clean_text(raw)[0] if name in _PROMPT_PARAMS else raw[:2000]


def intervention_params() -> dict[str, str]:
    """The interventions' part of the address: each key that is set and not empty (a prompt too
    long for an address is left out, as the text is)."""
    ss = st.session_state
    out: dict[str, str] = {}
    for name in INTERVENTION_PARAMS:
        value = ss.get(name)
        if isinstance(value, str) and value:
            if name in _PROMPT_PARAMS and not text_fits_url(value):
                continue
            out[name] = value
    return out


# --- open sections: the page's lazy sections (ui.widgets.lazy_section) open in the link --------
# `open=steps,numpy`: the short ids of the page's open sections (`ui.stages.Stage.sections`), in
# the page's order. Each section's open state is its own session-state key
# ("attention_sec_steps", the expander's); the frame names the page shown (`adopt_open_param`).
OPEN_PARAM = "open"
_PAGE = "_page"  # session state: the id of the page shown ("home" or a stage id)
_MAX_OPEN_CHARS = 2000  # an `open` value is read up to here


def page_sections(stage_id: str | None) -> tuple[str, ...]:
    """The short ids of the lazy sections on page `stage_id` (none on the home page)."""
    stage = STAGE_BY_ID.get(stage_id or "")
    return stage.sections if stage is not None else ()


def _open_ids(raw: str) -> list[str]:
    """The ids of an `open` value ("steps, NumPy,steps" -> ["steps", "numpy"]): trimmed,
    lower case, empty ones and repeats dropped."""
    ids: list[str] = []
    for part in raw[:_MAX_OPEN_CHARS].split(","):
        short = part.strip().lower()
        if short and short not in ids:
            ids.append(short)
    return ids


def adopt_open_param(stage_id: str) -> list[str]:
    """Remember that page `stage_id` is shown, and when the link's `open` differs from what the
    app last wrote, open exactly the sections it names on this page (the page's others close).
    Returns a notice for the ids this page has no section for (they are ignored)."""
    ss = st.session_state
    ss[_PAGE] = stage_id
    raw = st.query_params.get(OPEN_PARAM)
    if raw is None or raw == ss.get(_QP_WRITTEN, {}).get(OPEN_PARAM):
        return []
    asked = _open_ids(raw)
    known = page_sections(stage_id)
    if known:
        stage = STAGE_BY_ID[stage_id]
        for short in known:
            ss[stage.section_key(short)] = short in asked
    unknown = [short for short in asked if short not in known]
    if not unknown:
        return []
    ids = quoted(", ".join(unknown), 60)
    if not known:
        return [
            _(
                "The link asks to open the section “{ids}”, but this page has no sections to "
                "open; ignored."
            ).format(ids=ids)
        ]
    return [
        _(
            "The link asks to open the section “{ids}”, which this page does not have; ignored "
            "(its sections: {known})."
        ).format(ids=ids, known=", ".join(known))
    ]


def open_params() -> dict[str, str]:
    """The page's open sections as the `open` query parameter (none open: no parameter)."""
    ss = st.session_state
    stage_id = ss.get(_PAGE)
    stage = STAGE_BY_ID.get(stage_id or "")
    if stage is None:
        return {}
    opened = [short for short in stage.sections if bool(ss.get(stage.section_key(short)))]
    return {OPEN_PARAM: ",".join(opened)} if opened else {}


def nav_params(layer: int | None = None) -> dict[str, str]:
    """The query parameters of a link to another page: the shared view, at `layer` if given,
    without this page's open sections (another page has other sections)."""
    params = view_params()
    params.pop(OPEN_PARAM, None)
    if layer is not None:
        params["layer"] = str(layer)
    return params


def write_query_params() -> None:
    """Mirror the shared view into the page address, and remember what was written."""
    params = view_params()
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    st.session_state[_QP_WRITTEN] = params
