"""engine.hub without the network: a random tiny GPT-2 repository served over loopback HTTP in
the Hub's URL layout (tests/hub_server.py, HF_ENDPOINT), and the Hugging Face cache in a
temporary folder (HF_HUB_CACHE). Downloads fetch only the files the engine reads, report their
bytes, open again from the cache with no request at all, and fail with a clear message when
offline and not cached; an id the operator did not list is refused before any request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch

from engine.capture import run_with_trace
from engine.checkpoints import load_directory, random_model, save_checkpoint
from engine.config import PRESETS
from engine.hub import HubError, fetch
from tests.hub_server import FakeHub, serve

TINY = PRESETS["tiny"]
REPO = "someone/tiny-gpt2"
BIN_REPO = "someone/tiny-gpt2-bin"
ALLOWED = [REPO, BIN_REPO, "someone/not-there"]
# Files the engine never reads: a Hub repository holds such files beside the weights.
DECOYS = {"README.md": b"# a model card", "tf_model.h5": b"\0" * 4096, "flax_model.msgpack": b"x"}


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return save_checkpoint(random_model(TINY, seed=41), tmp_path / "tiny", n_ranks=4096)


@pytest.fixture
def hub(tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The fake Hub with REPO (safetensors, and a stale pytorch_model.bin as the Hub's gpt2
    has) and BIN_REPO (pytorch_model.bin only); an empty cache; HF_ENDPOINT pointing at it."""
    fake = FakeHub()
    state = load_directory(checkpoint).model.state_dict()
    bin_path = tmp_path / "pytorch_model.bin"
    torch.save({k: v.clone() for k, v in state.items()}, bin_path)
    fake.add_folder(REPO, checkpoint, {**DECOYS, "pytorch_model.bin": bin_path.read_bytes()})
    bin_only = {"config.json": (checkpoint / "config.json").read_bytes()}
    fake.repos[BIN_REPO] = {**bin_only, "pytorch_model.bin": bin_path.read_bytes(), **DECOYS}
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with serve(fake):
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def _same_model(folder: Path, checkpoint: Path) -> None:
    ours, theirs = load_directory(folder), load_directory(checkpoint)
    a = run_with_trace(ours.model, ours.tokenizer, "the cat sat").logits
    b = run_with_trace(theirs.model, theirs.tokenizer, "the cat sat").logits
    np.testing.assert_array_equal(a, b)


def test_a_download_fetches_only_what_the_engine_reads_and_reports_its_bytes(
    hub: FakeHub, checkpoint: Path, tmp_path: Path
) -> None:
    calls: list[tuple[int, int]] = []
    folder = fetch(REPO, ALLOWED, progress=lambda done, total: calls.append((done, total)))
    assert folder.is_relative_to(tmp_path / "hf-cache")  # the standard cache layout
    assert "models--someone--tiny-gpt2" in folder.parts and "snapshots" in folder.parts
    assert hub.fetched() == {"config.json", "model.safetensors"}  # no .bin, no decoys
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    _same_model(folder, checkpoint)
    wanted = sum(len(hub.repos[REPO][f]) for f in ("config.json", "model.safetensors"))
    assert calls, "the progress callback was never called"
    assert calls[-1] == (wanted, wanted)
    assert all(0 <= d <= t for d, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)  # bytes only go up


def test_a_repository_with_only_a_bin_gets_the_bin(hub: FakeHub, checkpoint: Path) -> None:
    folder = fetch(BIN_REPO, ALLOWED)
    assert hub.fetched() == {"config.json", "pytorch_model.bin"}
    _same_model(folder, checkpoint)


def test_a_cached_model_opens_with_no_request(hub: FakeHub, checkpoint: Path) -> None:
    first = fetch(REPO, ALLOWED)
    before = len(hub.requests)
    assert fetch(REPO, ALLOWED) == first
    assert fetch(BIN_REPO, ALLOWED).is_dir()
    n_bin = len(hub.requests)
    assert fetch(BIN_REPO, ALLOWED).is_dir()
    assert len(hub.requests) == n_bin and n_bin > before  # only BIN_REPO's first fetch asked


def test_a_cached_model_opens_offline(
    hub: FakeHub, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = fetch(REPO, ALLOWED)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert fetch(REPO, ALLOWED) == first
    _same_model(first, checkpoint)


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "unreachable"])
def test_offline_and_not_cached_is_a_clear_error(
    hub: FakeHub, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if how == "HF_HUB_OFFLINE":
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    else:
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(HubError, match="not in this server's Hugging Face cache") as err:
        fetch(REPO, ALLOWED)
    assert "the Hub cannot be reached" in str(err.value)
    assert hub.fetched() == set()


def test_a_repository_the_hub_does_not_have_is_a_clear_error(hub: FakeHub) -> None:
    with pytest.raises(HubError, match=r"the Hub refused “someone/not-there” \(HTTP 404\)"):
        fetch("someone/not-there", ALLOWED)


@pytest.mark.parametrize("repo_id", ["someone/other", "openai-community/gpt2", "", REPO + " "])
def test_an_id_the_operator_did_not_list_is_refused_before_any_request(
    hub: FakeHub, repo_id: str, tmp_path: Path
) -> None:
    with pytest.raises(HubError, match="not one of the Hub models this server's operator lists"):
        fetch(repo_id, ALLOWED)
    assert hub.requests == []
    assert not (tmp_path / "hf-cache").exists()


def test_a_download_that_breaks_off_is_a_clear_error_and_resumes_later(
    hub: FakeHub, checkpoint: Path
) -> None:
    hub.break_off = True
    with pytest.raises(HubError, match="broke off") as err:
        fetch(REPO, ALLOWED)
    assert "choose it again" in str(err.value)
    hub.break_off = False
    _same_model(fetch(REPO, ALLOWED), checkpoint)
