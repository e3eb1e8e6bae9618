"""GPTConfig / TrainConfig: presets, derived sizes and validation."""

from __future__ import annotations

import dataclasses

import pytest

from engine.checkpoints import random_model
from engine.config import PRESETS, GPTConfig, TrainConfig


def test_gpt2_preset_has_the_shape_and_parameter_count_of_gpt2_small() -> None:
    cfg = PRESETS["gpt2"]
    assert (cfg.n_layer, cfg.n_head, cfg.d_model, cfg.n_ctx, cfg.vocab_size) == (
        12,
        12,
        768,
        1024,
        50257,
    )
    assert cfg.d_mlp == 3072
    assert cfg.d_head == 64
    # Hugging Face reports 124,439,808 parameters for "gpt2" (lm_head tied to wte).
    assert cfg.n_params() == 124_439_808


def test_bundled_preset_uses_cl100k_8192_and_tiny_4096_plus_endoftext() -> None:
    assert PRESETS["bundled"] == PRESETS["bilingual"]
    assert PRESETS["bundled"].vocab_size == 8193
    assert PRESETS["bundled"].n_ctx == 256 and not PRESETS["bundled"].tie_word_embeddings
    assert PRESETS["shakespeare"].vocab_size == 4097  # the first bundled model's shape
    assert PRESETS["tiny"].vocab_size == 4097
    assert PRESETS["tiny"].n_layer == 2


def test_d_mlp_zero_means_four_times_the_width() -> None:
    assert GPTConfig(d_model=32, n_head=2, d_mlp=0).d_mlp == 128
    assert GPTConfig(d_model=32, n_head=2, d_mlp=48).d_mlp == 48


@pytest.mark.parametrize("name", ["tiny", "bundled"])
def test_n_params_counts_exactly_the_model_parameters(name: str) -> None:
    cfg = PRESETS[name]
    model = random_model(cfg, seed=0)
    assert sum(p.numel() for p in model.parameters()) == cfg.n_params()


def test_n_params_counts_a_custom_mlp_width() -> None:
    cfg = GPTConfig(n_layer=1, n_head=2, d_model=8, n_ctx=4, vocab_size=10, d_mlp=12)
    model = random_model(cfg, seed=0)
    assert sum(p.numel() for p in model.parameters()) == cfg.n_params()


def test_config_is_frozen() -> None:
    cfg = PRESETS["tiny"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_layer = 3  # type: ignore[misc]


def test_to_dict_rebuilds_an_equal_config() -> None:
    for cfg in PRESETS.values():
        assert GPTConfig(**cfg.to_dict()) == cfg


def test_replace_with_d_mlp_zero_recomputes_the_mlp_width() -> None:
    wider = dataclasses.replace(PRESETS["tiny"], d_model=64, d_mlp=0)
    assert wider.d_mlp == 256


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"n_layer": 0}, "n_layer must be a positive integer"),
        ({"n_head": -1}, "n_head must be a positive integer"),
        ({"n_ctx": 2.5}, "n_ctx must be a positive integer"),
        ({"vocab_size": True}, "vocab_size must be a positive integer"),
        ({"d_mlp": -4}, "d_mlp must be a non-negative integer"),
        ({"d_mlp": True}, "d_mlp must be a non-negative integer"),
        ({"d_model": 30, "n_head": 4}, "must be divisible by n_head"),
        ({"dropout": 1.0}, "dropout must be in [0, 1)"),
        ({"dropout": -0.1}, "dropout must be in [0, 1)"),
        ({"dropout": float("nan")}, "dropout must be in [0, 1)"),
        ({"dropout": "high"}, "dropout must be a number"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps must be in (0, 1)"),
    ],
)
def test_invalid_config_raises_a_readable_value_error(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        GPTConfig(**kwargs)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_steps": 0}, "max_steps"),
        ({"seq_len": 1}, "seq_len"),
        ({"synthetic_share": 1.5}, "synthetic_share"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"eval_every": 0}, "eval_every"),
        ({"lr": 0.0}, "lr must be in"),
        ({"lr": 1e-3, "min_lr": 1e-2}, r"min_lr in \[0, lr\]"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"threads": -1}, "threads"),
    ],
)
def test_invalid_train_config_raises_a_readable_value_error(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        TrainConfig(**kwargs)
