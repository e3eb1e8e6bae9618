"""Frozen, validated configurations: the model's shape (`GPTConfig`) and training (`TrainConfig`).

Change a config with `dataclasses.replace`, never in place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# The MLP nonlinearities this engine computes: every parameter-free function of Hugging Face's
# `transformers.activations.ACT2CLS` (5.x), by the name `activation_function` gives it.
# (engine/model.py maps each name to its function.) "prelu" and "xielu" carry learned
# parameters that no GPT-2 checkpoint stores, so they are not here.
ACTIVATIONS = (
    "gelu_new",
    "gelu_pytorch_tanh",
    "gelu_fast",
    "gelu_python_tanh",
    "gelu_accurate",
    "gelu",
    "gelu_python",
    "gelu_10",
    "quick_gelu",
    "relu",
    "relu2",
    "relu6",
    "leaky_relu",
    "silu",
    "swish",
    "mish",
    "hardswish",
    "sigmoid",
    "tanh",
    "laplace",
    "sqrtsoftplus",
    "linear",
)


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a GPT-2-architecture decoder.

    Args:
        n_layer: number of transformer blocks.
        n_head: attention heads per block.
        d_model: width of the residual stream (Hugging Face calls it `n_embd`).
        n_ctx: longest sequence the learned position embedding covers (`n_positions`).
        vocab_size: rows of the token embedding (and columns of the tied unembedding).
        dropout: probability used in training for embeddings, attention weights and
            residual branches (GPT-2 uses one value for all three).
        layer_norm_eps: epsilon added to the variance inside every LayerNorm.
        d_mlp: hidden width of the feed-forward block; 0 means GPT-2's 4 * d_model. After
            construction it holds the resolved width, so `dataclasses.replace(cfg, d_model=64)`
            keeps the old width: pass `d_mlp=0` as well to get 4 * 64.
        activation: the MLP's nonlinearity, a name of `ACTIVATIONS` (Hugging Face's
            `activation_function`; GPT-2 uses "gelu_new", the tanh approximation of GELU).
        scale_attn_weights: divide attention scores by sqrt(d_head) (GPT-2 does).
        scale_attn_by_inverse_layer_idx: also divide block i's scores by i + 1 (Mistral/GPT-2
            variant of Hugging Face's config).
        tie_word_embeddings: the unembedding is the token embedding W_E (GPT-2); False: the
            model has its own output matrix `lm_head` [vocab_size, d_model].
    """

    n_layer: int = 12
    n_head: int = 12
    d_model: int = 768
    n_ctx: int = 1024
    vocab_size: int = 50257
    dropout: float = 0.1
    layer_norm_eps: float = 1e-5
    d_mlp: int = 0  # 0 -> 4 * d_model, as in GPT-2
    activation: str = "gelu_new"
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "d_model", "n_ctx", "vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.d_mlp, int) or isinstance(self.d_mlp, bool) or self.d_mlp < 0:
            raise ValueError(f"GPTConfig.d_mlp must be a non-negative integer, got {self.d_mlp!r}")
        if self.d_model % self.n_head != 0:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        for name in ("dropout", "layer_norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"GPTConfig.{name} must be a number, got {value!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 < float(self.layer_norm_eps) < 1.0:
            raise ValueError(f"layer_norm_eps must be in (0, 1), got {self.layer_norm_eps!r}")
        if self.d_mlp == 0:
            object.__setattr__(self, "d_mlp", 4 * self.d_model)
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"GPTConfig.activation must be one of {', '.join(ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )
        for name in (
            "scale_attn_weights",
            "scale_attn_by_inverse_layer_idx",
            "tie_word_embeddings",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"GPTConfig.{name} must be true or false, got {getattr(self, name)!r}"
                )

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_head

    def n_params(self) -> int:
        """Parameter count (an untied output matrix counted too)."""
        d, m = self.d_model, self.d_mlp
        per_block = (
            2 * 2 * d  # ln_1, ln_2
            + d * 3 * d
            + 3 * d  # c_attn
            + d * d
            + d  # attn c_proj
            + d * m
            + m  # c_fc
            + m * d
            + d  # mlp c_proj
        )
        n_embeddings = (1 if self.tie_word_embeddings else 2) * self.vocab_size * d
        return n_embeddings + self.n_ctx * d + self.n_layer * per_block + 2 * d

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, GPTConfig] = {
    # GPT-2 small (124M), the shape of Hugging Face's "gpt2".
    "gpt2": GPTConfig(),
    # The first bundled model (until issue 14): trained on Shakespeare with cl100k_base cut to
    # 4096 ranks (+ <|endoftext|>); no longer shipped (git history keeps it and its card).
    "shakespeare": GPTConfig(
        n_layer=2, n_head=4, d_model=128, n_ctx=128, vocab_size=4097, dropout=0.0
    ),
    # The bundled model (issue 14): English + Chinese corpus, cl100k_base cut to 8192 ranks
    # (+ <|endoftext|>), context 256; shape chosen from throughput measured on 2 CPU cores.
    # Untied unembedding: with a tied one, rows of tokens that occur only a few times all drift
    # to one direction (cosine 0.996 after 500 steps in a tied run), so copies of them cannot
    # be told apart.
    "bilingual": GPTConfig(
        n_layer=2,
        n_head=4,
        d_model=128,
        n_ctx=256,
        vocab_size=8193,
        dropout=0.0,
        tie_word_embeddings=False,
    ),
    # A tiny shape for unit tests (cl100k_base cut to 4096 ranks, the first bundled model's).
    "tiny": GPTConfig(n_layer=2, n_head=2, d_model=32, n_ctx=32, vocab_size=4097, dropout=0.1),
}
PRESETS["bundled"] = PRESETS["bilingual"]  # what assets/model holds and "random" copies


@dataclass(frozen=True)
class TrainConfig:
    """Settings of `engine.training.train.train`.

    Args:
        max_steps: optimizer steps to run in total (a resumed run continues to this number).
        batch_size: sequences per step.
        seq_len: tokens per sequence (at most the model's n_ctx).
        lr: peak learning rate after warm-up.
        min_lr: learning rate at the end of the cosine decay.
        warmup_steps: linear warm-up from 0 to `lr`.
        weight_decay: AdamW decay on matrices (not on biases, LayerNorm or embeddings' biases).
        grad_clip: clip the global gradient norm to this value (0 disables).
        eval_every: run validation every this many steps (and at the end).
        eval_batches: validation batches per evaluation.
        seed: seeds weights init, batch sampling and dropout.
        synthetic_share: fraction of sequences replaced by random tokens repeated twice
            (a copy task that rewards induction heads); 0 disables.
        synthetic_segment: 0 = each copy-task row is one run repeated; N > 0 = pairs of runs of
            at most N tokens, each followed by its copy (shorter look-backs, learned sooner).
        synthetic_min_count: 0 = copy-task tokens drawn from every ordinary id; N > 0 = only from
            ids that occur at least N times in the training split (ids never seen in training
            keep near-identical embeddings, so copies of them cannot be told apart).
        copy_first_steps: the first N steps train on the copy task only (every row), then
            `synthetic_share` applies: a curriculum that forms the copying circuit first.
        position_init: "normal" (GPT-2's N(0, 0.02)) or "sinusoidal" (the learned position
            embedding starts from a sine/cosine code).
        threads: torch intra-op threads (0 keeps torch's default).
        natural_copy_share: fraction of sequences that are natural-text copy rows: passages of
            the training text, each followed by itself again (copying on language, not only on
            random ids); every token is scored. 0 disables.
        natural_copy_segment: longest passage of a natural-text copy row, in tokens.
        decay_embeddings: apply weight decay to the token and position embeddings too (the
            old behaviour); False keeps the rows of rare tokens from shrinking to one direction.
        snapshot_every: also save weights-only snapshots every this many steps under
            `<out>/snapshots/step_NNNNNN/` (0: none).
    """

    max_steps: int = 2000
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 200
    eval_batches: int = 20
    seed: int = 1337
    synthetic_share: float = 0.0
    synthetic_segment: int = 0
    synthetic_min_count: int = 0
    copy_first_steps: int = 0
    position_init: str = "normal"
    threads: int = 0
    natural_copy_share: float = 0.0
    natural_copy_segment: int = 64
    decay_embeddings: bool = True
    snapshot_every: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.natural_copy_share <= 1.0 - self.synthetic_share + 1e-9:
            raise ValueError(
                f"natural_copy_share must be in [0, 1 - synthetic_share], "
                f"got {self.natural_copy_share}"
            )
        if self.natural_copy_segment < 4 or self.snapshot_every < 0:
            raise ValueError("natural_copy_segment must be >= 4 and snapshot_every >= 0")
        if self.max_steps < 1 or self.batch_size < 1 or self.seq_len < 2:
            raise ValueError("max_steps and batch_size must be >= 1 and seq_len >= 2")
        if not 0.0 <= self.synthetic_share <= 1.0:
            raise ValueError(f"synthetic_share must be in [0, 1], got {self.synthetic_share}")
        if self.copy_first_steps < 0:
            raise ValueError(f"copy_first_steps must be >= 0, got {self.copy_first_steps}")
        if self.synthetic_min_count < 0:
            raise ValueError(f"synthetic_min_count must be >= 0, got {self.synthetic_min_count}")
        if self.position_init not in ("normal", "sinusoidal"):
            raise ValueError(
                f"position_init must be normal or sinusoidal, got {self.position_init!r}"
            )
        if self.synthetic_segment < 0:
            raise ValueError(f"synthetic_segment must be >= 0, got {self.synthetic_segment}")
        if self.warmup_steps < 0 or self.eval_every < 1 or self.eval_batches < 1:
            raise ValueError("warmup_steps must be >= 0, eval_every and eval_batches >= 1")
        if not 0.0 < self.lr < 1.0 or not 0.0 <= self.min_lr <= self.lr:
            raise ValueError(
                f"lr must be in (0, 1) and min_lr in [0, lr], "
                f"got lr={self.lr}, min_lr={self.min_lr}"
            )
        if self.weight_decay < 0 or self.grad_clip < 0 or self.threads < 0:
            raise ValueError("weight_decay, grad_clip and threads must be >= 0")
