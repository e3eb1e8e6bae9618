"""Evaluate a checkpoint with the engine's own functions: what has the model learned?

- validation loss on the whole held-out split (`engine.training.train.estimate_loss`), and the
  training loss measured the same way;
- n-gram baselines fitted on the training split (engine/training/baselines.py);
- per-head previous-token score on held-out text and induction score on random tokens repeated
  twice, with the model's loss on the first copy against the repeated copy
  (engine/training/probes.py);
- seeded greedy and sampled continuations of a few Shakespearean prompts, made by the engine's
  one `engine.sampling.generate`.

`evaluate(...)` returns an `EvalReport`; `python -m engine evaluate` prints it as JSON.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.card import Baselines, HeadScore, Protocol, Sample, Thresholds
from engine.checkpoints import LoadedModel
from engine.model import GPT
from engine.sampling import SamplingSettings, generate
from engine.tokenizer import Tokenizer
from engine.training.baselines import ngram_baselines
from engine.training.probes import (
    INDUCTION_BAR,
    PREVIOUS_TOKEN_BAR,
    InductionResult,
    best_head,
    default_induction_half,
    heads_above,
    induction_scores,
    previous_token_scores,
    seen_ids,
    window_starts,
)
from engine.training.train import estimate_loss

log = logging.getLogger(__name__)

PROMPTS: tuple[str, ...] = (
    "ROMEO.\n",
    "To be, or not to be,",
    "KING.\nMy lord,",
    "Now is the winter of",
)


# --- samples -------------------------------------------------------------------------------------


def continue_text(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    n_new: int,
    temperature: float = 0.0,
    top_k: int = 0,
    seed: int = 0,
) -> str:
    """The `n_new` tokens after `prompt`, decoded: greedy when `temperature` is 0, else sampled
    at that temperature from the `top_k` most likely tokens (0: all), every draw from one
    generator seeded once with `seed`; `<|endoftext|>` is never chosen. This is
    `engine.sampling.generate` with the card's protocol. Raises ValueError on an empty prompt."""
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("the prompt is empty")
    settings = (
        SamplingSettings(greedy=True)
        if temperature <= 0.0
        else SamplingSettings(temperature=temperature, top_k=top_k)
    )
    steps = generate(
        model, tokenizer, ids, n_new, settings, seed, suppress_eot=True, one_stream=True
    )
    return tokenizer.decode([s.token_id for s in steps])


def samples(
    loaded: LoadedModel, prompts: tuple[str, ...] = PROMPTS, n_new: int = 48, seed: int = 0
) -> list[Sample]:
    """A greedy and a sampled (temperature 0.8, top-k 40, `seed`) continuation of each prompt."""
    out = []
    for prompt in prompts:
        greedy = continue_text(loaded.model, loaded.tokenizer, prompt, n_new)
        out.append(Sample(prompt, "greedy", greedy))
        text = continue_text(loaded.model, loaded.tokenizer, prompt, n_new, 0.8, 40, seed)
        out.append(Sample(prompt, f"temperature 0.8, top-k 40, seed {seed}", text))
    return out


# --- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalReport:
    """Everything `evaluate` measured (unrounded; losses in nats per token, head scores
    [n_layer, n_head])."""

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
    protocol: Protocol
    induction_all_ids: InductionResult | None = None  # the same probe over every ordinary id
    samples: list[Sample] = field(default_factory=list)

    @property
    def best_previous(self) -> HeadScore:
        return best_head(self.previous_token)

    @property
    def best_induction(self) -> HeadScore:
        return best_head(self.induction)

    def bars(self) -> Thresholds:
        """Which bars the model clears (`val_below_bigram` is False without baselines)."""
        return Thresholds(
            val_below_bigram=bool(
                self.baselines is not None and self.val_loss < self.baselines.bigram_kn
            ),
            previous_token=bool(self.best_previous.score >= PREVIOUS_TOKEN_BAR),
            induction=bool(self.best_induction.score >= INDUCTION_BAR),
            repeat_lower=bool(self.induction_repeat_loss < self.induction_first_half_loss),
        )

    def thresholds(self) -> dict[str, bool]:
        """The bars as {"what the bar asks": met}, as `python -m engine evaluate` prints them."""
        bars = self.bars()
        out = {
            f"previous-token head >= {PREVIOUS_TOKEN_BAR}": bars.previous_token,
            f"induction head >= {INDUCTION_BAR}": bars.induction,
            "repeated half has the lower loss": bars.repeat_lower,
        }
        if self.baselines is not None:
            out["validation loss below the Kneser-Ney bigram"] = bars.val_below_bigram
        return out

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values rounded to 4 decimals (the `evaluate` command)."""
        return {
            "model": self.model,
            "val_loss": round(self.val_loss, 4),
            "val_targets": self.val_targets,
            "train_loss": round(self.train_loss, 4),
            "train_targets": self.train_targets,
            "baselines": None if self.baselines is None else asdict(rounded(self.baselines)),
            "previous_token": np.round(self.previous_token, 4).tolist(),
            "induction": np.round(self.induction, 4).tolist(),
            "best_previous_token_head": _head_dict(self.best_previous),
            "best_induction_head": _head_dict(self.best_induction),
            "previous_token_heads": list(heads_above(self.previous_token, PREVIOUS_TOKEN_BAR)),
            "induction_heads": list(heads_above(self.induction, INDUCTION_BAR)),
            "induction_first_half_loss": round(self.induction_first_half_loss, 4),
            "induction_repeat_loss": round(self.induction_repeat_loss, 4),
            "induction_all_ids": _induction_dict(self.induction_all_ids),
            "thresholds_met": self.thresholds(),
            "protocol": _protocol_dict(self.protocol),
            "samples": [asdict(s) for s in self.samples],
        }


def rounded_head(ref: HeadScore) -> HeadScore:
    """`ref` with its score rounded to 4 decimals (as the card stores it)."""
    return HeadScore(ref.layer, ref.index, round(ref.score, 4))


def rounded(b: Baselines) -> Baselines:
    """`b` with its losses and discounts rounded to 4 decimals (as the card stores them)."""
    return Baselines(
        unigram=round(b.unigram, 4),
        bigram_kn=round(b.bigram_kn, 4),
        trigram_kn=round(b.trigram_kn, 4),
        discounts_bigram=tuple(round(x, 4) for x in b.discounts_bigram),
        discounts_trigram=tuple(round(x, 4) for x in b.discounts_trigram),
        n_train_tokens=b.n_train_tokens,
        n_val_targets=b.n_val_targets,
    )


def _protocol_dict(p: Protocol) -> dict[str, Any]:
    return {
        "seq_len": p.seq_len,
        "previous_token": p.previous_token,
        "induction": p.induction,
        "induction_all_ids": p.induction_all_ids,
        "train_loss": p.train_loss,
    }


def _induction_dict(result: InductionResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "scores": np.round(result.scores, 4).tolist(),
        "best_head": _head_dict(best_head(result.scores)),
        "first_half_loss": round(result.first_half_loss, 4),
        "repeat_loss": round(result.repeat_loss, 4),
    }


def _head_dict(ref: HeadScore) -> dict[str, Any]:
    return {"head": ref.name, "layer": ref.layer, "index": ref.index, "score": round(ref.score, 4)}


# --- evaluate ------------------------------------------------------------------------------------


def _train_loss(
    model: GPT, train_ids: np.ndarray, seq_len: int, train_windows: int
) -> tuple[float, int]:
    """(loss, scored targets) on the training split: every window, or `train_windows` evenly
    spaced windows of seq_len + 1 tokens, each scored alone."""
    if not train_windows:
        return estimate_loss(model, train_ids, seq_len), ((len(train_ids) - 1) // seq_len) * seq_len
    starts = window_starts(len(train_ids) - 1, seq_len + 1, train_windows)
    losses = [estimate_loss(model, train_ids[s : s + seq_len + 1], seq_len) for s in starts]
    return float(np.mean(losses)), train_windows * seq_len


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
    induction_half: int = 0,
    n_sample_tokens: int = 48,
) -> EvalReport:
    """Everything the model card reports, measured on `loaded` (eval mode, not mutated).

    `train_windows` limits the training-loss estimate to that many evenly spaced windows
    (0: every window of the split)."""
    seq_len = seq_len or loaded.config.n_ctx
    induction_half = induction_half or default_induction_half(loaded.config)
    val_loss = estimate_loss(loaded.model, val_ids, seq_len)
    train_loss, train_targets = _train_loss(loaded.model, train_ids, seq_len, train_windows)
    log.info("validation loss %.4f, training loss %.4f", val_loss, train_loss)
    baselines = (
        ngram_baselines(train_ids, val_ids, loaded.config.vocab_size, seq_len)
        if with_baselines
        else None
    )
    previous = previous_token_scores(loaded, val_ids, n_prev_windows)
    pool = seen_ids(train_ids, loaded.tokenizer.eot_id)
    induction = induction_scores(loaded, induction_seeds, induction_half, pool)
    protocol = Protocol(
        seq_len=seq_len,
        prev_windows=n_prev_windows,
        prev_window=loaded.config.n_ctx,
        induction_half=induction_half,
        induction_pool=len(pool),
        ordinary_ids=loaded.tokenizer.eot_id,
        induction_seeds=tuple(induction_seeds),
        train_windows=train_windows,
    )
    return EvalReport(
        model=loaded.name,
        val_loss=val_loss,
        val_targets=((len(val_ids) - 1) // seq_len) * seq_len,
        train_loss=train_loss,
        train_targets=train_targets,
        baselines=baselines,
        previous_token=previous,
        induction=induction.scores,
        induction_first_half_loss=induction.first_half_loss,
        induction_repeat_loss=induction.repeat_loss,
        protocol=protocol,
        induction_all_ids=induction_scores(loaded, induction_seeds, induction_half),
        samples=samples(loaded, n_new=n_sample_tokens) if n_sample_tokens else [],
    )
