"""The GPT-2 decoder: every recorded step is the operation the docstrings say it is, and the
recorder path (explicit LayerNorm and attention) computes the same function as the fused path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.checkpoints import LoadedModel, random_model
from engine.config import GPTConfig
from engine.model import GPT, CausalSelfAttention, Conv1D, LayerNorm, dropout
from engine.trace import Trace

ATOL = 1e-5  # float32, values of order 1: a few ulps of accumulated rounding


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _randomised(config: GPTConfig, seed: int) -> GPT:
    """A model whose every parameter (LayerNorm gains and all biases too) is random, so a step
    that forgot a bias or a gain would show."""
    model = GPT(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".ln_" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.2 * torch.randn(param.shape, generator=g))
            else:
                param.copy_(0.1 * torch.randn(param.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def small_config() -> GPTConfig:
    return GPTConfig(n_layer=2, n_head=4, d_model=32, n_ctx=16, vocab_size=50, dropout=0.1)


@pytest.fixture(scope="module")
def rand_model(small_config: GPTConfig) -> GPT:
    return _randomised(small_config, seed=3)


def _record(model: GPT, ids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    acts: dict[str, torch.Tensor] = {}

    def recorder(name: str, tensor: torch.Tensor) -> None:
        acts[name] = tensor

    with torch.no_grad():
        logits = model(ids, recorder=recorder)
    return logits, acts


# --- invariants on the tiny fixture's Trace ------------------------------------------------------


def test_attention_rows_sum_to_one_and_never_look_ahead(tiny_trace: Trace) -> None:
    T = tiny_trace.n_tokens
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    for layer in range(tiny_trace.config.n_layer):
        pattern = tiny_trace.get("attn.hook_pattern", layer)
        np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=1e-6)
        assert (pattern >= 0).all()
        assert (pattern[:, future] == 0).all()
        scores = tiny_trace.get("attn.hook_attn_scores", layer)
        assert np.isneginf(scores[:, future]).all()
        assert np.isfinite(scores[:, ~future]).all()


def test_residual_stream_adds_the_block_outputs(tiny_trace: Trace) -> None:
    for layer in range(tiny_trace.config.n_layer):
        pre = tiny_trace.get("hook_resid_pre", layer)
        mid = tiny_trace.get("hook_resid_mid", layer)
        post = tiny_trace.get("hook_resid_post", layer)
        np.testing.assert_allclose(mid, pre + tiny_trace.get("hook_attn_out", layer), atol=1e-6)
        np.testing.assert_allclose(post, mid + tiny_trace.get("hook_mlp_out", layer), atol=1e-6)
        if layer + 1 < tiny_trace.config.n_layer:
            np.testing.assert_array_equal(post, tiny_trace.get("hook_resid_pre", layer + 1))


def test_first_residual_is_token_plus_position_embedding(
    tiny_trace: Trace, tiny_loaded: LoadedModel
) -> None:
    wte = _np(tiny_loaded.model.transformer.wte.weight)
    wpe = _np(tiny_loaded.model.transformer.wpe.weight)
    T = tiny_trace.n_tokens
    np.testing.assert_array_equal(tiny_trace["hook_embed"], wte[tiny_trace.token_ids])
    np.testing.assert_array_equal(tiny_trace["hook_pos_embed"], wpe[:T])
    np.testing.assert_allclose(
        tiny_trace.get("hook_resid_pre", 0), wte[tiny_trace.token_ids] + wpe[:T], atol=1e-7
    )


def test_layer_norm_scale_and_normalized_match_their_definition(tiny_trace: Trace) -> None:
    eps = tiny_trace.config.layer_norm_eps
    last = tiny_trace.config.n_layer - 1
    cases = [("ln_final.hook", tiny_trace.get("hook_resid_post", last))]
    for layer in range(tiny_trace.config.n_layer):
        cases.append((f"blocks.{layer}.ln1.hook", tiny_trace.get("hook_resid_pre", layer)))
        cases.append((f"blocks.{layer}.ln2.hook", tiny_trace.get("hook_resid_mid", layer)))
    for prefix, resid in cases:
        x = resid.astype(np.float64)
        scale = np.sqrt(x.var(-1, keepdims=True) + eps)
        np.testing.assert_allclose(tiny_trace[prefix + "_scale"], scale, rtol=1e-5)
        normalized = (x - x.mean(-1, keepdims=True)) / scale
        np.testing.assert_allclose(tiny_trace[prefix + "_normalized"], normalized, atol=1e-5)
        np.testing.assert_allclose(tiny_trace[prefix + "_normalized"].mean(-1), 0.0, atol=1e-5)


# --- each step against its definition, on a model with every parameter random ------------------


def test_every_recorded_step_is_the_documented_operation(rand_model: GPT) -> None:
    ids = torch.tensor([[3, 14, 15, 9, 2, 6, 5, 35, 8, 9]])
    logits, acts = _record(rand_model, ids)
    cfg = rand_model.config
    T, H, dh = ids.shape[1], cfg.n_head, cfg.d_head
    with torch.no_grad():
        for i, block in enumerate(rand_model.transformer.h):
            a = {k.split(".", 2)[2]: v[0] for k, v in acts.items() if k.startswith(f"blocks.{i}.")}
            ln1 = a["ln1.hook_normalized"] * block.ln_1.weight + block.ln_1.bias
            qkv = ln1 @ block.attn.c_attn.weight + block.attn.c_attn.bias
            q, k, v = (t.reshape(T, H, dh) for t in qkv.split(cfg.d_model, dim=-1))
            torch.testing.assert_close(a["attn.hook_q"], q, atol=ATOL, rtol=0)
            torch.testing.assert_close(a["attn.hook_k"], k, atol=ATOL, rtol=0)
            torch.testing.assert_close(a["attn.hook_v"], v, atol=ATOL, rtol=0)
            scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(dh)
            causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
            scores = scores.masked_fill(~causal, float("-inf"))
            torch.testing.assert_close(a["attn.hook_attn_scores"], scores, atol=ATOL, rtol=0)
            pattern = torch.softmax(scores, dim=-1)
            torch.testing.assert_close(a["attn.hook_pattern"], pattern, atol=ATOL, rtol=0)
            z = torch.einsum("hqk,khd->qhd", pattern, v)
            torch.testing.assert_close(a["attn.hook_z"], z, atol=ATOL, rtol=0)
            attn_out = z.reshape(T, -1) @ block.attn.c_proj.weight + block.attn.c_proj.bias
            torch.testing.assert_close(a["hook_attn_out"], attn_out, atol=ATOL, rtol=0)
            ln2 = a["ln2.hook_normalized"] * block.ln_2.weight + block.ln_2.bias
            pre = ln2 @ block.mlp.c_fc.weight + block.mlp.c_fc.bias
            torch.testing.assert_close(a["mlp.hook_pre"], pre, atol=ATOL, rtol=0)
            # GPT-2's "gelu_new", written out
            post = 0.5 * pre * (1 + torch.tanh(math.sqrt(2 / math.pi) * (pre + 0.044715 * pre**3)))
            torch.testing.assert_close(a["mlp.hook_post"], post, atol=ATOL, rtol=0)
            mlp_out = post @ block.mlp.c_proj.weight + block.mlp.c_proj.bias
            torch.testing.assert_close(a["hook_mlp_out"], mlp_out, atol=ATOL, rtol=0)
        ln_f = rand_model.transformer.ln_f
        final = acts["ln_final.hook_normalized"][0] * ln_f.weight + ln_f.bias
        expected_logits = final @ rand_model.transformer.wte.weight.T  # tied unembedding
        torch.testing.assert_close(logits[0], expected_logits, atol=ATOL, rtol=0)
        torch.testing.assert_close(acts["logits"], logits, atol=0, rtol=0)


def test_manual_layer_norm_equals_torch_layer_norm() -> None:
    g = torch.Generator().manual_seed(1)
    ln = LayerNorm(24, eps=1e-5, names=("scale", "normalized"))
    with torch.no_grad():
        ln.weight.copy_(1 + 0.3 * torch.randn(24, generator=g))
        ln.bias.copy_(0.3 * torch.randn(24, generator=g))
    x = 3.0 * torch.randn(2, 7, 24, generator=g) + 1.5
    recorded: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        manual = ln(x, lambda n, t: recorded.__setitem__(n, t))
        fused = ln(x)
        reference = F.layer_norm(x, (24,), ln.weight, ln.bias, 1e-5)
    torch.testing.assert_close(manual, reference, atol=ATOL, rtol=0)
    torch.testing.assert_close(fused, reference, atol=0, rtol=0)
    assert recorded["scale"].shape == (2, 7, 1)
    assert recorded["normalized"].shape == (2, 7, 24)


def test_explicit_attention_equals_scaled_dot_product_attention(
    small_config: GPTConfig, rand_model: GPT
) -> None:
    attn: CausalSelfAttention = rand_model.transformer.h[1].attn
    x = torch.randn(2, 11, small_config.d_model, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        explicit = attn(x, lambda n, t: None, 0.0, None)
        fused = attn(x, None, 0.0, None)
    torch.testing.assert_close(explicit, fused, atol=ATOL, rtol=0)


def test_forward_with_and_without_recorder_gives_the_same_logits(rand_model: GPT) -> None:
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]])
    with torch.no_grad():
        plain = rand_model(ids)
    recorded, _ = _record(rand_model, ids)
    torch.testing.assert_close(recorded, plain, atol=ATOL, rtol=0)


def test_logits_at_a_position_ignore_later_tokens(rand_model: GPT) -> None:
    a = torch.tensor([[5, 6, 7, 8, 9]])
    b = torch.tensor([[5, 6, 7, 40, 41]])
    with torch.no_grad():
        la, lb = rand_model(a), rand_model(b)
    torch.testing.assert_close(la[:, :3], lb[:, :3], atol=ATOL, rtol=0)
    assert not torch.allclose(la[:, 3:], lb[:, 3:])


def test_batched_forward_equals_one_sequence_at_a_time(rand_model: GPT) -> None:
    ids = torch.tensor([[1, 2, 3, 4], [9, 8, 7, 6]])
    with torch.no_grad():
        batched = rand_model(ids)
        single = torch.cat([rand_model(ids[:1]), rand_model(ids[1:])])
    torch.testing.assert_close(batched, single, atol=ATOL, rtol=0)


def test_conv1d_is_a_linear_layer_with_the_weight_stored_in_by_out() -> None:
    conv = Conv1D(6, 4)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(24, dtype=torch.float32).reshape(6, 4) / 10)
        conv.bias.copy_(torch.tensor([1.0, -1.0, 0.5, 0.0]))
    x = torch.randn(3, 5, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(
            conv(x), F.linear(x, conv.weight.T, conv.bias), atol=ATOL, rtol=0
        )


def test_parameter_names_are_hugging_face_gpt2_names() -> None:
    cfg = GPTConfig(n_layer=1, n_head=2, d_model=8, n_ctx=4, vocab_size=10)
    shapes = {k: tuple(v.shape) for k, v in GPT(cfg).state_dict().items()}
    assert shapes == {
        "transformer.wte.weight": (10, 8),
        "transformer.wpe.weight": (4, 8),
        "transformer.h.0.ln_1.weight": (8,),
        "transformer.h.0.ln_1.bias": (8,),
        "transformer.h.0.attn.c_attn.weight": (8, 24),
        "transformer.h.0.attn.c_attn.bias": (24,),
        "transformer.h.0.attn.c_proj.weight": (8, 8),
        "transformer.h.0.attn.c_proj.bias": (8,),
        "transformer.h.0.ln_2.weight": (8,),
        "transformer.h.0.ln_2.bias": (8,),
        "transformer.h.0.mlp.c_fc.weight": (8, 32),
        "transformer.h.0.mlp.c_fc.bias": (32,),
        "transformer.h.0.mlp.c_proj.weight": (32, 8),
        "transformer.h.0.mlp.c_proj.bias": (8,),
        "transformer.ln_f.weight": (8,),
        "transformer.ln_f.bias": (8,),
    }


def test_init_weights_follows_gpt2_initialisation() -> None:
    cfg = GPTConfig(n_layer=4, n_head=2, d_model=64, n_ctx=64, vocab_size=500)
    model = random_model(cfg, seed=0)
    sd = model.state_dict()
    assert abs(sd["transformer.wte.weight"].std().item() - 0.02) < 0.001
    proj = torch.cat([sd[f"transformer.h.{i}.mlp.c_proj.weight"].flatten() for i in range(4)])
    assert abs(proj.std().item() - 0.02 / math.sqrt(8)) < 0.0005
    assert torch.equal(sd["transformer.h.2.ln_1.weight"], torch.ones(64))
    assert torch.equal(sd["transformer.h.2.attn.c_attn.bias"], torch.zeros(192))
    assert not model.training


def test_random_model_is_a_pure_function_of_its_seed(small_config: GPTConfig) -> None:
    a, b, c = (random_model(small_config, seed=s) for s in (7, 7, 8))
    wa, wb, wc = (m.transformer.wte.weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


def test_more_tokens_than_the_context_raise_a_value_error(rand_model: GPT) -> None:
    ids = torch.zeros(1, rand_model.config.n_ctx + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="exceed the model's context of 16"):
        rand_model(ids)


def test_evaluation_mode_is_deterministic_and_training_mode_applies_dropout(
    small_config: GPTConfig,
) -> None:
    model = _randomised(small_config, seed=3)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        first, second = model(ids), model(ids)
        torch.testing.assert_close(first, second, atol=0, rtol=0)
        model.train()
        torch.manual_seed(0)
        noisy = model(ids)
    assert not torch.allclose(noisy, first, atol=1e-3)


def test_seeded_dropout_without_recorder_matches_the_recorded_pass(rand_model: GPT) -> None:
    ids = torch.tensor([[4, 5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        plain = rand_model(ids, dropout_p=0.3, generator=torch.Generator().manual_seed(9))
        recorded = rand_model(
            ids,
            recorder=lambda n, t: None,
            dropout_p=0.3,
            generator=torch.Generator().manual_seed(9),
        )
    torch.testing.assert_close(plain, recorded, atol=ATOL, rtol=0)


def test_dropout_zeroes_some_entries_and_scales_the_survivors() -> None:
    x = torch.full((200, 50), 2.0)
    out = dropout(x, 0.25, torch.Generator().manual_seed(0))
    kept = out != 0
    assert torch.all(out[kept] == 2.0 / 0.75)
    assert 0.2 < 1 - kept.float().mean().item() < 0.3
    assert dropout(x, 0.0, None) is x


def test_random_model_is_frozen_like_a_loaded_checkpoint(small_config: GPTConfig) -> None:
    model = random_model(small_config, seed=0)
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    logits = model(torch.tensor([[1, 2, 3]]))
    assert logits.grad_fn is None  # no autograd graph: pages may call .numpy() directly


def test_unembed_is_ln_f_then_the_tied_unembedding(rand_model: GPT) -> None:
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    logits, acts = _record(rand_model, ids)
    last = f"blocks.{rand_model.config.n_layer - 1}.hook_resid_post"
    ln_f = rand_model.transformer.ln_f
    with torch.no_grad():
        torch.testing.assert_close(rand_model.unembed(acts[last]), logits, atol=ATOL, rtol=0)
        final = acts["ln_final.hook_normalized"] * ln_f.weight + ln_f.bias
        unnormalized = rand_model.unembed(final, normalize=False)
        torch.testing.assert_close(unnormalized, logits, atol=ATOL, rtol=0)
        one = rand_model.unembed(acts[last][0, 2].double())  # one vector, any float dtype
    assert one.shape == (rand_model.config.vocab_size,) and one.dtype == torch.float32
    torch.testing.assert_close(one, logits[0, 2], atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="has 32 features"):
        rand_model.unembed(torch.zeros(3, 31))


def test_blocks_build_their_activation_names_once(rand_model: GPT) -> None:
    block = rand_model.transformer.h[1]
    assert block.names["attn.hook_pattern"] == "blocks.1.attn.hook_pattern"
    assert block.ln_2.names == ("blocks.1.ln2.hook_scale", "blocks.1.ln2.hook_normalized")
    assert rand_model.transformer.ln_f.names == ("ln_final.hook_scale", "ln_final.hook_normalized")
