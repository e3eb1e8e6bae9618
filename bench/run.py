"""Run the benchmarks, write bench/results.json and print markdown tables.

    bench/.venv/bin/python bench/run.py --quick     # under 5 minutes
    bench/.venv/bin/python bench/run.py             # the full run, under 30 minutes

See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import capture_bench as cb  # noqa: E402, I001  (sets OMP_WAIT_POLICY before torch)
import torch  # noqa: E402

from engine.config import PRESETS  # noqa: E402

RESULTS = ROOT / "bench" / "results.json"


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    lengths: dict[str, tuple[int, ...]]  # shape -> T values
    threads: tuple[int, ...]
    rounds: int
    rss_shapes: tuple[str, ...]  # shapes whose largest T gets the fresh-process RSS probes
    cases: tuple[str, ...] = cb.ALL_CASES
    rss_cases: tuple[str, ...] | None = None  # None: every case
    pages: bool = True
    page_rounds: int = 5
    pages_model: str = "bundled"  # or "gpt2": GPT-2 small's shape at 1,024 tokens
    profile_tokens: int = 0  # 0: no torch.profiler breakdown
    browser_rounds: int = 3  # 0: no browser timing
    min_time: float = 0.05
    matmul_size: tuple[int, int, int] = cb.MATMUL_SIZE


FULL = Plan(
    lengths={"gpt2": (16, 128, 512, 1024), "bundled": (16, 128)},  # bundled context: 128
    threads=(1, 2),
    rounds=5,
    rss_shapes=("gpt2",),
    cases=tuple(c for c in cb.ALL_CASES + cb.LAZY_CASES if c != cb.TLB_PLAIN),
    profile_tokens=1024,
)
QUICK = Plan(
    lengths={"gpt2": (128, 1024), "bundled": (128,)},
    threads=(2,),
    rounds=3,
    rss_shapes=("gpt2",),
    cases=tuple(c for c in cb.ALL_CASES if c not in (cb.TLB_PLAIN, cb.TLB_CACHE)),
    rss_cases=(cb.ENGINE_TRACE, cb.HF_ATTN, cb.TL_CACHE),
    page_rounds=3,
    browser_rounds=0,
)
# The lazy Trace's rows (issue 19): GPT-2 small at T=128 and 1,024, one thread, against the
# full capture, Hugging Face and TransformerLens; no pages.
LAZY = Plan(
    lengths={"gpt2": (128, 1024)},
    threads=(1,),
    rounds=3,
    rss_shapes=("gpt2",),
    cases=(
        cb.ENGINE_PLAIN,
        cb.ENGINE_TRACE,
        *cb.LAZY_CASES,
        cb.HF_PLAIN,
        cb.HF_ATTN,
        cb.TL_CACHE,
    ),
    rss_cases=(cb.ENGINE_CAPTURE, cb.ENGINE_TRACE_FULL, cb.HF_ATTN, cb.TL_CACHE),
    pages=False,
    browser_rounds=0,
)
# The logit lens's rows (issue 19, item 2): GPT-2 small at T=128 and 1,024, the page's lens,
# the lens over every position and the HF lens, with peak memory and a profile at T=1,024.
LENS = Plan(
    lengths={"gpt2": (128, 1024)},
    threads=(1, 2),
    rounds=3,
    rss_shapes=("gpt2",),
    cases=(cb.ENGINE_LENS, cb.ENGINE_LENS_PRODUCT, cb.ENGINE_LENS_ALL, cb.HF_LENS),
    pages=False,
    profile_tokens=1024,
    browser_rounds=0,
)
# Load-independent numbers only (bytes, peak memory, page figure bytes): no timing.
MEMORY = Plan(
    lengths={"gpt2": (128, 1024), "bundled": (128,)},
    threads=(),
    rounds=0,
    rss_shapes=("gpt2",),
    page_rounds=0,
    browser_rounds=0,
)
# Seconds, for the smoke test: the tiny shape, our cases and HF's.
TINY = Plan(
    lengths={"tiny": (8, 32)},
    threads=(1,),
    rounds=2,
    rss_shapes=("tiny",),
    cases=(
        cb.ENGINE_PLAIN,
        cb.ENGINE_TRACE,
        cb.ENGINE_LENS,
        cb.ENGINE_LENS_ALL,
        cb.HF_PLAIN,
        cb.HF_ATTN,
        cb.HF_LENS,
    ),
    pages=False,
    min_time=0.002,
    matmul_size=(64, 64, 64),
)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import transformers

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 1024**3, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "transformer_lens": cb.tl_version(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }


def run_capture(plan: Plan, log: Any = print) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    sizes: list[dict[str, Any]] = []
    same: dict[str, dict[str, float]] = {}
    for shape, lengths in plan.lengths.items():
        cfg = PRESETS[shape]
        t0 = time.perf_counter()
        models = cb.build_models(cfg, plan.cases)
        log(f"[{shape}] models built in {time.perf_counter() - t0:.1f} s")
        same[shape] = cb.check_same_function(models, cb.text_ids(models.tokenizer, 16))
        for T in lengths:
            ids = cb.text_ids(models.tokenizer, T)
            torch.set_num_threads(1)
            sizes.append({"shape": shape, "T": T, **cb.measure_bytes(models, ids)})
            cases = cb.make_cases(models, ids, plan.cases) if plan.threads else {}
            for threads in plan.threads:
                torch.set_num_threads(threads)
                t0 = time.perf_counter()
                timings = cb.measure(cases, plan.rounds, plan.min_time, plan.matmul_size)
                row = {"shape": shape, "T": T, "threads": threads, "rounds": plan.rounds}
                row.update(cb.summarise(cfg, T, timings))
                rows.append(row)
                log(
                    f"[{shape}] T={T} threads={threads}: {time.perf_counter() - t0:.1f} s, "
                    + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in row["median_s"].items())
                )
            del cases
            gc.collect()
        del models
        gc.collect()
    profiles = run_profiles(plan, log) if plan.profile_tokens else []
    rss = []
    for shape in plan.rss_shapes:
        T = max(plan.lengths[shape])
        for case in plan.rss_cases or plan.cases:
            if case in cb.TL_CASES and not cb.have_transformer_lens():
                continue
            rss.append(cb.rss_in_subprocess(shape, T, case, threads=1))
            log(f"[{shape}] RSS {case}: +{rss[-1]['extra_mib']:.0f} MiB")
    return {
        "rows": rows,
        "bytes": sizes,
        "rss": rss,
        "profiles": profiles,
        "max_abs_logit_diff": same,
    }


PROFILED = (
    cb.ENGINE_PLAIN,
    cb.HF_PLAIN,
    cb.ENGINE_TRACE,
    cb.HF_ATTN,
    cb.ENGINE_LENS,
    cb.ENGINE_LENS_ALL,
    cb.HF_LENS,
)


def run_profiles(plan: Plan, log: Any = print) -> list[dict[str, Any]]:
    """torch.profiler breakdowns of the main cases on the GPT-2 shape at `plan.profile_tokens`,
    1 thread (after one warm-up call each)."""
    torch.set_num_threads(1)
    wanted = tuple(c for c in PROFILED if c in plan.cases)
    models = cb.build_models(PRESETS["gpt2"], wanted)
    ids = cb.text_ids(models.tokenizer, plan.profile_tokens)
    cases = cb.make_cases(models, ids, wanted)
    out = []
    for name, fn in cases.items():
        fn()
        prof = cb.profile_case(fn)
        out.append({"case": name, "shape": "gpt2", "T": plan.profile_tokens, "threads": 1, **prof})
        top = ", ".join(f"{e['op']} {e['self_s']:.2f}s" for e in prof["top"][:4])
        log(f"[profile] {name}: {prof['wall_s']:.2f} s wall; {top}")
    return out


# --- targets -----------------------------------------------------------------------------------


def evaluate_targets(
    capture: dict[str, Any],
    pages: dict[str, Any] | None = None,
    pages_gpt2: dict[str, Any] | None = None,
    pages_open: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The issue's targets, each checked on every row it applies to; the worst value counts."""
    out: list[dict[str, Any]] = []

    def check(name: str, ratio: str, limit: float, where: Any) -> None:
        values = [
            (r["ratios"][ratio], f"{r['shape']} T={r['T']} {r['threads']}t")
            for r in capture["rows"]
            if ratio in r["ratios"] and where(r)
        ]
        if not values:
            return
        worst, at = max(values)
        out.append(
            {
                "target": name,
                "ratio": ratio,
                "limit": limit,
                "worst": worst,
                "at": at,
                "met": worst <= limit,
                "n": len(values),
            }
        )

    def gpt2(r: dict[str, Any]) -> bool:
        return r["shape"] == "gpt2"

    def gpt2_t(*ts: int) -> Any:
        return lambda r: gpt2(r) and r["T"] in ts

    check("engine plain <= 1.1x HF plain, every T", "engine plain / HF plain", 1.1, gpt2)
    check(
        "run_with_trace <= 1.0x HF attn+hidden (T=128, 1024)",
        "engine trace / HF attn+hidden",
        1.0,
        gpt2_t(128, 1024),
    )
    check(
        "run_with_trace <= 0.75x TL run_with_cache (T=128, 1024)",
        "engine trace / TL cache",
        0.75,
        gpt2_t(128, 1024),
    )
    check(
        "run_with_trace <= 1.05x the engine's plain forward (T=128, 1024)",
        "run_with_trace / engine plain",
        1.05,
        gpt2_t(128, 1024),
    )
    check(
        "run_with_trace <= 0.8x HF attn+hidden (T=128, 1024)",
        "run_with_trace / HF attn+hidden",
        0.8,
        gpt2_t(128, 1024),
    )
    check(
        "a layer's pattern on first get <= 1.3x one block's forward (T=128, 1024)",
        "first get / one block",
        1.3,
        gpt2_t(128, 1024),
    )
    check(
        "lens, the page's positions, <= 1.3x its FLOP ideal (T=1024)",
        "engine lens / lens ideal",
        1.3,
        gpt2_t(1024),
    )
    check(
        "lens, every position, <= 1.3x its FLOP ideal (T=1024)",
        "engine lens all T / lens ideal",
        1.3,
        gpt2_t(1024),
    )
    check(
        "lens, the page's positions, <= 0.5x the HF lens over every position, every T",
        "engine lens / HF lens",
        0.5,
        gpt2,
    )
    check(
        "lens, every position, <= 0.5x the HF lens over every position, every T",
        "engine lens all T / HF lens",
        0.5,
        gpt2,
    )
    check("forward <= 1.3x FLOP ideal (T=1024)", "engine plain / ideal", 1.3, gpt2_t(1024))
    for b in capture["bytes"]:
        if b["shape"] == "gpt2" and b["T"] == 1024 and "tl_cache" in b:
            if "trace_lazy_resident" in b:  # not in a run from before the lazy Trace
                ratio = b["trace_lazy_resident"] / b["tl_cache"]
                out.append(
                    {
                        "target": (
                            "lazy Trace resident bytes after capture <= 0.05x TL cache (T=1024)"
                        ),
                        "ratio": "trace_lazy_resident / tl_cache",
                        "limit": 0.05,
                        "worst": ratio,
                        "at": "gpt2 T=1024",
                        "met": ratio <= 0.05,
                        "n": 1,
                    }
                )
            for kind in ("trace_float32", "trace_large_float16", "trace_float16"):
                ratio = b[kind] / b["tl_cache"]
                out.append(
                    {
                        "target": f"Trace bytes <= 0.5x TL cache (T=1024, {kind})",
                        "ratio": f"{kind} / tl_cache",
                        "limit": 0.5,
                        "worst": ratio,
                        "at": "gpt2 T=1024",
                        "met": ratio <= 0.5,
                        "n": 1,
                    }
                )
    out += page_targets(pages or {})
    if pages_open:
        out += page_targets(pages_open, " (every lazy section open)")
    if pages_gpt2:
        out += page_targets(pages_gpt2, " (GPT-2 small shape, T=1024)")
    return out


def page_targets(pages: dict[str, Any], where: str = "") -> list[dict[str, Any]]:
    """The page targets (issue 19) on one page benchmark's results; the worst page counts."""
    from bench import pages_bench as pb

    out: list[dict[str, Any]] = []

    def worst_page(name: str, items: list[tuple[float, str]], limit: float, ratio: str) -> None:
        if items:
            worst, at = max(items)
            out.append(
                {
                    "target": name + where,
                    "ratio": ratio,
                    "limit": limit,
                    "worst": worst,
                    "at": at,
                    "met": worst <= limit,
                    "n": len(items),
                }
            )

    rows = pages.get("pages", [])
    ms = f"{pb.INTERACTION_LIMIT_S * 1e3:.0f} ms"
    for key, what in (
        ("interaction", "worst page, worst widget"),
        ("cached", "worst page, worst widget, over the changes that computed nothing anew"),
    ):
        worst_page(
            f"every page's interaction rerun{' on cached data' if key == 'cached' else ''} "
            f"<= {ms} ({what}; server time, in units of {ms})",
            [
                (
                    p[f"{key}_worst_s"] / pb.INTERACTION_LIMIT_S,
                    f"{p['title']}: {p[f'{key}_worst_widget']}",
                )
                for p in rows
                if p.get(f"{key}_worst_s") is not None
            ],
            1.0,
            f"{key}_worst_s / {pb.INTERACTION_LIMIT_S} s",
        )
    worst_page(
        f"every page's plain rerun <= {ms} (worst page; server time, in units of {ms})",
        [
            (p["rerun_server_median_s"] / pb.INTERACTION_LIMIT_S, p["title"])
            for p in rows
            if p.get("rerun_server_median_s") is not None
        ],
        1.0,
        f"rerun_server_median_s / {pb.INTERACTION_LIMIT_S} s",
    )
    mb = f"{pb.BYTES_LIMIT / 1024**2:.0f} MB"
    worst_page(
        f"every page's figure data <= {mb} (worst page, in units of {mb})",
        [
            (max(p["plotly_bytes"], p.get("plotly_bytes_max", 0)) / pb.BYTES_LIMIT, p["title"])
            for p in rows
        ],
        1.0,
        f"plotly_bytes / {mb}",
    )
    worst_page(
        "every page's browser time to idle <= 1.3x the floor page (worst page)",
        [(b["ratio_to_floor"], b["title"]) for b in pages.get("browser", {}).get("pages", [])],
        1.3,
        "idle / floor idle",
    )
    return out


# --- tables ------------------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x * 1e3:.1f}" if x < 10 else f"{x:.2f} s"


def _x(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _ratio3(a: float, b: float | None) -> str:
    return f"{a / b:.3f}" if b else "-"


def _mib(x: float) -> str:
    mib = x / 1024**2
    return f"{mib:,.0f}" if mib >= 10 else f"{mib:.2f}"


TIME_COLUMNS = (
    ("ideal fwd", None),
    ("engine plain", cb.ENGINE_PLAIN),
    ("HF plain", cb.HF_PLAIN),
    ("run_with_trace (lazy)", cb.ENGINE_CAPTURE),
    ("engine trace+heads", cb.ENGINE_TRACE),
    ("full trace+heads", cb.ENGINE_TRACE_FULL),
    ("one block", cb.ENGINE_BLOCK),
    ("get pattern first", cb.ENGINE_GET_FIRST),
    ("get pattern cached", cb.ENGINE_GET_CACHED),
    ("trace fp16", cb.ENGINE_TRACE16),
    ("HF attn+hidden", cb.HF_ATTN),
    ("TL plain", cb.TL_PLAIN),
    ("TL cache", cb.TL_CACHE),
    ("TL bridge cache", cb.TLB_CACHE),
    ("lens ideal (page)", None),
    ("engine lens (page)", cb.ENGINE_LENS),
    ("lens product (page)", cb.ENGINE_LENS_PRODUCT),
    ("lens ideal (all T)", None),
    ("engine lens (all T)", cb.ENGINE_LENS_ALL),
    ("HF lens", cb.HF_LENS),
)
IDEAL_COLUMNS = {
    "ideal fwd": "forward",
    "lens ideal (page)": "lens page",
    "lens ideal (all T)": "lens",
}
RATIO_COLUMNS = (
    ("engine/HF plain", "engine plain / HF plain"),
    ("engine/ideal", "engine plain / ideal"),
    ("HF/ideal", "HF plain / ideal"),
    ("rwt/engine plain", "run_with_trace / engine plain"),
    ("rwt/HF attn", "run_with_trace / HF attn+hidden"),
    ("rwt/TL cache", "run_with_trace / TL cache"),
    ("first get/block", "first get / one block"),
    ("cached get/block", "cached get / one block"),
    ("trace+heads lazy/full", "engine trace / full trace"),
    ("trace/HF attn", "engine trace / HF attn+hidden"),
    ("trace/TL cache", "engine trace / TL cache"),
    ("trace fp16/TL cache", "engine trace fp16 / TL cache"),
    ("TL cache/HF plain", "TL cache / HF plain"),
    ("lens page/ideal", "engine lens / lens ideal"),
    ("lens product/ideal", "lens product / lens ideal"),
    ("lens page/HF lens", "engine lens / HF lens"),
    ("lens all T/ideal", "engine lens all T / lens ideal"),
    ("lens all T/HF lens", "engine lens all T / HF lens"),
    ("HF lens/ideal", "HF lens / lens ideal"),
)


def _time_tables(cap: dict[str, Any]) -> list[str]:
    lines = ["", "Times (ms unless marked s):", ""]
    cols = [
        c
        for c, key in TIME_COLUMNS
        if (key is None and any(IDEAL_COLUMNS[c] in r["ideal_s"] for r in cap["rows"]))
        or any(key in r["median_s"] for r in cap["rows"])
    ]
    lines.append("| shape | T | thr | GFLOP/s | " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * (4 + len(cols)))
    for r in cap["rows"]:
        cells = []
        for c, key in TIME_COLUMNS:
            if c not in cols:
                continue
            if c in IDEAL_COLUMNS:
                cells.append(_ms(r["ideal_s"].get(IDEAL_COLUMNS[c])))
            else:
                cells.append(_ms(r["median_s"].get(key)))
        lines.append(
            f"| {r['shape']} | {r['T']} | {r['threads']} | {r['gflops']:.0f} | "
            + " | ".join(cells)
            + " |"
        )
    rcols = [(c, k) for c, k in RATIO_COLUMNS if any(k in r["ratios"] for r in cap["rows"])]
    lines += ["", "Ratios (same rounds):", ""]
    lines.append("| shape | T | thr | " + " | ".join(c for c, _ in rcols) + " |")
    lines.append("|" + "---|" * (3 + len(rcols)))
    for r in cap["rows"]:
        lines.append(
            f"| {r['shape']} | {r['T']} | {r['threads']} | "
            + " | ".join(_x(r["ratios"].get(k)) for _, k in rcols)
            + " |"
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    m, cap = results["machine"], results["capture"]
    timed = bool(cap["rows"])
    lines = [
        f"Run {results['date']} ({results['mode']}, {results['duration_s'] / 60:.1f} min): "
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; load average "
        f"{results['load_before'][0]:.2f} before, {results['load_after'][0]:.2f} after; "
        f"threads {', '.join(map(str, results['threads'])) or 'none (no timing)'}; "
        f"OMP_WAIT_POLICY={m['omp_wait_policy'] or 'unset'}; torch {m['torch']}, transformers "
        f"{m['transformers']}, transformer-lens {m['transformer_lens']}."
        + (
            f" Median of {results['rounds']} interleaved rounds; ratios are medians of "
            "per-round ratios."
            if timed
            else " Memory only: bytes and peak resident sizes, which do not depend on load."
        ),
    ]
    if timed:
        lines += _time_tables(cap)
    lines += ["", "Bytes handed back for one text (MiB, distinct arrays):", ""]
    lines.append(
        "| shape | T | Trace f32 | Trace large f16 | Trace f16 | TL cache | HF outputs "
        "| Trace f16 / TL cache |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for b in cap["bytes"]:
        tl = b.get("tl_cache")
        lines.append(
            f"| {b['shape']} | {b['T']} | {_mib(b['trace_float32'])} | "
            f"{_mib(b['trace_large_float16'])} | {_mib(b['trace_float16'])} | "
            f"{_mib(tl) if tl else '-'} | "
            f"{_mib(b['hf_outputs']) if 'hf_outputs' in b else '-'} | "
            f"{_ratio3(b['trace_float16'], tl)} |"
        )
    lazy_rows = [b for b in cap["bytes"] if "trace_lazy_resident" in b]
    if lazy_rows:
        title = (
            "The lazy Trace (MiB): resident right after capture, after one layer's pattern "
            "was read, and at most (its cache of two units full):"
        )
        lines += ["", title, ""]
        lines.append(
            "| shape | T | after capture | after one get | at most | full Trace | TL cache "
            "| after capture / TL cache |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for b in lazy_rows:
            tl = b.get("tl_cache")
            lines.append(
                f"| {b['shape']} | {b['T']} | {_mib(b['trace_lazy_resident'])} | "
                f"{_mib(b['trace_lazy_after_get'])} | {_mib(b['trace_lazy_max'])} | "
                f"{_mib(b['trace_float32'])} | {_mib(tl) if tl else '-'} | "
                f"{_ratio3(b['trace_lazy_resident'], tl)} |"
            )
    if cap["rss"]:
        lines += ["", "Peak resident memory, one call in a fresh process, 1 thread (MiB):", ""]
        lines.append("| shape | T | case | before | peak | extra |")
        lines.append("|---|---|---|---|---|---|")
        for p in cap["rss"]:
            lines.append(
                f"| {p['shape']} | {p['T']} | {p['case']} | {p['rss_before_mib']:,.0f} | "
                f"{p['peak_mib']:,.0f} | {p['extra_mib']:,.0f} |"
            )
    if cap.get("profiles"):
        lines += [
            "",
            "Where the time goes (torch.profiler, one call, 1 thread; top ops by self time):",
        ]
        lines += ["", "| case | T | wall (s) | top ops (s) |", "|---|---|---|---|"]
        for p in cap["profiles"]:
            top = ", ".join(
                f"{e['op'].removeprefix('aten::')} {e['self_s']:.2f}" for e in p["top"][:4]
            )
            lines.append(f"| {p['case']} | {p['T']} | {p['wall_s']:.2f} | {top} |")
    for key in PAGE_KEYS.values():
        if not results.get(key):
            continue
        from bench import pages_bench

        lines += [""]
        if f"{key}_date" in results:
            lines += [
                f"Pages measured {results[f'{key}_date']} in a separate run "
                f"({results[f'{key}_duration_s'] / 60:.1f} min, load average "
                f"{results[f'{key}_load'][0]:.2f}).",
                "",
            ]
        lines += [pages_bench.markdown(results[key])]
    if results["targets"]:
        lines += ["", "Targets (worst row):", ""]
        lines.append("| target | worst | at | limit | met |")
        lines.append("|---|---|---|---|---|")
        for t in results["targets"]:
            lines.append(
                f"| {t['target']} | {t['worst']:.3f} | {t['at']} | {t['limit']} | "
                f"{'yes' if t['met'] else 'NO'} |"
            )
    return "\n".join(lines)


# Where a results file keeps each page benchmark: the bundled model's (the default), and GPT-2
# small's shape at 1,024 tokens (`--pages-model gpt2`, the lecture server's case).
# "bundled-open": the bundled model with every lazy section open (the most a page computes).
PAGE_KEYS = {"bundled": "pages", "bundled-open": "pages_open", "gpt2": "pages_gpt2"}


def targets_of(results: dict[str, Any]) -> list[dict[str, Any]]:
    return evaluate_targets(
        results["capture"],
        results.get("pages"),
        results.get("pages_gpt2"),
        results.get("pages_open"),
    )


def run(plan: Plan, mode: str, log: Any = print) -> dict[str, Any]:
    start = time.perf_counter()
    load_before = os.getloadavg()
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": mode,
        "machine": machine(),
        "load_before": load_before,
        "threads": list(plan.threads),
        "rounds": plan.rounds,
    }
    results["capture"] = run_capture(plan, log)
    if plan.pages:
        from bench import pages_bench

        results[PAGE_KEYS[plan.pages_model]] = pages_bench.run_pages(
            rounds=plan.page_rounds,
            browser_rounds=plan.browser_rounds,
            log=log,
            model=plan.pages_model.removesuffix("-open"),
            open_sections=plan.pages_model.endswith("-open"),
        )
    results["targets"] = targets_of(results)
    results["load_after"] = os.getloadavg()
    results["duration_s"] = time.perf_counter() - start
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and rounds (< 5 min)")
    parser.add_argument("--tiny", action="store_true", help="seconds: the smoke-test sizes")
    parser.add_argument(
        "--lazy", action="store_true", help="the lazy Trace's rows only (GPT-2 small, 1 thread)"
    )
    parser.add_argument(
        "--lens",
        action="store_true",
        help="the logit lens's rows only (GPT-2 small, T=128 and 1024, 1 and 2 threads)",
    )
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="bytes, peak memory and page figure bytes only (valid on a busy machine)",
    )
    parser.add_argument("--no-pages", action="store_true", help="skip the page benchmark")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON path")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="print the tables of a results file; no run"
    )
    parser.add_argument(
        "--pages-only",
        action="store_true",
        help="run only the page benchmark and merge it into the --out file's capture results",
    )
    parser.add_argument(
        "--pages-model",
        choices=tuple(PAGE_KEYS),
        default="bundled",
        help="the page benchmark's model: the bundled one (256 tokens), or gpt2: GPT-2 small's "
        "shape with random weights at 1,024 tokens (minutes; kept apart in the results)",
    )
    parser.add_argument("--page-rounds", type=int, help="rounds of the page benchmark")
    parser.add_argument(
        "--browser-rounds", type=int, help="rounds of the browser benchmark (0: none)"
    )
    args = parser.parse_args(argv)
    plan, mode = (TINY, "tiny") if args.tiny else (QUICK, "quick") if args.quick else (FULL, "full")
    if args.lazy:
        plan, mode = LAZY, "lazy"
    if args.lens:
        plan, mode = LENS, "lens"
    if args.memory_only:
        plan, mode = MEMORY, "memory"
    from dataclasses import replace

    plan = replace(plan, pages_model=args.pages_model)
    if args.pages_model != "bundled" and args.browser_rounds is None:
        plan = replace(plan, browser_rounds=0)  # the browser's floor is for the bundled model
    if args.page_rounds is not None:
        plan = replace(plan, page_rounds=args.page_rounds)
    if args.browser_rounds is not None:
        plan = replace(plan, browser_rounds=args.browser_rounds)
    if args.pages_only:
        from bench import pages_bench

        results = json.loads(args.out.read_text(encoding="utf-8"))
        key = PAGE_KEYS[plan.pages_model]
        t0 = time.perf_counter()
        results[key] = pages_bench.run_pages(
            rounds=plan.page_rounds,
            browser_rounds=plan.browser_rounds,
            log=lambda m: print(m, file=sys.stderr),
            model=plan.pages_model.removesuffix("-open"),
            open_sections=plan.pages_model.endswith("-open"),
        )
        results[f"{key}_date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        results[f"{key}_load"] = os.getloadavg()
        results[f"{key}_duration_s"] = time.perf_counter() - t0
        results["targets"] = targets_of(results)
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(markdown(results))
        return 0
    if args.render:
        results = json.loads(args.render.read_text(encoding="utf-8"))
        results["targets"] = targets_of(results)
        print(markdown(results))
        return 0
    if args.no_pages:
        plan = replace(plan, pages=False)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = run(plan, mode, log)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
