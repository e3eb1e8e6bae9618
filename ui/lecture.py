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
