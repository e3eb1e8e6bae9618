"""ui.widgets.next_stage: from stage 3 of layer 0 the "Next" button visits stages 3-7 of every
layer in turn, then the output page, then Generate; the URL carries stage and layer."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from engine.config import PRESETS
from tests.support import ROOT, new_app
from ui.stages import LAYER_STAGES, STAGE_BY_ID, STAGES, walk_neighbours


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
    click(at, "generate_next")
    assert stage_of(at) == "intervene"
    click(at, "intervene_next")
    assert stage_of(at) == "learning"  # page 11 (issue 18)
    assert "learning_next" not in {b.key for b in at.button}  # the walk ends here


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


def test_next_button_opens_the_following_stage() -> None:
    at = new_app({"text": "hello world"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    at.button(key="tokens_next").click().run()
    assert not at.exception
    assert at.title[0].value == "2 · Embeddings"


def test_previous_from_attention_in_layer_one_goes_to_dropout_of_layer_zero() -> None:
    prev, _ = walk_neighbours("attention", 1, 2)
    assert prev is not None and prev[0].id == "dropout" and prev[1] == 0
    at = new_app({"text": "hello world", "layer": "1"})
    at.switch_page("pages/3_Attention.py")
    at.run()
    labels = [b.label for b in at.button]
    if (ROOT / "pages/7_Dropout.py").is_file():
        assert "← 7 · Dropout (layer 0)" in labels
    assert (
        any(label.startswith("Next: 4 · Feed-forward (layer 1)") for label in labels)
        or not (ROOT / "pages/4_Feed_forward.py").is_file()
    )
