"""Inside GPT: the home page, and the frame every page calls first.

Run with `streamlit run app.py`. Streamlit executes this file as `__main__`; the home page is
drawn only then, so the stage pages in `pages/` can `from app import frame, ...` without drawing
it. The home page itself imports this file as the module `app`, so home and pages share one set
of caches (Streamlit keys its caches by module name).

The frame contract (pages rely on it):

- `frame(stage_id) -> View | None`: page config, sidebar (navigation, text with presets, model,
  layer/head/position steppers), query parameters read and written, the model and the Trace
  loaded from caches, notices. None means there is no usable text: the page calls `st.stop()`.
- Shared values live in non-widget session_state keys "text", "model_id", "layer", "head",
  "pos"; widgets use their own keys (prefixed "_w_") and copy into the shared keys.
- `get_logit_lens(view)` and `get_head_scores(view)` are cached per (model, text).
- `next_stage(view)` draws the Previous / Next controls at the bottom of a page.
- `set_text(text)` replaces the shared text (Generate appends tokens with it).

Environment variables (set by the operator, never by a page):

- `INSIDE_GPT_MODELS_DIR`: folder searched for GPT-2 directories (default `models/` here).
- `INSIDE_GPT_ALLOW_PATHS=1`: adds a free-form directory path box to the sidebar.
- `INSIDE_GPT_MAX_TOKENS`: most tokens one page run shows (default 256; the model's context
  caps it too).
- `INSIDE_GPT_CACHE_MB`: memory for the Traces shared by every session (default 2048); one
  Trace may use at most half of it (a longer text is cut, with a notice). README "Reliability".
- `INSIDE_GPT_THREADS`: torch intra-op threads (default 1; see DESIGN.md "Threads").
- `INSIDE_GPT_TEST_MODEL=tiny`: tests only; "bundled" and "random" become the tiny preset with
  seeded random weights and cl100k_base[:4096].
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (DESIGN.md)

import dataclasses
import json
import logging
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import streamlit as st
import torch

from engine.capture import run_with_trace, trace_nbytes
from engine.checkpoints import (
    BUNDLED_DIR,
    CheckpointError,
    LoadedModel,
    load,
    load_directory,
    random_model,
)
from engine.config import PRESETS
from engine.figures.common import MAX_AXIS
from engine.lens import HeadScores, LogitLens, head_scores, logit_lens
from engine.tokenizer import EncodeSteps, TokenGroup, cl100k_truncated
from engine.trace import Trace

log = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parent.parent
HOME_PATH = "app.py"
PAGE_ICON = "🔬"
# The model reads at most a few hundred tokens; longer texts are cut to this many characters
# (with a notice) before anything tokenizes them.
MAX_TEXT_CHARS = 20_000
# The text box itself: Streamlit's browser side silently ignores an edit that would make the
# text longer than this, so it is far above MAX_TEXT_CHARS (a pasted megabyte still arrives and
# is cut with a notice) and the widget message stays under Streamlit's 25 MB widget-state limit.
TEXTBOX_MAX_CHARS = 4_000_000
# A text goes into the page address (shareable links) only while its URL-encoded form is at most
# this long: a reverse proxy refuses longer request lines (nginx: 8 KB by default), and
# Streamlit itself ignores a query string over 524,288 characters as a whole.
URL_TEXT_MAX_CHARS = 4_000
TRACE_CACHE_ENTRIES = 16

torch.set_num_threads(max(1, int(os.environ.get("INSIDE_GPT_THREADS", "1"))))


@dataclass(frozen=True)
class Stage:
    """One step of the seed article's flowchart, and the page that shows it."""

    id: str
    number: int
    title: str
    path: str  # relative to app.py, e.g. "pages/3_Attention.py"

    @property
    def url_path(self) -> str:
        """The page's URL path as Streamlit derives it from the file name ("Attention")."""
        return Path(self.path).stem.split("_", 1)[1]

    @property
    def label(self) -> str:
        return f"{self.number} · {self.title}"


STAGES: tuple[Stage, ...] = (
    Stage("tokens", 1, "Input & tokens", "pages/1_Tokens.py"),
    Stage("embeddings", 2, "Embeddings", "pages/2_Embeddings.py"),
    Stage("attention", 3, "Multi-head self-attention", "pages/3_Attention.py"),
    Stage("feed_forward", 4, "Feed-forward", "pages/4_Feed_forward.py"),
    Stage("layer_norm", 5, "Layer norm", "pages/5_Layer_norm.py"),
    Stage("residual", 6, "Residual stream", "pages/6_Residual.py"),
    Stage("dropout", 7, "Dropout", "pages/7_Dropout.py"),
    Stage("output", 8, "Output probabilities & logit lens", "pages/8_Output.py"),
    Stage("generate", 9, "Generate", "pages/9_Generate.py"),
)
STAGE_BY_ID: dict[str, Stage] = {s.id: s for s in STAGES}
# Stages drawn once per layer: the walk repeats them for every block.
LAYER_STAGES: tuple[str, ...] = ("attention", "feed_forward", "layer_norm", "residual", "dropout")


@dataclass(frozen=True)
class Preset:
    name: str
    text: str
    why: str


PRESETS_TEXT: tuple[Preset, ...] = (
    Preset(
        "Plain sentence",
        "The king is dead, and the queen will rule the land.",
        "a short English sentence: a first look at every stage",
    ),
    Preset(
        "Repeated line (induction)",
        "To be, or not to be, that is the question. To be, or not to be, that is the question.",
        "the second copy can be predicted from the first: look for induction heads",
    ),
    Preset(
        "Who is who (name tracking)",
        "When Romeo met Juliet in the garden, Juliet gave a rose to Romeo",
        "the model should expect the name that has not acted yet",
    ),
    Preset(
        "Chinese sentence",
        "我们在学习大型语言模型是如何理解文字的。",
        "characters split into several byte-level tokens",
    ),
    Preset(
        "Long paragraph",
        "Friends, Romans, countrymen, lend me your ears; I come to bury Caesar, not to "
        "praise him. The evil that men do lives after them; the good is oft interred with "
        "their bones; so let it be with Caesar. The noble Brutus hath told you Caesar was "
        "ambitious: if it were so, it was a grievous fault, and grievously hath Caesar "
        "answer'd it. Here, under leave of Brutus and the rest, for Brutus is an honourable "
        "man; so are they all, all honourable men, come I to speak in Caesar's funeral.",
        "a long text: windows, long-range attention, the context limit",
    ),
    Preset(
        "Mixed English and Chinese",
        "The cat sat on the mat. 你好，世界! The cat sat",
        "two scripts, a repeated phrase and emoji-free punctuation",
    ),
)
DEFAULT_TEXT = PRESETS_TEXT[0].text


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


# --- configuration from the environment ----------------------------------------------------


def test_model() -> str:
    """The test seam: "tiny" makes every built-in model the tiny preset (fast AppTest runs)."""
    return os.environ.get("INSIDE_GPT_TEST_MODEL", "")


def models_dir() -> Path:
    raw = os.environ.get("INSIDE_GPT_MODELS_DIR")
    return Path(raw) if raw else APP_DIR / "models"


def allow_paths() -> bool:
    return os.environ.get("INSIDE_GPT_ALLOW_PATHS", "") == "1"


def max_tokens() -> int:
    try:
        return max(1, int(os.environ.get("INSIDE_GPT_MAX_TOKENS", "256")))
    except ValueError:
        return 256


def available_models() -> list[str]:
    """ "bundled", "random", then every folder under the models directory with a config.json."""
    found: list[str] = []
    folder = models_dir()
    if folder.is_dir():
        found = sorted(
            p.name
            for p in folder.iterdir()
            if (p / "config.json").is_file() and p.name not in ("bundled", "random")
        )
    return ["bundled", "random", *found]


def model_label(model_id: str) -> str:
    if model_id == "bundled":
        if test_model() or (BUNDLED_DIR / "config.json").is_file():
            return "bundled (trained on Shakespeare)"
        return "bundled (not trained yet: random weights)"
    if model_id == "random":
        return "random (same shape, untrained)"
    return model_id


def _model_key(model_id: str) -> str:
    """The cache key of a model: its id plus the test seam, so tests never share real models."""
    return f"{model_id}|{test_model()}|{models_dir()}"


# --- caches ----------------------------------------------------------------------------------

# (model key, text) -> how many times the Trace was computed; tests read it to prove caching.
TRACE_COMPUTATIONS: Counter[tuple[str, str]] = Counter()
# model key -> how many times the model was read from disk (or built); tests: loaded once.
MODEL_LOADS: Counter[str] = Counter()


class SharedCache:
    """A process-wide LRU of read-only values (Traces), bounded by entries and by bytes.

    Every session gets the same object, never a copy: a Trace's arrays are read-only, so
    sharing is safe, and 60 sessions on one text hold one Trace, not 60 unpickled copies (what
    `st.cache_data` would hand out). Sessions that ask for a key being computed wait for that
    one computation. A value bigger than `max_bytes` is returned but not kept."""

    def __init__(self, max_entries: int, max_bytes: int, size: Callable[[Any], int]) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size = size
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:  # computed by the session we waited for
                    self._items.move_to_end(key)
                    return self._items[key][0]
            try:
                value = compute()
                self._put(key, value)
            finally:
                with self._lock:
                    self._computing.pop(key, None)
        return value

    def _put(self, key: Hashable, value: Any) -> None:
        n = int(self._size(value))
        with self._lock:
            if n > self.max_bytes:
                return
            self._items[key] = (value, n)
            self._bytes += n
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def stats(self) -> tuple[int, int]:
        """(entries, bytes) held now."""
        with self._lock:
            return len(self._items), self._bytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


def cache_budget_bytes() -> int:
    """INSIDE_GPT_CACHE_MB as bytes (default 2048 MB; at least 16 MB)."""
    try:
        mb = int(os.environ.get("INSIDE_GPT_CACHE_MB", "2048"))
    except ValueError:
        mb = 2048
    return max(16, mb) * 1024 * 1024


TRACES = SharedCache(TRACE_CACHE_ENTRIES, cache_budget_bytes(), size=lambda t: t.nbytes())


def model_offered(model_id: str) -> bool:
    """Whether this server offers `model_id`: bundled, random, a folder name listed under the
    models directory, or (only when the operator allows paths) an absolute directory path.
    Anything else, `../x` or `/etc` from a link included, is refused before any file is read."""
    if model_id in ("bundled", "random"):
        return True
    if allow_paths() and Path(model_id).is_absolute():
        return True
    return model_id in available_models()


def _load_uncached(model_id: str) -> LoadedModel:
    if test_model() == "tiny" and model_id in ("bundled", "random"):
        config = PRESETS["tiny"]
        return LoadedModel(
            name=model_id,
            model=random_model(config, seed=0 if model_id == "bundled" else 1),
            tokenizer=cl100k_truncated(config.vocab_size - 1),
            source="tests: tiny random model",
            card={"trained_on": "nothing (test model)"},
        )
    if model_id in ("bundled", "random"):
        return load(model_id)
    path = Path(model_id)
    if not path.is_absolute():
        path = models_dir() / model_id
    return load_directory(path, name=model_id)


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _load_cached(model_key: str, model_id: str) -> LoadedModel:
    MODEL_LOADS[model_key] += 1
    loaded = _load_uncached(model_id)
    loaded.model.eval()
    return loaded


def load_model(model_id: str) -> LoadedModel:
    """The model, loaded once per process; raises CheckpointError with a readable message."""
    if not model_offered(model_id):
        raise CheckpointError(f"“{model_id}” is not one of the models this server offers")
    return _load_cached(_model_key(model_id), model_id)


def encode_text(loaded: LoadedModel, text: str) -> list[int]:
    return loaded.tokenizer.encode(text)


def tokens_that_fit(config: Any, max_bytes: int) -> int:
    """The most tokens (at least 1, at most the context) whose Trace takes <= max_bytes."""
    lo, hi = 1, config.n_ctx
    if trace_nbytes(config, hi) <= max_bytes:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if trace_nbytes(config, mid) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo


def token_limit(config: Any) -> tuple[int, str]:
    """How many tokens of a text the app runs, and why that many: "context" (the model's
    n_ctx), "operator" (INSIDE_GPT_MAX_TOKENS) or "memory" (one Trace may take at most half of
    INSIDE_GPT_CACHE_MB)."""
    limits = [
        (config.n_ctx, "context"),
        (max_tokens(), "operator"),
        (tokens_that_fit(config, TRACES.max_bytes // 2), "memory"),
    ]
    return min(limits, key=lambda lim: lim[0])  # the first of equal limits: context first


def get_trace(model_id: str, text: str, loaded: LoadedModel) -> Trace:
    """The Trace of `text` (its first `token_limit` tokens), shared by every session."""
    model_key = _model_key(model_id)
    keep, _ = token_limit(loaded.config)

    def compute() -> Trace:
        with st.spinner("Running the model on your text…"):
            TRACE_COMPUTATIONS[(model_key, text)] += 1
            ids = encode_text(loaded, text)
            trace = run_with_trace(loaded.model, loaded.tokenizer, ids[:keep], model_name=model_key)
        return dataclasses.replace(trace, prompt=text, n_tokens_dropped=max(0, len(ids) - keep))

    return TRACES.get((model_key, keep, text), compute)


@st.cache_data(max_entries=TRACE_CACHE_ENTRIES, show_spinner="Reading every layer (logit lens)…")
def _lens_cached(
    model_key: str, n_tokens: int, text: str, _trace: Trace, _loaded: LoadedModel
) -> LogitLens:
    return logit_lens(_trace, _loaded.model)


@st.cache_data(max_entries=TRACE_CACHE_ENTRIES, show_spinner=False)
def _head_scores_cached(model_key: str, n_tokens: int, text: str, _trace: Trace) -> HeadScores:
    return head_scores(_trace)


def get_logit_lens(view: View) -> LogitLens:
    """The logit lens of the view's Trace, computed once per (model, text)."""
    trace = view.trace
    return _lens_cached(_model_key(view.model_id), trace.n_tokens, trace.prompt, trace, view.loaded)


def get_head_scores(view: View) -> HeadScores:
    """Every head's scores on the view's Trace, computed once per (model, text)."""
    trace = view.trace
    return _head_scores_cached(_model_key(view.model_id), trace.n_tokens, trace.prompt, trace)


@st.cache_data(max_entries=TRACE_CACHE_ENTRIES, show_spinner=False)
def _groups_cached(
    model_key: str, n_tokens: int, text: str, _trace: Trace, _loaded: LoadedModel
) -> list:
    return _loaded.tokenizer.group_characters([int(i) for i in _trace.token_ids])


def get_token_groups(view: View) -> list[TokenGroup]:
    """Consecutive tokens grouped into the characters they form (a Chinese character split
    into byte tokens is one group), cached per (model, text)."""
    trace = view.trace
    return _groups_cached(
        _model_key(view.model_id), trace.n_tokens, trace.prompt, trace, view.loaded
    )


@st.cache_data(max_entries=TRACE_CACHE_ENTRIES, show_spinner=False)
def _steps_cached(model_key: str, text: str, _loaded: LoadedModel) -> EncodeSteps:
    return _loaded.tokenizer.encode_with_steps(text, max_pre_tokens=MAX_PRE_TOKENS)


MAX_PRE_TOKENS = 400


def get_encode_steps(view: View) -> EncodeSteps:
    """The tokenizer's work on the text (pre-tokens, bytes, every BPE merge), cached per
    (model, text); covers the first MAX_PRE_TOKENS pre-tokens."""
    return _steps_cached(_model_key(view.model_id), view.trace.prompt, view.loaded)


# --- shared state and query parameters ------------------------------------------------------

SHARED_KEYS = ("text", "model_id", "layer", "head", "pos")
_QP_NAMES = {"text": "text", "model_id": "model", "layer": "layer", "head": "head", "pos": "pos"}
_QP_WRITTEN = "_qp_written"


def _parse_int(raw: str | None) -> int | None:
    try:
        return int(str(raw).strip()) if raw is not None else None
    except ValueError:  # also digit strings too long for int() (over 4,300 digits)
        return None


_SURROGATE = re.compile("[\ud800-\udfff]")
_TEXT_NOTES = "_text_notes"  # {"text": the cleaned text, "notes": what cleaning changed}


def clean_text(raw: str) -> tuple[str, list[str]]:
    """The text the app runs on, and a sentence for each thing that had to change: cut to
    MAX_TEXT_CHARS characters (before anything tokenizes it), and unpaired UTF-16 surrogates
    (which are not characters and cannot be encoded as UTF-8, URLs or JSON) replaced by U+FFFD.
    Everything else, control characters and special-token strings included, is kept as typed."""
    text, notes = raw, []
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
        notes.append(
            f"Your text has {len(raw):,} characters; only the first {MAX_TEXT_CHARS:,} are "
            "kept (the model reads at most a few hundred tokens of them anyway)."
        )
    if _SURROGATE.search(text):
        before = text.count("\ufffd")
        # A pair of surrogates becomes its character again; a lone one becomes U+FFFD.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        n = text.count("\ufffd") - before
        notes.append(
            f"Your text contained {n} unpaired surrogate code point{'s' if n != 1 else ''} "
            "(half of an emoji or other character, not a character by itself); shown as "
            "U+FFFD (<U+FFFD> in token labels)."
            if n
            else "Your text contained characters written as UTF-16 surrogate pairs; they were "
            "joined into the characters they encode."
        )
    return text, notes


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


def _text_notes() -> list[str]:
    ss = st.session_state
    if not isinstance(ss.get("text"), str):
        ss["text"] = ""
    if len(ss["text"]) > MAX_TEXT_CHARS or _SURROGATE.search(ss["text"]):
        _store_text(ss["text"])  # set directly in session state (Generate, tests)
    stored = ss.get(_TEXT_NOTES)
    return list(stored["notes"]) if stored and stored["text"] == ss["text"] else []


# Characters that start Markdown, HTML or LaTeX inside a sentence (a notice quotes a link's
# value or an error message mid-sentence, so "." "-" "#" at a line start cannot occur).
_MD_INLINE = re.compile(r"([\\`*_\[\]<>$~|])")


def _md(text: str) -> str:
    """Text from a user, a link or a file, shown literally inside a Markdown sentence."""
    return _MD_INLINE.sub(r"\\\1", clean_text(text)[0])


def _shown(raw: str, limit: int = 60) -> str:
    """A value from a link, short enough to quote in a notice and shown literally."""
    text = clean_text(raw[: limit + 1])[0]
    return _md(text if len(text) <= limit else text[:limit] + "…")


def _adopt_query_params() -> tuple[list[str], dict[str, int]]:
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
        if key == "text":
            _store_text(raw)
        elif key == "model_id":
            if model_offered(raw):
                ss["model_id"] = raw
            else:
                notices.append(
                    f"The link asks for the model “{_shown(raw)}”, which is not available "
                    "here; showing the current model instead."
                )
        else:
            value = _parse_int(raw)
            if value is None:
                notices.append(f"The link's {name}='{_shown(raw)}' is not a whole number; ignored.")
            else:
                ss[key] = value
                asked[key] = value
    return notices, asked


def _clamp_notices(asked: dict[str, int], cfg: Any, n_tokens: int) -> list[str]:
    """Notices for numbers from a link that the frame had to move into range."""
    ss = st.session_state
    ranges = {
        "layer": ("layer", f"this model has layers 0 to {cfg.n_layer - 1}"),
        "head": ("head", f"each layer has heads 0 to {cfg.n_head - 1}"),
        "pos": ("token position", f"the text has positions 0 to {n_tokens - 1}"),
    }
    notices = []
    for key, value in asked.items():
        if ss.get(key) != value:
            what, why = ranges[key]
            notices.append(
                f"The link asks for {what} {_shown(f'{value:,}')}, but {why}; "
                f"showing {what} {ss[key]}."
            )
    return notices


def text_fits_url(text: str) -> bool:
    """Whether the text is short enough to travel in the page address (URL_TEXT_MAX_CHARS)."""
    return len(text) <= URL_TEXT_MAX_CHARS and len(quote(text, safe="")) <= URL_TEXT_MAX_CHARS


def _write_query_params(stage_layer: dict[str, str] | None = None) -> None:
    ss = st.session_state
    params = view_params()
    if stage_layer:
        params.update(stage_layer)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    ss[_QP_WRITTEN] = params


def view_params() -> dict[str, str]:
    """The shared view as query parameters (what a shared URL carries). A text too long for an
    address is left out: the session keeps it, a copied link carries the rest of the view."""
    ss = st.session_state
    out: dict[str, str] = {}
    for key, name in _QP_NAMES.items():
        if key in ss and ss[key] is not None:
            if key == "text" and not text_fits_url(ss[key]):
                continue
            out[name] = str(ss[key])
    return out


def set_text(text: str) -> None:
    """Replace the shared text; every page follows on the next run (call `st.rerun()` after it,
    unless it runs inside a widget callback). A selected position on the last token keeps
    following the last token (Generate appends tokens). The text is cleaned (`clean_text`)."""
    ss = st.session_state
    if ss.get("pos") is not None and ss.get("pos") == ss.get("_n_tokens", 0) - 1:
        ss["pos"] = None
    _store_text(text)


def _init_state() -> None:
    ss = st.session_state
    ss.setdefault("text", DEFAULT_TEXT)
    ss.setdefault("model_id", "bundled")
    ss.setdefault("layer", 0)
    ss.setdefault("head", 0)


def _clamp(value: Any, low: int, high: int, default: int) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        v = default
    return max(low, min(high, v))


# --- widget callbacks (copy widget values into the shared keys) ------------------------------


def _on_text() -> None:
    set_text(st.session_state["_w_text"])


def _on_preset() -> None:
    ss = st.session_state
    name = ss.get("_w_preset")
    for preset in PRESETS_TEXT:
        if preset.name == name:
            set_text(preset.text)
            ss["pos"] = None  # follow the last token of the new text
    ss["_w_preset"] = None


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
    ss["layer"] = _clamp(ss.get("layer", 0) + delta, 0, n_layer - 1, 0)


# --- the sidebar -----------------------------------------------------------------------------


def _stage_exists(stage: Stage) -> bool:
    return (APP_DIR / stage.path).is_file()


def _nav_params(layer: int | None = None) -> dict[str, str]:
    params = view_params()
    if layer is not None:
        params["layer"] = str(layer)
    return params


def _sidebar_navigation(current: str) -> None:
    sb = st.sidebar
    sb.page_link(HOME_PATH, label="Inside GPT: home", icon="🏠", query_params=_nav_params())
    sb.caption("The walk through the model, in the article's order:")
    for stage in STAGES:
        if not _stage_exists(stage):
            continue
        here = stage.id == current
        label = f"**{stage.label}**  ◀ you are here" if here else stage.label
        if stage.id == "attention":
            sb.caption("↻ stages 3 to 7 repeat in every layer")
        sb.page_link(stage.path, label=label, query_params=_nav_params())


def _sidebar_inputs(loaded: LoadedModel | None) -> None:
    ss = st.session_state
    sb = st.sidebar
    sb.divider()
    sb.selectbox(
        "Lecture presets",
        [p.name for p in PRESETS_TEXT],
        index=None,
        placeholder="Choose a prepared text…",
        key="_w_preset",
        on_change=_on_preset,
        help="\n".join(f"- **{p.name}**: {p.why}" for p in PRESETS_TEXT),
    )
    ss["_w_text"] = ss["text"]
    sb.text_area(
        "Your text",
        key="_w_text",
        on_change=_on_text,
        height=140,
        max_chars=TEXTBOX_MAX_CHARS,
        help=(
            "Press Ctrl+Enter (or click outside the box) to run the model on it. "
            f"The first {MAX_TEXT_CHARS:,} characters are used."
        ),
    )
    if not text_fits_url(ss["text"]):
        sb.caption(
            "This text is too long for the page address: a copied link carries the model and "
            "the selection, not the text."
        )
    options = available_models()
    if ss["model_id"] not in options:
        options = [*options, ss["model_id"]]
    ss["_w_model"] = ss["model_id"]
    sb.selectbox(
        "Model",
        options,
        key="_w_model",
        format_func=model_label,
        on_change=_on_model,
        help=f"GPT-2 directories are looked for in {models_dir()}.",
    )
    if allow_paths():
        sb.text_input(
            "…or a GPT-2 directory path",
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
    sb.markdown(f"**Layer** (block 0 to {cfg.n_layer - 1})")
    left, mid, right = sb.columns([1, 2, 1], vertical_alignment="bottom")
    left.button(
        "◀",
        key="_w_layer_prev",
        on_click=_step_layer,
        args=(-1, cfg.n_layer),
        disabled=ss["layer"] <= 0,
        help="previous layer",
    )
    ss["_w_layer"] = ss["layer"]
    mid.number_input(
        "Layer",
        min_value=0,
        max_value=cfg.n_layer - 1,
        step=1,
        key="_w_layer",
        on_change=_on_number,
        args=("layer",),
        label_visibility="collapsed",
    )
    right.button(
        "▶",
        key="_w_layer_next",
        on_click=_step_layer,
        args=(1, cfg.n_layer),
        disabled=ss["layer"] >= cfg.n_layer - 1,
        help="next layer",
    )
    ss["_w_head"] = ss["head"]
    sb.number_input(
        f"Head (0 to {cfg.n_head - 1})",
        min_value=0,
        max_value=cfg.n_head - 1,
        step=1,
        key="_w_head",
        on_change=_on_number,
        args=("head",),
    )
    ss["_w_pos"] = ss["pos"]
    sb.selectbox(
        "Token position",
        list(range(trace.n_tokens)),
        key="_w_pos",
        format_func=lambda i: f"{i}: {trace.token_strs[i]}",
        on_change=_on_number,
        args=("pos",),
        help="The query token: the attention page shows what this token looks at.",
    )


# --- the frame -------------------------------------------------------------------------------


def _page_config(stage_id: str) -> None:
    title = "Inside GPT" if stage_id == "home" else f"{STAGE_BY_ID[stage_id].title} · Inside GPT"
    st.set_page_config(
        page_title=title, page_icon=PAGE_ICON, layout="wide", initial_sidebar_state="expanded"
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
        st.error(f"Could not load the model “{_md(model_id)}”: {_md(str(err))}")
        if previous == model_id:
            return model_id, None
        notices.append(f"Still showing the model “{_md(previous)}”.")
        ss["model_id"] = previous
        model_id = previous
        try:
            loaded = load_model(model_id)
        except (CheckpointError, OSError) as err2:
            st.error(f"Could not load the model “{_md(model_id)}” either: {_md(str(err2))}")
            return model_id, None
    ss["_last_good_model"] = model_id
    return model_id, loaded


def frame(stage_id: str) -> View | None:
    """Every page's first call. See the module docstring for the contract."""
    if stage_id != "home" and stage_id not in STAGE_BY_ID:
        raise ValueError(f"unknown stage {stage_id!r}")
    _page_config(stage_id)
    _init_state()
    notices, asked = _adopt_query_params()
    notices = _text_notes() + notices
    ss = st.session_state
    _sidebar_navigation(stage_id)
    model_id, loaded = _load_with_fallback(notices)
    _sidebar_inputs(loaded)
    text = ss["text"]
    if loaded is None:
        _show_notices(notices)
        _write_query_params()
        return None
    if not text.strip():
        _show_notices(notices)
        st.info(
            "✍️ Type a text in the sidebar (or choose a lecture preset) and the model will "
            "read it: every page then shows what happens inside."
        )
        _write_query_params()
        return None
    trace = get_trace(model_id, text, loaded)
    cfg = trace.config
    ss["layer"] = _clamp(ss.get("layer"), 0, cfg.n_layer - 1, 0)
    ss["head"] = _clamp(ss.get("head"), 0, cfg.n_head - 1, 0)
    ss["pos"] = _clamp(ss.get("pos"), 0, trace.n_tokens - 1, trace.n_tokens - 1)
    ss["_n_tokens"] = trace.n_tokens
    _sidebar_selection(trace)
    notices += _clamp_notices(asked, cfg, trace.n_tokens)
    if trace.n_tokens_dropped:
        notices.append(_dropped_notice(trace, token_limit(cfg)[1]))
    _show_notices(notices)
    _write_query_params()
    return View(
        trace=trace,
        loaded=loaded,
        model_id=model_id,
        stage=stage_id,
        layer=ss["layer"],
        head=ss["head"],
        pos=ss["pos"],
    )


def _show_notices(notices: list[str]) -> None:
    for notice in notices:
        st.warning(notice)


def _dropped_notice(trace: Trace, reason: str) -> str:
    """Say how many tokens were kept, which were left out, and why."""
    n, total = trace.n_tokens, trace.n_tokens + trace.n_tokens_dropped
    why = {
        "context": f"the model reads at most {n} at once",
        "operator": f"this server is set to show at most {n} per text",
        "memory": f"this server keeps the numbers of at most {n} tokens of this model in memory",
    }[reason]
    return (
        f"Your text has {total} tokens; {why}, so the first {n} are shown and the last "
        f"{trace.n_tokens_dropped} are left out."
    )


# --- controls a page may place in its main area ----------------------------------------------


def shared_picker(
    shared_key: str,
    label: str,
    options: list[int],
    key: str,
    format_func: Any = str,
    help: str | None = None,
) -> int:
    """A selectbox in the page body bound to a shared value ("layer", "head" or "pos"): it shows
    the shared value and writes changes back, so the sidebar and the URL follow."""
    ss = st.session_state
    if ss.get(shared_key) not in options:
        ss[shared_key] = options[0]
    ss[key] = ss[shared_key]
    st.selectbox(
        label,
        options,
        key=key,
        format_func=format_func,
        on_change=_copy_widget,
        args=(key, shared_key),
        help=help,
    )
    return int(ss[shared_key])


def _copy_widget(widget_key: str, shared_key: str) -> None:
    st.session_state[shared_key] = st.session_state[widget_key]


def axis_window(n: int, label: str, key: str, size: int = MAX_AXIS) -> int:
    """Where a long axis's window starts. Draws a slider only when `n` is longer than `size`
    (heatmaps send at most `size` cells along an axis); returns 0 otherwise."""
    if n <= size:
        return 0
    step = max(1, min(size // 2, n - size))  # the last window must stay reachable
    return int(
        st.slider(
            f"{label}: first of the {size} shown (of {n})",
            min_value=0,
            max_value=n - size,
            step=step,
            key=key,
        )
    )


# --- walking the stages ----------------------------------------------------------------------


def walk_neighbours(
    stage_id: str, layer: int, n_layer: int
) -> tuple[tuple[Stage, int] | None, tuple[Stage, int] | None]:
    """(previous, next) steps of the walk from (stage, layer): 1 → 2 → 3; stages 3-7 in the
    selected layer; 7 → 3 of the next layer; from the last layer 7 → 8; 8 → 9."""
    order = [s.id for s in STAGES]
    i = order.index(stage_id)
    nxt: tuple[Stage, int] | None
    prev: tuple[Stage, int] | None
    if stage_id == "dropout" and layer < n_layer - 1:
        nxt = (STAGE_BY_ID["attention"], layer + 1)
    elif i + 1 < len(order):
        nxt = (STAGES[i + 1], layer)
    else:
        nxt = None
    if stage_id == "attention" and layer > 0:
        prev = (STAGE_BY_ID["dropout"], layer - 1)
    elif stage_id == "output":
        prev = (STAGE_BY_ID["dropout"], n_layer - 1)
    elif i > 0:
        prev = (STAGES[i - 1], layer)
    else:
        prev = None
    return prev, nxt


def _step_label(step: tuple[Stage, int]) -> str:
    stage, layer = step
    where = f" (layer {layer})" if stage.id in LAYER_STAGES else ""
    return f"{stage.label}{where}"


def next_stage(view: View) -> None:
    """The Previous / Next controls at the bottom of a stage page. Moving to another layer
    updates the shared layer; the new page's URL carries stage and layer."""
    prev, nxt = walk_neighbours(view.stage, view.layer, view.trace.config.n_layer)
    st.divider()
    left, right = st.columns(2)
    for col, step, arrow, kind in ((left, prev, "←", "prev"), (right, nxt, "→", "next")):
        if step is None or not _stage_exists(step[0]):
            continue
        label = f"{arrow} {_step_label(step)}" if kind == "prev" else f"Next: {_step_label(step)} →"
        if col.button(
            label, key=f"{view.stage}_{kind}", type="primary" if kind == "next" else "secondary"
        ):
            stage, layer = step
            st.session_state["layer"] = layer
            st.switch_page(stage.path, query_params=_nav_params(layer))
    if nxt is None:
        right.page_link(STAGES[0].path, label="Start the walk again", icon="🔁")


# --- the home page ---------------------------------------------------------------------------


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def _validation_loss(loaded: LoadedModel) -> float | None:
    for key in ("val_loss", "validation_loss", "best_val_loss"):
        value = loaded.card.get(key)
        if isinstance(value, int | float):
            return float(value)
    state = Path(loaded.source) / "train_state.json"
    if state.is_file():
        try:
            history = json.loads(state.read_text(encoding="utf-8"))["state"]["history"]
            return float(history[-1]["val_loss"])
        except (KeyError, IndexError, TypeError, ValueError, json.JSONDecodeError):
            return None
    return None


def model_card_rows(loaded: LoadedModel) -> list[tuple[str, str]]:
    """The model card as (field, value) rows for the home page."""
    cfg = loaded.config
    rows = [
        ("Layers (blocks)", str(cfg.n_layer)),
        ("Attention heads per layer", str(cfg.n_head)),
        ("Width of the residual stream (d_model)", str(cfg.d_model)),
        ("Width of one head (d_head)", str(cfg.d_head)),
        ("Feed-forward width", str(cfg.d_mlp)),
        ("Context (longest text it reads)", f"{cfg.n_ctx} tokens"),
        ("Vocabulary", f"{_fmt_int(cfg.vocab_size)} tokens ({loaded.tokenizer.name})"),
        ("Parameters", _fmt_int(cfg.n_params())),
        ("Trained on", str(loaded.card.get("trained_on", "not recorded"))),
    ]
    card = loaded.card
    if isinstance(card.get("tokens_seen"), int):
        progress = f"{card['tokens_seen']:,} tokens"
        if isinstance(card.get("checkpoint_step"), int):
            progress += f", step {card['checkpoint_step']:,}"
            if isinstance(card.get("max_steps"), int):
                progress += f" of {card['max_steps']:,}"
        rows.append(("Training so far", progress))
    loss = _validation_loss(loaded)
    rows.append(
        ("Validation loss (nats per token)", f"{loss:.3f}" if loss is not None else "not recorded")
    )
    source = loaded.source
    try:
        source = str(Path(source).resolve().relative_to(APP_DIR))
    except ValueError:
        pass  # outside the app folder, or not a path ("untrained, ... seed 0")
    rows.append(("Weights from", source))
    return rows


# Short names for the flowchart boxes (a box is narrow; the page title is the full name).
SHORT_TITLES: dict[str, str] = {
    "tokens": "Tokens",
    "embeddings": "Embeddings",
    "attention": "Attention",
    "feed_forward": "Feed-forward",
    "layer_norm": "Layer norm",
    "residual": "Residual",
    "dropout": "Dropout",
    "output": "Output",
    "generate": "Generate",
}
FLOW_NOTES: dict[str, str] = {
    "tokens": "text → token ids",
    "embeddings": "ids → vectors, plus position",
    "attention": "each token gathers from earlier tokens",
    "feed_forward": "each token alone, 4× wider",
    "layer_norm": "rescale every token's vector",
    "residual": "add each block's output to the stream",
    "dropout": "random zeros, only in training",
    "output": "probabilities of the next token",
    "generate": "sample a token, append, repeat",
}


# Flowchart boxes are narrow: let their link labels wrap instead of being cut with "…".
_FLOW_CSS = (
    "<style>[class*='st-key-flow_'] [data-testid='stPageLink'] span"
    "{white-space:normal !important;overflow:visible !important;font-weight:600}</style>"
)


def _flow_box(col: Any, stage: Stage) -> None:
    with col.container(border=True, key=f"flow_{stage.id}"):
        label = f"{stage.number} · {SHORT_TITLES[stage.id]}"
        if _stage_exists(stage):
            st.page_link(stage.path, label=label, query_params=_nav_params(), width="stretch")
        else:
            st.markdown(f"**{label}**")
        st.caption(FLOW_NOTES[stage.id])


def _flow_row(stage_ids: tuple[str, ...], n_slots: int) -> None:
    widths: list[float] = []
    for k in range(n_slots):
        widths += [1.0] if k == 0 else [0.14, 1.0]
    cols = st.columns(widths, vertical_alignment="center")
    for k, sid in enumerate(stage_ids):
        if k > 0:
            cols[2 * k - 1].markdown("### →")
        _flow_box(cols[2 * k], STAGE_BY_ID[sid])


def _flowchart(n_layer: int | None) -> None:
    """The article's flowchart as boxes, top to bottom; every box opens its stage."""
    st.html(_FLOW_CSS)
    _flow_row(("tokens", "embeddings"), 5)
    times = f" × {n_layer} layers" if n_layer else ""
    st.markdown(f"↓ &nbsp; **the same block, repeated in every layer{times}**")
    with st.container(border=True):
        _flow_row(LAYER_STAGES, 5)
        st.caption("↻ back to 3 for the next layer; after the last layer, on to the output ↓")
    _flow_row(("output", "generate"), 5)


def render_home() -> None:
    view = frame("home")
    st.title(f"{PAGE_ICON} Inside GPT")
    st.markdown(
        "Type a text and watch a real GPT read it: this app runs a small GPT-2-architecture "
        "model on your words, offline, and shows every number it computes along the way. "
        "The pages follow the seed article's flowchart, from tokens and embeddings through "
        "every head's attention, the feed-forward block, layer norm, the residual stream and "
        "dropout, to the probabilities of the next word. "
        "Where the article differs from a real GPT, the page shows both, side by side."
    )
    _flowchart(view.trace.config.n_layer if view is not None else None)
    st.page_link(STAGES[0].path, label="Start the walk: 1 · Input & tokens", icon="▶️")
    st.caption(
        "The article draws attention → feed-forward → layer norm → residual (post-norm); "
        "GPT-2 and GPT-3 normalise first: x + attn(ln₁(x)), then x + mlp(ln₂(x))."
    )
    st.header("The model")
    model_id = st.session_state["model_id"]
    try:
        loaded = view.loaded if view is not None else load_model(model_id)
    except (CheckpointError, OSError):
        return
    left, right = st.columns([3, 2])
    import pandas as pd

    left.table(
        pd.DataFrame(model_card_rows(loaded), columns=["", model_label(loaded.name)]),
        hide_index=True,
    )
    if loaded.name == "random":
        right.info(
            "This is the untrained model: the same architecture with random weights. "
            "Switch to **bundled** in the sidebar to compare before and after learning."
        )
    card_md = BUNDLED_DIR / "MODEL_CARD.md"
    if loaded.source == str(BUNDLED_DIR) and card_md.is_file():
        with right.expander("The full model card (MODEL_CARD.md)", expanded=False):
            st.markdown(card_md.read_text(encoding="utf-8"))
    if view is not None:
        right.metric("Tokens in your text", view.trace.n_tokens)

