"""The shipped training snapshots of the bundled model (assets/snapshots, issue 18 item 1): they
fit the size limit, load through the engine and through Hugging Face `transformers` (float32)
with the same logits, are the steps the manifest says (their induction scores are the run's
recorded ones, to float16 rounding), and step 0 is the run's seeded initialisation."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from engine.checkpoints import BUNDLED_DIR, load_directory, random_model
from engine.snapshots import (
    SNAPSHOTS_DIR,
    history_of,
    load_snapshot,
    read_history,
    read_manifest,
)
from engine.training.corpus import tokenize_works
from engine.training.probes import induction_scores, seen_ids
from engine.training.sources import load_bilingual, split_by_language

MANIFEST = read_manifest()
assert MANIFEST is not None, "assets/snapshots/manifest.json is missing"
STORED = [s for s in MANIFEST.snapshots if s.folder is not None]
LOGITS_ATOL = 1e-4  # engine vs transformers, the same float32 weights, different kernels
TEXTS = ("The cat sat on the mat. The cat sat on the mat.", "我们在学习语言模型。", "Mixed 你好 🙂")


def test_all_snapshots_fit_in_30_mb_and_hold_only_safetensors() -> None:
    files = [p for p in SNAPSHOTS_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30 * 10**6
    for snap in STORED:
        assert sorted(p.name for p in snap.folder.iterdir()) == [
            "config.json",
            "model.safetensors",
        ]


def test_manifest_tells_the_story() -> None:
    """Step 0, one step before any head has a role, and steps inside the phase change."""
    start, end = MANIFEST.phase_change
    assert MANIFEST.steps[0] == 0 and MANIFEST.steps[-1] == MANIFEST.final_step == 20000
    assert sum(start < s <= end for s in MANIFEST.steps) >= 2
    assert all(s.why for s in MANIFEST.snapshots)


@pytest.mark.parametrize("snap", STORED, ids=lambda s: f"step{s.step}")
def test_same_logits_in_transformers(snap) -> None:
    from transformers import GPT2LMHeadModel

    loaded = load_snapshot(snap)
    assert loaded.stored_dtype == "float16"  # the sidebar says so
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = GPT2LMHeadModel.from_pretrained(str(snap.folder), dtype=torch.float32).eval()
    assert next(hf.parameters()).dtype == torch.float32
    for text in TEXTS:
        ids = torch.tensor([loaded.tokenizer.encode(text)])
        with torch.no_grad():
            torch.testing.assert_close(
                loaded.model(ids), hf(ids).logits, atol=LOGITS_ATOL, rtol=0.0
            )


def test_step_0_is_the_runs_seeded_initialisation() -> None:
    snap = MANIFEST.snapshot(0)
    assert snap is not None and snap.folder is None and snap.seed == 1337
    loaded = load_snapshot(snap)
    bundled = load_directory(BUNDLED_DIR)
    assert loaded.config == bundled.config
    assert loaded.tokenizer.vocab_size == bundled.tokenizer.vocab_size
    expected = random_model(bundled.config, seed=1337, sinusoidal_positions=True).state_dict()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, expected[key]), key


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    """The run's pool of random tokens for the induction probe: every token id its training
    split holds (as `engine.training.bilingual_card` measured it)."""
    tokenizer = load_directory(BUNDLED_DIR).tokenizer
    train = [tokenize_works(t, tokenizer) for t, _v in split_by_language(load_bilingual()).values()]
    return seen_ids(np.concatenate(train), tokenizer.eot_id)


@pytest.mark.parametrize("snap", STORED, ids=lambda s: f"step{s.step}")
def test_snapshot_is_the_step_it_claims(snap, pool: np.ndarray) -> None:
    """The induction scores of the stored weights are the ones the run recorded at that step
    (its "curve": 2 seeds of repeated random tokens from the training split's token ids), up
    to the float16 rounding of the weights: a wrong step would differ by far
    more (0.02 -> 0.32 -> 0.65 -> 0.83 across the phase change)."""
    history = read_history()
    assert history is not None
    row = int(np.flatnonzero(history.eval_steps == snap.step)[0])
    loaded = load_snapshot(snap)
    assert len(pool) == 7037  # the run's induction_pool
    measured = induction_scores(loaded, (0, 1), 0, pool).scores  # the curve used 2 seeds
    np.testing.assert_allclose(measured, history.induction[row], atol=0.01, rtol=0)


def test_history_is_the_config_jsons() -> None:
    raw = json.loads((BUNDLED_DIR / "config.json").read_text(encoding="utf-8"))
    card = raw["inside_gpt"]["bilingual_card"]
    history = history_of(raw)
    assert history is not None and history.languages == ("en", "zh")
    assert history.eval_steps.tolist() == [e["step"] for e in card["curve"]]
    assert history.eval_loss["zh"].tolist() == [
        e["languages"]["zh"]["val_loss"] for e in card["curve"]
    ]
    assert history.val_loss["en"].tolist() == [e["val_loss_en"] for e in card["state"]["history"]]
    assert history.induction.shape == (len(card["curve"]), 2, 4)
    assert history_of({"inside_gpt": {"tokenizer": {}}}) is None


def test_load_names_a_snapshot_by_step_the_last_one_is_bundled() -> None:
    """`engine.checkpoints.load` (the command line's --model) takes "bundled@STEP"."""
    from engine.checkpoints import CheckpointError, load

    assert load("bundled@12200").name == "bundled@12200"
    assert load("bundled@12200").stored_dtype == "float16"
    assert load("bundled@20000").name == "bundled"  # the shipped model is the last step
    for bad in ("bundled@5", "bundled@012200", "bundled@x"):
        with pytest.raises(CheckpointError, match="12200"):
            load(bad)
