"""Page 11, Learning (issue 18 item 2): its curves are the run's recorded history, the step
slider's map is the snapshot's own Trace, the page opens on a snapshot named in the link, and
another model gets a clear notice instead of a dead end. Run on the real bundled model and its
shipped snapshots (the page is about them), not the tiny test model."""

from __future__ import annotations

import ast
import json

import numpy as np
import pytest

from engine.capture import run_with_trace
from engine.checkpoints import BUNDLED_DIR, load_directory
from engine.snapshots import load_snapshot, read_manifest
from tests.support import ROOT, charts, open_page

PAGE = "pages/11_Learning.py"
TEXT = "The little dog ran to the river.\nThe little dog ran to the river."
MANIFEST = read_manifest()
assert MANIFEST is not None


@pytest.fixture(autouse=True)
def _real_bundled_model(tiny_app: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """After tests/pages/conftest.py's tiny model: the shipped bundled model instead."""
    monkeypatch.delenv("INSIDE_GPT_TEST_MODEL", raising=False)


@pytest.fixture(scope="module")
def card() -> dict:
    raw = json.loads((BUNDLED_DIR / "config.json").read_text(encoding="utf-8"))
    return raw["inside_gpt"]["bilingual_card"]


def _y(trace: dict) -> list[float]:
    return np.asarray(trace["y"], dtype=float).tolist()


def test_loss_curves_are_the_stored_history(card: dict) -> None:
    at = open_page(PAGE, TEXT, timeout=120)
    spec = charts(at)["learning_loss_chart"]
    lines = {t["name"]: t for t in spec["data"]}
    curve, history = card["curve"], card["state"]["history"]
    for lang, name in (("en", "English"), ("zh", "Chinese")):
        solid = lines[f"{name}: snapshot evaluation"]
        assert np.asarray(solid["x"]).tolist() == [e["step"] for e in curve]
        assert _y(solid) == [e["languages"][lang]["val_loss"] for e in curve]
        dotted = lines[f"{name}: estimate during training"]
        assert np.asarray(dotted["x"]).tolist() == [e["step"] for e in history]
        assert _y(dotted) == [e[f"val_loss_{lang}"] for e in history]
    assert len(spec["data"]) == 4  # no training-loss curve: the run recorded none
    shapes = spec["layout"]["shapes"]
    assert any(s.get("x0") == 12000 and s.get("x1") == 12500 for s in shapes)  # the band
    assert "phase change →" in [a["text"] for a in spec["layout"]["annotations"]]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_head_score_curves_are_the_stored_history(card: dict, lang: str) -> None:
    at = open_page(PAGE, TEXT, timeout=120, layer="1", head="0")
    if lang == "zh":
        at.radio(key="learning_lang").set_value("zh").run()
    spec = charts(at)["learning_heads_chart"]
    steps = [e["step"] for e in card["curve"]]
    by_panel: dict[str, dict[str, dict]] = {"x": {}, "x2": {}}
    for trace in spec["data"]:
        by_panel["x" if trace.get("xaxis", "x") == "x" else "x2"][trace["name"]] = trace
    for layer in range(2):
        for head in range(4):
            name = f"head {layer}.{head}"
            prev, ind = by_panel["x"][name], by_panel["x2"][name]
            assert np.asarray(prev["x"]).tolist() == steps
            assert _y(prev) == [
                e["languages"][lang]["previous_token"][layer][head] for e in card["curve"]
            ]
            assert _y(ind) == [e["induction"][layer][head] for e in card["curve"]]
            assert (prev["line"]["width"] == 4) == ((layer, head) == (1, 0))  # the chosen head


@pytest.mark.parametrize("step", [0, 12200, 20000])
def test_the_step_sliders_map_is_the_snapshots_trace(step: int) -> None:
    at = open_page(PAGE, TEXT, timeout=120, layer="1", head="0")
    slider = at.select_slider(key="learning_step")
    assert list(slider.options) == [f"{s:,}" for s in MANIFEST.steps]
    slider.set_value(step).run()
    assert not at.exception
    snap = MANIFEST.snapshot(step)
    loaded = load_snapshot(snap) if snap is not None else load_directory(BUNDLED_DIR)
    expected = run_with_trace(loaded.model, loaded.tokenizer, TEXT).get("attn.hook_pattern", 1)[0]
    shown = np.asarray(charts(at)["learning_map_chart"]["data"][0]["z"], dtype=float)
    np.testing.assert_allclose(shown, expected, atol=1e-6)


def test_head_1_0_does_nothing_at_step_0_and_copies_at_the_end() -> None:
    """The lecture's claim, on the page's own table: induction score of head 1.0 on a repeated
    line is small at step 0 and large at the end (measured here: 0.07 and 0.68)."""
    at = open_page(PAGE, TEXT, timeout=120, layer="1", head="0")
    table = at.dataframe[0].value
    rows = dict(zip(table["step"], table["induction"], strict=True))
    assert float(rows["0"]) < 0.15 and float(rows["20,000"]) > 0.5
    assert table["role on your text"].iloc[-1] == "induction"
    assert set(table["step"]) == {f"{s:,}" for s in MANIFEST.steps}


def test_a_snapshot_in_the_link_opens_the_slider_on_its_step() -> None:
    at = open_page(PAGE, TEXT, timeout=120, model="bundled@12200")
    assert at.session_state["model_id"] == "bundled@12200"
    assert at.select_slider(key="learning_step").value == 12200
    assert not at.info  # a model of the run: no notice


def test_another_model_gets_a_notice_and_still_the_bundled_models_history() -> None:
    at = open_page(PAGE, TEXT, timeout=120, model="random")
    assert any("random" in i.value and "no training history" in i.value for i in at.info)
    assert {"learning_loss_chart", "learning_heads_chart", "learning_map_chart"} <= set(charts(at))


def test_step_notes_are_the_manifests() -> None:
    """The page's translatable notes (STEP_NOTES) say what the manifest says, word for word."""
    tree = ast.parse((ROOT / PAGE).read_text(encoding="utf-8"))
    notes = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "STEP_NOTES"
    )
    assert isinstance(notes, ast.Dict)
    in_page = {
        key.value: value.args[0].value  # N_("...") with one (implicitly joined) string
        for key, value in zip(notes.keys, notes.values, strict=True)
    }
    assert in_page == {s.step: s.why for s in MANIFEST.snapshots}


def test_the_page_ends_with_live_training_which_the_operator_can_turn_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 3's section (ui/live_training.py, tested on its own in tests/ui) is on this page:
    its Start button when live training is allowed, a notice and no button when it is not."""
    at = open_page(PAGE, TEXT, timeout=120)
    assert [s.value for s in at.subheader][-1] == "Train one live"
    assert at.button(key="live_training_start").label == "Train a tiny model"
    monkeypatch.setenv("INSIDE_GPT_LIVE_TRAINING", "0")
    at = open_page(PAGE, TEXT, timeout=120)
    assert any("turned off" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "live_training_start"]


def test_the_final_note_gives_both_losses_as_they_were_measured() -> None:
    """The last step's note names the run's own held-out loss and the model card's loss on the
    whole validation set (the home page's), each as recorded: they differ, and both are said."""
    from engine.snapshots import history_of

    raw = json.loads((BUNDLED_DIR / "config.json").read_text(encoding="utf-8"))
    history = history_of(raw)
    assert history is not None
    card = raw["inside_gpt"]["bilingual_card"]["report"]["languages"]
    note = " ".join(
        node.value.args[0].value
        for node in ast.parse((ROOT / PAGE).read_text(encoding="utf-8")).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FINAL_NOTE"
    )
    last = {lang: float(loss[-1]) for lang, loss in history.eval_loss.items()}
    assert history.eval_steps[-1] == MANIFEST.final_step
    assert f"English {last['en']:.2f}, Chinese {last['zh']:.2f}" in note
    assert f"{card['en']['val_loss']:.2f} and {card['zh']['val_loss']:.2f}" in note
