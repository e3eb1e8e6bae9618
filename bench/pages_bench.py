"""Page benchmark: every stage page of the app in Streamlit's AppTest, on a long text, with the
Trace cached: the plain rerun and every body widget a user would change.

For each page that exists (`ui.stages.STAGES`): the first run (model load, Trace, derived
views), then `rounds` rounds, interleaved across pages, each of which reruns the page once as it
is (the plain rerun) and then changes every widget of the page body, one at a time, to another
valid value and reruns (an interaction). Widgets are found in the AppTest tree (`at.main`: the
sidebar's text, model, layer, head and position boxes are not the page body) and named by key;
the new value is the next option (wrapping round) or the value one step up (back to the minimum
at the maximum), a flipped toggle, so pages added later are covered without a list here.
Buttons (actions), text boxes (a new input), data editors (AppTest cannot edit them) and
choosers with no value (a preset that loads a new text) are listed as not exercised, with why;
a widget whose change turns out to replace the page's text is dropped after that run and the
page reopened on the benchmark text.

Time: the server's, the duration of `ScriptRunner._run_script` for the request (callbacks, the
script, any `st.rerun()` it triggers, session-state cleanup), without AppTest's polling and
parsing; AppTest's wall time is kept beside it. A widget inside an `st.fragment` is rerun as the
browser asks for it (`ClientState.fragment_id`): only that fragment runs, and the browser keeps
the rest of the page (`_TimedRunner`). Figure bytes are the plotly JSON specs the page holds (the
sum of its charts' `spec` strings), after the first run and at most over every run.

Runs in its own process (`python -m bench.pages_bench`, which `run_pages` starts), so the app's
caches (`ui.cache`) and its thread setting do not touch the capture benchmark. `--model gpt2`
measures a GPT-2-small-shaped random model at its whole context of 1,024 tokens instead (the
lecture server's case; minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit import config  # noqa: E402
from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates  # noqa: E402
from streamlit.runtime.scriptrunner import ScriptRunnerEvent  # noqa: E402
from streamlit.runtime.scriptrunner.script_cache import ScriptCache  # noqa: E402
from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequests  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402
from streamlit.testing.v1 import app_test as _app_test  # noqa: E402
from streamlit.testing.v1 import local_script_runner as _local_runner  # noqa: E402
from streamlit.testing.v1.element_tree import Widget  # noqa: E402
from streamlit.testing.v1.local_script_runner import LocalScriptRunner  # noqa: E402

from tests.support import lazy_section_keys  # noqa: E402  (read from the pages' sources)

N_TOKENS = 256  # or the model's context, if shorter
INTERACTION_LIMIT_S = 0.15  # issue 19: a rerun on a cached Trace, plain or after a widget change
BYTES_LIMIT = 2 * 1024 * 1024
GPT2_MODEL = "gpt2_small_random"  # `--model gpt2`: GPT-2 small's shape, random weights
GPT2_TOKENS = 1024

# Widgets whose change is not a view change of the same text, and why they are not exercised.
NOT_EXERCISED = {
    "button": "a button: an action, not a value",
    "download_button": "a button: an action, not a value",
    "text_input": "a text box: typing is a new input",
    "text_area": "a text box: typing is a new input",
    "chat_input": "a text box: typing is a new input",
    "file_uploader": "an upload",
}


# --- timing the server's script run ------------------------------------------------------------


@dataclass
class RunRecord:
    """One AppTest run: the server's time (`ScriptRunner._run_script`), AppTest's wall time,
    without the garbage collection after it (timed apart), how many script or fragment
    executions it took (more than one after an `st.rerun()`), which
    fragments a fragment-scoped run ran ([] for the whole page), and the messages the browser
    holds afterwards."""

    server_s: float = 0.0
    wall_s: float = 0.0
    gc_s: float = 0.0  # the server's garbage collection after the run (`runner.postScriptGC`)
    scripts: int = 0
    fragment_ids: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)  # what the run computed anew (`_Computed`)
    msgs: list[Any] = field(default_factory=list)


class _Next:
    """What the next AppTest run should do, and what the last one measured (one run at a time)."""

    fragment_id: str | None = None  # rerun only this fragment, as the browser asks for it
    held: list[Any] | None = None  # the messages the browser holds before that run
    last: RunRecord | None = None


class _TimedRunner(LocalScriptRunner):
    """AppTest's script runner, timing `ScriptRunner._run_script` and able to rerun one fragment.

    A browser reruns only the fragment a changed widget belongs to (`ClientState.fragment_id`)
    and keeps the rest of the page; AppTest (Streamlit 1.67) always reruns the whole script.
    Here the request carries the fragment id, and the queue starts with the messages of the
    previous run, which the fragment run's start clears except those outside the fragment
    (`ForwardMsgQueue.clear(fragment_ids_this_run=...)`, what AppSession does), so the element
    tree is the whole page the browser shows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fragment_id, held = _Next.fragment_id, _Next.held
        _Next.fragment_id = _Next.held = None
        self._server_s = 0.0
        if self._fragment_id:
            # LocalScriptRunner queues a full rerun (RerunData()) on creation, which would
            # absorb the fragment's request: start from no request, as AppSession creates its
            # runner with the browser's request as the first one.
            self._requests = ScriptRequests()
            for msg in held or []:
                self.forward_msg_queue.enqueue(msg)

    def request_rerun(self, rerun_data: Any) -> bool:
        if self._fragment_id:
            rerun_data = dataclasses.replace(rerun_data, fragment_id=self._fragment_id)
        return super().request_rerun(rerun_data)

    def _run_script(self, rerun_data: Any) -> None:
        start = time.perf_counter()
        try:
            super()._run_script(rerun_data)
        finally:
            self._server_s += time.perf_counter() - start

    def run(self, *args: Any, **kwargs: Any) -> Any:
        tree = super().run(*args, **kwargs)
        gc_s = 0.0
        if config.get_option("runner.postScriptGC"):
            # What the server's ScriptRunner does after every run (AppTest's runner does not),
            # after the browser was told the run finished: timed apart, and without it garbage
            # of earlier runs would be collected inside later timed runs.
            start = time.perf_counter()
            gc.collect(2)
            gc_s = time.perf_counter() - start
        started = [
            data
            for event, data in zip(self.events, self.event_data, strict=True)
            if event == ScriptRunnerEvent.SCRIPT_STARTED
        ]
        _Next.last = RunRecord(
            server_s=self._server_s,
            gc_s=gc_s,
            scripts=len(started),
            fragment_ids=list(started[-1].get("fragment_ids_this_run") or []) if started else [],
            msgs=list(self.forward_msgs()),
        )
        return tree


class _Computed:
    """What a run computed that no cache held: each `ui.cache.SharedCache` value computed (by
    the cache's name in ui.cache: "LENSES", "DROPOUT_TRACES", ...) and each unit of a lazy
    Trace computed ("trace unit"). A widget whose change computes something is not a view of
    data already computed (a new dropout pass, ablation, lens block, PCA, generation): the
    summary keeps those apart from the reruns on cached data (`summarise`)."""

    names: ClassVar[list[str]] = []

    @classmethod
    @contextlib.contextmanager
    def tracking(cls) -> Iterator[None]:
        import ui.cache
        from engine.trace import LazyActs

        caches = {
            id(v): k for k, v in vars(ui.cache).items() if isinstance(v, ui.cache.SharedCache)
        }
        shared_get, unit = ui.cache.SharedCache.get, LazyActs.unit

        def get(self: Any, key: Any, compute: Any, *args: Any, **kwargs: Any) -> Any:
            def counted() -> Any:
                cls.names.append(caches.get(id(self), "cache"))
                return compute()

            return shared_get(self, key, counted, *args, **kwargs)

        def lazy_unit(self: Any, *args: Any, **kwargs: Any) -> Any:
            before = sum(self.computations.values())
            try:
                return unit(self, *args, **kwargs)
            finally:
                if sum(self.computations.values()) > before:
                    cls.names.append("trace unit")

        ui.cache.SharedCache.get, LazyActs.unit = get, lazy_unit  # type: ignore[method-assign]
        try:
            yield
        finally:
            ui.cache.SharedCache.get, LazyActs.unit = shared_get, unit  # type: ignore[method-assign]


@contextlib.contextmanager
def timed_apptest() -> Iterator[None]:
    """AppTest runs with `_TimedRunner` inside this block, all of them with one script cache.

    A server compiles each script once (the Runtime's `ScriptCache`, with Streamlit's "magic"
    AST pass) and every later run reuses the bytecode; AppTest (Streamlit 1.67) makes a new
    `ScriptCache` for every run, so each of its runs compiled app.py and the page again, about
    40 ms here that no click on a server costs. Here one cache serves every run, as on a
    server."""
    shared = ScriptCache()
    saved = _app_test.LocalScriptRunner, _local_runner.ScriptCache, _app_test.ScriptCache
    _app_test.LocalScriptRunner = _TimedRunner  # type: ignore[misc]
    _local_runner.ScriptCache = _app_test.ScriptCache = lambda: shared  # type: ignore[assignment]
    try:
        yield
    finally:
        _app_test.LocalScriptRunner, _local_runner.ScriptCache, _app_test.ScriptCache = saved


def widget_fragments(msgs: list[Any]) -> dict[str, str]:
    """Widget id -> the id of the fragment it is drawn in, from the messages of a run."""
    out: dict[str, str] = {}
    for msg in msgs:
        if not msg.HasField("delta") or msg.delta.WhichOneof("type") != "new_element":
            continue
        el = msg.delta.new_element
        proto = getattr(el, el.WhichOneof("type") or "", None)
        wid = getattr(proto, "id", "") if proto is not None else ""
        if wid and msg.delta.fragment_id:
            out[wid] = msg.delta.fragment_id
    return out


def _sort_tree(node: Any) -> None:
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        node.children = dict(sorted(children.items()))
        for child in node.children.values():
            _sort_tree(child)


def timed_run(
    at: AppTest,
    states: WidgetStates | None = None,
    fragment_id: str | None = None,
    held: list[Any] | None = None,
) -> RunRecord:
    """Run `at` (with these widget states, else the tree's) under `timed_apptest`; with
    `fragment_id`, only that fragment, the browser holding `held`."""
    _Next.fragment_id, _Next.held, _Next.last = fragment_id, held, None
    _Computed.names = []
    start = time.perf_counter()
    if states is None:
        at.run()
    else:
        at._run(states)  # what ElementTree.run does, with the states a browser would send
    wall = time.perf_counter() - start
    if fragment_id:
        _sort_tree(at._tree)  # the fragment's elements came last: back into page order
    record = _Next.last
    if record is None:
        raise RuntimeError("AppTest did not run through the timed runner (use timed_apptest)")
    record.wall_s = wall - record.gc_s
    record.computed = sorted(set(_Computed.names))
    return record


# --- the widgets of a page body ----------------------------------------------------------------


def widget_name(w: Any) -> str:
    """A widget's name in the results: its key, or "kind: label" for one without a key."""
    return w.key or f"{w.type}: {getattr(w.proto, 'label', '')}"


def body_widgets(at: AppTest) -> tuple[list[Any], list[dict[str, str]]]:
    """The widgets of the page body in page order, and the keyed elements that are not widgets
    AppTest can set (a data editor), with why."""
    widgets, others = [], []
    for node in at.main:
        if isinstance(node, Widget):
            widgets.append(node)
        elif getattr(node, "key", None) and getattr(
            getattr(node, "proto", None), "editing_mode", 0
        ):
            others.append(
                {
                    "name": node.key,
                    "kind": "data_editor",
                    "why": "a data editor: AppTest cannot edit",
                }
            )
    return widgets, others


def _label(w: Any) -> str:
    """A widget's current value as the browser shows it (an option's label, a number)."""
    kind = w.type
    if kind in ("selectbox", "radio"):
        return "" if w.value is None else w.options[w.index]
    if kind == "select_slider":
        return str(w.format_func(w.value))
    if kind == "multiselect":
        return ", ".join(w.values)
    if kind == "button_group":
        return ", ".join(w.formatted_values)
    return repr(w.value)


def next_state(w: Any) -> tuple[WidgetState, str, str] | str:
    """The widget state a browser sends when the user moves `w` to its next value, with the
    old and new value as shown; or why `w` is not exercised."""
    kind = w.type
    if kind in NOT_EXERCISED:
        return NOT_EXERCISED[kind]
    if getattr(w.proto, "disabled", False):
        return "disabled here"
    ws = WidgetState()
    ws.id = w.id
    if kind in ("selectbox", "radio", "select_slider", "button_group", "multiselect"):
        options = list(w.options)
        if kind in ("selectbox", "radio") and w.value is None:
            return "a chooser with no value (a preset: an action that loads a text)"
        if len(options) < 2:
            return "fewer than two options"
        if kind in ("multiselect", "button_group"):
            current = list(w.values if kind == "multiselect" else w.formatted_values)
            after = options.index(current[-1]) + 1 if current else 0
            new = [options[after % len(options)]]
            ws.string_array_value.data[:] = new
            return ws, ", ".join(current), ", ".join(new)
        if kind == "select_slider" and isinstance(w.value, (list, tuple)):
            return "a range"
        old = _label(w)
        new_label = options[(options.index(old) + 1) % len(options)]
        if kind == "select_slider":
            ws.string_array_value.data[:] = [new_label]
        else:
            ws.string_value = new_label
        return ws, old, new_label
    if kind in ("checkbox", "toggle"):
        ws.bool_value = not bool(w.value)
        return ws, repr(bool(w.value)), repr(not bool(w.value))
    if kind in ("slider", "number_input"):
        value = w.value
        if value is None or isinstance(value, (list, tuple)):
            return "a range or no value"
        if not isinstance(value, (int, float)):
            return f"a {type(value).__name__} value"
        low, high, step = w.min, w.max, w.step
        new_value = value + step
        if high is not None and new_value > high + 1e-9:
            new_value = low if low is not None else value - step
        new_value = int(new_value) if isinstance(value, int) else round(float(new_value), 10)
        if new_value == value:
            return "only one value"
        w.set_value(new_value)
        return w._widget_state, repr(value), repr(new_value)
    return f"not handled: {kind}"


def find_widget(at: AppTest, name: str) -> Any | None:
    widgets, _others = body_widgets(at)
    return next((w for w in widgets if widget_name(w) == name), None)


# --- the benchmark -----------------------------------------------------------------------------


def bench_tokens(model: str = "bundled") -> int:
    """Tokens of the benchmark text: N_TOKENS, or the model's whole context if shorter."""
    from ui.cache import load_model

    return min(N_TOKENS, load_model(model).config.n_ctx)


def text_of_tokens(n_tokens: int, model: str = "bundled") -> str:
    """A Shakespeare excerpt of `n_tokens` tokens of the model's tokenizer (the app's model
    `model`: `INSIDE_GPT_TEST_MODEL` and `INSIDE_GPT_MODELS_DIR` apply)."""
    import gzip

    from ui.cache import load_model

    tokenizer = load_model(model).tokenizer
    with gzip.open(ROOT / "assets" / "corpus" / "shakespeare.txt.gz", "rt", encoding="utf-8") as f:
        raw = f.read(50_000)
    start = raw.index("ACT I")  # skip the title page and the cast list
    ids = tokenizer.encode(raw[start:])
    return tokenizer.decode(ids[:n_tokens])  # the page records how many tokens it ran


def _plotly_bytes(at: AppTest) -> tuple[int, int]:
    specs = [el.proto.spec for el in at.get("plotly_chart")]
    return sum(len(s.encode("utf-8")) for s in specs), len(specs)


def _text(at: AppTest) -> Any:
    return at.session_state["text"] if "text" in at.session_state else None


@dataclass
class _Page:
    """One page's AppTest session, what the browser holds, and what was measured."""

    path: str
    text: str
    model: str
    row: dict[str, Any]
    factory: Callable[[], AppTest] | None = None  # default: app.py on `path`, `text`, `model`
    sections: tuple[str, ...] = ()  # lazy sections (`ui.widgets.lazy_section`) opened first
    at: Any = None
    msgs: list[Any] = field(default_factory=list)
    fragments: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)  # widget -> why it is no longer run
    seen: set[tuple[str, str]] = field(default_factory=set)  # (widget, value) shown so far

    def open(self) -> RunRecord:
        """Open the page in a new session (the first run)."""
        if self.factory is not None:
            at = self.factory()
        else:
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
            at.query_params["text"] = self.text
            at.query_params["model"] = self.model
            at.switch_page(self.path)
        for key in self.sections:  # as a click on each section's header would
            at.session_state[key] = True
        self.at = at
        record = timed_run(at)
        self.after(record)
        return record

    def after(self, record: RunRecord) -> None:
        self.msgs = record.msgs
        self.fragments = widget_fragments(record.msgs)
        for e in self.at.exception:
            if str(e.value) not in self.row["errors"]:
                self.row["errors"].append(str(e.value))
        n_bytes, _charts = _plotly_bytes(self.at)
        self.row["plotly_bytes_max"] = max(self.row.get("plotly_bytes_max", 0), n_bytes)
        widgets, _others = body_widgets(self.at)
        for w in widgets:
            with contextlib.suppress(Exception):
                self.seen.add((widget_name(w), _label(w)))

    def interact(self, name: str, round_: int) -> None:
        """Move widget `name` to its next value and rerun, as the browser would; record it."""
        widgets = self.row["widgets"]
        w = find_widget(self.at, name)
        if w is None:
            return  # not on the page in this state
        step = next_state(w)
        if isinstance(step, str):
            widgets.setdefault(name, _widget_row(w))["skipped"].append(step)
            return
        state, old, new = step
        states = self.at._tree.get_widget_states()
        for s in states.widgets:
            if s.id == w.id:
                s.CopyFrom(state)
                break
        else:
            states.widgets.append(state)
        fragment = self.fragments.get(w.id)
        text_before = _text(self.at)
        repeat = (name, new) in self.seen  # that value was shown before: caches may hold it
        record = timed_run(self.at, states, fragment, self.msgs if fragment else None)
        self.after(record)
        row = widgets.setdefault(name, _widget_row(w))
        if _text(self.at) != text_before:  # not a view of the same text: drop it, reopen
            self.dropped[name] = "its change replaced the page's text (a new Trace)"
            row["dropped"] = self.dropped[name]
            self.open()
            return
        moved = find_widget(self.at, name)
        row["samples"].append(
            {
                "round": round_,
                "server_s": record.server_s,
                "wall_s": record.wall_s,
                "gc_s": record.gc_s,
                "scripts": record.scripts,
                "fragment": bool(record.fragment_ids),
                "from": old,
                "to": new,
                "changed": moved is not None and _label(moved) == new,
                "repeat": repeat,
                "computed": record.computed,
            }
        )
        self.seen.add((name, new))


def _widget_row(w: Any) -> dict[str, Any]:
    return {
        "name": widget_name(w),
        "kind": w.type,
        "label": getattr(w.proto, "label", ""),
        "samples": [],
        "skipped": [],
    }


def measure_pages(
    rounds: int = 5,
    model: str = "bundled",
    n_tokens: int | None = None,
    pages: list[str] | None = None,
    open_sections: bool = False,
) -> dict[str, Any]:
    """Every stage page (or those of `pages`, paths like "pages/3_Attention.py"): the first run,
    then `rounds` rounds of a plain rerun and one interaction per body widget, interleaved
    across pages. `n_tokens`: the text's length (default `bench_tokens`). `open_sections`:
    every lazy section of every page open (the most a page computes, and the widgets inside
    the sections exercised too); by default they are closed, as a page opens."""
    from ui.stages import STAGES

    n_text = n_tokens or bench_tokens(model)
    text = text_of_tokens(n_text, model)
    stages = [s for s in STAGES if (ROOT / s.path).is_file() and (pages is None or s.path in pages)]
    out: dict[str, Any] = {
        "model": model,
        "text_tokens": n_text,
        "text_chars": len(text),
        "rounds": rounds,
        "open_sections": open_sections,
        "load_before": os.getloadavg(),
        "pages": [],
    }
    runs: list[_Page] = []
    with timed_apptest(), _Computed.tracking():
        for stage in stages:
            row: dict[str, Any] = {
                "page": stage.path,
                "title": stage.title,
                "errors": [],
                "rerun_s": [],
                "rerun_server_s": [],
                "gc_s": [],  # after each plain rerun
                "widgets": {},
            }
            sections = tuple(lazy_section_keys(stage.path)) if open_sections else ()
            page = _Page(stage.path, text, model, row, sections=sections)
            record = page.open()
            n_bytes, n_charts = _plotly_bytes(page.at)
            ss = page.at.session_state
            row.update(
                first_run_s=record.wall_s,
                first_run_server_s=record.server_s,
                plotly_bytes=n_bytes,
                charts=n_charts,
                n_tokens=ss["_n_tokens"] if "_n_tokens" in ss else None,
            )
            widgets, others = body_widgets(page.at)
            row["not_widgets"] = others
            row["order"] = [widget_name(w) for w in widgets]
            runs.append(page)
        for round_ in range(rounds):
            for page in runs:
                record = timed_run(page.at)
                page.after(record)
                page.row["rerun_s"].append(record.wall_s)
                page.row["rerun_server_s"].append(record.server_s)
                page.row["gc_s"].append(record.gc_s)
                names = [widget_name(w) for w in body_widgets(page.at)[0]]
                for name in names:
                    if name not in page.row["order"]:
                        page.row["order"].append(name)  # shown only in some states
                    if name not in page.dropped:
                        page.interact(name, round_)
    out["load_after"] = os.getloadavg()
    for page in runs:
        out["pages"].append(summarise(page.row))
    return out


def summarise(row: dict[str, Any]) -> dict[str, Any]:
    """Medians and the worst widget of one page's samples (server time)."""
    row["rerun_median_s"] = statistics.median(row["rerun_s"]) if row["rerun_s"] else None
    server = row["rerun_server_s"]
    row["rerun_server_median_s"] = statistics.median(server) if server else None
    row["gc_median_s"] = statistics.median(row["gc_s"]) if row.get("gc_s") else None
    all_samples: list[float] = []
    worst: tuple[float, str, float] | None = None
    cached: tuple[float, str] | None = None  # the worst widget that computed nothing anew
    largest: tuple[float, str] | None = None
    for w in row["widgets"].values():
        times = [s["server_s"] for s in w["samples"]]
        w["server_median_s"] = statistics.median(times) if times else None
        w["wall_median_s"] = statistics.median(s["wall_s"] for s in w["samples"]) if times else None
        w["changed"] = bool(times) and all(s["changed"] for s in w["samples"])
        w["fragment"] = any(s["fragment"] for s in w["samples"])
        w["skipped"] = sorted(set(w["skipped"]))
        # samples that computed something anew (a model run, a new lens block, a PCA) are not
        # reruns on cached data: the cached median is over the others only
        computing = [x for x in w["samples"] if x.get("computed")]
        w["computes"] = bool(computing)
        w["computed"] = sorted({n for x in computing for n in x["computed"]})
        still = [x["server_s"] for x in w["samples"] if not x.get("computed")]
        w["cached_median_s"] = statistics.median(still) if still else None
        if not times:
            continue
        all_samples += times
        if worst is None or w["server_median_s"] > worst[0]:
            worst = (w["server_median_s"], w["name"], w["wall_median_s"])
        if still and (cached is None or w["cached_median_s"] > cached[0]):
            cached = (w["cached_median_s"], w["name"])
        for t in times:
            if largest is None or t > largest[0]:
                largest = (t, w["name"])
    row["exercised"] = [w["name"] for w in row["widgets"].values() if w["samples"]]
    row["interaction_median_s"] = statistics.median(all_samples) if all_samples else None
    row["interaction_worst_s"] = worst[0] if worst else None
    row["interaction_worst_widget"] = worst[1] if worst else None
    row["interaction_worst_wall_s"] = worst[2] if worst else None
    row["interaction_max_s"] = largest[0] if largest else None
    row["interaction_max_widget"] = largest[1] if largest else None
    row["rerun_ok"] = row["rerun_server_median_s"] is not None and (
        row["rerun_server_median_s"] <= INTERACTION_LIMIT_S
    )
    row["interaction_ok"] = worst is None or worst[0] <= INTERACTION_LIMIT_S
    row["cached_worst_s"] = cached[0] if cached else None
    row["cached_worst_widget"] = cached[1] if cached else None
    row["cached_ok"] = cached is None or cached[0] <= INTERACTION_LIMIT_S
    row["computing"] = {
        w["name"]: {
            "server_median_s": w["server_median_s"],
            "computed": w["computed"],
            "samples_computing": sum(bool(x.get("computed")) for x in w["samples"]),
        }
        for w in row["widgets"].values()
        if w["computes"]
    }
    row["bytes_ok"] = max(row["plotly_bytes"], row.get("plotly_bytes_max", 0)) <= BYTES_LIMIT
    return row


# --- running it in its own process -------------------------------------------------------------


def run_pages(
    rounds: int = 5,
    browser_rounds: int = 0,
    log: Any = print,
    timeout: float = 3600,
    model: str = "bundled",
    open_sections: bool = False,
) -> dict[str, Any]:
    """`measure_pages` in a fresh process (1 torch thread, as the app runs by default), then,
    if `browser_rounds` > 0 and Chromium is there, the browser's time to idle. `model`:
    "bundled", or "gpt2" (GPT-2 small's shape, random weights, at 1,024 tokens)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_WAIT_POLICY="PASSIVE")
    cmd = [sys.executable, "-m", "bench.pages_bench", "--rounds", str(rounds)]
    cmd += ["--browser-rounds", str(browser_rounds), "--model", model]
    cmd += ["--open-sections"] if open_sections else []
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        log(f"page benchmark failed:\n{proc.stderr[-3000:]}")
        return {"error": proc.stderr[-3000:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    log(f"pages ({model}): {len(result['pages'])} pages in {time.perf_counter() - t0:.0f} s")
    return result


@contextlib.contextmanager
def gpt2_models_dir() -> Iterator[str]:
    """A models folder holding GPT-2 small's shape with seeded random weights (50,257 tokens),
    the app set to read its whole context (INSIDE_GPT_MAX_TOKENS=1024); yields the model id."""
    import torch

    from engine.checkpoints import random_model, save_checkpoint
    from engine.config import PRESETS

    with tempfile.TemporaryDirectory(prefix="pagebench-") as folder:
        save_checkpoint(random_model(PRESETS["gpt2"], seed=0), Path(folder) / GPT2_MODEL, 50256)
        torch.set_num_threads(1)
        saved = {k: os.environ.get(k) for k in ("INSIDE_GPT_MODELS_DIR", "INSIDE_GPT_MAX_TOKENS")}
        os.environ["INSIDE_GPT_MODELS_DIR"] = folder
        os.environ["INSIDE_GPT_MAX_TOKENS"] = str(GPT2_TOKENS)
        os.environ.pop("INSIDE_GPT_TEST_MODEL", None)
        try:
            yield GPT2_MODEL
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


# --- the table ---------------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.0f}"


def _computing_note(w: dict[str, Any]) -> str:
    """' † (CACHES, in k of n changes; m ms without them)' for a widget whose changes computed."""
    n = len(w["samples"])
    k = sum(bool(x.get("computed")) for x in w["samples"])
    note = f" † ({', '.join(w['computed'])}" + (f"; {k} of {n} changes" if k < n else "")
    if w.get("cached_median_s") is not None:
        note += f"; {_ms(w['cached_median_s'])} without them"
    return note + ")"


def _model_name(pages: dict[str, Any]) -> str:
    model = pages["model"]
    return "GPT-2 small shape, random weights" if model == GPT2_MODEL else model


def markdown(pages: dict[str, Any]) -> str:
    if "error" in pages:
        return "Page benchmark failed: see results.json."
    sections = "every lazy section open, " if pages.get("open_sections") else ""
    head = (
        f"Pages ({_model_name(pages)} model, {pages.get('text_tokens', N_TOKENS)}-token text, "
        + sections
    )
    if not any(p["rerun_s"] for p in pages["pages"]):  # memory only: no timings
        lines = [
            head + f"AppTest): plotly JSON each page sends (limit {BYTES_LIMIT / 1024**2:.0f} MB):",
            "",
            "| page | charts | plotly JSON (KB) | ok |",
            "|---|---|---|---|",
        ]
        for p in pages["pages"]:
            ok = "yes" if p["bytes_ok"] else "NO"
            if p["errors"]:
                ok += " (exception)"
            lines.append(
                f"| {p['title']} | {p['charts']} | {p['plotly_bytes'] / 1024:,.0f} | {ok} |"
            )
        return "\n".join(lines)
    if not any("interaction_worst_s" in p for p in pages["pages"]):
        return _markdown_before_interactions(pages, head)
    load = pages.get("load_before")
    lines = [
        head
        + f"AppTest, {pages.get('rounds', '?')} rounds"
        + (
            f", load average {load[0]:.2f} before, {pages['load_after'][0]:.2f} after"
            if load
            else ""
        )
        + "): server time of the script run (`ScriptRunner._run_script`), with the Trace "
        "cached. rerun = median plain rerun; interaction = a body widget moved to its next "
        "value and the page rerun (a fragment alone if the widget is in one), median over "
        "every widget and round; worst = the widget with the largest median, and AppTest's "
        "wall time for it; cached = the worst widget's median over the changes that computed "
        "nothing anew (no cache missed, no unit of the lazy Trace computed: a view of data "
        "already computed; † below marks a widget with changes that computed, and what); "
        "plotly JSON = the most the page held. Limits "
        f"{INTERACTION_LIMIT_S * 1e3:.0f} ms and {BYTES_LIMIT / 1024**2:.0f} MB.",
        "",
        "| page | first run (s) | rerun (ms) | interaction (ms) | worst (ms) | worst widget "
        "| AppTest wall (ms) | cached (ms) | charts | plotly JSON (KB) | ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    browser = {b["title"]: b for b in pages.get("browser", {}).get("pages", [])}
    if browser:
        lines[2] += " browser idle (s) | x floor |"
        lines[3] += "---|---|"
    for p in pages["pages"]:
        ok = "yes" if p["rerun_ok"] and p["interaction_ok"] and p["bytes_ok"] else "NO"
        if p["errors"]:
            ok = "NO (exception)"
        n_bytes = max(p["plotly_bytes"], p.get("plotly_bytes_max", 0))
        line = (
            f"| {p['title']} | {p['first_run_s']:.2f} | {_ms(p['rerun_server_median_s'])} | "
            f"{_ms(p['interaction_median_s'])} | {_ms(p['interaction_worst_s'])} | "
            f"{p['interaction_worst_widget'] or '-'} | {_ms(p['interaction_worst_wall_s'])} | "
            f"{_ms(p.get('cached_worst_s'))} | {p['charts']} | {n_bytes / 1024:,.0f} | {ok} |"
        )
        if browser:
            b = browser.get(p["title"])
            line += f" {b['idle_median_s']:.2f} | {b['ratio_to_floor']:.2f} |" if b else " - | - |"
        lines.append(line)
    gcs = [(p["gc_median_s"], p["title"]) for p in pages["pages"] if p.get("gc_median_s")]
    if gcs:
        worst_gc = max(gcs)
        lines += [
            "",
            "Not in these times: the server's garbage collection after every run "
            "(`runner.postScriptGC`, once the browser has been told the run finished; it delays "
            "the next run): median "
            f"{_ms(statistics.median(g for g, _ in gcs))} ms after a plain rerun, "
            f"{_ms(worst_gc[0])} ms on {worst_gc[1]}.",
        ]
    lines += [
        "",
        "Widgets per page (median server ms; * = rerun as a fragment; † = computed something "
        "anew, and what: the ui.cache caches missed, or a unit of the lazy Trace):",
        "",
    ]
    for p in pages["pages"]:
        done = [
            f"{w['name']}{'*' if w['fragment'] else ''} {_ms(w['server_median_s'])}"
            + (_computing_note(w) if w.get("computes") else "")
            + ("" if w["changed"] else " (value did not change)")
            for w in p["widgets"].values()
            if w["samples"]
        ]
        skipped: dict[str, list[str]] = {}
        for w in p["widgets"].values():
            for why in w["skipped"] if not w["samples"] else []:
                skipped.setdefault(why, []).append(w["name"])
            if w.get("dropped"):
                skipped.setdefault(w["dropped"], []).append(w["name"])
        for other in p.get("not_widgets", []):
            skipped.setdefault(other["why"], []).append(other["name"])
        line = f"- {p['title']}: " + (", ".join(done) or "no widget in the page body")
        buttons = skipped.pop(NOT_EXERCISED["button"], [])
        if skipped or buttons:
            parts = [f"{', '.join(names)} ({why})" for why, names in skipped.items()]
            if buttons:  # the names are in the JSON
                parts.append(f"{len(buttons)} buttons")
            line += "; not exercised: " + "; ".join(parts)
        lines.append(line)
    lines += _browser_lines(pages)
    return "\n".join(lines)


def _markdown_before_interactions(pages: dict[str, Any], head: str) -> str:
    """A results file written before interactions were measured: its plain reruns (AppTest
    wall time)."""
    lines = [
        head + "AppTest; rerun = median AppTest wall time of reruns with the Trace cached):",
        "",
        "| page | first run (s) | rerun (ms) | charts | plotly JSON (KB) |",
        "|---|---|---|---|---|",
    ]
    for p in pages["pages"]:
        lines.append(
            f"| {p['title']} | {p['first_run_s']:.2f} | {_ms(p['rerun_median_s'])} | "
            f"{p['charts']} | {p['plotly_bytes'] / 1024:,.0f} |"
        )
    return "\n".join(lines + _browser_lines(pages))


def _browser_lines(pages: dict[str, Any]) -> list[str]:
    b = pages.get("browser", {})
    if "floor_median_s" in b:
        return [
            "",
            f"Browser floor page (one 256x256 plotly heatmap): {b['floor_median_s']:.2f} s to "
            f"idle (median of {len(b['floor_s'])}); limit {browser_limit():.1f}x the floor.",
        ]
    if "skipped" in b:
        return ["", f"Browser timing skipped: {b['skipped']}"]
    return []


def browser_limit() -> float:
    from bench import browser_bench

    return browser_bench.IDLE_RATIO_LIMIT


def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="page benchmark (used by bench/run.py)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--model",
        default="bundled",
        help='an app model id, or "gpt2": GPT-2 small\'s shape, random weights, 1,024 tokens',
    )
    parser.add_argument("--browser-rounds", type=int, default=0)
    parser.add_argument("--pages", nargs="*", help="only these page paths (pages/3_Attention.py)")
    parser.add_argument(
        "--open-sections", action="store_true", help="every lazy section of every page open"
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        model, n_tokens = args.model, None
        if model == "gpt2":
            model, n_tokens = stack.enter_context(gpt2_models_dir()), GPT2_TOKENS
        out = measure_pages(args.rounds, model, n_tokens, args.pages, args.open_sections)
        if args.browser_rounds > 0:
            from bench import browser_bench

            reason = browser_bench.available()
            if reason:
                out["browser"] = {"skipped": reason}
            else:
                text = text_of_tokens(out["text_tokens"], model)
                out["browser"] = browser_bench.measure_browser(text, args.browser_rounds, model)
    print(json.dumps(out))


if __name__ == "__main__":
    _main(sys.argv[1:])
