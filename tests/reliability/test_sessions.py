"""Many students at once, in one process: sessions run concurrently in threads (as Streamlit
runs each browser session), each with its own text and page. Each sees its own text's numbers,
the model is read from disk once, a text many sessions share is computed once, and 200
different texts leave the caches (and the process's memory) bounded."""

from __future__ import annotations

import gc
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel, random_model, save_checkpoint
from engine.config import PRESETS
from engine.trace import Trace
from tests.support import values
from ui.cache import (
    MODEL_LOADS,
    TRACE_CACHE_ENTRIES,
    TRACE_COMPUTATIONS,
    TRACES,
    SharedCache,
    get_trace,
    load_model,
)
from ui.models import model_key
from ui.stages import STAGES

# The app on the tiny test model with no operator settings (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("tiny_app")

ROOT = Path(__file__).resolve().parents[2]
TINY = PRESETS["tiny"]
PAGES = ["app.py", *[s.path for s in STAGES if (ROOT / s.path).is_file()]]
TEXTS = [
    "The cat sat on the mat.",
    "To be, or not to be, that is the question.",
    "我们在学习大型语言模型。",
    "def f(x):\n    return x * 2\n",
    "1 2 3 4 5 6 7 8 9 10 11 12",
    "🙂 emoji 👨\u200d👩\u200d👧 and text",
    "All the world's a stage, and all the men and women merely players.",
    "a",
    "<script>alert(1)</script> and $x$",
    "مرحبا بالعالم",
]


@pytest.fixture
def shared_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A checkpoint no other test has loaded, so this test sees its one and only load."""
    name = f"shared_{tmp_path.name}"[:60]
    save_checkpoint(random_model(TINY, seed=21), tmp_path / name, n_ranks=TINY.vocab_size - 1)
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(tmp_path))
    return name


def charts(at: AppTest) -> dict[str, dict]:
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def check_own_numbers(at: AppTest, page: str, ref: Trace, where: str) -> None:
    """What this session drew comes from its own text's Trace."""
    assert not at.exception, (where, [e.value for e in at.exception])
    assert at.session_state["_n_tokens"] == ref.n_tokens, where
    # the sidebar's position picker lists this text's tokens (every page has it)
    picker = at.sidebar.selectbox(key="_w_pos")
    assert list(picker.options) == [f"{i}: {s}" for i, s in enumerate(ref.token_strs)], where
    c = charts(at)
    layer, head = at.session_state["layer"], at.session_state["head"]
    if page == "app.py":
        assert at.metric[0].value == str(ref.n_tokens), where
    elif page.endswith("1_Tokens.py"):
        assert list(at.dataframe[0].value["id"]) == [int(i) for i in ref.token_ids], where
    elif page.endswith("2_Embeddings.py"):
        z = values(c[next(k for k in c if "Token embedding" in k)]["data"][0]["z"])
        np.testing.assert_allclose(z, ref["hook_embed"], atol=1e-6, err_msg=where)
    elif page.endswith("3_Attention.py"):
        z = values(c["attention_head_chart"]["data"][0]["z"])
        pattern = ref.get("attn.hook_pattern", layer)[head]
        np.testing.assert_allclose(z, np.where(np.isnan(z), np.nan, pattern), atol=1e-6)
    elif page.endswith("5_Layer_norm.py") and "layer_norm_stats" in c:
        mean = ref.get("hook_resid_pre", layer).astype(np.float64).mean(-1)
        y = values(c["layer_norm_stats"]["data"][0]["y"])
        np.testing.assert_allclose(y, mean, rtol=1e-4, atol=1e-7, err_msg=where)
    elif page.endswith("6_Residual.py") and "residual_norms" in c:
        stack = [ref.get("hook_resid_pre", 0)]
        stack += [ref.get("hook_resid_post", i) for i in range(TINY.n_layer)]
        norms = np.array([np.linalg.norm(s, axis=-1) for s in stack])
        custom = values(c["residual_norms"]["data"][0]["customdata"])
        np.testing.assert_allclose(custom, norms, rtol=1e-4, err_msg=where)


@pytest.mark.slow
def test_ten_sessions_at_once_each_see_their_own_text_and_share_one_model(
    shared_model: str, concurrent_apptest: None
) -> None:
    jobs = [(PAGES[i % len(PAGES)], TEXTS[i]) for i in range(len(TEXTS))]
    # four more sessions on one shared text, on different pages, at the same moment
    shared_text = f"One text that four students paste at once ({shared_model})."
    jobs += [(PAGES[i], shared_text) for i in (1, 2, 3, 4)]
    start = threading.Barrier(len(jobs), timeout=120)
    assert MODEL_LOADS[model_key(shared_model)] == 0

    def session(job: tuple[str, str]) -> tuple[AppTest, AppTest]:
        page, text = job
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
        at.query_params["text"] = text
        at.query_params["model"] = shared_model
        if page != "app.py":
            at.switch_page(page)
        start.wait()  # every session starts its first run together
        at.run()
        first = at
        # a second round: each session types its text again, reversed (a new Trace)
        at.text_area(key="_w_text").input(text[::-1]).run()
        return first, at

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(session, jobs))
    loaded: LoadedModel = load_model(shared_model)
    assert MODEL_LOADS[model_key(shared_model)] == 1
    for (page, text), (_, at) in zip(jobs, results, strict=True):
        where = f"{page} / {text[:20]!r}"
        assert at.session_state["model_id"] == shared_model, where
        assert at.session_state["text"] == text[::-1], where
        assert at.text_area(key="_w_text").value == text[::-1], where
        ref = run_with_trace(loaded.model, loaded.tokenizer, text[::-1])
        check_own_numbers(at, page, ref, where)
    key = model_key(shared_model)
    assert TRACE_COMPUTATIONS[(key, shared_text)] == 1
    assert TRACE_COMPUTATIONS[(key, shared_text[::-1])] == 1


def test_the_first_round_of_concurrent_sessions_also_sees_its_own_text(
    shared_model: str, concurrent_apptest: None
) -> None:
    """Eight sessions on the same page at once, one run each: no session sees another's."""
    texts = TEXTS[:8]
    start = threading.Barrier(len(texts), timeout=120)

    def session(text: str) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
        at.query_params["text"] = text
        at.query_params["model"] = shared_model
        at.switch_page("pages/2_Embeddings.py")
        start.wait()
        return at.run()

    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        sessions = list(pool.map(session, texts))
    loaded = load_model(shared_model)
    for text, at in zip(texts, sessions, strict=True):
        ref = run_with_trace(loaded.model, loaded.tokenizer, text)
        check_own_numbers(at, "pages/2_Embeddings.py", ref, text)


# --- memory ---------------------------------------------------------------------------------


def _rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_the_trace_cache_evicts_by_entries_and_by_bytes() -> None:
    computed: list[str] = []

    def compute(key: str, n: int) -> object:
        computed.append(key)
        return np.zeros(n, dtype=np.uint8)

    cache = SharedCache(max_entries=3, max_bytes=1000, size=lambda a: a.nbytes)
    for k in "abcd":
        cache.get(k, lambda k=k: compute(k, 100))
    assert cache.stats() == (3, 300)  # "a" evicted by the entry bound
    cache.get("b", lambda: compute("b", 100))  # a hit: not computed again, now most recent
    assert computed == list("abcd")
    cache.get("e", lambda: compute("e", 900))  # the byte bound evicts the oldest: c, then d
    assert cache.stats() == (2, 1000)
    big = cache.get("f", lambda: compute("f", 5000))  # larger than the budget: returned, not kept
    assert big.nbytes == 5000 and cache.stats() == (2, 1000)
    cache.get("b", lambda: compute("b", 100))  # still there (was used after c and d)
    assert computed == [*"abcd", "e", "f"]


def test_many_threads_asking_for_one_key_compute_it_once() -> None:
    cache = SharedCache(max_entries=4, max_bytes=10**6, size=lambda a: 8)
    calls: list[int] = []
    start = threading.Barrier(8, timeout=60)

    def compute() -> object:
        calls.append(1)
        threading.Event().wait(0.2)  # slow enough that every thread arrives meanwhile
        return object()

    def ask(_: int) -> object:
        start.wait()
        return cache.get("key", compute)

    with ThreadPoolExecutor(max_workers=8) as pool:
        values = list(pool.map(ask, range(8)))
    assert len(calls) == 1
    assert all(v is values[0] for v in values)  # one shared object, no copies


def test_a_failed_computation_is_not_cached_and_can_be_retried() -> None:
    cache = SharedCache(max_entries=4, max_bytes=10**6, size=lambda a: 8)

    def fail() -> object:
        raise RuntimeError("disk went away")

    with pytest.raises(RuntimeError):
        cache.get("k", fail)
    assert cache.get("k", lambda: "ok") == "ok"


@pytest.mark.slow
def test_two_hundred_texts_through_one_process_keep_the_caches_bounded() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["text"] = "warm up"
    at.run()  # the home page: the frame (model, Trace) and little else, so 200 runs are quick
    TRACES.clear()
    gc.collect()
    words = "the king queen land rule dead and will is of to a in that".split()
    rss: list[int] = []
    for i in range(200):
        # about 30 tokens each (the tiny model's whole context): the biggest tiny Traces
        text = f"{i} " + " ".join(words[(i * 7 + k) % len(words)] for k in range(26))
        at.text_area(key="_w_text").input(text).run()
        assert not at.exception, i
        entries, held = TRACES.stats()
        assert entries <= TRACE_CACHE_ENTRIES
        assert held <= TRACES.max_bytes
        if i in (19, 199):
            gc.collect()
            rss.append(_rss_bytes())
    one_trace = get_trace("bundled", text, load_model("bundled")).nbytes()
    entries, held = TRACES.stats()
    assert entries == TRACE_CACHE_ENTRIES  # full, and no fuller
    assert held <= TRACE_CACHE_ENTRIES * one_trace * 1.01
    # 180 more texts after the first 20: without a bound they would hold this much more
    unbounded_growth = 180 * one_trace
    growth = rss[1] - rss[0]
    assert unbounded_growth > 100 * 2**20  # the measurement can tell the difference
    assert growth < unbounded_growth / 3, (growth / 2**20, unbounded_growth / 2**20)
