"""Measurements for the model card beyond the evaluation report: the tokenizer's costs at several
vocabulary sizes, training throughput, diagnostics of missing heads, a learning curve over a
run's snapshots, and a description of this machine.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from engine.capture import run_with_trace
from engine.card import CurvePoint, Diagnostics, TokenizerCost, TrainingSpeed
from engine.checkpoints import LoadedModel, load_directory, random_model
from engine.config import GPTConfig
from engine.lens.heads import head_scores
from engine.tokenizer import cl100k_truncated
from engine.training.evaluate import rounded_head
from engine.training.probes import best_head, induction_scores, previous_token_scores, window_starts
from engine.training.train import estimate_loss, loss_of

CARD_SIZES = (4096, 8192, 16384)


def unembedding_flop_share(config: GPTConfig, vocab_size: int, seq_len: int = 0) -> float:
    """Share of a forward pass's matrix-multiply FLOPs spent on the unembedding (d x V per
    token), for `config` with its vocabulary replaced by `vocab_size`; attention scores and
    the weighted sum cost about 2 * d * (T + 1) per token and layer (causal average)."""
    T = seq_len or config.n_ctx
    d, m, L = config.d_model, config.d_mlp, config.n_layer
    blocks = L * (2 * (3 * d * d + d * d + 2 * d * m) + 2 * d * (T + 1))
    unembed = 2 * d * vocab_size
    return unembed / (blocks + unembed)


def tokenizer_costs(
    texts: list[str], config: GPTConfig, sizes: tuple[int, ...] = CARD_SIZES
) -> list[TokenizerCost]:
    """For cl100k_base cut to each size N: characters per token on `texts`, tokens in total,
    embedding parameters (N + 1 rows of d_model) and their share of the model, and the
    unembedding's share of the forward FLOPs (shares rounded to 3 decimals)."""
    chars = sum(len(t) for t in texts)
    out = []
    for n in sizes:
        tok = cl100k_truncated(n)
        n_tokens = sum(len(tok.encode(t)) for t in texts)
        shaped = replace(config, vocab_size=n + 1)
        emb = (n + 1) * config.d_model
        out.append(
            TokenizerCost(
                n_ranks=n,
                chars_per_token=round(chars / n_tokens, 3),
                corpus_tokens=n_tokens,
                embedding_params=emb,
                model_params=shaped.n_params(),
                embedding_share=round(emb / shaped.n_params(), 3),
                unembedding_flop_share=round(unembedding_flop_share(config, n + 1), 3),
            )
        )
    return out


def _speed_setup(config: GPTConfig, n: int, batch_size: int, seq_len: int) -> tuple:
    model = random_model(replace(config, vocab_size=n + 1), seed=0)
    for p in model.parameters():
        p.requires_grad_(True)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, n, (batch_size, seq_len), generator=g)
    y = torch.randint(0, n, (batch_size, seq_len), generator=g)
    return model, opt, x, y


def _fastest_step(setup: tuple, steps: int) -> float:
    """The fastest of `steps` timed training steps, after one warm-up step (seconds)."""
    model, opt, x, y = setup
    best = float("inf")
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = loss_of(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step of each turn warms caches up
            best = min(best, time.perf_counter() - t0)
    return best


def training_speed(
    config: GPTConfig,
    sizes: tuple[int, ...] = CARD_SIZES,
    batch_size: int = 16,
    seq_len: int = 0,
    steps: int = 5,
    rounds: int = 3,
    threads: int = 1,
) -> list[TrainingSpeed]:
    """Measured training throughput (forward, backward and AdamW step) of `config` with each
    vocabulary size, on this machine now. The sizes take turns for `rounds` rounds of `steps`
    timed steps (after one warm-up step each), and each size keeps its fastest step, so that
    other work on the machine disturbs the comparison as little as possible."""
    seq_len = seq_len or config.n_ctx
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    setups = [_speed_setup(config, n, batch_size, seq_len) for n in sizes]
    best = [float("inf")] * len(sizes)
    try:
        for _ in range(rounds):
            for k, setup in enumerate(setups):
                best[k] = min(best[k], _fastest_step(setup, steps))
    finally:
        torch.set_num_threads(previous_threads)
    return [
        TrainingSpeed(n_ranks=n, tokens_per_s=round(batch_size * seq_len / t), threads=threads)
        for n, t in zip(sizes, best, strict=True)
    ]


def _mean_pairwise_cos(unit: np.ndarray, ids: np.ndarray) -> float:
    """Mean cosine over distinct pairs of the unit rows `unit[ids]` (NaN for fewer than 2)."""
    if len(ids) < 2:
        return float("nan")
    total = unit[ids].sum(0)
    return float((total @ total - len(ids)) / (len(ids) * (len(ids) - 1)))


def _attention_entropy(loaded: LoadedModel, val_ids: np.ndarray, n_windows: int) -> np.ndarray:
    """[n_layer] mean entropy (nats) of each layer's attention rows on held-out windows."""
    window = loaded.config.n_ctx
    entropies = []
    for start in window_starts(len(val_ids), window, n_windows):
        chunk = [int(t) for t in val_ids[start : start + window]]
        trace = run_with_trace(loaded.model, loaded.tokenizer, chunk, model_name=loaded.name)
        entropies.append(head_scores(trace).entropy.mean(axis=1))
    return np.mean(entropies, axis=0)


def diagnostics(
    loaded: LoadedModel, train_ids: np.ndarray, val_ids: np.ndarray, n_windows: int = 8
) -> Diagnostics:
    """Facts that explain missing heads, measured on the weights and on held-out text (rounded
    to 4 decimals):

    - position_cos_next / position_cos_10: mean cosine between the learned position vectors
      of positions i and i + 1, and i and i + 10 (positions >= 1). A positional code that lets
      a head attend "one back" makes neighbours more alike than distant positions;
    - attention_entropy: mean entropy (nats) of each layer's attention rows on `n_windows`
      windows of held-out text, and uniform_entropy, the same for attention spread evenly
      over every visible position (the value of a head that ignores content and position);
    - unseen_ids: ordinary ids that never occur in the training split, and the mean pairwise
      cosine of their embeddings against that of ids seen at least 10 times."""
    model = loaded.model
    wpe = model.transformer.wpe.weight.detach().double().numpy()[1:]
    unit = wpe / np.linalg.norm(wpe, axis=1, keepdims=True)
    cos_next = float((unit[1:] * unit[:-1]).sum(1).mean())
    cos_10 = float((unit[10:] * unit[:-10]).sum(1).mean())
    uniform = float(np.mean(np.log(np.arange(2, loaded.config.n_ctx + 1))))
    counts = np.bincount(np.asarray(train_ids), minlength=loaded.config.vocab_size)
    eot = loaded.tokenizer.eot_id
    wte = model.transformer.wte.weight.detach().double().numpy()[:eot]
    wte_unit = wte / np.linalg.norm(wte, axis=1, keepdims=True)
    unseen = np.nonzero(counts[:eot] == 0)[0]
    frequent = np.nonzero(counts[:eot] >= 10)[0]
    entropy = _attention_entropy(loaded, val_ids, n_windows)
    return Diagnostics(
        position_cos_next=round(cos_next, 4),
        position_cos_10=round(cos_10, 4),
        attention_entropy=tuple(round(float(e), 4) for e in entropy),
        uniform_entropy=round(uniform, 4),
        unseen_ids=len(unseen),
        unseen_ids_mean_cos=round(_mean_pairwise_cos(wte_unit, unseen), 4),
        frequent_ids_mean_cos=round(_mean_pairwise_cos(wte_unit, frequent), 4),
    )


def snapshot_curve(
    directories: list[Path], val_ids: np.ndarray, pool: np.ndarray | None = None
) -> list[CurvePoint]:
    """Validation loss and the best previous-token and induction heads of each checkpoint
    directory (e.g. copies of a run's directory taken at its checkpoints), in step order; the
    induction probe draws from `pool` (as `evaluate` does: the ids seen in training) and, for
    comparison, from every ordinary id. Numbers rounded to 4 decimals."""
    rows = []
    for directory in directories:
        state = json.loads((directory / "train_state.json").read_text())["state"]
        loaded = load_directory(directory)
        prev = previous_token_scores(loaded, val_ids)
        ind = induction_scores(loaded, pool=pool)
        ind_all = induction_scores(loaded)
        rows.append(
            CurvePoint(
                step=state["step"],
                tokens_seen=state["tokens_seen"],
                val_loss=round(estimate_loss(loaded.model, val_ids, loaded.config.n_ctx), 4),
                best_previous_token=rounded_head(best_head(prev)),
                best_induction=rounded_head(best_head(ind.scores)),
                induction_first_half_loss=round(ind.first_half_loss, 4),
                induction_repeat_loss=round(ind.repeat_loss, 4),
                best_induction_all_ids=rounded_head(best_head(ind_all.scores)),
            )
        )
    return sorted(rows, key=lambda r: r.step)


def machine_description() -> str:
    """The machine for the card: "N CPU cores (model name), no GPU, torch VERSION"."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), no GPU, torch {torch.__version__}"
