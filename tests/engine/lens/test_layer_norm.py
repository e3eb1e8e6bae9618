"""engine.lens.layer_norm: LayerNorm statistics of the stored residuals."""

from __future__ import annotations

import numpy as np
import pytest

from engine.lens import layer_norm as lln
from engine.lens.layer_norm import all_ln_stats, ln_input, ln_stats
from engine.trace import Trace


def test_ln_stats_are_the_numpy_mean_and_std_of_the_stored_residuals(tiny_trace: Trace) -> None:
    eps = tiny_trace.config.layer_norm_eps
    inputs = {
        "blocks.0.ln1": tiny_trace["blocks.0.hook_resid_pre"],
        "blocks.0.ln2": tiny_trace["blocks.0.hook_resid_mid"],
        "blocks.1.ln1": tiny_trace["blocks.1.hook_resid_pre"],
        "blocks.1.ln2": tiny_trace["blocks.1.hook_resid_mid"],
        "ln_final": tiny_trace["blocks.1.hook_resid_post"],
    }
    stats = all_ln_stats(tiny_trace)
    assert [s.name for s in stats] == list(inputs)
    for s in stats:
        x = inputs[s.name].astype(np.float64)
        np.testing.assert_allclose(s.mean, x.mean(-1), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(s.std, x.std(-1), rtol=1e-12)
        # the scale the model divided by (recorded in the forward pass) is sqrt(var + eps)
        np.testing.assert_allclose(s.scale, np.sqrt(x.var(-1) + eps), rtol=1e-5)
        assert s.mean.shape == s.std.shape == s.scale.shape == (tiny_trace.n_tokens,)


def test_ln_stats_of_one_layer_equal_the_entry_in_all_ln_stats(tiny_trace: Trace) -> None:
    one = ln_stats(tiny_trace, "ln2", 1)
    assert one.name == "blocks.1.ln2"
    np.testing.assert_array_equal(one.std, all_ln_stats(tiny_trace)[3].std)


def test_ln_input_rejects_an_unknown_layer_norm(tiny_trace: Trace) -> None:
    with pytest.raises(ValueError, match="unknown LayerNorm 'ln3'"):
        ln_input(tiny_trace, "ln3", 0)


@pytest.mark.parametrize(("which", "layer"), [("ln1", 0), ("ln2", 0), ("ln1", 1), ("ln2", 1)])
def test_per_token_normalisation_reproduces_the_stored_layer_norm(
    tiny_trace: Trace, which: str, layer: int
) -> None:
    x = ln_input(tiny_trace, which, layer)
    eps = tiny_trace.config.layer_norm_eps
    np.testing.assert_allclose(
        lln.gpt_normalize(x, eps), tiny_trace.get(f"{which}.hook_normalized", layer), atol=2e-5
    )


def test_the_articles_whole_tensor_statistics_let_a_later_token_change_earlier_outputs(
    tiny_trace: Trace,
) -> None:
    x = tiny_trace.get("hook_resid_mid", 0)
    article_change, gpt_change = lln.future_leak(x, tiny_trace.config.layer_norm_eps)
    assert gpt_change == 0.0
    assert article_change > 1e-3
    assert lln.future_leak(x[:1], 1e-5) == (0.0, 0.0)
