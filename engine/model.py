"""The GPT-2 decoder, written out op by op.

Shapes: B batch, T tokens, d = d_model, H heads, dh = d / H, V vocabulary.
Parameter names and layouts are Hugging Face GPT-2's (`transformer.h.0.attn.c_attn.weight` is
[d, 3d], a "Conv1D" that computes x @ W + b), so a Hugging Face checkpoint loads as it is and a
checkpoint saved here loads in `transformers`.

Capture: `forward(idx, recorder=fn)` calls `fn(name, tensor)` at every canonical point
(`engine.names`). Without a recorder nothing is recorded and the fused kernels run
(`F.layer_norm`, `F.scaled_dot_product_attention`); with one, LayerNorm and attention are computed
step by step so that the scale, the scores and the pattern exist as tensors. Both paths compute
the same function (tests/test_model.py checks it). The model is never mutated by a forward pass
and has no hooks, so one instance can serve many threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.config import GPTConfig
from engine.names import (
    EMBED,
    LN_FINAL_NORMALIZED,
    LN_FINAL_SCALE,
    LOGITS,
    POS_EMBED,
    act_name,
)

Recorder = Callable[[str, Tensor], None]


def dropout(x: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    """Inverted dropout: zero each element with probability p, scale survivors by 1 / (1 - p).

    With a generator the mask is drawn from it (reproducible, thread-safe); without one,
    torch's fused kernel and global generator are used (training)."""
    if p <= 0.0:
        return x
    if generator is None:
        return F.dropout(x, p, training=True)
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


class Conv1D(nn.Module):
    """Hugging Face GPT-2's linear layer: weight stored [in, out], y = x @ W + b."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return out.view(*x.shape[:-1], self.weight.shape[1])


class LayerNorm(nn.Module):
    """Per-token LayerNorm over the features: (x - mean) / sqrt(var + eps) * gamma + beta."""

    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))  # gamma
        self.bias = nn.Parameter(torch.zeros(d))  # beta
        self.eps = eps

    def forward(
        self,
        x: Tensor,
        recorder: Recorder | None = None,
        names: tuple[str, str] = ("", ""),
    ) -> Tensor:
        """`names` are the canonical names of this LayerNorm's scale and normalized output."""
        if recorder is None:
            return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        centred = x - x.mean(dim=-1, keepdim=True)
        scale = (centred.pow(2).mean(dim=-1, keepdim=True) + self.eps).sqrt()  # [B, T, 1]
        normalized = centred / scale
        recorder(names[0], scale)
        recorder(names[1], normalized)
        return normalized * self.weight + self.bias


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.n_head = config.n_head
        self.d_head = config.d_head
        self.c_attn = Conv1D(config.d_model, 3 * config.d_model)  # W_q | W_k | W_v
        self.c_proj = Conv1D(config.d_model, config.d_model)  # W_o
        causal = torch.tril(torch.ones(config.n_ctx, config.n_ctx, dtype=torch.bool))
        self.register_buffer("causal", causal, persistent=False)

    def forward(
        self,
        x: Tensor,
        recorder: Recorder | None,
        p: float,
        generator: torch.Generator | None,
    ) -> Tensor:
        B, T, d = x.shape
        H, dh = self.n_head, self.d_head
        q, k, v = self.c_attn(x).split(d, dim=2)  # each [B, T, d]
        q, k, v = (t.view(B, T, H, dh) for t in (q, k, v))  # split d into heads
        if recorder is not None:
            recorder(act_name("attn.hook_q", self.layer), q)
            recorder(act_name("attn.hook_k", self.layer), k)
            recorder(act_name("attn.hook_v", self.layer), v)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, dh]

        if recorder is None and (p == 0.0 or generator is None):
            # The same computation in one fused kernel (training and plain inference).
            z = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            # q.k / sqrt(dh): scaling q ([T, d]) costs less than scaling the [H, T, T] product
            scores = (q * (1.0 / math.sqrt(dh))) @ k.transpose(-2, -1)  # [B, H, T, T]
            scores.masked_fill_(~self.causal[:T, :T], float("-inf"))  # no peeking ahead
            pattern = torch.softmax(scores, dim=-1)  # each row sums to 1 over keys <= query
            if recorder is not None:
                recorder(act_name("attn.hook_attn_scores", self.layer), scores)
                recorder(act_name("attn.hook_pattern", self.layer), pattern)
            if p > 0.0:
                pattern = dropout(pattern, p, generator)
                if recorder is not None:
                    recorder(act_name("attn.hook_pattern_dropped", self.layer), pattern)
            z = pattern @ v  # [B, H, T, dh]
        z = z.transpose(1, 2)  # [B, T, H, dh]
        if recorder is not None:
            recorder(act_name("attn.hook_z", self.layer), z)
        return self.c_proj(z.reshape(B, T, d))  # concatenate heads, project with W_o


class MLP(nn.Module):
    def __init__(self, config: GPTConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.c_fc = Conv1D(config.d_model, config.d_mlp)
        self.c_proj = Conv1D(config.d_mlp, config.d_model)

    def forward(self, x: Tensor, recorder: Recorder | None) -> Tensor:
        pre = self.c_fc(x)  # [B, T, 4d]
        post = F.gelu(pre, approximate="tanh")  # GPT-2's "gelu_new"
        if recorder is not None:
            recorder(act_name("mlp.hook_pre", self.layer), pre)
            recorder(act_name("mlp.hook_post", self.layer), post)
        return self.c_proj(post)


class Block(nn.Module):
    """Pre-LayerNorm block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.ln_1 = LayerNorm(config.d_model, config.layer_norm_eps)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = LayerNorm(config.d_model, config.layer_norm_eps)
        self.mlp = MLP(config, layer)

    def forward(
        self,
        x: Tensor,
        recorder: Recorder | None,
        p: float,
        generator: torch.Generator | None,
    ) -> Tensor:
        i = self.layer
        if recorder is None:
            x = x + dropout(self.attn(self.ln_1(x), None, p, generator), p, generator)
            return x + dropout(self.mlp(self.ln_2(x), None), p, generator)
        recorder(act_name("hook_resid_pre", i), x)
        ln1 = self.ln_1(
            x,
            recorder,
            (act_name("ln1.hook_scale", i), act_name("ln1.hook_normalized", i)),
        )
        attn_out = dropout(self.attn(ln1, recorder, p, generator), p, generator)
        recorder(act_name("hook_attn_out", i), attn_out)
        x = x + attn_out
        recorder(act_name("hook_resid_mid", i), x)
        ln2 = self.ln_2(
            x,
            recorder,
            (act_name("ln2.hook_scale", i), act_name("ln2.hook_normalized", i)),
        )
        mlp_out = dropout(self.mlp(ln2, recorder), p, generator)
        recorder(act_name("hook_mlp_out", i), mlp_out)
        x = x + mlp_out
        recorder(act_name("hook_resid_post", i), x)
        return x


class GPT(nn.Module):
    """GPT-2: token + position embeddings, n_layer pre-LN blocks, ln_f, tied unembedding."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.d_model),
                wpe=nn.Embedding(config.n_ctx, config.d_model),
                h=nn.ModuleList(Block(config, i) for i in range(config.n_layer)),
                ln_f=LayerNorm(config.d_model, config.layer_norm_eps),
            )
        )

    def init_weights(self, generator: torch.Generator, sinusoidal_positions: bool = False) -> None:
        """GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer).

        `sinusoidal_positions` starts the (still learned) position embedding from the sine/cosine
        code of "Attention is all you need" (amplitude 0.1) instead of noise, so that "one token
        back" is easy to express from the first step; the architecture is unchanged."""
        std_proj = 0.02 / math.sqrt(2 * self.config.n_layer)
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    param.normal_(0.0, std_proj, generator=generator)
                elif name.endswith(".weight") and param.dim() == 2:
                    param.normal_(0.0, 0.02, generator=generator)
                elif ".ln_" in name and name.endswith(".weight"):
                    param.fill_(1.0)
                else:
                    param.zero_()
            if sinusoidal_positions:
                n_ctx, d = self.config.n_ctx, self.config.d_model
                pos = torch.arange(n_ctx, dtype=torch.float32)[:, None]
                freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2) / d)
                code = torch.zeros(n_ctx, d)
                code[:, 0::2] = torch.sin(pos * freq)
                code[:, 1::2] = torch.cos(pos * freq[: d // 2])
                self.transformer.wpe.weight.copy_(0.1 * code)

    @property
    def lm_head_weight(self) -> Tensor:
        """The unembedding, tied to the token embedding: logits = h @ wte.T."""
        return self.transformer.wte.weight

    def forward(
        self,
        idx: Tensor,
        recorder: Recorder | None = None,
        dropout_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Logits [B, T, V] for token ids `idx` [B, T].

        Dropout: `dropout_p` if given, else the config's value in training mode and 0 in
        evaluation mode. Passing `dropout_p` with a `generator` runs a seeded dropout pass on a
        shared model without switching it to training mode.
        """
        B, T = idx.shape
        if T > self.config.n_ctx:
            raise ValueError(f"{T} tokens exceed the model's context of {self.config.n_ctx}")
        p = dropout_p if dropout_p is not None else (self.config.dropout if self.training else 0.0)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
        tok_emb = self.transformer.wte(idx)  # [B, T, d]
        pos_emb = self.transformer.wpe(torch.arange(T, device=idx.device))  # [T, d]
        if recorder is not None:
            recorder(EMBED, tok_emb)
            recorder(POS_EMBED, pos_emb.expand(B, T, -1))
        x = dropout(tok_emb + pos_emb, p, generator)
        for block in self.transformer.h:
            x = block(x, recorder, p, generator)
        if recorder is None:
            x = self.transformer.ln_f(x)
        else:
            x = self.transformer.ln_f(x, recorder, (LN_FINAL_SCALE, LN_FINAL_NORMALIZED))
        logits = F.linear(x, self.lm_head_weight)  # [B, T, V]
        if recorder is not None:
            recorder(LOGITS, logits)
        return logits

    def embedding_weight(self) -> Tensor:
        """The token embedding table W_E [vocab_size, d_model], detached (shares memory)."""
        return self.transformer.wte.weight.detach()

    def layer_norm_weights(self, which: str, layer: int | None = None) -> tuple[Tensor, Tensor]:
        """(gamma, beta) [d_model] of a LayerNorm, detached: "ln1" or "ln2" of block `layer`
        (before attention / before the MLP), or "ln_final" (after the last block). ValueError
        for another name or a missing layer."""
        if which == "ln_final":
            module = self.transformer.ln_f
        elif which in ("ln1", "ln2") and layer is not None:
            module = getattr(self.transformer.h[layer], "ln_" + which[-1])
        else:
            raise ValueError(f"no LayerNorm {which!r} (layer {layer}): use ln1, ln2 or ln_final")
        return module.weight.detach(), module.bias.detach()
