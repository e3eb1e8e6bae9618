"""Load test: a class of simulated students against 1 or 2 replicas behind nginx (ui.serve).

    .venv/bin/python -m bench.load                       # 1 and 2 replicas x 20, 40, 60 sessions
    .venv/bin/python -m bench.load --replicas 2 --sessions 20 --duration 30
    .venv/bin/python -m bench.load --tiny --replicas 1 --sessions 3 --duration 5   # smoke

Loopback only and bounded: every configuration runs `--duration` seconds (60 by default) with at
most 200 sessions, then everything it started is stopped. Each student is a websocket client of
Streamlit's own protocol (bench/st_client.py, what the browser sends): it opens a link to a
page (students spread over the home page and the stages) with its own text, then, after a think
time drawn from 1 to 4 s, either types (a new text of its own, sent as the text box's value) or
switches to another page. Every page run is checked: every token label the charts carry
("3:␣cat", the form of engine.figures.common.token_labels) must be a label of this student's
current text (a label of any other text is a foreign label: another session's numbers), the
page must show no exception box, and the address (the query string the app writes) must carry
this student's text.

Reported per configuration: step latency p50/p95 (request to script_finished, s), page runs per
second (all sessions), errors (exceptions shown, dropped connections, timeouts), foreign labels
and labels checked, RSS per replica (MiB, the largest seen), the replicas' /_stcore/health
latency p50/p95 (polled every 2 s, directly, while loaded), and the load average before and
after. `--out FILE` writes the JSON (every latency), and the markdown table goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import numpy as np

from bench.st_client import RunError, Session
from engine.checkpoints import bundled_n_ranks
from engine.config import PRESETS
from engine.figures.common import token_labels
from engine.tokenizer import Tokenizer, cl100k_truncated
from ui.serve import Cluster, free_port

MAX_SESSIONS = 200
LABEL = re.compile(r"^\d+:", re.S)
# Words of the students' texts (each student draws its own sentences from them with its own seed).
WORDS = (
    "the king queen cat dog river mountain bread water light night morning garden city music "
    "house window book letter song friend heart fire stone tree bird ship road storm summer "
    "winter field horse castle sword gold silver rain snow wind star moon sun sea forest lamp "
    "door bridge tower market school teacher student number red green blue small great old new"
).split()
PAGES = ("Tokens", "Embeddings", "Attention", "Feed_forward", "Layer_norm", "Residual", "Output")


def student_text(index: int, version: int) -> str:
    """Student `index`'s text after `version` edits: 8-14 words drawn with a seed of its own."""
    rng = random.Random(index * 1_000 + version)
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]
    return f"Student {index} says: " + " ".join(words) + "."


class Labels:
    """The token labels of a text as the app's charts write them, cached per text."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def of(self, text: str) -> frozenset[str]:
        with self._lock:
            if text not in self._cache:
                ids = self.tokenizer.encode(text)
                strs = [self.tokenizer.display(i) for i in ids]
                self._cache[text] = frozenset(token_labels(strs))
            return self._cache[text]


@dataclass
class Stats:
    """What all sessions of one configuration saw (a lock guards every field)."""

    latencies: list[float] = field(default_factory=list)
    runs: int = 0
    labels_checked: int = 0
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    replicas_used: Counter = field(default_factory=Counter)
    drops: list[str] = field(default_factory=list)  # connections lost (a replica died)
    recovered: int = 0  # runs after a reconnect that showed the student's own view again
    placements: dict[int, list[str]] = field(default_factory=dict)  # student -> replicas in order
    lock: threading.Lock = field(default_factory=threading.Lock)


def check_run(run, text: str, labels: Labels, session: Session, stats: Stats, who: str) -> bool:
    """Count the run and check it against the student's own text; True when it is clean."""
    own = labels.of(text)
    checked, foreign = 0, []
    for s in run.strings():
        if LABEL.match(s):
            checked += 1
            if s not in own:
                foreign.append(f"{who}: {s!r}")
    problems = [f"{who}: exception shown: {e.message[:200]}" for e in run.exceptions]
    shown = parse_qs(session.query_string).get("text", [None])[0]
    if shown is not None and shown != text:
        problems.append(f"{who}: the address carries another text: {shown[:60]!r}")
    with stats.lock:
        stats.runs += 1
        stats.latencies.append(run.seconds)
        stats.labels_checked += checked
        stats.foreign += foreign
        stats.errors += problems
    return not foreign and not problems


def student(
    base: str,
    index: int,
    deadline: float,
    labels: Labels,
    stats: Stats,
    think: tuple[float, float],
    seed: int,
    timeout_s: float = 120.0,
) -> None:
    """One simulated student until `deadline` (time.monotonic()): type or switch pages after a
    think time; on a dropped connection, reconnect (the balancer picks a live replica) and
    reopen the view from the address, as a browser does."""
    rng = random.Random(seed)
    version = 0
    text = student_text(index, version)
    session = Session(base, timeout_s=timeout_s)
    session.query_string = urlencode({"text": text})
    who = f"student {index}"
    page = ("", *PAGES)[(index + 3) % (len(PAGES) + 1)]  # the link a student opens first
    pending_recovery = False
    while True:
        try:
            if session.ws is None:
                session.connect()
                with stats.lock:
                    stats.replicas_used[session.server_header or "?"] += 1
                    stats.placements.setdefault(index, []).append(session.server_header or "?")
                run = session.run(page)  # a new server session: the view from the address
                if check_run(run, text, labels, session, stats, who) and pending_recovery:
                    with stats.lock:
                        stats.recovered += 1
                pending_recovery = False
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, rng.uniform(*think)))
            if time.monotonic() >= deadline:
                break
            if rng.random() < 0.35 and "_w_text" in session.widget_ids:
                version += 1
                typed = student_text(index, version)
                try:
                    run = session.run(widgets={"_w_text": typed})
                except RunError:
                    # dropped mid-run: the edit arrived if the server already wrote it into
                    # the address (what the reconnecting browser reopens), else it is lost
                    if parse_qs(session.query_string or "").get("text", [None])[0] == typed:
                        text = typed
                    raise
                text = typed  # the edit arrived (a dropped one is typed again later)
            else:
                page = rng.choice([p for p in ("", *PAGES) if p != page])
                run = session.run(page)
            check_run(run, text, labels, session, stats, who)
        except RunError as err:
            with stats.lock:
                stats.drops.append(f"{who}: {err}")
            pending_recovery = True
            session.close()
            time.sleep(rng.uniform(0.5, 1.5))  # a browser waits before reconnecting
            if time.monotonic() >= deadline:
                break
    session.close()


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` (MiB) from /proc; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_config(
    replicas: int,
    sessions: int,
    duration_s: float,
    think: tuple[float, float] = (1.0, 4.0),
    tiny: bool = False,
    port: int | None = None,
    seed: int = 0,
    log: bool = True,
    kill_after_s: float | None = None,
    timeout_s: float = 120.0,
) -> dict:
    """One configuration: a fresh cluster (`replicas` behind nginx on loopback), `sessions`
    students for `duration_s` seconds, the numbers as a dict (see the module docstring).
    `kill_after_s`: kill the first replica (SIGKILL) that many seconds in, as a crash would
    (the result then names it under "killed"); `timeout_s`: the longest wait for one run."""
    if not 1 <= sessions <= MAX_SESSIONS:
        raise ValueError(f"sessions must be in [1, {MAX_SESSIONS}], got {sessions}")
    port = port or free_port()
    env = {"INSIDE_GPT_TEST_MODEL": "tiny"} if tiny else {}
    # the labels the served model's tokenizer writes: the tiny test model keeps 4,096 ranks
    n_ranks = PRESETS["tiny"].vocab_size - 1 if tiny else bundled_n_ranks()
    labels = Labels(cl100k_truncated(n_ranks))
    stats = Stats()
    load_before = os.getloadavg()
    cluster = Cluster(
        replicas,
        port,
        host="127.0.0.1",
        first_replica_port=free_port(),
        upstream_header=True,
        restart=False,
        extra_env=env,
    )
    with cluster:
        base = f"http://127.0.0.1:{port}"
        health: dict[int, list[float]] = {r.port: [] for r in cluster.replicas}
        rss: dict[int, float] = {r.port: 0.0 for r in cluster.replicas}
        done = threading.Event()

        def monitor() -> None:
            while not done.wait(2.0):
                for r in cluster.replicas:
                    if r.proc is not None:
                        rss[r.port] = max(rss[r.port], rss_mib(r.proc.pid))
                    start = time.monotonic()
                    r.check(timeout_s=60)
                    health[r.port].append(time.monotonic() - start)

        watcher = threading.Thread(target=monitor, daemon=True)
        watcher.start()
        start = time.monotonic()
        deadline = start + duration_s
        threads = [
            threading.Thread(
                target=student,
                args=(base, i, deadline, labels, stats, think, seed * 10_000 + i, timeout_s),
                daemon=True,
            )
            for i in range(sessions)
        ]
        for k, t in enumerate(threads):
            t.start()
            time.sleep(min(0.1, think[0] / max(1, sessions)) if k else 0)
        killed = None
        if kill_after_s is not None:
            time.sleep(max(0.0, start + kill_after_s - time.monotonic()))
            victim = cluster.replicas[0]
            assert victim.proc is not None
            victim.proc.kill()
            victim.proc.wait()
            killed = f"127.0.0.1:{victim.port}"
        for t in threads:
            t.join(timeout=max(1.0, deadline - time.monotonic()) + 180)
        elapsed = time.monotonic() - start
        done.set()
        watcher.join(timeout=70)
    all_health = [h for hs in health.values() for h in hs]
    result = {
        "replicas": replicas,
        "sessions": sessions,
        "duration_s": round(elapsed, 1),
        "model": "tiny (tests)" if tiny else "bundled",
        "p50_s": percentile(stats.latencies, 50),
        "p95_s": percentile(stats.latencies, 95),
        "runs": stats.runs,
        "runs_per_s": stats.runs / elapsed,
        "errors": len(stats.errors) + len(stats.drops),
        "error_examples": (stats.errors + stats.drops)[:5],
        "page_errors": stats.errors,
        "drops": stats.drops,
        "recovered": stats.recovered,
        "placements": {str(k): v for k, v in sorted(stats.placements.items())},
        "killed": killed,
        "foreign_labels": len(stats.foreign),
        "foreign_examples": stats.foreign[:5],
        "labels_checked": stats.labels_checked,
        "replicas_used": dict(stats.replicas_used),
        "rss_mib": {str(p): round(v, 1) for p, v in rss.items()},
        "health_p50_s": percentile(all_health, 50),
        "health_p95_s": percentile(all_health, 95),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "latencies_s": [round(x, 4) for x in stats.latencies],
    }
    if log:
        print(
            f"{replicas} replica(s), {sessions} sessions: {stats.runs} runs, "
            f"p50 {result['p50_s']:.2f} s, p95 {result['p95_s']:.2f} s, "
            f"{result['runs_per_s']:.2f} runs/s, {len(stats.errors)} errors, "
            f"{len(stats.foreign)} foreign of {stats.labels_checked} labels",
            file=sys.stderr,
        )
    return result


def table(results: list[dict]) -> str:
    """The markdown table of `results` (run_config's dicts)."""
    lines = [
        "| replicas | sessions | step p50 (s) | step p95 (s) | page runs/s | errors "
        "| foreign labels / checked | RSS per replica (MiB) | health p50 / p95 (s) "
        "| load avg before → after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rss = ", ".join(f"{v:.0f}" for v in r["rss_mib"].values())
        lines.append(
            f"| {r['replicas']} | {r['sessions']} | {r['p50_s']:.2f} | {r['p95_s']:.2f} | "
            f"{r['runs_per_s']:.2f} | {r['errors']} | {r['foreign_labels']} / "
            f"{r['labels_checked']:,} | {rss} | {r['health_p50_s']:.2f} / "
            f"{r['health_p95_s']:.2f} | {r['load_before'][0]:.2f} → {r['load_after'][0]:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sessions", type=int, nargs="+", default=[20, 40, 60])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per configuration")
    parser.add_argument("--think", type=float, nargs=2, default=(1.0, 4.0), metavar=("MIN", "MAX"))
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny model (smoke runs)")
    parser.add_argument("--out", type=Path, help="write every number as JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 900:
        parser.error("--duration must be in [1, 900] seconds")
    results = []
    for replicas in args.replicas:
        for sessions in args.sessions:
            results.append(
                run_config(replicas, sessions, args.duration, tuple(args.think), args.tiny)
            )
    if args.out:
        meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
        args.out.write_text(json.dumps({"machine": meta, "results": results}, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
