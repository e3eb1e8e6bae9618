"""The live-training section (ui.live_training.render_live_training) in AppTest: a seeded
short run started from its button reports progress, draws the run's own numbers, stops when
asked, leaves no thread behind, and is refused with a message when disabled or at the cap."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.training.live import FINISHED, REGISTRY, STOPPED, LiveRun
from tests.support import chart, values

KEY = "live_training"


def section(max_steps: int) -> None:
    """The section alone, on a run of `max_steps` steps (AppTest.from_function runs this
    function's source as the script)."""
    import dataclasses

    from engine.training.live import LIVE_CONFIG
    from ui.live_training import render_live_training

    config = dataclasses.replace(
        LIVE_CONFIG,
        train=dataclasses.replace(LIVE_CONFIG.train, max_steps=max_steps, warmup_steps=5),
        eval_every=10,
    )
    render_live_training(config=config)


def app(max_steps: int) -> AppTest:
    at = AppTest.from_function(section, kwargs={"max_steps": max_steps}, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def live_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("live-training-")]


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.caption]
    parts += [e.value for kind in ("info", "warning", "error") for e in at.get(kind)]
    parts += [str(p.proto.text) for p in at.get("progress")]
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def _no_runs_left() -> None:
    yield
    REGISTRY.stop_all()
    assert not live_threads()


def test_a_short_run_reports_progress_and_draws_its_record() -> None:
    at = app(max_steps=30)
    assert "plateau" in texts(at)
    at.button(key=f"{KEY}_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run: LiveRun = at.session_state[f"{KEY}_run"]
    assert run.join(timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    p = run.progress()
    assert p.status == FINISHED and p.step == 30
    assert p.loss[-5:].mean() < p.loss[0] - 1.0  # the loss fell within the step budget
    (bar,) = at.get("progress")
    assert bar.proto.value == 100 and "Finished: 30 steps" in bar.proto.text
    loss = chart(at, f"{KEY}_loss")
    np.testing.assert_allclose(values(loss["data"][0]["y"]), p.loss, rtol=1e-6)
    np.testing.assert_array_equal(values(loss["data"][1]["x"]), p.eval_steps)
    np.testing.assert_allclose(values(loss["data"][1]["y"]), p.copy_loss, rtol=1e-6)
    np.testing.assert_allclose(values(loss["data"][2]["y"]), p.text_loss, rtol=1e-6)
    heads = chart(at, f"{KEY}_heads")
    assert len(heads["data"]) == 8  # 2 layers x 4 heads
    np.testing.assert_allclose(values(heads["data"][5]["z"]), p.heads.patterns[1, 1], atol=1e-7)
    assert "step 30" in heads["layout"]["title"]["text"]
    assert not at.button(key=f"{KEY}_start").disabled  # a new run may start
    assert not live_threads()


def test_stop_ends_a_run_and_the_page_says_so() -> None:
    at = app(max_steps=100_000)
    at.button(key=f"{KEY}_start").click().run()
    run: LiveRun = at.session_state[f"{KEY}_run"]
    deadline = time.monotonic() + 60
    while run.progress().step < 3:
        assert time.monotonic() < deadline and run.alive
        time.sleep(0.05)
    at.run()
    (bar,) = at.get("progress")
    assert bar.proto.text.startswith("Training: step")
    assert at.button(key=f"{KEY}_start").disabled
    at.button(key=f"{KEY}_stop").click().run()
    assert run.join(timeout=10)
    at.run()
    assert run.progress().status == STOPPED
    assert "Stopped after" in texts(at)
    assert not live_threads()


def test_disabled_by_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDE_GPT_LIVE_TRAINING", "0")
    at = app(max_steps=30)
    assert "turned off" in texts(at)
    assert not [b for b in at.button if b.key == f"{KEY}_start"]
    assert not live_threads()


def test_refused_at_the_cap_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDE_GPT_LIVE_TRAINING", "1")
    import dataclasses

    from engine.training.live import LIVE_CONFIG

    other = REGISTRY.start(1, dataclasses.replace(LIVE_CONFIG, max_seconds=60))  # a classmate
    at = app(max_steps=30)
    at.button(key=f"{KEY}_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "already trains 1 model" in texts(at)
    assert f"{KEY}_run" not in at.session_state
    other.stop()
    assert other.join(10)
    at.button(key=f"{KEY}_start").click().run()  # the slot is free again
    assert at.session_state[f"{KEY}_run"].alive or at.session_state[f"{KEY}_run"].join(60)


def test_the_section_and_its_charts_in_chinese() -> None:
    from tests.pages.test_i18n_pages import english_runs

    at = AppTest.from_function(section, kwargs={"max_steps": 20}, default_timeout=60)
    at.session_state["lang"] = "zh"
    at.run()
    at.button(key=f"{KEY}_start").click().run()
    run: LiveRun = at.session_state[f"{KEY}_run"]
    assert run.join(timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [texts(at), at.subheader[0].value] + [b.label for b in at.button]
    for key in (f"{KEY}_loss", f"{KEY}_heads"):
        spec = chart(at, key)
        shown.append(spec["layout"]["title"]["text"])
        shown += [t.get("name") or "" for t in spec["data"]]
        shown += [a["text"] for a in spec["layout"].get("annotations", [])]
    assert "完成：" in texts(at) and "平台" in texts(at)
    found = [run for text in shown for run in english_runs(text)]
    assert not found, found


def test_the_owner_check_asks_the_runtime_about_this_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run started on a server gets `Runtime.is_active_session(its session id)`; a session
    that disconnects stops its run (engine test: test_a_run_whose_owner_is_gone_stops)."""
    from types import SimpleNamespace

    import ui.live_training as live

    connected = {"abc": True}
    fake_runtime = SimpleNamespace(is_active_session=lambda sid: connected.get(sid, False))
    monkeypatch.setattr(live, "get_script_run_ctx", lambda: SimpleNamespace(session_id="abc"))
    monkeypatch.setattr(live.runtime, "exists", lambda: True)
    monkeypatch.setattr(live.runtime, "get_instance", lambda: fake_runtime)
    alive = live.session_alive_check()
    assert alive is not None and alive()
    connected["abc"] = False
    assert not alive()
    monkeypatch.setattr(live.runtime, "exists", lambda: False)
    assert live.session_alive_check() is None  # AppTest, bare mode: no owner check


def test_a_failed_run_shows_a_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.training.live as live

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("/srv/secret/path exploded")

    monkeypatch.setattr(live, "train", broken)
    at = app(max_steps=30)
    at.button(key=f"{KEY}_start").click().run()
    run: LiveRun = at.session_state[f"{KEY}_run"]
    assert run.join(30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Live training failed" in texts(at) and "Training failed after 0 steps" in texts(at)
    assert "/srv/secret" not in texts(at)


def test_start_is_disabled_right_after_the_click() -> None:
    """The run that starts a run reruns at once, so Start is drawn disabled then (not only at
    the next full rerun: the timed redraws rerun the fragment alone). A click already on its
    way is ignored by the code (AppTest cannot click a disabled button)."""
    at = app(max_steps=100_000)
    at.button(key=f"{KEY}_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run: LiveRun = at.session_state[f"{KEY}_run"]
    assert at.button(key=f"{KEY}_start").disabled
    assert REGISTRY.active() == 1
    run.stop()
    assert run.join(10)
