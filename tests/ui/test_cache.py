"""ui.cache.SharedCache: what a session shows while a value is on its way, and what is kept
when leaving the spinner stops the script (Streamlit raises its rerun exception there)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from ui.cache import SharedCache


def test_a_session_waiting_for_another_sessions_value_shows_the_busy_message_too() -> None:
    cache = SharedCache(4)
    shown: list[str] = []
    started, release = threading.Event(), threading.Event()

    @contextlib.contextmanager
    def busy(who: str) -> Iterator[None]:
        shown.append(who)
        yield

    def slow() -> int:
        started.set()
        release.wait(10)
        return 42

    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(cache.get("k", slow, lambda: busy("a"))))
    first.start()
    assert started.wait(10)
    second = threading.Thread(
        target=lambda: results.append(cache.get("k", lambda: -1, lambda: busy("b")))
    )
    second.start()
    deadline = time.monotonic() + 10
    while "b" not in shown and time.monotonic() < deadline:
        time.sleep(0.01)
    assert shown == ["a", "b"]  # the waiter shows it while the first session computes
    release.set()
    first.join(10)
    second.join(10)
    assert results == [42, 42]  # computed once, the waiter gets the same value


def test_a_value_finished_before_the_spinner_stops_the_script_is_kept() -> None:
    cache = SharedCache(4)

    class RerunError(Exception):
        """Stands in for Streamlit's RerunException, raised when a spinner exits."""

    @contextlib.contextmanager
    def interrupted() -> Iterator[None]:
        yield
        raise RerunError

    calls: list[int] = []
    with pytest.raises(RerunError):
        cache.get("j", lambda: calls.append(1) or 7, interrupted)
    assert cache.get("j", lambda: calls.append(1) or 0) == 7
    assert calls == [1]


def test_a_value_the_cache_lets_go_of_is_handed_to_on_drop() -> None:
    dropped: list[str] = []
    cache = SharedCache(2, on_drop=dropped.append)
    for key in "abc":
        cache.get(key, lambda key=key: key.upper())
    assert dropped == ["A"]  # evicted
    cache.forget("b")
    cache.clear()
    assert dropped == ["A", "B", "C"]


def test_the_apps_traces_are_lazy_and_their_units_leave_with_them() -> None:
    from ui.cache import TRACES, UNITS, get_trace, load_model

    model = "bundled"  # the tiny test model under the bundled name (INSIDE_GPT_TEST_MODEL)
    trace = get_trace(model, "The cat sat on the mat.", load_model(model))
    assert trace.is_lazy and trace.acts.shared is UNITS  # type: ignore[union-attr]
    stored = trace.resident_nbytes()
    assert TRACES.max_bytes + UNITS.max_bytes == 2048 * 2**20  # INSIDE_GPT_CACHE_MB's default
    trace.get("attn.hook_pattern", 0)
    assert trace.resident_nbytes() > stored
    TRACES.clear()
    assert trace.resident_nbytes() == stored  # its recomputed block left UNITS with it


@pytest.mark.parametrize(
    "page", ["pages/4_Feed_forward.py", "pages/5_Layer_norm.py", "pages/6_Residual.py"]
)
def test_the_per_layer_pages_rerun_without_recomputing_every_layer(
    page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a shared unit cache too small to keep any half block (GPT-2 small at 1,024 tokens
    cannot keep every layer's), a rerun recomputes at most the sidebar's layer: every layer's
    numbers come from the per-layer summary, computed once per text in one pass."""
    from engine.capture import ATTN, MLP
    from tests.support import lazy_section_keys, open_page, unique_text
    from ui.cache import LAYER_SUMMARIES, UNITS, get_trace, load_model

    monkeypatch.setattr(UNITS, "max_bytes", 1)  # keeps nothing (the final unit neither)
    text = unique_text()
    # with every lazy section open (the layer-norm page's growth section reads every layer)
    at = open_page(page, text, layer="1", sections=tuple(lazy_section_keys(page)))
    trace = get_trace("bundled", text, load_model("bundled"))
    first = dict(trace.acts.computations)  # type: ignore[union-attr]
    L = trace.config.n_layer
    # the first run: one pass over every layer for the summary (each half once), plus the
    # page's own reads of layer 1
    assert all(first.get((i, half), 0) >= 1 for i in range(L) for half in (ATTN, MLP))
    entries = LAYER_SUMMARIES.stats()[0]
    for _ in range(2):
        at.run()
        assert not at.exception
    again = trace.acts.computations  # type: ignore[union-attr]
    grew = {unit: n - first.get(unit, 0) for unit, n in again.items() if n > first.get(unit, 0)}
    assert all(unit == "final" or unit[0] == 1 for unit in grew), grew  # the sidebar's layer
    assert LAYER_SUMMARIES.stats()[0] == entries  # no new summary: the cached one was read


def test_the_embeddings_pca_is_computed_once_per_text_and_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Embeddings page reads its PCA map from `get_embedding_pca`: the page's points are the
    engine's `pca_2d` of the chosen vectors, and a rerun computes no new SVD."""
    import numpy as np

    from engine.lens import embeddings as lens_emb
    from tests.support import chart, decode, open_page, unique_text
    from ui import cache

    calls: list[int] = []
    real = lens_emb.pca_2d

    def counted(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(vectors))
        return real(vectors)

    monkeypatch.setattr(cache, "pca_2d", counted)
    text = unique_text()
    at = open_page("pages/2_Embeddings.py", text)
    trace = cache.get_trace("bundled", text, cache.load_model("bundled"))
    want, _share = real(lens_emb.embedding_vectors(trace, "token + position"))
    points = chart(at, "embeddings_pca_chart")["data"][1]
    np.testing.assert_allclose(decode(points)["x"], want[:, 0], rtol=1e-12)
    at.run()
    at.run()
    assert not at.exception and calls == [trace.n_tokens]  # one SVD over three runs


def test_the_pca_maps_label_candidates_are_computed_once_per_text_and_not_per_position(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The label boxes free of markers (`pca_labels`) do not depend on the selected token: a
    rerun and a new position read the cached ones, and the map then is the one `pca_figure`
    draws computing them itself (the labels shown, their places and the hollow points)."""
    import numpy as np

    from engine.figures import embeddings as fig_emb
    from engine.lens import embeddings as lens_emb
    from tests.support import chart, open_page, unique_text
    from ui import cache

    calls: list[int] = []
    real = fig_emb.pca_labels

    def counted(coords: np.ndarray, *args: object, **kwargs: object) -> fig_emb.PcaLabels:
        calls.append(len(coords))
        return real(coords, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cache, "pca_labels", counted)
    text = unique_text("The little dog ran to the river. The little dog ran to the river.")
    at = open_page("pages/2_Embeddings.py", text)
    trace = cache.get_trace("bundled", text, cache.load_model("bundled"))
    at.run()
    at.session_state["pos"] = 3  # another selected token
    at.run()
    assert not at.exception and calls == [trace.n_tokens]  # computed once over three runs
    coords, explained = lens_emb.pca_2d(lens_emb.embedding_vectors(trace, "token + position"))
    want = fig_emb.pca_figure(
        coords,
        explained,
        trace.token_strs,
        "T",
        selected=3,
        area_px=fig_emb.PCA_PAGE_PX,
        font_px=fig_emb.PCA_PAGE_FONT_PX,
    ).data[1]
    got = chart(at, "embeddings_pca_chart")["data"][1]
    assert list(got["text"]) == list(want.text) and any(want.text) and not all(want.text)
    assert list(got["textposition"]) == list(want.textposition)
    assert list(got["marker"]["symbol"]) == list(want.marker.symbol)
