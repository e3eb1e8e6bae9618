"""The GPT-2 decoder (Radford et al. 2019, "Language Models are Unsupervised Multitask
Learners"), written out op by op.

Shapes: B batch, T tokens, d = d_model, H heads, dh = d / H, m = d_mlp, V vocabulary.
Parameter names and layouts are Hugging Face GPT-2's (`transformer.h.0.attn.c_attn.weight` is
[d, 3d], a "Conv1D" that computes x @ W + b), so a Hugging Face checkpoint loads as it is and a
checkpoint saved here loads in `transformers`.

Capture: `forward(idx, recorder=fn)` calls `fn(name, tensor)` at every canonical site
(`engine.names.SITES`, TransformerLens's hook names). The block equation is written once, and
the residual stream always flows through the fused kernels (`F.layer_norm`,
`F.scaled_dot_product_attention`); when something records (the recorder is not
`record_nothing`, the identity, as TransformerLens's HookPoints are without hooks), LayerNorm
and attention also compute their scale, normalized input, scores and pattern step by step, to
record them, beside that path. So a recording pass and a plain one compute bitwise the same
residual stream and logits, and a lazy Trace (`engine.capture`) can run fused and recompute any
block's internals later, bitwise equal to a full capture. Only a seeded dropout pass (a mask on
the pattern) runs the pattern step by step into z. `forward(..., boundary_only=True)` records
the embeddings and the residual stream at block boundaries only (the blocks' inner sites are not
computed). Each module builds its activation names once, in `__init__`.
The model is never mutated by a forward pass and has no hooks, so one instance can serve many
threads.

Interventions: `forward(idx, editor=fn)` calls `fn(name, tensor)` at the editable sites
(`EDITABLE_SITES`: the residual stream, each head's z, both branches' outputs) and continues with
the tensor it returns, TransformerLens's `run_with_hooks` passed per call instead of registered:
`engine.interventions` builds ablations and activation patches as editors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.config import GPTConfig
from engine.names import (
    BLOCK_SITES,
    DROPOUT_SITES,
    EMBED,
    LN_FINAL_NORMALIZED,
    LN_FINAL_SCALE,
    LOGITS,
    POS_EMBED,
    act_name,
)

Recorder = Callable[[str, Tensor], None]
# An editor: called as `editor(name, tensor)` at every editable site (`EDITABLE_SITES`) before the
# recorder sees it; it returns the tensor the forward pass continues with (the same one, or a new
# tensor of the same shape). Interventions (engine.interventions) are editors.
Editor = Callable[[str, Tensor], Tensor]

# The sites an editor can replace: the residual stream before, inside and after each block, each
# head's output z before W_O, and both branches' outputs (TransformerLens's hook names).
EDITABLE_SITES: tuple[str, ...] = (
    "hook_resid_pre",
    "attn.hook_z",
    "hook_attn_out",
    "hook_resid_mid",
    "hook_mlp_out",
    "hook_resid_post",
)


def record_nothing(name: str, tensor: Tensor) -> None:
    """The identity recorder: what every forward pass calls when nothing records."""


def edit_nothing(name: str, tensor: Tensor) -> Tensor:
    """The identity editor: what every forward pass calls when nothing intervenes."""
    return tensor


def _block_names(layer: int) -> dict[str, str]:
    """Site -> canonical name for block `layer` ("attn.hook_q" -> "blocks.3.attn.hook_q")."""
    return {site: act_name(site, layer) for site in BLOCK_SITES + DROPOUT_SITES}


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
    """Per-token LayerNorm over the features: (x - mean) / sqrt(var + eps) * gamma + beta.

    `names`: the canonical names of its scale [.., 1] and normalized output [.., d], e.g.
    ("blocks.0.ln1.hook_scale", "blocks.0.ln1.hook_normalized")."""

    def __init__(
        self, d: int, eps: float, names: tuple[str, str] = ("hook_scale", "hook_normalized")
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))  # gamma
        self.bias = nn.Parameter(torch.zeros(d))  # beta
        self.eps = eps
        self.names = names

    def forward(self, x: Tensor, recorder: Recorder | None = None) -> Tensor:
        """x [..., d] -> [..., d] in one fused kernel; a recorder also gets the scale [..., 1]
        and the normalized input [..., d], computed step by step beside it (the output is
        the fused kernel's either way: within float rounding of normalized * gamma + beta)."""
        out = F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        if recorder is not None and recorder is not record_nothing:
            centred = x - x.mean(dim=-1, keepdim=True)
            scale = (centred.pow(2).mean(dim=-1, keepdim=True) + self.eps).sqrt()  # [B, T, 1]
            recorder(self.names[0], scale)
            recorder(self.names[1], centred / scale)
        return out


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: softmax(scale * q k^T, future masked) v per head,
    heads concatenated and projected by W_o (c_proj). GPT-2's scale is 1 / sqrt(dh); the
    config's `scale_attn_weights` (False: 1) and `scale_attn_by_inverse_layer_idx` (also
    / (layer + 1)) change it as Hugging Face's GPT2Attention does."""

    def __init__(self, config: GPTConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.n_head = config.n_head
        self.d_head = config.d_head
        scale = 1.0 / math.sqrt(config.d_head) if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            scale /= float(layer + 1)
        self.scale = scale
        self.c_attn = Conv1D(config.d_model, 3 * config.d_model)  # W_q | W_k | W_v
        self.c_proj = Conv1D(config.d_model, config.d_model)  # W_o
        causal = torch.tril(torch.ones(config.n_ctx, config.n_ctx, dtype=torch.bool))
        self.register_buffer("causal", causal, persistent=False)
        self.names = _block_names(layer)

    def forward(
        self,
        x: Tensor,
        recorder: Recorder | None = None,
        p: float = 0.0,
        generator: torch.Generator | None = None,
        editor: Editor = edit_nothing,
    ) -> Tensor:
        """x [B, T, d] -> [B, T, d]. Dropout p on the pattern, masks from `generator`; `editor`
        may replace z [B, T, H, dh] (attn.hook_z) before W_o."""
        record = recorder if recorder is not None else record_nothing
        n = self.names
        B, T, d = x.shape
        H, dh = self.n_head, self.d_head
        q, k, v = self.c_attn(x).split(d, dim=2)  # each [B, T, d]
        q, k, v = (t.view(B, T, H, dh) for t in (q, k, v))  # split d into heads
        record(n["attn.hook_q"], q)
        record(n["attn.hook_k"], k)
        record(n["attn.hook_v"], v)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, dh]
        recording = record is not record_nothing
        if p > 0.0 and (generator is not None or recording):
            # a seeded dropout pass: the mask falls on the pattern, so z comes from it
            z = self._weighted_values(q, k, v, record, p, generator)
        else:
            # one fused kernel (training, plain inference and every evaluation capture)
            z = F.scaled_dot_product_attention(
                q, k, v, dropout_p=p, is_causal=True, scale=self.scale
            )
            if recording:  # the scores and the pattern, beside it, for the recorder only
                self._pattern(q, k, record)
        z = editor(n["attn.hook_z"], z.transpose(1, 2))  # [B, T, H, dh]
        record(n["attn.hook_z"], z)
        return self.c_proj(z.reshape(B, T, d))  # concatenate heads, project with W_o

    def _weighted_values(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        record: Recorder,
        p: float,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Attention step by step, q, k, v [B, H, T, dh] -> z [B, H, T, dh], recording the
        scores and the pattern (and the dropped pattern when p > 0)."""
        pattern = self._pattern(q, k, record)
        n = self.names
        if p > 0.0:
            pattern = dropout(pattern, p, generator)
            record(n["attn.hook_pattern_dropped"], pattern)
        return pattern @ v

    def _pattern(self, q: Tensor, k: Tensor, record: Recorder) -> Tensor:
        """The scores (scale * q.k, future keys -inf) and the pattern (their softmax over the
        keys) [B, H, T, T] of q, k [B, H, T, dh], both recorded; the pattern is returned."""
        n, T = self.names, q.shape[2]
        # scale * q.k: scaling q ([T, d]) costs less than scaling the [H, T, T] product
        scores = (q * self.scale) @ k.transpose(-2, -1)  # [B, H, T, T]
        scores.masked_fill_(~self.causal[:T, :T], float("-inf"))  # no peeking ahead
        pattern = torch.softmax(scores, dim=-1)  # each row sums to 1 over keys <= query
        record(n["attn.hook_attn_scores"], scores)
        record(n["attn.hook_pattern"], pattern)
        return pattern


def _tanh_gelu(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


def _clipped_gelu(x: Tensor) -> Tensor:
    return F.gelu(x).clamp(-10.0, 10.0)


def _quick_gelu(x: Tensor) -> Tensor:
    return x * torch.sigmoid(1.702 * x)


def _relu_squared(x: Tensor) -> Tensor:
    return F.relu(x).square()


def _laplace(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf((x - 0.707107) / (0.282095 * math.sqrt(2.0))))


def _sqrt_softplus(x: Tensor) -> Tensor:
    return F.softplus(x).sqrt()


def _identity(x: Tensor) -> Tensor:
    return x


# Hugging Face's `activation_function` name -> the function (transformers.activations.ACT2CLS,
# 5.x, the parameter-free ones). The five tanh-GELU names are one function in exact arithmetic;
# Hugging Face's formulas differ from torch's kernel by float rounding only (< 1e-6).
ACTIVATION_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu_new": _tanh_gelu,  # GPT-2's own
    "gelu_pytorch_tanh": _tanh_gelu,
    "gelu_fast": _tanh_gelu,
    "gelu_python_tanh": _tanh_gelu,
    "gelu_accurate": _tanh_gelu,
    "gelu": F.gelu,  # the exact (erf) GELU
    "gelu_python": F.gelu,
    "gelu_10": _clipped_gelu,
    "quick_gelu": _quick_gelu,
    "relu": F.relu,
    "relu2": _relu_squared,
    "relu6": F.relu6,
    "leaky_relu": F.leaky_relu,  # slope 0.01, torch's and Hugging Face's default
    "silu": F.silu,
    "swish": F.silu,
    "mish": F.mish,
    "hardswish": F.hardswish,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "laplace": _laplace,
    "sqrtsoftplus": _sqrt_softplus,
    "linear": _identity,
}


class MLP(nn.Module):
    """The feed-forward block: c_proj(act(c_fc(x))), width d -> m -> d; act is the config's
    `activation` (GPT-2: the tanh GELU "gelu_new"), chosen once here."""

    def __init__(self, config: GPTConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.c_fc = Conv1D(config.d_model, config.d_mlp)
        self.c_proj = Conv1D(config.d_mlp, config.d_model)
        self.names = _block_names(layer)
        self.act = ACTIVATION_FUNCTIONS[config.activation]

    def forward(self, x: Tensor, recorder: Recorder = record_nothing) -> Tensor:
        pre = self.c_fc(x)  # [B, T, m]
        post = self.act(pre)
        recorder(self.names["mlp.hook_pre"], pre)
        recorder(self.names["mlp.hook_post"], post)
        return self.c_proj(post)


class Block(nn.Module):
    """Pre-LayerNorm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)) (dropout p on both
    branches' outputs)."""

    def __init__(self, config: GPTConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        n = self.names = _block_names(layer)
        eps = config.layer_norm_eps
        self.ln_1 = LayerNorm(config.d_model, eps, (n["ln1.hook_scale"], n["ln1.hook_normalized"]))
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = LayerNorm(config.d_model, eps, (n["ln2.hook_scale"], n["ln2.hook_normalized"]))
        self.mlp = MLP(config, layer)

    def forward(
        self,
        x: Tensor,
        recorder: Recorder = record_nothing,
        p: float = 0.0,
        generator: torch.Generator | None = None,
        editor: Editor = edit_nothing,
        boundary_only: bool = False,
    ) -> Tensor:
        """The residual stream x [B, T, d] in, the residual after this block out. `editor` may
        replace the tensor at each of `EDITABLE_SITES` (what the recorder then sees).
        `boundary_only`: the recorder sees this block's sites outside LayerNorm, attention and
        the MLP only (the residual stream, both branches' outputs), which then run as without
        a recorder; the values are the same. The block is its two halves, one after the other
        (`attention_half`, `mlp_half`), so a lazy Trace can recompute either alone."""
        x = self.attention_half(x, recorder, p, generator, editor, boundary_only)
        return self.mlp_half(x, recorder, p, generator, editor, boundary_only)

    def attention_half(
        self,
        x: Tensor,
        recorder: Recorder = record_nothing,
        p: float = 0.0,
        generator: torch.Generator | None = None,
        editor: Editor = edit_nothing,
        boundary_only: bool = False,
    ) -> Tensor:
        """resid_pre x [B, T, d] -> resid_mid = x + attn(ln_1(x)) (arguments as `forward`)."""
        n = self.names
        inner = record_nothing if boundary_only else recorder
        x = editor(n["hook_resid_pre"], x)
        recorder(n["hook_resid_pre"], x)
        attn = self.attn(self.ln_1(x, inner), inner, p, generator, editor)
        attn_out = editor(n["hook_attn_out"], dropout(attn, p, generator))
        recorder(n["hook_attn_out"], attn_out)
        x = editor(n["hook_resid_mid"], x + attn_out)
        recorder(n["hook_resid_mid"], x)
        return x

    def mlp_half(
        self,
        x: Tensor,
        recorder: Recorder = record_nothing,
        p: float = 0.0,
        generator: torch.Generator | None = None,
        editor: Editor = edit_nothing,
        boundary_only: bool = False,
    ) -> Tensor:
        """resid_mid x [B, T, d] (already edited) -> resid_post = x + mlp(ln_2(x))."""
        n = self.names
        inner = record_nothing if boundary_only else recorder
        mlp = self.mlp(self.ln_2(x, inner), inner)
        mlp_out = editor(n["hook_mlp_out"], dropout(mlp, p, generator))
        recorder(n["hook_mlp_out"], mlp_out)
        x = editor(n["hook_resid_post"], x + mlp_out)
        recorder(n["hook_resid_post"], x)
        return x


class GPT(nn.Module):
    """GPT-2: token + position embeddings, n_layer pre-LN blocks, ln_f, the unembedding (tied
    to the token embedding, or the model's own `lm_head` when `tie_word_embeddings` is False)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.d_model),
                wpe=nn.Embedding(config.n_ctx, config.d_model),
                h=nn.ModuleList(Block(config, i) for i in range(config.n_layer)),
                ln_f=LayerNorm(
                    config.d_model, config.layer_norm_eps, (LN_FINAL_SCALE, LN_FINAL_NORMALIZED)
                ),
            )
        )
        if not config.tie_word_embeddings:  # its own output matrix [V, d], Hugging Face's name
            self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)

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
    def device(self) -> torch.device:
        """Where the model's weights are (cpu, cuda or mps): inputs go there, results come
        back to the CPU as numpy arrays (engine.capture, engine.lens, engine.sampling)."""
        return self.transformer.wte.weight.device

    @property
    def lm_head_weight(self) -> Tensor:
        """The unembedding W_U^T [vocab_size, d_model]: logits = h @ W.T. The token embedding
        `wte` when tied (GPT-2), else the model's own `lm_head.weight`."""
        if self.config.tie_word_embeddings:
            return self.transformer.wte.weight
        return self.lm_head.weight

    def unembed(
        self, resid: Tensor, normalize: bool = True, *, recorder: Recorder | None = None
    ) -> Tensor:
        """Logits [..., V] of residual-stream vectors [..., d]: the final LayerNorm `ln_f`, then
        the unembedding `lm_head_weight` (GPT-2 ties it to the token embedding W_E; an untied
        model has its own). The one place that
        does this: the forward pass calls it, and so should anything else that reads a
        residual as logits (the logit lens).

        normalize: apply `ln_f` (each vector with its own mean and variance, as the forward pass
            does to the last block's output); False when `resid` already is ln_f's output.
        recorder: records ln_f's `ln_final.hook_scale` and `ln_final.hook_normalized`.
        Input in another floating dtype is converted to the weights' dtype (float32). Raises
        ValueError if the last dimension is not d_model.
        """
        if resid.shape[-1] != self.config.d_model:
            raise ValueError(
                f"a residual vector has {self.config.d_model} features, got shape "
                f"{tuple(resid.shape)}"
            )
        x = resid.to(self.lm_head_weight.dtype)
        if normalize:
            x = self.transformer.ln_f(x, recorder)
        return F.linear(x, self.lm_head_weight)  # [..., V]

    def forward(
        self,
        idx: Tensor,
        recorder: Recorder | None = None,
        dropout_p: float | None = None,
        generator: torch.Generator | None = None,
        editor: Editor | None = None,
        unembed: bool = True,
        boundary_only: bool = False,
    ) -> Tensor:
        """Logits [B, T, V] for token ids `idx` [B, T].

        recorder: called as `recorder(name, tensor)` at every canonical site, tensors with
            their batch dimension [B, ...] (`engine.names.SITES`); None records nothing.
        editor: called as `editor(name, tensor)` at every editable site (`EDITABLE_SITES`) of
            every block, before the recorder; the forward pass continues with what it returns
            (an ablation, a patch: `engine.interventions`). It lives in this call only: nothing
            is registered on the model, so threads with and without editors can share it.
        unembed: False stops after the last block and returns its residual stream [B, T, d]
            (ln_final's sites and the logits are then not recorded): a lazy capture
            (`engine.capture.run_with_trace`) computes them later from that residual.
        boundary_only: the recorder sees the embeddings, the residual stream and both
            branches' outputs of every block only; LayerNorm, attention and the MLP run as
            without a recorder (`Block.forward`), computing the same values.
        Dropout: `dropout_p` if given, else the config's value in training mode and 0 in
        evaluation mode. Passing `dropout_p` with a `generator` runs a seeded dropout pass on a
        shared model without switching it to training mode.
        Raises ValueError for more than n_ctx tokens or a dropout probability outside [0, 1).
        """
        B, T = idx.shape
        if T > self.config.n_ctx:
            raise ValueError(f"{T} tokens exceed the model's context of {self.config.n_ctx}")
        p = dropout_p if dropout_p is not None else (self.config.dropout if self.training else 0.0)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
        record = recorder if recorder is not None else record_nothing
        tok_emb = self.transformer.wte(idx)  # [B, T, d]
        pos_emb = self.transformer.wpe(torch.arange(T, device=idx.device))  # [T, d]
        record(EMBED, tok_emb)
        record(POS_EMBED, pos_emb.expand(B, T, -1))
        x = dropout(tok_emb + pos_emb, p, generator)
        edit = editor if editor is not None else edit_nothing
        for block in self.transformer.h:
            x = block(x, record, p, generator, edit, boundary_only)
        if not unembed:
            return x
        logits = self.unembed(x, recorder=record)  # [B, T, V]
        record(LOGITS, logits)
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
