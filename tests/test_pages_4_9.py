"""Stage pages 4-9 in AppTest, started from app.py on the tiny test model: no exception, and
every figure's data equals the Trace's (or the engine's) numbers for the same text."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel
from engine.dropout_demo import dropout_pass
from engine.figures.common import plotly_text, token_labels
from engine.figures.output import cell_word
from engine.lens.feed_forward import top_neurons
from engine.lens.logit_lens import final_probs, lens_distribution, logit_lens
from engine.model import GPT
from engine.sampling import SamplingSettings, next_token_distribution, sample_next
from engine.trace import Trace
from ui.stages import STAGES

ROOT = Path(__file__).resolve().parent.parent
TEXT = "The cat sat on the mat. The cat sat on the"
CHINESE = "我们在学习大型语言模型。"


@pytest.fixture(autouse=True)
def _test_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDE_GPT_TEST_MODEL", "tiny")
    monkeypatch.delenv("INSIDE_GPT_MODELS_DIR", raising=False)
    monkeypatch.delenv("INSIDE_GPT_MAX_TOKENS", raising=False)


def open_page(page: str, text: str = TEXT, **query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["text"] = text
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def decode(value: object) -> object:
    """Plotly sends numpy arrays as {"dtype", "bdata" (base64), "shape"}; lists stay lists."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        if "shape" in value:
            arr = arr.reshape([int(n) for n in str(value["shape"]).split(",")])
        return arr
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def charts(at: AppTest) -> dict[str, dict]:
    """Every plotly chart on the page by its key, as the JSON the browser receives (arrays
    decoded)."""
    return {c.key: decode(json.loads(c.proto.spec)) for c in at.get("plotly_chart")}


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    """The page's table that has `column` (AppTest does not expose dataframe keys)."""
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with a column {column!r}")


def reference(loaded: LoadedModel, text: str = TEXT) -> Trace:
    """The Trace the app computes for `text` (tests' tiny model = the app's tiny "bundled")."""
    return run_with_trace(loaded.model, loaded.tokenizer, text)


def z_of(spec: dict, i: int = 0) -> np.ndarray:
    return np.array(spec["data"][i]["z"], dtype=np.float64)


# --- 4 · Feed-forward --------------------------------------------------------------------------


def test_feed_forward_page_draws_the_selected_layers_hidden_units(
    tiny_loaded: LoadedModel,
) -> None:
    at = open_page("pages/4_Feed_forward.py", layer="1", pos="3")
    assert at.title[0].value == "4 · Feed-forward"
    assert at.latex
    ref = reference(tiny_loaded)
    c = charts(at)
    post = ref.get("mlp.hook_post", 1)
    ids = top_neurons(post, 24, "selective")  # the page's default ranking
    np.testing.assert_allclose(z_of(c["feed_forward_map"]), post[:, ids].T, rtol=1e-5, atol=1e-6)
    assert c["feed_forward_map"]["data"][0]["x"] == token_labels(ref.token_strs)
    hist = c["feed_forward_hist"]["data"]
    np.testing.assert_allclose(hist[0]["x"], ref.get("mlp.hook_pre", 1)[3], rtol=1e-5)
    norms = [np.linalg.norm(ref.get("hook_mlp_out", i), axis=-1) for i in range(2)]
    np.testing.assert_allclose(z_of(c["feed_forward_norms"]), norms, rtol=1e-4)
    at.session_state["layer"] = 0
    at.run()
    np.testing.assert_allclose(
        z_of(charts(at)["feed_forward_map"]),
        ref.get("mlp.hook_post", 0)[:, top_neurons(ref.get("mlp.hook_post", 0), 24, "selective")].T,
        rtol=1e-5,
        atol=1e-6,
    )


# --- 5 · Layer norm ----------------------------------------------------------------------------


def test_layer_norm_page_shows_numpys_statistics_of_each_layer_norms_input(
    tiny_loaded: LoadedModel,
) -> None:
    at = open_page("pages/5_Layer_norm.py", layer="0", pos="2")
    assert at.title[0].value == "5 · Layer norm"
    assert any("before" in i.value and "pre-norm" in i.value for i in at.info)
    ref = reference(tiny_loaded)
    radio = at.radio(key="layer_norm_which")
    assert list(radio.options) == [
        "ln_1 of layer 0 (before attention)",
        "ln_2 of layer 0 (before the feed-forward block)",
    ]
    stats = charts(at)["layer_norm_stats"]["data"]
    x = ref.get("hook_resid_pre", 0).astype(np.float64)
    np.testing.assert_allclose(stats[0]["y"], x.mean(-1), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(stats[1]["y"], x.std(-1), rtol=1e-4)
    radio.set_value("ln2").run()
    stats = charts(at)["layer_norm_stats"]["data"]
    np.testing.assert_allclose(
        stats[1]["y"], ref.get("hook_resid_mid", 0).astype(np.float64).std(-1), rtol=1e-4
    )
    steps = charts(at)["layer_norm_steps"]["data"]
    np.testing.assert_allclose(steps[1]["y"], ref.get("ln2.hook_normalized", 0)[2], rtol=1e-4)


def test_the_final_layer_norm_is_offered_on_the_last_layer(tiny_loaded: LoadedModel) -> None:
    at = open_page("pages/5_Layer_norm.py", layer="1")
    radio = at.radio(key="layer_norm_which")
    assert len(radio.options) == 3
    radio.set_value("ln_final").run()
    assert not at.exception
    ref = reference(tiny_loaded)
    stats = charts(at)["layer_norm_stats"]["data"]
    final = ref.get("hook_resid_post", 1).astype(np.float64)
    np.testing.assert_allclose(stats[1]["y"], final.std(-1), rtol=1e-4)
    ln_f = tiny_loaded.model.transformer.ln_f
    gb = charts(at)["layer_norm_gamma_beta"]["data"]
    np.testing.assert_allclose(gb[0]["y"], ln_f.weight.detach().numpy(), rtol=1e-6)
    # back on layer 0, the page falls back to ln_1 instead of failing
    at.session_state["layer"] = 0
    at.run()
    assert not at.exception
    assert at.radio(key="layer_norm_which").value == "ln1"


# --- 6 · Residual stream -----------------------------------------------------------------------


def test_residual_page_draws_the_stored_residual_norms_and_contributions(
    tiny_loaded: LoadedModel,
) -> None:
    at = open_page("pages/6_Residual.py", pos="5")
    assert at.title[0].value == "6 · Residual stream"
    ref = reference(tiny_loaded)
    c = charts(at)
    stack = [ref.get("hook_resid_pre", 0)] + [ref.get("hook_resid_post", i) for i in range(2)]
    norms = np.array([np.linalg.norm(s, axis=-1) for s in stack])
    heat = c["residual_norms"]["data"][0]
    np.testing.assert_allclose(np.array(heat["customdata"], dtype=float), norms, rtol=1e-4)
    np.testing.assert_allclose(z_of(c["residual_norms"]), np.log10(norms), atol=1e-4)
    at.toggle(key="residual_log").set_value(False).run()
    np.testing.assert_allclose(z_of(charts(at)["residual_norms"]), norms, rtol=1e-4)
    along = np.array(c["residual_contributions"]["data"][1]["x"])
    final = ref.get("hook_resid_post", 1)[5]
    assert along.sum() == pytest.approx(np.linalg.norm(final), rel=1e-3)
    table = table_with(at, "‖x + f(x)‖ after")
    x = ref.get("hook_resid_pre", 0)[5] + ref.get("hook_attn_out", 0)[5]
    assert table.iloc[0]["‖x + f(x)‖ after"] == pytest.approx(np.linalg.norm(x), rel=1e-4)


# --- 7 · Dropout -------------------------------------------------------------------------------


def _dropout_panels(at: AppTest) -> list[np.ndarray]:
    spec = charts(at)["dropout_patterns"]
    return [z_of(spec, i) for i in range(3)]


def test_dropout_page_is_reproducible_for_a_seed_and_matches_the_engine(
    tiny_loaded: LoadedModel,
) -> None:
    query = {"layer": "1", "head": "1", "pos": "8"}
    first = open_page("pages/7_Dropout.py", **query)
    first.slider(key="dropout_p").set_value(0.5).run()
    first.number_input(key="dropout_seed").set_value(7).run()
    assert not first.exception
    second = open_page("pages/7_Dropout.py", **query)
    second.slider(key="dropout_p").set_value(0.5).run()
    second.number_input(key="dropout_seed").set_value(7).run()
    a, b = _dropout_panels(first), _dropout_panels(second)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    ref = reference(tiny_loaded)
    direct = dropout_pass(tiny_loaded.model, tiny_loaded.tokenizer, ref.token_ids.tolist(), 0.5, 7)
    np.testing.assert_allclose(a[0], np.round(ref.get("attn.hook_pattern", 1)[1], 4), atol=1e-6)
    np.testing.assert_allclose(
        a[2], np.round(direct.get("attn.hook_pattern_dropped", 1)[1], 4), atol=1e-6
    )
    first.number_input(key="dropout_seed").set_value(8).run()
    assert not np.array_equal(_dropout_panels(first)[2], a[2])
    assert not tiny_loaded.model.training


@pytest.mark.parametrize("p", [0.0, 0.1])
def test_dropout_page_says_how_the_model_was_trained(
    p: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundled model is trained without dropout: the page must not claim a p it never used."""
    import dataclasses

    from engine.checkpoints import random_model, save_checkpoint
    from engine.config import PRESETS

    config = dataclasses.replace(PRESETS["tiny"], dropout=p)
    save_checkpoint(random_model(config, seed=3), tmp_path / "m", n_ranks=config.vocab_size - 1)
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["model"] = "m"
    at.query_params["text"] = TEXT
    at.run()
    at.switch_page("pages/7_Dropout.py").run()
    assert not at.exception and not at.error
    text = " ".join(m.value for m in at.markdown)
    if p == 0.0:
        assert "trained without it (p = 0" in text
        assert "trained with p =" not in text
    else:
        assert "this model was trained with p = 0.1." in text
    assert at.slider(key="dropout_p").value == pytest.approx(0.1 if p else 0.05)


def test_the_dropout_pages_average_over_masks_approaches_the_evaluation_output() -> None:
    at = open_page("pages/7_Dropout.py", layer="0", head="0")
    at.slider(key="dropout_p").set_value(0.3).run()
    at.slider(key="dropout_n").set_value(400).run()
    inverted, plain, plain_scaled = (
        np.array(t["y"]) for t in charts(at)["dropout_convergence"]["data"]
    )
    assert len(inverted) == 400
    assert inverted[-1] < 0.25 * inverted[0]
    assert plain_scaled[-1] < 0.25 * plain_scaled[0]
    assert plain[-1] > 3 * inverted[-1]  # without rescaling the average stays off by p·x


# --- 8 · Output & logit lens -------------------------------------------------------------------


def test_the_lens_cell_of_the_last_layer_is_the_final_softmaxs_top_token(
    tiny_loaded: LoadedModel,
) -> None:
    at = open_page("pages/8_Output.py", pos="4")
    assert at.title[0].value == "8 · Output probabilities & logit lens"
    ref = reference(tiny_loaded)
    lens = charts(at)["output_lens"]["data"][0]
    display = tiny_loaded.tokenizer.display
    shown = [int(label.split(":", 1)[0]) for label in lens["x"]]
    assert shown == list(range(len(shown))) and len(shown) >= 10
    for col, pos in enumerate(shown):
        probs = final_probs(ref, pos)
        assert lens["text"][-1][col] == plotly_text(cell_word(display(int(np.argmax(probs)))))
        assert lens["z"][-1][col] == pytest.approx(probs.max(), abs=2e-4)
    assert lens["y"] == ["embed", "block 0", "block 1"]
    expected = logit_lens(ref, tiny_loaded.model)
    nxt = charts(at)["output_next_token"]["data"]
    np.testing.assert_allclose(nxt[0]["y"], expected.next_prob[:, 4], rtol=1e-4)
    target = at.selectbox(key="output_target").value
    probs = [lens_distribution(ref, tiny_loaded.model, r, 4)[target] for r in range(3)]
    np.testing.assert_allclose(charts(at)["output_target_chart"]["data"][0]["y"], probs, rtol=1e-4)


def test_temperature_top_k_and_top_p_reshape_the_stored_logits_without_a_rerun(
    tiny_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page("pages/8_Output.py", pos="6")
    ref = reference(tiny_loaded)
    before = charts(at)["output_top_tokens"]["data"]
    model_p = next_token_distribution(ref.logits[6], SamplingSettings())
    order = np.argsort(-model_p)[:15]
    np.testing.assert_allclose(before[1]["x"], model_p[order], rtol=1e-4)
    calls: list[int] = []
    real_forward = GPT.forward

    def counting_forward(self: GPT, *args: object, **kwargs: object) -> object:
        calls.append(1)
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(GPT, "forward", counting_forward)
    at.slider(key="output_temperature").set_value(2.0).run()
    at.number_input(key="output_top_k").set_value(5).run()
    at.slider(key="output_top_p").set_value(0.9).run()
    assert not at.exception
    after = charts(at)["output_top_tokens"]["data"]
    shaped = next_token_distribution(ref.logits[6], SamplingSettings(2.0, 5, 0.9))
    np.testing.assert_allclose(after[1]["x"], shaped[order], rtol=1e-4, atol=1e-9)
    assert 0 < np.count_nonzero(after[1]["x"]) <= 5
    np.testing.assert_allclose(after[0]["x"], before[0]["x"])  # the model's own: unchanged
    assert calls == []


# --- 9 · Generate ------------------------------------------------------------------------------


def _next_token(at: AppTest) -> AppTest:
    at.button(key="generate_sample").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_generate_with_a_fixed_seed_is_deterministic_and_appends_to_the_shared_text(
    tiny_loaded: LoadedModel,
) -> None:
    texts = []
    for _ in range(2):
        at = open_page("pages/9_Generate.py")
        at.number_input(key="generate_seed").set_value(11).run()
        texts.append(_next_token(at).session_state["text"])
    assert texts[0] == texts[1] != TEXT
    tok = tiny_loaded.tokenizer
    settings = SamplingSettings(temperature=1.0, top_k=40, top_p=0.95)
    step = sample_next(tiny_loaded.model, tok, tok.encode(TEXT), settings, 11)
    assert texts[0] == tok.decode([*tok.encode(TEXT), step.token_id])
    # the next page reads the new text
    at.switch_page("pages/8_Output.py").run()
    assert not at.exception
    assert at.session_state["text"] == texts[0]


def test_greedy_generation_appends_the_argmax_of_the_final_logits(
    tiny_loaded: LoadedModel,
) -> None:
    at = open_page("pages/9_Generate.py")
    at.checkbox(key="generate_greedy").check().run()
    _next_token(at)
    ref = reference(tiny_loaded)
    tok = tiny_loaded.tokenizer
    argmax = int(np.argmax(ref.logits[-1]))
    assert at.session_state["text"] == tok.decode([*ref.token_ids.tolist(), argmax])
    dist = charts(at)["generate_distribution"]["data"][1]
    assert dist["x"] == [1.0]
    assert dist["text"] == ["◀ chosen"]


def test_generate_n_equals_n_single_steps_and_undo_restores_the_text() -> None:
    many = open_page("pages/9_Generate.py")
    many.number_input(key="generate_seed").set_value(3).run()
    many.number_input(key="generate_n").set_value(4).run()
    many.button(key="generate_many").click().run()
    assert not many.exception
    history = many.session_state["generate_history"]
    assert len(history) == 1 and len(history[0]["tokens"]) == 4
    assert many.session_state["generate_seed"] == 7  # the seed moved on by the 4 tokens

    single = open_page("pages/9_Generate.py")
    single.number_input(key="generate_seed").set_value(3).run()
    for _ in range(4):
        _next_token(single)
    assert single.session_state["text"] == many.session_state["text"]
    assert [t[0] for e in single.session_state["generate_history"] for t in e["tokens"]] == [
        t[0] for t in history[0]["tokens"]
    ]
    assert len(table_with(single, "p when drawn")) == 4

    single.button(key="generate_undo").click().run()
    single.button(key="generate_undo").click().run()
    assert not single.exception
    assert len(single.session_state["generate_history"]) == 2
    assert single.session_state["text"] == single.session_state["generate_history"][-1]["after"]
    single.button(key="generate_undo").click().run()
    single.button(key="generate_undo").click().run()
    assert single.session_state["text"] == TEXT
    assert single.button(key="generate_undo").disabled


# --- every page, with Chinese text and odd tokens --------------------------------------------


@pytest.mark.parametrize(
    "page",
    [
        "pages/4_Feed_forward.py",
        "pages/5_Layer_norm.py",
        "pages/6_Residual.py",
        "pages/7_Dropout.py",
        "pages/8_Output.py",
        "pages/9_Generate.py",
    ],
)
@pytest.mark.parametrize("text", [CHINESE, "*_$x$_* <b>", "a"])
def test_every_page_renders_chinese_markup_like_and_one_token_texts(page: str, text: str) -> None:
    at = open_page(page, text=text)
    stage = page.split("/")[1].split("_", 1)[0]
    assert at.title[0].value.startswith(f"{stage} · ")
    assert not at.error
    assert at.get("plotly_chart")
    # a next (or previous) control at the bottom of every page
    assert any(b.key and b.key.endswith(("_next", "_prev")) for b in at.button)


def test_every_page_ends_with_the_walk_controls_of_its_stage() -> None:
    for stage in STAGES[3:]:
        at = open_page(stage.path, layer="0")
        keys = {b.key for b in at.button}
        assert f"{stage.id}_prev" in keys
        assert (f"{stage.id}_next" in keys) == (stage.id != "generate")


def test_the_lens_window_moves_along_a_long_text(tiny_loaded: LoadedModel) -> None:
    text = "To be, or not to be, that is the question: whether tis nobler in the mind"
    at = open_page("pages/8_Output.py", text=text)
    ref = reference(tiny_loaded, text)
    assert ref.n_tokens > 16
    # the window opens on the selected position (the last token by default)
    assert charts(at)["output_lens"]["data"][0]["x"][-1] == token_labels(ref.token_strs)[-1]
    at.slider(key="output_lens_window").set_value(0).run()
    assert charts(at)["output_lens"]["data"][0]["x"] == token_labels(ref.token_strs, 0, 16)
    last = ref.n_tokens - 16  # the last window: it ends on the text's last token
    at.slider(key="output_lens_window").set_value(last).run()
    assert not at.exception
    lens = charts(at)["output_lens"]["data"][0]
    assert lens["x"] == token_labels(ref.token_strs, last, ref.n_tokens)
    top = logit_lens(ref, tiny_loaded.model).top_probs[:, last:, 0]
    np.testing.assert_allclose(np.array(lens["z"], dtype=float), np.round(top, 4), atol=2e-4)
