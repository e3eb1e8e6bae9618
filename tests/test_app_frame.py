"""The shared frame (ui/, started from app.py) in AppTest: home page, sidebar, query parameters,
caching, model choice, notices and the walk between stages. Runs on the tiny test model
(INSIDE_GPT_TEST_MODEL=tiny), so every run takes a fraction of a second."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.capture import run_with_trace
from engine.card import ModelCard
from engine.checkpoints import LoadedModel, random_model, save_checkpoint
from engine.config import PRESETS
from tests.support import values
from ui.cache import TRACE_COMPUTATIONS, load_model
from ui.home import model_card_rows
from ui.models import available_models, model_key
from ui.stages import STAGE_BY_ID, STAGES, walk_neighbours
from ui.text import PRESETS_TEXT

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _test_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDE_GPT_TEST_MODEL", "tiny")
    monkeypatch.delenv("INSIDE_GPT_MODELS_DIR", raising=False)
    monkeypatch.delenv("INSIDE_GPT_ALLOW_PATHS", raising=False)
    monkeypatch.delenv("INSIDE_GPT_MAX_TOKENS", raising=False)


def new_app(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def unique_text(prefix: str = "The cat sat on the mat") -> str:
    return f"{prefix} {uuid.uuid4().hex[:6]}"


# --- pure parts ----------------------------------------------------------------------------


def test_stages_follow_the_flowchart_and_name_their_pages() -> None:
    assert [s.id for s in STAGES] == [
        "tokens",
        "embeddings",
        "attention",
        "feed_forward",
        "layer_norm",
        "residual",
        "dropout",
        "output",
        "generate",
    ]
    assert [s.number for s in STAGES] == list(range(1, 10))
    assert STAGE_BY_ID["attention"].path == "pages/3_Attention.py"
    assert STAGE_BY_ID["attention"].url_path == "Attention"
    assert STAGE_BY_ID["feed_forward"].url_path == "Feed_forward"
    for stage in STAGES[:3]:
        assert (ROOT / stage.path).is_file()


def test_walk_goes_through_every_layer_then_to_the_output() -> None:
    def nxt(stage: str, layer: int) -> tuple[str, int] | None:
        step = walk_neighbours(stage, layer, n_layer=3)[1]
        return None if step is None else (step[0].id, step[1])

    def prev(stage: str, layer: int) -> tuple[str, int] | None:
        step = walk_neighbours(stage, layer, n_layer=3)[0]
        return None if step is None else (step[0].id, step[1])

    assert nxt("tokens", 0) == ("embeddings", 0)
    assert nxt("embeddings", 2) == ("attention", 2)
    assert nxt("attention", 1) == ("feed_forward", 1)
    assert nxt("residual", 1) == ("dropout", 1)
    assert nxt("dropout", 0) == ("attention", 1)
    assert nxt("dropout", 2) == ("output", 2)
    assert nxt("output", 2) == ("generate", 2)
    assert nxt("generate", 2) is None
    assert prev("tokens", 0) is None
    assert prev("attention", 1) == ("dropout", 0)
    assert prev("attention", 0) == ("embeddings", 0)
    assert prev("output", 0) == ("dropout", 2)


def test_available_models_lists_directories_with_a_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text("{}")
    (tmp_path / "not_a_model").mkdir()
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(tmp_path))
    assert available_models() == ["bundled", "random", "gpt2"]


# --- home ----------------------------------------------------------------------------------


def test_home_page_shows_the_flowchart_and_the_model_card() -> None:
    at = new_app()
    at.run()
    assert not at.exception
    assert at.title[0].value.endswith("Inside GPT")
    pages_on_disk = [s for s in STAGES if (ROOT / s.path).is_file()]
    sidebar = [(pl.proto.page, pl.proto.label) for pl in at.sidebar.get("page_link")]
    assert sidebar[0][1] == "Inside GPT: home"
    assert [label for _, label in sidebar[1:]] == [s.label for s in pages_on_disk]
    assert [page for page, _ in sidebar[1:]] == [s.url_path for s in pages_on_disk]
    body = [(pl.proto.page, pl.proto.label) for pl in at.main.get("page_link")]
    assert ("Tokens", "Start the walk: 1 · Input & tokens") in body
    assert [page for page, _ in body[: len(pages_on_disk)]] != []
    for stage in pages_on_disk:
        assert (stage.url_path, f"{stage.number} · {stage.short_title}") in body
    card = at.table[0].value
    values = dict(zip(card.iloc[:, 0], card.iloc[:, 1], strict=True))
    tiny = PRESETS["tiny"]
    assert values["Layers (blocks)"] == str(tiny.n_layer)
    assert values["Attention heads per layer"] == str(tiny.n_head)
    assert values["Width of the residual stream (d_model)"] == str(tiny.d_model)
    assert values["Context (longest text it reads)"] == f"{tiny.n_ctx} tokens"
    assert values["Parameters"] == f"{tiny.n_params():,}"
    assert values["Vocabulary"].startswith(f"{tiny.vocab_size:,} tokens")


def test_model_card_reads_the_validation_loss_from_the_card() -> None:
    loaded = load_model("bundled")
    with_loss = LoadedModel(
        name="x",
        model=loaded.model,
        tokenizer=loaded.tokenizer,
        source="nowhere",
        card=ModelCard(trained_on="Shakespeare", val_loss=3.71234),
    )
    rows = dict(model_card_rows(with_loss))
    assert rows["Validation loss (nats per token)"] == "3.712"
    assert rows["Trained on"] == "Shakespeare"


# --- query parameters and shared state -----------------------------------------------------


def test_query_parameters_set_the_view_and_are_written_back(tiny_loaded: LoadedModel) -> None:
    text = unique_text()
    at = new_app({"text": text, "layer": "1", "head": "1", "pos": "3"})
    at.switch_page("pages/3_Attention.py")
    at.run()
    assert not at.exception
    assert at.session_state["text"] == text
    assert (at.session_state["layer"], at.session_state["head"], at.session_state["pos"]) == (
        1,
        1,
        3,
    )
    assert at.query_params["text"] == [text] or at.query_params["text"] == text
    trace = run_with_trace(tiny_loaded.model, tiny_loaded.tokenizer, text)
    big = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("Layer 1, head 1"))
    np.testing.assert_allclose(
        values(big["data"][0]["z"]),
        trace.get("attn.hook_pattern", 1)[1],
        atol=1e-6,
    )


def test_out_of_range_and_malformed_query_values_are_clamped_or_reported() -> None:
    at = new_app({"text": "hello world", "layer": "99", "head": "-4", "pos": "abc"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    assert not at.exception
    assert at.session_state["layer"] == PRESETS["tiny"].n_layer - 1
    assert at.session_state["head"] == 0
    assert any("pos='abc'" in w.value for w in at.warning)
    params = at.query_params
    assert params["layer"] in ("1", ["1"])


def test_sidebar_changes_update_state_and_url() -> None:
    at = new_app({"text": unique_text()})
    at.switch_page("pages/3_Attention.py")
    at.run()
    at.button(key="_w_layer_next").click().run()
    assert at.session_state["layer"] == 1
    assert at.query_params["layer"] in ("1", ["1"])
    at.number_input(key="_w_head").set_value(1).run()
    assert at.session_state["head"] == 1
    assert at.query_params["head"] in ("1", ["1"])
    at.button(key="_w_layer_prev").click().run()
    assert at.session_state["layer"] == 0
    assert not at.exception


def test_a_preset_replaces_the_text_everywhere() -> None:
    at = new_app()
    at.switch_page("pages/1_Tokens.py")
    at.run()
    chinese = next(p for p in PRESETS_TEXT if p.name == "Chinese sentence")
    at.selectbox(key="_w_preset").set_value(chinese.name).run()
    assert not at.exception
    assert at.session_state["text"] == chinese.text
    assert at.text_area(key="_w_text").value == chinese.text
    assert at.query_params["text"] in (chinese.text, [chinese.text])
    assert at.selectbox(key="_w_preset").value is None


def test_typed_text_is_shared_by_the_next_page() -> None:
    at = new_app()
    at.switch_page("pages/1_Tokens.py")
    at.run()
    text = unique_text("Typed by hand")
    at.text_area(key="_w_text").input(text).run()
    assert at.session_state["text"] == text
    at.switch_page("pages/2_Embeddings.py")
    at.run()
    assert at.session_state["text"] == text
    assert at.text_area(key="_w_text").value == text


def test_page_switches_and_selection_changes_do_not_recompute_the_trace() -> None:
    text = unique_text()
    key = (model_key("bundled"), text)
    at = new_app({"text": text})
    at.run()
    for page in ("pages/1_Tokens.py", "pages/2_Embeddings.py", "pages/3_Attention.py"):
        at.switch_page(page)
        at.run()
        assert not at.exception
    at.number_input(key="_w_head").set_value(1).run()
    at.button(key="_w_layer_next").click().run()
    assert TRACE_COMPUTATIONS[key] == 1
    at.text_area(key="_w_text").input(text + " more").run()
    assert TRACE_COMPUTATIONS[(key[0], text + " more")] == 1


def test_text_set_in_session_state_reaches_the_text_box() -> None:
    at = new_app({"text": "first"})
    at.run()
    at.session_state["text"] = "unused"
    at.run()
    assert at.text_area(key="_w_text").value == "unused"


# --- notices -------------------------------------------------------------------------------


def test_empty_text_shows_a_friendly_prompt_not_an_error() -> None:
    at = new_app({"text": "   "})
    at.switch_page("pages/3_Attention.py")
    at.run()
    assert not at.exception
    assert not at.error
    assert any("Type a text" in i.value for i in at.info)
    assert not at.get("plotly_chart")
    assert at.text_area(key="_w_text").value == "   "


def test_text_longer_than_the_context_says_how_many_tokens_were_kept(
    tiny_loaded: LoadedModel,
) -> None:
    long_text = next(p for p in PRESETS_TEXT if p.name == "Long paragraph").text
    n_total = len(tiny_loaded.tokenizer.encode(long_text))
    n_ctx = PRESETS["tiny"].n_ctx
    assert n_total > n_ctx
    at = new_app({"text": long_text})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    assert not at.exception
    notice = " ".join(w.value for w in at.warning)
    assert f"{n_total} tokens" in notice
    assert f"first {n_ctx}" in notice
    assert f"last {n_total - n_ctx}" in notice
    assert at.text_area(key="_w_text").value == long_text


# --- model choice --------------------------------------------------------------------------


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
    token_map = charts(at)[0]
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


# --- walking -------------------------------------------------------------------------------


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


def test_the_selected_last_token_follows_the_end_when_the_text_grows() -> None:
    at = new_app({"text": "one two"})
    at.switch_page("pages/1_Tokens.py")
    at.run()
    n_before = at.session_state["_n_tokens"]
    assert at.session_state["pos"] == n_before - 1
    at.text_area(key="_w_text").input("one two three four").run()
    assert at.session_state["pos"] == at.session_state["_n_tokens"] - 1 > n_before - 1
    at.selectbox(key="tokens_pos").set_value(0).run()
    at.text_area(key="_w_text").input("one two three four five").run()
    assert at.session_state["pos"] == 0
