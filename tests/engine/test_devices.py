"""Devices: engine.checkpoints.resolve_device, and a model moved to a device still hands back
CPU numpy arrays (capture, logit lens, sampling). On this project's machines only the CPU is
there; `pytest --device cuda` runs the parity test on a GPU (tests/engine/test_hf_parity.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel, resolve_device
from engine.lens.logit_lens import lens_distribution, logit_lens
from engine.sampling import last_logits
from tests.conftest import MIXED_TEXT


def test_resolve_device_names_what_it_refuses() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else "mps"
        if torch.backends.mps.is_available()
        else "cpu"
    )
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="'gpu' is not one of cpu, cuda, mps, auto"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' was asked for"):
            resolve_device("cuda")


def test_a_model_on_the_tests_device_gives_the_cpu_numbers(
    tiny_loaded: LoadedModel, device: torch.device
) -> None:
    """Trace, logit lens, one lens distribution and the last logits of a copy of the tiny
    model on `device` equal the CPU model's (float32 rounding on a GPU)."""
    cpu = tiny_loaded
    moved = LoadedModel(
        name="moved",
        model=type(cpu.model)(cpu.config).eval(),
        tokenizer=cpu.tokenizer,
        source="tests",
    )
    moved.model.load_state_dict(cpu.model.state_dict())
    moved.model.to(device)
    a = run_with_trace(cpu.model, cpu.tokenizer, MIXED_TEXT)
    b = run_with_trace(moved.model, moved.tokenizer, MIXED_TEXT)
    for name in a.acts:
        assert isinstance(b[name], np.ndarray)
        np.testing.assert_allclose(b[name], a[name], atol=1e-5, err_msg=name)
    lens_a, lens_b = logit_lens(a, cpu.model), logit_lens(b, moved.model)
    np.testing.assert_allclose(lens_b.top_probs, lens_a.top_probs, atol=1e-5)
    np.testing.assert_allclose(
        lens_distribution(b, moved.model, 1, 3), lens_distribution(a, cpu.model, 1, 3), atol=1e-6
    )
    ids = [int(i) for i in a.token_ids]
    np.testing.assert_allclose(
        last_logits(moved.model, ids), last_logits(cpu.model, ids), atol=1e-4
    )
