"""Per-language evaluation of a model trained on the bilingual corpus (issue 14, item 4).

Every number is measured by the engine's own functions on held-out text of one language at a
time (`engine.training.sources`: whole documents held out per language):

- validation loss (`engine.training.train.estimate_loss`) against interpolated Kneser-Ney
  n-gram baselines fitted on that language's training split
  (`engine.training.baselines.ngram_baselines`);
- previous-token head scores on held-out windows of that language
  (`engine.training.probes.previous_token_scores`);
- induction scores on random tokens repeated twice, drawn from the ids seen in training
  (`engine.training.probes.induction_scores`);
- natural text repeated once (`natural_repeat_probability`): held-out sentences of at least 12
  tokens, each followed by a newline and itself again; the mean probability the model gives the
  correct next token over the second copy;
- the largest cosine between the embedding rows of two distinct tokens that occur in the corpus
  (`max_embedding_cosine`): rows that never get a distinct gradient end up identical.

The bars (never lowered silently) are the module constants below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.checkpoints import LoadedModel
from engine.training.baselines import ngram_baselines
from engine.training.probes import (
    INDUCTION_BAR,
    PREVIOUS_TOKEN_BAR,
    best_head,
    heads_above,
    induction_scores,
    previous_token_scores,
    seen_ids,
)
from engine.training.sources import cjk_share, iter_sentences
from engine.training.train import estimate_loss

NATURAL_REPEAT_BAR = 0.5  # mean p(correct next token) over the second copy
EMBEDDING_COSINE_BAR = 0.99  # no two rows of tokens in the corpus above this
MIN_SENTENCE_TOKENS = 12
MAX_SENTENCE_TOKENS = 60


def repeat_sentences(
    texts: list[str], language: str, tokenizer: Any, n: int = 50
) -> list[list[int]]:
    """`n` sentences (token ids) from the held-out `texts`, evenly spaced over all candidates:
    sentences of MIN_SENTENCE_TOKENS to MAX_SENTENCE_TOKENS tokens (`iter_sentences`); Chinese
    ones must be at least half CJK characters, English ones have none. Raises ValueError when
    there is no candidate."""
    candidates: list[list[int]] = []
    for text in texts:
        for sentence in iter_sentences(text, language):
            share = cjk_share(sentence)
            if (language == "zh" and share < 0.5) or (language == "en" and share > 0):
                continue
            ids = tokenizer.encode(sentence)
            if MIN_SENTENCE_TOKENS <= len(ids) <= MAX_SENTENCE_TOKENS:
                candidates.append(ids)
    if not candidates:
        raise ValueError(f"no {language} sentence of {MIN_SENTENCE_TOKENS}+ tokens")
    picks = np.linspace(0, len(candidates) - 1, min(n, len(candidates))).round().astype(int)
    return [candidates[k] for k in picks]


@torch.no_grad()
def repeat_probabilities(loaded: LoadedModel, sentence: list[int]) -> np.ndarray:
    """[len(sentence) - 1] probabilities of the correct next token over the second copy of
    `sentence + [newline] + sentence`: targets copy[1:], each predicted from the copy so far.
    (The copy's first token follows the newline and is not counted: nothing before it says
    a copy begins.)"""
    newline = loaded.tokenizer.encode("\n")
    ids = list(sentence) + newline + list(sentence)
    x = torch.tensor([ids], dtype=torch.long)
    probs = torch.softmax(loaded.model(x)[0].double(), dim=-1).numpy()
    start = len(sentence) + len(newline)  # position of the copy's first token
    positions = np.arange(start, len(ids) - 1)  # predict ids[p + 1]
    return probs[positions, np.asarray(ids)[positions + 1]]


def natural_repeat_probability(loaded: LoadedModel, sentences: list[list[int]]) -> float:
    """Mean over `sentences` of the mean probability of the correct next token over the
    second copy (`repeat_probabilities`)."""
    return float(np.mean([repeat_probabilities(loaded, s).mean() for s in sentences]))


def max_embedding_cosine(
    loaded: LoadedModel, ids: np.ndarray, block: int = 1024
) -> tuple[float, int, int]:
    """(largest cosine, id a, id b) over distinct pairs of the token-embedding rows `ids`
    (computed in float64, block by block). Raises ValueError for fewer than two ids."""
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    if len(ids) < 2:
        raise ValueError("need at least two ids")
    w = loaded.model.transformer.wte.weight.detach().double().numpy()[ids]
    unit = w / np.linalg.norm(w, axis=1, keepdims=True)
    best, pair = -2.0, (0, 0)
    for a in range(0, len(ids), block):
        sims = unit[a : a + block] @ unit.T
        rows = np.arange(sims.shape[0])
        sims[rows, a + rows] = -2.0  # a row with itself
        k = int(np.argmax(sims))
        i, j = divmod(k, sims.shape[1])
        if sims[i, j] > best:
            best, pair = float(sims[i, j]), (int(ids[a + i]), int(ids[j]))
    return best, pair[0], pair[1]


@dataclass(frozen=True)
class LanguageResult:
    """What was measured on one language's held-out split (losses in nats per token)."""

    language: str
    val_loss: float
    val_targets: int
    train_tokens: int
    unigram: float
    bigram_kn: float
    trigram_kn: float
    previous_token: np.ndarray  # [n_layer, n_head]
    natural_repeat: float
    repeat_sentences: int

    def to_dict(self) -> dict[str, Any]:
        best = best_head(self.previous_token)
        return {
            "val_loss": round(self.val_loss, 4),
            "val_targets": self.val_targets,
            "train_tokens": self.train_tokens,
            "unigram": round(self.unigram, 4),
            "bigram_kn": round(self.bigram_kn, 4),
            "trigram_kn": round(self.trigram_kn, 4),
            "previous_token": np.round(self.previous_token, 4).tolist(),
            "best_previous_token_head": {"head": best.name, "score": round(best.score, 4)},
            "previous_token_heads": list(heads_above(self.previous_token, PREVIOUS_TOKEN_BAR)),
            "natural_repeat": round(self.natural_repeat, 4),
            "repeat_sentences": self.repeat_sentences,
        }


@dataclass(frozen=True)
class BilingualReport:
    """Per-language results, the induction probe and the embedding check."""

    languages: dict[str, LanguageResult]
    induction: np.ndarray  # [n_layer, n_head]
    induction_first_half_loss: float
    induction_repeat_loss: float
    induction_pool: int
    max_cosine: float
    max_cosine_pair: tuple[int, int]
    cosine_ids: int

    def bars(self) -> dict[str, bool]:
        """{"what the bar asks": met} for every bar of issue 14 item 4."""
        out: dict[str, bool] = {}
        for lang, r in self.languages.items():
            out[f"{lang}: validation loss below the Kneser-Ney bigram"] = r.val_loss < r.bigram_kn
            out[f"{lang}: previous-token head >= {PREVIOUS_TOKEN_BAR}"] = bool(
                best_head(r.previous_token).score >= PREVIOUS_TOKEN_BAR
            )
            out[f"{lang}: natural text repeated, mean p(next) >= {NATURAL_REPEAT_BAR}"] = (
                r.natural_repeat >= NATURAL_REPEAT_BAR
            )
        out[f"induction head >= {INDUCTION_BAR} on repeated random tokens"] = bool(
            best_head(self.induction).score >= INDUCTION_BAR
        )
        out[f"no two embedding rows of corpus tokens above cosine {EMBEDDING_COSINE_BAR}"] = (
            self.max_cosine <= EMBEDDING_COSINE_BAR
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        best = best_head(self.induction)
        return {
            "languages": {lang: r.to_dict() for lang, r in self.languages.items()},
            "induction": np.round(self.induction, 4).tolist(),
            "best_induction_head": {"head": best.name, "score": round(best.score, 4)},
            "induction_heads": list(heads_above(self.induction, INDUCTION_BAR)),
            "induction_first_half_loss": round(self.induction_first_half_loss, 4),
            "induction_repeat_loss": round(self.induction_repeat_loss, 4),
            "induction_pool": self.induction_pool,
            "max_embedding_cosine": round(self.max_cosine, 4),
            "max_embedding_cosine_pair": list(self.max_cosine_pair),
            "embedding_ids_checked": self.cosine_ids,
            "bars": self.bars(),
        }


def evaluate_bilingual(
    loaded: LoadedModel,
    train_ids: dict[str, np.ndarray],
    val_ids: dict[str, np.ndarray],
    val_texts: dict[str, list[str]],
    *,
    with_baselines: bool = True,
    max_val_windows: int = 0,
    n_prev_windows: int = 8,
    n_sentences: int = 50,
    induction_seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
) -> BilingualReport:
    """Measure `loaded` on each language of `val_ids` (token ids of the held-out split; its
    texts in `val_texts` for the repeat probe) with baselines fitted on `train_ids` of the same
    language. `max_val_windows` > 0 limits the loss (model and baselines) to the first windows
    of each split (0: the whole split); `with_baselines` False leaves them NaN (quick checks of
    snapshots)."""
    seq_len = loaded.config.n_ctx
    results = {}
    for lang, val in val_ids.items():
        if max_val_windows:
            val = val[: max_val_windows * seq_len + 1]
        loss = estimate_loss(loaded.model, val, seq_len)
        if with_baselines:
            b = ngram_baselines(train_ids[lang], val, loaded.config.vocab_size, seq_len)
            uni, bi, tri = b.unigram, b.bigram_kn, b.trigram_kn
        else:
            uni = bi = tri = float("nan")
        sentences = repeat_sentences(val_texts[lang], lang, loaded.tokenizer, n_sentences)
        results[lang] = LanguageResult(
            language=lang,
            val_loss=loss,
            val_targets=((len(val) - 1) // seq_len) * seq_len,
            train_tokens=len(train_ids[lang]),
            unigram=uni,
            bigram_kn=bi,
            trigram_kn=tri,
            previous_token=previous_token_scores(loaded, val, n_prev_windows),
            natural_repeat=natural_repeat_probability(loaded, sentences),
            repeat_sentences=len(sentences),
        )
    all_train = np.concatenate(list(train_ids.values()))
    pool = seen_ids(all_train, loaded.tokenizer.eot_id)
    induction = induction_scores(loaded, induction_seeds, 0, pool)
    corpus_ids = seen_ids(np.concatenate([all_train, *val_ids.values()]), loaded.tokenizer.eot_id)
    cos, a, b_id = max_embedding_cosine(loaded, corpus_ids)
    return BilingualReport(
        languages=results,
        induction=induction.scores,
        induction_first_half_loss=induction.first_half_loss,
        induction_repeat_loss=induction.repeat_loss,
        induction_pool=len(pool),
        max_cosine=cos,
        max_cosine_pair=(a, b_id),
        cosine_ids=len(corpus_ids),
    )
