"""A Streamlit client that speaks the browser's websocket protocol, for the load test
(bench/load.py) and the replica tests: one `Session` per simulated student.

What a browser does, in protobuf messages from `streamlit.proto` (Streamlit 1.67): open
`/_stcore/stream` with the subprotocol "streamlit", send a `BackMsg.rerun_script`
(`ClientState`: the query string, the page's script hash, the widgets' values), then read
`ForwardMsg`s until `script_finished`. The first message of a session is `new_session` (the
app's pages); `page_info_changed` carries the query string the app writes (what a browser puts
in its address bar, so a reconnecting client reopens the same view from it); `delta`s carry the
elements. No browser, no JavaScript: typing is a widget value sent with a rerun, exactly what the
frontend sends. Loopback or any URL; nothing here listens.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect

FINISHED = ForwardMsg.ScriptFinishedStatus


class RunError(RuntimeError):
    """A run that did not finish: the connection closed, a timeout, a compile error."""


@dataclass
class Run:
    """What one script run sent back: its elements (in arrival order), how long it took from
    the request to `script_finished` (s), and the exceptions the page showed."""

    elements: list[Element] = field(default_factory=list)
    seconds: float = 0.0
    status: int = 0
    query_string: str | None = None
    exceptions: list[Any] = field(default_factory=list)

    def strings(self) -> Iterator[str]:
        """Every string the page's markdown, headings, metrics, alerts, captions and charts
        carry (a plotly figure's JSON walked to its strings): the labels a student reads."""
        for el in self.elements:
            kind = el.WhichOneof("type")
            if kind in ("markdown", "heading", "text"):
                yield getattr(el, kind).body
            elif kind == "alert":
                yield el.alert.body
            elif kind == "metric":
                yield el.metric.label
                yield el.metric.body
            elif kind == "plotly_chart":
                yield from _json_strings(json.loads(el.plotly_chart.spec or "{}"))

    def widget(self, kind: str, label: str) -> Element | None:
        """The first widget element of proto field `kind` ("text_area", "selectbox", ...) with
        this label, or None."""
        for el in self.elements:
            if el.WhichOneof("type") == kind and getattr(el, kind).label == label:
                return el
        return None


def _json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


class Session:
    """One browser tab: a websocket to `base` (http://host:port), the app's pages by URL path
    ("" is the home page), the current page and query string. Not thread-safe: one thread per
    Session."""

    def __init__(self, base: str, timeout_s: float = 120.0) -> None:
        self.base = base.rstrip("/")
        self.timeout_s = timeout_s
        self.pages: dict[str, str] = {}  # url path -> page script hash
        self.page = ""
        self.query_string = ""
        self.widget_ids: dict[str, str] = {}  # user key ("_w_text") -> widget id
        self.ws: ClientConnection | None = None
        self._stack = contextlib.ExitStack()
        self.cookie: str | None = None  # what the browser's cookie jar holds for base
        self.server_header: str | None = None  # nginx's X-Upstream: which replica answered

    def connect(self) -> None:
        """Open (or reopen) the websocket. A reopened one is a new server session: the view
        comes back from `query_string` on the next run, as in a reconnecting browser. Raises
        RunError when the page or the websocket cannot be opened."""
        self.close()
        if self.cookie is None:
            try:
                self.cookie = self._page_cookie()
            except OSError as err:
                raise RunError(f"cannot load the page: {err}") from err
        url = "ws" + self.base.removeprefix("http") + "/_stcore/stream"
        headers = {"Cookie": self.cookie} if self.cookie else None
        # websockets 17 wants connect() entered as a context manager; the stack exits it on close.
        self._stack = contextlib.ExitStack()
        try:
            self.ws = self._stack.enter_context(
                connect(
                    url,
                    subprotocols=["streamlit"],
                    max_size=None,
                    open_timeout=30,
                    additional_headers=headers,
                )
            )
        except (OSError, TimeoutError, WebSocketException) as err:
            self.ws = None
            raise RunError(f"cannot connect: {type(err).__name__}: {err}") from err
        response = self.ws.response
        self.server_header = response.headers.get("X-Upstream") if response else None
        self.widget_ids = {}

    def _page_cookie(self) -> str:
        """Load the page as a browser does first (GET /), keeping the cookie a balancer sets
        (ui.serve's nginx: the sticky-session key); "" when there is none."""
        with urllib.request.urlopen(self.base + "/", timeout=self.timeout_s) as response:
            response.read()
            cookies = response.headers.get_all("Set-Cookie") or []
        return "; ".join(c.split(";", 1)[0] for c in cookies)

    def close(self) -> None:
        if self.ws is not None:
            try:
                self._stack.close()
            except Exception:  # already gone
                pass
            self.ws = None

    def send(self, msg: BackMsg) -> None:
        if self.ws is None:
            self.connect()
        assert self.ws is not None
        self.ws.send(msg.SerializeToString())

    def run(self, page: str | None = None, widgets: dict[str, str] | None = None) -> Run:
        """Rerun `page` (default: the current one) with the current query string and the
        string values `widgets` (user key -> value, e.g. {"_w_text": "..."}); wait until the
        script finishes. Raises RunError if the connection closes or nothing finishes within
        timeout_s."""
        if page is not None and page != self.page:
            self.page = page
            self.widget_ids = {}  # a page switch: the browser sends no old widget values
        msg = BackMsg()
        rerun = msg.rerun_script
        rerun.query_string = self.query_string
        rerun.page_script_hash = self.pages.get(self.page, "")
        rerun.page_name = self.page
        for key, value in (widgets or {}).items():
            if key not in self.widget_ids:
                raise RunError(f"no widget with key {key!r} on this page yet")
            state = rerun.widget_states.widgets.add()
            state.id = self.widget_ids[key]
            state.string_value = value
        start = time.monotonic()
        try:
            self.send(msg)
            return self._collect(start)
        except (ConnectionClosed, OSError, TimeoutError) as err:
            self.close()
            raise RunError(f"{type(err).__name__}: {err}") from err

    def _collect(self, start: float) -> Run:
        assert self.ws is not None
        result = Run()
        while True:
            left = self.timeout_s - (time.monotonic() - start)
            if left <= 0:
                raise TimeoutError(f"no script_finished within {self.timeout_s:.0f} s")
            fwd = ForwardMsg()
            fwd.ParseFromString(self.ws.recv(timeout=left))
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                pages = fwd.new_session.app_pages
                self.pages = {p.url_pathname: p.page_script_hash for p in pages}
            elif kind == "page_info_changed":
                self.query_string = fwd.page_info_changed.query_string
                result.query_string = self.query_string
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                el = fwd.delta.new_element
                result.elements.append(el)
                widget = getattr(el, el.WhichOneof("type") or "", None)
                if widget is not None and getattr(widget, "id", "") and "-" in widget.id:
                    self.widget_ids[widget.id.rsplit("-", 1)[-1]] = widget.id
                if el.WhichOneof("type") == "exception":
                    result.exceptions.append(el.exception)
            elif kind == "script_finished":
                status = fwd.script_finished
                if status == FINISHED.FINISHED_WITH_COMPILE_ERROR:
                    raise RunError("the script did not compile")
                if status == FINISHED.FINISHED_EARLY_FOR_RERUN:  # st.rerun(): a new run follows
                    result.elements.clear()
                    result.exceptions.clear()
                    continue
                result.status = status
                result.seconds = time.monotonic() - start
                return result

    def clear_cache(self) -> None:
        """Send Streamlit's clear-cache request (the "Clear cache" menu item, or any client)."""
        msg = BackMsg()
        msg.clear_cache = True
        self.send(msg)
