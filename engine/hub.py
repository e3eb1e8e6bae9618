"""GPT-2 checkpoints from the Hugging Face Hub by repository id, through `huggingface_hub`.

Only the files the engine reads are fetched (`WEIGHT_PATTERNS` for one weights format, plus
`SIDE_FILES`), into the standard Hugging Face cache (`HF_HUB_CACHE`, or `HF_HOME/hub`, or
`~/.cache/huggingface/hub`), with `snapshot_download`. A model already in the cache opens with no
network at all (`local_files_only=True` is tried first). Nothing is fetched for a repository id
the caller's `allowed` list does not hold. No Streamlit here: progress goes to a callback.

Every failure raises `HubError` (a `CheckpointError`) with a message that says what to do.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import httpx2  # huggingface_hub's own HTTP client: its transport errors pass through
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
from tqdm.auto import tqdm

from engine.checkpoints import CheckpointError

# The files the engine reads besides the weights: the config and every tokenizer layout.
SIDE_FILES = (
    "config.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
# One weights format, the first the repository has: what engine.checkpoints reads first.
WEIGHT_PATTERNS = {
    "safetensors": ("model.safetensors", "model.safetensors.index.json", "model-*.safetensors"),
    "bin": ("pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin"),
}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")  # fmt: skip

# (bytes done, bytes in all): called as files arrive; bytes in all grows as files are found.
Progress = Callable[[int, int], None]


class HubError(CheckpointError):
    """A Hub model that cannot be opened; the message says why and what to do."""


def _cache_dir() -> str | None:
    """HF_HUB_CACHE read now (huggingface_hub reads it once, when first imported)."""
    return os.environ.get("HF_HUB_CACHE") or None


def _endpoint() -> str | None:
    """HF_ENDPOINT read now (huggingface_hub reads it once, when first imported)."""
    return os.environ.get("HF_ENDPOINT") or None


def _complete(folder: Path) -> bool:
    """Whether a snapshot folder holds a config.json and a weights file the engine reads."""
    return (folder / "config.json").is_file() and any((folder / f).is_file() for f in WEIGHT_FILES)


def _progress_class(progress: Progress | None) -> type[tqdm]:
    """A tqdm class for `snapshot_download(tqdm_class=...)` that prints nothing and reports
    the bytes of its byte bars to `progress` (huggingface_hub adds every file's size to the
    bars' totals and its bytes as they are written; the largest bar is the whole snapshot)."""
    bars: list[Any] = []

    class _Bar(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs.update(disable=False, file=io.StringIO(), mininterval=0)
            super().__init__(*args, **kwargs)
            if kwargs.get("unit") == "B":
                bars.append(self)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            self._report()
            return shown

        def refresh(self, *args: Any, **kwargs: Any) -> None:
            super().refresh(*args, **kwargs)  # huggingface_hub refreshes after growing a total
            self._report()

        def _report(self) -> None:
            if progress is not None and self in bars:
                done = max(int(b.n) for b in bars)
                total = max(int(b.total or 0) for b in bars)
                progress(done, max(total, done))

    return _Bar


def fetch(repo_id: str, allowed: Collection[str], progress: Progress | None = None) -> Path:
    """The local folder of the Hub repository `repo_id` (its "main" revision), with only the
    files the engine reads: from the cache when it is there (no network), else downloaded into
    the standard cache with `progress(bytes_done, bytes_total)` called as bytes arrive.

    Raises HubError when `repo_id` is not in `allowed` (before any network or disk access),
    when the Hub cannot be reached and the model is not cached (offline, HF_HUB_OFFLINE=1),
    when the repository does not exist or is private, or when it has no GPT-2 weights."""
    if repo_id not in allowed:
        raise HubError(f"“{repo_id}” is not one of the Hub models this server's operator lists")

    formats = [[*SIDE_FILES, *WEIGHT_PATTERNS[kind]] for kind in ("safetensors", "bin")]
    for patterns in formats:  # the cache first: no network at all for a model already there
        try:
            local = _snapshot(repo_id, patterns, local_files_only=True)
        except (LocalEntryNotFoundError, OSError, ValueError):
            continue  # not cached in this format (or only part of it)
        if _complete(local):
            return local
    bar = _progress_class(progress)
    try:
        # safetensors when the repository has them, else the .bin: never both
        folder = _snapshot(repo_id, formats[0], tqdm_class=bar)
        if not _complete(folder):
            folder = _snapshot(repo_id, formats[1], tqdm_class=bar)
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as err:
        raise HubError(_offline_message(repo_id)) from err
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        raise HubError(
            f"the Hub refused “{repo_id}”{f' (HTTP {status})' if status else ''}: the "
            "repository does not exist, is private or gated, or the Hub is down"
        ) from err
    except httpx2.HTTPError as err:  # the connection dropped or timed out mid-download
        raise HubError(
            f"the download of “{repo_id}” broke off ({type(err).__name__}): choose it again to "
            "resume it"
        ) from err
    except OSError as err:
        raise HubError(f"cannot write “{repo_id}” into the Hugging Face cache: {err}") from err
    if not _complete(folder):
        raise HubError(
            f"“{repo_id}” has no config.json with model.safetensors or pytorch_model.bin: not a "
            "GPT-2 checkpoint this app reads"
        )
    return folder


def _snapshot(repo_id: str, patterns: list[str], **kwargs: Any) -> Path:
    """`snapshot_download` of `patterns` into the standard cache, HF_HUB_CACHE and HF_ENDPOINT
    read now."""
    folder = snapshot_download(
        repo_id, allow_patterns=patterns, cache_dir=_cache_dir(), endpoint=_endpoint(), **kwargs
    )
    return Path(str(folder))


def _offline_message(repo_id: str) -> str:
    return (
        f"“{repo_id}” is not in this server's Hugging Face cache and the Hub cannot be reached "
        "(offline, or HF_HUB_OFFLINE=1): connect once to download it"
    )


__all__ = ["HubError", "Progress", "fetch"]
