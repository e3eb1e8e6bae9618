"""engine.training.probes: previous-token and induction head probes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel
from engine.lens.heads import head_scores
from engine.training.probes import (
    induction_scores,
    previous_token_scores,
    repeated_random_tokens,
    seen_ids,
    window_starts,
)


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
