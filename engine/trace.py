"""`Trace`: everything one forward pass computed for one text, as plain read-only numpy arrays.

A Trace is either full (every activation held in a dict) or lazy (`LazyActs`: the residual
stream at every block boundary and the embeddings held; any other site of block i recomputed on
demand from the stored `blocks.i.hook_resid_pre` by one block forward with the recorder, bitwise
equal to the full capture, and kept in a small per-Trace cache). Both read the same way:
`trace.get(site, layer)`, `trace[name]`, `trace.acts` (every canonical name, in forward order).
A pickled Trace is always full and holds no model reference, so it can be saved to disk and
serves as a test fixture; the app shares one Trace per text between sessions (`ui.cache`),
never a copy.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.config import GPTConfig
from engine.names import LOGITS, act_name, parse_name, symbol_sizes

__all__ = ["LazyActs", "Trace", "UnitCache"]

_OWNERS = itertools.count()  # a unique id per LazyActs (id() may be reused after collection)


def _read_only(arr: np.ndarray) -> np.ndarray:
    """`arr` itself if it is already read-only, else a read-only copy (the caller keeps a
    writable original that no longer aliases the Trace)."""
    if arr.flags.writeable:
        arr = arr.copy()
        arr.flags.writeable = False
    return arr


class UnitCache:
    """One LRU of the units that lazy Traces computed, shared by many Traces and bounded by
    bytes (the app's: `ui.cache`), instead of each Trace's own `max_units`. Thread-safe. A unit
    bigger than `max_bytes` is returned to its reader but not kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[int, Hashable], tuple[dict[str, np.ndarray], int]] = (
            OrderedDict()
        )
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[int, Hashable]) -> dict[str, np.ndarray] | None:
        """The unit under (owner, unit), marked as just used; None if not held."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key][0]

    def put(self, key: tuple[int, Hashable], arrays: dict[str, np.ndarray]) -> None:
        """Keep a unit, dropping the least recently used ones beyond `max_bytes`."""
        n = int(sum(a.nbytes for a in arrays.values()))
        with self._lock:
            if n > self.max_bytes or key in self._items:
                return
            self._items[key] = (arrays, n)
            self._bytes += n
            while self._bytes > self.max_bytes:
                _key, (_arrays, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def owner_arrays(self, owner: int) -> list[np.ndarray]:
        """The arrays held for one Trace."""
        with self._lock:
            units = [arrays for (o, _u), (arrays, _n) in self._items.items() if o == owner]
        return [a for arrays in units for a in arrays.values()]

    def drop_owner(self, owner: int) -> None:
        """Forget one Trace's units."""
        with self._lock:
            for key in [k for k in self._items if k[0] == owner]:
                self._bytes -= self._items.pop(key)[1]

    def stats(self) -> tuple[int, int]:
        """(units, bytes) held now."""
        with self._lock:
            return len(self._items), self._bytes

    def clear(self) -> None:
        """Forget every unit."""
        with self._lock:
            self._items.clear()
            self._bytes = 0


class LazyActs(Mapping[str, np.ndarray]):
    """The activations of a lazy Trace: a read-only mapping of every canonical name (forward
    order) to its array, most of them computed when first read.

    names: every canonical name the full capture records, in its order.
    stored: the arrays held from the start (read-only): the embeddings and the residual stream
        at every block boundary (`blocks.i.hook_resid_pre`, the last `hook_resid_post`; block
        i's resid_post is block i+1's resid_pre, one array under both names).
    unit_of: name -> the unit that computes it, for every name not stored (in
        `engine.capture`: block i's attention half (i, "attn"), its MLP half (i, "mlp"),
        "final" for ln_final's sites and the logits).
    compute: (unit, fetch) -> {name: read-only array} for every name of that unit, where
        `fetch(name)` reads another unit's array (kept or not as the reader asked): half a block's
        forward from the stored resid_pre (or the recomputed resid_mid) with the recorder, or
        ln_f + unembedding of the last residual. It holds the model; this mapping never
        pickles it (below).
    nbytes_of: name -> the bytes of its array (what a full capture would hold).
    max_units: how many computed units are kept (least recently used dropped first); each
        unit holds every array of its half block, so a page reading a layer's q, k, scores
        and pattern computes that attention half once.
    shared: a `UnitCache` to keep the computed units in instead (shared by many Traces and
        bounded by bytes); `max_units` then does not apply.

    Thread-safe: two threads asking for the same unit compute it once (the second waits for
    the first; `computations` counts the runs per unit). Pickling gives a plain dict of every
    activation (each unit computed once), so an unpickled Trace is full and needs no model.
    """

    def __init__(
        self,
        names: list[str],
        stored: dict[str, np.ndarray],
        unit_of: dict[str, Hashable],
        compute: Callable[[Hashable, Callable[[str], np.ndarray]], dict[str, np.ndarray]],
        nbytes_of: dict[str, int],
        max_units: int = 2,
        shared: UnitCache | None = None,
    ) -> None:
        missing = [n for n in names if n not in stored and n not in unit_of]
        if missing:
            raise ValueError(f"no array and no way to compute {missing[0]!r}")
        if max_units < 1:
            raise ValueError(f"max_units must be at least 1, got {max_units}")
        self._names = list(names)
        self.stored = {name: _read_only(np.asarray(arr)) for name, arr in stored.items()}
        self._unit_of = dict(unit_of)
        self._compute = compute
        self._nbytes_of = dict(nbytes_of)
        self.max_units = max_units
        self._cache: OrderedDict[Hashable, dict[str, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self._unit_locks: dict[Hashable, threading.Lock] = {}
        self.computations: Counter[Hashable] = Counter()
        self.shared = shared
        self._owner = next(_OWNERS)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.array(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self.stored or name in self._unit_of

    def array(self, name: str, keep: bool = True) -> np.ndarray:
        """The read-only array of `name`; computed (with the rest of its unit) when not held.
        keep=False: a computed unit is not added to the cache (a streaming pass over every
        layer, `engine.lens.heads.head_scores`), so it does not evict what a page reads.
        KeyError for a name this Trace does not have."""
        if name in self.stored:
            return self.stored[name]
        unit = self._unit_of[name]  # KeyError: not a name of this Trace
        return self.unit(unit, keep)[name]

    def arrays(self, names: Iterable[str], keep: bool = True) -> dict[str, np.ndarray]:
        """{name: read-only array} for several names, each unit computed at most once for the
        lot: block i's MLP half reads the resid_mid its attention half computed in this call,
        with the same `keep` (keep=False: a streaming pass over the layers reads a block's two
        halves once each and leaves the cache as it was). KeyError for a name this Trace does
        not have."""
        scratch: dict[Hashable, dict[str, np.ndarray]] = {}
        out: dict[str, np.ndarray] = {}
        for name in names:
            if name in self.stored:
                out[name] = self.stored[name]
                continue
            unit = self._unit_of[name]  # KeyError: not a name of this Trace
            if unit not in scratch:
                scratch[unit] = self.unit(unit, keep, scratch)
            out[name] = scratch[unit][name]
        return out

    def unit(
        self,
        unit: Hashable,
        keep: bool = True,
        scratch: dict[Hashable, dict[str, np.ndarray]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Every array of one unit, computed once however many threads ask at the same time."""
        with self._lock:
            found = self._lookup(unit)
            if found is not None:
                return found
            unit_lock = self._unit_locks.setdefault(unit, threading.Lock())
        with unit_lock:
            with self._lock:
                found = self._lookup(unit)  # computed by the thread we waited for
            if found is not None:
                return found
            arrays = self._compute(unit, lambda name: self._fetch(name, keep, scratch))
            for arr in arrays.values():
                arr.flags.writeable = False
            with self._lock:
                self.computations[unit] += 1
                if keep and self.shared is None:
                    self._cache[unit] = arrays
                    while len(self._cache) > self.max_units:
                        self._cache.popitem(last=False)
            if keep and self.shared is not None:
                self.shared.put((self._owner, unit), arrays)
        return arrays

    def _fetch(
        self, name: str, keep: bool, scratch: dict[Hashable, dict[str, np.ndarray]] | None
    ) -> np.ndarray:
        """An array a unit's computation needs from another unit (block i's resid_mid for its
        MLP half): from `scratch` (units computed in this pass) if there, else read with the
        same `keep` as the read that asked and added to `scratch`."""
        if name in self.stored:
            return self.stored[name]
        unit = self._unit_of[name]
        if scratch is not None and unit in scratch:
            return scratch[unit][name]
        arrays = self.unit(unit, keep, scratch)
        if scratch is not None:  # a later read in the same pass finds it there
            scratch[unit] = arrays
        return arrays[name]

    def _lookup(self, unit: Hashable) -> dict[str, np.ndarray] | None:
        """A kept unit (marked as just used), or None; the caller holds `self._lock`."""
        if self.shared is not None:
            return self.shared.get((self._owner, unit))
        if unit in self._cache:
            self._cache.move_to_end(unit)
            return self._cache[unit]
        return None

    def clear(self) -> None:
        """Forget every computed unit (the stored arrays stay); the next read recomputes."""
        with self._lock:
            self._cache.clear()
        if self.shared is not None:
            self.shared.drop_owner(self._owner)

    def resident_nbytes(self) -> int:
        """Bytes held now: the stored arrays (each once) and the cached units (in a shared
        `UnitCache`: this Trace's units there)."""
        with self._lock:
            arrays = list(self.stored.values())
            arrays += [a for unit in self._cache.values() for a in unit.values()]
        if self.shared is not None:
            arrays += self.shared.owner_arrays(self._owner)
        seen: dict[int, int] = {}
        for arr in arrays:
            seen[id(arr)] = arr.nbytes
        return int(sum(seen.values()))

    def max_resident_nbytes(self) -> int:
        """The most bytes this mapping can hold: the stored arrays and its `max_units` largest
        units; with a shared `UnitCache`, the stored arrays only (the units are counted in
        that cache's own budget)."""
        stored = {id(a): a.nbytes for a in self.stored.values()}
        if self.shared is not None:
            return int(sum(stored.values()))
        sizes: Counter[Hashable] = Counter()
        for name, unit in self._unit_of.items():
            sizes[unit] += self._nbytes_of[name]
        largest = sorted(sizes.values(), reverse=True)[: self.max_units]
        return int(sum(stored.values()) + sum(largest))

    def full_nbytes(self) -> int:
        """Bytes of every array, counted once per name: what the full capture holds
        (`Trace.nbytes`)."""
        return int(sum(self._nbytes_of[name] for name in self._names))

    def materialize(self) -> dict[str, np.ndarray]:
        """Every activation as a plain dict in forward order (each unit computed once, the
        cache left as it was)."""
        units: dict[Hashable, dict[str, np.ndarray]] = {}
        out: dict[str, np.ndarray] = {}
        for name in self._names:
            if name in self.stored:
                out[name] = self.stored[name]
                continue
            unit = self._unit_of[name]
            if unit not in units:
                units[unit] = self.unit(unit, keep=False, scratch=units)
            out[name] = units[unit][name]
        return out

    def __reduce__(self) -> tuple[type, tuple[dict[str, np.ndarray]]]:
        """Pickled as a plain dict of every activation: no model, no locks."""
        return (dict, (self.materialize(),))


@dataclass(frozen=True, eq=False)
class Trace:
    """One forward pass over one text.

    Fields:
        prompt: the text as given (before any truncation).
        token_ids: int64 [T], the tokens that were run (at most the model's context).
        token_strs: T display strings (`engine.tokenizer.token_labels`: `display_token`, and a
            character split over tokens as "注 1/3"), for axis labels, hovers, tables, pickers.
        config: the model's `GPTConfig`.
        acts: canonical name -> read-only float array, batch dimension removed (writable arrays
            given to the constructor are copied; every array stays read-only, also after
            unpickling); any subset of the activation sites below, the logits required. Or a
            `LazyActs` (what `run_with_trace` returns by default): the same mapping, most
            arrays computed on first read; pickling turns it into the full dict.
        model_name: which model produced it ("bundled", "random", a directory name).
        n_tokens_dropped: tokens cut off because the text was longer than the context.
        dropout_p: the dropout probability of the pass (0 for evaluation mode).
        n_valid_ids: how many of the V output rows are tokens of the model's tokenizer (ids
            0..n_valid_ids - 1); the rest are padding rows (a vocabulary padded to a multiple
            of 64, as nanoGPT does) that name no token. None (the default) means all V; it is
            stored as V. Every place that names a token from the output masks the padding out
            (`engine.lens.logit_lens`, `engine.sampling`).
        gap_ids: ids below n_valid_ids that name no token either (a tokenizer whose ids have
            gaps), ascending; masked out the same way.

    Activation sites, in forward order: `engine.names.site_table()`, copied here (a test checks
    the copy). Shapes in symbols: T tokens, d width, m MLP width, H heads, h head width (d / H),
    V vocabulary. "large" sites are what `run_with_trace(..., large_dtype=...)` applies to.
    hook_embed                         [T, d]    small token embeddings: rows of W_E
    hook_pos_embed                     [T, d]    small position embeddings: rows of W_pos
    blocks.i.hook_resid_pre            [T, d]    small the residual stream entering the block
    blocks.i.ln1.hook_scale            [T, 1]    small sqrt(var + eps) of each token entering ln_1
    blocks.i.ln1.hook_normalized       [T, d]    small (x - mean) / scale, before gamma, beta
    blocks.i.attn.hook_q               [T, H, h] small queries, per head
    blocks.i.attn.hook_k               [T, H, h] small keys, per head
    blocks.i.attn.hook_v               [T, H, h] small values, per head
    blocks.i.attn.hook_attn_scores     [H, T, T] large q.k / sqrt(h); future keys are -inf
    blocks.i.attn.hook_pattern         [H, T, T] large softmax of the scores: rows sum to 1
    blocks.i.attn.hook_pattern_dropped [H, T, T] large the pattern after dropout (dropout pass only)
    blocks.i.attn.hook_z               [T, H, h] small pattern-weighted values, per head
    blocks.i.hook_attn_out             [T, d]    small the attention block's output (after c_proj)
    blocks.i.hook_resid_mid            [T, d]    small resid_pre + attn_out
    blocks.i.ln2.hook_scale            [T, 1]    small sqrt(var + eps) of each token entering ln_2
    blocks.i.ln2.hook_normalized       [T, d]    small (x - mean) / scale, before gamma, beta
    blocks.i.mlp.hook_pre              [T, m]    large c_fc output, before GELU
    blocks.i.mlp.hook_post             [T, m]    large after GELU (GPT-2's tanh approximation)
    blocks.i.hook_mlp_out              [T, d]    small the MLP block's output (after c_proj)
    blocks.i.hook_resid_post           [T, d]    small resid_mid + mlp_out
    ln_final.hook_scale                [T, 1]    small sqrt(var + eps) of each token entering ln_f
    ln_final.hook_normalized           [T, d]    small (x - mean) / scale, before gamma, beta
    logits                             [T, V]    small ln_f(resid_post of the last block) @ W_E^T
    """

    prompt: str
    token_ids: np.ndarray
    token_strs: tuple[str, ...]
    config: GPTConfig
    acts: Mapping[str, np.ndarray] = field(repr=False)
    model_name: str = ""
    n_tokens_dropped: int = 0
    dropout_p: float = 0.0
    n_valid_ids: int | None = None
    gap_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        token_ids = np.asarray(self.token_ids)
        if token_ids.ndim != 1 or not np.issubdtype(token_ids.dtype, np.integer):
            raise ValueError(
                f"token_ids must be a 1-D array of integers, got shape {token_ids.shape} "
                f"and dtype {token_ids.dtype}"
            )
        T = len(token_ids)
        if T < 1:
            raise ValueError("a Trace needs at least one token")
        if len(self.token_strs) != T:
            raise ValueError(f"{len(self.token_strs)} token strings for {T} token ids")
        lazy = isinstance(self.acts, LazyActs)
        if not (lazy or isinstance(self.acts, dict)):
            raise ValueError(f"acts must be a dict of arrays, got {type(self.acts).__name__}")
        sizes = symbol_sizes(self.config, T)
        n_layer = self.config.n_layer
        acts: dict[str, np.ndarray] = {}
        # a lazy mapping: its names checked, its stored arrays validated (the rest are computed
        # by the model's own forward pass, in the same shapes)
        given = self.acts.stored if isinstance(self.acts, LazyActs) else self.acts
        for name in self.acts if lazy else ():
            if not isinstance(name, str) or parse_name(name, n_layer) is None:
                raise ValueError(f"unknown activation name {name!r} in Trace")
        for name, value in given.items():
            parsed = parse_name(name, n_layer) if isinstance(name, str) else None
            if parsed is None:
                raise ValueError(
                    f"unknown activation name {name!r} in Trace (canonical names are built by "
                    f"engine.names.act_name; this model has {n_layer} layers)"
                )
            arr = np.asarray(value)
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"activation {name!r} must hold floats, got dtype {arr.dtype}")
            expected = parsed[0].dims(sizes)
            if tuple(arr.shape) != expected:
                raise ValueError(
                    f"activation {name!r} has shape {tuple(arr.shape)}, expected {expected} "
                    f"for {T} tokens"
                )
            acts[name] = _read_only(arr)
        if LOGITS not in (self.acts if lazy else acts):
            raise ValueError("a Trace must hold the logits")
        V = self.config.vocab_size
        n_valid = V if self.n_valid_ids is None else self.n_valid_ids
        if isinstance(n_valid, bool) or not isinstance(n_valid, int | np.integer):
            raise ValueError(f"n_valid_ids must be a whole number, got {n_valid!r}")
        if not 1 <= n_valid <= V:
            raise ValueError(f"n_valid_ids must be in 1..{V} (the vocabulary), got {n_valid}")
        object.__setattr__(self, "n_valid_ids", int(n_valid))
        gaps = tuple(sorted({int(i) for i in self.gap_ids}))
        if gaps and not (0 <= gaps[0] and gaps[-1] < n_valid):
            raise ValueError(f"gap_ids must lie in 0..{n_valid - 1}, got {gaps[0]}..{gaps[-1]}")
        object.__setattr__(self, "gap_ids", gaps)
        # Frozen dataclass: normalise the fields once, here. Every array is read-only.
        object.__setattr__(self, "token_ids", _read_only(token_ids.astype(np.int64, copy=False)))
        object.__setattr__(self, "token_strs", tuple(self.token_strs))
        if not lazy:
            object.__setattr__(self, "acts", acts)

    def __setstate__(self, state: dict[str, object]) -> None:
        """Unpickling gives numpy arrays that are writable again; make them read-only as on
        construction."""
        for key, value in state.items():
            object.__setattr__(self, key, value)
        self.token_ids.flags.writeable = False
        for arr in self.acts.values():
            arr.flags.writeable = False

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def n_padding_ids(self) -> int:
        """Output rows that are padding, not tokens (0 unless the vocabulary is padded)."""
        return self.config.vocab_size - int(self.n_valid_ids or self.config.vocab_size)

    @property
    def logits(self) -> np.ndarray:
        return self.acts[LOGITS]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.acts[name]

    def get(self, site: str, layer: int | None = None, *, keep: bool = True) -> np.ndarray:
        """`trace.get("attn.hook_pattern", 2)` is `trace["blocks.2.attn.hook_pattern"]`.

        On a lazy Trace a site inside block `layer` other than the residual stream is computed
        on first read (one block forward from the stored `hook_resid_pre`, every site of that
        block kept in the Trace's cache); keep=False leaves the cache as it was (a pass over
        every layer that needs each layer once). KeyError for a site this Trace lacks."""
        name = act_name(site, layer)
        if isinstance(self.acts, LazyActs):
            return self.acts.array(name, keep)
        return self.acts[name]

    def get_layer(
        self, layer: int, sites: Iterable[str], *, keep: bool = True
    ) -> dict[str, np.ndarray]:
        """{site: array} for several sites of block `layer` (e.g. "hook_attn_out",
        "hook_mlp_out"): `get(site, layer)` for each, except that on a lazy Trace each half of
        the block is computed at most once for the lot, the MLP half from the resid_mid its
        attention half just computed. keep=False leaves the cache as it was: a streaming pass
        over every layer (`engine.lens.summary.layer_summary`) recomputes each half once and
        drops it. KeyError for a site this Trace lacks."""
        sites = list(sites)
        names = [act_name(site, layer) for site in sites]
        if isinstance(self.acts, LazyActs):
            found = self.acts.arrays(names, keep)
        else:
            found = {name: self.acts[name] for name in names}
        return {site: found[name] for site, name in zip(sites, names, strict=True)}

    def all_acts(self) -> dict[str, np.ndarray]:
        """Every activation, in forward order, as a plain dict (an export: `python -m engine
        trace`, the app's .npz download). A lazy Trace computes each block once and leaves its
        cache as it was."""
        if isinstance(self.acts, LazyActs):
            return self.acts.materialize()
        return dict(self.acts)

    @property
    def is_lazy(self) -> bool:
        """Whether most activations are computed on first read (`LazyActs`)."""
        return isinstance(self.acts, LazyActs)

    def nbytes(self) -> int:
        """Bytes of every array, counted once per name (block i's resid_post and block i+1's
        resid_pre share one array but count twice), plus the token ids; what
        `engine.capture.trace_nbytes` predicts before the run. On a lazy Trace: what the full
        capture holds (see `resident_nbytes` for what it holds now)."""
        if isinstance(self.acts, LazyActs):
            return self.acts.full_nbytes() + int(self.token_ids.nbytes)
        return int(sum(a.nbytes for a in self.acts.values()) + self.token_ids.nbytes)

    def resident_nbytes(self) -> int:
        """Bytes held now, each array once, plus the token ids: a full Trace's arrays; a lazy
        one's stored arrays and the units in its cache."""
        if isinstance(self.acts, LazyActs):
            return self.acts.resident_nbytes() + int(self.token_ids.nbytes)
        unique = {id(a): a.nbytes for a in self.acts.values()}
        return int(sum(unique.values()) + self.token_ids.nbytes)

    def max_resident_nbytes(self) -> int:
        """The most bytes this Trace can hold (a lazy Trace's cache full: see
        `LazyActs.max_resident_nbytes`); a full Trace's `resident_nbytes`. What a cache that
        shares Traces between sessions should count (`ui.cache`)."""
        if isinstance(self.acts, LazyActs):
            return self.acts.max_resident_nbytes() + int(self.token_ids.nbytes)
        return self.resident_nbytes()
