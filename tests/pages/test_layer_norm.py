"""Page 5 (layer norm) in AppTest: numpy's statistics of each LayerNorm's input, ln_f on the
last layer."""

from __future__ import annotations

import numpy as np

from engine.checkpoints import LoadedModel
from tests.support import PLAIN, charts

open_page, trace_of, TEXT = PLAIN.open, PLAIN.trace, PLAIN.text


def test_layer_norm_page_shows_numpys_statistics_of_each_layer_norms_input(
    tiny_loaded: LoadedModel,
) -> None:
    at = open_page("pages/5_Layer_norm.py", layer="0", pos="2")
    assert at.title[0].value == "5 · Layer norm · layer 0"
    assert any("before" in i.value and "pre-norm" in i.value for i in at.info)
    ref = trace_of(tiny_loaded)
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
    ref = trace_of(tiny_loaded)
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


def test_the_layer_norm_prose_writes_a_negative_number_with_the_minus_sign(
    tmp_path, monkeypatch
) -> None:
    """The charts write −0.2 (plotly's minus sign); the prose wrote beta's range with a hyphen,
    "from -0.240 to 0.155" (bundled model). A model whose ln_1 beta runs from −0.24 to 0.155:
    the sentence says "−0.240", and no prose on the page has a hyphen before a digit."""
    import re

    import torch
    from streamlit.testing.v1 import AppTest

    from engine.checkpoints import random_model, save_checkpoint
    from engine.config import PRESETS
    from tests import support

    config = PRESETS["tiny"]
    model = random_model(config, seed=3)
    with torch.no_grad():
        model.transformer.h[0].ln_1.bias.copy_(torch.linspace(-0.24, 0.155, config.d_model))
    save_checkpoint(model, tmp_path / "m", n_ranks=config.vocab_size - 1)
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(tmp_path))
    at = AppTest.from_file(str(support.ROOT / "app.py"), default_timeout=120)
    at.query_params["model"] = "m"
    at.query_params["text"] = TEXT
    at.query_params["layer"] = "0"
    at.run()
    at.switch_page("pages/5_Layer_norm.py").run()
    assert not at.exception and not at.error
    prose = [m.value for m in (*at.markdown, *at.caption)]
    assert any("beta from −0.240 to 0.155" in text for text in prose), prose
    hyphenated = [t for t in prose if re.search(r"(?<![\w.])-\d", t)]
    assert not hyphenated, hyphenated
