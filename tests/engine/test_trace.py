"""Trace: canonical keys in forward order, documented shapes, validation, read-only arrays."""

from __future__ import annotations

import dataclasses
import pickle
import textwrap

import numpy as np
import pytest

from engine.config import GPTConfig
from engine.names import SITES, act_name, canonical_names, site_table
from engine.trace import Trace

# Written out by hand: the activations of a 2-layer model, in the order the forward pass
# records them. Renaming or reordering a hook must change this list deliberately.
GOLDEN_KEYS_2_LAYERS = [
    "hook_embed",
    "hook_pos_embed",
    "blocks.0.hook_resid_pre",
    "blocks.0.ln1.hook_scale",
    "blocks.0.ln1.hook_normalized",
    "blocks.0.attn.hook_q",
    "blocks.0.attn.hook_k",
    "blocks.0.attn.hook_v",
    "blocks.0.attn.hook_attn_scores",
    "blocks.0.attn.hook_pattern",
    "blocks.0.attn.hook_z",
    "blocks.0.hook_attn_out",
    "blocks.0.hook_resid_mid",
    "blocks.0.ln2.hook_scale",
    "blocks.0.ln2.hook_normalized",
    "blocks.0.mlp.hook_pre",
    "blocks.0.mlp.hook_post",
    "blocks.0.hook_mlp_out",
    "blocks.0.hook_resid_post",
    "blocks.1.hook_resid_pre",
    "blocks.1.ln1.hook_scale",
    "blocks.1.ln1.hook_normalized",
    "blocks.1.attn.hook_q",
    "blocks.1.attn.hook_k",
    "blocks.1.attn.hook_v",
    "blocks.1.attn.hook_attn_scores",
    "blocks.1.attn.hook_pattern",
    "blocks.1.attn.hook_z",
    "blocks.1.hook_attn_out",
    "blocks.1.hook_resid_mid",
    "blocks.1.ln2.hook_scale",
    "blocks.1.ln2.hook_normalized",
    "blocks.1.mlp.hook_pre",
    "blocks.1.mlp.hook_post",
    "blocks.1.hook_mlp_out",
    "blocks.1.hook_resid_post",
    "ln_final.hook_scale",
    "ln_final.hook_normalized",
    "logits",
]


def test_trace_keys_are_the_golden_list_in_forward_order(tiny_trace: Trace) -> None:
    assert tiny_trace.config.n_layer == 2
    assert list(tiny_trace.acts) == GOLDEN_KEYS_2_LAYERS
    assert canonical_names(2) == GOLDEN_KEYS_2_LAYERS


def test_every_activation_has_its_documented_shape(tiny_trace: Trace) -> None:
    cfg, T = tiny_trace.config, tiny_trace.n_tokens
    d, H, dh, m, V = cfg.d_model, cfg.n_head, cfg.d_head, cfg.d_mlp, cfg.vocab_size
    assert (T, d, H, dh, m, V) == (tiny_trace.n_tokens, 32, 2, 16, 128, 4097)
    by_suffix = {
        "hook_embed": (T, d),
        "hook_pos_embed": (T, d),
        "hook_resid_pre": (T, d),
        "hook_scale": (T, 1),
        "hook_normalized": (T, d),
        "hook_q": (T, H, dh),
        "hook_k": (T, H, dh),
        "hook_v": (T, H, dh),
        "hook_attn_scores": (H, T, T),
        "hook_pattern": (H, T, T),
        "hook_z": (T, H, dh),
        "hook_attn_out": (T, d),
        "hook_resid_mid": (T, d),
        "hook_pre": (T, m),
        "hook_post": (T, m),
        "hook_mlp_out": (T, d),
        "hook_resid_post": (T, d),
        "logits": (T, V),
    }
    for name, arr in tiny_trace.acts.items():
        assert arr.shape == by_suffix[name.rsplit(".", 1)[-1]], name
        assert arr.dtype == np.float32
    assert tiny_trace.token_ids.dtype == np.int64
    assert tiny_trace.token_ids.shape == (T,)


def test_get_and_getitem_read_the_same_array(tiny_trace: Trace) -> None:
    assert tiny_trace.get("attn.hook_pattern", 1) is tiny_trace["blocks.1.attn.hook_pattern"]
    assert tiny_trace.get("logits") is tiny_trace.logits
    assert tiny_trace.nbytes() == sum(a.nbytes for a in tiny_trace.acts.values()) + 8 * len(
        tiny_trace.token_ids
    )


def test_act_name_rejects_wrong_layer_use() -> None:
    assert act_name("attn.hook_pattern", 3) == "blocks.3.attn.hook_pattern"
    with pytest.raises(ValueError, match="lives inside a block"):
        act_name("attn.hook_pattern")
    with pytest.raises(ValueError, match="outside the blocks"):
        act_name("logits", 0)
    with pytest.raises(KeyError, match="unknown activation site"):
        act_name("attn.hook_patern", 0)


def test_the_traces_docstring_holds_the_table_of_sites() -> None:
    # engine/trace.py copies engine.names.site_table() into Trace's docstring: keep them equal
    assert textwrap.indent(site_table(), "    ") in (Trace.__doc__ or "")
    assert len(site_table().splitlines()) == len(SITES)


def test_the_size_class_follows_the_shape() -> None:
    # "large" = grows with T * T or T * m: what the float16 "large" option stores
    for site in SITES:
        large = site.shape.count("T") == 2 or "m" in site.shape
        assert (site.size == "large") == large, site.name
        assert site.meaning and site.dims(dict.fromkeys("TdmHhV1", 2)) == (2,) * len(site.shape)


# --- validation ----------------------------------------------------------------------------------

_CFG = GPTConfig(n_layer=1, n_head=2, d_model=4, n_ctx=8, vocab_size=6)


def _small_trace(**overrides: object) -> Trace:
    T = 3
    fields: dict[str, object] = {
        "prompt": "abc",
        "token_ids": np.array([1, 2, 3]),
        "token_strs": ("a", "b", "c"),
        "config": _CFG,
        "acts": {
            "logits": np.zeros((T, 6), dtype=np.float32),
            "blocks.0.attn.hook_pattern": np.zeros((2, T, T), dtype=np.float32),
        },
    }
    fields.update(overrides)
    return Trace(**fields)  # type: ignore[arg-type]


def test_a_valid_hand_built_trace_is_accepted() -> None:
    trace = _small_trace()
    assert trace.n_tokens == 3
    assert trace.token_ids.dtype == np.int64


@pytest.mark.parametrize(
    ("acts", "message"),
    [
        (
            {"logits": np.zeros((3, 7), dtype=np.float32)},
            r"activation 'logits' has shape \(3, 7\), expected \(3, 6\) for 3 tokens",
        ),
        (
            {"logits": np.zeros((3, 6)), "blocks.0.attn.hook_pattern": np.zeros((2, 4, 4))},
            r"'blocks.0.attn.hook_pattern' has shape \(2, 4, 4\), expected \(2, 3, 3\)",
        ),
        (
            {"logits": np.zeros((3, 6)), "blocks.0.attn.pattern": np.zeros((2, 3, 3))},
            r"unknown activation name 'blocks.0.attn.pattern'",
        ),
        (
            {"logits": np.zeros((3, 6)), "blocks.1.hook_resid_pre": np.zeros((3, 4))},
            r"unknown activation name 'blocks.1.hook_resid_pre'.*1 layers",
        ),
        (
            {"logits": np.zeros((3, 6)), "blocks.00.hook_resid_pre": np.zeros((3, 4))},
            r"unknown activation name 'blocks.00.hook_resid_pre'",
        ),
        ({"hook_embed": np.zeros((3, 4))}, "must hold the logits"),
        ({"logits": np.zeros((3, 6), dtype=np.int32)}, "must hold floats"),
    ],
)
def test_trace_validation_names_the_problem(acts: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _small_trace(acts=acts)


def test_trace_rejects_a_token_count_mismatch() -> None:
    with pytest.raises(ValueError, match="2 token strings for 3 token ids"):
        _small_trace(token_strs=("a", "b"))
    with pytest.raises(ValueError, match="at least one token"):
        _small_trace(token_ids=np.array([], dtype=np.int64), token_strs=())
    with pytest.raises(ValueError, match="1-D array of integers"):
        _small_trace(token_ids=np.array([[1, 2, 3]]))


# --- immutability and pickling -------------------------------------------------------------------


def test_trace_arrays_are_read_only(tiny_trace: Trace) -> None:
    with pytest.raises(ValueError, match="read-only"):
        tiny_trace.logits[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        tiny_trace.token_ids[0] = 1
    for arr in tiny_trace.acts.values():
        assert not arr.flags.writeable
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny_trace.prompt = "other"  # type: ignore[misc]


def test_a_writable_array_given_to_a_trace_is_copied_not_aliased() -> None:
    logits = np.ones((3, 6), dtype=np.float32)
    trace = _small_trace(acts={"logits": logits})
    logits[0, 0] = 99.0
    assert trace.logits[0, 0] == 1.0
    assert not trace.logits.flags.writeable
    assert logits.flags.writeable  # the caller's array is left as it was


def test_trace_survives_pickling_with_equal_read_only_arrays(tiny_trace: Trace) -> None:
    copy = pickle.loads(pickle.dumps(tiny_trace))
    assert list(copy.acts) == list(tiny_trace.acts)
    for name, arr in tiny_trace.acts.items():
        np.testing.assert_array_equal(copy[name], arr)
        assert not copy[name].flags.writeable, name
    np.testing.assert_array_equal(copy.token_ids, tiny_trace.token_ids)
    assert not copy.token_ids.flags.writeable
    assert copy.token_strs == tiny_trace.token_strs
    assert copy.config == tiny_trace.config
    assert copy.prompt == tiny_trace.prompt
    assert copy.model_name == "tiny"
