"""bench/load.py at smoke size, so the load test cannot rot: its label check catches a foreign
label and passes the session's own, and one short run through nginx gives real numbers."""

from __future__ import annotations

import json
import math
import os

import pytest
from streamlit.proto.Element_pb2 import Element

from bench import load
from bench.st_client import Run, Session
from engine.checkpoints import bundled_n_ranks
from engine.tokenizer import cl100k_truncated
from ui.serve import nginx_binary


def _chart_run(labels: list[str]) -> Run:
    element = Element()
    element.plotly_chart.spec = json.dumps({"data": [{"x": labels, "y": labels}]})
    return Run(elements=[element], seconds=0.5)


def test_the_label_check_tells_own_labels_from_another_sessions() -> None:
    labels = load.Labels(cl100k_truncated(bundled_n_ranks()))
    mine, theirs = load.student_text(1, 0), load.student_text(2, 0)
    own = sorted(labels.of(mine))
    foreign = sorted(labels.of(theirs) - labels.of(mine))
    assert own and foreign
    session = Session("http://127.0.0.1:9")  # never connected: only its address is read
    session.query_string = "text=" + mine.replace(" ", "+")
    stats = load.Stats()
    assert load.check_run(_chart_run(own), mine, labels, session, stats, "s1")
    assert stats.labels_checked == 2 * len(own) and stats.foreign == []
    assert not load.check_run(_chart_run([*own, foreign[0]]), mine, labels, session, stats, "s1")
    assert stats.foreign == [f"s1: {foreign[0]!r}"] * 2
    session.query_string = "text=" + theirs.replace(" ", "+")
    assert not load.check_run(_chart_run(own), mine, labels, session, stats, "s1")
    assert "the address carries another text" in stats.errors[0]


def test_a_smoke_run_through_nginx_gives_real_numbers() -> None:
    if nginx_binary() is None:
        reason = "nginx is not installed (apt-get install -y nginx)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so this test must run, but {reason}")
        pytest.skip(reason)
    result = load.run_config(1, 2, duration_s=6, think=(0.5, 1.0), tiny=True, log=False)
    assert result["runs"] >= 2 and result["runs_per_s"] > 0
    assert result["labels_checked"] > 0 and result["foreign_labels"] == 0
    assert result["errors"] == 0, result["error_examples"]
    assert 0 < result["p50_s"] <= result["p95_s"] < 60
    assert all(v > 50 for v in result["rss_mib"].values())  # a Streamlit process with torch
    assert math.isfinite(result["health_p50_s"])
    table = load.table([result])
    assert table.count("\n") == 2 and "| 1 | 2 |" in table
