"""The benchmark code (bench/) at tiny sizes, so it cannot rot: real, positive numbers.

Runs with only the dev requirements: the TransformerLens cases need `transformer-lens`
(bench/requirements.txt) and are checked only where it is installed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench import capture_bench as cb
from bench import run as bench_run
from engine.config import PRESETS

T = 12


@pytest.fixture(scope="module")
def models() -> cb.Models:
    return cb.build_models(PRESETS["tiny"])


@pytest.fixture(scope="module")
def ids(models: cb.Models) -> list[int]:
    return cb.text_ids(models.tokenizer, T)


def test_flop_counts_follow_the_shapes() -> None:
    cfg = PRESETS["gpt2"]
    # 2 * params-in-matmuls * T, plus attention's two T x T products per layer
    d, L, V, T_ = 768, 12, 50257, 1024
    expected = L * (24 * T_ * d * d + 4 * T_ * T_ * d) + 2 * T_ * d * V
    assert cb.forward_flops(cfg, T_) == expected
    assert cb.lens_flops(cfg, T_) == 13 * 1024 * 2 * 768 * 50257
    # the lens over every layer and position costs about 3.3x the forward pass (DESIGN.md)
    assert 3.0 < cb.lens_flops(cfg, T_) / cb.forward_flops(cfg, T_) < 3.6
    # the Output page's first visit at T=1024: one block of 16 positions (its window, which
    # holds the selected position 1022)
    pos, blocks = cb.page_lens_plan(T_)
    assert pos == 1022 and blocks == [range(1008, 1024)]
    assert cb.page_lens_flops(cfg, T_) == 13 * 16 * 2 * 768 * 50257


def test_matmul_rate_is_a_real_positive_number() -> None:
    rate = cb.matmul_gflops((32, 32, 32), reps=2)
    assert math.isfinite(rate) and rate > 0


def test_every_peer_computes_the_engines_function(models: cb.Models, ids: list[int]) -> None:
    diffs = cb.check_same_function(models, ids)
    assert {cb.HF_PLAIN, cb.HF_ATTN} <= diffs.keys()
    if cb.have_transformer_lens():
        assert {cb.TL_PLAIN, cb.TLB_PLAIN} <= diffs.keys()
    assert all(0 <= d < 1e-4 for d in diffs.values())


def test_measure_times_every_case_in_every_round(models: cb.Models, ids: list[int]) -> None:
    cases = cb.make_cases(models, ids)
    expected = {
        cb.ENGINE_PLAIN,
        cb.ENGINE_TRACE,
        cb.ENGINE_TRACE16,
        cb.ENGINE_LENS,
        cb.ENGINE_LENS_ALL,
        cb.HF_PLAIN,
        cb.HF_ATTN,
        cb.HF_LENS,
    }
    if cb.have_transformer_lens():
        expected |= set(cb.TL_CASES)
    assert set(cases) == expected
    timings = cb.measure(cases, rounds=2, min_time=0.001, matmul_size=(32, 32, 32))
    assert set(timings.times) == expected
    for name, times in timings.times.items():
        assert len(times) == 2, name
        assert all(math.isfinite(t) and t > 0 for t in times), name
    assert len(timings.gflops) == 2 and all(g > 0 for g in timings.gflops)

    summary = cb.summarise(models.cfg, T, timings)
    assert summary["flops"]["forward"] == cb.forward_flops(models.cfg, T)
    assert all(s > 0 for s in summary["ideal_s"].values())
    for name in (
        "engine plain / HF plain",
        "engine trace / HF attn+hidden",
        "engine lens / HF lens",
        "engine lens all T / HF lens",
        "engine lens / lens ideal",
        "engine lens all T / lens ideal",
    ):
        assert math.isfinite(summary["ratios"][name]) and summary["ratios"][name] > 0
    # a ratio is the median of per-round ratios, not a ratio of medians
    a, b = timings.times[cb.ENGINE_PLAIN], timings.times[cb.HF_PLAIN]
    assert summary["ratios"]["engine plain / HF plain"] == pytest.approx(
        float(np.median([x / y for x, y in zip(a, b, strict=True)]))
    )
    assert summary["ratios"]["engine plain / ideal"] > 1  # nothing beats the matmul rate
    if cb.have_transformer_lens():
        assert summary["ratios"]["engine trace / TL cache"] > 0


def test_bytes_count_what_each_tool_returns(models: cb.Models, ids: list[int]) -> None:
    cfg = models.cfg
    sizes = cb.measure_bytes(models, ids)
    assert sizes["trace_n_arrays"] == 2 + 17 * cfg.n_layer + 3
    # block i's resid_post is block i+1's resid_pre: one array under two names, counted once
    # (Trace.nbytes() counts it per name), in float32 and in float16 alike
    d = cfg.d_model
    for key, size in (("trace_float32", 4), ("trace_float16", 2)):
        assert sizes[key + "_nbytes"] - sizes[key] == size * T * d * (cfg.n_layer - 1)
    # float16 halves every activation (the token ids stay int64)
    assert sizes["trace_float16"] == (sizes["trace_float32"] - 8 * T) // 2 + 8 * T
    assert sizes["trace_float16"] < sizes["trace_large_float16"] < sizes["trace_float32"]
    # HF: logits + one [H, T, T] map per layer + L + 1 hidden states
    H, L, V = cfg.n_head, cfg.n_layer, cfg.vocab_size
    assert sizes["hf_outputs"] == 4 * (T * V + L * H * T * T + (L + 1) * T * d)
    if cb.have_transformer_lens():
        assert sizes["tl_cache"] > 0 and sizes["tl_cache_n_arrays"] >= sizes["trace_n_arrays"]


def test_distinct_tensor_bytes_counts_a_shared_view_once() -> None:
    import torch

    a = torch.zeros(10)
    assert cb.distinct_tensor_bytes({"x": a, "y": a, "z": [a[:5]]}) == 40 + 20


def test_rss_probe_runs_one_case_in_a_fresh_process() -> None:
    probe = cb.rss_in_subprocess("tiny", 8, cb.ENGINE_PLAIN, threads=1, timeout=120)
    assert probe["case"] == cb.ENGINE_PLAIN
    assert probe["rss_before_mib"] > 10  # python + torch are resident
    assert probe["peak_mib"] >= probe["rss_before_mib"] and probe["extra_mib"] >= 0


def test_targets_and_the_table_read_the_results(models: cb.Models, ids: list[int]) -> None:
    cases = cb.make_cases(models, ids, (cb.ENGINE_PLAIN, cb.HF_PLAIN))
    timings = cb.measure(cases, rounds=1, min_time=0.001, matmul_size=(32, 32, 32))
    row = {"shape": "gpt2", "T": 1024, "threads": 1, "rounds": 1}
    row.update(cb.summarise(models.cfg, T, timings))
    sizes = {"shape": "gpt2", "T": 1024, **cb.measure_bytes(models, ids)}
    capture = {"rows": [row], "bytes": [sizes], "rss": [], "max_abs_logit_diff": {}}
    targets = bench_run.evaluate_targets(capture)
    plain = next(t for t in targets if t["ratio"] == "engine plain / HF plain")
    assert plain["worst"] == pytest.approx(row["ratios"]["engine plain / HF plain"])
    assert plain["met"] == (plain["worst"] <= 1.1)
    results = {
        "date": "today",
        "mode": "tiny",
        "duration_s": 1.0,
        "machine": bench_run.machine(),
        "load_before": (0.5, 0.5, 0.5),
        "load_after": (0.5, 0.5, 0.5),
        "threads": [1],
        "rounds": 1,
        "capture": capture,
        "targets": targets,
    }
    table = bench_run.markdown(results)
    assert "| gpt2 | 1024 | 1 |" in table
    assert "engine plain <= 1.1x HF plain" in table


def test_the_lazy_trace_rows(models: cb.Models, ids: list[int]) -> None:
    """The lazy Trace's cases run and return what they say; its bytes are the residual stream
    and the embeddings right after capture, one block more after one get."""
    cases = cb.make_cases(models, ids, cb.LAZY_CASES)
    assert set(cases) == set(cb.LAZY_CASES)
    full = cases[cb.ENGINE_TRACE_FULL]()[0]
    assert np.array_equal(cases[cb.ENGINE_GET_FIRST](), full.get("attn.hook_pattern", 1))
    assert cases[cb.ENGINE_GET_CACHED]() is cases[cb.ENGINE_GET_CACHED]()
    assert cases[cb.ENGINE_CAPTURE]().is_lazy and not full.is_lazy
    cfg, sizes = models.cfg, cb.measure_bytes(models, ids)
    assert sizes["trace_lazy_resident"] == 4 * (cfg.n_layer + 3) * T * cfg.d_model + 8 * T
    assert sizes["trace_lazy_resident"] < sizes["trace_lazy_after_get"] <= sizes["trace_lazy_max"]
    assert sizes["trace_lazy_max"] < sizes["trace_float32"]


def test_the_lens_product_row_times_the_lens_s_own_products(
    models: cb.Models, ids: list[int]
) -> None:
    """`page_lens_product` computes the logits the lens reduces: the page's rows (each lens row
    at each position of the last block, position-major) through ln_f and the unembedding, in
    the lens's vocabulary tiles; its last tile equals the model's own unembedding there."""
    import torch

    from engine.capture import run_with_trace
    from engine.lens.logit_lens import vocab_tiles

    trace = run_with_trace(models.engine, models.tokenizer, ids)
    last = cb.page_lens_product(trace, models.engine)
    _pos, blocks = cb.page_lens_plan(T)
    pos = np.asarray(blocks[-1], dtype=np.int64)
    sites = [np.asarray(trace.get("hook_resid_pre", 0))]
    sites += [np.asarray(trace.get("hook_resid_post", i)) for i in range(models.cfg.n_layer)]
    rows = np.stack([s[pos] for s in sites], axis=1).reshape(-1, models.cfg.d_model)
    v0, v1 = vocab_tiles(trace.n_valid_ids or models.cfg.vocab_size)[-1]
    with torch.inference_mode():
        want = models.engine.unembed(torch.from_numpy(np.ascontiguousarray(rows)))[:, v0:v1]
    assert last.shape == (len(pos) * (models.cfg.n_layer + 1), v1 - v0)
    torch.testing.assert_close(last, want, rtol=1e-5, atol=1e-5)
    cases = cb.make_cases(models, ids, (cb.ENGINE_LENS_PRODUCT,))
    assert set(cases) == {cb.ENGINE_LENS_PRODUCT}
    timings = cb.measure(cases, rounds=2, min_time=0.001, matmul_size=(32, 32, 32))
    ratio = cb.summarise(models.cfg, T, timings)["ratios"]["lens product / lens ideal"]
    assert math.isfinite(ratio) and ratio > 0
