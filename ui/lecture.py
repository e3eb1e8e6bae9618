"""Lecture mode: a projector-sized view of the walk (issue 15). The mode is a session value
("present") that the sidebar toggle sets and the query parameter `present=1` carries, so a
prepared link opens in it. Figures read it through `ui.widgets.chart` (larger type)."""

from __future__ import annotations

import streamlit as st

PRESENT_KEY = "present"  # session state: bool, lecture mode on
PRESENT_PARAM = "present"  # query parameter: "1" on, absent (or "0") off


def lecture_mode() -> bool:
    """Whether this session shows the lecture (projector) view."""
    return bool(st.session_state.get(PRESENT_KEY, False))


def adopt_present_param() -> None:
    """Turn lecture mode on or off from the `present` query parameter when it differs from what
    the app last wrote (a prepared link); "0", "false" or "off" turn it off, anything else on."""
    ss = st.session_state
    raw = st.query_params.get(PRESENT_PARAM)
    written = ss.get("_qp_written", {}).get(PRESENT_PARAM)
    if raw is not None and raw != written:
        ss[PRESENT_KEY] = raw.strip().lower() not in ("0", "false", "off", "")


def present_params() -> dict[str, str]:
    """The query parameter that carries lecture mode ({} when it is off)."""
    return {PRESENT_PARAM: "1"} if lecture_mode() else {}


# --- keyboard and presentation clickers -------------------------------------------------------

NEXT_KEYS = ("ArrowRight", "PageDown", " ", "n", "j")  # clickers send PageDown or ArrowRight
PREV_KEYS = ("ArrowLeft", "PageUp", "p", "k")

# One keydown listener on the app's document (the component's iframe is same-origin with it), so
# keys work without a click into the page first. It ignores keys typed into a text box, a select
# or a slider, and keys with Ctrl/Alt/Meta; a key that steps clicks the walk's own button, so a
# key press does exactly what the click does. Each render replaces the previous page's listener
# (kept on the parent window), so listeners never pile up across page switches.
_KEYS_JS = """<script>
(() => {
  const win = window.parent, doc = win.document;
  const keys = %(keys)s;
  if (win.__insideGptKeys) doc.removeEventListener("keydown", win.__insideGptKeys, true);
  win.__insideGptKeys = (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.altKey || e.metaKey || e.isComposing) return;
    const t = e.target;
    const typing = '[role="slider"],[role="listbox"],[role="combobox"],[role="textbox"]';
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
    `prev_key` (None: no such step). Keys typed in a text box, select or slider are left alone.
    Draws a zero-height component (`st.components.v1.html`)."""
    import json

    import streamlit.components.v1 as components

    keys = {
        "next": next_key or "",
        "prev": prev_key or "",
        "next_keys": list(NEXT_KEYS),
        "prev_keys": list(PREV_KEYS),
    }
    st.html("<style>.st-key-walk_keys{display:none}</style>")
    with st.container(key="walk_keys"):
        components.html(_KEYS_JS % {"keys": json.dumps(keys)}, height=0)
