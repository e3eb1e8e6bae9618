"""All loading and saving of models lives here.

A checkpoint is a Hugging Face GPT-2 directory: `config.json` (`model_type: gpt2`) and
`model.safetensors` (or `pytorch_model.bin`, read with `torch.load(weights_only=True)` only;
either may be sharded, listed by its `.index.json`; float16/bfloat16 are computed in float32).
Its tokenizer is either recorded in `config.json` under `"inside_gpt"` (this project's models:
cl100k_base cut to N ranks) or given by Hugging Face's `tokenizer.json` (what `transformers` 5
writes) or `vocab.json` + `merges.txt` (GPT-2 and its fine-tunes): a byte-level BPE, any ids.
Every failure raises `CheckpointError` with a message that names the problem.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from engine.card import CardError, ModelCard
from engine.config import ACTIVATIONS, PRESETS, GPTConfig
from engine.model import GPT
from engine.tokenizer import Tokenizer, cl100k_truncated, gpt2_bpe, tokenizer_json_bpe

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
    # The dtype(s) the checkpoint stored its weights in, e.g. "bfloat16"; they are computed in
    # float32 here whatever it was (the UI can say so).
    stored_dtype: str = "float32"

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


# The largest size a config.json field may give (the int32 limit of a tensor dimension in many
# torch kernels). Checked before any arithmetic, so a size check never meets a number too large
# for a float ("n_positions": 1e200 raised OverflowError there).
MAX_SIZE = 2**31 - 1


def _integer(
    raw: dict[str, Any], key: str, default: Any = _REQUIRED, low: int = 1, name: str | None = None
) -> Any:
    """An integer field of config.json in [low, MAX_SIZE] (KeyError if a required one is
    missing; `name`: the key to name in messages when the value was read under another). A float
    that is a whole number is accepted (1024.0); 2.7, "12", true, Infinity, NaN, 1e200, 0 and
    negative sizes are refused with a message naming the key, rather than truncated or left to
    fail later (an OverflowError, a negative allocation)."""
    value = raw[key] if default is _REQUIRED else raw.get(key, default)
    name = name or key
    if value is None and default is None:
        return None
    given = value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {name!r} must be an integer, got {value!r}")
    if not low <= value <= MAX_SIZE:
        shown = repr(given) if isinstance(given, float) or abs(value) < 10**15 else "a number"
        shown += f" ({len(str(abs(value)))} digits)" if shown == "a number" else ""
        raise CheckpointError(
            f"config.json: {name} = {shown} is not an integer in [{low}, {MAX_SIZE:,}]"
        )
    return value


def _number(raw: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    """A real-number field of config.json in the open interval (low, high) ([0, high) for
    dropout: low < 0 then); anything else is refused, naming the key and its value."""
    value = raw.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (0 <= value < high if low < 0 else low < value < high):
        bounds = f"[0, {high:g})" if low < 0 else f"({low:g}, {high:g})"
        raise CheckpointError(f"config.json: {key} = {value!r} is not a number in {bounds}")
    return float(value)


def _flag(raw: dict[str, Any], key: str, default: bool) -> bool:
    """A true/false field of config.json; anything else is refused, naming the key and value."""
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise CheckpointError(f"config.json: {key} = {value!r} is not true or false")
    return value


def _refuse_unsupported(raw: dict[str, Any]) -> None:
    """Refuse, naming the key and its value, what this engine does not compute: another model
    type, an activation outside `ACTIVATIONS`, cross-attention (an encoder-decoder model)."""
    if raw.get("model_type") != "gpt2":
        raise CheckpointError(
            f"config.json has model_type {raw.get('model_type')!r}; only 'gpt2' is supported"
        )
    act = raw.get("activation_function", "gelu_new")
    if act not in ACTIVATIONS:
        raise CheckpointError(
            f"config.json: activation_function = {act!r} is not supported; this engine computes "
            + ", ".join(ACTIVATIONS)
        )
    if _flag(raw, "add_cross_attention", False):
        raise CheckpointError(
            "config.json: add_cross_attention = True is not supported (an encoder-decoder model)"
        )
    # Hugging Face's reorder_and_upcast_attn computes the attention scores in float32; every
    # weight here is float32 already, so it is the same function: accepted, checked for type.
    _flag(raw, "reorder_and_upcast_attn", False)


def _context(raw: dict[str, Any]) -> int:
    """`n_positions`, or the older `n_ctx` when it is absent (1024 when both are), checked by
    `_integer` under the name it was read from."""
    key = "n_positions" if "n_positions" in raw else "n_ctx"
    return _integer(raw, key, 1024)


def config_from_hf(raw: dict[str, Any]) -> GPTConfig:
    """GPTConfig from a Hugging Face GPT-2 `config.json` dictionary (`transformers.GPT2Config`).

    Every option of GPT2Config that changes the function computed is read: `n_inner`,
    `layer_norm_epsilon`, `activation_function` (any name in `engine.config.ACTIVATIONS`),
    `scale_attn_weights`, `scale_attn_by_inverse_layer_idx`, `reorder_and_upcast_attn` (the same
    function in float32) and `tie_word_embeddings`. Raises CheckpointError naming the key and
    its value for anything else this engine does not compute, or a missing/invalid field."""
    _refuse_unsupported(raw)
    try:
        n_embd = _integer(raw, "n_embd")
        return GPTConfig(
            n_layer=_integer(raw, "n_layer"),
            n_head=_integer(raw, "n_head"),
            d_model=n_embd,
            n_ctx=_context(raw),
            vocab_size=_integer(raw, "vocab_size"),
            dropout=_number(raw, "resid_pdrop", 0.1, -1.0, 1.0),
            layer_norm_eps=_number(raw, "layer_norm_epsilon", 1e-5, 0.0, 1.0),
            d_mlp=_integer(raw, "n_inner", None, low=0) or 4 * n_embd,
            activation=raw.get("activation_function", "gelu_new"),
            scale_attn_weights=_flag(raw, "scale_attn_weights", True),
            scale_attn_by_inverse_layer_idx=_flag(raw, "scale_attn_by_inverse_layer_idx", False),
            tie_word_embeddings=_flag(raw, "tie_word_embeddings", True),
        )
    except CheckpointError:
        raise
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
        "activation_function": config.activation,
        "scale_attn_weights": config.scale_attn_weights,
        "scale_attn_by_inverse_layer_idx": config.scale_attn_by_inverse_layer_idx,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": config.layer_norm_eps,
        "tie_word_embeddings": config.tie_word_embeddings,
        "bos_token_id": config.vocab_size - 1,
        "eos_token_id": config.vocab_size - 1,
    }
    if extra:
        raw["inside_gpt"] = extra
    return raw


# --- state dicts -------------------------------------------------------------------------------

_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
WTE_KEY, LM_HEAD_KEY = "transformer.wte.weight", "lm_head.weight"
# The weight files of a directory, in the order they are looked for; an index file lists shards.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_SAFETENSORS_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}


def canonical_key(key: str) -> str | None:
    """This engine's name for a GPT-2 state-dict key, or None for keys to drop. The one place
    that cleans keys: strips wrapper prefixes (`module.`, `_orig_mod.`), adds `transformer.` to a
    bare GPT2Model's keys, drops GPT-2's old attention-mask buffers; `lm_head.weight` stays
    `lm_head.weight` (`_key_plan` decides what it is: tied or the model's own)."""
    for prefix in ("module.", "_orig_mod."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    if key.endswith(_IGNORED_SUFFIXES):
        return None
    if key == LM_HEAD_KEY:
        return key
    return key if key.startswith("transformer.") else "transformer." + key


def canonical_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`canonical_key` applied to every key of a state dict."""
    renamed = ((canonical_key(k), v) for k, v in state.items())
    return {k: v for k, v in renamed if k is not None}


def _key_plan(keys: list[str], tied: bool, source: str) -> tuple[dict[str, str], str | None]:
    """(engine name -> stored key, the stored key of a tied `lm_head.weight` to compare with
    `wte`, or None). A tied embedding may be stored under either name: only as
    `lm_head.weight` (what `safetensors.torch.save_model` writes) it becomes `wte`. Raises
    CheckpointError for a weight stored twice under different names."""
    names: dict[str, str] = {}
    head: str | None = None
    for key in keys:
        new = canonical_key(key)
        if new is None:
            continue
        if new == LM_HEAD_KEY and tied:
            head = key
            continue
        if new in names:
            raise CheckpointError(f"{source} stores {new!r} twice: as {names[new]!r} and {key!r}")
        names[new] = key
    if head is not None and WTE_KEY not in names:
        names[WTE_KEY], head = head, None
    return names, head


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
            + (" (config.json ties the embeddings)" if unexpected[0] == LM_HEAD_KEY else "")
        )
    for key, shape in expected.items():
        if found[key] != shape:
            raise CheckpointError(
                f"weight {key!r} in {source} has shape {list(found[key])}, "
                f"the config needs {list(shape)}"
            )


def _check_tied(lm_head: torch.Tensor | None, state: dict[str, torch.Tensor], source: str) -> None:
    """A stored tied `lm_head.weight` is dropped (the unembedding is `wte`); refuse one that
    differs, which would otherwise be silently replaced."""
    if lm_head is not None and not torch.equal(lm_head.float(), state[WTE_KEY]):
        raise CheckpointError(
            f"{source} has an lm_head.weight that differs from the token embedding, but "
            "config.json has tie_word_embeddings = true (set it to false for an own output layer)"
        )


@dataclass(frozen=True)
class _Stored:
    """What a checkpoint stores, read before any tensor is: stored key -> (file, shape, dtype)."""

    entries: dict[str, tuple[Path, tuple[int, ...], str]]
    source: str  # the file name(s), for messages


def _weight_files(directory: Path) -> list[Path]:
    """The weight files of `directory`: one file, or the shards its index file lists. Raises
    CheckpointError for none, or an index that is not JSON with a `weight_map` of file names
    inside the directory."""
    for name in WEIGHT_FILES:
        path = directory / name
        if path.is_file():
            break
    else:
        raise CheckpointError(
            f"{directory.name}/ has neither model.safetensors nor pytorch_model.bin "
            "(nor an .index.json of their shards)"
        )
    if not name.endswith(".index.json"):
        return [path]
    try:
        weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"cannot read {name}: {err}") from err
    except (KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{name} has no weight_map of weight -> file name") from err
    for shard in shards:
        if not isinstance(shard, str) or Path(shard).name != shard or shard.startswith("."):
            raise CheckpointError(f"{name} lists the shard {shard!r}, not a file name")
        if not (directory / shard).is_file():
            raise CheckpointError(f"{name} lists the shard {shard!r}, which is not in the folder")
    return [directory / shard for shard in shards]


def _stored_safetensors(paths: list[Path]) -> _Stored:
    entries: dict[str, tuple[Path, tuple[int, ...], str]] = {}
    for path in paths:
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    if key in entries:
                        raise CheckpointError(f"{key!r} is stored in two shards")
                    part = f.get_slice(key)
                    dtype = _SAFETENSORS_DTYPES.get(part.get_dtype(), part.get_dtype())
                    entries[key] = (path, tuple(part.get_shape()), dtype)
        except SafetensorError as err:
            raise CheckpointError(f"{path.name} is truncated or corrupt: {err}") from err
        except OSError as err:
            raise CheckpointError(f"cannot read {path.name}: {err}") from err
    return _Stored(entries, ", ".join(p.name for p in paths))


def _read_safetensors(stored: _Stored, keys: list[str]) -> dict[str, torch.Tensor]:
    """The tensors `keys` (stored keys) as stored, each file opened once."""
    out: dict[str, torch.Tensor] = {}
    for path in dict.fromkeys(stored.entries[k][0] for k in keys):
        try:
            with safe_open(str(path), framework="pt") as f:
                out.update({k: f.get_tensor(k) for k in keys if stored.entries[k][0] == path})
        except SafetensorError as err:
            raise CheckpointError(f"{path.name} is truncated or corrupt: {err}") from err
        except OSError as err:
            raise CheckpointError(f"cannot read {path.name}: {err}") from err
    return out


def _refusal_reason(err: Exception) -> str:
    """What torch's weights_only unpickler refused, in our words: the global the pickle asked
    for ("the global posix.system") or the pickle opcode, never torch's own text, which advises
    re-running with `weights_only=False` or allow-listing the global: never done here."""
    text = str(err)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"the global {found.group(1)}"
    found = re.search(r"Unsupported operand (\S+?)[;.,]?(?:\s|$)", text)
    if found:
        return f"the pickle opcode {found.group(1)}"
    return "something other than tensors and plain containers"


def _read_bin(path: Path) -> dict[str, torch.Tensor]:
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
    return raw


def _read_bins(paths: list[Path]) -> tuple[_Stored, dict[str, torch.Tensor]]:
    tensors: dict[str, torch.Tensor] = {}
    entries: dict[str, tuple[Path, tuple[int, ...], str]] = {}
    for path in paths:
        for key, value in _read_bin(path).items():
            if key in tensors:
                raise CheckpointError(f"{key!r} is stored in two shards")
            tensors[key] = value
            entries[key] = (path, tuple(value.shape), str(value.dtype).removeprefix("torch."))
    return _Stored(entries, ", ".join(p.name for p in paths)), tensors


def read_weights(directory: Path, model: GPT) -> tuple[dict[str, torch.Tensor], str]:
    """The float32 state dict of `model`'s shape from `directory`'s weight files (one file or
    shards listed by an index, safetensors or `.bin` read with `weights_only=True`), and the
    dtype(s) the checkpoint stored them in ("float32", "bfloat16", "float16, float32").

    Every key and shape is checked against `model` before a safetensors tensor is read. Raises
    CheckpointError naming the file and the problem."""
    paths = _weight_files(directory)
    tensors: dict[str, torch.Tensor] | None = None
    if paths[0].suffix == ".safetensors":
        stored = _stored_safetensors(paths)
    else:
        stored, tensors = _read_bins(paths)
    names, head = _key_plan(list(stored.entries), model.config.tie_word_embeddings, stored.source)
    shapes = {new: stored.entries[key][1] for new, key in names.items()}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    _check_keys_and_shapes(shapes, expected, stored.source)
    wanted = list(names.values()) + ([head] if head else [])
    if tensors is None:
        tensors = _read_safetensors(stored, wanted)
    state = {new: tensors[key].float() for new, key in names.items()}
    _check_tied(tensors[head] if head else None, state, stored.source)
    dtypes = sorted({stored.entries[key][2] for key in names.values()})
    return state, ", ".join(dtypes)


# --- tokenizers --------------------------------------------------------------------------------


def _tokenizer_for(directory: Path, extra: dict[str, Any]) -> Tokenizer:
    spec = extra.get("tokenizer")
    if spec:
        if not isinstance(spec, dict) or spec.get("kind") != "cl100k_base":
            kind = spec.get("kind") if isinstance(spec, dict) else spec
            raise CheckpointError(f"unknown tokenizer kind {kind!r} in config.json")
        try:
            return cl100k_truncated(_integer(spec, "n_ranks", name="inside_gpt.tokenizer.n_ranks"))
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(
                f"config.json's cl100k_base tokenizer needs n_ranks in [256, 100256], "
                f"got {spec.get('n_ranks')!r}"
            ) from err
    vocab, merges = directory / "vocab.json", directory / "merges.txt"
    single = directory / "tokenizer.json"
    try:
        if single.is_file():  # what transformers' AutoTokenizer reads first, too
            return tokenizer_json_bpe(single)
        for needed in (vocab, merges):
            if not needed.is_file():
                raise CheckpointError(
                    f"{directory.name}/ has no {needed.name} (the tokenizer) and no tokenizer.json"
                )
        return gpt2_bpe(vocab, merges)
    except CheckpointError:
        raise
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
    except (ValueError, RecursionError) as err:  # ValueError: also an integer of >4,300 digits
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
    state, stored_dtype = read_weights(directory, model)
    model.load_state_dict(state, strict=True)
    _frozen(model)
    return LoadedModel(
        name=name or directory.name,
        model=model,
        tokenizer=tokenizer,
        source=str(directory),
        card=card,
        stored_dtype=stored_dtype,
    )


DEVICES = ("cpu", "cuda", "mps", "auto")


def resolve_device(name: str) -> torch.device:
    """The torch device `name` asks for: "cpu", "cuda", "mps", or "auto" (cuda if torch sees a
    CUDA GPU, else mps on Apple silicon, else cpu). Raises ValueError naming the value for
    anything else, or for a device this machine's torch cannot use."""
    name = name.strip().lower()
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if name not in DEVICES:
        raise ValueError(f"device {name!r} is not one of {', '.join(DEVICES)}")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ValueError(f"device {name!r} was asked for, but this machine's torch cannot use it")
    return torch.device(name)


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
    """`bundled`, `bundled@STEP` (one of its shipped training snapshots, `engine.snapshots`),
    `random` (the bundled shape, seeded, untrained) or a directory path."""
    if spec.startswith("bundled@"):
        from engine.snapshots import load_snapshot, read_manifest  # it imports this module

        manifest = read_manifest()
        raw = spec[len("bundled@") :]
        snap = manifest.snapshot(int(raw)) if manifest and raw.isdigit() else None
        if manifest and raw == str(manifest.final_step):
            spec = "bundled"  # the last step is the bundled model itself
        elif snap is None or str(snap.step) != raw:
            steps = ", ".join(str(s) for s in manifest.steps) if manifest else "none"
            raise CheckpointError(f"no snapshot {spec!r} is shipped (steps: {steps})")
        else:
            return load_snapshot(snap)
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
