"""Page 6 (residual stream) in AppTest: the stored residual norms and contributions."""

from __future__ import annotations

import numpy as np
import pytest

from engine.checkpoints import LoadedModel
from tests.support import PLAIN, charts, table_with, z_of

open_page, trace_of, TEXT = PLAIN.open, PLAIN.trace, PLAIN.text


def test_residual_page_draws_the_stored_residual_norms_and_contributions(
    tiny_loaded: LoadedModel,
) -> None:
    at = open_page("pages/6_Residual.py", pos="5", sections=("residual_sec_steps",))
    assert at.title[0].value == "6 · Residual stream"
    ref = trace_of(tiny_loaded)
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
