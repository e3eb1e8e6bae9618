"""Which models this server offers, how one is read from disk, and every way the app reads the
model's tokenizer or weights for a page (pages call these, never the tokenizer or
`model.transformer` themselves). Loading through the cache: `ui.cache.load_model`."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from engine.card import ModelCard
from engine.checkpoints import (
    BUNDLED_DIR,
    CheckpointError,
    LoadedModel,
    load,
    load_directory,
    random_model,
    resolve_device,
)
from engine.config import PRESETS
from engine.hub import SIDE_FILES, Progress, fetch
from engine.snapshots import MANIFEST_NAME, SNAPSHOTS_DIR, Manifest, load_snapshot, read_manifest
from engine.tokenizer import cl100k_truncated
from ui.i18n import _
from ui.settings import (
    allow_paths,
    device_name,
    hub_models,
    models_dir,
    test_model,
    torch_threads,
)
from ui.text import markdown_literal

torch.set_num_threads(torch_threads())
# numpy's BLAS too (the pages' SVDs, cosine matrices, lens statistics): every session already
# runs in its own thread, and BLAS threads spinning against each other and against torch made
# a 256 x 128 SVD take 50-70 ms instead of 5 on two busy cores. Set for the process, once.
_BLAS_LIMIT = threadpool_limits(limits=torch_threads(), user_api="blas")


HUB_PREFIX = "hf:"  # a Hub model's id in the app (and its links): "hf:owner/name"
SNAPSHOT_PREFIX = "bundled@"  # a training snapshot of the bundled model: "bundled@12000"


def snapshot_manifest() -> Manifest | None:
    """The bundled model's shipped training snapshots (`engine.snapshots`), None without any;
    read again only when the manifest file changes (it is asked for on every run)."""
    try:
        stamp = (SNAPSHOTS_DIR / MANIFEST_NAME).stat().st_mtime_ns
    except OSError:
        return None
    return _manifest(stamp)


@functools.lru_cache(maxsize=2)
def _manifest(stamp: int) -> Manifest | None:
    """`read_manifest` for the manifest file's modification time `stamp` (the cache key)."""
    return read_manifest()


def snapshot_id(step: int) -> str:
    """The model id of the bundled model at training step `step`; the final step is the bundled
    model itself ("bundled")."""
    manifest = snapshot_manifest()
    if manifest is not None and step == manifest.final_step:
        return "bundled"
    return f"{SNAPSHOT_PREFIX}{step}"


def snapshot_step(model_id: str) -> int | None:
    """The training step a model id "bundled@STEP" names, if this server ships that snapshot;
    None for any other id (an unknown step included)."""
    if not model_id.startswith(SNAPSHOT_PREFIX):
        return None
    raw = model_id[len(SNAPSHOT_PREFIX) :]
    manifest = snapshot_manifest()
    if manifest is None or not raw.isascii() or not raw.isdigit():
        return None
    step = int(raw)
    return step if manifest.snapshot(step) is not None and str(step) == raw else None


def canonical_model_id(model_id: str) -> str:
    """ "bundled" for "bundled@FINAL" (the last step of the run is the bundled model itself);
    any other id unchanged."""
    manifest = snapshot_manifest()
    if manifest is not None and model_id == f"{SNAPSHOT_PREFIX}{manifest.final_step}":
        return "bundled"
    return model_id


def snapshot_models() -> list[str]:
    """The ids of every shipped snapshot, in step order ("bundled@0", "bundled@1000", ...)."""
    manifest = snapshot_manifest()
    return [] if manifest is None else [snapshot_id(s.step) for s in manifest.snapshots]


def hub_repo(model_id: str) -> str | None:
    """The Hub repository id of a model id "hf:owner/name" the operator lists, else None."""
    if model_id.startswith(HUB_PREFIX) and model_id[len(HUB_PREFIX) :] in hub_models():
        return model_id[len(HUB_PREFIX) :]
    return None


def available_models() -> list[str]:
    """ "bundled", its training snapshots ("bundled@STEP"), "random", every folder under the
    models directory with a config.json, then the Hub models the operator lists
    (INSIDE_GPT_HUB_MODELS), as "hf:owner/name"."""
    found: list[str] = []
    folder = models_dir()
    if folder.is_dir():
        found = sorted(
            p.name
            for p in folder.iterdir()
            if (p / "config.json").is_file()
            and p.name not in ("bundled", "random")
            and not p.name.startswith(SNAPSHOT_PREFIX)
        )
    hub = [HUB_PREFIX + r for r in hub_models()]
    return ["bundled", *snapshot_models(), "random", *found, *hub]


def model_label(model_id: str) -> str:
    """The model's name in the sidebar's model box, short enough to show whole there (the box
    shows about 230 px of text: "bundled (trained on English and Chinese)" was cut after "C")."""
    if model_id == "bundled":
        if test_model() or (BUNDLED_DIR / "config.json").is_file():
            return _("bundled (English and Chinese)")
        return _("bundled (random weights)")
    if model_id == "random":
        return _("random (same shape, untrained)")
    step = snapshot_step(model_id)
    if step == 0:
        return _("bundled, step 0 (initialisation)")
    if step is not None:
        return _("bundled, step {step}").format(step=f"{step:,}")
    if model_id.startswith(HUB_PREFIX):
        return _("{repo} (Hugging Face Hub)").format(repo=model_id[len(HUB_PREFIX) :])
    return model_id


def model_folder(model_id: str) -> Path | None:
    """The folder a model is read from: the bundled checkpoint's, a models-folder entry's or an
    allowed absolute path; None for what is built in memory (random, the tests' tiny models) and
    for Hub models (a Hub snapshot is fixed by its commit)."""
    if test_model() == "tiny" and model_id in ("bundled", "random"):
        return None
    if model_id == "random" or model_id.startswith(HUB_PREFIX):
        return None
    if model_id == "bundled":
        return BUNDLED_DIR
    step = snapshot_step(model_id)
    if step is not None:
        manifest = snapshot_manifest()
        assert manifest is not None
        return manifest.snapshot(step).folder  # type: ignore[union-attr]  # None: step 0
    path = Path(model_id)
    return path if path.is_absolute() else models_dir() / model_id


def _read_by_engine(name: str) -> bool:
    """Whether a checkpoint folder's file `name` is one the engine may read."""
    return name in SIDE_FILES or name.endswith((".safetensors", ".bin", ".index.json"))


def files_fingerprint(folder: Path | None) -> str:
    """What the model's files look like on disk now: name, size, modification time (ns) and
    inode of every file directly in `folder` (links followed) that the engine reads (config,
    tokenizer files, weights, shard indexes), so a config.json or weights file rewritten or
    replaced gives another value, and a log or card written beside them does not. "" for no
    folder or one that cannot be read (loading it then says why)."""
    if folder is None:
        return ""
    parts: list[str] = []
    try:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not _read_by_engine(entry.name):
                continue
            try:
                if entry.is_file():
                    st = entry.stat()
                    parts.append(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
            except OSError:
                parts.append(f"{entry.name}:?")
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return ""
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def model_base_key(model_id: str) -> str:
    """The model's id plus the test seam, so tests never share real models (no file state)."""
    return f"{model_id}|{test_model()}|{models_dir()}"


def model_key(model_id: str) -> str:
    """The cache key of a model and of everything computed from it: `model_base_key` plus the
    fingerprint of its files (`files_fingerprint`), so a checkpoint whose config.json or
    weights change on disk is read again on its next use (and its Traces computed again).
    Nothing is read for a model this server does not offer. A Hub model's snapshot is fixed
    by its commit: its key names the Hugging Face cache it comes from (HF_HUB_CACHE)."""
    if hub_repo(model_id):
        cache = os.environ.get("HF_HUB_CACHE", "").encode("utf-8", "surrogateescape")
        return f"{model_base_key(model_id)}|{hashlib.sha256(cache).hexdigest()[:16]}"
    folder = model_folder(model_id) if model_offered(model_id) else None
    return f"{model_base_key(model_id)}|{files_fingerprint(folder)}"


def model_offered(model_id: str) -> bool:
    """Whether this server offers `model_id`: bundled, random, a folder name listed under the
    models directory, or (only when the operator allows paths) an absolute directory path.
    Anything else, `../x` or `/etc` from a link included, is refused before any file is read;
    so is a snapshot "bundled@STEP" at a step this server does not ship."""
    if model_id in ("bundled", "random") or hub_repo(model_id):
        return True
    if snapshot_step(model_id) is not None:
        return True
    if model_id.startswith(SNAPSHOT_PREFIX):
        return False
    if model_id.startswith(HUB_PREFIX):
        return False
    if allow_paths() and Path(model_id).is_absolute():
        return True
    return model_id in available_models()


def load_uncached(model_id: str, progress: Progress | None = None) -> LoadedModel:
    """Read (or build) the model `model_id` names, on the operator's device (INSIDE_GPT_DEVICE);
    raises CheckpointError (engine.hub.HubError for a Hub model that cannot be fetched; a device
    this machine cannot use) or OSError. A Hub model comes from the Hugging Face cache,
    downloaded first if it is not there, `progress(bytes_done, bytes_total)` called as it
    arrives."""
    try:
        device = resolve_device(device_name())
    except ValueError as err:
        raise CheckpointError(f"INSIDE_GPT_DEVICE: {err}") from None
    loaded = _read_model(model_id, progress)
    loaded.model.to(device)
    return loaded


def _read_model(model_id: str, progress: Progress | None) -> LoadedModel:
    """`load_uncached` before the move to the device."""
    repo = hub_repo(model_id)
    if repo is not None:
        return load_directory(fetch(repo, hub_models(), progress), name=model_id)
    if test_model() == "tiny" and model_id in ("bundled", "random"):
        config = PRESETS["tiny"]
        return LoadedModel(
            name=model_id,
            model=random_model(config, seed=0 if model_id == "bundled" else 1),
            tokenizer=cl100k_truncated(config.vocab_size - 1),
            source="tests: tiny random model",
            card=ModelCard(trained_on="nothing (test model)"),
        )
    if model_id in ("bundled", "random"):
        return load(model_id)
    step = snapshot_step(model_id)
    if step is not None:
        manifest = snapshot_manifest()
        assert manifest is not None
        return load_snapshot(manifest.snapshot(step))  # type: ignore[arg-type]
    path = Path(model_id)
    if not path.is_absolute():
        path = models_dir() / model_id
    return load_directory(path, name=model_id)


# --- the tokenizer --------------------------------------------------------------------------


def encode_text(loaded: LoadedModel, text: str) -> list[int]:
    """The token ids of `text` (special-token strings are plain text); the app's one encoder."""
    return loaded.tokenizer.encode(text)


def decode_ids(loaded: LoadedModel, ids: list[int]) -> str:
    """The text of `ids` (a character cut between tokens becomes U+FFFD); ValueError for an id
    outside the vocabulary."""
    return loaded.tokenizer.decode(ids)


def token_ranks(loaded: LoadedModel, parts: Iterable[bytes]) -> dict[bytes, int]:
    """The id of every byte string in `parts` that is one token (for cl100k_base and GPT-2's
    own files also its merge rank; a tokenizer trained with `tokenizers` numbers its tokens
    otherwise); others are left out."""
    found = ((part, loaded.tokenizer.token_id(part)) for part in parts)
    return {part: token_id for part, token_id in found if token_id is not None}


def special_tokens_sentence(special_tokens: dict[str, int]) -> str:
    """One sentence naming a tokenizer's special tokens and their ids (Markdown), e.g.
    "Special tokens: `<|endoftext|>` = id 0." ("" when there are none)."""
    if not special_tokens:
        return ""
    named = ", ".join(
        _("`{name}` = id {id}").format(name=markdown_literal(name), id=token_id)
        for name, token_id in sorted(special_tokens.items(), key=lambda item: item[1])
    )
    return _("Special tokens (never read out of your text): {named}.").format(named=named)


# --- weights a page shows -------------------------------------------------------------------


def _read_only(tensor: torch.Tensor) -> np.ndarray:
    array = tensor.detach().cpu().numpy()  # on the CPU a view: no copy of a 150 MB table
    array.flags.writeable = False  # the view only: the model's own parameter stays as it is
    return array


def embedding_table(loaded: LoadedModel) -> np.ndarray:
    """The token embedding W_E [vocab_size, d_model] (float32), a read-only view."""
    return _read_only(loaded.model.embedding_weight())


def layer_norm_params(
    loaded: LoadedModel, which: str, layer: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(gamma, beta) [d_model] of a LayerNorm named as engine.lens names it: "ln1" or "ln2" of
    block `layer`, or "ln_final"; read-only views. ValueError for another name."""
    gamma, beta = loaded.model.layer_norm_weights(which, layer)
    return _read_only(gamma), _read_only(beta)
