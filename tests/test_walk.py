"""The walk through the layers: from stage 3 of layer 0, the "Next" button visits stages 3-7 of
every layer in turn, then the output page, then Generate; the URL carries stage and layer."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.config import PRESETS
from ui.stages import LAYER_STAGES, STAGE_BY_ID, STAGES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _test_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDE_GPT_TEST_MODEL", "tiny")
    monkeypatch.delenv("INSIDE_GPT_MODELS_DIR", raising=False)
    monkeypatch.delenv("INSIDE_GPT_MAX_TOKENS", raising=False)


def stage_of(at: AppTest) -> str:
    """The stage id of the page on screen, read from its title ("5 · Layer norm")."""
    number = int(at.title[0].value.split(" · ", 1)[0])
    return STAGES[number - 1].id


def click(at: AppTest, key: str) -> AppTest:
    """Click a button on the page on screen. AppTest keeps requesting the page given to its own
    `switch_page` on every later run (even after the script switched pages), so tell it which
    page is on screen first; the click itself then runs as in a browser."""
    at.switch_page(STAGE_BY_ID[stage_of(at)].path)
    at.button(key=key).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_next_from_attention_of_layer_0_visits_every_layer_and_ends_on_the_output() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["text"] = "To be, or not to be: to be."
    at.query_params["layer"] = "0"
    at.switch_page("pages/3_Attention.py")
    at.run()
    n_layer = PRESETS["tiny"].n_layer
    visited = [(stage_of(at), at.session_state["layer"])]
    while stage_of(at) != "output":
        assert len(visited) < 50, visited
        click(at, f"{stage_of(at)}_next")
        visited.append((stage_of(at), at.session_state["layer"]))
        assert at.query_params["layer"] == str(at.session_state["layer"])
    expected = [(s, layer) for layer in range(n_layer) for s in LAYER_STAGES]
    assert visited == [*expected, ("output", n_layer - 1)]
    click(at, "output_next")
    assert stage_of(at) == "generate"
    assert "generate_next" not in {b.key for b in at.button}  # the walk ends here


def test_previous_walks_back_from_the_output_to_the_last_layers_dropout() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["text"] = "hello world"
    at.switch_page("pages/8_Output.py")
    at.run()
    click(at, "output_prev")
    assert stage_of(at) == "dropout"
    assert at.session_state["layer"] == PRESETS["tiny"].n_layer - 1
    click(at, "dropout_prev")
    assert stage_of(at) == "residual"
