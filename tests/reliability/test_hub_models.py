"""Hub models through the app (AppTest), without the network: the operator's list
(INSIDE_GPT_HUB_MODELS) is offered in the model box; choosing one downloads it from a fake Hub on
loopback HTTP (tests/hub_server.py) into a temporary Hugging Face cache and shows its numbers;
offline and not cached gives a message and keeps the previous model; an id not listed is never
fetched, also from a link."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from streamlit.delta_generator import DeltaGenerator

from engine.capture import run_with_trace
from engine.checkpoints import load_directory, random_model, save_checkpoint
from engine.config import PRESETS
from tests import support
from tests.hub_server import FakeHub, serve
from tests.support import values
from ui.models import available_models, model_label

pytestmark = pytest.mark.usefixtures("tiny_app")

REPO = "someone/tiny-gpt2"
TEXT = "Friends, Romans, countrymen"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    folder = save_checkpoint(random_model(PRESETS["tiny"], seed=43), tmp_path / "m", 4096)
    fake = FakeHub()
    fake.add_folder(REPO, folder, {"README.md": b"card", "pytorch_model.bin": b"\0" * 999})
    fake.add_folder("someone/unlisted", folder)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("INSIDE_GPT_HUB_MODELS", f" {REPO}, not a repo id, ../etc,{REPO}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with serve(fake):
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def _embedding_shown(at: object) -> np.ndarray:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)  # type: ignore[attr-defined]
    return values(spec["data"][0]["z"]).ravel()


def _expected(folder: Path) -> np.ndarray:
    loaded = load_directory(folder)
    return run_with_trace(loaded.model, loaded.tokenizer, TEXT)["hook_embed"].ravel()


def test_the_operator_lists_are_offered_and_only_they(hub: FakeHub) -> None:
    assert available_models()[-1:] == [f"hf:{REPO}"]  # the bad entries and the repeat left out
    assert model_label(f"hf:{REPO}") == f"{REPO} (Hugging Face Hub)"
    at = support.open_page("pages/2_Embeddings.py", TEXT, timeout=120)
    assert f"{REPO} (Hugging Face Hub)" in at.selectbox(key="_w_model").options
    assert hub.requests == []  # offering is not fetching


@pytest.mark.slow
def test_choosing_a_hub_model_downloads_it_and_shows_its_numbers(
    hub: FakeHub, tmp_path: Path
) -> None:
    at = support.open_page("pages/2_Embeddings.py", TEXT, timeout=120)
    at.selectbox(key="_w_model").set_value(f"hf:{REPO}").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["model_id"] == f"hf:{REPO}"
    assert hub.fetched() == {"config.json", "model.safetensors"}
    assert not at.get("progress")  # the download bar is gone once the model is there
    np.testing.assert_allclose(_embedding_shown(at), _expected(tmp_path / "m"), atol=1e-6)
    assert any((tmp_path / "hf-cache").rglob("model.safetensors"))


@pytest.mark.slow
def test_offline_and_not_cached_keeps_the_previous_model(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    at = support.open_page("pages/2_Embeddings.py", TEXT, timeout=120)
    before = _embedding_shown(at)
    at.selectbox(key="_w_model").set_value(f"hf:{REPO}").run()
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]
    assert len(errors) == 1 and "the Hub cannot be reached" in errors[0], errors
    assert "Still showing the model “bundled”." in [w.value for w in at.warning]
    assert at.session_state["model_id"] == "bundled"
    np.testing.assert_array_equal(_embedding_shown(at), before)


def test_an_unlisted_id_in_a_link_is_refused_without_a_request(hub: FakeHub) -> None:
    for model in ("hf:someone/unlisted", "hf:../../etc", "someone/unlisted"):
        at = support.new_app({"text": TEXT, "model": model}, timeout=120)
        at.switch_page("pages/2_Embeddings.py")
        at.run()
        assert not at.exception
        assert at.session_state["model_id"] == "bundled", model
    assert hub.requests == []


@pytest.mark.slow
def test_a_download_draws_a_progress_bar(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bar is drawn while the bytes arrive (and removed afterwards, so AppTest cannot see
    it at the end): every st.progress call of the run is recorded."""
    drawn: list[tuple[float, str]] = []
    original = DeltaGenerator.progress

    def recording(self: DeltaGenerator, value: float, text: str | None = None) -> object:
        drawn.append((float(value), text or ""))
        return original(self, value, text=text)

    monkeypatch.setattr(DeltaGenerator, "progress", recording)
    hub.delay = 1.6  # the weights arrive in 8 parts over 1.6 s, read in 64 KiB chunks
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    at = support.open_page("pages/2_Embeddings.py", TEXT, timeout=120)
    at.selectbox(key="_w_model").set_value(f"hf:{REPO}").run()
    assert not at.exception and not at.error
    ours = [(v, t) for v, t in drawn if t.startswith(f"Downloading {REPO} from the Hugging Face")]
    assert len(ours) >= 3, drawn
    fractions = [v for v, _ in ours]
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] <= 1
    assert fractions[-1] > fractions[0]  # it moved
    assert ours[-1][1].endswith("MB")
