"""Head probes: which heads attend to the previous token on held-out text, and which act as
induction heads on random tokens repeated twice (`engine.lens.heads.head_scores` on Traces made by
`engine.capture.run_with_trace`), and the bars the bundled model must clear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.capture import run_with_trace
from engine.card import HeadScore
from engine.checkpoints import LoadedModel
from engine.config import GPTConfig
from engine.lens.heads import head_scores

# The bars the bundled model must clear (issue 3); never lowered silently.
PREVIOUS_TOKEN_BAR = 0.5
INDUCTION_BAR = 0.4


def window_starts(n_tokens: int, window: int, n_windows: int) -> list[int]:
    """`n_windows` evenly spaced starts of `window`-token windows inside `n_tokens` tokens."""
    if n_tokens < window:
        raise ValueError(f"{n_tokens} tokens are fewer than one window of {window}")
    return [int(s) for s in np.linspace(0, n_tokens - window, n_windows).round()]


def previous_token_scores(
    loaded: LoadedModel, ids: np.ndarray, n_windows: int = 8, window: int = 0
) -> np.ndarray:
    """[n_layer, n_head]: `head_scores(...).previous` averaged over `n_windows` evenly spaced
    windows of held-out token ids (`window` tokens each; 0 means the model's context)."""
    window = window or loaded.config.n_ctx
    scores = []
    for start in window_starts(len(ids), window, n_windows):
        chunk = [int(t) for t in ids[start : start + window]]
        trace = run_with_trace(loaded.model, loaded.tokenizer, chunk, model_name=loaded.name)
        scores.append(head_scores(trace).previous)
    return np.mean(scores, axis=0)


@dataclass(frozen=True)
class InductionResult:
    """The induction probe's result, averaged over its seeds."""

    # [n_layer, n_head], mean over seeds of head_scores(..., period=half).induction:
    # the attention from each token of the second copy to the token after its occurrence in
    # the first copy (Olsson et al. 2022; TransformerLens's induction score)
    scores: np.ndarray
    first_half_loss: float  # nats, targets 1 .. half - 1 (unpredictable: about log V)
    repeat_loss: float  # nats, targets half + 1 .. 2 half - 1 (copyable from the first copy)


def repeated_random_tokens(
    seed: int, half: int, n_tokens: int, pool: np.ndarray | None = None
) -> list[int]:
    """`half` uniformly random ids, then the same ids again: drawn from `0..n_tokens - 1`, or
    from the ids in `pool` when it is given."""
    rng = np.random.default_rng(seed)
    if pool is None:
        seq = rng.integers(0, n_tokens, size=half)
    else:
        seq = np.asarray(pool)[rng.integers(0, len(pool), size=half)]
    return [int(t) for t in np.concatenate([seq, seq])]


def seen_ids(train_ids: np.ndarray, eot_id: int) -> np.ndarray:
    """The ordinary ids that occur in the training split, sorted.

    With cl100k_base cut to 4,096 ranks about a third of the ids never occur in Shakespeare;
    the model never reads them and their embeddings end up nearly identical, so random
    copies of them test nothing about induction."""
    ids = np.unique(np.asarray(train_ids))
    return ids[ids < eot_id].astype(np.int64)


def default_induction_half(config: GPTConfig) -> int:
    """Length of the random run in the induction probe: 100 tokens, or half the context when
    that is shorter (two copies must fit)."""
    return min(100, config.n_ctx // 2)


def induction_scores(
    loaded: LoadedModel,
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    half: int = 0,
    pool: np.ndarray | None = None,
) -> InductionResult:
    """Trace random tokens repeated twice (ordinary tokens only, no `<|endoftext|>`; from
    `pool` if given), one sequence per seed. The token at position `half` (the first of the
    copy) cannot be predicted and is scored in neither half. The induction score counts the
    queries of the second copy only (`engine.lens.heads.head_scores` with `period` =
    `half`), each attending to the token after its place in the first copy. `half` 0 means
    `default_induction_half`."""
    half = half or default_induction_half(loaded.config)
    if 2 * half > loaded.config.n_ctx:
        raise ValueError(f"2 x {half} tokens exceed the model's context {loaded.config.n_ctx}")
    scores, first, repeat = [], [], []
    for seed in seeds:
        ids = repeated_random_tokens(seed, half, loaded.tokenizer.eot_id, pool)
        trace = run_with_trace(loaded.model, loaded.tokenizer, ids, model_name=loaded.name)
        scores.append(head_scores(trace, period=half).induction)
        logits = torch.from_numpy(np.array(trace.logits[:-1], dtype=np.float32))
        # logits[i] predicts ids[i + 1].
        nll = F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none").numpy()
        first.append(nll[0 : half - 1].mean())
        repeat.append(nll[half : 2 * half - 1].mean())
    return InductionResult(np.mean(scores, axis=0), float(np.mean(first)), float(np.mean(repeat)))


def best_head(scores: np.ndarray) -> HeadScore:
    """The head with the highest score in `scores` [n_layer, n_head] (NaN ignored)."""
    layer, head = np.unravel_index(int(np.nanargmax(scores)), scores.shape)
    return HeadScore(int(layer), int(head), float(scores[layer, head]))


def heads_above(scores: np.ndarray, bar: float) -> tuple[str, ...]:
    """ "layer.head" of every head whose score in `scores` [n_layer, n_head] is at least `bar`."""
    return tuple(f"{la}.{h}" for la, h in zip(*np.nonzero(scores >= bar), strict=True))
