"""The shipped model in assets/model: it loads through the engine and through Hugging Face
`transformers` with the same logits, and its model card's numbers are recomputed here, so the
card can never drift from the checkpoint."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from engine.card import ModelCard, read_card
from engine.checkpoints import BUNDLED_DIR, LoadedModel, load
from engine.config import PRESETS
from engine.training.baselines import ngram_baselines
from engine.training.card_markdown import render_model_card
from engine.training.corpus import load_corpus, tokenize_works
from engine.training.evaluate import samples
from engine.training.measure import diagnostics
from engine.training.probes import (
    INDUCTION_BAR,
    PREVIOUS_TOKEN_BAR,
    default_induction_half,
    heads_above,
    induction_scores,
    previous_token_scores,
    seen_ids,
)
from engine.training.train import estimate_loss

TEXTS = (
    "To be, or not to be, that is the question:",
    "ROMEO.\nBut soft, what light through yonder window breaks?",
    "你好，世界! The cat sat on the mat. 🙂",
    " 1234 <|endoftext|> ends here",
)
# Engine vs transformers: the same float32 weights through different kernels. Measured here:
# max |diff| 3.3e-6 on these texts; 1e-4 leaves room for other CPUs' summation order.
LOGITS_ATOL = 1e-4
# Card numbers are rounded to 4 decimals; recomputation on another CPU or thread count changes
# the summation order (measured here: below 1e-5). 1e-3 is far below any meaningful change.
CARD_ATOL = 1e-3


@pytest.fixture(scope="module")
def bundled() -> LoadedModel:
    loaded = load("bundled")
    assert loaded.source == str(BUNDLED_DIR), "the bundled checkpoint is missing from assets/model"
    return loaded


@pytest.fixture(scope="module")
def card(bundled: LoadedModel) -> ModelCard:
    assert bundled.card is not None, "the bundled config.json has no readable card"
    assert read_card(BUNDLED_DIR) == bundled.card
    return bundled.card


@pytest.fixture(scope="module")
def split_ids(bundled: LoadedModel) -> tuple[np.ndarray, np.ndarray]:
    train_texts, valid_texts = load_corpus().split()
    return (
        tokenize_works(train_texts, bundled.tokenizer),
        tokenize_works(valid_texts, bundled.tokenizer),
    )


def test_bundled_directory_holds_only_the_config_the_weights_and_the_card() -> None:
    names = sorted(p.name for p in BUNDLED_DIR.iterdir())
    assert names == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    assert (BUNDLED_DIR / "model.safetensors").stat().st_size < 25 * 1024**2


def test_bundled_model_is_the_preset_shape_with_the_truncated_cl100k_tokenizer(
    bundled: LoadedModel,
) -> None:
    cfg = bundled.config
    assert cfg == PRESETS["bundled"]
    assert bundled.tokenizer.name == "cl100k_base[:4096]"
    assert cfg.vocab_size == bundled.tokenizer.vocab_size == 4097
    assert bundled.card is not None and bundled.card.n_params == cfg.n_params()


def test_bundled_model_gives_the_same_logits_in_transformers(bundled: LoadedModel) -> None:
    from transformers import GPT2LMHeadModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # progress/notice output of from_pretrained
        hf = GPT2LMHeadModel.from_pretrained(str(BUNDLED_DIR)).eval()
    for text in TEXTS:
        ids = torch.tensor([bundled.tokenizer.encode(text)])
        with torch.no_grad():
            theirs = hf(ids).logits
            ours = bundled.model(ids)
        torch.testing.assert_close(
            ours,
            theirs,
            atol=LOGITS_ATOL,
            rtol=0.0,
            msg=lambda m, t=text: f"{t!r}: {m}",
        )


def test_bundled_model_greedy_continuation_is_the_same_in_transformers(
    bundled: LoadedModel,
) -> None:
    from transformers import GPT2LMHeadModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = GPT2LMHeadModel.from_pretrained(str(BUNDLED_DIR)).eval()
    ours = theirs = bundled.tokenizer.encode("KING.\nMy lord,")
    with torch.no_grad():
        for _ in range(20):
            ours = [*ours, int(bundled.model(torch.tensor([ours]))[0, -1].argmax())]
            theirs = [*theirs, int(hf(torch.tensor([theirs])).logits[0, -1].argmax())]
    assert ours == theirs
    assert bundled.tokenizer.decode(ours) == bundled.tokenizer.decode(theirs)


def test_model_card_markdown_is_rendered_from_the_config_card(bundled: LoadedModel) -> None:
    written = (BUNDLED_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert written == render_model_card(bundled.card, bundled.config, bundled.tokenizer.name)


def test_card_claims_agree_with_its_own_numbers(card: ModelCard) -> None:
    met = card.thresholds_met
    assert met is not None and card.val_loss is not None and card.baselines is not None
    assert met.val_below_bigram == (card.val_loss < card.baselines.bigram_kn)
    assert met.previous_token == (max(map(max, card.previous_token_scores)) >= PREVIOUS_TOKEN_BAR)
    assert met.induction == (max(map(max, card.induction_scores)) >= INDUCTION_BAR)
    raw = json.loads((BUNDLED_DIR / "config.json").read_text())
    assert raw["inside_gpt"]["tokenizer"] == {"kind": "cl100k_base", "n_ranks": 4096}


@pytest.mark.slow
def test_card_validation_loss_is_recomputed_on_the_whole_held_out_split(
    bundled: LoadedModel, card: ModelCard, split_ids: tuple[np.ndarray, np.ndarray]
) -> None:
    _, val_ids = split_ids
    assert card.protocol is not None
    seq_len = card.protocol.seq_len
    assert card.val_targets == ((len(val_ids) - 1) // seq_len) * seq_len
    val_loss = estimate_loss(bundled.model, val_ids, seq_len)
    assert val_loss == pytest.approx(card.val_loss, abs=CARD_ATOL)


@pytest.mark.slow
def test_card_baselines_are_recomputed_from_the_corpus(
    bundled: LoadedModel, card: ModelCard, split_ids: tuple[np.ndarray, np.ndarray]
) -> None:
    train_ids, val_ids = split_ids
    assert card.protocol is not None
    got = ngram_baselines(train_ids, val_ids, bundled.config.vocab_size, card.protocol.seq_len)
    written = card.baselines
    assert written is not None
    assert got.n_train_tokens == written.n_train_tokens
    assert got.n_val_targets == written.n_val_targets
    for key in ("unigram", "bigram_kn", "trigram_kn"):
        assert getattr(got, key) == pytest.approx(getattr(written, key), abs=CARD_ATOL), key


@pytest.mark.slow
def test_card_head_scores_are_recomputed_with_the_cards_protocol(
    bundled: LoadedModel, card: ModelCard, split_ids: tuple[np.ndarray, np.ndarray]
) -> None:
    train_ids, val_ids = split_ids
    pool = seen_ids(train_ids, bundled.tokenizer.eot_id)
    assert card.protocol is not None and card.induction_all_ids is not None
    # The protocol the card states: 8 windows of the context; seeds 0-4, min(100, context / 2)
    # tokens twice, drawn from the ids seen in training (and, as a second number, from all ids).
    n_ctx = bundled.config.n_ctx
    half = default_induction_half(bundled.config)
    assert card.protocol.previous_token.startswith(f"8 evenly spaced {n_ctx}-token windows")
    assert card.protocol.induction == (
        f"{half} random tokens drawn uniformly from the {len(pool):,} ids that occur in the "
        "training split, repeated twice, seeds [0, 1, 2, 3, 4]"
    )
    previous = previous_token_scores(bundled, val_ids, n_windows=8)
    induction = induction_scores(bundled, seeds=(0, 1, 2, 3, 4), half=half, pool=pool)
    all_ids = induction_scores(bundled, seeds=(0, 1, 2, 3, 4), half=half)
    written_all = card.induction_all_ids
    np.testing.assert_allclose(all_ids.scores, written_all.scores, atol=CARD_ATOL, rtol=0)
    assert all_ids.repeat_loss == pytest.approx(written_all.repeat_loss, abs=CARD_ATOL)
    np.testing.assert_allclose(previous, card.previous_token_scores, atol=CARD_ATOL, rtol=0)
    np.testing.assert_allclose(induction.scores, card.induction_scores, atol=CARD_ATOL, rtol=0)
    assert heads_above(previous, PREVIOUS_TOKEN_BAR) == card.previous_token_heads
    assert heads_above(induction.scores, INDUCTION_BAR) == card.induction_heads
    assert induction.first_half_loss == pytest.approx(card.induction_first_half_loss, abs=CARD_ATOL)
    assert induction.repeat_loss == pytest.approx(card.induction_repeat_loss, abs=CARD_ATOL)


def test_card_greedy_samples_are_what_the_model_generates(
    bundled: LoadedModel, card: ModelCard
) -> None:
    written = [s for s in card.samples if s.mode == "greedy"]
    prompts = tuple(s.prompt for s in written)
    regenerated = [s for s in samples(bundled, prompts) if s.mode == "greedy"]
    assert regenerated == written


@pytest.mark.parametrize(
    "bar",
    [
        "val_below_bigram",  # validation loss below the Kneser-Ney bigram
        "previous_token",  # previous-token head >= PREVIOUS_TOKEN_BAR
        "induction",  # induction head >= INDUCTION_BAR
        "repeat_lower",  # repeated half has the lower loss
    ],
)
def test_bundled_model_meets_the_bar(card: ModelCard, bar: str) -> None:
    assert getattr(card.thresholds_met, bar), f"{bar}: not met"


def test_card_diagnostics_are_recomputed_from_the_weights(
    bundled: LoadedModel, card: ModelCard, split_ids: tuple[np.ndarray, np.ndarray]
) -> None:
    train_ids, val_ids = split_ids
    got = diagnostics(bundled, train_ids, val_ids)
    written = card.diagnostics
    assert written is not None
    assert got.unseen_ids == written.unseen_ids
    for key in ("position_cos_next", "position_cos_10", "uniform_entropy"):
        assert getattr(got, key) == pytest.approx(getattr(written, key), abs=CARD_ATOL), key
    for key in ("unseen_ids_mean_cos", "frequent_ids_mean_cos"):
        assert getattr(got, key) == pytest.approx(getattr(written, key), abs=CARD_ATOL), key
    np.testing.assert_allclose(
        got.attention_entropy, written.attention_entropy, atol=CARD_ATOL, rtol=0
    )
