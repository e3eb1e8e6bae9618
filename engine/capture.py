"""`run_with_trace`: the one function that runs the model for the UI and returns a `Trace`."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Collection

import numpy as np
import torch

from engine.config import GPTConfig
from engine.model import GPT, Editor, edit_nothing
from engine.names import (
    EMBED,
    LOGITS,
    POS_EMBED,
    act_name,
    canonical_names,
    parse_name,
    symbol_sizes,
)
from engine.sampling import gap_ids, n_valid_ids
from engine.tokenizer import Tokenizer
from engine.trace import LazyActs, Trace, UnitCache

# Units a lazy Trace computes on demand: (layer, ATTN) block i's attention half (ln_1 to
# resid_mid), (layer, MLP) its MLP half (ln_2 to mlp_out), FINAL ln_f's sites and the logits.
ATTN, MLP, FINAL = "attn", "mlp", "final"
_ATTENTION_HALF = frozenset(
    ("ln1.hook_scale", "ln1.hook_normalized", "hook_attn_out", "hook_resid_mid")
)


def unit_of_site(site: str, layer: int | None) -> object:
    """The unit a lazy Trace computes a site in: FINAL outside the blocks, else (layer, ATTN)
    for LayerNorm 1, attention, attn_out and resid_mid, (layer, MLP) for the rest."""
    if layer is None:
        return FINAL
    half = ATTN if site in _ATTENTION_HALF or site.startswith("attn.") else MLP
    return (layer, half)


def prepare_ids(
    tokenizer: Tokenizer, text_or_ids: str | list[int], n_ctx: int
) -> tuple[list[int], int]:
    """Token ids cut to the context (the first `n_ctx` are kept) and how many were dropped."""
    if isinstance(text_or_ids, str):
        ids = tokenizer.encode(text_or_ids)
    else:
        try:
            ids = [operator.index(i) for i in text_or_ids]
        except TypeError as err:
            raise ValueError(f"token ids must be integers: {err}") from err
    if not ids:
        raise ValueError("the text is empty: there is nothing to run the model on")
    bad = [i for i in ids if not 0 <= int(i) < tokenizer.vocab_size]
    if bad:
        raise ValueError(
            f"token id {bad[0]} is outside the vocabulary (0..{tokenizer.vocab_size - 1})"
        )
    return ids[:n_ctx], max(0, len(ids) - n_ctx)


def trace_nbytes(
    config: GPTConfig,
    n_tokens: int,
    dtype: type[np.floating] = np.float32,
    large_dtype: type[np.floating] | None = None,
) -> int:
    """The exact `Trace.nbytes()` of an evaluation pass (`dropout_p=0`) over `n_tokens`, known
    before running the model: what the app uses to bound its memory. Sums every name of
    `canonical_names` at its shape in `engine.names.SITES`, in `large_dtype` (default `dtype`)
    for the "large" sites and `dtype` for the rest, plus the int64 token ids. The [H, T, T]
    maps dominate long texts. Like `Trace.nbytes`, it counts an array once per name, so block
    i's resid_post and block i+1's resid_pre (one array) count twice: an upper bound of the
    memory the Trace holds."""
    sizes = symbol_sizes(config, n_tokens)
    itemsize = {
        "small": np.dtype(dtype).itemsize,
        "large": np.dtype(large_dtype or dtype).itemsize,
    }
    total = 8 * n_tokens  # the token ids
    for name in canonical_names(config.n_layer):
        site = parse_name(name, config.n_layer)[0]
        total += itemsize[site.size] * math.prod(site.dims(sizes))
    return total


def lazy_trace_nbytes(
    config: GPTConfig,
    n_tokens: int,
    large_dtype: type[np.floating] | None = None,
    max_units: int = 2,
) -> int:
    """The most bytes a lazy Trace (`run_with_trace(..., lazy=True)`, float32) over `n_tokens`
    can hold, known before the run: `Trace.max_resident_nbytes()`. The stored arrays (the two
    embeddings and n_layer + 1 residual-stream arrays [T, d]), the token ids, and the
    `max_units` largest units of its cache (a block's attention or MLP half, or ln_final's
    sites and the logits [T, V]). `large_dtype` as in `trace_nbytes`."""
    sizes = symbol_sizes(config, n_tokens)
    itemsize = {"small": 4, "large": np.dtype(large_dtype or np.float32).itemsize}
    stored = 4 * (config.n_layer + 3) * n_tokens * config.d_model + 8 * n_tokens
    units: dict[object, int] = {}
    for name in canonical_names(config.n_layer):
        site, layer = parse_name(name, config.n_layer) or (None, None)
        assert site is not None
        if site.name in (EMBED, POS_EMBED, "hook_resid_pre", "hook_resid_post"):
            continue
        unit = unit_of_site(site.name, layer)
        units[unit] = units.get(unit, 0) + itemsize[site.size] * math.prod(site.dims(sizes))
    return stored + sum(sorted(units.values(), reverse=True)[:max_units])


def _torch_dtype(dtype: type[np.floating]) -> torch.dtype:
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise ValueError(f"a Trace stores float32 or float16, not {np.dtype(dtype).name}")
    return torch.float16 if np.dtype(dtype) == np.float16 else torch.float32


def run_with_trace(
    model: GPT,
    tokenizer: Tokenizer,
    text_or_ids: str | list[int],
    *,
    model_name: str = "",
    dtype: type[np.floating] = np.float32,
    large_dtype: type[np.floating] | None = None,
    dropout_p: float = 0.0,
    seed: int | None = None,
    editor: Editor | None = None,
    lazy: bool = True,
    max_units: int = 2,
    unit_cache: UnitCache | None = None,
    sites: Collection[str] | None = None,
) -> Trace:
    """Run one forward pass and record every canonical activation (or those in `sites`).

    `lazy` (the default; used when `dtype` is float32, the model computes in float32 and
    `dropout_p` is 0) keeps only the embeddings and the residual stream at every block
    boundary; any other activation of block i is computed when first read, by block i's own
    forward (the same ops on the same input, the stored `blocks.i.hook_resid_pre`, with the
    same recorder and editor), so it is bitwise equal to what `lazy=False` records; the
    logits and ln_final's sites likewise from the last residual. Up to `max_units` computed
    units (a block's sites; ln_final's sites and the logits) stay in the Trace's cache
    (`engine.trace.LazyActs`), or in `unit_cache` when given (one byte-bounded cache shared
    by many Traces: the app's). A lazy Trace holds the model until it is pickled.

    The recorder lives in this call only (no hooks on the shared model), so many threads may
    trace at once. `dtype` sets the stored precision (float16 halves a long text's Trace);
    `large_dtype`, when given, overrides it for the sites that grow with T * T or T * d_mlp
    (size "large" in `engine.names.SITES`: attention scores and patterns, the MLP's hidden
    activations), e.g. float16 there and float32 for the residual stream. Each activation is
    converted as soon as it is recorded, so a float16 pass frees the float32 maps during the
    forward pass.
    `dropout_p` > 0 runs a seeded dropout pass (the dropout page) without touching the
    model's mode; it then also records each layer's `attn.hook_pattern_dropped`.
    `editor` (per call, like the recorder: `GPT.forward`) changes the run at editable sites, e.g.
    an ablation from `engine.interventions`; the Trace then records the edited run.
    `sites`: canonical names (`engine.names.act_name`) to record, the logits always among them;
    the others are computed by the forward pass and not kept (the Trace is then full, not
    lazy, and holds only those: what a page that reads a few sites of a pass it cannot
    recompute needs, e.g. the Dropout page, `engine.dropout_demo.dropout_pass`). ValueError
    for a name that is not one of this model's.
    """
    ids, n_dropped, small, large = _checked_inputs(
        model, tokenizer, text_or_ids, dropout_p, dtype, large_dtype
    )
    lazy = lazy and _can_be_lazy(model, sites, dropout_p, small)
    acts: dict[str, np.ndarray] = {}
    n_layer = model.config.n_layer
    recorder = _recorder(acts, _kept_names(n_layer, lazy, sites), n_layer, small, large)
    _forward(model, ids, recorder, dropout_p, seed, editor, lazy)
    prompt = text_or_ids if isinstance(text_or_ids, str) else tokenizer.decode(ids)
    if lazy:
        acts = _lazy_acts(model, acts, len(ids), small, large, editor, max_units, unit_cache)
    return _trace(model, tokenizer, prompt, ids, n_dropped, acts, model_name, dropout_p)


def _checked_inputs(
    model: GPT,
    tokenizer: Tokenizer,
    text_or_ids: str | list[int],
    dropout_p: float,
    dtype: type[np.floating],
    large_dtype: type[np.floating] | None,
) -> tuple[list[int], int, torch.dtype, torch.dtype]:
    """The ids to run, how many were cut, the small and large torch dtypes; ValueError if bad."""
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p!r}")
    ids, n_dropped = prepare_ids(tokenizer, text_or_ids, model.config.n_ctx)
    small, large = _torch_dtype(dtype), _torch_dtype(large_dtype or dtype)
    return ids, n_dropped, small, large


def _can_be_lazy(
    model: GPT, sites: Collection[str] | None, dropout_p: float, small: torch.dtype
) -> bool:
    """Whether a pass may be lazy: no `sites`, no dropout, float32 stored and computed."""
    return (
        sites is None
        and dropout_p == 0.0
        and small == torch.float32
        and model.lm_head_weight.dtype == small
    )


def _forward(
    model: GPT,
    ids: list[int],
    recorder: Callable[[str, torch.Tensor], None],
    dropout_p: float,
    seed: int | None,
    editor: Editor | None,
    lazy: bool,
) -> None:
    """Run the model over `ids` into `recorder` (seeded dropout if any; lazy: boundaries only)."""
    generator = None
    if dropout_p > 0.0:
        generator = torch.Generator(device=model.device).manual_seed(0 if seed is None else seed)
    with torch.inference_mode():
        model(
            torch.tensor([ids], dtype=torch.long, device=model.device),
            recorder=recorder,
            dropout_p=dropout_p,
            generator=generator,
            editor=editor,
            unembed=not lazy,
            boundary_only=lazy,
        )


def _trace(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    ids: list[int],
    n_dropped: int,
    acts: dict[str, np.ndarray] | LazyActs,
    model_name: str,
    dropout_p: float,
) -> Trace:
    """The `Trace` of a run over `ids` (read-only int64 token ids) holding `acts`."""
    token_ids = np.asarray(ids, dtype=np.int64)
    token_ids.flags.writeable = False
    return Trace(
        prompt=prompt,
        token_ids=token_ids,
        token_strs=tuple(tokenizer.labels(ids)),
        config=model.config,
        acts=acts,
        model_name=model_name,
        n_tokens_dropped=n_dropped,
        dropout_p=float(dropout_p),
        n_valid_ids=n_valid_ids(tokenizer, model.config.vocab_size),
        gap_ids=gap_ids(tokenizer, model.config.vocab_size),
    )


def _kept_names(n_layer: int, lazy: bool, sites: Collection[str] | None) -> frozenset[str] | None:
    """The names a capture keeps: the block boundaries of a lazy one, the given `sites` (and
    the logits), or None for every name. ValueError for a site this model does not have."""
    if sites is not None:
        unknown = [name for name in sites if parse_name(name, n_layer) is None]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not an activation of this {n_layer}-layer model")
        return frozenset(sites) | {LOGITS}
    return _boundary_names(n_layer) if lazy else None


def _recorder(
    acts: dict[str, np.ndarray],
    kept: frozenset[str] | None,
    n_layer: int,
    small: torch.dtype,
    large: torch.dtype,
) -> Callable[[str, torch.Tensor], None]:
    """The forward pass's recorder: each canonical activation in `kept` (None: all) converted
    at once to `small`, or `large` for the sites that grow with T * T or T * d_mlp, into `acts`.
    ValueError for a name that is not canonical."""
    # The last tensor recorded and its array: block i's resid_post is block i+1's resid_pre
    # (the same tensor, recorded twice in a row), so both names share one array.
    last: list[tuple[torch.Tensor, torch.dtype, np.ndarray]] = []

    def record(name: str, tensor: torch.Tensor) -> None:
        site = parse_name(name, n_layer)
        if site is None:
            raise ValueError(f"the model recorded a non-canonical activation name {name!r}")
        if kept is not None and name not in kept:
            return
        target = large if site[0].size == "large" else small
        if last and last[0][0] is tensor and last[0][1] == target:
            acts[name] = last[0][2]
            return
        # a view when nothing needs converting (on the CPU, .cpu() is the tensor itself)
        arr = acts[name] = _convert(tensor, target)
        last[:] = [(tensor, target, arr)]

    return record


def _boundary_names(n_layer: int) -> frozenset[str]:
    """What a lazy capture stores: the embeddings and the residual stream at every block
    boundary."""
    names = {EMBED, POS_EMBED}
    for i in range(n_layer):  # resid_post i is resid_pre i + 1 (one array) unless edited
        names.update((act_name("hook_resid_pre", i), act_name("hook_resid_post", i)))
    return frozenset(names)


def _convert(tensor: torch.Tensor, target: torch.dtype) -> np.ndarray:
    """A recorded tensor [1, ...] as a read-only array [...] in `target` (the full capture's
    conversion, also used when a lazy Trace computes a unit)."""
    arr = tensor[0].to(target).contiguous().cpu().numpy()
    arr.flags.writeable = False
    return arr


def _lazy_acts(
    model: GPT,
    stored: dict[str, np.ndarray],
    n_tokens: int,
    small: torch.dtype,
    large: torch.dtype,
    editor: Editor | None,
    max_units: int,
    unit_cache: UnitCache | None = None,
) -> LazyActs:
    """The `LazyActs` of a lazy capture: `stored` (`_boundary_names`) and the function that
    computes a unit from them. Block i's attention half runs from a fresh torch copy of the
    stored resid_pre (the same values, shape [1, T, d] and layout the full pass fed it), its MLP
    half from a copy of the resid_mid its attention half recorded, both with the full
    capture's recorder; the editor is the run's own, except at block i's hook_resid_pre, whose
    stored value is already the edited one (the MLP half starts after the resid_mid edit)."""
    n_layer = model.config.n_layer
    names = canonical_names(n_layer)
    sizes = symbol_sizes(model.config, n_tokens)
    unit_of: dict[str, object] = {}
    nbytes_of: dict[str, int] = {}
    for name in names:
        site, layer = parse_name(name, n_layer) or (None, None)
        assert site is not None
        itemsize = (large if site.size == "large" else small).itemsize
        nbytes_of[name] = itemsize * math.prod(site.dims(sizes))
        if name not in stored:
            unit_of[name] = unit_of_site(site.name, layer)
    edit = editor if editor is not None else edit_nothing

    def compute(unit: object, fetch: Callable[[str], np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}

        def recorder(name: str, tensor: torch.Tensor) -> None:
            if name in stored:  # the residual stream: held already (the same values)
                return
            site = parse_name(name, n_layer)
            target = large if site is not None and site[0].size == "large" else small
            out[name] = _convert(tensor, target)

        def fresh(arr: np.ndarray) -> torch.Tensor:  # [1, T, d], a copy in torch's memory
            return torch.tensor(arr, device=model.device)[None]

        if unit == FINAL:
            with torch.inference_mode():
                x = fresh(stored[act_name("hook_resid_post", n_layer - 1)])
                recorder(LOGITS, model.unembed(x, recorder=recorder))
            return out
        layer, half = unit  # type: ignore[misc]
        block = model.transformer.h[layer]
        if half == ATTN:
            source = act_name("hook_resid_pre", layer)

            def block_editor(name: str, tensor: torch.Tensor) -> torch.Tensor:
                return tensor if name == source else edit(name, tensor)

            with torch.inference_mode():
                block.attention_half(fresh(stored[source]), recorder, 0.0, None, block_editor)
        else:
            mid = fetch(act_name("hook_resid_mid", layer))  # its attention half's
            with torch.inference_mode():
                block.mlp_half(fresh(mid), recorder, 0.0, None, edit)
        return out

    return LazyActs(names, stored, unit_of, compute, nbytes_of, max_units, unit_cache)
