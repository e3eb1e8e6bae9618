"""engine.training.card and card_markdown: the model card built from a report and rendered."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.card import HeadScore, ModelCard, Thresholds
from engine.checkpoints import LoadedModel
from engine.config import TrainConfig
from engine.training.card import build_card
from engine.training.card_markdown import render_model_card
from engine.training.evaluate import evaluate


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
