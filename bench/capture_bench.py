"""Capture benchmark: the engine against Hugging Face transformers and TransformerLens.

Every model here shares one set of random weights (the engine's seeded GPT-2 initialisation,
copied key for key into Hugging Face's `GPT2LMHeadModel` and converted to TransformerLens), so
all of them compute the same function; `check_same_function` verifies it before timing.

Timing protocol (`measure`): every case is warmed up, then each round times every case once,
in a shuffled order, so drift on the machine hits all cases alike; the float32 matmul rate is
measured at the start of every round and gives that round's ideal time (FLOPs / rate). Ratios
are taken within a round, then the median over rounds is reported.

Memory (`rss_probe`): one case in a fresh process; the peak resident set size during the call
(Linux's VmHWM, reset just before the call) and how far it rose above the resident size before.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/run.py` from anywhere
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app and the tests run torch

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.capture import run_with_trace  # noqa: E402
from engine.checkpoints import random_model  # noqa: E402
from engine.config import PRESETS, GPTConfig  # noqa: E402
from engine.figures.output import lens_positions, lens_window_start  # noqa: E402
from engine.lens.heads import head_scores  # noqa: E402
from engine.lens.logit_lens import (  # noqa: E402
    TILE,
    lens_blocks,
    lens_token_probs,
    logit_lens,
    merge_lenses,
    vocab_tiles,
)
from engine.model import GPT  # noqa: E402
from engine.tokenizer import Tokenizer, cl100k_truncated  # noqa: E402

# Case names, in table order.
ENGINE_PLAIN = "engine plain"
ENGINE_TRACE = "engine trace+heads"
ENGINE_TRACE16 = "engine trace+heads fp16"
# The logit lens: what the Output page computes on its first visit (the blocks of 16 positions
# holding its window and selected position, and that position's full distributions), and the
# lens over every position (nothing hidden); the HF lens is always over every position.
ENGINE_LENS = "engine lens (page)"
ENGINE_LENS_ALL = "engine lens (all T)"
# The page's lens without its statistics: the same rows through ln_f and the same vocabulary
# tiles of the unembedding, each product written and dropped (what the FLOP ideal counts, run
# at the shapes the lens runs it at): how much of the lens's time over its ideal is the
# product's own.
ENGINE_LENS_PRODUCT = "engine lens product (page)"
HF_PLAIN = "HF plain (sdpa)"
HF_ATTN = "HF attn+hidden (eager)"
HF_LENS = "HF lens"
TL_PLAIN = "TL plain"
TL_CACHE = "TL run_with_cache"
TLB_PLAIN = "TL bridge plain"
TLB_CACHE = "TL bridge run_with_cache"
# The lazy Trace (issue 19): run_with_trace alone (the default, lazy), the full capture with the
# head scores (lazy=False, what ENGINE_TRACE was before), one block's plain forward, and a
# layer's attention pattern read from a lazy Trace: first (its block recomputed) and cached.
ENGINE_CAPTURE = "engine run_with_trace (lazy)"
ENGINE_TRACE_FULL = "engine full trace+heads"
ENGINE_BLOCK = "engine one block (plain)"
ENGINE_GET_FIRST = "engine get pattern (first)"
ENGINE_GET_CACHED = "engine get pattern (cached)"
LAZY_CASES = (ENGINE_CAPTURE, ENGINE_TRACE_FULL, ENGINE_BLOCK, ENGINE_GET_FIRST, ENGINE_GET_CACHED)
ALL_CASES = (
    ENGINE_PLAIN,
    ENGINE_TRACE,
    ENGINE_TRACE16,
    ENGINE_LENS,
    ENGINE_LENS_ALL,
    HF_PLAIN,
    HF_ATTN,
    HF_LENS,
    TL_PLAIN,
    TL_CACHE,
    TLB_PLAIN,
    TLB_CACHE,
)
TL_CASES = (TL_PLAIN, TL_CACHE, TLB_PLAIN, TLB_CACHE)
LENS_K = 10
# The GEMM whose rate defines "ideal": an MLP matmul of GPT-2 small at T=1024.
MATMUL_SIZE = (1024, 768, 3072)


def have_transformer_lens() -> bool:
    return importlib.util.find_spec("transformer_lens") is not None


def tl_version() -> str:
    if not have_transformer_lens():
        return "not installed"
    from importlib.metadata import version

    return version("transformer-lens")


# --- FLOPs and the machine's matmul rate -------------------------------------------------------


def forward_flops(cfg: GPTConfig, T: int) -> int:
    """Matmul FLOPs of one forward pass over T tokens, logits at every position. Attention
    counts the full T x T products (what eager and fused CPU kernels compute)."""
    d, m, L, V = cfg.d_model, cfg.d_mlp, cfg.n_layer, cfg.vocab_size
    per_layer = (
        2 * T * d * 3 * d  # q, k, v
        + 2 * T * T * d  # q @ k^T, all heads
        + 2 * T * T * d  # pattern @ v
        + 2 * T * d * d  # W_o
        + 2 * 2 * T * d * m  # MLP in and out
    )
    return L * per_layer + 2 * T * d * V


def lens_flops(cfg: GPTConfig, T: int) -> int:
    """Matmul FLOPs of the logit lens: every residual (embeddings + each block) times W_U."""
    return (cfg.n_layer + 1) * T * 2 * cfg.d_model * cfg.vocab_size


def page_lens_plan(T: int) -> tuple[int, list[range]]:
    """What the Output page reads on its first visit to a text of T tokens: its selected
    position (the last one with a next token) and the lens blocks holding its window and that
    position (`ui.cache.get_logit_lens`)."""
    pos = max(0, T - 2)
    start = lens_window_start(T, pos)
    return pos, lens_blocks(lens_positions(T, start, pos), T)


def page_lens_flops(cfg: GPTConfig, T: int) -> int:
    """Matmul FLOPs of the page's lens work: its blocks' cells (the followed token's
    probabilities add a [rows, d] x [d, 64] product, not counted)."""
    _pos, blocks = page_lens_plan(T)
    cells = (cfg.n_layer + 1) * sum(len(b) for b in blocks)
    return cells * 2 * cfg.d_model * cfg.vocab_size


def page_lens(trace: Any, model: GPT, k: int = 10) -> tuple[Any, np.ndarray]:
    """The Output page's lens work on a first visit: each block computed on its own (as the
    app's cache computes them), merged, and the followed token's probability in every layer
    at the selected position (the real next token, the chart's first choice)."""
    pos, blocks = page_lens_plan(trace.n_tokens)
    lens = merge_lenses([logit_lens(trace, model, k=k, positions=b) for b in blocks])
    target = int(trace.token_ids[min(pos + 1, trace.n_tokens - 1)])
    return lens, lens_token_probs(trace, model, lens, pos, target)


def page_lens_product(trace: Any, model: GPT) -> torch.Tensor:
    """The page's lens products alone (`page_lens` without the statistics): each block's rows
    ([P x (n_layer + 1), d], position-major, as `logit_lens` stacks them) through ln_f, times
    the unembedding in the lens's own tiles of TILE vocabulary ids. Returns the last tile."""
    _pos, blocks = page_lens_plan(trace.n_tokens)
    weight = model.lm_head_weight
    n_valid = trace.n_valid_ids or model.config.vocab_size
    sites = [np.asarray(trace.get("hook_resid_pre", 0))]
    sites += [np.asarray(trace.get("hook_resid_post", i)) for i in range(trace.config.n_layer)]
    spans = vocab_tiles(n_valid, TILE)
    with torch.inference_mode():
        for block in blocks:
            pos = np.asarray(block, dtype=np.int64)
            rows = np.stack([s[pos] for s in sites], axis=1).reshape(-1, trace.config.d_model)
            x = model.transformer.ln_f(torch.from_numpy(np.ascontiguousarray(rows)))
            buf = torch.empty(x.shape[0], spans[0][1] - spans[0][0])
            for v0, v1 in spans:
                out = buf if v1 - v0 == buf.shape[1] else torch.empty(x.shape[0], v1 - v0)
                torch.mm(x, weight[v0:v1].t(), out=out)
    return out


def matmul_gflops(size: tuple[int, int, int] = MATMUL_SIZE, reps: int = 3) -> float:
    """This machine's float32 matmul rate now, at torch's current thread count: the best of
    `reps` timings of one (M, K) @ (K, N) product, in GFLOP/s."""
    M, K, N = size
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(M, K, generator=gen), torch.randn(K, N, generator=gen)
    out = torch.empty(M, N)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * M * K * N / best / 1e9


# --- models sharing one set of weights ---------------------------------------------------------


@dataclass
class Models:
    cfg: GPTConfig
    engine: GPT
    tokenizer: Tokenizer
    hf_sdpa: Any = None
    hf_eager: Any = None
    tl: Any = None  # TransformerLens HookedTransformer
    tl_bridge: Any = None  # TransformerLens TransformerBridge around its own HF copy


def tokenizer_for(cfg: GPTConfig) -> Tokenizer:
    """cl100k_base cut to vocab_size - 1 ranks plus <|endoftext|>: a real byte-level BPE of
    exactly the model's vocabulary (50257 for the GPT-2 shape), offline."""
    return cl100k_truncated(cfg.vocab_size - 1)


def hf_config(cfg: GPTConfig) -> Any:
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.n_ctx,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_inner=cfg.d_mlp,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=cfg.layer_norm_eps,
        tie_word_embeddings=True,
        bos_token_id=cfg.vocab_size - 1,  # <|endoftext|> is the last id in both tokenizers
        eos_token_id=cfg.vocab_size - 1,
    )


def build_hf(engine: GPT, attn_implementation: str) -> Any:
    """`GPT2LMHeadModel` with the engine's weights (built on the meta device, then filled)."""
    from transformers import GPT2LMHeadModel

    with torch.device("meta"):
        hf = GPT2LMHeadModel._from_config(
            hf_config(engine.config), attn_implementation=attn_implementation
        )
    hf = hf.to_empty(device="cpu")
    missing, unexpected = hf.load_state_dict(engine.state_dict(), strict=False)
    if unexpected or set(missing) != {"lm_head.weight"}:
        raise RuntimeError(f"HF weight copy: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    return hf.eval().requires_grad_(False)


def build_tl(engine: GPT) -> Any:
    """TransformerLens `HookedTransformer` from a config, weights converted from the HF copy
    (no download, no weight processing: the model as a user builds it from a config)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

    cfg = engine.config
    tl_cfg = HookedTransformerConfig(
        n_layers=cfg.n_layer,
        d_model=cfg.d_model,
        d_head=cfg.d_head,
        n_heads=cfg.n_head,
        d_mlp=cfg.d_mlp,
        d_vocab=cfg.vocab_size,
        n_ctx=cfg.n_ctx,
        act_fn="gelu_new",
        normalization_type="LN",
        eps=cfg.layer_norm_eps,
        default_prepend_bos=False,
        device="cpu",
    )
    with warnings.catch_warnings():
        # TransformerLens 3.9 announces HookedTransformer's removal in 4.0; measured on purpose.
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(tl_cfg, move_to_device=False)
    hf = build_hf(engine, "eager")
    model.load_state_dict(convert_gpt2_weights(hf, tl_cfg), strict=False)
    return model.eval().requires_grad_(False)


def build_tl_bridge(engine: GPT) -> Any:
    """TransformerLens `TransformerBridge` around its own HF copy (the bridge rewires it)."""
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module

    hf = build_hf(engine, "eager")
    bridge = build_bridge_from_module(hf, "GPT2LMHeadModel", hf_config=hf.config)
    return bridge.eval().requires_grad_(False)


def build_models(cfg: GPTConfig, cases: tuple[str, ...] = ALL_CASES) -> Models:
    engine = random_model(cfg)
    models = Models(cfg=cfg, engine=engine, tokenizer=tokenizer_for(cfg))
    if HF_PLAIN in cases:
        models.hf_sdpa = build_hf(engine, "sdpa")
    if HF_ATTN in cases or HF_LENS in cases:
        models.hf_eager = build_hf(engine, "eager")
    if have_transformer_lens():
        if TL_PLAIN in cases or TL_CACHE in cases:
            models.tl = build_tl(engine)
        if TLB_PLAIN in cases or TLB_CACHE in cases:
            models.tl_bridge = build_tl_bridge(engine)
    return models


def text_ids(tokenizer: Tokenizer, T: int) -> list[int]:
    """The first T tokens of the bundled Shakespeare corpus (real text, fixed)."""
    import gzip

    path = ROOT / "assets" / "corpus" / "shakespeare.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        text = f.read(max(4096, 16 * T))
    ids = tokenizer.encode(text)
    if len(ids) < T:
        raise ValueError(f"the corpus excerpt has only {len(ids)} tokens, need {T}")
    return ids[:T]


# --- the cases ---------------------------------------------------------------------------------


def hf_lens(hf: Any, hidden_states: tuple[torch.Tensor, ...], k: int = LENS_K) -> list[Any]:
    """The straightforward logit lens on Hugging Face outputs: for every hidden state,
    ln_f then lm_head, softmax over the vocabulary, top-k. (The last hidden state already
    went through ln_f inside the model.)"""
    out = []
    with torch.inference_mode():
        for i, h in enumerate(hidden_states):
            x = h if i == len(hidden_states) - 1 else hf.transformer.ln_f(h)
            probs = torch.softmax(hf.lm_head(x), dim=-1)
            out.append(probs.topk(k, dim=-1))
    return out


def _engine_trace(models: Models, ids: list[int], fp16: bool, lazy: bool = True) -> tuple[Any, Any]:
    kwargs: dict[str, Any] = {"lazy": lazy}
    if fp16:
        kwargs["dtype"] = np.float16
    trace = run_with_trace(models.engine, models.tokenizer, ids, **kwargs)
    return trace, head_scores(trace)


def make_cases(
    models: Models, ids: list[int], wanted: tuple[str, ...] = ALL_CASES
) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables, one per case, each returning what the caller would keep.
    Work that belongs to setup (the Trace the lens reads, HF's hidden states for its lens) is
    done here, once."""
    x = torch.tensor([ids], dtype=torch.long)
    cases: dict[str, Callable[[], Any]] = {}

    def no_grad(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with torch.inference_mode():
                return fn()

        return run

    if ENGINE_PLAIN in wanted:
        cases[ENGINE_PLAIN] = no_grad(lambda: models.engine(x))
    if ENGINE_TRACE in wanted:
        cases[ENGINE_TRACE] = lambda: _engine_trace(models, ids, fp16=False)
    if ENGINE_TRACE16 in wanted:
        cases[ENGINE_TRACE16] = lambda: _engine_trace(models, ids, fp16=True)
    if ENGINE_CAPTURE in wanted:
        cases[ENGINE_CAPTURE] = lambda: run_with_trace(models.engine, models.tokenizer, ids)
    if ENGINE_TRACE_FULL in wanted:
        cases[ENGINE_TRACE_FULL] = lambda: _engine_trace(models, ids, fp16=False, lazy=False)
    layer = models.engine.config.n_layer // 2  # a middle layer's pattern
    if ENGINE_BLOCK in wanted:
        block = models.engine.transformer.h[layer]
        with torch.inference_mode():
            resid = models.engine(x, unembed=False)  # any residual stream of the right shape
        cases[ENGINE_BLOCK] = no_grad(lambda: block(resid))
    if ENGINE_GET_FIRST in wanted or ENGINE_GET_CACHED in wanted:
        lazy = run_with_trace(models.engine, models.tokenizer, ids)

        def first() -> Any:
            lazy.acts.clear()  # forget computed blocks: the next get recomputes one
            return lazy.get("attn.hook_pattern", layer)

        cases[ENGINE_GET_FIRST] = first
        lazy.get("attn.hook_pattern", layer)
        cases[ENGINE_GET_CACHED] = lambda: lazy.get("attn.hook_pattern", layer)
        if ENGINE_GET_FIRST not in wanted:
            del cases[ENGINE_GET_FIRST]
        if ENGINE_GET_CACHED not in wanted:
            del cases[ENGINE_GET_CACHED]
    if ENGINE_LENS in wanted or ENGINE_LENS_ALL in wanted or ENGINE_LENS_PRODUCT in wanted:
        trace = run_with_trace(models.engine, models.tokenizer, ids)
        if ENGINE_LENS in wanted:
            cases[ENGINE_LENS] = lambda: page_lens(trace, models.engine, k=LENS_K)
        if ENGINE_LENS_ALL in wanted:
            cases[ENGINE_LENS_ALL] = lambda: logit_lens(trace, models.engine, k=LENS_K)
        if ENGINE_LENS_PRODUCT in wanted:
            cases[ENGINE_LENS_PRODUCT] = lambda: page_lens_product(trace, models.engine)
    if HF_PLAIN in wanted and models.hf_sdpa is not None:
        cases[HF_PLAIN] = no_grad(lambda: models.hf_sdpa(x, use_cache=False).logits)
    if HF_ATTN in wanted and models.hf_eager is not None:
        cases[HF_ATTN] = no_grad(
            lambda: models.hf_eager(
                x, output_attentions=True, output_hidden_states=True, use_cache=False
            )
        )
    if HF_LENS in wanted and models.hf_eager is not None:
        with torch.inference_mode():
            hidden = models.hf_eager(x, output_hidden_states=True, use_cache=False).hidden_states
        cases[HF_LENS] = lambda: hf_lens(models.hf_eager, hidden)
    if models.tl is not None:
        if TL_PLAIN in wanted:
            cases[TL_PLAIN] = no_grad(lambda: models.tl(x))
        if TL_CACHE in wanted:
            cases[TL_CACHE] = no_grad(lambda: models.tl.run_with_cache(x))
    if models.tl_bridge is not None:
        if TLB_PLAIN in wanted:
            cases[TLB_PLAIN] = no_grad(lambda: models.tl_bridge(x))
        if TLB_CACHE in wanted:
            cases[TLB_CACHE] = no_grad(lambda: models.tl_bridge.run_with_cache(x))
    return cases


def check_same_function(models: Models, ids: list[int], atol: float = 1e-3) -> dict[str, float]:
    """Max |logits - engine logits| of every peer on `ids`: all must compute one function."""
    x = torch.tensor([ids], dtype=torch.long)
    diffs: dict[str, float] = {}
    with torch.inference_mode():
        ref = models.engine(x)
        peers = {
            HF_PLAIN: lambda: models.hf_sdpa(x, use_cache=False).logits,
            HF_ATTN: lambda: models.hf_eager(x, use_cache=False).logits,
            TL_PLAIN: lambda: models.tl(x),
            TLB_PLAIN: lambda: models.tl_bridge(x),
        }
        owners = {
            HF_PLAIN: models.hf_sdpa,
            HF_ATTN: models.hf_eager,
            TL_PLAIN: models.tl,
            TLB_PLAIN: models.tl_bridge,
        }
        for name, fn in peers.items():
            if owners[name] is not None:
                diffs[name] = float((fn() - ref).abs().max())
    bad = {k: v for k, v in diffs.items() if not v <= atol}
    if bad:
        raise RuntimeError(f"peers disagree with the engine's logits: {bad}")
    return diffs


# --- timing ------------------------------------------------------------------------------------


def _time_call(fn: Callable[[], Any], inner: int) -> float:
    """Seconds per call, averaged over `inner` calls; results are freed outside the clock."""
    total = 0.0
    for _ in range(inner):
        t0 = time.perf_counter()
        out = fn()
        total += time.perf_counter() - t0
        del out
    return total / inner


@dataclass
class Timings:
    times: dict[str, list[float]]  # case -> seconds per round
    gflops: list[float]  # matmul rate per round
    inner: dict[str, int]  # calls averaged per round


def measure(
    cases: dict[str, Callable[[], Any]],
    rounds: int,
    min_time: float = 0.05,
    matmul_size: tuple[int, int, int] = MATMUL_SIZE,
    seed: int = 0,
) -> Timings:
    """Warm up every case, then `rounds` rounds; in each, the matmul rate then every case once
    in a shuffled order. A fast case is repeated so one sample lasts at least `min_time`."""
    inner: dict[str, int] = {}
    for name, fn in cases.items():
        t = _time_call(fn, 1)
        if t < min_time:
            t = _time_call(fn, 1)  # second warm-up for fast cases (allocator, caches)
        inner[name] = max(1, min(200, round(min_time / max(t, 1e-7))))
    rng = random.Random(seed)
    times: dict[str, list[float]] = {name: [] for name in cases}
    rates = []
    for _ in range(rounds):
        gc.collect()  # once per round, outside every clock
        rates.append(matmul_gflops(matmul_size))
        order = list(cases)
        rng.shuffle(order)
        for name in order:
            times[name].append(_time_call(cases[name], inner[name]))
    return Timings(times=times, gflops=rates, inner=inner)


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a[r] / b[r]."""
    return float(statistics.median(x / y for x, y in zip(a, b, strict=True)))


# Ratios reported for every (shape, T, threads): name -> (numerator, denominator).
RATIOS: dict[str, tuple[str, str]] = {
    "engine plain / HF plain": (ENGINE_PLAIN, HF_PLAIN),
    "engine trace / HF attn+hidden": (ENGINE_TRACE, HF_ATTN),
    "run_with_trace / engine plain": (ENGINE_CAPTURE, ENGINE_PLAIN),
    "run_with_trace / HF attn+hidden": (ENGINE_CAPTURE, HF_ATTN),
    "run_with_trace / TL cache": (ENGINE_CAPTURE, TL_CACHE),
    "engine trace / full trace": (ENGINE_TRACE, ENGINE_TRACE_FULL),
    "first get / one block": (ENGINE_GET_FIRST, ENGINE_BLOCK),
    "cached get / one block": (ENGINE_GET_CACHED, ENGINE_BLOCK),
    "engine trace / TL cache": (ENGINE_TRACE, TL_CACHE),
    "engine trace / TL bridge cache": (ENGINE_TRACE, TLB_CACHE),
    "engine trace fp16 / HF attn+hidden": (ENGINE_TRACE16, HF_ATTN),
    "engine trace fp16 / TL cache": (ENGINE_TRACE16, TL_CACHE),
    "engine lens / HF lens": (ENGINE_LENS, HF_LENS),
    "engine lens all T / HF lens": (ENGINE_LENS_ALL, HF_LENS),
    "HF attn+hidden / HF plain": (HF_ATTN, HF_PLAIN),
    "TL cache / HF plain": (TL_CACHE, HF_PLAIN),
    "TL bridge cache / HF plain": (TLB_CACHE, HF_PLAIN),
}
# Ratios to the ideal (FLOPs / that round's matmul rate): name -> (case, kind of FLOPs).
IDEAL_RATIOS: dict[str, tuple[str, str]] = {
    "engine plain / ideal": (ENGINE_PLAIN, "forward"),
    "HF plain / ideal": (HF_PLAIN, "forward"),
    "engine lens / lens ideal": (ENGINE_LENS, "lens page"),
    "lens product / lens ideal": (ENGINE_LENS_PRODUCT, "lens page"),
    "engine lens all T / lens ideal": (ENGINE_LENS_ALL, "lens"),
    "HF lens / lens ideal": (HF_LENS, "lens"),
}


def summarise(cfg: GPTConfig, T: int, timings: Timings) -> dict[str, Any]:
    """Medians of times, ratios within rounds, and ratios to the per-round ideal."""
    flops = {
        "forward": forward_flops(cfg, T),
        "lens": lens_flops(cfg, T),
        "lens page": page_lens_flops(cfg, T),
    }
    ideal = {
        kind: [f / (g * 1e9) for g in timings.gflops] for kind, f in flops.items()
    }  # seconds per round
    out: dict[str, Any] = {
        "gflops": statistics.median(timings.gflops),
        "ideal_s": {k: statistics.median(v) for k, v in ideal.items()},
        "flops": flops,
        "median_s": {k: statistics.median(v) for k, v in timings.times.items()},
        "times_s": timings.times,
        "inner": timings.inner,
        "ratios": {},
    }
    for name, (a, b) in RATIOS.items():
        if a in timings.times and b in timings.times:
            out["ratios"][name] = median_ratio(timings.times[a], timings.times[b])
    for name, (case, kind) in IDEAL_RATIOS.items():
        if case in timings.times:
            out["ratios"][name] = median_ratio(timings.times[case], ideal[kind])
    return out


# --- where the time goes ----------------------------------------------------------------------


def profile_case(fn: Callable[[], Any], top: int = 10) -> dict[str, Any]:
    """One call under torch.profiler: wall time, time inside torch ops, and the ops with the
    most self time (what a miss is made of)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        out = fn()
        wall = time.perf_counter() - t0
    del out
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    ops_s = sum(e.self_cpu_time_total for e in events) / 1e6
    return {
        "wall_s": wall,
        "torch_ops_s": ops_s,
        "top": [
            {"op": e.key, "self_s": e.self_cpu_time_total / 1e6, "calls": e.count}
            for e in events[:top]
        ],
    }


# --- bytes -------------------------------------------------------------------------------------


def distinct_tensor_bytes(tensors: Any) -> int:
    """Bytes of the distinct tensors in a nested structure (a view reached twice, e.g. one
    cache entry under two names, counts once)."""
    seen: set[tuple[int, tuple[int, ...], tuple[int, ...]]] = set()
    total = 0

    def visit(obj: Any) -> None:
        nonlocal total
        if isinstance(obj, torch.Tensor):
            key = (obj.data_ptr(), tuple(obj.shape), tuple(obj.stride()))
            if key not in seen:
                seen.add(key)
                total += obj.numel() * obj.element_size()
        elif isinstance(obj, dict):
            for v in obj.values():
                visit(v)
        elif isinstance(obj, list | tuple):
            for v in obj:
                visit(v)
        elif hasattr(obj, "keys") and hasattr(obj, "__getitem__"):  # ActivationCache, outputs
            for k in list(obj.keys()):
                visit(obj[k])

    visit(tensors)
    return total


def distinct_array_bytes(trace: Any) -> int:
    """Bytes of a Trace's distinct arrays (two names for one array, such as block i's
    resid_post and block i+1's resid_pre, count once) plus its token ids."""
    seen: set[tuple[int, int]] = set()
    total = int(trace.token_ids.nbytes)
    for arr in trace.acts.values():
        key = (arr.__array_interface__["data"][0], arr.nbytes)
        if key not in seen:
            seen.add(key)
            total += int(arr.nbytes)
    return total


def measure_bytes(models: Models, ids: list[int]) -> dict[str, int]:
    """What each tool hands back for one text: the Trace (float32 and float16), TransformerLens's
    cache, Hugging Face's returned logits + attentions + hidden states."""
    x = torch.tensor([ids], dtype=torch.long)
    out: dict[str, int] = {}
    variants: dict[str, dict[str, Any]] = {
        "trace_float32": {"lazy": False},
        "trace_float16": {"dtype": np.float16},
        "trace_large_float16": {"large_dtype": np.float16, "lazy": False},
    }
    lazy = run_with_trace(models.engine, models.tokenizer, ids)  # the default
    out["trace_lazy_resident"] = lazy.resident_nbytes()  # right after capture
    out["trace_lazy_max"] = lazy.max_resident_nbytes()  # its cache full (what ui.cache counts)
    lazy.get("attn.hook_pattern", models.engine.config.n_layer // 2)
    out["trace_lazy_after_get"] = lazy.resident_nbytes()  # one block recomputed and kept
    del lazy
    for key, kwargs in variants.items():
        trace = run_with_trace(models.engine, models.tokenizer, ids, **kwargs)
        out[key] = distinct_array_bytes(trace)  # what it occupies (TL's cache: counted alike)
        out[key + "_nbytes"] = trace.nbytes()  # Trace.nbytes(): a shared array counts per name
        out["trace_n_arrays"] = len(trace.acts)
        del trace
    with torch.inference_mode():
        if models.hf_eager is not None:
            res = models.hf_eager(
                x, output_attentions=True, output_hidden_states=True, use_cache=False
            )
            out["hf_outputs"] = distinct_tensor_bytes(
                [res.logits, list(res.attentions), list(res.hidden_states)]
            )
            del res
        if models.tl is not None:
            _, cache = models.tl.run_with_cache(x)
            out["tl_cache"] = distinct_tensor_bytes(cache)
            out["tl_cache_n_arrays"] = len(cache)
            del cache
        if models.tl_bridge is not None:
            _, cache = models.tl_bridge.run_with_cache(x)
            out["tl_bridge_cache"] = distinct_tensor_bytes(cache)
            out["tl_bridge_cache_n_arrays"] = len(cache)
            del cache
    return out


# --- peak memory in a fresh process ------------------------------------------------------------


def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def rss_probe(shape: str, T: int, case: str, threads: int) -> dict[str, Any]:
    """Build only what `case` needs, then run it once: resident size before, peak during
    (VmHWM reset through /proc/self/clear_refs), in MiB."""
    torch.set_num_threads(threads)
    cfg = PRESETS[shape]
    models = build_models(cfg, (case,))
    ids = text_ids(models.tokenizer, T)
    fn = make_cases(models, ids, (case,))[case]
    gc.collect()
    before = _proc_status_kb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # reset the peak (VmHWM) to the current RSS
        peak_reset = True
    except OSError:
        peak_reset = False
    kept = fn()
    peak = _proc_status_kb("VmHWM")
    del kept
    return {
        "shape": shape,
        "T": T,
        "case": case,
        "threads": threads,
        "rss_before_mib": before / 1024,
        "peak_mib": peak / 1024,
        "extra_mib": (peak - before) / 1024,
        "peak_reset": peak_reset,
    }


def rss_in_subprocess(
    shape: str, T: int, case: str, threads: int, timeout: float = 600
) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_WAIT_POLICY="PASSIVE")
    cmd = [sys.executable, "-m", "bench.capture_bench", "rss", shape, str(T), case, str(threads)]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"rss probe {case!r} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="one peak-memory probe (used by bench/run.py)")
    parser.add_argument("mode", choices=["rss"])
    parser.add_argument("shape")
    parser.add_argument("T", type=int)
    parser.add_argument("case")
    parser.add_argument("threads", type=int)
    args = parser.parse_args(argv)
    print(json.dumps(rss_probe(args.shape, args.T, args.case, args.threads)))


if __name__ == "__main__":
    _main(sys.argv[1:])
