"""The frame: what every page calls first (page config, the sidebar, the shared view read from
and written to the query parameters, the model and the Trace from the caches, notices).
The contract is in ui/__init__.py."""

from __future__ import annotations

import gc
import logging
from typing import Any

import streamlit as st

from engine.checkpoints import CheckpointError, LoadedModel
from engine.trace import Trace
from ui.cache import get_trace, key_of, load_model, reloaded_since, token_limit
from ui.exports import adopt_knob_params, export_sidebar, knob_params
from ui.i18n import _, language_control
from ui.lecture import (
    adopt_present_param,
    lecture_bar,
    lecture_mode,
    order_switch,
    sidebar_toggle,
    walk_order,
)
from ui.models import available_models, model_label
from ui.settings import (
    HOME_PATH,
    MAX_TEXT_CHARS,
    PAGE_ICON,
    TEXTBOX_MAX_CHARS,
    allow_paths,
)
from ui.stages import STAGE_BY_ID, STAGES, layer_stages
from ui.state import (
    View,
    adopt_open_param,
    adopt_query_params,
    clamp,
    clamp_notices,
    init_state,
    nav_params,
    set_text,
    shared_ids,
    text_notes,
    view_params,
    write_query_params,
)
from ui.text import PRESETS_TEXT, quoted, text_fits_url
from ui.widgets import bounded_input

log = logging.getLogger(__name__)

# Streamlit collects garbage after every script run (`runner.postScriptGC`: gc.collect(2), with
# the GIL held). A full collection walks every tracked object, about 290,000 once Streamlit,
# torch, plotly and pandas are imported: 140-170 ms after each click, more than a page's whole
# rerun. What is there when the app's modules are first imported is never garbage (modules,
# classes, functions), so it is moved out of the collector's reach once per process
# (`gc.freeze`, Python's tool for this): the collection after a run then walks only what was
# made since (7-12 ms in the page benchmark). Garbage made later (a session's) is still collected.
gc.freeze()


# --- widget callbacks (copy widget values into the shared keys) ------------------------------


def _on_text() -> None:
    set_text(st.session_state["_w_text"])


def _on_preset(key: str = "_w_preset") -> None:
    ss = st.session_state
    name = ss.get(key)
    for preset in PRESETS_TEXT:
        if preset.name == name:
            set_text(preset.text)
            ss["pos"] = None  # follow the last token of the new text
    ss[key] = None


def _on_model() -> None:
    st.session_state["model_id"] = st.session_state["_w_model"]


def _on_path() -> None:
    raw = st.session_state.get("_w_path", "").strip()
    if raw:
        st.session_state["model_id"] = raw


def _on_number(key: str) -> None:
    st.session_state[key] = st.session_state[f"_w_{key}"]


def _step_layer(delta: int, n_layer: int) -> None:
    ss = st.session_state
    ss["layer"] = clamp(ss.get("layer", 0) + delta, 0, n_layer - 1, 0)


# --- issue 20 (b): the first change after a reconnect ----------------------------------------
# After a server restart the browser reconnects to a new session without rerunning it; its first
# message is the visitor's change, for which no callback runs (the new session never drew the
# widget). So a widget that mirrors shared state is set from it only once it exists; on the
# session's first run it starts at the shared value, and a value the browser brings is adopted.


def _mirror(key: str, shared: str) -> bool:
    """Set widget `key` from session state `shared`, except on the session's first run (the
    widget is not there yet); returns whether it is the first run."""
    ss = st.session_state
    if key in ss:
        ss[key] = ss[shared]
        return False
    return True


def _adopt(first_run: bool, shared: str, value: Any, high: int) -> None:
    """On the first run, take the value the browser brought for `shared` (clamped to
    [0, high])."""
    ss = st.session_state
    if first_run and value is not None and value != ss[shared]:
        ss[shared] = clamp(value, 0, high, ss[shared])


# --- the sidebar -----------------------------------------------------------------------------


def _sidebar_navigation(current: str) -> None:
    """Home, then one link per stage page that exists, the current one marked."""
    sb = st.sidebar
    sb.page_link(HOME_PATH, label=_("Inside GPT: home"), icon="🏠", query_params=nav_params())
    order = walk_order()  # the article's or GPT-2's (ui.lecture.order_switch)
    per_layer = layer_stages(order)
    sb.caption(
        _("The walk through the model, in the article's order:")
        if order == "article"
        else _("The walk through the model, in GPT-2's real order:")
    )
    ordered = [s for s in STAGES if not s.per_layer and s.number < STAGE_BY_ID[per_layer[0]].number]
    ordered += [STAGE_BY_ID[sid] for sid in per_layer]
    ordered += [s for s in STAGES if s not in ordered]
    for stage in ordered:
        if not stage.exists():
            continue
        label = stage.label
        if stage.id == current:  # the marker wraps as a whole (no-break spaces; see _PAGE_CSS)
            marker = _("◀ you are here").replace(" ", "\u00a0")
            label = f"**{label}** {marker}"
        if stage.id == per_layer[0]:
            first, last = STAGE_BY_ID[per_layer[0]], STAGE_BY_ID[per_layer[-1]]
            sb.caption(
                _("↻ stages {first} to {last} repeat in every layer").format(
                    first=first.number, last=last.number
                )
            )
        sb.page_link(stage.path, label=label, query_params=nav_params())


def _sidebar_inputs(loaded: LoadedModel | None) -> None:
    """Lecture presets, the text box, the model box (and the path box if allowed)."""
    ss = st.session_state
    sb = st.sidebar
    sb.divider()
    _preset_box(sb, "_w_preset")
    first_run = _mirror("_w_text", "text")  # issue 20 (b): see _mirror
    typed = sb.text_area(
        _("Your text"),
        value=ss["text"] if first_run else None,
        key="_w_text",
        on_change=_on_text,
        height=140,
        max_chars=TEXTBOX_MAX_CHARS,
        help=_(
            "Press Ctrl+Enter (or click outside the box) to run the model on it. "
            "The first {n} characters are used."
        ).format(n=f"{MAX_TEXT_CHARS:,}"),
    )
    if first_run and typed is not None and typed != ss["text"]:
        set_text(typed)
    if not text_fits_url(ss["text"]):
        sb.caption(
            _(
                "This text is too long for the page address: a copied link carries the model "
                "and the selection, not the text."
            )
        )
    options = available_models()
    if ss["model_id"] not in options:
        options = [*options, ss["model_id"]]
    first_run = _mirror("_w_model", "model_id")
    chosen = sb.selectbox(
        _("Model"),
        options,
        **({"index": options.index(ss["model_id"])} if first_run else {}),
        key="_w_model",
        format_func=model_label,
        on_change=_on_model,
        # No server path in the help (issue 20): the operator's models folder is not shown.
        help=_(
            "GPT-2 directories come from the server's models folder; “(Hugging Face Hub)” "
            "models are downloaded once (only the files this app reads) and then opened from "
            "the cache."
        ),
    )
    if first_run and chosen is not None and chosen != ss["model_id"]:  # see _mirror
        ss["model_id"] = chosen  # the model was loaded above: run again with this one
        write_query_params()
        st.rerun()
    if loaded is not None and loaded.stored_dtype != "float32":
        sb.caption(
            _(
                "Its weights are stored as {dtype}; this app computes in float32 "
                "(every number shown is a float32 result of those weights)."
            ).format(dtype=loaded.stored_dtype)
        )
    if allow_paths():
        sb.text_input(
            _("…or a GPT-2 directory path"),
            key="_w_path",
            on_change=_on_path,
            placeholder="/path/to/gpt2",
        )


def _sidebar_selection(trace: Trace) -> None:
    """Layer, head and position steppers; values are already clamped in session state."""
    ss = st.session_state
    cfg = trace.config
    sb = st.sidebar
    sb.divider()
    sb.markdown(_("**Layer** (block 0 to {last})").format(last=cfg.n_layer - 1))
    left, mid, right = sb.columns([1, 2, 1], vertical_alignment="bottom")
    clicked_prev = left.button(
        "◀",
        key="_w_layer_prev",
        on_click=_step_layer,
        args=(-1, cfg.n_layer),
        disabled=ss["layer"] <= 0,
        help=_("previous layer"),
    )
    first_run = _mirror("_w_layer", "layer")
    layer = bounded_input(
        "number",
        _("Layer"),
        0,
        cfg.n_layer - 1,
        ss["layer"],
        key="_w_layer",
        where=mid,
        on_change=_on_number,
        args=("layer",),
        label_visibility="collapsed",
    )
    _adopt(first_run, "layer", layer, cfg.n_layer - 1)
    clicked_next = right.button(
        "▶",
        key="_w_layer_next",
        on_click=_step_layer,
        args=(1, cfg.n_layer),
        disabled=ss["layer"] >= cfg.n_layer - 1,
        help=_("next layer"),
    )
    if first_run and (clicked_prev or clicked_next):  # a click whose callback did not run
        _step_layer(-1 if clicked_prev else 1, cfg.n_layer)
        write_query_params()  # the rerun must not take the link's old layer back
        st.rerun()
    first_run = _mirror("_w_head", "head")
    head = bounded_input(
        "number",
        _("Head (0 to {last})").format(last=cfg.n_head - 1) if cfg.n_head > 1 else _("Head"),
        0,
        cfg.n_head - 1,
        ss["head"],
        key="_w_head",
        where=sb,
        on_change=_on_number,
        args=("head",),
    )
    _adopt(first_run, "head", head, cfg.n_head - 1)
    first_run = _mirror("_w_pos", "pos")
    pos = sb.selectbox(
        _("Token position"),
        list(range(trace.n_tokens)),
        **({"index": ss["pos"]} if first_run else {}),
        key="_w_pos",
        format_func=lambda i: f"{i}: {trace.token_strs[i]}",
        on_change=_on_number,
        args=("pos",),
        help=_("The query token: the attention page shows what this token looks at."),
    )
    _adopt(first_run, "pos", pos, trace.n_tokens - 1)


def _sidebar_language() -> None:
    """The interface language (`ui.i18n`), at the top of the sidebar."""
    language_control(st.sidebar, "_w_lang")


# --- the frame -------------------------------------------------------------------------------


def _page_config(stage_id: str) -> None:
    title = "Inside GPT" if stage_id == "home" else f"{_(STAGE_BY_ID[stage_id].title)} · Inside GPT"
    sidebar = "collapsed" if lecture_mode() else "expanded"  # lecture mode (ui.lecture)
    st.set_page_config(
        page_title=title, page_icon=PAGE_ICON, layout="wide", initial_sidebar_state=sidebar
    )


def _load_with_fallback(notices: list[str]) -> tuple[str, LoadedModel | None]:
    """Load the chosen model; on a bad checkpoint say why and keep the last one that worked."""
    ss = st.session_state
    model_id = ss["model_id"]
    try:
        loaded = load_model(model_id)
    except (CheckpointError, OSError) as err:
        log.warning("could not load model %r: %s", model_id, err)
        previous = ss.get("_last_good_model", "bundled")
        st.error(
            _("Could not load the model “{model}”: {error}").format(
                model=quoted(model_id), error=quoted(str(err))
            )
        )
        if previous == model_id:
            return model_id, None
        notices.append(_("Still showing the model “{model}”.").format(model=quoted(previous)))
        ss["model_id"] = previous
        model_id = previous
        try:
            loaded = load_model(model_id)
        except (CheckpointError, OSError) as err2:
            st.error(
                _("Could not load the model “{model}” either: {error}").format(
                    model=quoted(model_id), error=quoted(str(err2))
                )
            )
            return model_id, None
    ss["_last_good_model"] = model_id
    if reloaded_since(model_id, loaded, ss.get("_model_seen")):
        notices.append(
            _(
                "The model “{model}” was reloaded: the files changed on disk, so every number "
                "from here on comes from the new files."
            ).format(model=quoted(model_id))
        )
    ss["_model_seen"] = key_of(model_id, loaded)
    return model_id, loaded


# A display formula wider than the column (Output's softmax at 1024 px with the sidebar open)
# scrolls sideways instead of being cut off. A sidebar link's label wraps onto a second line
# instead of ending in "…" (Streamlit's page links keep one line: "11 · Learning: the model
# during trai…" in the 255 px of a label), and Chinese wraps between words only (keep-all: at
# spaces, not inside "你在这里").
_NAV_LABEL = "[data-testid='stSidebar'] [data-testid='stPageLink-NavLink']"
_PAGE_CSS = (
    "<style>[data-testid='stMain'] .katex-display"
    "{overflow-x:auto;overflow-y:hidden;max-width:100%}"
    f"{_NAV_LABEL} > span,{_NAV_LABEL} [data-testid='stMarkdownContainer'],{_NAV_LABEL} p"
    "{white-space:normal;overflow:visible;text-overflow:clip;height:auto;line-height:1.4;"
    "word-break:keep-all}"
    # a button's label wraps instead of ending in "…" (the walk's "Next: 4 · Feed-forward
    # (layer 0) →" in Chinese at 1024 px with the sidebar open)
    "button [data-testid='stMarkdownContainer'],button [data-testid='stMarkdownContainer'] p"
    "{white-space:normal;overflow:visible;text-overflow:clip}</style>"
)


def frame(stage_id: str) -> View | None:
    """Every page's first call (the home page's too, with "home"); the contract is in
    ui/__init__.py. Raises ValueError for an unknown stage id."""
    if stage_id != "home" and stage_id not in STAGE_BY_ID:
        raise ValueError(f"unknown stage {stage_id!r}")
    init_state()
    notices, asked = adopt_query_params()  # the link's language first: every word follows it
    notices += adopt_open_param(stage_id)  # the page's open sections (`open=`), before drawing
    adopt_present_param()  # lecture mode from `present=1` (ui.lecture), before the page config
    _page_config(stage_id)
    st.html(_PAGE_CSS)
    notices += adopt_knob_params({})  # sampling / dropout knobs of a shared link (ui.exports)
    notices = text_notes() + notices
    ss = st.session_state
    _sidebar_language()
    sidebar_toggle()  # lecture mode (ui.lecture)
    order_switch()  # the walk's order (ui.lecture)
    _sidebar_navigation(stage_id)
    model_id, loaded = _load_with_fallback(notices)
    _sidebar_inputs(loaded)
    text = ss["text"]
    if loaded is None:
        _show_notices(notices)
        write_query_params()
        return None
    if not text.strip():
        _show_notices(notices)
        _empty_text_hint()
        write_query_params()
        return None
    ids = shared_ids(loaded)
    if ids is not None and "\ufffd" in text:
        notices.append(
            _(
                "A generated token ends inside a character (shown as �): the pages analyse the "
                "generated tokens themselves, not the text re-read."
            )
        )
    trace = get_trace(model_id, text, loaded, ids)
    cfg = trace.config
    ss["layer"] = clamp(ss.get("layer"), 0, cfg.n_layer - 1, 0)
    ss["head"] = clamp(ss.get("head"), 0, cfg.n_head - 1, 0)
    ss["pos"] = clamp(ss.get("pos"), 0, trace.n_tokens - 1, trace.n_tokens - 1)
    if stage_id == "output":
        _open_output_on_a_known_next_token(model_id, text, trace.n_tokens, "pos" in asked)
    ss["_n_tokens"] = trace.n_tokens
    _sidebar_selection(trace)
    if stage_id != "home":
        lecture_bar(stage_id, trace)  # lecture mode: control bar, main figure, notes
    notices += clamp_notices(asked, cfg, trace.n_tokens)
    if trace.n_tokens_dropped:
        notices.append(_dropped_notice(trace, token_limit(cfg)[1]))
    _show_notices(notices)
    if trace.n_padding_ids or trace.gap_ids:
        st.info(padding_notice(trace))
    write_query_params()
    export_sidebar(trace, {**view_params(), **knob_params()})  # .npz and the link (ui.exports)
    return View(
        trace=trace,
        loaded=loaded,
        model_id=model_id,
        stage=stage_id,
        layer=ss["layer"],
        head=ss["head"],
        pos=ss["pos"],
    )


def _open_output_on_a_known_next_token(
    model_id: str, text: str, n_tokens: int, asked: bool
) -> None:
    """The Output page opens (once per model and text) on the last position that has a next
    token, so its comparison with the real next token shows; a position the link asks for,
    or one chosen on the page afterwards, is kept."""
    ss = st.session_state
    if ss.get("_output_opened_on") == (model_id, text):
        return
    ss["_output_opened_on"] = (model_id, text)
    if not asked and n_tokens > 1 and ss["pos"] == n_tokens - 1:
        ss["pos"] = n_tokens - 2


def _empty_text_hint() -> None:
    """What a page shows while the text box is empty: where to type. Lecture mode starts with
    the sidebar collapsed, so there the hint says where it opens and offers the lecture presets
    in the page itself (element key "_w_preset_main"; the same choice as the sidebar's box)."""
    if not lecture_mode():
        st.info(
            _(
                "✍️ Type a text in the sidebar (or choose a lecture preset) and the model will "
                "read it: every page then shows what happens inside."
            )
        )
        return
    st.info(
        _(
            "✍️ Lecture mode keeps the sidebar closed: open it with » at the top left to type a "
            "text, or choose a prepared text below. The model will read it: every page then "
            "shows what happens inside."
        )
    )
    _preset_box(st, "_w_preset_main")


def _preset_box(where: Any, key: str) -> None:
    """The lecture presets' chooser in `where` (the sidebar, or the page body), element key
    `key`: choosing one sets the text (`_on_preset`) and empties the box again."""
    where.selectbox(
        _("Lecture presets"),
        [p.name for p in PRESETS_TEXT],
        index=None,
        placeholder=_("Choose a prepared text…"),
        key=key,
        format_func=_,
        on_change=_on_preset,
        args=(key,),
        help="\n".join(f"- **{_(p.name)}**: {_(p.why)}" for p in PRESETS_TEXT),
    )


def _show_notices(notices: list[str]) -> None:
    for notice in notices:
        st.warning(notice)


def padding_notice(trace: Trace) -> str:
    """The one notice about a padded vocabulary: how many output rows are padding and what the
    app does with them (engine: `Trace.n_valid_ids`)."""
    n_pad, n_valid, n_gaps = trace.n_padding_ids, trace.n_valid_ids, len(trace.gap_ids)
    n_tokens = n_valid - n_gaps
    parts = []
    if n_pad:
        parts.append(
            _(
                "the last {n_pad} rows (ids {n_valid} and up) are padding (vocabularies are "
                "often padded to a multiple of 64 for speed)"
            ).format(n_pad=f"{n_pad:,}", n_valid=f"{n_valid:,}")
        )
    if n_gaps:
        parts.append(
            _("{n_gaps} ids (the first is {first}) are skipped by its tokenizer").format(
                n_gaps=f"{n_gaps:,}", first=trace.gap_ids[0]
            )
        )
    return _(
        "This model has {rows} output rows but its tokenizer only {n_tokens} tokens: {parts}. "
        "They name no token, so every prediction here leaves them out: probabilities are over "
        "the {n_tokens} tokens."
    ).format(
        rows=f"{trace.config.vocab_size:,}",
        n_tokens=f"{n_tokens:,}",
        parts=_(" and ").join(parts),
    )


def _dropped_notice(trace: Trace, reason: str) -> str:
    """Say how many tokens were kept, which were left out, and why."""
    n, total = trace.n_tokens, trace.n_tokens + trace.n_tokens_dropped
    why = {
        "context": _("the model reads at most {n} at once"),
        "operator": _("this server is set to show at most {n} per text"),
        "memory": _("this server keeps the numbers of at most {n} tokens of this model in memory"),
    }[reason].format(n=n)
    return _(
        "Your text has {total} tokens; {why}, so the first {n} are shown and the last "
        "{dropped} are left out."
    ).format(total=total, why=why, n=n, dropped=trace.n_tokens_dropped)
