"""Shared fixtures: a tiny random GPT with the bundled tokenizer and a Trace of it; no downloads."""

from __future__ import annotations

import pytest
import torch

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
