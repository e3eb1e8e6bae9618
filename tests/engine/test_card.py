"""engine.card: the typed model card round-trips through config.json, refuses what it cannot
read, and a checkpoint whose card cannot be read (or has none) still loads."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from engine.card import CardError, HeadScore, ModelCard, Protocol, TrainStage, read_card
from engine.checkpoints import BUNDLED_DIR, load_directory, random_model, save_checkpoint
from engine.config import PRESETS, TrainConfig


def test_the_bundled_card_round_trips_through_its_dictionary() -> None:
    card = read_card(BUNDLED_DIR)
    assert card is not None
    raw = json.loads((BUNDLED_DIR / "config.json").read_text(encoding="utf-8"))
    assert card.to_dict() == raw["inside_gpt"]["card"]
    assert ModelCard.from_dict(card.to_dict()) == card


def test_a_run_card_writes_only_the_fields_it_has() -> None:
    card = ModelCard(trained_on="x", train_command="python -m engine train", train_config=None)
    assert card.to_dict() == {"trained_on": "x", "train_command": "python -m engine train"}
    with_config = ModelCard(trained_on="x", train_config=TrainConfig(max_steps=5))
    assert ModelCard.from_dict(with_config.to_dict()).train_config == TrainConfig(max_steps=5)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1], "expected an object"),
        ({}, "trained_on"),
        ({"trained_on": "x", "val_loss": "low"}, r"card\.val_loss: expected float"),
        ({"trained_on": "x", "checkpoint_step": True}, "expected int"),
        ({"trained_on": "x", "step": 2}, "unknown field"),
        ({"trained_on": "x", "val_history": [[1, 2.0, 3]]}, "expected 2 values"),
        ({"trained_on": "x", "train_config": {"max_steps": 0}}, "max_steps"),
        ({"trained_on": "x", "thresholds_met": {"induction head >= 0.4": True}}, "unknown"),
    ],
)
def test_an_unreadable_card_is_refused_with_its_problem_named(raw: object, message: str) -> None:
    with pytest.raises(CardError, match=message):
        ModelCard.from_dict(raw)


def test_sentences_are_rendered_from_the_protocols_numbers() -> None:
    p = Protocol(
        seq_len=128,
        prev_windows=8,
        prev_window=128,
        induction_half=64,
        induction_pool=2767,
        ordinary_ids=4096,
        induction_seeds=(0, 1),
        train_windows=0,
    )
    assert p.previous_token == "8 evenly spaced 128-token windows of the validation split"
    assert p.induction == (
        "64 random tokens drawn uniformly from the 2,767 ids that occur in the training split, "
        "repeated twice, seeds [0, 1]"
    )
    assert p.train_loss == "every window"
    assert HeadScore(1, 2, 0.5).name == "1.2"


def test_nested_records_round_trip() -> None:
    stage = TrainStage(0, 10, "python -m engine train", 0.25, 32, 5, 0, "normal", None, 4)
    card = ModelCard(trained_on="x", train_stages=(stage,), val_history=((500, 5.1),))
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again == card
    assert again.train_stages[0].wall_clock_s is None


def test_checkpoints_without_a_card_or_with_an_unreadable_one_still_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = save_checkpoint(random_model(PRESETS["tiny"], seed=0), tmp_path / "a", 4096)
    assert load_directory(directory).card is None
    assert read_card(directory) is None
    raw = json.loads((directory / "config.json").read_text())
    raw["inside_gpt"]["card"] = {"trained_on": "x", "best_val_loss": 3.0}
    (directory / "config.json").write_text(json.dumps(raw))
    with caplog.at_level(logging.WARNING):
        loaded = load_directory(directory)
    assert loaded.card == ModelCard(trained_on="x", val_loss=3.0)  # its summary
    assert "reading only the summary of its model card" in caplog.text
    with pytest.raises(CardError, match="best_val_loss"):
        read_card(directory)


def test_a_card_in_the_previous_format_keeps_its_summary_rows() -> None:
    """A card written before the card was typed (sentence keys, `head` strings): the home page
    still shows what it was trained on, how far training got and the validation loss."""
    old = {
        "trained_on": "Shakespeare (38 works) and a copy task",
        "tokens_seen": 30_720_000,
        "checkpoint_step": 15_000,
        "max_steps": 15_000,
        "val_loss": 3.696,
        "best_previous_token_head": {"layer": 0, "head": "0.2", "score": 0.987},
        "thresholds_met": {"validation loss below the Kneser-Ney bigram": True},
    }
    with pytest.raises(CardError):
        ModelCard.from_dict(old)
    assert ModelCard.summary_of(old) == ModelCard(
        trained_on="Shakespeare (38 works) and a copy task",
        tokens_seen=30_720_000,
        checkpoint_step=15_000,
        max_steps=15_000,
        val_loss=3.696,
    )
    assert ModelCard.summary_of(["not", "a", "card"]) is None
    assert ModelCard.summary_of({"tokens_seen": "many"}) == ModelCard(trained_on="not recorded")
