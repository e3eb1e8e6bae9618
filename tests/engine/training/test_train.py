"""The training loop on the tiny config: it learns, it is reproducible, it resumes exactly."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.checkpoints import load_directory, random_model
from engine.config import GPTConfig, TrainConfig
from engine.model import GPT
from engine.tokenizer import cl100k_truncated
from engine.training.corpus import load_corpus
from engine.training.train import TrainEvent, estimate_loss, get_batch, get_lr, train

N_RANKS = 4096
STEPS = 40


@pytest.fixture(scope="module")
def text_ids() -> np.ndarray:
    """A small fixed text: the first 3,000 tokens of Hamlet from the committed corpus."""
    corpus = load_corpus()
    hamlet = corpus.texts[corpus.works.index("hamlet")]
    ids = cl100k_truncated(N_RANKS).encode(hamlet)[:3000]
    return np.asarray(ids, dtype=np.int32)


def _cfg(**overrides: object) -> TrainConfig:
    base = TrainConfig(
        max_steps=STEPS,
        batch_size=8,
        seq_len=32,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=5,
        eval_every=STEPS,
        eval_batches=1,
        seed=7,
        synthetic_share=0.25,
        threads=1,
    )
    return replace(base, **overrides)


def _run(
    tiny_config: GPTConfig,
    cfg: TrainConfig,
    data: np.ndarray,
    out: Path,
    callbacks: tuple = (),
    resume: bool = True,
) -> GPT:
    model, _ = train(
        tiny_config,
        cfg,
        data,
        data,
        out,
        n_ranks=N_RANKS,
        eot_id=N_RANKS,
        callbacks=callbacks,
        resume=resume,
    )
    return model


def _assert_same_weights(a: GPT, b: GPT) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), (
            f"{key} differs (max {(sa[key] - sb[key]).abs().max()})"
        )


def test_training_lowers_the_loss_on_a_small_fixed_text(
    tiny_config: GPTConfig, text_ids: np.ndarray, tmp_path: Path
) -> None:
    cfg = _cfg(synthetic_share=0.0)
    before = estimate_loss(random_model(tiny_config, seed=cfg.seed), text_ids, cfg.seq_len)
    model = _run(tiny_config, cfg, text_ids, tmp_path / "run")
    after = estimate_loss(model, text_ids, cfg.seq_len)
    # Untrained: about ln(4097) = 8.33 nats; after 40 steps of 256 tokens: 6.39 (measured).
    assert before == pytest.approx(math.log(4097), abs=0.1)
    assert after < before - 1.5, f"loss went from {before:.3f} to only {after:.3f}"


def test_training_is_reproducible_for_a_fixed_seed(
    tiny_config: GPTConfig, text_ids: np.ndarray, tmp_path: Path
) -> None:
    a = _run(tiny_config, _cfg(), text_ids, tmp_path / "a")
    b = _run(tiny_config, _cfg(), text_ids, tmp_path / "b")
    _assert_same_weights(a, b)
    c = _run(tiny_config, _cfg(seed=8), text_ids, tmp_path / "c")
    assert not torch.equal(a.transformer.wte.weight, c.transformer.wte.weight)


class _StopError(Exception):
    pass


def test_a_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(
    tiny_config: GPTConfig, text_ids: np.ndarray, tmp_path: Path
) -> None:
    cfg = _cfg(eval_every=STEPS // 2)
    whole = _run(tiny_config, cfg, text_ids, tmp_path / "whole")

    def stop_after_first_checkpoint(event: TrainEvent) -> None:
        if event.kind == "checkpoint":
            raise _StopError

    with pytest.raises(_StopError):
        _run(tiny_config, cfg, text_ids, tmp_path / "split", (stop_after_first_checkpoint,))
    state = json.loads((tmp_path / "split" / "train_state.json").read_text())["state"]
    assert state["step"] == STEPS // 2
    resumed = _run(tiny_config, cfg, text_ids, tmp_path / "split")
    _assert_same_weights(whole, resumed)
    final = json.loads((tmp_path / "split" / "train_state.json").read_text())["state"]
    assert final["step"] == STEPS
    assert final["tokens_seen"] == STEPS * cfg.batch_size * cfg.seq_len


def test_restart_ignores_an_existing_checkpoint(
    tiny_config: GPTConfig, text_ids: np.ndarray, tmp_path: Path
) -> None:
    _run(tiny_config, _cfg(seed=8), text_ids, tmp_path / "run")
    fresh = _run(tiny_config, _cfg(), text_ids, tmp_path / "fresh")
    restarted = _run(tiny_config, _cfg(), text_ids, tmp_path / "run", resume=False)
    # Resuming would have returned the seed-8 weights (that run already reached max_steps).
    _assert_same_weights(fresh, restarted)


def test_the_checkpoint_directory_loads_with_the_trained_weights(
    tiny_config: GPTConfig, text_ids: np.ndarray, tmp_path: Path
) -> None:
    model = _run(tiny_config, _cfg(), text_ids, tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "train_state.json",
    ]
    loaded = load_directory(tmp_path / "run")
    _assert_same_weights(model, loaded.model)
    assert loaded.tokenizer.vocab_size == N_RANKS + 1


def test_callbacks_see_every_step_an_eval_and_the_end(
    tiny_config: GPTConfig, text_ids: np.ndarray, tmp_path: Path
) -> None:
    events: list[TrainEvent] = []
    _run(
        tiny_config, _cfg(max_steps=10, eval_every=5), text_ids, tmp_path / "run", (events.append,)
    )
    steps = [e.step for e in events if e.kind == "step"]
    assert steps == list(range(1, 11))
    assert [e.step for e in events if e.kind == "eval"] == [5, 10]
    assert all(math.isfinite(e.val_loss) for e in events if e.kind == "eval")
    assert events[-1].kind == "done" and events[-1].step == 10


def test_a_run_without_a_directory_writes_nothing_and_stops_when_asked(
    tiny_config: GPTConfig, text_ids: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    events: list[TrainEvent] = []
    stepped = lambda: sum(e.kind == "step" for e in events)  # noqa: E731
    model, state = train(
        tiny_config,
        _cfg(max_steps=10, eval_every=2),
        text_ids,
        text_ids,
        None,
        n_ranks=N_RANKS,
        eot_id=N_RANKS,
        callbacks=(events.append,),
        should_stop=lambda: stepped() >= 3,
    )
    assert state.step == 3 and not model.training
    assert [e.kind for e in events if e.kind != "step"] == ["eval", "done"]  # no checkpoint
    assert all(e.model is model for e in events if e.kind == "step")
    assert list(tmp_path.iterdir()) == []


def test_get_lr_warms_up_linearly_then_decays_by_cosine_to_min_lr() -> None:
    cfg = TrainConfig(max_steps=1000, lr=1e-3, min_lr=1e-4, warmup_steps=100)
    assert get_lr(0, cfg) == pytest.approx(1e-5)
    assert get_lr(49, cfg) == pytest.approx(5e-4)
    assert get_lr(99, cfg) == pytest.approx(1e-3)
    assert get_lr(100, cfg) == pytest.approx(1e-3)  # cosine starts at the peak
    assert get_lr(550, cfg) == pytest.approx((1e-3 + 1e-4) / 2)  # halfway: the mean
    assert get_lr(1000, cfg) == pytest.approx(1e-4)
    assert get_lr(5000, cfg) == pytest.approx(1e-4)  # past the end it stays at min_lr
    decay = [get_lr(s, cfg) for s in range(100, 1001)]
    assert all(a >= b for a, b in itertools.pairwise(decay))


def test_get_batch_synthetic_rows_repeat_their_first_half_and_score_only_the_copy() -> None:
    data = np.arange(4000, dtype=np.int32)  # token i at position i
    cfg = TrainConfig(batch_size=8, seq_len=32, synthetic_share=0.25, seed=3)
    x, y = get_batch(data, cfg, step=5, vocab_size=4097, eot_id=4096)
    assert x.shape == y.shape == (8, 32)
    half = (32 + 1) // 2
    for r in range(2):  # round(0.25 * 8) = 2 synthetic rows
        row = x[r].tolist()
        assert row[half:] == row[: 32 - half]
        assert max(row) < 4096  # random ordinary tokens, never <|endoftext|>
        assert (y[r, :half] == -1).all()
        assert y[r, half:].tolist() == [*row[half + 1 :], row[0]]
    for r in range(2, 8):  # natural rows: a window of the data, every target scored
        start = int(x[r, 0])
        assert x[r].tolist() == data[start : start + 32].tolist()
        assert y[r].tolist() == data[start + 1 : start + 33].tolist()


def test_get_batch_returns_the_same_batch_for_the_same_step_and_another_for_the_next() -> None:
    data = np.arange(10_000, dtype=np.int32) % 4000
    cfg = TrainConfig(batch_size=4, seq_len=16, synthetic_share=0.5)
    x1, y1 = get_batch(data, cfg, 11, 4097, 4096)
    x2, y2 = get_batch(data, cfg, 11, 4097, 4096)
    x3, _ = get_batch(data, cfg, 12, 4097, 4096)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)


def test_resuming_a_checkpoint_of_another_shape_is_refused(
    tiny_config: GPTConfig, text_ids: np.ndarray, tmp_path: Path
) -> None:
    _run(tiny_config, _cfg(max_steps=2, eval_every=2), text_ids, tmp_path / "run")
    wider = replace(tiny_config, d_model=64)
    with pytest.raises(ValueError, match="another shape"):
        _run(wider, _cfg(max_steps=4, eval_every=2), text_ids, tmp_path / "run")
