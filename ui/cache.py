"""Every cache of the app, done one way: a process-wide `SharedCache` per kind of value, keyed by
the model's cache key (`ui.models.model_key`) and, for a text's values, the number of tokens run
and the text. Every session gets the same object, never a copy; the first session to ask
computes it while the others wait for it. Values are read-only: a Trace's arrays always are, and
the arrays of a derived value are made so when it enters its cache.

Models (4, and 8 of the bundled model's training snapshots), Traces (16, and three quarters of
INSIDE_GPT_CACHE_MB for what each lazy Trace stores: its residual stream), the blocks and logits
that lazy Traces recompute on demand (one `engine.trace.UnitCache` shared by all of them, the last
quarter), and per Trace the logit lens, the head scores, the per-layer summaries and ln_f's
statistics, the token groups and the BPE steps (16 each), the Embeddings page's PCA maps (48),
Dropout's seeded passes (8, and a budget of INSIDE_GPT_CACHE_MB of their own), Generate's
last-window logits (8), and page 10's interventions: knock-outs (8, a quarter of
INSIDE_GPT_CACHE_MB), patching sweeps (16) and attributions (32). Streamlit's st.cache_data would
unpickle a copy per session, and st.cache_resource hold models apart from everything else; neither
is used."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import streamlit as st

from engine.capture import lazy_trace_nbytes, run_with_trace
from engine.checkpoints import BUNDLED_DIR, CheckpointError, LoadedModel
from engine.dropout_demo import (
    LayerMaskStats,
    MaskAverage,
    causal_cells,
    dropout_pass,
    layer_mask_stats,
    mask_average,
)
from engine.figures.embeddings import PcaLabels, pca_labels
from engine.interventions import (
    Ablation,
    Attribution,
    KnockOut,
    PatchingResult,
    activation_patching,
    direct_logit_attribution,
    knock_out,
)
from engine.lens.article import next_token_loss
from engine.lens.embeddings import embedding_vectors, pca_2d
from engine.lens.feed_forward import top_neurons
from engine.lens.heads import HeadScores, head_scores
from engine.lens.layer_norm import LNStats, ln_stats
from engine.lens.logit_lens import LogitLens, lens_blocks, logit_lens, merge_lenses
from engine.lens.summary import LayerSummary, layer_summary
from engine.sampling import last_logits
from engine.snapshots import TrainingHistory, read_history
from engine.tokenizer import EncodeSteps, TokenGroup
from engine.trace import Trace, UnitCache
from ui.i18n import _
from ui.models import (
    encode_text,
    hub_repo,
    load_uncached,
    model_base_key,
    model_key,
    model_offered,
    snapshot_step,
)
from ui.settings import cache_budget_bytes, max_tokens
from ui.state import View

TRACE_CACHE_ENTRIES = 16
MAX_PRE_TOKENS = 400  # the BPE steps cover the text's first this many pre-tokens

# (model key, text) -> how many times the Trace was computed; tests read it to prove caching.
TRACE_COMPUTATIONS: Counter[tuple[str, str]] = Counter()
# model key -> how many times the model was read from disk (or built); tests: loaded once.
MODEL_LOADS: Counter[str] = Counter()


class SharedCache:
    """A process-wide LRU of read-only values, bounded by entries and (optionally) by bytes.

    Every session gets the same object, never a copy: the values are read-only, so sharing is
    safe, and 60 sessions on one text hold one Trace, not 60 unpickled copies (what
    `st.cache_data` would hand out). Sessions that ask for a key being computed wait for that
    one computation. A value bigger than `max_bytes` is returned but not kept. Without `size`
    only the number of entries is bounded. `on_drop(value)` is called for a value the cache
    lets go of (evicted, forgotten, cleared), outside its lock."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int | None = None,
        size: Callable[[Any], int] | None = None,
        on_drop: Callable[[Any], None] | None = None,
    ) -> None:
        self.max_entries = max_entries
        self._on_drop = on_drop
        self.max_bytes = max_bytes if max_bytes is not None else 2**62
        self._size = size if size is not None else (lambda value: 0)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(
        self,
        key: Hashable,
        compute: Callable[[], Any],
        busy: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> Any:
        """The value under `key`, computed by `compute()` (once, whoever asks) when absent.
        `busy()` is entered while this session waits for or computes the value (a spinner):
        a session waiting on another's computation shows it too, and the value is stored
        before it exits (leaving a Streamlit spinner can stop a script that has been asked to
        rerun; the finished work is kept). An exception from `compute` reaches every caller
        and nothing is kept."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            key_lock = self._computing.setdefault(key, threading.Lock())
        with busy(), key_lock:
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
        gone: list[Any] = []
        with self._lock:
            if n > self.max_bytes:
                return
            self._items[key] = (value, n)
            self._bytes += n
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _key, (old, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
                gone.append(old)
        self._dropped(gone)

    def _dropped(self, values: list[Any]) -> None:
        if self._on_drop is not None:
            for value in values:
                self._on_drop(value)

    def stats(self) -> tuple[int, int]:
        """(entries, bytes) held now."""
        with self._lock:
            return len(self._items), self._bytes

    def forget(self, key: Hashable) -> None:
        """Drop the value under `key`, if any (a model whose files changed on disk)."""
        gone = []
        with self._lock:
            if key in self._items:
                value, n = self._items.pop(key)
                self._bytes -= n
                gone.append(value)
        self._dropped(gone)

    def clear(self) -> None:
        """Forget every value (computations under way still finish and are kept)."""
        with self._lock:
            gone = [value for value, _n in self._items.values()]
            self._items.clear()
            self._bytes = 0
        self._dropped(gone)


MODELS = SharedCache(4)
# The bundled model's training snapshots ("bundled@STEP", 10 MB each in float32): the Learning
# page runs several on one text, so they have their own cache and never push a user's model out.
SNAPSHOT_MODELS = SharedCache(8)
# A Trace is lazy (engine.capture.run_with_trace): TRACES counts what it stores (the embeddings
# and the residual stream); the blocks' other sites and the logits it computes on demand are
# kept in UNITS, one byte-bounded LRU shared by every Trace. Together: INSIDE_GPT_CACHE_MB.
UNITS = UnitCache(cache_budget_bytes() // 4)
TRACES = SharedCache(
    TRACE_CACHE_ENTRIES,
    cache_budget_bytes() - UNITS.max_bytes,
    size=lambda t: t.max_resident_nbytes(),
    on_drop=lambda t: t.acts.clear() if t.is_lazy else None,  # its units leave UNITS too
)
# blocks of the logit lens (engine.lens.logit_lens.lens_blocks): up to 64 per text (T=1,024),
# about 30 KB each on GPT-2 small
LENSES = SharedCache(TRACE_CACHE_ENTRIES * 64, size=lambda lens: lens.nbytes())
HEAD_SCORES = SharedCache(TRACE_CACHE_ENTRIES)
# per-layer numbers of every token (engine.lens.summary): about 1.8 MB each on GPT-2 small at
# 1,024 tokens; ln_f's statistics apart (3 x T float64)
LAYER_SUMMARIES = SharedCache(TRACE_CACHE_ENTRIES, size=lambda s: s.nbytes())
FINAL_LN_STATS = SharedCache(TRACE_CACHE_ENTRIES)
TOKEN_GROUPS = SharedCache(TRACE_CACHE_ENTRIES)
ENCODE_STEPS = SharedCache(TRACE_CACHE_ENTRIES)
# the Embeddings page's PCA map per source (engine.lens.embeddings.SOURCES): T x 2 float64
EMBEDDING_PCAS = SharedCache(TRACE_CACHE_ENTRIES * 3)
# the PCA map's label candidates per source, plot area and font (engine.figures.embeddings.
# pca_labels): about 300 KB at 1,024 tokens
PCA_LABELS = SharedCache(TRACE_CACHE_ENTRIES * 6)
DROPOUT_TRACES = SharedCache(8, cache_budget_bytes(), size=lambda t: t.nbytes())
LAST_LOGITS = SharedCache(8)
MASK_AVERAGES = SharedCache(16)
MASK_STATS = SharedCache(16)
NEXT_TOKEN_LOSSES = SharedCache(TRACE_CACHE_ENTRIES)
NEURON_ORDERS = SharedCache(TRACE_CACHE_ENTRIES * 8)


def _frozen(value: Any) -> Any:
    """`value` with its numpy arrays (itself, a tuple's items, or a dataclass's fields) made
    read-only."""
    arrays = [value] if isinstance(value, np.ndarray) else []
    if isinstance(value, tuple):
        arrays = list(value)
    if dataclasses.is_dataclass(value):
        arrays = [getattr(value, f.name) for f in dataclasses.fields(value)]
    for array in arrays:
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return value


def _busy(message: str | None) -> Callable[[], AbstractContextManager[Any]]:
    """What `SharedCache.get` shows while a value is on its way: a spinner with `message`
    (None: nothing)."""
    if message is None:
        return contextlib.nullcontext
    return lambda: st.spinner(message)


# Each loaded model's cache key (with the fingerprint of the files it was read from): what was
# computed from that model is kept under that key, even if the files change during a run.
_KEY_OF: weakref.WeakKeyDictionary[LoadedModel, str] = weakref.WeakKeyDictionary()
# model_base_key -> the key of the version loaded last, to drop an outdated one.
_CURRENT_KEY: dict[str, str] = {}
_KEYS_LOCK = threading.Lock()


def key_of(model_id: str, loaded: LoadedModel) -> str:
    """The cache key `loaded` was stored under by `load_model` (a model built elsewhere, as in
    tests: `model_key(model_id)`)."""
    return _KEY_OF.get(loaded) or model_key(model_id)


def _of_view(
    cache: SharedCache,
    view: View,
    extra: tuple,
    compute: Callable[[], Any],
    spinner: str | None = None,
) -> Any:
    """A value derived from the view's Trace, keyed by (model, tokens run, text, *extra); the
    tokens by their ids (a text and the generated ids it was decoded from can differ)."""
    trace = view.trace
    tokens = np.asarray(trace.token_ids, dtype=np.int64).tobytes()
    key = (key_of(view.model_id, view.loaded), trace.n_tokens, tokens, trace.prompt, *extra)
    return cache.get(key, lambda: _frozen(compute()), _busy(spinner))


# --- models and Traces ----------------------------------------------------------------------


def load_model(model_id: str) -> LoadedModel:
    """The model, loaded once per process per version of its files, in eval mode; raises
    CheckpointError (or OSError) with a readable message, and refuses a model this server does
    not offer before reading. Its files changed on disk (size, modification time, a file
    replaced: `ui.models.model_key`): it is read again on this call and the outdated version is
    dropped (`reloaded_since` tells a session)."""
    if not model_offered(model_id):
        raise CheckpointError(
            _("“{model}” is not one of the models this server offers").format(model=model_id)
        )
    key, base = model_key(model_id), model_base_key(model_id)

    def compute() -> LoadedModel:
        MODEL_LOADS[key] += 1
        repo = hub_repo(model_id)
        loaded = load_uncached(model_id) if repo is None else _load_with_bar(model_id, repo)
        loaded.model.eval()
        with _KEYS_LOCK:
            _KEY_OF[loaded] = key
            outdated, _CURRENT_KEY[base] = _CURRENT_KEY.get(base), key
        if outdated is not None and outdated != key:
            cache.forget(outdated)
        return loaded

    cache = SNAPSHOT_MODELS if snapshot_step(model_id) is not None else MODELS
    return cache.get(key, compute, _busy(_("Loading the model…")))


def _load_with_bar(model_id: str, repo: str) -> LoadedModel:
    """`load_uncached` of a Hub model with a progress bar its download drives. The download
    runs in a worker thread (huggingface_hub reports bytes from its own threads, which may not
    draw); this script's thread draws the bar from what they reported, and it disappears
    afterwards. A model already in the cache never shows it. A rerun that stops this script
    lets the download finish into the cache, so the next choice opens it from there."""
    state = {"done": 0, "total": 0}
    outcome: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:  # any thread
        state.update(done=done, total=total)

    def work() -> None:
        try:
            outcome["model"] = load_uncached(model_id, progress)
        except BaseException as err:  # handed to the script's thread below
            outcome["error"] = err

    worker = threading.Thread(target=work, name=f"download {repo}", daemon=True)
    worker.start()
    slot = st.empty()
    try:
        while worker.is_alive():
            worker.join(0.2)
            done, total = state["done"], state["total"]
            if total:
                slot.progress(
                    min(1.0, done / total),
                    text=_(
                        "Downloading {repo} from the Hugging Face Hub: {done} of {total} MB"
                    ).format(repo=repo, done=f"{done / 2**20:,.1f}", total=f"{total / 2**20:,.1f}"),
                )
    finally:
        slot.empty()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["model"]


def reloaded_since(model_id: str, loaded: LoadedModel, seen: str | None) -> bool:
    """Whether `loaded` is a new version of the model `model_id` whose previous version this
    session used with key `seen` (its files changed on disk in between)."""
    if seen is None:
        return False
    key = key_of(model_id, loaded)
    return seen != key and seen.rsplit("|", 1)[0] == key.rsplit("|", 1)[0]


def tokens_that_fit(config: Any, max_bytes: int) -> int:
    """The most tokens (at least 1, at most the context) whose Trace takes <= max_bytes at
    most (`engine.capture.lazy_trace_nbytes`: its residual stream and a full cache)."""
    lo, hi = 1, config.n_ctx
    if lazy_trace_nbytes(config, hi) <= max_bytes:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if lazy_trace_nbytes(config, mid) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo


def token_limit(config: Any) -> tuple[int, str]:
    """How many tokens of a text the app runs, and why that many: "context" (the model's
    n_ctx), "operator" (INSIDE_GPT_MAX_TOKENS) or "memory" (one Trace, with two recomputed
    units, `engine.capture.lazy_trace_nbytes`, may take at most half of the Traces' share of
    INSIDE_GPT_CACHE_MB)."""
    limits = [
        (config.n_ctx, "context"),
        (max_tokens(), "operator"),
        (tokens_that_fit(config, TRACES.max_bytes // 2), "memory"),
    ]
    return min(limits, key=lambda lim: lim[0])  # the first of equal limits: context first


def get_trace(model_id: str, text: str, loaded: LoadedModel, ids: list[int] | None = None) -> Trace:
    """The Trace of `text` (its first `token_limit` tokens), shared by every session; of the
    token ids `ids` instead when given (the ids `text` was decoded from: `ui.state.shared_ids`)."""
    key = key_of(model_id, loaded)
    keep, _why = token_limit(loaded.config)

    def compute() -> Trace:
        TRACE_COMPUTATIONS[(key, text)] += 1
        all_ids = encode_text(loaded, text) if ids is None else list(ids)
        trace = run_with_trace(
            loaded.model, loaded.tokenizer, all_ids[:keep], model_name=key, unit_cache=UNITS
        )
        return dataclasses.replace(trace, prompt=text, n_tokens_dropped=max(0, len(all_ids) - keep))

    cache_key = (key, keep, text) if ids is None else (key, keep, text, tuple(ids))
    return TRACES.get(cache_key, compute, _busy(_("Running the model on your text…")))


def training_history() -> TrainingHistory | None:
    """The bundled model's recorded training history (`engine.snapshots.read_history`), read
    once per version of its config.json (a 266 KB file); None when it records none."""
    try:
        stamp = (BUNDLED_DIR / "config.json").stat().st_mtime_ns
    except OSError:
        return None
    return _history(stamp)


@functools.lru_cache(maxsize=1)
def _history(stamp: int) -> TrainingHistory | None:
    """`read_history` for the config.json modification time `stamp` (the cache key)."""
    return read_history(BUNDLED_DIR)


def snapshot_view(view: View, model_id: str) -> View:
    """The view's text and selection on another model (a training snapshot): its model loaded
    and its Trace computed through the caches (once per snapshot and text), so the Learning
    page's map at a step is `run_with_trace` of that snapshot. The text is re-read with that
    model's tokenizer; raises CheckpointError (or OSError) when it cannot be loaded."""
    loaded = load_model(model_id)
    trace = get_trace(model_id, view.trace.prompt, loaded)
    return dataclasses.replace(
        view, trace=trace, loaded=loaded, model_id=model_id, pos=min(view.pos, trace.n_tokens - 1)
    )


# --- values derived from a view's Trace -----------------------------------------------------


def get_logit_lens(view: View, positions: Iterable[int] | None = None) -> LogitLens:
    """The logit lens of the view's Trace at `positions` (default: every position): computed
    in aligned blocks of positions (`lens_blocks`), each block once per (model, text), so a
    page pays only for the positions it shows and a window moved back is free. The result
    holds the blocks' positions, a superset of `positions` (`LogitLens.column`)."""
    trace = view.trace
    wanted = range(trace.n_tokens) if positions is None else positions
    parts = []
    for block in lens_blocks(wanted, trace.n_tokens):

        def compute(block: range = block) -> LogitLens:
            return logit_lens(trace, view.loaded.model, positions=block)

        parts.append(
            _of_view(LENSES, view, (block.start,), compute, _("Reading every layer (logit lens)…"))
        )
    return merge_lenses(parts)


def get_head_scores(view: View) -> HeadScores:
    """Every head's scores on the view's Trace, computed once per (model, text)."""
    return _of_view(HEAD_SCORES, view, (), lambda: head_scores(view.trace))


def get_layer_summary(view: View) -> LayerSummary:
    """The per-layer numbers of every token that the Feed-forward, Layer-norm and Residual pages
    show (`engine.lens.summary.LayerSummary`: MLP output sizes, LayerNorm statistics, residual
    norms, cosines, contributions and steps), computed once per (model, text) in one streaming
    pass over the layers, so rerunning those pages recomputes no block."""
    return _of_view(LAYER_SUMMARIES, view, (), lambda: layer_summary(view.trace))


def get_top_neurons(view: View, layer: int, k: int, rank: str) -> np.ndarray:
    """`engine.lens.feed_forward.top_neurons` of `layer`'s MLP activations (`mlp.hook_post`):
    the indices [k] of the k strongest hidden units by `rank`, the same numbers. The whole
    order is computed once per (model, text, layer, rank) and cut to k: the "selective" rank
    takes a median over the tokens of every unit (110-180 ms at 1,024 tokens and 3,072 units,
    GPT-2 small's shape, measured here), which every rerun of the Feed-forward page would
    otherwise redo."""
    post = view.trace.get("mlp.hook_post", layer)
    order = _of_view(
        NEURON_ORDERS, view, (layer, rank), lambda: top_neurons(post, post.shape[-1], rank)
    )
    return order[: max(1, min(int(k), len(order)))]


def get_all_ln_stats(view: View) -> list[LNStats]:
    """`engine.lens.layer_norm.all_ln_stats` of the view's Trace (ln_1 and ln_2 of every layer,
    then ln_f; 2 * n_layer + 1 entries): the layers' from `get_layer_summary`, ln_f's cached
    apart per (model, text), as reading it computes the final unit (ln_f and the logits)."""
    final = _of_view(FINAL_LN_STATS, view, (), lambda: ln_stats(view.trace, "ln_final"))
    return [*get_layer_summary(view).ln_stats(), final]


def get_token_groups(view: View) -> list[TokenGroup]:
    """Consecutive tokens grouped into the characters they form (a Chinese character split
    into byte tokens is one group), cached per (model, text)."""
    ids = [int(i) for i in view.trace.token_ids]
    return _of_view(TOKEN_GROUPS, view, (), lambda: view.loaded.tokenizer.group_characters(ids))


def get_next_token_loss(view: View) -> np.ndarray:
    """The next-token loss on the view's text (`engine.lens.article.next_token_loss`, [T - 1]
    nats), cached per (model, text): it reads every logit (50,257 x 1,023 at T=1,024 on GPT-2
    small), which every rerun of the Output page's pre-training section would otherwise redo."""
    return _of_view(NEXT_TOKEN_LOSSES, view, (), lambda: next_token_loss(view.trace))


def get_encode_steps(view: View) -> EncodeSteps:
    """The tokenizer's work on the text (pre-tokens, bytes, every BPE merge), cached per
    (model, text); covers the first MAX_PRE_TOKENS pre-tokens."""
    tokenizer, text = view.loaded.tokenizer, view.trace.prompt

    def compute() -> EncodeSteps:
        return tokenizer.encode_with_steps(text, max_pre_tokens=MAX_PRE_TOKENS)

    return _of_view(ENCODE_STEPS, view, (), compute)


def get_embedding_pca(view: View, source: str) -> tuple[np.ndarray, np.ndarray]:
    """`engine.lens.embeddings.pca_2d` of the view's `source` vectors (one of
    `engine.lens.embeddings.SOURCES`): (coords [T, 2], explained [2]), cached per (model, text,
    source): the SVD of [1,024, 768] float64 takes about 0.4 s, which every rerun of the
    Embeddings page redid. Raises ValueError for an unknown source."""

    def compute() -> tuple[np.ndarray, np.ndarray]:
        return pca_2d(embedding_vectors(view.trace, source))

    return _of_view(EMBEDDING_PCAS, view, (source,), compute)


def get_pca_labels(
    view: View, source: str, area_px: tuple[float, float], font_px: float
) -> PcaLabels:
    """`engine.figures.embeddings.pca_labels` of the view's PCA map of `source`
    (`get_embedding_pca`) for a plot area of `area_px` pixels and labels of `font_px`, cached
    per (model, text, source, area, font): the points at one place and the label boxes free of
    markers do not depend on the selected token, and at 1,024 tokens they took 30-60 ms of every
    rerun of the Embeddings page (its worst on GPT-2 small). Raises ValueError for an unknown
    source."""

    def compute() -> PcaLabels:
        coords, _explained = get_embedding_pca(view, source)
        return pca_labels(coords, view.trace.token_strs, area_px, font_px)

    return _of_view(PCA_LABELS, view, (source, tuple(area_px), float(font_px)), compute)


def get_dropout_trace(view: View, p: float, seed: int, layer: int | None = None) -> Trace:
    """A Trace of the view's tokens run with dropout probability `p` and mask seed `seed`
    (engine.dropout_demo.dropout_pass), cached per (model, text, p, seed, layer). With `layer`
    it holds only that layer's patterns before and after the mask and the logits (what the
    Dropout page reads: at 1,024 tokens on GPT-2 small 292 MiB, where the full pass, 2.6 GiB,
    did not fit the cache and was run again on every rerun); None: every activation."""
    loaded, ids = view.loaded, [int(i) for i in view.trace.token_ids]
    name = key_of(view.model_id, loaded)
    layers = None if layer is None else [layer]

    def compute() -> Trace:
        return dropout_pass(loaded.model, loaded.tokenizer, ids, p, seed, name, layers)

    return _of_view(
        DROPOUT_TRACES, view, (p, seed, layer), compute, _("Running the model with dropout…")
    )


def get_layer_mask_stats(view: View, p: float, seed: int, layer: int) -> LayerMaskStats:
    """`engine.dropout_demo.layer_mask_stats` of `layer` in the view's dropout pass
    (`get_dropout_trace(view, p, seed, layer)`), cached per (model, text, p, seed, layer): at
    T=1,024 on GPT-2 small it reads 12.6 million weights twice (150-160 ms), on every rerun of
    the Dropout page otherwise."""
    dropped = get_dropout_trace(view, p, seed, layer)
    return _of_view(
        MASK_STATS,
        view,
        (float(p), int(seed), layer),
        lambda: layer_mask_stats(
            dropped.get("attn.hook_pattern", layer), dropped.get("attn.hook_pattern_dropped", layer)
        ),
    )


def get_mask_average(view: View, layer: int, head: int, p: float, n: int, seed: int) -> MaskAverage:
    """The Dropout page's average of `n` seeded masks over head `head`'s evaluation weights in
    `layer` (`engine.dropout_demo.mask_average`, the causal cells), cached per (model, text,
    layer, head, p, n, seed): about 250 ms of numpy at 256 tokens and 200 masks, which every
    rerun of the page with that section open would otherwise redo."""
    pattern = view.trace.get("attn.hook_pattern", layer)[head]
    return _of_view(
        MASK_AVERAGES,
        view,
        (layer, head, float(p), int(n), int(seed)),
        lambda: mask_average(pattern, p, n, seed, where=causal_cells(view.trace.n_tokens)),
    )


def get_last_logits(view: View, text: str, ids: list[int]) -> np.ndarray:
    """Logits [V] after the last of `ids` (the model reads the last n_ctx of them), for
    continuing a text longer than the Trace; cached per (model, text, ids)."""
    key = (key_of(view.model_id, view.loaded), text, tuple(ids))
    return LAST_LOGITS.get(key, lambda: _frozen(last_logits(view.loaded.model, ids)))


# --- interventions (page 10, engine.interventions) ------------------------------------------

KNOCK_OUTS = SharedCache(8, cache_budget_bytes() // 4, size=lambda k: k.logits_after.nbytes)
PATCHINGS = SharedCache(16)
ATTRIBUTIONS = SharedCache(32)


def get_knock_out(view: View, ablation: Ablation) -> KnockOut:
    """The view's text run with `ablation` and without, cached per (model, text, ablation)."""
    extra = (tuple(sorted(ablation.heads)), tuple(sorted(ablation.mlps)), ablation.mode)

    def compute() -> KnockOut:
        return knock_out(view.loaded.model, view.trace, ablation)

    return _of_view(KNOCK_OUTS, view, extra, compute, _("Running the ablated model…"))


def get_attribution(view: View, pos: int, token: int) -> Attribution:
    """Direct logit attribution of `token` at `pos` on the view's Trace, cached."""

    def compute() -> Attribution:
        return direct_logit_attribution(view.trace, view.loaded.model, pos, token)

    return _of_view(ATTRIBUTIONS, view, (pos, token), compute)


def get_patching(
    view: View, clean_ids: list[int], corrupt_ids: list[int], answer: int, wrong: int
) -> PatchingResult:
    """Activation patching of two token lists (same length), cached per (model, both texts'
    tokens, answer, wrong). The session that computes it draws a progress bar."""
    key = (key_of(view.model_id, view.loaded), tuple(clean_ids), tuple(corrupt_ids), answer, wrong)

    def compute() -> PatchingResult:
        bar = st.progress(0.0, text=_("Patching the clean run into the corrupted one…"))

        def progress(done: int, total: int) -> None:
            bar.progress(
                min(1.0, done / max(1, total)),
                text=_("Patching: {done} of {total} runs").format(done=done, total=total),
            )

        try:
            return _frozen(
                activation_patching(
                    view.loaded.model,
                    clean_ids,
                    corrupt_ids,
                    answer=answer,
                    wrong=wrong,
                    n_valid=view.trace.n_valid_ids,
                    gap_ids=view.trace.gap_ids,
                    progress=progress,
                )
            )
        finally:
            bar.empty()

    return PATCHINGS.get(key, compute)
