"""ui.models: which models are offered, loading from the models folder, broken directories and
unknown names, the operator's path box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.capture import run_with_trace
from engine.checkpoints import random_model, save_checkpoint
from engine.config import PRESETS
from tests.support import chart_list, new_app, unique_text, values
from ui.cache import load_model
from ui.models import available_models, snapshot_models


def test_available_models_lists_directories_with_a_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text("{}")
    (tmp_path / "not_a_model").mkdir()
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(tmp_path))
    assert available_models() == ["bundled", *snapshot_models(), "random", "gpt2"]


def test_a_gpt2_directory_from_the_models_folder_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = random_model(PRESETS["tiny"], seed=5)
    save_checkpoint(model, tmp_path / "mini", n_ranks=PRESETS["tiny"].vocab_size - 1)
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(tmp_path))
    text = unique_text()
    at = new_app({"text": text, "model": "mini"})
    at.switch_page("pages/2_Embeddings.py")
    at.run()
    assert not at.exception
    assert not at.error
    assert at.session_state["model_id"] == "mini"
    loaded = load_model("mini")
    expected = run_with_trace(loaded.model, loaded.tokenizer, text)
    token_map = chart_list(at)[0]
    np.testing.assert_allclose(values(token_map["data"][0]["z"]), expected["hook_embed"], atol=1e-6)


def test_a_broken_model_directory_gives_a_message_and_keeps_the_previous_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"model_type": "bert"}')
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(tmp_path))
    at = new_app({"text": "hello there"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    at.selectbox(key="_w_model").set_value("broken").run()
    assert not at.exception
    assert any("broken" in e.value and "gpt2" in e.value for e in at.error)
    assert at.session_state["model_id"] == "bundled"
    assert at.get("plotly_chart")  # the page still draws with the previous model
    assert at.session_state["text"] == "hello there"


def test_an_unknown_model_in_a_link_is_reported() -> None:
    at = new_app({"text": "hello", "model": "../../etc"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    assert not at.exception
    assert at.session_state["model_id"] == "bundled"
    assert any("../../etc" in w.value for w in at.warning)


def test_a_directory_path_box_appears_only_when_the_operator_allows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = new_app({"text": "hello"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    assert not [t for t in at.text_input if t.key == "_w_path"]
    save_checkpoint(random_model(PRESETS["tiny"], seed=7), tmp_path / "anywhere", n_ranks=4096)
    monkeypatch.setenv("INSIDE_GPT_ALLOW_PATHS", "1")
    at = new_app({"text": "hello"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    at.text_input(key="_w_path").input(str(tmp_path / "anywhere")).run()
    assert not at.exception
    assert not at.error
    assert at.session_state["model_id"] == str(tmp_path / "anywhere")
    at.text_input(key="_w_path").input(str(tmp_path / "missing")).run()
    assert any("is not a directory" in e.value for e in at.error)
    assert at.session_state["model_id"] == str(tmp_path / "anywhere")


def test_a_device_the_machine_cannot_use_is_named_and_nothing_crashes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INSIDE_GPT_DEVICE", "gpu")
    at = new_app({"text": "hello there", "model": "random"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(e.value for e in [*at.error, *at.warning]).replace("\\", "")
    assert "INSIDE_GPT_DEVICE" in shown and "'gpu'" in shown
    monkeypatch.setenv("INSIDE_GPT_DEVICE", "auto")
    at = new_app({"text": "hello there", "model": "random"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    assert not at.exception and not at.error


def test_a_training_snapshot_is_a_model_and_its_link_round_trips() -> None:
    """Issue 18: "bundled@12000" is offered, labelled with its step, loaded from
    assets/snapshots (float16, said in the sidebar) and written back into the link."""
    assert "bundled@0" in snapshot_models() and "bundled@12000" in snapshot_models()
    at = new_app({"text": "hello there", "model": "bundled@12000"})
    at.switch_page("pages/3_Attention.py")
    at.run()
    assert not at.exception and not at.error and not at.warning
    assert at.session_state["model_id"] == "bundled@12000"
    assert at.query_params["model"] == ["bundled@12000"] or at.query_params["model"] == (
        "bundled@12000"
    )
    box = at.selectbox(key="_w_model")
    assert box.value == "bundled@12000"
    assert "bundled, step 12,000" in box.options
    assert any("float16" in c.value for c in at.sidebar.caption)
    loaded = load_model("bundled@12000")
    expected = run_with_trace(loaded.model, loaded.tokenizer, "hello there")
    grid = chart_list(at)[0]
    np.testing.assert_allclose(
        values(grid["data"][0]["z"]), expected.get("attn.hook_pattern", 0)[0], atol=1e-6
    )


@pytest.mark.parametrize("asked", ["bundled@12345", "bundled@012000", "bundled@-1", "bundled@"])
def test_an_unknown_training_step_in_a_link_is_refused_politely(asked: str) -> None:
    at = new_app({"text": "keep this text", "model": asked})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    assert not at.exception and not at.error
    assert at.session_state["model_id"] == "bundled"
    assert at.session_state["text"] == "keep this text"
    shown = " ".join(w.value for w in at.warning)
    assert "12,000" in shown and "20,000" in shown  # the steps this server ships


def test_a_link_to_the_last_step_opens_the_bundled_model() -> None:
    at = new_app({"text": "hello there", "model": "bundled@20000"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    assert not at.exception and not at.warning
    assert at.session_state["model_id"] == "bundled"


# Text the sidebar's model box shows whole, in `ui.widgets.text_px` units (measured in
# Chromium at 1400 and 1024 px, the sidebar's width being the same: the box showed "bundled
# (trained on English and C", 230 units, of a longer label).
MODEL_BOX_PX = 230


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("trained", [True, False])
def test_every_built_in_model_s_name_fits_the_sidebar_box(
    lang: str, trained: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ui.models as models
    from ui.i18n import use_language
    from ui.widgets import text_px

    if not trained:  # no bundled checkpoint: the box says the weights are random
        monkeypatch.setattr(models, "test_model", lambda: None)
        monkeypatch.setattr(models, "BUNDLED_DIR", tmp_path)
    with use_language(lang):
        labels = {m: models.model_label(m) for m in ["bundled", *snapshot_models(), "random"]}
    if lang == "en":
        want = "bundled (English and Chinese)" if trained else "bundled (random weights)"
        assert labels["bundled"] == want
    wide = {m: (label, text_px(label)) for m, label in labels.items()}
    assert all(px <= MODEL_BOX_PX for _label, px in wide.values()), wide
