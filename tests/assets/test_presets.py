"""Each lecture preset's one-line claim (`Preset.why`), checked on the shipped model: the role
labels it says will appear do appear (`engine.lens.heads.HeadScores.label`, what the Attention
page shows), the predictions it states are the model's, and the token counts it states are the
tokenizer's. A claim the model stops
meeting fails here, so the preset is rewritten or dropped rather than left promising."""

from __future__ import annotations

import re

import pytest
import torch

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
    # one digit each side, so a probability such as "0.01" is not read as a head
    return [(int(a), int(b)) for a, b in re.findall(r"(?<![\d.])(\d)\.(\d)(?![\d.])", claim)]


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("Plain sentence", "previous-token"),
        ("Repeated line (induction)", "induction"),
        ("Repeated line in Chinese (induction)", "induction"),
        ("Who is who (name tracking)", "induction"),
        ("Chinese sentence", "previous-token"),
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


def _logits(loaded: LoadedModel, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return loaded.model(torch.tensor([ids]))[0]


@pytest.mark.parametrize(
    "name", ["Repeated line (induction)", "Repeated line in Chinese (induction)"]
)
def test_a_repeated_line_is_predicted_where_the_claim_says(bundled: LoadedModel, name: str) -> None:
    """ "right at R of N places": from the second line's first token on, the model's most probable
    next token is the true one at R of the N positions that have a next token."""
    preset = _preset(name)
    right_claimed, places = map(
        int, re.search(r"right at (\d+) of (\d+) places", preset.why).groups()
    )
    ids = bundled.tokenizer.encode(preset.text)
    newline = next(i for i, t in enumerate(ids) if "\n" in bundled.tokenizer.decode([t]))
    start = newline + 1
    top = _logits(bundled, ids).argmax(-1).tolist()
    right = sum(top[p] == ids[p + 1] for p in range(start, len(ids) - 1))
    assert (right, len(ids) - 1 - start) == (right_claimed, places)
    assert right / places >= 0.5  # a claim of copying that is mostly wrong would be dropped


def test_names_are_completed_but_not_foreseen(bundled: LoadedModel) -> None:
    preset = _preset("Who is who (name tracking)")
    tok = bundled.tokenizer
    ids = tok.encode(preset.text)
    r = len(ids) - 3  # " R" "ome" "o": the second Romeo, the text's last three tokens
    assert [tok.decode([i]) for i in ids[r:]] == [" R", "ome", "o"]
    assert tok.decode(ids).count("Romeo") == 2
    logits = _logits(bundled, ids)
    p_r = torch.softmax(logits[r - 1], -1)[ids[r]].item()
    assert p_r < 0.01 and "below 0.01" in preset.why
    assert logits[r].argmax().item() == ids[r + 1] and logits[r + 1].argmax().item() == ids[r + 2]


def test_mixed_text_predicts_sat_after_the_second_the_cat(bundled: LoadedModel) -> None:
    preset = _preset("Mixed English and Chinese")
    tok = bundled.tokenizer
    ids = tok.encode(preset.text)
    assert tok.decode([ids[-1]]) == " sat" and tok.decode(ids[-3:-1]) == " cat"
    assert _logits(bundled, ids)[-2].argmax().item() == ids[-1]
    assert '"␣sat"' in preset.why


def test_chinese_sentence_token_count(bundled: LoadedModel) -> None:
    preset = _preset("Chinese sentence")
    n_chars, n_tokens = map(int, re.findall(r"(\d+) (?:characters|byte-level tokens)", preset.why))
    assert n_chars == len(preset.text)
    assert n_tokens == len(bundled.tokenizer.encode(preset.text))


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
        "Repeated line in Chinese (induction)",
        "Who is who (name tracking)",
        "Mixed English and Chinese",
        "Chinese sentence",
        "Long paragraph",
    }
    assert {p.name for p in PRESETS_TEXT} == tested  # a new preset needs a test of its claim
    for p in PRESETS_TEXT:
        assert p.why and "\n" not in p.why
