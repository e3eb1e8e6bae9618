"""One shared model serves many threads (Streamlit runs each browser session in its own thread):
concurrent traces must equal the sequential ones exactly."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel
from engine.trace import Trace

TEXTS = [
    "The cat sat on the mat.",
    "To be, or not to be, that is the question.",
    "你好，世界！",
    "def f(x):\n    return x * 2\n",
    "1 2 3 4 5 6 7 8 9 10 11 12",
    "🙂 emoji 👨‍👩‍👧 and text",
    "All the world's a stage, and all the men and women merely players.",
    "a",
]


def _assert_same(a: Trace, b: Trace) -> None:
    assert list(a.acts) == list(b.acts)
    np.testing.assert_array_equal(a.token_ids, b.token_ids)
    for name in a.acts:
        assert np.array_equal(a[name], b[name]), name


def test_eight_threads_tracing_eight_texts_equal_the_sequential_traces(
    tiny_loaded: LoadedModel,
) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    sequential = [run_with_trace(model, tok, text) for text in TEXTS]
    start = threading.Barrier(len(TEXTS), timeout=60)

    def trace(text: str) -> Trace:
        start.wait()  # all threads enter the forward pass together
        return run_with_trace(model, tok, text)

    for _ in range(3):  # a few rounds, so interleavings differ
        with ThreadPoolExecutor(max_workers=len(TEXTS)) as pool:
            concurrent = list(pool.map(trace, TEXTS))
        for seq, conc in zip(sequential, concurrent, strict=True):
            _assert_same(seq, conc)
            assert conc.prompt == seq.prompt


def test_concurrent_seeded_dropout_passes_are_reproducible(tiny_loaded: LoadedModel) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    jobs = [(TEXTS[i % 3], seed) for i, seed in enumerate(range(8))]
    sequential = [run_with_trace(model, tok, t, dropout_p=0.2, seed=s) for t, s in jobs]
    start = threading.Barrier(len(jobs), timeout=60)

    def trace(job: tuple[str, int]) -> Trace:
        start.wait()
        return run_with_trace(model, tok, job[0], dropout_p=0.2, seed=job[1])

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        concurrent = list(pool.map(trace, jobs))
    for seq, conc in zip(sequential, concurrent, strict=True):
        _assert_same(seq, conc)
    assert not model.training
