"""engine.training: the n-gram baselines, head-score protocols, sampling, the report and the
model card built and rendered from it."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.capture import run_with_trace
from engine.card import HeadScore, ModelCard, Thresholds
from engine.checkpoints import LoadedModel
from engine.config import TrainConfig
from engine.lens.heads import head_scores
from engine.training.baselines import KneserNey, ngram_baselines
from engine.training.card import build_card
from engine.training.card_markdown import render_model_card
from engine.training.evaluate import continue_text, evaluate
from engine.training.probes import (
    induction_scores,
    previous_token_scores,
    repeated_random_tokens,
    seen_ids,
    window_starts,
)
from engine.training.train import estimate_loss


def _skewed_ids(n: int, vocab: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, vocab, n) % rng.integers(1, vocab, n)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_kneser_ney_distributions_sum_to_one_in_seen_and_unseen_contexts(order: int) -> None:
    V = 40
    ids = _skewed_ids(3000, V)
    model = KneserNey(ids, V, order)
    contexts = [(int(ids[10]), int(ids[11])), (3, 4), (39, 38)]  # seen, and probably unseen
    for ctx in contexts:
        history = None if order == 1 else np.tile(np.array(ctx[2 - (order - 1) :]), (V, 1))
        p = model.prob(history, np.arange(V))
        assert (p > 0).all()
        assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_kneser_ney_bigram_matches_a_hand_computed_probability() -> None:
    # "a b a b a c": bigram counts ab=2, ba=2, ac=1 -> D = n1 / (n1 + 2 n2) = 1 / 5.
    # Every token follows exactly one distinct token, so the continuation unigram is uniform.
    # P(b | a) = (2 - 0.2) / 3 + 0.2 * 2 / 3 * 1 / 3
    ids = np.array([0, 1, 0, 1, 0, 2])
    model = KneserNey(ids, 3, 2)
    assert model.discounts[0] == pytest.approx(0.2)
    p = model.prob(np.array([[0]]), np.array([1]))[0]
    assert p == pytest.approx(1.8 / 3 + 0.4 / 9)
    # An unseen context falls back to the continuation unigram.
    assert model.prob(np.array([[2]]), np.array([1]))[0] == pytest.approx(1 / 3)


def test_kneser_ney_loss_is_the_mean_negative_log_probability_of_each_target() -> None:
    V = 30
    ids = _skewed_ids(2000, V, seed=1)
    model = KneserNey(ids[:1500], V, 3)
    held = ids[1500:]
    manual = -np.mean(
        [np.log(model.prob(held[i - 2 : i][None], held[i : i + 1])[0]) for i in range(2, len(held))]
    )
    assert model.loss(held, 2) == pytest.approx(manual, rel=1e-12)


def test_higher_order_baselines_win_on_text_with_local_structure() -> None:
    # A source where the previous token narrows the next one to two choices and the token
    # before it picks one of them (with noise): bigram < unigram, trigram < bigram.
    rng = np.random.default_rng(0)
    V, n = 64, 60_000
    ids = np.zeros(n, dtype=np.int64)
    ids[:2] = [1, 2]
    for i in range(2, n):
        ids[i] = (ids[i - 1] * 7 + ids[i - 2] % 2) % V if rng.random() < 0.8 else rng.integers(V)
    b = ngram_baselines(ids[:50_000], ids[50_000:], V, seq_len=100)
    assert b.unigram == pytest.approx(math.log(V), abs=0.05)  # the marginal is nearly uniform
    assert b.trigram_kn < b.bigram_kn < b.unigram
    assert b.n_val_targets == ((10_000 - 1) // 100) * 100


def test_window_starts_are_evenly_spaced_and_keep_every_window_inside() -> None:
    assert window_starts(1000, 100, 4) == [0, 300, 600, 900]
    with pytest.raises(ValueError):
        window_starts(50, 100, 2)


def test_previous_token_scores_average_head_scores_over_the_windows(
    tiny_loaded: LoadedModel,
) -> None:
    ids = np.asarray(tiny_loaded.tokenizer.encode("Friends, Romans, countrymen, " * 20))
    got = previous_token_scores(tiny_loaded, ids, n_windows=2, window=16)
    starts = window_starts(len(ids), 16, 2)
    expected = np.mean(
        [
            head_scores(
                run_with_trace(
                    tiny_loaded.model, tiny_loaded.tokenizer, [int(t) for t in ids[s : s + 16]]
                )
            ).previous
            for s in starts
        ],
        axis=0,
    )
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_repeated_random_tokens_are_ordinary_tokens_repeated_once() -> None:
    ids = repeated_random_tokens(seed=3, half=50, n_tokens=4096)
    assert len(ids) == 100 and ids[:50] == ids[50:]
    assert max(ids) < 4096
    assert repeated_random_tokens(3, 50, 4096) == ids
    assert repeated_random_tokens(4, 50, 4096) != ids


def test_repeated_random_tokens_from_a_pool_use_only_its_ids() -> None:
    pool = np.array([7, 11, 13])
    ids = repeated_random_tokens(seed=0, half=40, n_tokens=4096, pool=pool)
    assert set(ids) <= {7, 11, 13} and ids[:40] == ids[40:]


def test_seen_ids_are_the_ordinary_ids_of_the_training_split() -> None:
    train = np.array([5, 3, 5, 4096, 9, 3])
    assert seen_ids(train, eot_id=4096).tolist() == [3, 5, 9]


def test_induction_losses_of_an_untrained_model_are_about_log_vocabulary(
    tiny_loaded: LoadedModel,
) -> None:
    result = induction_scores(tiny_loaded, seeds=(0, 1), half=16)
    assert result.scores.shape == (2, 2)
    # Random weights attend roughly uniformly: about 1 / (number of keys) on the induction target.
    assert (result.scores < 0.3).all()
    assert result.first_half_loss == pytest.approx(math.log(4097), abs=0.3)
    assert result.repeat_loss == pytest.approx(math.log(4097), abs=0.3)


def test_greedy_generation_follows_the_argmax_token_by_token(tiny_loaded: LoadedModel) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    ids = tok.encode("To be, or")
    with torch.no_grad():
        for _ in range(5):
            logits = model(torch.tensor([ids[-model.config.n_ctx :]]))[0, -1]
            logits[tok.eot_id] = float("-inf")
            ids.append(int(logits.argmax()))
    assert continue_text(model, tok, "To be, or", 5) == tok.decode(ids[-5:])


def test_sampled_generation_is_reproducible_for_a_seed(tiny_loaded: LoadedModel) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    a = continue_text(model, tok, "ROMEO.", 12, temperature=1.0, top_k=50, seed=1)
    assert a == continue_text(model, tok, "ROMEO.", 12, temperature=1.0, top_k=50, seed=1)
    assert a != continue_text(model, tok, "ROMEO.", 12, temperature=1.0, top_k=50, seed=2)


def test_evaluate_reports_the_engines_own_measurements(tiny_loaded: LoadedModel) -> None:
    tok = tiny_loaded.tokenizer
    train_ids = np.asarray(tok.encode("Now is the winter of our discontent. " * 40))
    val_ids = np.asarray(tok.encode("Now is the winter of our discontent. " * 10))
    report = evaluate(
        tiny_loaded,
        train_ids,
        val_ids,
        n_prev_windows=2,
        induction_seeds=(0,),
        induction_half=16,
        n_sample_tokens=4,
    )
    assert report.val_loss == estimate_loss(tiny_loaded.model, val_ids, 32)
    assert report.previous_token.shape == report.induction.shape == (2, 2)
    assert report.baselines is not None and report.baselines.bigram_kn < report.baselines.unigram
    assert len(report.samples) == 8  # 4 prompts x (greedy, sampled)
    met = report.thresholds()
    assert met["previous-token head >= 0.5"] is False  # an untrained model has no such head
    assert met["induction head >= 0.4"] is False
    as_dict = report.to_dict()
    assert as_dict["best_previous_token_head"]["score"] == round(report.best_previous.score, 4)
    # The probe draws from the ids of the training text; the all-ids variant is reported too.
    n_seen = len(set(train_ids.tolist()))
    assert f"from the {n_seen} ids that occur in the training split" in report.protocol.induction
    assert as_dict["induction_all_ids"]["best_head"]["score"] >= 0.0


def _card_for(
    loaded: LoadedModel, report_kwargs: dict | None = None, stages: list | None = None
) -> ModelCard:
    tok = loaded.tokenizer
    ids = np.asarray(tok.encode("Now is the winter of our discontent. " * 40))
    report = evaluate(
        loaded,
        ids,
        ids,
        n_prev_windows=2,
        induction_seeds=(0,),
        induction_half=16,
        n_sample_tokens=4,
        **(report_kwargs or {}),
    )
    state = {"step": 10, "tokens_seen": 2560, "elapsed_s": 12.0, "history": []}
    run_card = ModelCard(
        trained_on="Shakespeare",
        train_command="python -m engine train --out runs/x --steps 20",
        train_config=TrainConfig(max_steps=20, batch_size=8, seq_len=32, synthetic_share=0.25),
    )
    return build_card(
        report, run_card, state, loaded.config, validation_works=("hamlet",), stages=stages
    )


def test_model_card_of_an_untrained_model_reports_the_bars_as_not_met(
    tiny_loaded: LoadedModel,
) -> None:
    card = _card_for(tiny_loaded)
    text = render_model_card(card, tiny_loaded.config, tiny_loaded.tokenizer.name)
    assert (
        "Training stopped at step 10 of the 20 its learning-rate schedule was planned for" in text
    )
    assert "It has learned attention patterns" not in text
    assert text.count("**not met**") >= 2
    assert f"**{card.val_loss:.3f}**" in text
    assert card.train_stages[0].copy_rows_per_batch == 2
    assert card.natural_tokens_seen == 2560 * 6 // 8
    assert "No control run" in text


def test_model_card_names_the_heads_when_the_bars_are_met(tiny_loaded: LoadedModel) -> None:
    card = replace(
        _card_for(tiny_loaded),
        previous_token_scores=((0.1, 0.72), (0.2, 0.3)),
        induction_scores=((0.0, 0.0), (0.55, 0.1)),
        best_previous_token_head=HeadScore(0, 1, 0.72),
        best_induction_head=HeadScore(1, 0, 0.55),
        previous_token_heads=("0.1",),
        induction_heads=("1.0",),
        thresholds_met=Thresholds(True, True, True, True),
    )
    text = render_model_card(card, tiny_loaded.config, tiny_loaded.tokenizer.name)
    assert "previous-token head 0.1 (0.72) and induction head 1.0 (0.55)" in text
    assert "| 0 | 0.100 | **0.720** |" in text
    assert "**not met**" not in text


def test_model_card_counts_no_shakespeare_in_copy_only_steps(tiny_loaded: LoadedModel) -> None:
    tok = tiny_loaded.tokenizer
    ids = np.asarray(tok.encode("Now is the winter of our discontent. " * 40))
    report = evaluate(
        tiny_loaded,
        ids,
        ids,
        n_prev_windows=1,
        induction_seeds=(0,),
        induction_half=8,
        n_sample_tokens=0,
    )
    state = {"step": 100, "tokens_seen": 100 * 256, "elapsed_s": 1.0, "history": []}
    cfg = TrainConfig(max_steps=100, batch_size=8, seq_len=32, synthetic_share=0.25)
    run_card = ModelCard(
        trained_on="Shakespeare",
        train_command="python -m engine train --out x --steps 100 --copy-first-steps 40",
        train_config=replace(cfg, copy_first_steps=40),
    )
    card = build_card(report, run_card, state, tiny_loaded.config)
    # 60 mixed steps x 256 tokens x 6 of 8 rows natural; the 40 copy-only steps add nothing.
    assert card.natural_tokens_seen == 60 * 256 * 6 // 8
    text = render_model_card(card, tiny_loaded.config, tok.name)
    assert "2 of 8 (all 8 rows before step 40)" in text


def test_model_card_of_a_staged_run_explains_its_copy_only_stage(
    tiny_loaded: LoadedModel,
) -> None:
    """A run paused and resumed with the copy task alone (the bundled model's recipe): the card
    counts no Shakespeare in that stage, says what the stage does, and its reproduce block
    resumes the run's own directory and records the reproduction check it was given."""
    from engine.__main__ import _train_stages

    base = "python -m engine train --out runs/v9 --steps 20 --synthetic-share"
    stages = _train_stages(
        [f"6:{base} 0.25 --stop-at 6", f"8:{base} 1.0 --stop-at 8"], f"{base} 0.25", 10, []
    )
    card = replace(
        _card_for(tiny_loaded, stages=stages),
        reproduction_note="Checked: stage slices were bit-identical.",
    )
    # 256 tokens a step, 6 of 8 rows natural in stages 1 and 3 (8 steps), none in stage 2
    assert card.natural_tokens_seen == 8 * 256 * 6 // 8
    text = render_model_card(card, tiny_loaded.config, tiny_loaded.tokenizer.name)
    assert "Steps 6-8 train on the copy task alone" in text
    assert "Steps 0-6 train on the copy task alone" not in text
    assert "python -m engine card --run runs/v9 --out assets/model" in text
    assert text.rstrip().endswith("Checked: stage slices were bit-identical.")
