"""Page benchmark: every stage page of the app in Streamlit's AppTest, on a 256-token text.

For each page that exists (`ui.stages.STAGES`): the first run (model load, Trace, derived
views), then `rounds` reruns with everything cached, interleaved across pages; the median rerun
time is the server-side cost of a click. Figure bytes are the plotly JSON specs the page sends
(the sum of its charts' `spec` strings).

Runs in its own process (`python -m bench.pages_bench`, which `run_pages` starts), so the app's
caches (`ui.cache`) and its thread setting do not touch the capture benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N_TOKENS = 256  # or the model's context, if shorter (the bundled model's is 128)
RERUN_LIMIT_S = 0.3
BYTES_LIMIT = 2 * 1024 * 1024


def bench_tokens(model: str = "bundled") -> int:
    """Tokens of the benchmark text: N_TOKENS, or the model's whole context if shorter."""
    from engine.checkpoints import load

    return min(N_TOKENS, load(model).config.n_ctx)


def text_of_tokens(n_tokens: int, model: str = "bundled") -> str:
    """A Shakespeare excerpt of `n_tokens` tokens of the model's tokenizer."""
    import gzip

    from engine.checkpoints import load

    tokenizer = load(model).tokenizer
    with gzip.open(ROOT / "assets" / "corpus" / "shakespeare.txt.gz", "rt", encoding="utf-8") as f:
        raw = f.read(50_000)
    start = raw.index("ACT I")  # skip the title page and the cast list
    ids = tokenizer.encode(raw[start:])
    return tokenizer.decode(ids[:n_tokens])  # the page records how many tokens it ran


def _plotly_bytes(at: Any) -> tuple[int, int]:
    specs = [el.proto.spec for el in at.get("plotly_chart")]
    return sum(len(s.encode("utf-8")) for s in specs), len(specs)


def measure_pages(rounds: int = 5, model: str = "bundled") -> dict[str, Any]:
    from streamlit.testing.v1 import AppTest

    from ui.stages import STAGES

    n_text = bench_tokens(model)
    text = text_of_tokens(n_text, model)
    pages = [s for s in STAGES if (ROOT / s.path).is_file()]
    tests: dict[str, Any] = {}
    out: dict[str, Any] = {
        "model": model,
        "text_tokens": n_text,
        "text_chars": len(text),
        "pages": [],
    }
    rows: dict[str, dict[str, Any]] = {}
    for stage in pages:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.query_params["text"] = text
        at.query_params["model"] = model
        at.switch_page(stage.path)
        t0 = time.perf_counter()
        at.run()
        first = time.perf_counter() - t0
        errors = [str(e.value) for e in at.exception]
        n_bytes, n_charts = _plotly_bytes(at)
        n_tokens = at.session_state["_n_tokens"] if "_n_tokens" in at.session_state else None
        tests[stage.path] = at
        rows[stage.path] = {
            "page": stage.path,
            "title": stage.title,
            "first_run_s": first,
            "plotly_bytes": n_bytes,
            "charts": n_charts,
            "n_tokens": n_tokens,
            "errors": errors,
            "rerun_s": [],
        }
    for _ in range(rounds):
        for path, at in tests.items():
            t0 = time.perf_counter()
            at.run()
            rows[path]["rerun_s"].append(time.perf_counter() - t0)
            for e in at.exception:
                if str(e.value) not in rows[path]["errors"]:
                    rows[path]["errors"].append(str(e.value))
    for row in rows.values():
        row["rerun_median_s"] = statistics.median(row["rerun_s"]) if row["rerun_s"] else None
        row["rerun_ok"] = row["rerun_median_s"] is not None and row["rerun_median_s"] <= (
            RERUN_LIMIT_S
        )
        row["bytes_ok"] = row["plotly_bytes"] <= BYTES_LIMIT
        out["pages"].append(row)
    return out


def run_pages(
    rounds: int = 5, browser_rounds: int = 0, log: Any = print, timeout: float = 1200
) -> dict[str, Any]:
    """`measure_pages` in a fresh process (1 torch thread, as the app runs by default), then,
    if `browser_rounds` > 0 and Chromium is there, the browser's time to idle."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_WAIT_POLICY="PASSIVE")
    cmd = [sys.executable, "-m", "bench.pages_bench", "--rounds", str(rounds)]
    cmd += ["--browser-rounds", str(browser_rounds)]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        log(f"page benchmark failed:\n{proc.stderr[-3000:]}")
        return {"error": proc.stderr[-3000:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    log(f"pages: {len(result['pages'])} pages in {time.perf_counter() - t0:.0f} s")
    return result


def markdown(pages: dict[str, Any]) -> str:
    if "error" in pages:
        return "Page benchmark failed: see results.json."
    if not any(p["rerun_s"] for p in pages["pages"]):  # memory only: no timings
        lines = [
            f"Pages ({pages['model']} model, {pages.get('text_tokens', N_TOKENS)}-token text, "
            "AppTest): plotly JSON each "
            f"page sends (limit {BYTES_LIMIT / 1024**2:.0f} MB):",
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
    lines = [
        f"Pages ({pages['model']} model, {pages.get('text_tokens', N_TOKENS)}-token text, "
        "AppTest; rerun = median of "
        f"reruns with the Trace cached; limits {RERUN_LIMIT_S * 1e3:.0f} ms and "
        f"{BYTES_LIMIT / 1024**2:.0f} MB):",
        "",
        "| page | first run (s) | rerun (ms) | charts | plotly JSON (KB) | ok |",
        "|---|---|---|---|---|---|",
    ]
    browser = {b["title"]: b for b in pages.get("browser", {}).get("pages", [])}
    if browser:
        lines[2] += " browser idle (s) | x floor |"
        lines[3] += "---|---|"
    for p in pages["pages"]:
        rerun = p["rerun_median_s"]
        ok = "yes" if p["rerun_ok"] and p["bytes_ok"] and not p["errors"] else "NO"
        if p["errors"]:
            ok += " (exception)"
        line = (
            f"| {p['title']} | {p['first_run_s']:.2f} | "
            f"{'-' if rerun is None else f'{rerun * 1e3:.0f}'} | {p['charts']} | "
            f"{p['plotly_bytes'] / 1024:,.0f} | {ok} |"
        )
        if browser:
            b = browser.get(p["title"])
            line += f" {b['idle_median_s']:.2f} | {b['ratio_to_floor']:.2f} |" if b else " - | - |"
        lines.append(line)
    b = pages.get("browser", {})
    if "floor_median_s" in b:
        lines += [
            "",
            f"Browser floor page (one 256x256 plotly heatmap): {b['floor_median_s']:.2f} s to "
            f"idle (median of {len(b['floor_s'])}); limit {browser_limit():.1f}x the floor.",
        ]
    elif "skipped" in b:
        lines += ["", f"Browser timing skipped: {b['skipped']}"]
    return "\n".join(lines)


def browser_limit() -> float:
    from bench import browser_bench

    return browser_bench.IDLE_RATIO_LIMIT


def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="page benchmark (used by bench/run.py)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--browser-rounds", type=int, default=0)
    args = parser.parse_args(argv)
    out = measure_pages(args.rounds, args.model)
    if args.browser_rounds > 0:
        from bench import browser_bench

        reason = browser_bench.available()
        if reason:
            out["browser"] = {"skipped": reason}
        else:
            text = text_of_tokens(bench_tokens(args.model), args.model)
            out["browser"] = browser_bench.measure_browser(text, args.browser_rounds, args.model)
    print(json.dumps(out))


if __name__ == "__main__":
    _main(sys.argv[1:])
