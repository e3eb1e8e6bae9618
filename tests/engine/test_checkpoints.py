"""Checkpoints: save/load round trips, Hugging Face key variants, and every broken file the loader
must refuse with a message that names the problem (never a traceback, never running code)."""

from __future__ import annotations

import json
import os
import pickle
import shlex
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.card import ModelCard
from engine.checkpoints import (
    CheckpointError,
    config_from_hf,
    config_to_hf,
    estimate_bytes,
    load,
    load_directory,
    random_model,
    save_checkpoint,
)
from engine.config import PRESETS, GPTConfig
from engine.model import GPT
from engine.tokenizer import ENDOFTEXT, _gpt2_byte_decoder

SMALL = GPTConfig(n_layer=2, n_head=2, d_model=16, n_ctx=16, vocab_size=300)


def _logits(model: GPT, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids]))


def _write_byte_vocab(directory: Path) -> None:
    """A GPT-2-style tokenizer with no merges: the 256 bytes and <|endoftext|> (257 tokens)."""
    alphabet = sorted(_gpt2_byte_decoder(), key=lambda ch: (ord(ch) >= 256, ord(ch)))
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab[ENDOFTEXT] = 256
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")


def _hf_directory(tmp_path: Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    """A Hugging Face-style GPT-2 directory of SMALL (config.json, vocab.json, merges.txt) whose
    weights file the test writes."""
    directory = tmp_path / "hf"
    directory.mkdir()
    raw = config_to_hf(SMALL)
    (directory / "config.json").write_text(json.dumps(raw), encoding="utf-8")
    _write_byte_vocab(directory)
    if state is not None:
        save_file(state, str(directory / "model.safetensors"))
    return directory


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in random_model(SMALL, seed=seed).state_dict().items()}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ckpt") / "tiny"
    model = random_model(PRESETS["tiny"], seed=4)
    return save_checkpoint(model, directory, n_ranks=4096, card=ModelCard(trained_on="nothing"))


# --- round trips ---------------------------------------------------------------------------------


def test_saved_checkpoint_loads_back_with_identical_weights_and_logits(saved: Path) -> None:
    original = random_model(PRESETS["tiny"], seed=4)
    loaded = load_directory(saved)
    assert loaded.config == PRESETS["tiny"]
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    ids = loaded.tokenizer.encode("Hello, world")
    assert torch.equal(_logits(loaded.model, ids), _logits(original, ids))
    assert loaded.tokenizer.name == "cl100k_base[:4096]"
    assert loaded.card == ModelCard(trained_on="nothing")
    assert loaded.name == "tiny"
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())


def test_saved_config_is_a_hugging_face_gpt2_config(saved: Path) -> None:
    raw = json.loads((saved / "config.json").read_text(encoding="utf-8"))
    assert raw["model_type"] == "gpt2"
    assert (raw["n_layer"], raw["n_head"], raw["n_embd"], raw["n_positions"]) == (2, 2, 32, 32)
    assert raw["vocab_size"] == 4097
    assert raw["inside_gpt"]["tokenizer"] == {"kind": "cl100k_base", "n_ranks": 4096}
    assert config_from_hf(raw) == PRESETS["tiny"]
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors"]


def test_saving_over_a_checkpoint_replaces_both_files_and_leaves_no_temporaries(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "run"
    first = random_model(SMALL, seed=1)
    save_checkpoint(first, directory, n_ranks=256, card=ModelCard(trained_on="step 1"))
    second = random_model(SMALL, seed=2)
    save_checkpoint(second, directory, n_ranks=256, card=ModelCard(trained_on="step 2"))
    loaded = load_directory(directory)
    assert loaded.card == ModelCard(trained_on="step 2")
    assert torch.equal(loaded.model.transformer.wte.weight, second.transformer.wte.weight)
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]


def test_load_by_path_string_equals_load_directory(saved: Path) -> None:
    a, b = load(str(saved)), load_directory(saved)
    ids = [1, 2, 3]
    assert torch.equal(_logits(a.model, ids), _logits(b.model, ids))


def test_load_random_is_the_bundled_shape_with_seeded_weights() -> None:
    a, b = load("random"), load("random")
    assert a.name == "random"
    assert a.config == PRESETS["bundled"]
    assert a.tokenizer.vocab_size == 8193
    assert torch.equal(a.model.transformer.wte.weight, b.model.transformer.wte.weight)


def test_hugging_face_key_variants_load_the_same_weights(tmp_path: Path) -> None:
    state = _state(seed=2)
    # GPT2Model's bare keys, a DataParallel "module." prefix, old mask buffers, a tied lm_head
    variant = {("module." + k.removeprefix("transformer.")): v for k, v in state.items()}
    variant["module.h.0.attn.bias"] = torch.ones(1, 1, 16, 16)
    variant["lm_head.weight"] = state["transformer.wte.weight"].clone()
    directory = _hf_directory(tmp_path, variant)
    loaded = load_directory(directory)
    for key, value in state.items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    assert loaded.tokenizer.vocab_size == 257


def test_half_precision_weights_load_as_float32(tmp_path: Path) -> None:
    state = {k: v.half() for k, v in _state().items()}
    loaded = load_directory(_hf_directory(tmp_path, state))
    wte = loaded.model.transformer.wte.weight
    assert wte.dtype == torch.float32
    assert torch.equal(wte, state["transformer.wte.weight"].float())


def test_a_plain_pytorch_model_bin_loads(tmp_path: Path) -> None:
    directory = _hf_directory(tmp_path)
    state = _state(seed=5)
    torch.save(state, directory / "pytorch_model.bin")
    loaded = load_directory(directory)
    assert torch.equal(loaded.model.transformer.wte.weight, state["transformer.wte.weight"])


def test_estimate_bytes_counts_float32_weights_and_masks() -> None:
    gpt2 = PRESETS["gpt2"]
    assert estimate_bytes(gpt2) == 4 * 124_439_808 + 12 * 1024 * 1024


# --- broken checkpoints --------------------------------------------------------------------------


def _config_dir(tmp_path: Path, raw: object) -> Path:
    directory = tmp_path / "broken"
    directory.mkdir()
    text = raw if isinstance(raw, str) else json.dumps(raw)
    (directory / "config.json").write_text(text, encoding="utf-8")
    _write_byte_vocab(directory)
    return directory


def _raw(**changes: object) -> dict:
    raw = config_to_hf(SMALL)
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not None}


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nowhere is not a directory"):
        load_directory(tmp_path / "nowhere")


def test_a_directory_without_config_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty/ has no config.json"):
        load_directory(tmp_path / "empty")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"model_type": "gpt2",', "config.json is not valid JSON"),
        ("[1, 2, 3]", "config.json is not a JSON object"),
        (_raw(model_type="llama"), "model_type 'llama'; only 'gpt2' is supported"),
        (_raw(model_type=None), "model_type None; only 'gpt2' is supported"),
        (_raw(n_layer=None), "config.json lacks the field 'n_layer'"),
        (_raw(n_head="many"), "not a valid GPT-2 config"),
        (_raw(n_layer=2.7), "field 'n_layer' must be an integer, got 2.7"),
        (_raw(n_layer="2"), "field 'n_layer' must be an integer, got '2'"),
        (_raw(n_embd=True), "field 'n_embd' must be an integer, got True"),
        (json.dumps(_raw()).replace('"n_layer": 2', '"n_layer": Infinity'), "got inf"),
        (json.dumps(_raw()).replace('"n_inner": 64', '"n_inner": NaN'), "'n_inner' .* got nan"),
        ("[" * 100_000 + "]" * 100_000, "config.json is not valid JSON"),
        (_raw(n_head=3), r"d_model \(16\) must be divisible by n_head \(3\)"),
        (_raw(activation_function="prelu"), "activation_function = 'prelu' is not supported"),
        (_raw(activation_function="xielu"), "activation_function = 'xielu' is not supported"),
        (_raw(activation_function=["relu"]), r"activation_function = \['relu'\] is not"),
        (_raw(tie_word_embeddings="no"), "tie_word_embeddings = 'no' is not true or false"),
        (_raw(scale_attn_weights=0), "scale_attn_weights = 0 is not true or false"),
        (_raw(scale_attn_by_inverse_layer_idx=1), "scale_attn_by_inverse_layer_idx = 1 is not"),
        (_raw(reorder_and_upcast_attn="yes"), "reorder_and_upcast_attn = 'yes' is not true"),
        (_raw(add_cross_attention=True), "add_cross_attention = True is not supported"),
        (_raw(layer_norm_epsilon=2.0), r"layer_norm_epsilon = 2.0 is not a number in \(0, 1\)"),
        (_raw(layer_norm_epsilon="1e-5"), r"layer_norm_epsilon = '1e-5' is not a number in"),
        (_raw(layer_norm_epsilon=0), r"layer_norm_epsilon = 0 is not a number in \(0, 1\)"),
        (_raw(resid_pdrop=1.0), r"resid_pdrop = 1.0 is not a number in \[0, 1\)"),
        (_raw(inside_gpt={"tokenizer": {"kind": "sentencepiece"}}), "unknown tokenizer kind"),
        (_raw(inside_gpt={"tokenizer": {"kind": "cl100k_base", "n_ranks": 5}}), "n_ranks in"),
        (_raw(inside_gpt=[1]), "'inside_gpt' is not an object"),
        (_raw(vocab_size=100), "the tokenizer has 257 tokens but the model only 100 embeddings"),
    ],
)
def test_a_bad_config_is_refused_with_its_problem_named(
    tmp_path: Path, raw: object, message: str
) -> None:
    with pytest.raises(CheckpointError, match=message):
        load_directory(_config_dir(tmp_path, raw))


def test_integral_float_sizes_are_read_as_integers() -> None:
    raw = _raw(n_layer=2.0, n_positions=16.0, n_inner=None)
    assert config_from_hf(raw) == SMALL


def test_absurd_sizes_are_refused_before_allocating(tmp_path: Path) -> None:
    directory = _config_dir(
        tmp_path, _raw(n_layer=10_000, n_embd=65_536, n_head=64, n_positions=1_000_000)
    )
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"GiB of weights .*refusing to allocate"):
        load_directory(directory)
    assert time.perf_counter() - start < 1.0


def test_missing_weights_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"neither model.safetensors nor pytorch_model.bin"):
        load_directory(_hf_directory(tmp_path))


@pytest.mark.parametrize("missing", ["vocab.json", "merges.txt"])
def test_a_gpt2_directory_without_its_tokenizer_files_is_refused(
    tmp_path: Path, missing: str
) -> None:
    directory = _hf_directory(tmp_path, _state())
    (directory / missing).unlink()
    with pytest.raises(
        CheckpointError, match=f"hf/ has no {missing} \\(the tokenizer\\) and no tokenizer.json"
    ):
        load_directory(directory)


def test_inconsistent_tokenizer_files_are_refused(tmp_path: Path) -> None:
    directory = _hf_directory(tmp_path, _state())
    (directory / "merges.txt").write_text("#version: 0.2\nh e\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"do not form a GPT-2 byte-level BPE"):
        load_directory(directory)


@pytest.mark.parametrize("keep", [0.5, 0.999, 100 / 1e9])
def test_a_truncated_safetensors_file_is_refused(tmp_path: Path, keep: float) -> None:
    directory = _hf_directory(tmp_path, _state())
    path = directory / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: max(4, int(len(data) * keep))])
    with pytest.raises(CheckpointError, match=r"model.safetensors is truncated or corrupt"):
        load_directory(directory)


def test_a_tensor_of_the_wrong_shape_is_named_with_both_shapes(tmp_path: Path) -> None:
    state = _state()
    state["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(16, 48)
    with pytest.raises(
        CheckpointError,
        match=r"weight 'transformer.h.1.mlp.c_fc.weight' in model.safetensors has shape "
        r"\[16, 48\], the config needs \[16, 64\]",
    ):
        load_directory(_hf_directory(tmp_path, state))


def test_a_missing_tensor_is_named(tmp_path: Path) -> None:
    state = _state()
    del state["transformer.h.0.ln_2.bias"]
    with pytest.raises(CheckpointError, match=r"lacks 1 weight.*'transformer.h.0.ln_2.bias'"):
        load_directory(_hf_directory(tmp_path, state))


def test_an_unexpected_tensor_is_named(tmp_path: Path) -> None:
    state = _state()
    state["transformer.h.2.ln_1.weight"] = torch.ones(16)  # a third layer the config lacks
    with pytest.raises(
        CheckpointError, match=r"1 unexpected weight.*'transformer.h.2.ln_1.weight'"
    ):
        load_directory(_hf_directory(tmp_path, state))


def test_an_untied_output_layer_is_refused_not_silently_replaced(tmp_path: Path) -> None:
    state = _state()
    state["lm_head.weight"] = torch.randn(300, 16)
    with pytest.raises(CheckpointError, match=r"lm_head.weight that differs from the token"):
        load_directory(_hf_directory(tmp_path, state))


class _RunsCommand:
    """Unpickling this runs a shell command (the classic malicious-checkpoint payload)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class _CustomObject:
    """Any class of ours: a weights-only loader must not import and build it."""

    def __init__(self) -> None:
        self.weights = torch.zeros(2)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dumps"])
def test_a_pytorch_model_bin_that_runs_code_is_refused_and_never_executed(
    tmp_path: Path, writer: str
) -> None:
    directory = _hf_directory(tmp_path)
    marker = tmp_path / "PAYLOAD_RAN"
    payload = {"transformer.wte.weight": torch.zeros(300, 16), "x": _RunsCommand(marker)}
    path = directory / "pytorch_model.bin"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match=r"is not plain weights.*nothing in it was run"):
        load_directory(directory)
    assert not marker.exists()


def test_a_pytorch_model_bin_with_a_custom_class_is_refused(tmp_path: Path) -> None:
    directory = _hf_directory(tmp_path)
    torch.save({"model": _CustomObject()}, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"not plain weights.*_CustomObject"):
        load_directory(directory)


@pytest.mark.parametrize(
    "content", [b"this is not a checkpoint at all" * 10, b"", b"PK\x03\x04broken zip"]
)
def test_a_corrupt_pytorch_model_bin_is_refused(tmp_path: Path, content: bytes) -> None:
    directory = _hf_directory(tmp_path)
    (directory / "pytorch_model.bin").write_bytes(content)
    with pytest.raises(CheckpointError, match=r"pytorch_model.bin is truncated or corrupt"):
        load_directory(directory)


def test_a_pytorch_model_bin_that_is_not_a_dict_of_tensors_is_refused(tmp_path: Path) -> None:
    directory = _hf_directory(tmp_path)
    torch.save([torch.zeros(3)], directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"does not hold a dictionary of tensors"):
        load_directory(directory)


# --- every number of config.json checked before any arithmetic (issue 20) ------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"n_positions": 1e200', r"n_positions = 1e\+200 is not an integer in \[1, 2,147,483,64"),
        ('"n_positions": -5', r"n_positions = -5 is not an integer in \[1, "),
        ('"n_positions": 0', r"n_positions = 0 is not an integer in \[1, "),
        ('"n_positions": 16.5', r"'n_positions' must be an integer, got 16.5"),
        ('"n_positions": false', r"'n_positions' must be an integer, got False"),
        ('"n_positions": "16"', r"'n_positions' must be an integer, got '16'"),
        ('"n_positions": [16]', r"'n_positions' must be an integer, got \[16\]"),
        ('"n_positions": ' + "9" * 400, r"n_positions = a number \(400 digits\) is not an integer"),
        ('"n_positions": ' + "9" * 5000, r"config.json is not valid JSON"),
        ('"n_layer": 1e200', r"n_layer = 1e\+200 is not an integer in \[1, "),
        ('"n_head": -1', r"n_head = -1 is not an integer in \[1, "),
        ('"n_embd": 4294967296', r"n_embd = 4294967296 is not an integer in \[1, "),
        ('"vocab_size": 1e300', r"vocab_size = 1e\+300 is not an integer in \[1, "),
        ('"n_inner": -64', r"n_inner = -64 is not an integer in \[0, "),
        ('"n_inner": 1e200', r"n_inner = 1e\+200 is not an integer in \[0, "),
        ('"layer_norm_epsilon": 1e200', r"layer_norm_epsilon = 1e\+200 is not a number in"),
        ('"resid_pdrop": -0.5', r"resid_pdrop = -0.5 is not a number in \[0, 1\)"),
    ],
)
def test_every_number_of_config_json_is_checked_before_any_arithmetic(
    tmp_path: Path, text: str, message: str
) -> None:
    """Huge, negative, zero, fractional, boolean and non-numeric values give a CheckpointError
    naming the key, never an OverflowError or another exception (issue 20: "n_positions": 1e200
    raised OverflowError in the size check)."""
    key = text.split('"')[1]
    raw = {k: v for k, v in _raw().items() if k not in (key, "n_ctx")}
    body = json.dumps(raw)[:-1] + ", " + text + "}"
    with pytest.raises(CheckpointError, match=message):
        load_directory(_config_dir(tmp_path, body))


def test_n_ctx_is_named_when_it_stands_for_n_positions(tmp_path: Path) -> None:
    raw = {k: v for k, v in _raw().items() if k != "n_positions"}
    raw["n_ctx"] = 1e200
    with pytest.raises(CheckpointError, match=r"n_ctx = 1e\+200 is not an integer"):
        load_directory(_config_dir(tmp_path, raw))


@pytest.mark.parametrize("n_ranks", [1e200, -300, 300.5, True, "300"])
def test_the_recorded_tokenizer_size_is_checked(tmp_path: Path, n_ranks: object) -> None:
    raw = _raw(inside_gpt={"tokenizer": {"kind": "cl100k_base", "n_ranks": n_ranks}})
    with pytest.raises(CheckpointError, match=r"needs n_ranks in \[256, 100256\], got"):
        load_directory(_config_dir(tmp_path, raw))


@pytest.mark.parametrize("value", ["1e200", "NaN", "Infinity", "-Infinity", "9" * 400])
def test_a_card_number_that_cannot_be_shown_is_left_out(value: str) -> None:
    """A card's val_loss or count that is not finite (or too large for a float) is not read:
    the summary keeps what is readable and the home page never shows "nan" or "inf"."""
    raw = json.loads(f'{{"trained_on": "x", "val_loss": {value}, "tokens_seen": {value}}}')
    card = ModelCard.summary_of(raw)
    assert card is not None and card.trained_on == "x"
    finite_float = value == "1e200"
    assert card.val_loss == (1e200 if finite_float else None)
    assert card.tokens_seen is None


@pytest.mark.parametrize(
    ("obj", "named"),
    [
        ({"w": torch.zeros(2), "x": _CustomObject()}, "the global tests.engine.test_checkpoints"),
        ({"w": torch.zeros(2), "f": print}, "the global print"),
    ],
)
def test_a_refused_pickle_carries_only_our_advice(tmp_path: Path, obj: object, named: str) -> None:
    """torch's refusal text advises re-running with weights_only=False or allow-listing the
    global: the message names what the pickle asked for and nothing of that advice."""
    directory = _hf_directory(tmp_path)
    torch.save(obj, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as caught:
        load_directory(directory)
    message = str(caught.value)
    assert named in message and "nothing in it was run" in message
    for advice in ("weights_only", "safe_globals", "trusted", "Re-running", "PyTorch"):
        assert advice not in message
