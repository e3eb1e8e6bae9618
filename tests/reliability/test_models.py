"""Model choice through the app (AppTest): the list offers bundled, untrained and the folders of
the configured models directory; no path box unless the operator enables it; every broken
checkpoint (half downloaded, truncated, wrong shapes, wrong model type, a pickle that carries
code, absurd sizes) gives a clear message, runs no code, and leaves the previous model working
with the user's text. The loader's own refusals are tested in test_checkpoints.py; here each one
goes through the sidebar."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from engine.capture import run_with_trace
from engine.checkpoints import CheckpointError, random_model, save_checkpoint
from engine.config import PRESETS
from tests import support
from tests.support import values
from ui.cache import MODEL_LOADS, MODELS, load_model
from ui.models import available_models, model_key, model_label, snapshot_models
from ui.settings import models_dir

# The app on the tiny test model with no operator settings (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("tiny_app")

ROOT = Path(__file__).resolve().parents[2]
TINY = PRESETS["tiny"]
N_RANKS = TINY.vocab_size - 1
TEXT = "Friends, Romans, countrymen, lend me your ears"


class _RunsCommand:
    """Unpickling this runs a shell command (what a malicious pytorch_model.bin does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., int], tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _edit_config(directory: Path, **changes: object) -> None:
    path = directory / "config.json"
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _broken(kind: str, directory: Path, marker: Path) -> None:
    """Turn a good tiny checkpoint in `directory` into one broken in the way `kind` names."""
    weights = directory / "model.safetensors"
    if kind == "no_weights":  # a download that stopped after config.json
        weights.unlink()
    elif kind == "truncated_half":
        _truncate(weights, 0.5)
    elif kind == "truncated_header":
        _truncate(weights, 0.001)
    elif kind == "empty_weights":
        weights.write_bytes(b"")
    elif kind == "half_config":
        text = (directory / "config.json").read_text()
        (directory / "config.json").write_text(text[: len(text) // 2])
    elif kind == "wrong_shapes":
        _edit_config(directory, n_embd=64, n_inner=None)
    elif kind == "unknown_model_type":
        _edit_config(directory, model_type="llama")
    elif kind == "no_tokenizer":  # a GPT-2 style config: the tokenizer files are missing
        raw = json.loads((directory / "config.json").read_text())
        raw.pop("inside_gpt")
        (directory / "config.json").write_text(json.dumps(raw))
    elif kind == "code_in_pickle":
        weights.unlink()
        payload = {"transformer.wte.weight": torch.zeros(4, 4), "x": _RunsCommand(marker)}
        torch.save(payload, directory / "pytorch_model.bin")
    elif kind == "truncated_bin":  # a half-downloaded pytorch_model.bin
        weights.unlink()
        state = random_model(TINY, seed=14).state_dict()
        torch.save(state, directory / "pytorch_model.bin")
        _truncate(directory / "pytorch_model.bin", 0.5)
    elif kind == "absurd_sizes":
        _edit_config(directory, n_layer=10_000, n_embd=65_536, n_head=64, n_positions=10**6)
    elif kind == "absurd_context":
        _edit_config(directory, n_positions=2_000_000)
    else:
        raise AssertionError(kind)


# kind -> words the message must contain (backslashes that escape Markdown removed first)
BROKEN: dict[str, tuple[str, ...]] = {
    "no_weights": ("has neither model.safetensors nor pytorch_model.bin",),
    "truncated_half": ("model.safetensors is truncated or corrupt",),
    "truncated_header": ("model.safetensors is truncated or corrupt",),
    "empty_weights": ("model.safetensors is truncated or corrupt",),
    "half_config": ("config.json is not valid JSON",),
    "wrong_shapes": ("has shape", "the config needs"),
    "unknown_model_type": ("model_type 'llama'", "only 'gpt2' is supported"),
    "no_tokenizer": ("has no vocab.json (the tokenizer)",),
    "code_in_pickle": ("is not plain weights", "nothing in it was run"),
    "truncated_bin": ("pytorch_model.bin is truncated or corrupt",),
    "absurd_sizes": ("GiB of weights", "refusing to allocate it"),
    "absurd_context": ("GiB of weights", "refusing to allocate it"),
}


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A models folder with a good checkpoint "mini" and one broken checkpoint per kind."""
    folder, marker = tmp_path / "models", tmp_path / "PAYLOAD_RAN"
    save_checkpoint(random_model(TINY, seed=11), folder / "mini", n_ranks=N_RANKS)
    for kind in BROKEN:
        save_checkpoint(random_model(TINY, seed=12), folder / kind, n_ranks=N_RANKS)
        _broken(kind, folder / kind, marker)
    (folder / "README.txt").write_text("not a model")
    (folder / "no_config").mkdir()
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(folder))
    return folder, marker


def open_page(page: str = "pages/2_Embeddings.py") -> AppTest:
    return support.open_page(page, TEXT, timeout=120)


def token_embedding_shown(at: AppTest) -> np.ndarray:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return values(spec["data"][0]["z"]).ravel()


def expected_embedding(model_id: str) -> np.ndarray:
    loaded = load_model(model_id)
    return run_with_trace(loaded.model, loaded.tokenizer, TEXT)["hook_embed"]


def test_the_list_offers_bundled_random_and_the_models_folder(models: tuple[Path, Path]) -> None:
    at = open_page()
    options = at.selectbox(key="_w_model").options
    folder_models = sorted(["mini", *BROKEN])
    assert available_models() == ["bundled", *snapshot_models(), "random", *folder_models]
    assert [model_label(m) for m in available_models()] == options
    assert "README.txt" not in available_models()
    assert "no_config" not in available_models()


def test_the_default_models_folder_is_beside_the_app() -> None:
    assert models_dir() == ROOT / "models"


def test_no_path_box_unless_the_operator_allows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for page in ("app.py", "pages/1_Tokens.py", "pages/3_Attention.py"):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.query_params["text"] = TEXT
        if page != "app.py":
            at.switch_page(page)
        at.run()
        assert [t.key for t in at.text_input] == [], page  # no free-form text box at all
        assert "GPT-2 directory path" not in " ".join(t.label for t in at.text_input)
    monkeypatch.setenv("INSIDE_GPT_ALLOW_PATHS", "1")
    at = open_page("pages/1_Tokens.py")
    assert [t.key for t in at.text_input] == ["_w_path"]
    monkeypatch.setenv("INSIDE_GPT_ALLOW_PATHS", "yes")  # only exactly "1" enables it
    at = open_page("pages/1_Tokens.py")
    assert [t.key for t in at.text_input] == []


@pytest.mark.slow
def test_every_broken_checkpoint_gives_a_message_and_the_previous_model_keeps_working(
    models: tuple[Path, Path],
) -> None:
    _, marker = models
    at = open_page()
    bundled = expected_embedding("bundled")
    mini = expected_embedding("mini")
    np.testing.assert_allclose(token_embedding_shown(at), bundled.ravel(), atol=1e-6)
    for previous, expected in (("bundled", bundled), ("mini", mini)):
        at.selectbox(key="_w_model").set_value(previous).run()
        assert at.session_state["model_id"] == previous and not at.error
        for kind, words in BROKEN.items():
            at.selectbox(key="_w_model").set_value(kind).run()
            where = f"{kind} after {previous}"
            assert not at.exception, (where, [e.value for e in at.exception])
            errors = [e.value.replace("\\", "") for e in at.error]
            assert len(errors) == 1, (where, errors)
            assert errors[0].startswith(f"Could not load the model “{kind}”: "), (where, errors)
            for word in words:
                assert word in errors[0], (where, word, errors)
            assert "Traceback" not in errors[0]
            assert f"Still showing the model “{previous}”." in [w.value for w in at.warning]
            assert at.session_state["model_id"] == previous, where
            assert at.selectbox(key="_w_model").value == previous, where
            assert at.session_state["text"] == TEXT, where
            assert at.text_area(key="_w_text").value == TEXT, where
            np.testing.assert_allclose(
                token_embedding_shown(at), expected.ravel(), atol=1e-6, err_msg=where
            )
            # the next run (any interaction) is clean: the error belonged to that one choice
            at.number_input(key="_w_head").set_value(1).run()
            assert not at.error and not at.exception, where
            np.testing.assert_allclose(token_embedding_shown(at), expected.ravel(), atol=1e-6)
    assert not marker.exists()  # the pickle's command never ran


def test_a_broken_checkpoint_in_a_link_on_a_fresh_session_falls_back_to_bundled(
    models: tuple[Path, Path],
) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["text"] = TEXT
    at.query_params["model"] = "truncated_half"
    at.switch_page("pages/3_Attention.py")
    at.run()
    assert not at.exception
    assert any("truncated or corrupt" in e.value for e in at.error)
    assert at.session_state["model_id"] == "bundled"
    assert at.query_params["model"] in ("bundled", ["bundled"])
    assert at.get("plotly_chart")


def test_absurd_sizes_are_refused_quickly_without_allocating(models: tuple[Path, Path]) -> None:
    import time

    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="refusing to allocate"):
        load_model("absurd_sizes")
    assert time.perf_counter() - start < 2.0


def test_a_checkpoint_fixed_on_disk_loads_on_the_next_choice(models: tuple[Path, Path]) -> None:
    """A half-downloaded model is not remembered as broken: once the download finishes (here:
    the weights written again), choosing it again loads it."""
    folder, _ = models
    at = open_page()
    at.selectbox(key="_w_model").set_value("no_weights").run()
    assert at.error and at.session_state["model_id"] == "bundled"
    save_checkpoint(random_model(TINY, seed=13), folder / "no_weights", n_ranks=N_RANKS)
    at.selectbox(key="_w_model").set_value("no_weights").run()
    assert not at.error and not at.exception
    assert at.session_state["model_id"] == "no_weights"
    np.testing.assert_allclose(
        token_embedding_shown(at), expected_embedding("no_weights").ravel(), atol=1e-6
    )


def _reload_notices(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "the files changed on disk" in w.value]


def test_a_checkpoint_replaced_on_disk_is_reloaded_with_a_notice(
    models: tuple[Path, Path],
) -> None:
    """The model cache is keyed by the files' size, modification time and inode: new weights
    written over a checkpoint the app is showing give the new numbers on the next run, after
    one notice; the outdated version is not kept."""
    folder, _ = models
    at = open_page()
    at.selectbox(key="_w_model").set_value("mini").run()
    before = token_embedding_shown(at)
    np.testing.assert_allclose(before, expected_embedding("mini").ravel(), atol=1e-6)
    assert not _reload_notices(at)
    at.run()
    assert not _reload_notices(at)  # nothing changed: no notice, no second load
    old_key = model_key("mini")
    assert MODEL_LOADS[old_key] == 1

    replacement = random_model(TINY, seed=31)
    save_checkpoint(replacement, folder / "mini", n_ranks=N_RANKS)
    assert model_key("mini") != old_key
    at.run()
    assert not at.exception and not at.error
    assert len(_reload_notices(at)) == 1 and "“mini”" in _reload_notices(at)[0]
    after = token_embedding_shown(at)
    new = run_with_trace(replacement, load_model("mini").tokenizer, TEXT)["hook_embed"]
    np.testing.assert_allclose(after, new.ravel(), atol=1e-6)
    assert not np.allclose(after, before)
    assert MODEL_LOADS[model_key("mini")] == 1
    assert old_key not in MODELS._items  # the outdated weights are let go
    at.run()
    assert not _reload_notices(at)  # said once


def test_a_changed_config_json_alone_reloads_the_model(models: tuple[Path, Path]) -> None:
    folder, _ = models
    first = load_model("mini")
    assert load_model("mini") is first
    raw = json.loads((folder / "mini" / "config.json").read_text())
    raw["layer_norm_epsilon"] = 0.5
    (folder / "mini" / "config.json").write_text(json.dumps(raw))
    second = load_model("mini")
    assert second is not first
    assert second.model.config.layer_norm_eps == 0.5 != first.model.config.layer_norm_eps


def test_a_file_the_engine_does_not_read_changing_does_not_reload(
    models: tuple[Path, Path],
) -> None:
    folder, _ = models
    first = load_model("mini")
    (folder / "mini" / "train_state.json").write_text("{}")
    (folder / "mini" / "MODEL_CARD.md").write_text("# notes")
    assert load_model("mini") is first
