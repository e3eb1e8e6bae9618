"""Exports for slides (issue 15): every figure as SVG (rendered on the server by kaleido through
the local Chromium, only when the button is clicked) and as PNG (plotly's own toolbar button,
rendered in the viewer's browser at 1920 px wide), the Trace as `.npz`, and a link that carries
the whole view, sampling and dropout knobs included.

Why two paths (measured here, 2 CPU cores): kaleido 1.5 starts a Chromium per call, about 5 s
per image, and needs Chromium on the server; plotly's client-side "download plot" button costs
the server nothing and is instant, but gives one format per chart. So PNG (the common case, a
slide) is client-side and SVG (for editing) server-side, on demand. Neither uses the network:
kaleido loads plotly.js from the installed plotly package and MathJax is switched off.
"""

from __future__ import annotations

import io
import logging
import os
from functools import partial
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from engine.trace import Trace
from ui.i18n import _

log = logging.getLogger(__name__)

EXPORT_WIDTH = 960  # px of the exported figure; the PNG is drawn at scale 2: 1920 px wide
PNG_SCALE = 2
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


def png_config(fig: go.Figure, name: str) -> dict:
    """plotly.js config for a chart: its toolbar's camera button downloads `name`.png,
    EXPORT_WIDTH x the figure's height at scale PNG_SCALE (1920 px wide)."""
    return {
        "displaylogo": False,
        "toImageButtonOptions": {
            "format": "png",
            "filename": name,
            "width": EXPORT_WIDTH,
            "height": int(fig.layout.height or 480),
            "scale": PNG_SCALE,
        },
    }


def figure_image(fig: go.Figure, fmt: str = "svg") -> bytes:
    """`fig` rendered as `fmt` ("svg" or "png") by kaleido in the local Chromium (CHROMIUM, or
    $CHROMIUM), EXPORT_WIDTH px wide (PNG at scale PNG_SCALE), without the network (MathJax
    off, plotly.js from the plotly package). Raises RuntimeError when it cannot render."""
    import kaleido

    opts = {"format": fmt, "width": EXPORT_WIDTH, "height": int(fig.layout.height or 480)}
    if fmt == "png":
        opts["scale"] = PNG_SCALE
    try:
        return kaleido.calc_fig_sync(fig, opts=opts, kopts={"mathjax": False, "path": CHROMIUM})
    except Exception as err:  # kaleido raises several types (no browser, timeout, JS error)
        raise RuntimeError(f"could not render the figure: {err}") from err


def _svg_or_message(fig: go.Figure) -> bytes:
    """The figure as SVG, or (when rendering fails) an SVG that says why: the download button's
    deferred callable runs outside the page, so it cannot show an error box."""
    try:
        return figure_image(fig, "svg")
    except RuntimeError as err:
        log.warning("SVG export failed: %s", err)
        text = str(err).replace("&", "&amp;").replace("<", "&lt;")[:300]
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="960" height="80">'
            f'<text x="10" y="40" font-size="16">{text}</text></svg>'
        ).encode()


def svg_button(fig: go.Figure, name: str, where: object = None) -> None:
    """A small "SVG" download button for `fig` (rendered only when clicked), key `<name>_svg`."""
    (where or st).download_button(
        _("SVG"),
        data=partial(_svg_or_message, fig),
        file_name=f"{name}.svg",
        mime="image/svg+xml",
        key=f"{name}_svg",
        help=_(
            "Download this figure as SVG (for slides you can edit); the camera in the "
            "chart's toolbar saves a PNG 1920 px wide."
        ),
        icon=":material/download:",
    )


def trace_npz(trace: Trace) -> bytes:
    """The Trace as an `.npz` file's bytes: `token_ids` and every activation under its
    canonical name, the same file `python -m engine trace` writes (numpy.savez)."""
    buf = io.BytesIO()
    np.savez(buf, token_ids=np.asarray(trace.token_ids), **trace.all_acts())
    return buf.getvalue()


# Sampling and dropout knobs a shared link carries: query parameter -> (widget key, type).
KNOBS: dict[str, tuple[str, type]] = {
    "temperature": ("output_temperature", float),
    "top_k": ("output_top_k", int),
    "top_p": ("output_top_p", float),
    "dropout_p": ("dropout_p", float),
    "dropout_seed": ("dropout_seed", int),
    "dropout_n": ("dropout_n", int),
    "gen_temperature": ("generate_temperature", float),
    "gen_top_k": ("generate_top_k", int),
    "gen_top_p": ("generate_top_p", float),
    "gen_seed": ("generate_seed", int),
    "greedy": ("generate_greedy", bool),
}


def knob_params() -> dict[str, str]:
    """The knobs set on the page shown, as query parameters (widgets of other pages are gone)."""
    ss = st.session_state
    out = {}
    for name, (key, kind) in KNOBS.items():
        value = ss.get(key)
        if value is None:
            continue
        if kind is bool:
            out[name] = "1" if value else "0"
        else:
            out[name] = str(int(value)) if kind is int else f"{float(value):.6g}"
    return out


def adopt_knob_params(written: dict[str, str]) -> list[str]:
    """Copy knob query parameters that differ from what the app last wrote into the widgets'
    session state (the page's widgets then start there, clamped to their ranges); returns a
    notice for each value that is not a number."""
    ss = st.session_state
    notices = []
    for name, (key, kind) in KNOBS.items():
        raw = st.query_params.get(name)
        if raw is None or raw == written.get(name):
            continue
        try:
            ss[key] = raw.strip() not in ("0", "false", "") if kind is bool else kind(float(raw))
        except ValueError:
            notices.append(
                _("The link's {name}='{raw}' is not a number; ignored.").format(
                    name=name, raw=raw[:40]
                )
            )
    return notices


def share_link(params: dict[str, str]) -> str:
    """The address of the page shown with `params` as its query (the whole view)."""
    url = urlsplit(st.context.url or "")
    return f"{url.scheme}://{url.netloc}{url.path}?{urlencode(params)}"


def export_sidebar(trace: Trace, params: dict[str, str]) -> None:
    """The sidebar's export block: the Trace as .npz and the link to this exact view."""
    sb = st.sidebar
    sb.divider()
    sb.download_button(
        _("Download the Trace (.npz)"),
        data=partial(trace_npz, trace),
        file_name="trace.npz",
        mime="application/octet-stream",
        key="_export_npz",
        help=_(
            "Every activation of this text under its canonical name, the same file as "
            "`python -m engine trace`."
        ),
        icon=":material/download:",
    )
    sb.caption(_("Link to this view (layer, head, position, knobs, lecture mode, open sections):"))
    # A Markdown link, not `st.code` with its copy button: a code block costs every page the
    # frontend's syntax highlighter (a 1.5 MB script, ~0.4 s of the browser's main thread on
    # each visit, measured with Chromium's profiler), and it showed Chinese text %-encoded.
    label = _("This view")
    sb.markdown(f"[🔗 {label}]({share_link(params)})")
    sb.caption(_("Right-click the link to copy it."))
