"""All loading and saving of models lives here.

A checkpoint is a Hugging Face GPT-2 directory: `config.json` (`model_type: gpt2`) and
`model.safetensors` (or `pytorch_model.bin`, read with `torch.load(weights_only=True)` only).
Its tokenizer is either recorded in `config.json` under `"inside_gpt"` (this project's models:
cl100k_base cut to N ranks) or given by `vocab.json` + `merges.txt` (GPT-2 and its fine-tunes).
Every failure raises `CheckpointError` with a message that names the problem.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from engine.card import CardError, ModelCard
from engine.config import PRESETS, GPTConfig
from engine.model import GPT
from engine.tokenizer import Tokenizer, cl100k_truncated, gpt2_bpe

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
BUNDLED_DIR = ASSETS_DIR / "model"
RANDOM_SEED = 0
# Refuse a config whose float32 weights alone would need more than this (before allocating).
DEFAULT_MAX_BYTES = int(os.environ.get("INSIDE_GPT_MAX_MODEL_BYTES", 6 * 1024**3))


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message says why."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for inference (eval mode, never mutated after loading) and its tokenizer."""

    name: str
    model: GPT
    tokenizer: Tokenizer
    source: str  # where the weights came from, for the UI
    card: ModelCard | None = None  # training facts from config.json (engine.card)

    @property
    def config(self) -> GPTConfig:
        return self.model.config


def estimate_bytes(config: GPTConfig) -> int:
    """float32 bytes of the weights plus the causal-mask buffers, before anything is allocated."""
    return 4 * config.n_params() + config.n_layer * config.n_ctx * config.n_ctx


def _check_size(config: GPTConfig, max_bytes: int) -> None:
    need = estimate_bytes(config)
    if need > max_bytes:
        raise CheckpointError(
            f"this config asks for about {need / 1024**3:.1f} GiB of weights "
            f"(limit {max_bytes / 1024**3:.1f} GiB); refusing to allocate it"
        )


# --- configs -----------------------------------------------------------------------------------


_REQUIRED = object()


def _integer(raw: dict[str, Any], key: str, default: Any = _REQUIRED) -> Any:
    """An integer field of config.json (KeyError if a required one is missing). A float that is
    a whole number is accepted (1024.0); 2.7, "12", true, Infinity and NaN are refused rather
    than truncated or left to fail later with an OverflowError."""
    value = raw[key] if default is _REQUIRED else raw.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {key!r} must be an integer, got {value!r}")
    return value


def config_from_hf(raw: dict[str, Any]) -> GPTConfig:
    """GPTConfig from a Hugging Face GPT-2 `config.json` dictionary."""
    if raw.get("model_type") != "gpt2":
        raise CheckpointError(
            f"config.json has model_type {raw.get('model_type')!r}; only 'gpt2' is supported"
        )
    act = raw.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise CheckpointError(f"activation_function {act!r} is not GPT-2's tanh GELU")
    # Variants of GPT-2's attention that this engine does not compute: refuse them rather than
    # give silently different numbers. (reorder_and_upcast_attn only changes precision.)
    if raw.get("scale_attn_weights", True) is False:
        raise CheckpointError("config.json sets scale_attn_weights to false; not supported")
    if raw.get("scale_attn_by_inverse_layer_idx", False):
        raise CheckpointError("config.json sets scale_attn_by_inverse_layer_idx; not supported")
    if raw.get("add_cross_attention", False):
        raise CheckpointError("config.json adds cross-attention (an encoder-decoder model)")
    if raw.get("tie_word_embeddings", True) is False:
        raise CheckpointError(
            "config.json sets tie_word_embeddings to false; this engine unembeds with the token "
            "embedding (as GPT-2 does) and cannot load a separate output layer"
        )
    try:
        n_embd = _integer(raw, "n_embd")
        return GPTConfig(
            n_layer=_integer(raw, "n_layer"),
            n_head=_integer(raw, "n_head"),
            d_model=n_embd,
            n_ctx=_integer(raw, "n_positions", raw.get("n_ctx", 1024)),
            vocab_size=_integer(raw, "vocab_size"),
            dropout=float(raw.get("resid_pdrop", 0.1)),
            layer_norm_eps=float(raw.get("layer_norm_epsilon", 1e-5)),
            d_mlp=_integer(raw, "n_inner", None) or 4 * n_embd,
        )
    except KeyError as err:
        raise CheckpointError(f"config.json lacks the field {err.args[0]!r}") from err
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"config.json is not a valid GPT-2 config: {err}") from err


def config_to_hf(config: GPTConfig, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Hugging Face GPT-2 `config.json` of `config`, with `extra` under "inside_gpt"."""
    raw: dict[str, Any] = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_embd": config.d_model,
        "n_positions": config.n_ctx,
        "n_ctx": config.n_ctx,
        "n_inner": config.d_mlp,
        "vocab_size": config.vocab_size,
        "activation_function": "gelu_new",
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": config.layer_norm_eps,
        "tie_word_embeddings": True,
        "bos_token_id": config.vocab_size - 1,
        "eos_token_id": config.vocab_size - 1,
    }
    if extra:
        raw["inside_gpt"] = extra
    return raw


# --- state dicts -------------------------------------------------------------------------------

_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def canonical_key(key: str) -> str | None:
    """This engine's name for a GPT-2 state-dict key, or None for keys to drop. The one place
    that cleans keys: strips wrapper prefixes (`module.`, `_orig_mod.`), adds `transformer.` to a
    bare GPT2Model's keys, drops GPT-2's old attention-mask buffers and the tied `lm_head`."""
    for prefix in ("module.", "_orig_mod."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    if key == "lm_head.weight" or key.endswith(_IGNORED_SUFFIXES):
        return None
    return key if key.startswith("transformer.") else "transformer." + key


def canonical_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`canonical_key` applied to every key of a state dict."""
    renamed = ((canonical_key(k), v) for k, v in state.items())
    return {k: v for k, v in renamed if k is not None}


def _expected_shapes(model: GPT) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _check_keys_and_shapes(
    found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], source: str
) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        raise CheckpointError(f"{source} lacks {len(missing)} weight(s), e.g. {missing[0]!r}")
    if unexpected:
        raise CheckpointError(
            f"{source} has {len(unexpected)} unexpected weight(s), e.g. {unexpected[0]!r}"
        )
    for key, shape in expected.items():
        if found[key] != shape:
            raise CheckpointError(
                f"weight {key!r} in {source} has shape {list(found[key])}, "
                f"the config needs {list(shape)}"
            )


def _lm_head_key(keys: list[str]) -> str | None:
    for key in keys:
        bare = key.removeprefix("module.").removeprefix("_orig_mod.")
        if bare == "lm_head.weight":
            return key
    return None


def _check_tied(lm_head: torch.Tensor | None, state: dict[str, torch.Tensor], source: str) -> None:
    """A stored `lm_head.weight` is dropped (the unembedding is tied to `wte`); refuse one that
    differs, which would otherwise be silently replaced."""
    if lm_head is not None and not torch.equal(lm_head.float(), state["transformer.wte.weight"]):
        raise CheckpointError(
            f"{source} has an lm_head.weight that differs from the token embedding; this engine "
            "ties them (as GPT-2 does) and cannot load a separate output layer"
        )


def _read_safetensors(path: Path, model: GPT) -> dict[str, torch.Tensor]:
    expected = _expected_shapes(model)
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            renamed = ((canonical_key(key), key) for key in keys)
            names = {new: key for new, key in renamed if new is not None}
            shapes = {ck: tuple(f.get_slice(k).get_shape()) for ck, k in names.items()}
            _check_keys_and_shapes(shapes, expected, path.name)
            state = {ck: f.get_tensor(k).float() for ck, k in names.items()}
            head_key = _lm_head_key(keys)
            _check_tied(f.get_tensor(head_key) if head_key else None, state, path.name)
            return state
    except SafetensorError as err:
        raise CheckpointError(f"{path.name} is truncated or corrupt: {err}") from err
    except OSError as err:
        raise CheckpointError(f"cannot read {path.name}: {err}") from err


def _refusal_reason(err: Exception) -> str:
    """The useful lines of torch's weights_only refusal (the global or opcode the pickle asked
    for), without torch's boilerplate, which suggests `weights_only=False`: never here."""
    boilerplate = ("Weights only load failed", "Check the documentation", "Please file an issue")
    lines = [line.strip() for line in str(err).splitlines()]
    useful = [line for line in lines if line and not line.startswith(boilerplate)]
    return "; ".join(useful) or type(err).__name__


def _read_bin(path: Path, model: GPT) -> dict[str, torch.Tensor]:
    """A pickled state dict, read with `torch.load(weights_only=True)`: a restricted unpickler
    that builds tensors and plain containers only and refuses anything else before it runs."""
    try:
        with warnings.catch_warnings():
            # Files pickled with protocol 4+ load fine; torch warns about it on every load.
            warnings.filterwarnings(
                "ignore", message="Detected pickle protocol", category=UserWarning
            )
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path.name} is not plain weights: it asks for code or objects that safe loading "
            f"refuses ({_refusal_reason(err)}); nothing in it was run"
        ) from err
    except OSError as err:
        raise CheckpointError(f"cannot read {path.name}: {err}") from err
    except Exception as err:  # a damaged file fails in many different ways inside torch
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path.name} is truncated or corrupt: {first}") from err
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(f"{path.name} does not hold a dictionary of tensors")
    state = canonical_state_dict(raw)
    _check_keys_and_shapes(
        {k: tuple(v.shape) for k, v in state.items()},
        _expected_shapes(model),
        path.name,
    )
    state = {k: v.float() for k, v in state.items()}
    head_key = _lm_head_key(list(raw))
    _check_tied(raw[head_key] if head_key else None, state, path.name)
    return state


# --- tokenizers --------------------------------------------------------------------------------


def _tokenizer_for(directory: Path, extra: dict[str, Any]) -> Tokenizer:
    spec = extra.get("tokenizer")
    if spec:
        if not isinstance(spec, dict) or spec.get("kind") != "cl100k_base":
            kind = spec.get("kind") if isinstance(spec, dict) else spec
            raise CheckpointError(f"unknown tokenizer kind {kind!r} in config.json")
        try:
            return cl100k_truncated(int(spec["n_ranks"]))
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(
                f"config.json's cl100k_base tokenizer needs n_ranks in [256, 100256], "
                f"got {spec.get('n_ranks')!r}"
            ) from err
    vocab, merges = directory / "vocab.json", directory / "merges.txt"
    for needed in (vocab, merges):
        if not needed.is_file():
            raise CheckpointError(f"{directory.name}/ has no {needed.name} (the tokenizer)")
    try:
        return gpt2_bpe(vocab, merges)
    except ValueError as err:
        raise CheckpointError(str(err)) from err


# --- public API --------------------------------------------------------------------------------


def random_model(
    config: GPTConfig, seed: int = RANDOM_SEED, sinusoidal_positions: bool = False
) -> GPT:
    """A GPT with GPT-2's initialisation drawn from `seed`, in eval mode with frozen parameters
    (like a loaded checkpoint: no autograd graph, `.numpy()` works on anything computed from it).
    To train it, switch `requires_grad_(True)` on its parameters and call `.train()`."""
    model = GPT(config)
    model.init_weights(torch.Generator().manual_seed(seed), sinusoidal_positions)
    return _frozen(model)


def _frozen(model: GPT) -> GPT:
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def load_directory(
    directory: str | Path, name: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> LoadedModel:
    """Load a Hugging Face GPT-2 directory (or one saved by `save_checkpoint`)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a directory")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{directory.name}/ has no config.json")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise CheckpointError(f"{directory.name}/config.json is not valid JSON: {err}") from err
    except OSError as err:
        raise CheckpointError(f"cannot read {directory.name}/config.json: {err}") from err
    if not isinstance(raw, dict):
        raise CheckpointError(f"{directory.name}/config.json is not a JSON object")
    config = config_from_hf(raw)
    _check_size(config, max_bytes)
    extra = raw.get("inside_gpt") or {}
    if not isinstance(extra, dict) or not isinstance(extra.get("card", {}), dict):
        raise CheckpointError(f"{directory.name}/config.json: 'inside_gpt' is not an object")
    card = _card_of(directory, extra)
    tokenizer = _tokenizer_for(directory, extra)
    if tokenizer.vocab_size > config.vocab_size:
        raise CheckpointError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
            f"{config.vocab_size} embeddings"
        )
    model = GPT(config)
    safetensors_path, bin_path = (
        directory / "model.safetensors",
        directory / "pytorch_model.bin",
    )
    if safetensors_path.is_file():
        state = _read_safetensors(safetensors_path, model)
    elif bin_path.is_file():
        state = _read_bin(bin_path, model)
    else:
        sharded = any(directory.glob("*.index.json"))
        raise CheckpointError(
            f"{directory.name}/ has neither model.safetensors nor pytorch_model.bin"
            + (" (sharded checkpoints are not supported)" if sharded else "")
        )
    model.load_state_dict(state, strict=True)
    _frozen(model)
    return LoadedModel(
        name=name or directory.name,
        model=model,
        tokenizer=tokenizer,
        source=str(directory),
        card=card,
    )


def _card_of(directory: Path, extra: dict[str, Any]) -> ModelCard | None:
    """The card in `inside_gpt`, or None when there is none. A card this version cannot read
    in full (an older format, a hand-written one) gives its summary (`ModelCard.summary_of`)
    with a warning: it never stops the weights from loading."""
    if extra.get("card") is None:
        return None
    try:
        return ModelCard.from_dict(extra["card"])
    except CardError as err:
        log.warning(
            "%s/config.json: reading only the summary of its model card: %s", directory.name, err
        )
        return ModelCard.summary_of(extra["card"])


def save_checkpoint(
    model: GPT, directory: str | Path, n_ranks: int, card: ModelCard | None = None
) -> Path:
    """Write `config.json` + `model.safetensors` (a GPT-2 directory `transformers` can load),
    recording the tokenizer (cl100k_base cut to `n_ranks`) and optional training facts."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {"tokenizer": {"kind": "cl100k_base", "n_ranks": n_ranks}}
    if card is not None:
        extra["card"] = card.to_dict()
    raw = config_to_hf(model.config, extra)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = directory / "model.safetensors.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(directory / "model.safetensors")
    # Replaced, not rewritten in place: a reader (the app, an evaluation of a running training)
    # never sees a half-written config.json.
    tmp_config = directory / "config.json.tmp"
    tmp_config.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    tmp_config.replace(directory / "config.json")
    return directory


def bundled_n_ranks() -> int:
    """The bundled tokenizer's size: cl100k_base ranks kept (4,096)."""
    return PRESETS["bundled"].vocab_size - 1


def load(spec: str, models_dir: str | Path | None = None) -> LoadedModel:
    """`bundled`, `random` (the bundled shape, seeded, untrained) or a directory path."""
    if spec == "bundled":
        if (BUNDLED_DIR / "config.json").is_file():
            return load_directory(BUNDLED_DIR, name="bundled")
        log.warning("no bundled checkpoint in %s: using the untrained model", BUNDLED_DIR)
        spec = "random"
    if spec == "random":
        config = PRESETS["bundled"]
        return LoadedModel(
            name="random",
            model=random_model(config),
            tokenizer=cl100k_truncated(bundled_n_ranks()),
            source=f"untrained, GPT-2 initialisation, seed {RANDOM_SEED}",
            card=ModelCard(trained_on="nothing (random weights)"),
        )
    path = Path(spec)
    if models_dir is not None and not path.is_absolute():
        path = Path(models_dir) / spec
    return load_directory(path)
