"""engine.training.evaluate: sampled and greedy continuations, and the evaluation report."""

from __future__ import annotations

import numpy as np
import torch

from engine.checkpoints import LoadedModel
from engine.training.evaluate import continue_text, evaluate
from engine.training.train import estimate_loss


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
