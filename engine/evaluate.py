"""Evaluate a checkpoint with the engine's own functions: what has the model learned?

- validation loss on the whole held-out split (`engine.train.estimate_loss`), and the training
  loss measured the same way;
- n-gram baselines fitted on the training split with the same tokenizer and scored on the same
  validation targets: add-one unigram, and interpolated Kneser-Ney bigram and trigram with
  absolute discounting (Chen & Goodman 1998, section 3.5; one discount per order,
  D = n1 / (n1 + 2 n2));
- per-head previous-token score on held-out text (`engine.lens.head_scores`, averaged over
  evenly spaced windows of the validation split, each traced by `engine.capture.run_with_trace`);
- per-head induction score on random tokens repeated twice (several seeds), and the model's loss
  on the first copy against the repeated copy;
- seeded greedy and sampled continuations of a few Shakespearean prompts.

`evaluate(...)` returns an `EvalReport`; `python -m engine evaluate` prints it as JSON.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel
from engine.lens import head_scores
from engine.model import GPT
from engine.tokenizer import Tokenizer
from engine.train import estimate_loss

log = logging.getLogger(__name__)

# The bars the bundled model must clear (issue 3); never lowered silently.
PREVIOUS_TOKEN_BAR = 0.5
INDUCTION_BAR = 0.4

PROMPTS: tuple[str, ...] = (
    "ROMEO.\n",
    "To be, or not to be,",
    "KING.\nMy lord,",
    "Now is the winter of",
)


# --- n-gram baselines ----------------------------------------------------------------------------


def _discount(counts: np.ndarray) -> float:
    """Absolute discount D = n1 / (n1 + 2 n2) from the counts-of-counts (Ney et al. 1994), kept
    inside [0.05, 0.95] so that neither the counts nor the lower order ever get all the mass
    (only tiny or degenerate data reach the limits; on the corpus D lies in 0.4-0.8)."""
    n1 = int(np.sum(counts == 1))
    n2 = int(np.sum(counts == 2))
    if n1 + 2 * n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[k] where keys[k] == query (keys sorted and unique), else 0."""
    if len(keys) == 0:
        return np.zeros(len(query), dtype=np.float64)
    idx = np.searchsorted(keys, query)
    idx = np.minimum(idx, len(keys) - 1)
    found = keys[idx] == query
    return np.where(found, values[idx], 0).astype(np.float64)


def _grouped(codes: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unique codes and, per code, the number of entries (or the sum of `weights`)."""
    keys, inverse = np.unique(codes, return_inverse=True)
    sums = np.bincount(inverse, weights=weights, minlength=len(keys))
    return keys, sums.astype(np.float64)


class KneserNey:
    """Interpolated Kneser-Ney n-gram model (order 1, 2 or 3) over token ids `0..V-1`.

    The highest order uses raw counts, the lower orders continuation counts (in how many distinct
    contexts a token follows), and the unigram level interpolates with the uniform distribution,
    so every token has a non-zero probability and each conditional distribution sums to 1.
    Order 1 is plain add-one (Laplace) smoothing of unigram counts.
    """

    def __init__(self, train_ids: np.ndarray, vocab_size: int, order: int) -> None:
        if order not in (1, 2, 3):
            raise ValueError(f"order must be 1, 2 or 3, got {order}")
        ids = np.asarray(train_ids, dtype=np.int64)
        if ids.size < order + 1:
            raise ValueError("too few training tokens for this order")
        if ids.min() < 0 or ids.max() >= vocab_size:
            raise ValueError("training ids outside the vocabulary")
        V = self.V = int(vocab_size)
        self.order = order
        self.discounts: tuple[float, ...] = ()
        self.unigram_counts = np.bincount(ids, minlength=V).astype(np.float64)
        if order == 1:
            return
        # Bigram level.
        bigram_keys, bigram_counts = _grouped(ids[:-1] * V + ids[1:])
        if order == 2:
            # Highest order: raw counts c(v w); below it the continuation unigram.
            self._top_keys, self._top_counts = bigram_keys, bigram_counts
            self._top_ctx_keys, self._top_ctx_total = _grouped(bigram_keys // V, bigram_counts)
            _, self._top_ctx_types = _grouped(bigram_keys // V)
            self._d_top = _discount(bigram_counts)
            cont_unigram_source = bigram_keys % V  # N1+(. w): one entry per distinct (v, w)
            self.discounts = (self._d_top,)
        else:
            trigram_keys, trigram_counts = _grouped((ids[:-2] * V + ids[1:-1]) * V + ids[2:])
            self._top_keys, self._top_counts = trigram_keys, trigram_counts
            self._top_ctx_keys, self._top_ctx_total = _grouped(trigram_keys // V, trigram_counts)
            _, self._top_ctx_types = _grouped(trigram_keys // V)
            self._d_top = _discount(trigram_counts)
            # Middle order (bigram) with continuation counts N1+(. v w).
            mid_keys, mid_counts = _grouped(trigram_keys % (V * V))
            self._mid_keys, self._mid_counts = mid_keys, mid_counts
            self._mid_ctx_keys, self._mid_ctx_total = _grouped(mid_keys // V, mid_counts)
            _, self._mid_ctx_types = _grouped(mid_keys // V)
            self._d_mid = _discount(mid_counts)
            cont_unigram_source = mid_keys % V  # N1+(. w) over distinct (v, w) of the middle order
            self.discounts = (self._d_top, self._d_mid)
        cont = np.bincount(cont_unigram_source, minlength=V).astype(np.float64)
        self._d_uni = _discount(cont[cont > 0])
        self.discounts = (*self.discounts, self._d_uni)
        total = cont.sum()
        seen_types = float(np.sum(cont > 0))
        self._p_uni = (
            np.maximum(cont - self._d_uni, 0.0) / total + self._d_uni * seen_types / total / V
        )

    def _p_unigram(self, w: np.ndarray) -> np.ndarray:
        if self.order == 1:
            return (self.unigram_counts[w] + 1.0) / (self.unigram_counts.sum() + self.V)
        return self._p_uni[w]

    def _level(
        self,
        keys: np.ndarray,
        counts: np.ndarray,
        ctx_keys: np.ndarray,
        ctx_total: np.ndarray,
        ctx_types: np.ndarray,
        d: float,
        ctx: np.ndarray,
        w: np.ndarray,
        lower: np.ndarray,
    ) -> np.ndarray:
        c = _lookup(keys, counts, ctx * self.V + w)
        total = _lookup(ctx_keys, ctx_total, ctx)
        types = _lookup(ctx_keys, ctx_types, ctx)
        safe = np.maximum(total, 1.0)
        interpolated = np.maximum(c - d, 0.0) / safe + d * types / safe * lower
        return np.where(total > 0, interpolated, lower)

    def prob(self, history: np.ndarray | None, w: np.ndarray) -> np.ndarray:
        """P(w | history) for arrays of targets `w` [N] and histories [N, order - 1] (the
        preceding tokens, oldest first; None for order 1)."""
        w = np.asarray(w, dtype=np.int64)
        p = self._p_unigram(w)
        if self.order == 1:
            return p
        history = np.asarray(history, dtype=np.int64).reshape(len(w), self.order - 1)
        if self.order == 2:
            return self._level(
                self._top_keys,
                self._top_counts,
                self._top_ctx_keys,
                self._top_ctx_total,
                self._top_ctx_types,
                self._d_top,
                history[:, 0],
                w,
                p,
            )
        p_mid = self._level(
            self._mid_keys,
            self._mid_counts,
            self._mid_ctx_keys,
            self._mid_ctx_total,
            self._mid_ctx_types,
            self._d_mid,
            history[:, 1],
            w,
            p,
        )
        return self._level(
            self._top_keys,
            self._top_counts,
            self._top_ctx_keys,
            self._top_ctx_total,
            self._top_ctx_types,
            self._d_top,
            history[:, 0] * self.V + history[:, 1],
            w,
            p_mid,
        )

    def loss(self, ids: np.ndarray, first_target: int = 1, last_target: int | None = None) -> float:
        """Mean negative log-likelihood (nats) of `ids[first_target:last_target + 1]`, each given
        the tokens before it (the first target needs `order - 1` tokens of history)."""
        ids = np.asarray(ids, dtype=np.int64)
        last = len(ids) - 1 if last_target is None else last_target
        first = max(first_target, self.order - 1)
        pos = np.arange(first, last + 1)
        lags = range(self.order - 1, 0, -1)  # oldest first
        history = np.stack([ids[pos - k] for k in lags], axis=1) if self.order > 1 else None
        p = self.prob(history, ids[pos])
        return float(-np.mean(np.log(p)))


@dataclass(frozen=True)
class Baselines:
    """Validation loss (nats per token) of n-gram models fitted on the training split."""

    unigram: float  # add-one smoothed
    bigram_kn: float  # interpolated Kneser-Ney
    trigram_kn: float
    discounts_bigram: tuple[float, ...]
    discounts_trigram: tuple[float, ...]
    n_train_tokens: int
    n_val_targets: int


def ngram_baselines(
    train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int, seq_len: int
) -> Baselines:
    """Score the n-gram models on the same targets `estimate_loss(model, val_ids, seq_len)` scores:
    positions 1 .. n * seq_len of the validation split, n = (len - 1) // seq_len windows. An
    n-gram model's history may reach back across a window boundary (the transformer's may not);
    that favours the baselines slightly."""
    n_windows = (len(val_ids) - 1) // seq_len
    last = n_windows * seq_len
    # The trigram's first target is position 2; score position 1 with the bigram so all three
    # baselines average over exactly the same targets.
    uni = KneserNey(train_ids, vocab_size, 1)
    bi = KneserNey(train_ids, vocab_size, 2)
    tri = KneserNey(train_ids, vocab_size, 3)
    n = last
    tri_sum = tri.loss(val_ids, 2, last) * (n - 1) + bi.loss(val_ids, 1, 1)
    return Baselines(
        unigram=uni.loss(val_ids, 1, last),
        bigram_kn=bi.loss(val_ids, 1, last),
        trigram_kn=tri_sum / n,
        discounts_bigram=bi.discounts,
        discounts_trigram=tri.discounts,
        n_train_tokens=len(train_ids),
        n_val_targets=n,
    )


# --- heads ---------------------------------------------------------------------------------------


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
    scores: np.ndarray  # [n_layer, n_head], mean over seeds of head_scores(...).induction
    first_half_loss: float  # nats, targets 1 .. half - 1 (unpredictable: about log V)
    repeat_loss: float  # nats, targets half + 1 .. 2 half - 1 (copyable from the first copy)


def repeated_random_tokens(seed: int, half: int, n_tokens: int) -> list[int]:
    """`half` uniformly random ids from `0..n_tokens - 1`, then the same ids again."""
    seq = np.random.default_rng(seed).integers(0, n_tokens, size=half)
    return [int(t) for t in np.concatenate([seq, seq])]


def induction_scores(
    loaded: LoadedModel, seeds: tuple[int, ...] = (0, 1, 2, 3, 4), half: int = 100
) -> InductionResult:
    """Trace random tokens repeated twice (ordinary tokens only, no `<|endoftext|>`), one
    sequence per seed. The token at position `half` (the first of the copy) cannot be predicted
    and is scored in neither half."""
    if 2 * half > loaded.config.n_ctx:
        raise ValueError(f"2 x {half} tokens exceed the model's context {loaded.config.n_ctx}")
    scores, first, repeat = [], [], []
    for seed in seeds:
        ids = repeated_random_tokens(seed, half, loaded.tokenizer.eot_id)
        trace = run_with_trace(loaded.model, loaded.tokenizer, ids, model_name=loaded.name)
        scores.append(head_scores(trace).induction)
        logits = torch.from_numpy(np.array(trace.logits[:-1], dtype=np.float32))
        # logits[i] predicts ids[i + 1].
        nll = F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none").numpy()
        first.append(nll[0 : half - 1].mean())
        repeat.append(nll[half : 2 * half - 1].mean())
    return InductionResult(np.mean(scores, axis=0), float(np.mean(first)), float(np.mean(repeat)))


# --- samples -------------------------------------------------------------------------------------


@torch.no_grad()
def generate(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    n_new: int,
    temperature: float = 0.0,
    top_k: int = 0,
    seed: int = 0,
) -> str:
    """`prompt` plus `n_new` tokens: greedy when `temperature` is 0, else sampled from the
    softmax at that temperature (restricted to the `top_k` most likely tokens if `top_k` > 0)
    with a generator seeded by `seed`. Returns only the new text."""
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("the prompt is empty")
    generator = torch.Generator().manual_seed(seed)
    new: list[int] = []
    n_ctx = model.config.n_ctx
    was_training = model.training
    model.eval()
    for _ in range(n_new):
        context = (ids + new)[-n_ctx:]
        logits = model(torch.tensor([context]))[0, -1].double()
        logits[tokenizer.eot_id] = float("-inf")  # keep going within one work
        if temperature <= 0.0:
            token = int(torch.argmax(logits))
        else:
            logits = logits / temperature
            if top_k > 0:
                kth = torch.topk(logits, min(top_k, len(logits))).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            token = int(torch.multinomial(probs, 1, generator=generator))
        new.append(token)
    model.train(was_training)
    return tokenizer.decode(new)


@dataclass(frozen=True)
class Sample:
    prompt: str
    mode: str  # "greedy" or "T=0.8, top-k 40, seed 0"
    text: str


def samples(
    loaded: LoadedModel, prompts: tuple[str, ...] = PROMPTS, n_new: int = 48, seed: int = 0
) -> list[Sample]:
    out = []
    for prompt in prompts:
        out.append(
            Sample(prompt, "greedy", generate(loaded.model, loaded.tokenizer, prompt, n_new))
        )
        text = generate(loaded.model, loaded.tokenizer, prompt, n_new, 0.8, 40, seed)
        out.append(Sample(prompt, f"temperature 0.8, top-k 40, seed {seed}", text))
    return out


# --- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadRef:
    layer: int
    head: int
    score: float

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.head}"


def best_head(scores: np.ndarray) -> HeadRef:
    layer, head = np.unravel_index(int(np.nanargmax(scores)), scores.shape)
    return HeadRef(int(layer), int(head), float(scores[layer, head]))


def heads_above(scores: np.ndarray, bar: float) -> list[str]:
    """ "layer.head" of every head whose score is at least `bar`."""
    return [f"{la}.{h}" for la, h in zip(*np.nonzero(scores >= bar), strict=True)]


@dataclass(frozen=True)
class EvalReport:
    model: str
    val_loss: float
    val_targets: int
    train_loss: float
    train_targets: int
    baselines: Baselines | None
    previous_token: np.ndarray  # [n_layer, n_head]
    induction: np.ndarray  # [n_layer, n_head]
    induction_first_half_loss: float
    induction_repeat_loss: float
    samples: list[Sample] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def best_previous(self) -> HeadRef:
        return best_head(self.previous_token)

    @property
    def best_induction(self) -> HeadRef:
        return best_head(self.induction)

    def thresholds(self) -> dict[str, bool]:
        out = {
            f"previous-token head >= {PREVIOUS_TOKEN_BAR}": bool(
                self.best_previous.score >= PREVIOUS_TOKEN_BAR
            ),
            f"induction head >= {INDUCTION_BAR}": bool(self.best_induction.score >= INDUCTION_BAR),
            "repeated half has the lower loss": bool(
                self.induction_repeat_loss < self.induction_first_half_loss
            ),
        }
        if self.baselines is not None:
            out["validation loss below the Kneser-Ney bigram"] = bool(
                self.val_loss < self.baselines.bigram_kn
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "val_loss": round(self.val_loss, 4),
            "val_targets": self.val_targets,
            "train_loss": round(self.train_loss, 4),
            "train_targets": self.train_targets,
            "baselines": None if self.baselines is None else _rounded(asdict(self.baselines)),
            "previous_token": np.round(self.previous_token, 4).tolist(),
            "induction": np.round(self.induction, 4).tolist(),
            "best_previous_token_head": _head_dict(self.best_previous),
            "best_induction_head": _head_dict(self.best_induction),
            "previous_token_heads": heads_above(self.previous_token, PREVIOUS_TOKEN_BAR),
            "induction_heads": heads_above(self.induction, INDUCTION_BAR),
            "induction_first_half_loss": round(self.induction_first_half_loss, 4),
            "induction_repeat_loss": round(self.induction_repeat_loss, 4),
            "thresholds_met": self.thresholds(),
            "protocol": self.protocol,
            "samples": [asdict(s) for s in self.samples],
        }


def _head_dict(ref: HeadRef) -> dict[str, Any]:
    return {"head": ref.name, "layer": ref.layer, "index": ref.head, "score": round(ref.score, 4)}


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, float):
            out[k] = round(v, 4)
        elif isinstance(v, tuple):
            out[k] = [round(x, 4) for x in v]
        else:
            out[k] = v
    return out


def evaluate(
    loaded: LoadedModel,
    train_ids: np.ndarray,
    val_ids: np.ndarray,
    *,
    seq_len: int = 0,
    train_windows: int = 0,
    with_baselines: bool = True,
    n_prev_windows: int = 8,
    induction_seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    induction_half: int = 100,
    n_sample_tokens: int = 48,
) -> EvalReport:
    """Everything the model card reports, measured on `loaded` (eval mode, not mutated).

    `train_windows` limits the training-loss estimate to that many evenly spaced windows
    (0: every window of the split)."""
    seq_len = seq_len or loaded.config.n_ctx
    model = loaded.model
    val_loss = estimate_loss(model, val_ids, seq_len)
    val_targets = ((len(val_ids) - 1) // seq_len) * seq_len
    if train_windows:
        starts = window_starts(len(train_ids) - 1, seq_len + 1, train_windows)
        pieces = [train_ids[s : s + seq_len + 1] for s in starts]
        # One window of seq_len + 1 tokens per piece: estimate_loss on each piece alone.
        losses = [estimate_loss(model, p, seq_len) for p in pieces]
        train_loss, train_targets = float(np.mean(losses)), train_windows * seq_len
    else:
        train_loss = estimate_loss(model, train_ids, seq_len)
        train_targets = ((len(train_ids) - 1) // seq_len) * seq_len
    log.info("validation loss %.4f, training loss %.4f", val_loss, train_loss)
    baselines = (
        ngram_baselines(train_ids, val_ids, loaded.config.vocab_size, seq_len)
        if (with_baselines)
        else None
    )
    previous = previous_token_scores(loaded, val_ids, n_prev_windows)
    induction = induction_scores(loaded, induction_seeds, induction_half)
    texts = samples(loaded, n_new=n_sample_tokens) if n_sample_tokens else []
    protocol = {
        "seq_len": seq_len,
        "previous_token": f"{n_prev_windows} evenly spaced {loaded.config.n_ctx}-token windows "
        "of the validation split",
        "induction": f"{induction_half} uniformly random ordinary tokens repeated twice, "
        f"seeds {list(induction_seeds)}",
        "train_loss": f"{train_windows} evenly spaced windows" if train_windows else "every window",
    }
    return EvalReport(
        model=loaded.name,
        val_loss=val_loss,
        val_targets=val_targets,
        train_loss=train_loss,
        train_targets=train_targets,
        baselines=baselines,
        previous_token=previous,
        induction=induction.scores,
        induction_first_half_loss=induction.first_half_loss,
        induction_repeat_loss=induction.repeat_loss,
        samples=texts,
        protocol=protocol,
    )
