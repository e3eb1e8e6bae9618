"""Each lecture preset's one-line claim (`Preset.why`), checked on the shipped model: the role
labels it says will appear do appear (`engine.lens.heads.HeadScores.label`, what the Attention
page shows), and the token counts it states are the tokenizer's. A claim the model stops
meeting fails here, so the preset is rewritten or dropped rather than left promising."""

from __future__ import annotations

import re

import pytest

from engine.capture import run_with_trace
from engine.checkpoints import BUNDLED_DIR, LoadedModel, load
from engine.lens.heads import HeadScores, head_scores
from ui.text import PRESETS_TEXT, Preset


@pytest.fixture(scope="module")
def bundled() -> LoadedModel:
    loaded = load("bundled")
    assert loaded.source == str(BUNDLED_DIR), "the bundled checkpoint is missing"
    return loaded


def _preset(name: str) -> Preset:
    return next(p for p in PRESETS_TEXT if p.name == name)


def _scores(loaded: LoadedModel, text: str) -> HeadScores:
    ids = loaded.tokenizer.encode(text)[: loaded.config.n_ctx]  # what the app keeps
    return head_scores(run_with_trace(loaded.model, loaded.tokenizer, ids))


def _claimed_heads(claim: str) -> list[tuple[int, int]]:
    """The heads a claim names: "head 1.2" or "heads 1.1 and 1.2"."""
    return [(int(a), int(b)) for a, b in re.findall(r"\b(\d+)\.(\d+)\b", claim)]


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("Plain sentence", "previous-token"),
        ("Repeated line (induction)", "induction"),
        ("Who is who (name tracking)", "induction"),
        ("Mixed English and Chinese", "induction"),
    ],
)
def test_the_heads_a_preset_names_have_the_role_it_names(
    bundled: LoadedModel, name: str, label: str
) -> None:
    preset = _preset(name)
    assert f"{label} head" in preset.why
    heads = _claimed_heads(preset.why)
    assert heads, f"{name}: the claim names no head"
    scores = _scores(bundled, preset.text)
    for layer, head in heads:
        assert scores.label(layer, head) == label, (
            f"{name}: head {layer}.{head} is {scores.label(layer, head)!r}, the claim says {label}"
        )


def test_chinese_sentence_token_count_and_no_role(bundled: LoadedModel) -> None:
    preset = _preset("Chinese sentence")
    n_chars, n_tokens = map(int, re.findall(r"(\d+) (?:characters|byte-level tokens)", preset.why))
    assert n_chars == len(preset.text)
    assert n_tokens == len(bundled.tokenizer.encode(preset.text))
    scores = _scores(bundled, preset.text)
    L, H = scores.previous.shape
    labels = {scores.label(la, h) for la in range(L) for h in range(H)}
    assert labels == {"broad"}, "the claim says no head has a role on this text"


def test_long_paragraph_is_longer_than_the_context(bundled: LoadedModel) -> None:
    preset = _preset("Long paragraph")
    n_tokens, n_ctx = map(int, re.findall(r"(\d+)(?: tokens|-token context)", preset.why))
    assert n_tokens == len(bundled.tokenizer.encode(preset.text))
    assert n_ctx == bundled.config.n_ctx < n_tokens
    assert f"keeps the first {n_ctx}" in preset.why


def test_every_preset_states_a_one_line_claim() -> None:
    tested = {
        "Plain sentence",
        "Repeated line (induction)",
        "Who is who (name tracking)",
        "Mixed English and Chinese",
        "Chinese sentence",
        "Long paragraph",
    }
    assert {p.name for p in PRESETS_TEXT} == tested  # a new preset needs a test of its claim
    for p in PRESETS_TEXT:
        assert p.why and "\n" not in p.why
