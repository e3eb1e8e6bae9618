"""Issue 14's training additions (one array per language, natural-text copy rows, embeddings
without weight decay, weights-only snapshots, per-language validation) and the per-language
probes, on the tiny config and small texts."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.checkpoints import LoadedModel, load_directory, random_model
from engine.config import GPTConfig, TrainConfig
from engine.tokenizer import cl100k_truncated
from engine.training.bilingual import (
    evaluate_bilingual,
    max_embedding_cosine,
    natural_repeat_probability,
    repeat_probabilities,
    repeat_sentences,
)
from engine.training.bilingual_card import bilingual_card_markdown, tokenizer_table
from engine.training.train import _natural_copy_row, get_batch, make_optimizer, train

N_RANKS = 4096
EN = "The small dog ran to the river and drank some cold water. " * 3
ZH = "我们在学习语言模型。" * 3


@pytest.fixture(scope="module")
def wide_loaded(tiny_config: GPTConfig, tiny_loaded: LoadedModel) -> LoadedModel:
    """The tiny shape with a context of 128 (two copies of a sentence must fit), random."""
    config = replace(tiny_config, n_ctx=128)
    return LoadedModel("wide", random_model(config, seed=0), tiny_loaded.tokenizer, "test")


def _cfg(**overrides: object) -> TrainConfig:
    base = TrainConfig(
        max_steps=6,
        batch_size=8,
        seq_len=32,
        warmup_steps=2,
        eval_every=3,
        eval_batches=1,
        seed=3,
        threads=1,
    )
    return replace(base, **overrides)


def test_rows_come_from_both_languages_and_natural_copies_repeat() -> None:
    en = np.arange(0, 1000, dtype=np.int32)  # ids < 1000
    zh = np.arange(2000, 3000, dtype=np.int32)  # ids >= 2000
    cfg = _cfg(synthetic_share=0.25, natural_copy_share=0.5, natural_copy_segment=8)
    x, y = get_batch((en, zh), cfg, step=5, vocab_size=4097, eot_id=N_RANKS)
    assert x.shape == (8, 32) and y.shape == (8, 32)
    natural = x[2:6]  # rows 0-1 random copy task, 2-5 natural copies, 6-7 plain text
    for row in natural:
        r = row.numpy()
        assert (r < 1000).all() or (r >= 2000).all()  # one language per row
        # a run of consecutive ids, then the same run again
        breaks = np.nonzero(np.diff(r) != 1)[0]
        first = r[: breaks[0] + 1]
        assert np.array_equal(r[breaks[0] + 1 : breaks[0] + 1 + len(first)], first)
    assert (y[2:6] >= 0).all()  # every natural-copy target is scored
    langs = {bool((row < 1000).all()) for row in x[2:].numpy()}
    assert langs == {True, False}  # both languages occur in this batch


def test_natural_copy_row_lengths() -> None:
    rng = np.random.default_rng(0)
    data = np.arange(500, dtype=np.int32)
    row, targets = _natural_copy_row(rng, data, 40, 16)
    assert row.shape == (41,) and np.array_equal(targets, row[1:])
    n = int(np.nonzero(np.diff(row) != 1)[0][0]) + 1
    assert 4 <= n <= 16 and np.array_equal(row[n : 2 * n], row[:n])


def test_embeddings_can_skip_weight_decay(tiny_config: GPTConfig) -> None:
    model = random_model(tiny_config, seed=0)
    for decay, expected in ((True, 0.1), (False, 0.0)):
        opt = make_optimizer(model, _cfg(weight_decay=0.1, decay_embeddings=decay))
        group = next(
            g
            for g in opt.param_groups
            if any(p is model.transformer.wte.weight for p in g["params"])
        )
        assert group["weight_decay"] == expected
    # the attention matrices are decayed either way
    opt = make_optimizer(model, _cfg(decay_embeddings=False))
    w = model.transformer.h[0].attn.c_attn.weight
    assert next(g for g in opt.param_groups if any(p is w for p in g["params"]))[
        "weight_decay"
    ] == pytest.approx(0.1)


def test_per_language_validation_and_snapshots(tiny_config: GPTConfig, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    en, zh = rng.integers(0, 2000, 3000), rng.integers(2000, 4096, 3000)
    cfg = _cfg(snapshot_every=2, natural_copy_share=0.25)
    train(tiny_config, cfg, (en, zh), {"en": en[:400], "zh": zh[:400]}, tmp_path, N_RANKS, N_RANKS)
    snaps = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert snaps == ["step_000002", "step_000004", "step_000006"]
    assert not (tmp_path / "snapshots" / "step_000002" / "optimizer.safetensors").exists()
    final = load_directory(tmp_path).model
    last = load_directory(tmp_path / "snapshots" / "step_000006").model
    assert torch.equal(final.transformer.wte.weight, last.transformer.wte.weight)
    history = json.loads((tmp_path / "train_state.json").read_text())["state"]["history"]
    assert [h["step"] for h in history] == [3, 6]
    h = history[-1]
    assert h["val_loss"] == pytest.approx((h["val_loss_en"] + h["val_loss_zh"]) / 2)


def test_natural_copy_share_is_checked() -> None:
    with pytest.raises(ValueError, match="natural_copy_share"):
        _cfg(synthetic_share=0.6, natural_copy_share=0.5)


def test_repeat_probabilities_match_a_direct_forward(wide_loaded: LoadedModel) -> None:
    tiny_loaded = wide_loaded
    tok = tiny_loaded.tokenizer
    sentence = tok.encode("The small dog ran to the river and drank some cold water today.")
    probs = repeat_probabilities(tiny_loaded, sentence)
    ids = sentence + tok.encode("\n") + sentence
    with torch.no_grad():
        logits = tiny_loaded.model(torch.tensor([ids]))[0].double()
    p = torch.softmax(logits, -1).numpy()
    start = len(sentence) + 1
    expected = [p[i, ids[i + 1]] for i in range(start, len(ids) - 1)]
    assert len(probs) == len(sentence) - 1
    np.testing.assert_allclose(probs, expected, rtol=1e-9)
    assert natural_repeat_probability(tiny_loaded, [sentence]) == pytest.approx(probs.mean())


def test_repeat_sentences_filter_by_language_and_length(tiny_loaded: LoadedModel) -> None:
    tok = tiny_loaded.tokenizer
    en = repeat_sentences([EN + " Short one."], "en", tok, n=50)
    assert all(12 <= len(s) <= 60 for s in en) and len(en) == 3
    zh = repeat_sentences([ZH + "好。"], "zh", tok, n=2)  # 28 tokens each; "好。" too short
    assert len(zh) == 2 and tok.decode(zh[0]).endswith("。")
    with pytest.raises(ValueError, match="no en sentence"):
        repeat_sentences(["Too short."], "en", tok)


def test_max_embedding_cosine_finds_a_planted_twin(tiny_config: GPTConfig) -> None:
    model = random_model(tiny_config, seed=0)
    with torch.no_grad():
        model.transformer.wte.weight[77] = 3.0 * model.transformer.wte.weight[1234]
    loaded = LoadedModel("t", model, None, "test")  # type: ignore[arg-type]
    cos, a, b = max_embedding_cosine(loaded, np.array([5, 77, 1234, 2000, 77]), block=2)
    assert cos == pytest.approx(1.0) and {a, b} == {77, 1234}
    cos2, _, _ = max_embedding_cosine(loaded, np.array([5, 77, 2000]))
    assert cos2 < 0.5


def test_evaluate_bilingual_reports_every_bar(wide_loaded: LoadedModel) -> None:
    tiny_loaded = wide_loaded
    tok = tiny_loaded.tokenizer
    ids = {
        lang: np.asarray(tok.encode(t * 3), dtype=np.int64) for lang, t in (("en", EN), ("zh", ZH))
    }
    report = evaluate_bilingual(
        tiny_loaded,
        ids,
        ids,
        {"en": [EN], "zh": [ZH]},
        n_prev_windows=2,
        induction_seeds=(0,),
    )
    assert set(report.languages) == {"en", "zh"}
    bars = report.bars()
    assert len(bars) == 8 and not all(bars.values())  # an untrained model meets few bars
    d = report.to_dict()
    assert d["languages"]["zh"]["repeat_sentences"] == 3
    assert 0.0 < d["languages"]["en"]["natural_repeat"] < 0.05  # about 1 / 4097 when random


def test_tokenizer_table_measures_each_language(tiny_config: GPTConfig) -> None:
    texts = {"en": ["The cat sat on the mat."], "zh": ["我们在学习。"]}
    rows = tokenizer_table(texts, replace(tiny_config, tie_word_embeddings=False), (4096,))
    (row,) = rows
    tok_en = len(cl100k_truncated(N_RANKS).encode("The cat sat on the mat."))
    assert row["chars_per_token_en"] == round(23 / tok_en, 3)
    assert row["chars_per_token_zh"] < 1.0  # Chinese: byte-level tokens at 4,096 ranks
    assert " said" in row["one_token_words"] and " cat" not in row["one_token_words"]
    assert row["embedding_params"] == 2 * 4097 * tiny_config.d_model  # untied: two matrices


def test_card_markdown_shows_the_reports_numbers_and_every_bar(wide_loaded: LoadedModel) -> None:
    tok = wide_loaded.tokenizer
    ids = {
        lang: np.asarray(tok.encode(t * 3), dtype=np.int64) for lang, t in (("en", EN), ("zh", ZH))
    }
    report = evaluate_bilingual(
        wide_loaded, ids, ids, {"en": [EN], "zh": [ZH]}, n_prev_windows=2, induction_seeds=(0,)
    ).to_dict()
    tc = TrainConfig(max_steps=10, natural_copy_share=0.25, synthetic_share=0.25)
    md = bilingual_card_markdown(
        report,
        wide_loaded.config,
        tok.name,
        {"step": 10, "tokens_seen": 1000, "elapsed_s": 60.0, "history": []},
        asdict(tc),
        "python -m engine train ...",
        tokenizers=[],
        speed={},
        corpus_rows=[],
        curve=[],
        samples=[{"prompt": "我们", "kind": "greedy", "text": "在"}],
        machine="test machine",
        wall_clock_s=None,
    )
    assert "step 10 of 10" in md
    for what in report["bars"]:
        assert f"- {what}: **NOT met**" in md or f"- {what}: **met**" in md
    en = report["languages"]["en"]
    assert f"| **this model** | {en['val_loss']:.3f} |" in md
    assert f"{en['natural_repeat']:.3f} ({en['repeat_sentences']} sentences)" in md
    assert "`我们` (greedy): 我们**在**" in md


def test_training_on_the_tests_device_matches_the_cpu_and_resumes_across_devices(
    tiny_config: GPTConfig, tmp_path: Path, device: torch.device
) -> None:
    """`pytest --device cuda` trains on the GPU: same losses as the CPU run within float
    tolerance, and a checkpoint written there resumes on the CPU."""
    rng = np.random.default_rng(2)
    en, zh = rng.integers(0, 2000, 3000), rng.integers(2000, 4096, 3000)
    cfg = _cfg(max_steps=4, eval_every=2, natural_copy_share=0.25, synthetic_share=0.25)
    val = {"en": en[:300], "zh": zh[:300]}
    cpu_model, cpu_state = train(
        tiny_config, cfg, (en, zh), val, tmp_path / "cpu", N_RANKS, N_RANKS
    )
    dev_model, dev_state = train(
        tiny_config,
        cfg,
        (en, zh),
        val,
        tmp_path / "dev",
        N_RANKS,
        N_RANKS,
        device=device,
        stop_at=2,
    )
    assert dev_state.step == 2 and next(dev_model.parameters()).device.type == device.type
    resumed, state = train(tiny_config, cfg, (en, zh), val, tmp_path / "dev", N_RANKS, N_RANKS)
    assert state.step == 4
    for a, b in zip(cpu_state.history, state.history, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-3)
    torch.testing.assert_close(
        resumed.transformer.wte.weight, cpu_model.transformer.wte.weight, atol=1e-4, rtol=0
    )
