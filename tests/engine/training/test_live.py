"""Live training (engine.training.live): a seeded short run lowers the loss and reports its
progress, stops when asked, when its budget is spent or when its owner is gone, leaves no
thread behind, and the registry refuses runs when disabled or at its cap."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from engine.training.live import (
    FINISHED,
    LIVE_CONFIG,
    OWNER_GONE,
    RUNNING,
    STOPPED,
    LiveRegistry,
    LiveRun,
    LiveTrainingRefusedError,
    live_data,
)

# 40 steps: a couple of seconds on one shared core (about 0.1 s a step).
SHORT = dataclasses.replace(
    LIVE_CONFIG,
    train=dataclasses.replace(LIVE_CONFIG.train, max_steps=40, warmup_steps=5),
    eval_every=10,
    max_seconds=120.0,
)
# A long step budget, for runs a test stops itself.
LONG = dataclasses.replace(
    SHORT, train=dataclasses.replace(SHORT.train, max_steps=100_000), max_seconds=120.0
)


def live_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("live-training-")]


def wait_for_step(run: LiveRun, step: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while run.progress().step < step:
        assert run.alive, run.progress().error
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)


def test_a_seeded_short_run_lowers_the_loss_and_reports_progress() -> None:
    run = LiveRun(SHORT).start()
    assert run.join(timeout=120)
    p = run.progress()
    assert p.status == FINISHED, p.error
    assert p.step == 40 and p.fraction == 1.0
    np.testing.assert_array_equal(p.steps, np.arange(1, 41))
    # From a uniform guess (log 4097 = 8.32 nats) the training loss falls by more than 1 nat.
    assert p.loss[0] > 8.0
    assert p.loss[-5:].mean() < p.loss[0] - 1.0, p.loss
    np.testing.assert_array_equal(p.eval_steps, [10, 20, 30, 40])
    assert p.copy_loss[-1] < p.copy_loss[0], p.copy_loss
    # held-out text: the common tokens are learnt in the first steps (the unigram, about 7 nats)
    assert np.all(p.text_loss < np.log(4097) - 1.0), p.text_loss
    assert 0 < p.elapsed_s < 120
    # every head's attention on the probe (random tokens repeated) at the last step
    heads = p.heads
    assert heads is not None and heads.step == 40
    assert heads.patterns.shape == (2, 4, 64, 64)
    np.testing.assert_allclose(heads.patterns.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(heads.patterns, k=1) == 0)  # causal: no weight on later keys
    assert heads.induction.shape == heads.previous.shape == (2, 4)
    assert len(heads.labels) == 2 and all(len(row) == 4 for row in heads.labels)
    assert len(p.probe_tokens) == 64
    assert not live_threads()


def test_a_run_is_reproducible_from_its_seed() -> None:
    config = dataclasses.replace(SHORT, train=dataclasses.replace(SHORT.train, max_steps=5))
    a, b = LiveRun(config).start(), LiveRun(config).start()
    assert a.join(60) and b.join(60)
    np.testing.assert_allclose(a.progress().loss, b.progress().loss, rtol=1e-5)


def test_stop_ends_the_run_within_a_step_and_leaves_no_thread() -> None:
    run = LiveRun(LONG).start()
    wait_for_step(run, 3)
    asked = time.monotonic()
    run.stop()
    assert run.join(timeout=10)
    assert time.monotonic() - asked < 10
    p = run.progress()
    assert p.status == STOPPED and p.step < 100_000
    assert p.fraction == 1.0
    assert not live_threads()


def test_the_time_budget_ends_a_run() -> None:
    run = LiveRun(dataclasses.replace(LONG, max_seconds=1.0)).start()
    assert run.join(timeout=30)
    p = run.progress()
    assert p.status == FINISHED and 0 < p.step < 100_000
    assert p.elapsed_s < 20
    assert not live_threads()


def test_a_run_whose_owner_is_gone_stops() -> None:
    asked: list[float] = []

    def owner_alive() -> bool:
        asked.append(time.monotonic())
        return False

    run = LiveRun(dataclasses.replace(LONG, owner_grace_s=0.0), owner_alive=owner_alive).start()
    assert run.join(timeout=30)
    assert run.progress().status == OWNER_GONE
    assert asked
    assert not live_threads()


def test_an_owner_that_comes_back_within_the_grace_keeps_the_run() -> None:
    answers = iter([False] + [True] * 10_000)
    run = LiveRun(
        dataclasses.replace(LONG, owner_grace_s=30.0), owner_alive=lambda: next(answers)
    ).start()
    wait_for_step(run, 3)
    assert run.progress().status == RUNNING
    run.stop()
    assert run.join(10)
    assert run.progress().status == STOPPED


def test_the_registry_refuses_when_disabled_or_at_its_cap() -> None:
    registry = LiveRegistry()
    with pytest.raises(LiveTrainingRefusedError) as refused:
        registry.start(0, SHORT)
    assert refused.value.reason == "disabled"
    first = registry.start(1, LONG)
    try:
        assert registry.active() == 1
        with pytest.raises(LiveTrainingRefusedError) as busy:
            registry.start(1, SHORT)
        assert busy.value.reason == "busy" and busy.value.limit == 1
        second = registry.start(2, LONG)  # a cap of 2 lets a second one in
        assert registry.active() == 2
    finally:
        registry.stop_all()
    assert not first.alive and not second.alive
    assert registry.active() == 0
    assert not live_threads()
    again = registry.start(1, dataclasses.replace(SHORT, max_seconds=0.5))
    assert again.join(30)
    assert registry.active() == 0


def test_the_held_out_copy_rows_and_the_probe_are_fixed() -> None:
    data = live_data(SHORT)
    assert data.copy_x.shape == data.copy_y.shape == (16, 64)
    assert data.copy_ids is not None and len(data.copy_ids) > 100
    assert set(np.unique(data.copy_x.numpy())) <= set(data.copy_ids.tolist())
    half = SHORT.probe_half
    assert data.probe_ids[:half] == data.probe_ids[half:]


def test_a_failing_run_records_the_error_and_frees_its_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import engine.training.live as live

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(live, "train", broken)
    registry = LiveRegistry()
    run = registry.start(1, SHORT)
    assert run.join(30)
    p = run.progress()
    assert p.status == "failed" and p.error == "RuntimeError: out of memory"
    assert p.fraction == 1.0
    assert registry.active() == 0
    assert not live_threads()
