"""Lecture mode: a projector-sized view of the walk (issue 15). The mode is a session value
("present") that the sidebar toggle sets and the query parameter `present=1` carries, so a
prepared link opens in it. Figures read it through `ui.widgets.chart` (larger type)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.trace import Trace
from ui.i18n import N_, _, language_control
from ui.stages import ORDERS, Stage

PRESENT_KEY = "present"  # session state: bool, lecture mode on
PRESENT_PARAM = "present"  # query parameter: "1" on, absent (or "0") off
ORDER_KEY = "order"  # session state and query parameter: the walk's order, "article" or "gpt"


def lecture_mode() -> bool:
    """Whether this session shows the lecture (projector) view."""
    return bool(st.session_state.get(PRESENT_KEY, False))


def in_sidebar() -> str:
    """Where a control that only the sidebar has is (the text, the model, the walk order), as
    a hint's words: "in the sidebar"; in lecture mode, whose sidebar starts collapsed, also
    where it opens ("in the sidebar (open it with » at the top left)", as the empty-text hint
    says). Translated; a hint's msgid places it with a {where} field."""
    if lecture_mode():
        return _("in the sidebar (open it with » at the top left)")
    return _("in the sidebar")


def in_pickers() -> str:
    """Where the layer, head and position are chosen, as a hint's words: "in the sidebar"; in
    lecture mode "in the bar at the top" (the lecture bar's pickers; the sidebar is collapsed).
    Translated; a hint's msgid places it with a {where} field."""
    return _("in the bar at the top") if lecture_mode() else _("in the sidebar")


def walk_order() -> str:
    """The walk's order in this session: "article" (the default) or "gpt" (`ui.stages.ORDERS`)."""
    order = st.session_state.get(ORDER_KEY, "article")
    return order if order in ORDERS else "article"


def adopt_present_param() -> None:
    """Turn lecture mode on or off from the `present` query parameter, and set the walk's order
    from `order`, when they differ from what the app last wrote (a prepared link); "0", "false"
    or "off" turn lecture mode off, anything else on; an unknown order is ignored."""
    ss = st.session_state
    written = ss.get("_qp_written", {})
    raw = st.query_params.get(PRESENT_PARAM)
    if raw is not None and raw != written.get(PRESENT_PARAM):
        ss[PRESENT_KEY] = raw.strip().lower() not in ("0", "false", "off", "")
    order = st.query_params.get(ORDER_KEY)
    if order is not None and order != written.get(ORDER_KEY) and order in ORDERS:
        ss[ORDER_KEY] = order


def present_params() -> dict[str, str]:
    """The query parameters that carry lecture mode and the walk's order (none at defaults)."""
    out = {PRESENT_PARAM: "1"} if lecture_mode() else {}
    if walk_order() != "article":
        out[ORDER_KEY] = walk_order()
    return out


ORDER_LABELS = {
    "article": N_("The article's order (post-norm)"),
    "gpt": N_("GPT-2's real order (pre-norm)"),
}


def _set_order() -> None:
    st.session_state[ORDER_KEY] = st.session_state["_w_order"]


def order_switch() -> None:
    """The sidebar's switch between the article's walk order and GPT-2's real one."""
    st.session_state["_w_order"] = walk_order()
    st.sidebar.radio(
        _("Walk order"),
        list(ORDERS),
        key="_w_order",
        format_func=lambda o: _(ORDER_LABELS[o]),
        on_change=_set_order,
        help=_(
            "The article draws attention → feed-forward → layer norm → residual → dropout. "
            "GPT-2 normalises first, in every block: ln_1 → attention → dropout → add, "
            "ln_2 → feed-forward → dropout → add; after the last block ln_f → output."
        ),
    )


# --- keyboard and presentation clickers -------------------------------------------------------

NEXT_KEYS = ("ArrowRight", "PageDown", " ", "n", "j")  # clickers send PageDown or ArrowRight
PREV_KEYS = ("ArrowLeft", "PageUp", "p", "k")

# One keydown listener on the app's document (the component's iframe is same-origin with it), so
# keys work without a click into the page first. It ignores keys typed into a text box, a select,
# a slider or a table (Space ticks a box of the knock-out grid), and keys with Ctrl/Alt/Meta; a
# key that steps clicks the walk's own button, so a key press does exactly what the click does.
# Each render replaces the previous page's listener (kept on the parent window), so listeners
# never pile up across page switches.
_KEYS_JS = """<script>
(() => {
  const win = window.parent, doc = win.document;
  const keys = %(keys)s;
  if (win.__insideGptKeys) doc.removeEventListener("keydown", win.__insideGptKeys, true);
  win.__insideGptKeys = (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.altKey || e.metaKey || e.isComposing) return;
    const t = e.target;
    const typing = '[role="slider"],[role="listbox"],[role="combobox"],[role="textbox"],'
      + '[role="grid"],[data-testid="stDataFrame"],[data-testid="stDataFrameResizable"]';
    if (t && t.closest && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)
        || t.closest(typing))) return;
    const dir = keys.next_keys.includes(e.key) ? "next"
      : keys.prev_keys.includes(e.key) ? "prev" : null;
    if (!dir || (e.key === " " && t && t.tagName === "BUTTON")) return;
    const button = doc.querySelector(`.st-key-${keys[dir]} button`);
    if (!button || button.disabled) return;
    e.preventDefault();
    button.click();
  };
  doc.addEventListener("keydown", win.__insideGptKeys, true);
})();
</script>"""


def keyboard(prev_key: str | None, next_key: str | None) -> None:
    """Step the walk from the keyboard or a presentation clicker: ArrowRight, PageDown, Space,
    n or j click the button with element key `next_key`; ArrowLeft, PageUp, p or k the one with
    `prev_key` (None: no such step). Keys typed in a text box, select, slider or table are left
    alone. Draws a hidden same-origin iframe (`st.iframe` with the script as its HTML)."""
    import json

    keys = {
        "next": next_key or "",
        "prev": prev_key or "",
        "next_keys": list(NEXT_KEYS),
        "prev_keys": list(PREV_KEYS),
    }
    st.html("<style>.st-key-walk_keys{display:none}</style>")
    with st.container(key="walk_keys"):
        st.iframe(_KEYS_JS % {"keys": json.dumps(keys)}, height=1)


# --- the lecture view: control bar, main figure first, speaker notes ----------------------------

# Each stage's main figure (the element key of its chart): in lecture mode it is drawn right
# under the control bar, full width and at most LECTURE_MAIN_HEIGHT px tall, so it is on screen
# without scrolling at 1024x768 and 1280x720.
MAIN_CHART = {
    "tokens": "tokens_bytes_chart",
    "embeddings": "embeddings_pca_chart",
    "attention": "attention_head_chart",
    "feed_forward": "feed_forward_map",
    "layer_norm": "layer_norm_stats",
    "residual": "residual_norms",
    "dropout": "dropout_patterns",
    "output": "output_top_tokens",
    "generate": "generate_distribution",
    "intervene": "intervene_ko_probs",  # once something is knocked out (a preset or `ablate=`)
    "learning": "learning_map_chart",  # the chosen head at the slider's step
}
LECTURE_MAIN_HEIGHT = 460  # px: 720 minus the app header, the control bar and margins
_SLOT = "_lecture_slot"  # session state: (stage id, the container of the main figure), per run

_LECTURE_CSS = """<style>
[data-testid="stMainBlockContainer"]{padding:4.1rem 1rem 3rem 1rem;max-width:100%}
[data-testid="stMain"] h1{display:none}
[data-testid="stMain"] .katex-display{overflow-x:auto;overflow-y:hidden;max-width:100%}
[data-testid="stMain"] p,[data-testid="stMain"] li{font-size:1.15rem}
.st-key-lecture_bar [data-testid="stMarkdownContainer"] p
{font-size:1.05rem;line-height:1.2;margin:0;word-break:keep-all}
</style>"""

# What to say, what to point at, and which preset shows it (marked for translation, shown with _).
SPEAKER_NOTES = {
    "tokens": N_(
        "**Say:** the model never sees letters, only token ids; common words are one token, "
        "rare words and Chinese characters several.\n\n"
        "**Point at:** the bars, one per token, and the byte-pair merges below.\n\n"
        "**Preset:** *Chinese sentence* (characters split into byte-level tokens)."
    ),
    "embeddings": N_(
        "**Say:** each id picks one row of the embedding table; a position vector is added, "
        "so the same word at two places enters the model differently.\n\n"
        "**Point at:** repeated words close together in the PCA map.\n\n"
        "**Preset:** *Repeated line (induction)*."
    ),
    "attention": N_(
        "**Say:** each row is one token looking back; the empty upper triangle is the causal "
        "mask, the article's formula has none.\n\n"
        "**Point at:** the first column (attention sink) and a diagonal just below the main one "
        "(previous-token head).\n\n"
        "**Preset:** *Repeated line (induction)*: in the second copy, heads look at the token "
        "after the earlier occurrence."
    ),
    "feed_forward": N_(
        "**Say:** every token goes through the same two-layer network on its own, 4× wider in "
        "the middle, GELU between.\n\n"
        "**Point at:** a few hidden units that fire for only some tokens.\n\n"
        "**Preset:** *Plain sentence*."
    ),
    "layer_norm": N_(
        "**Say:** per token, subtract the mean and divide by the spread of its own features, "
        "then scale by γ and shift by β; not over the whole tensor as the article says.\n\n"
        "**Point at:** the per-token mean and standard deviation before and after.\n\n"
        "**Preset:** *Plain sentence*."
    ),
    "residual": N_(
        "**Say:** blocks never replace the vector, they add to it: the residual stream is a "
        "running sum.\n\n"
        "**Point at:** the norm growing layer by layer.\n\n"
        "**Preset:** *Long paragraph*."
    ),
    "dropout": N_(
        "**Say:** in training, random entries are zeroed and the rest scaled by 1/(1−p); when "
        "the model is used, dropout does nothing.\n\n"
        "**Point at:** the zeroed cells and the rescaled row.\n\n"
        "**Preset:** any; move p."
    ),
    "output": N_(
        "**Say:** the last vector goes through the final layer norm and the unembedding, "
        "softmax gives a probability for every token in the vocabulary.\n\n"
        "**Point at:** the top candidates, then the logit lens: the guess forming layer by "
        "layer.\n\n"
        "**Preset:** *Who is who (name tracking)*."
    ),
    "generate": N_(
        "**Say:** generation is this one step repeated: sample, append, run again.\n\n"
        "**Point at:** how temperature and top-p reshape the bars.\n\n"
        "**Preset:** *Plain sentence*, then raise the temperature."
    ),
    "intervene": N_(
        "**Say:** the other pages show what the model computes; here we switch a part off and "
        "watch what breaks, which shows cause, not just correlation.\n\n"
        "**Point at:** the real next token's probability before and after, and the loss on "
        "the second copy rising.\n\n"
        "**Preset:** the knock-out preset *Copy heads 1.0 and 1.1 off on a repeated line*."
    ),
    "learning": N_(
        "**Say:** nobody programmed these heads; they appeared during training. Step 0 is the "
        "random start; the previous-token head forms slowly, the induction heads suddenly, in "
        "the shaded phase change.\n\n"
        "**Point at:** head 1.0 at step 0 (a blur) and at step 20,000 (a stripe: each token of "
        "the second copy looks at the token after its twin); then the induction curve jumping "
        "inside the band.\n\n"
        "**Preset:** *Repeated line (induction)*, head 1.0; drag the step slider from 0 to "
        "20,000."
    ),
}


def _toggle_present() -> None:
    st.session_state[PRESENT_KEY] = bool(st.session_state.get("_w_present"))


def sidebar_toggle() -> None:
    """The sidebar's lecture-mode switch (mirrored in the `present` query parameter)."""
    st.session_state["_w_present"] = lecture_mode()
    st.sidebar.toggle(
        _("Lecture mode"),
        key="_w_present",
        on_change=_toggle_present,
        help=_(
            "A projector view: controls in a bar above the content, the stage's main figure "
            "first, larger type, speaker notes. A link with present=1 opens in it."
        ),
    )


def _go(step: tuple[Any, int] | None) -> None:
    """Callback of the bar's Previous / Next: switch to that step of the walk."""
    if step is None:
        return
    stage, layer = step
    st.session_state["layer"] = layer
    st.session_state["_lecture_go"] = (stage.path, layer)


def _copy(widget_key: str, shared_key: str) -> None:
    st.session_state[shared_key] = st.session_state[widget_key]


def _step_button(col: Any, arrow: str, key: str, step: Any, primary: bool = False) -> None:
    """A previous/next button of the lecture bar: goes to `step` ((stage, layer), or None:
    disabled), its name in the tooltip."""
    from ui.stages import step_label

    col.button(
        arrow,
        key=key,
        on_click=_go,
        args=(step,),
        disabled=step is None,
        help=step_label(step) if step else None,
        type="primary" if primary else "secondary",
        width="stretch",
    )


def bar_title(stage: Stage) -> str:
    """The lecture bar's name of `stage`, in the session's language: its number and short name,
    the flowchart box's ("3 · Attention"). At 1024 px the bar's title column is 219 px wide; the
    longest of these names, "7 · Dropout（暂退法）", takes 187 px in the bar's bold type (Chromium),
    while the full titles took up to 329 px ("11 · Learning: the model during training"; "3 ·
    Multi-head self-attention · layer 11" 310) and wrapped, in Chinese one or two characters
    onto a second line ("8 · 输出概率与对数几率透" / "镜"). The layer select beside it names
    the layer; the browser tab keeps the page's full title."""
    name = _(stage.short_title)
    return f"{stage.number} · {name}"


def lecture_bar(stage_id: str, trace: Trace) -> None:
    """In lecture mode, what the frame draws above a stage page's own content: the compact
    control bar (previous, layer, head, position, next, language; element keys "bar_prev",
    "bar_next", "_w_bar_lang"),
    the slot where the page's main figure (MAIN_CHART) goes, and the speaker notes in a
    collapsed expander. Draws nothing outside lecture mode (but forgets the slot)."""
    from ui.stages import STAGE_BY_ID, walk_neighbours
    from ui.state import nav_params

    ss = st.session_state
    ss.pop(_SLOT, None)
    if not lecture_mode():
        return
    go_to = ss.pop("_lecture_go", None)
    if go_to is not None:
        st.switch_page(go_to[0], query_params=nav_params(go_to[1]))
    st.html(_LECTURE_CSS)
    cfg = trace.config
    stage = STAGE_BY_ID[stage_id]
    prev, nxt = walk_neighbours(stage_id, ss["layer"], cfg.n_layer, walk_order())
    prev = prev if prev is not None and prev[0].exists() else None
    nxt = nxt if nxt is not None and nxt[0].exists() else None
    with st.container(key="lecture_bar"):
        title, *cols = st.columns([1.9, 0.6, 1, 1.2, 1.2, 0.8, 1.3], vertical_alignment="center")
        title.markdown(f"**{bar_title(stage)}**")
        _step_button(cols[0], "←", "bar_prev", prev)
        for col, shared, n, label in (
            (cols[1], "layer", cfg.n_layer, _("Layer {n}")),
            (cols[2], "head", cfg.n_head, _("Head {n}")),
        ):
            ss[f"_w_bar_{shared}"] = ss[shared]
            col.selectbox(
                label.format(n=""),
                list(range(n)),
                key=f"_w_bar_{shared}",
                format_func=lambda i, label=label: label.format(n=i),
                on_change=_copy,
                args=(f"_w_bar_{shared}", shared),
                label_visibility="collapsed",
            )
        ss["_w_bar_pos"] = ss["pos"]
        cols[3].selectbox(
            _("Token position"),
            list(range(trace.n_tokens)),
            key="_w_bar_pos",
            format_func=lambda i: f"{i}: {trace.token_strs[i]}",
            on_change=_copy,
            args=("_w_bar_pos", "pos"),
            label_visibility="collapsed",
        )
        _step_button(cols[4], "→", "bar_next", nxt, primary=True)
        language_control(cols[5], "_w_bar_lang", short=True)  # as in the sidebar (issue 16)
    ss[_SLOT] = (stage_id, st.container(key="lecture_main"))
    notes = SPEAKER_NOTES.get(stage_id)
    if notes:
        with st.expander(_("Speaker notes"), expanded=False):
            st.markdown(_(notes))


def main_slot(key: str) -> Any:
    """The container a chart with element key `key` is drawn in when it is the current stage's
    main figure in lecture mode; None otherwise (draw it where the page puts it)."""
    slot = st.session_state.get(_SLOT)
    if slot is None or MAIN_CHART.get(slot[0]) != key:
        return None
    return slot[1]
