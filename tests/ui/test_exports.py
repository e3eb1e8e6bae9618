"""ui.exports: the Trace as .npz equals `python -m engine trace`; a copied link carries the
sampling and dropout knobs and reopens the same view with the same sampled token."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from streamlit.testing.v1 import AppTest

from engine.capture import run_with_trace
from tests.support import ROOT, view_link
from ui.exports import trace_npz

TEXT = "To be, or not to be: to be."


def test_trace_npz_is_the_file_the_command_line_writes(tmp_path: Path) -> None:
    import io

    from engine.__main__ import main

    out = tmp_path / "cli.npz"
    assert main(["trace", "--model", "bundled", "--text", TEXT, "--out", str(out)]) == 0
    from engine.checkpoints import load

    loaded = load("bundled")
    trace = run_with_trace(loaded.model, loaded.tokenizer, TEXT, model_name=loaded.name)
    ours = np.load(io.BytesIO(trace_npz(trace)))
    cli = np.load(out)
    assert sorted(ours.files) == sorted(cli.files) and "token_ids" in ours.files
    for name in cli.files:
        np.testing.assert_array_equal(ours[name], cli[name], err_msg=name)


def _link(at: AppTest) -> dict[str, str]:
    """The query of the sidebar's "link to this view"."""
    return dict(parse_qsl(urlsplit(view_link(at)).query))


def _generate_once(params: dict[str, str]) -> tuple[AppTest, str]:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page("pages/9_Generate.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at, at.session_state["text"]


def test_copied_link_carries_the_knobs_and_samples_the_same_token() -> None:
    at, _ = _generate_once({"text": TEXT})
    at.slider(key="generate_temperature").set_value(1.7).run()
    at.number_input(key="generate_seed").set_value(12345).run()
    at.slider(key="generate_top_p").set_value(0.8).run()
    link = _link(at)
    assert link["gen_temperature"] == "1.7" and link["gen_seed"] == "12345"
    assert link["gen_top_p"] == "0.8" and link["text"] == TEXT
    at.button(key="generate_sample").click().run()
    first = at.session_state["text"]
    assert first != TEXT and first.startswith(TEXT)
    # A new session opened from the link: same knobs, same sampled token.
    other, _ = _generate_once(link)
    assert other.slider(key="generate_temperature").value == 1.7
    assert other.number_input(key="generate_seed").value == 12345
    assert not other.warning or all("Session State" not in w.value for w in other.warning)
    other.button(key="generate_sample").click().run()
    assert other.session_state["text"] == first


def test_output_and_dropout_knobs_round_trip_through_the_link() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for k, v in {"text": TEXT, "temperature": "0.6", "top_k": "7", "top_p": "0.9"}.items():
        at.query_params[k] = v
    at.switch_page("pages/8_Output.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="output_temperature").value == 0.6
    assert at.number_input(key="output_top_k").value == 7
    assert at.slider(key="output_top_p").value == 0.9
    link = _link(at)
    assert (link["temperature"], link["top_k"], link["top_p"]) == ("0.6", "7", "0.9")
    bad = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    bad.query_params["text"] = TEXT
    bad.query_params["dropout_p"] = "lots"
    bad.switch_page("pages/7_Dropout.py")
    bad.run()
    assert not bad.exception
    assert any("dropout_p='lots'" in w.value for w in bad.warning)
