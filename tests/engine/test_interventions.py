"""engine.interventions: ablation, activation patching and direct logit attribution checked
against an independent computation (Hugging Face `transformers` with its own hooks, on the same
random weights), against the runs they must reproduce, and on the shared model from many threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers  # requirements-dev.txt; a missing install must fail, not skip

from engine.__main__ import main
from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel, canonical_state_dict, config_from_hf, load
from engine.interventions import (
    Ablation,
    Patch,
    ablated_logits,
    ablated_trace,
    activation_patching,
    component_names,
    direct_logit_attribution,
    encode_pair,
    format_heads,
    knock_out,
    logit_diff,
    parse_heads,
    patched_logits,
    run_logits,
    sublayer_lens,
)
from engine.lens.logit_lens import logit_lens
from engine.model import GPT
from engine.names import act_name

N_LAYER, N_HEAD, N_EMBD, VOCAB = 2, 4, 32, 97
D_HEAD = N_EMBD // N_HEAD
IDS = [5, 17, 3, 88, 42, 17, 3, 60, 9, 11]


@pytest.fixture(scope="module")
def hf_pair() -> tuple[torch.nn.Module, GPT]:
    """A random GPT2LMHeadModel (every parameter random) and the engine's GPT with its weights."""
    config = transformers.GPT2Config(
        n_layer=N_LAYER,
        n_head=N_HEAD,
        n_embd=N_EMBD,
        n_positions=32,
        vocab_size=VOCAB,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if ".ln_" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            else:
                param.normal_(0.0, 0.1)
    ours = GPT(config_from_hf(config.to_dict()))
    state = canonical_state_dict(hf.state_dict())
    state.pop("lm_head.weight")  # tied to wte
    ours.load_state_dict(state)
    ours.eval().requires_grad_(False)  # as a loaded checkpoint is
    return hf, ours


def _hf_logits(hf: torch.nn.Module, ids: list[int], hooks: list) -> np.ndarray:
    handles = [module.register_forward_pre_hook(fn) for module, fn in hooks]
    try:
        with torch.no_grad():
            return hf(torch.tensor([ids])).logits[0].numpy()
    finally:
        for handle in handles:
            handle.remove()


def _zero_head_input(head: int):
    """A pre-hook on attn.c_proj: zero this head's slice of its input (the concatenated z)."""

    def hook(module: torch.nn.Module, args: tuple) -> tuple:
        x = args[0].clone()
        x[..., head * D_HEAD : (head + 1) * D_HEAD] = 0.0
        return (x,)

    return hook


def _mean_head_input(head: int):
    def hook(module: torch.nn.Module, args: tuple) -> tuple:
        x = args[0].clone()
        part = x[..., head * D_HEAD : (head + 1) * D_HEAD]
        x[..., head * D_HEAD : (head + 1) * D_HEAD] = part.mean(dim=1, keepdim=True)
        return (x,)

    return hook


def test_the_engine_without_interventions_matches_hugging_face(hf_pair) -> None:
    hf, ours = hf_pair
    np.testing.assert_allclose(run_logits(ours, IDS), _hf_logits(hf, IDS, []), atol=1e-5)


def test_zero_ablating_heads_equals_zeroing_their_slice_of_c_proj_input_in_transformers(
    hf_pair,
) -> None:
    hf, ours = hf_pair
    for heads in ({(1, 2)}, {(0, 1), (1, 3)}):
        hooks = [(hf.transformer.h[layer].attn.c_proj, _zero_head_input(h)) for layer, h in heads]
        expected = _hf_logits(hf, IDS, hooks)
        got = ablated_logits(ours, IDS, Ablation(frozenset(heads)))
        np.testing.assert_allclose(got, expected, atol=1e-5)
        # and it changes the logits: a test of a no-op would pass too
        assert np.abs(got - run_logits(ours, IDS)).max() > 1e-3


def test_mean_ablation_and_mlp_ablation_match_transformers(hf_pair) -> None:
    hf, ours = hf_pair
    expected = _hf_logits(hf, IDS, [(hf.transformer.h[0].attn.c_proj, _mean_head_input(2))])
    got = ablated_logits(ours, IDS, Ablation(frozenset({(0, 2)}), mode="mean"))
    np.testing.assert_allclose(got, expected, atol=1e-5)

    handle = hf.transformer.h[1].mlp.register_forward_hook(lambda m, a, out: out * 0)
    try:
        with torch.no_grad():
            expected = hf(torch.tensor([IDS])).logits[0].numpy()
    finally:
        handle.remove()
    np.testing.assert_allclose(ablated_logits(ours, IDS, Ablation(mlps={1})), expected, atol=1e-5)


def test_mean_ablation_on_a_one_token_text_changes_nothing(hf_pair) -> None:
    _, ours = hf_pair
    everything = Ablation(
        frozenset((layer, h) for layer in range(N_LAYER) for h in range(N_HEAD)),
        mlps={0, 1},
        mode="mean",
    )
    np.testing.assert_array_equal(ablated_logits(ours, [42], everything), run_logits(ours, [42]))
    # zero-ablation of the same heads does change a one-token text
    assert not np.array_equal(
        ablated_logits(ours, [42], Ablation(everything.heads)), run_logits(ours, [42])
    )


def test_patching_every_position_of_the_layer_0_residual_gives_the_clean_run(hf_pair) -> None:
    _, ours = hf_pair
    clean, corrupt = IDS, [5, 17, 3, 88, 42, 19, 3, 60, 9, 11]
    patched = patched_logits(ours, clean, corrupt, [Patch(act_name("hook_resid_pre", 0))])
    np.testing.assert_array_equal(patched, run_logits(ours, clean))
    by_position = [Patch(act_name("hook_resid_pre", 0), t) for t in range(len(IDS))]
    np.testing.assert_array_equal(
        patched_logits(ours, clean, corrupt, by_position), run_logits(ours, clean)
    )
    np.testing.assert_array_equal(
        patched_logits(ours, clean, corrupt, []), run_logits(ours, corrupt)
    )
    assert not np.allclose(run_logits(ours, clean), run_logits(ours, corrupt))


def test_the_patching_sweep_equals_one_patched_run_per_site(hf_pair) -> None:
    _, ours = hf_pair
    clean, corrupt = IDS, [5, 17, 3, 88, 42, 19, 3, 60, 9, 11]
    result = activation_patching(ours, clean, corrupt, answer=7, wrong=8)
    last = len(IDS) - 1
    clean_diff = logit_diff(run_logits(ours, clean)[last], 7, 8)
    corrupt_diff = logit_diff(run_logits(ours, corrupt)[last], 7, 8)
    assert result.clean_diff == pytest.approx(clean_diff, abs=1e-5)
    assert result.corrupt_diff == pytest.approx(corrupt_diff, abs=1e-5)
    for layer in range(N_LAYER):
        for t in (0, 5, last):
            one = patched_logits(
                ours, clean, corrupt, [Patch(act_name("hook_resid_pre", layer), t)]
            )
            assert result.resid_diff[layer, t] == pytest.approx(
                logit_diff(one[last], 7, 8), abs=1e-4
            )
        for h in range(N_HEAD):
            one = patched_logits(
                ours, clean, corrupt, [Patch(act_name("attn.hook_z", layer), None, h)]
            )
            assert result.head_diff[layer, h] == pytest.approx(
                logit_diff(one[last], 7, 8), abs=1e-4
            )
        one = patched_logits(ours, clean, corrupt, [Patch(act_name("hook_mlp_out", layer))])
        assert result.mlp_diff[layer] == pytest.approx(logit_diff(one[last], 7, 8), abs=1e-4)
    restored = result.restored(result.resid_diff)
    # at layer 0 only the position where the texts differ carries anything; all of it
    assert restored[0, 5] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(np.delete(restored[0], 5), 0.0, atol=1e-4)


def test_patching_refuses_texts_of_different_lengths(tiny_loaded: LoadedModel) -> None:
    with pytest.raises(ValueError, match="same number of tokens"):
        encode_pair(tiny_loaded.tokenizer, "The cat sat", "The cat sat on the mat", 32)
    with pytest.raises(ValueError, match="same number of tokens"):
        activation_patching(tiny_loaded.model, [1, 2, 3], [1, 2])


def _assert_attribution_sums(trace, model) -> None:
    for pos in (0, trace.n_tokens - 1):
        for token in (None, 7):
            attr = direct_logit_attribution(trace, model, pos=pos, token=token)
            assert attr.names == component_names(trace.config)
            assert abs(attr.contributions.sum() - attr.logit) < 1e-4
            assert attr.logit == float(trace.logits[pos, attr.token])
            # each component's promoted tokens are the top of its direct effect
            assert np.all(np.diff(attr.promoted_by, axis=1) <= 0)
            assert np.all(attr.promoted_by[:, 0] >= attr.suppressed_by[:, 0])


def test_attribution_sums_to_the_logit_on_a_random_gpt2(hf_pair, tiny_loaded) -> None:
    _, ours = hf_pair
    _assert_attribution_sums(run_with_trace(ours, tiny_loaded.tokenizer, IDS), ours)
    # a head's term is its own z through W_O, ln_f's scale and the unembedding (by hand)
    trace = run_with_trace(ours, tiny_loaded.tokenizer, IDS)
    attr = direct_logit_attribution(trace, ours, pos=4, token=11)
    z = torch.tensor(trace.get("attn.hook_z", 1)[4, 2], dtype=torch.float64)
    w_o = ours.transformer.h[1].attn.c_proj.weight.double()[2 * D_HEAD : 3 * D_HEAD]
    v = z @ w_o
    v = (v - v.mean()) / float(trace["ln_final.hook_scale"][4, 0])
    v = v * ours.transformer.ln_f.weight.double()
    expected = float(v @ ours.transformer.wte.weight.double()[11])
    assert attr.contributions[attr.index("L1H2")] == pytest.approx(expected, abs=1e-9)
    assert attr.head_grid[1, 2] == attr.contributions[attr.index("L1H2")]


def test_attribution_sums_to_the_logit_on_the_bundled_model() -> None:
    loaded = load("bundled")
    trace = run_with_trace(loaded.model, loaded.tokenizer, "To be, or not to be, that is the")
    _assert_attribution_sums(trace, loaded.model)


def test_attribution_reads_every_layer_once_and_keeps_only_the_final_unit(tiny_loaded) -> None:
    from engine.capture import FINAL
    from engine.trace import UnitCache

    units = UnitCache(2**30)
    lazy = run_with_trace(tiny_loaded.model, tiny_loaded.tokenizer, IDS, unit_cache=units)
    full = run_with_trace(tiny_loaded.model, tiny_loaded.tokenizer, IDS, lazy=False)
    attr = direct_logit_attribution(lazy, tiny_loaded.model, pos=4, token=11)
    ref = direct_logit_attribution(full, tiny_loaded.model, pos=4, token=11)
    np.testing.assert_array_equal(attr.contributions, ref.contributions)
    n = lazy.config.n_layer
    assert lazy.acts.computations == {
        **{(i, h): 1 for i in range(n) for h in ("attn", "mlp")},
        FINAL: 1,
    }
    assert units.stats()[0] == 1  # ln_f's unit (its scale); the blocks were dropped


def test_the_sublayer_lens_reads_after_attention_and_after_the_mlp(tiny_trace, tiny_loaded) -> None:
    lens = sublayer_lens(tiny_trace, tiny_loaded.model, k=3)
    plain = logit_lens(tiny_trace, tiny_loaded.model, k=3)
    n = tiny_trace.config.n_layer
    assert lens.top_ids.shape[0] == 2 * n + 1
    assert lens.layer_labels == [
        "embed",
        "block 0 attn",
        "block 0 mlp",
        "block 1 attn",
        "block 1 mlp",
    ]
    # rows after each MLP are the plain lens's rows after each block
    np.testing.assert_array_equal(lens.top_ids[0::2], plain.top_ids)
    np.testing.assert_allclose(lens.top_probs[0::2], plain.top_probs, atol=1e-6)
    mid = logit_lens(tiny_trace, tiny_loaded.model, k=3).top_probs  # not the after-attention rows
    assert not np.allclose(lens.top_probs[1], mid[1])


def test_knock_out_losses_and_ablated_trace(tiny_loaded: LoadedModel, tiny_trace) -> None:
    model = tiny_loaded.model
    ablation = Ablation(frozenset({(1, 0)}))
    ko = knock_out(model, tiny_trace, ablation)
    ids = tiny_trace.token_ids
    after = ablated_logits(model, list(ids), ablation)
    np.testing.assert_array_equal(ko.logits_after, after)
    lp = after[:-1].astype(np.float64)
    lp = (
        lp
        - np.log(np.exp(lp - lp.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - lp.max(-1, keepdims=True)
    )
    np.testing.assert_allclose(ko.loss_after, -lp[np.arange(len(ids) - 1), ids[1:]], atol=1e-9)
    trace = ablated_trace(model, tiny_loaded.tokenizer, list(ids), ablation)
    assert np.all(trace.get("attn.hook_z", 1)[:, 0] == 0)
    # the Trace computes attention step by step, the plain run in one kernel: float rounding
    np.testing.assert_allclose(trace.logits, after, atol=1e-5)


def test_heads_parse_and_are_checked(tiny_loaded: LoadedModel) -> None:
    assert parse_heads(" 1.2, 0.3,") == {(1, 2), (0, 3)}
    assert format_heads({(1, 2), (0, 3)}) == "0.3,1.2"
    for bad in ("1", "a.b", "1.2.3", "-1.0"):
        with pytest.raises(ValueError, match="is not a head"):
            parse_heads(bad)
    with pytest.raises(ValueError, match=r"head 1\.7 does not exist"):
        ablated_logits(tiny_loaded.model, [1, 2], Ablation(frozenset({(1, 7)})))
    with pytest.raises(ValueError, match="'zero' or 'mean'"):
        Ablation(mode="half")


def test_ablations_in_half_the_threads_never_change_the_shared_model(
    tiny_loaded: LoadedModel,
) -> None:
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    before = {k: v.clone() for k, v in model.state_dict().items()}
    texts = ["The cat sat on the mat.", "To be, or not to be", "你好，世界！", "1 2 3 4 5 6"]
    ablation = Ablation(frozenset({(0, 1), (1, 0)}), mlps={0}, mode="mean")
    jobs = [(text, i % 2 == 1) for i, text in enumerate(texts * 2)]

    def run(job: tuple[str, bool]) -> np.ndarray:
        text, ablate = job
        if ablate:
            return ablated_trace(model, tok, text, ablation).logits
        return run_with_trace(model, tok, text).logits

    sequential = [run(job) for job in jobs]
    start = threading.Barrier(len(jobs), timeout=60)

    def concurrent_run(job: tuple[str, bool]) -> np.ndarray:
        start.wait()
        return run(job)

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            results = list(pool.map(concurrent_run, jobs))
        for seq, conc in zip(sequential, results, strict=True):
            np.testing.assert_array_equal(seq, conc)
    for (text, ablate), seq in zip(jobs, sequential, strict=True):  # the halves really differ
        plain = run_with_trace(model, tok, text).logits
        assert np.array_equal(seq, plain) != ablate
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_command_line_writes_the_named_arrays(tmp_path: Path) -> None:
    loaded = load("bundled")
    text = "To be, or not to be"
    out = tmp_path / "ablate.npz"
    assert main(["ablate", "--text", text, "--heads", "1.2,0.2", "--out", str(out)]) == 0
    saved = np.load(out)
    ids = loaded.tokenizer.encode(text)
    np.testing.assert_array_equal(saved["token_ids"], ids)
    np.testing.assert_array_equal(
        saved["logits"], ablated_logits(loaded.model, ids, Ablation(frozenset({(1, 2), (0, 2)})))
    )
    out = tmp_path / "attr.npz"
    assert (
        main(["attribute", "--text", text, "--pos", "2", "--token", "11", "--out", str(out)]) == 0
    )
    saved = np.load(out)
    trace = run_with_trace(loaded.model, loaded.tokenizer, text)
    assert list(saved["component_names"]) == list(component_names(loaded.config))
    assert float(saved["logit"]) == pytest.approx(float(trace.logits[2, 11]), abs=1e-6)
    assert abs(saved["contributions"].sum() - float(saved["logit"])) < 1e-4
    out = tmp_path / "patch.npz"
    clean, corrupt = "The cat drinks water", "The cat drinks fire"
    assert main(["patch", "--clean", clean, "--corrupt", corrupt, "--out", str(out)]) == 0
    saved = np.load(out)
    expected = activation_patching(
        loaded.model,
        loaded.tokenizer.encode(clean),
        loaded.tokenizer.encode(corrupt),
        n_valid=min(loaded.tokenizer.vocab_size, loaded.config.vocab_size),
    )
    np.testing.assert_allclose(saved["resid_pre_logit_diff"], expected.resid_diff, atol=1e-9)
    np.testing.assert_allclose(saved["head_z_restored"], expected.restored(expected.head_diff))
    assert main(["patch", "--clean", clean, "--corrupt", "The cat", "--out", str(out)]) == 1
