"""Shared fixtures: a tiny random GPT with the bundled tokenizer and a Trace of it; no downloads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import MagicMock

import pytest
import torch
from streamlit.runtime import Runtime
from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
from streamlit.runtime.dataframe_source_manager import DataframeSourceManager
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner.script_cache import ScriptCache
from streamlit.testing.v1 import app_test as app_test_module
from streamlit.testing.v1.util import patch_config_options

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel, random_model, resolve_device
from engine.config import PRESETS, GPTConfig
from engine.tokenizer import cl100k_truncated
from engine.trace import Trace

torch.set_num_threads(1)

MIXED_TEXT = "The cat sat on the mat. 你好，世界! The cat sat"


@pytest.fixture(scope="session")
def tiny_config() -> GPTConfig:
    return PRESETS["tiny"]


@pytest.fixture(scope="session")
def tiny_loaded(tiny_config: GPTConfig) -> LoadedModel:
    """A seeded random model of the tiny shape, eval mode, with cl100k_base[:4096]."""
    return LoadedModel(
        name="tiny",
        model=random_model(tiny_config, seed=0),
        tokenizer=cl100k_truncated(tiny_config.vocab_size - 1),
        source="tests: random tiny model",
    )


@pytest.fixture(scope="session")
def tiny_trace(tiny_loaded: LoadedModel) -> Trace:
    return run_with_trace(tiny_loaded.model, tiny_loaded.tokenizer, MIXED_TEXT, model_name="tiny")


@pytest.fixture
def tiny_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app on the tiny test model (INSIDE_GPT_TEST_MODEL=tiny), with no operator settings:
    no models folder, no path box, the default token cap."""
    monkeypatch.setenv("INSIDE_GPT_TEST_MODEL", "tiny")
    for name in (
        "INSIDE_GPT_MODELS_DIR",
        "INSIDE_GPT_ALLOW_PATHS",
        "INSIDE_GPT_MAX_TOKENS",
        "INSIDE_GPT_HUB_MODELS",
        "INSIDE_GPT_LIVE_TRAINING",
    ):
        monkeypatch.delenv(name, raising=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default="cpu",
        help="where the device-parity tests run the engine: cpu (default), cuda, mps or auto",
    )


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    """The torch device of `pytest --device` (engine.checkpoints.resolve_device)."""
    return resolve_device(request.config.getoption("--device"))


_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def concurrent_apptest(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let AppTest sessions run in parallel threads the way a real server runs sessions.

    AppTest was written for one session at a time: around each run it swaps process-wide state
    (`Runtime._instance`, set to a mock and back to None; `config.get_option`, patched for
    `global.appTest`) and compiles the script afresh. Overlapping runs then undo each other's
    swaps ("Runtime hasn't been created!", widgets AppTest can no longer read) and compile
    concurrently (CPython 3.11's "AST constructor recursion depth mismatch"). A server keeps a
    runtime for its whole life and one ScriptCache whose lock serialises compiles; this fixture
    does the same for the test, so what runs concurrently is the app's own code."""
    PagesManager(str(_ROOT / "app.py"))  # sets PagesManager.uses_pages_directory (True) once
    runtime = MagicMock(spec=Runtime)
    runtime.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    runtime.dataframe_source_mgr = DataframeSourceManager()
    runtime.cache_storage_manager = MemoryCacheStorageManager()

    def instance(cls: type[Runtime]) -> Runtime:
        return cls._instance if cls._instance is not None else runtime

    compile_lock = threading.Lock()
    get_bytecode = ScriptCache.get_bytecode

    def locked_get_bytecode(self: ScriptCache, script_path: str) -> object:
        with compile_lock:
            return get_bytecode(self, script_path)

    class PinnedPagesManager(PagesManager):
        """AppTest resets `PagesManager.uses_pages_directory` to None before every run (so a
        concurrent run briefly sees "not a pages/ app" and cannot find its page links); the
        assignment lands on this subclass instead, and the base keeps the value the first run
        found, as on a server."""

    monkeypatch.setattr(app_test_module, "PagesManager", PinnedPagesManager)
    monkeypatch.setattr(Runtime, "instance", classmethod(instance))
    monkeypatch.setattr(ScriptCache, "get_bytecode", locked_get_bytecode)
    with patch_config_options({"global.appTest": True}):
        yield
