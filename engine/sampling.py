"""Choosing the next token: temperature, top-k and top-p applied to logits, and sampling.

`next_token_distribution` is pure numpy on one logits vector (the Output page applies it to the
stored logits without re-running the model). `sample_next` and `generate` run the model through
`GPT.forward` (no recorder, no hooks, evaluation mode untouched) and draw with a
`torch.Generator` created per call, so they are reproducible for a seed and safe to call from
many threads on the one shared model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from engine.model import GPT
from engine.tokenizer import Tokenizer

log = logging.getLogger(__name__)

MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 5.0


@dataclass(frozen=True)
class SamplingSettings:
    """How the next token is chosen.

    temperature: logits are divided by it before the softmax (1 = the model's own distribution).
    top_k: keep only the k most probable tokens (0 keeps all).
    top_p: keep the smallest set of most probable tokens whose probabilities add up to at least
        top_p (1 keeps all); applied after top-k.
    greedy: take the most probable token (argmax of the logits); no randomness.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False

    def __post_init__(self) -> None:
        if not MIN_TEMPERATURE <= float(self.temperature) <= MAX_TEMPERATURE:
            raise ValueError(
                f"temperature must be between {MIN_TEMPERATURE} and {MAX_TEMPERATURE}, "
                f"got {self.temperature!r}"
            )
        if not isinstance(self.top_k, int | np.integer) or self.top_k < 0:
            raise ValueError(f"top_k must be a whole number >= 0 (0 = all), got {self.top_k!r}")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along `axis` (default the last: a vector [V], or the rows of attention scores
    [T, T]) in float64, the shape of `logits`; entries that are not finite (-inf: masked) get
    probability 0. Each slice is shifted by its largest finite value first, so large logits do
    not overflow.

    The engine's one numpy softmax: sampling, the attention maths (`engine.lens.attention`) and
    the model's own next-token distribution (`engine.lens.logit_lens.final_probs`) call it.
    Raises ValueError when a slice has no finite entry (every logit -inf or NaN)."""
    x = np.asarray(logits, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.any(axis=axis).all():
        raise ValueError("every logit is -inf or NaN: there is no token to choose")
    top = np.max(np.where(finite, x, -np.inf), axis=axis, keepdims=True)
    shifted = np.where(finite, x - top, -np.inf)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def n_valid_ids(tokenizer: Tokenizer, vocab_size: int) -> int:
    """How many of a model's `vocab_size` output rows name a token of `tokenizer`: ids
    0..n - 1 do, the rest are padding (nanoGPT pads its vocabulary to a multiple of 64). The
    one place this is decided; Traces record it (`Trace.n_valid_ids`) and
    everything that names a token from the output masks by it."""
    return max(1, min(int(tokenizer.vocab_size), int(vocab_size)))


def gap_ids(tokenizer: Tokenizer, vocab_size: int) -> tuple[int, ...]:
    """Ids below `n_valid_ids` that name no token of `tokenizer` (a vocabulary with gaps)."""
    n = n_valid_ids(tokenizer, vocab_size)
    return tuple(i for i in tokenizer.gap_ids if i < n)


def padding_masked(
    logits: np.ndarray, n_valid: int, gaps: tuple[int, ...] | list[int] = ()
) -> np.ndarray:
    """A float64 copy of `logits` [..., V] with the ids that name no token (the padding,
    >= `n_valid`, and the `gaps`) set to -inf: softmax gives them probability 0 and no argmax
    or top-k can pick them."""
    x = np.array(logits, dtype=np.float64)
    x[..., int(n_valid) :] = -np.inf
    if len(gaps):
        x[..., list(gaps)] = -np.inf
    return x


def next_token_distribution(
    logits: np.ndarray,
    settings: SamplingSettings,
    allowed: int | None = None,
    gaps: tuple[int, ...] | list[int] = (),
) -> np.ndarray:
    """The distribution [V] a sampler draws from: softmax(logits / temperature), cut to the top-k,
    then to the top-p nucleus, renormalised. With `greedy`, all mass on the argmax.

    `allowed`: only ids below it can be chosen (a model whose embedding has more rows than the
    tokenizer has tokens); `gaps`: ids below it that cannot be chosen either (no token)."""
    x = np.asarray(logits, dtype=np.float64).copy()
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"logits must be one non-empty vector, got shape {x.shape}")
    if allowed is not None and allowed < x.size:
        x[allowed:] = -np.inf
    if len(gaps):
        x[list(gaps)] = -np.inf
    x[~np.isfinite(x)] = -np.inf
    if settings.greedy:
        probs = np.zeros_like(x)
        probs[int(np.argmax(x))] = 1.0
        return probs
    scaled = x / float(settings.temperature)
    probs = softmax(scaled)
    # most probable first; ordered by the logits themselves (two logits that differ by less than
    # float precision in probability still rank as argmax does), ties by id
    order = np.lexsort((np.arange(x.size), -scaled))
    keep = np.zeros(probs.size, dtype=bool)
    n_keep = int(np.count_nonzero(probs))
    if settings.top_k:
        n_keep = min(n_keep, int(settings.top_k))
    if settings.top_p < 1.0:
        cumulative = np.cumsum(probs[order])
        # the first index whose cumulative mass reaches top_p is the last one kept
        n_nucleus = int(np.searchsorted(cumulative, settings.top_p - 1e-12) + 1)
        n_keep = min(n_keep, n_nucleus)
    keep[order[: max(1, n_keep)]] = True
    probs = np.where(keep, probs, 0.0)
    return probs / probs.sum()


@dataclass(frozen=True)
class SampleStep:
    """One sampled token and the distribution it was drawn from."""

    token_id: int
    token_str: str  # display string (engine.tokenizer.display_token)
    probs: np.ndarray  # [V] the distribution after temperature / top-k / top-p
    model_probs: np.ndarray  # [V] the model's own distribution (temperature 1, nothing cut)
    context_len: int  # tokens the model saw (the last n_ctx of the text)
    seed: int
    settings: SamplingSettings

    @property
    def prob(self) -> float:
        return float(self.probs[self.token_id])

    @property
    def n_candidates(self) -> int:
        return int(np.count_nonzero(self.probs))


def _draw(probs: np.ndarray, generator: torch.Generator) -> int:
    weights = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float64))
    return int(torch.multinomial(weights, 1, generator=generator).item())


def last_logits(model: GPT, ids: list[int]) -> np.ndarray:
    """The model's logits [V] for the token after `ids` (only the last n_ctx ids are seen)."""
    if not ids:
        raise ValueError("there is no text to continue: type something first")
    context = list(ids)[-model.config.n_ctx :]
    with torch.inference_mode():
        logits = model(torch.tensor([context], dtype=torch.long, device=model.device))
    return logits[0, -1].cpu().double().numpy()


def sample_next(
    model: GPT,
    tokenizer: Tokenizer,
    ids: list[int],
    settings: SamplingSettings,
    seed: int,
    *,
    suppress_eot: bool = False,
    generator: torch.Generator | None = None,
) -> SampleStep:
    """Run the model on `ids` and choose the next token; the same seed gives the same token.

    `suppress_eot`: `<|endoftext|>` gets probability 0 in `probs` (not in `model_probs`), so
    the text goes on. `generator`: draw from this generator (its state advances) instead of a
    fresh one seeded with `seed`."""
    logits = last_logits(model, ids)
    allowed = n_valid_ids(tokenizer, logits.size)
    chosen_from = logits
    if suppress_eot and tokenizer.eot_id < logits.size:
        chosen_from = logits.copy()
        chosen_from[tokenizer.eot_id] = -np.inf
    gaps = gap_ids(tokenizer, logits.size)
    probs = next_token_distribution(chosen_from, settings, allowed=allowed, gaps=gaps)
    model_probs = next_token_distribution(logits, SamplingSettings(), allowed=allowed, gaps=gaps)
    if settings.greedy:
        token = int(np.argmax(probs))
    else:
        token = _draw(probs, generator or torch.Generator().manual_seed(int(seed)))
    return SampleStep(
        token_id=token,
        token_str=tokenizer.display(token),
        probs=probs,
        model_probs=model_probs,
        context_len=min(len(ids), model.config.n_ctx),
        seed=int(seed),
        settings=settings,
    )


def generate(
    model: GPT,
    tokenizer: Tokenizer,
    ids: list[int],
    n: int,
    settings: SamplingSettings,
    seed: int,
    callback: Callable[[int, int, SampleStep], None] | None = None,
    stop_at_eot: bool = True,
    *,
    suppress_eot: bool = False,
    one_stream: bool = False,
) -> list[SampleStep]:
    """Sample `n` tokens one at a time; step i uses seed + i, so generating n tokens at once gives
    the same tokens as n single steps with seeds seed, seed + 1, ...

    `callback(done, n, step)` is called after every token (a progress bar). Stops early after
    `<|endoftext|>` when `stop_at_eot`; with `suppress_eot` that token is never chosen (the
    model card's samples keep going within one work). `one_stream`: every draw comes in turn
    from one generator seeded once with `seed` (the model card's protocol) instead of a fresh
    generator per step. Raises ValueError for n < 1 or empty `ids`."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    context = list(ids)
    steps: list[SampleStep] = []
    stream = torch.Generator().manual_seed(int(seed)) if one_stream else None
    for i in range(n):
        step = sample_next(
            model,
            tokenizer,
            context,
            settings,
            seed + i,
            suppress_eot=suppress_eot,
            generator=stream,
        )
        steps.append(step)
        context.append(step.token_id)
        if callback is not None:
            callback(i + 1, n, step)
        if stop_at_eot and step.token_id == tokenizer.eot_id:
            log.info("generation stopped at <|endoftext|> after %d tokens", i + 1)
            break
    return steps


def top_candidates(probs: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k most probable tokens, most probable first (ties by id)."""
    probs = np.asarray(probs)
    k = max(1, min(int(k), probs.size))
    part = np.argpartition(-probs, k - 1)[:k]
    return part[np.lexsort((part, -probs[part]))]


__all__ = [
    "MAX_TEMPERATURE",
    "MIN_TEMPERATURE",
    "SampleStep",
    "SamplingSettings",
    "gap_ids",
    "generate",
    "last_logits",
    "n_valid_ids",
    "next_token_distribution",
    "padding_masked",
    "sample_next",
    "softmax",
    "top_candidates",
]
